//! Per-caller quotas and suspensions for the HTTP API listener. Owns the
//! request/record counters (fixed windows: the minute, and the local day)
//! and the suspended-caller list; persists them through [`store`] from a
//! background sync task. The request path only touches one sharded map
//! entry (no global lock) and never waits on disk or Redis.
//!
//! Quotas are checked before forwarding and counted after:
//! - requests: [`CallerState::admit`] refuses a request that would exceed
//!   `requests_per_*`, and counts it when allowed;
//! - records: known only once the response has streamed, so `admit`
//!   refuses once the caller has *already reached* `records_per_*` in the
//!   window, and [`CallerState::add_records`] counts them afterwards (one
//!   response may overshoot the records quota; the next request is
//!   refused).
//!
//! With Redis, decisions use the shared total read at the last sync plus
//! what this instance counted since: several instances together may
//! overshoot a quota by at most what they admit within one
//! `sync_interval`. Suspensions take effect at once on the instance that
//! makes them and reach the others at their next sync.

mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{info, warn};

use store::{Backend, Exchange, Redis, SavedCounter, Snapshot, SNAPSHOT_VERSION};
pub use store::{REDIS_TIMEOUT, SNAPSHOT_FILE};

/// Seconds in the minute window.
pub const MINUTE_SECS: u64 = 60;
/// Seconds in the day window.
pub const DAY_SECS: u64 = 86_400;
/// Suspended callers kept; more are refused (counted in the log).
pub const MAX_SUSPENSIONS: usize = 100_000;
/// Longest suspension reason / author kept (bytes); longer are cut.
pub const MAX_REASON_BYTES: usize = 1024;

/// A caller's quota (the policy's `quota = { ... }`); `None` = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    #[serde(default)]
    pub requests_per_day: Option<u64>,
    #[serde(default)]
    pub records_per_minute: Option<u64>,
    #[serde(default)]
    pub records_per_day: Option<u64>,
}

/// A refused request: which quota, its limit, what was used, and when the
/// window that refused it ends (for `Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaExceeded {
    /// `requests_per_minute`, `requests_per_day`, `records_per_minute` or
    /// `records_per_day` (a bounded label).
    pub which: &'static str,
    pub limit: u64,
    pub used: u64,
    pub retry_after_secs: u64,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "quota {} exceeded ({} of {}); retry after {} s",
            self.which, self.used, self.limit, self.retry_after_secs
        )
    }
}

/// A caller's use in the current windows (admin API).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub requests_this_minute: u64,
    pub requests_today: u64,
    pub records_this_minute: u64,
    pub records_today: u64,
    /// Unix seconds: start of the current minute and local day.
    pub minute_start: u64,
    pub day_start: u64,
}

/// A suspended caller: every request is refused until someone resumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub caller: String,
    pub reason: String,
    /// Who suspended it (an operator, or a rule id).
    pub by: String,
    /// Real unix time, seconds.
    pub since: u64,
}

/// Where state persists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateStore {
    /// Nothing persists (tests, throwaway runs).
    Memory,
    /// `dir/api-state.json`, saved by the sync task and at shutdown.
    Disk { dir: PathBuf },
    /// Shared by every instance using the same `url` and `prefix`.
    Redis { url: String, prefix: String },
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a danxia API state snapshot: {reason}; move it aside to start with empty counters and no suspensions")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}; quota counters and suspensions will be lost at restart until it can be written")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("redis ({url}): {reason}; check that Redis is reachable (quotas fall back to this instance's own counts meanwhile)")]
    Redis { url: String, reason: String },
}

/// Which counter.
const REQ_M: usize = 0;
const REQ_D: usize = 1;
const REC_M: usize = 2;
const REC_D: usize = 3;
/// Counter names in the snapshot and Redis keys.
const NAMES: [&str; 4] = ["req:m", "req:d", "rec:m", "rec:d"];

/// One fixed window's count: `shared` as last read from the store (or
/// loaded), `pending` counted here since.
#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    start: u64,
    end: u64,
    shared: u64,
    pending: u64,
}

impl Counter {
    fn used(&self) -> u64 {
        self.shared.saturating_add(self.pending)
    }

    /// Moves to window `[start, end)`, dropping an older window's count.
    fn roll(&mut self, (start, end): (u64, u64)) {
        if self.start != start {
            *self = Counter {
                start,
                end,
                shared: 0,
                pending: 0,
            };
        }
    }

    /// The count in window `start`, 0 when this holds another window.
    fn in_window(&self, start: u64) -> u64 {
        if self.start == start {
            self.used()
        } else {
            0
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters([Counter; 4]);

/// The minute window holding `now`.
fn minute(now: u64) -> (u64, u64) {
    let start = now - now % MINUTE_SECS;
    (start, start + MINUTE_SECS)
}

/// The local day holding `now`, for a zone `utc_offset` seconds east.
fn day(now: u64, utc_offset: i32) -> (u64, u64) {
    let local = now as i64 + i64::from(utc_offset);
    let start = local.div_euclid(DAY_SECS as i64) * DAY_SECS as i64 - i64::from(utc_offset);
    let start = start.max(0) as u64;
    (start, start + DAY_SECS)
}

impl Counters {
    fn roll(&mut self, now: u64, utc_offset: i32) {
        let m = minute(now);
        let d = day(now, utc_offset);
        self.0[REQ_M].roll(m);
        self.0[REC_M].roll(m);
        self.0[REQ_D].roll(d);
        self.0[REC_D].roll(d);
    }
}

enum SuspendOp {
    Set(Suspension),
    Del(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> u64 {
    crate::behaviour::gate::unix_now()
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_REASON_BYTES {
        let mut i = MAX_REASON_BYTES;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
    s
}

/// Quota counters and suspensions of every caller, shared by the
/// listener's connections (`Send + Sync`).
pub struct CallerState {
    callers: DashMap<Arc<str>, Counters>,
    suspended: RwLock<HashMap<String, Suspension>>,
    /// Suspended callers, read without the lock on the request path.
    suspended_count: AtomicUsize,
    /// Latest `now` the request path passed in: which windows are current
    /// for the sync task (the request path's clock, so tests can drive it).
    latest: AtomicU64,
    /// Something changed since the last disk save.
    dirty: AtomicBool,
    pending: Mutex<Vec<SuspendOp>>,
    nudge: Notify,
    backend: Backend,
    sync_interval: Duration,
}

impl CallerState {
    /// Opens `store` and loads what it holds (disk: the snapshot's current
    /// windows and suspensions; Redis: the suspensions). A store that
    /// cannot be read is an error, not a silent fresh start.
    pub async fn start(
        store: StateStore,
        sync_interval: Duration,
    ) -> Result<Arc<CallerState>, StateError> {
        let backend = match store {
            StateStore::Memory => Backend::Memory,
            StateStore::Disk { dir } => Backend::Disk {
                path: dir.join(SNAPSHOT_FILE),
            },
            StateStore::Redis { url, prefix } => {
                Backend::Redis(Box::new(Redis::open(&url, &prefix)?))
            }
        };
        let s = Arc::new(CallerState {
            callers: DashMap::new(),
            suspended: RwLock::new(HashMap::new()),
            suspended_count: AtomicUsize::new(0),
            latest: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            pending: Mutex::new(Vec::new()),
            nudge: Notify::new(),
            backend,
            sync_interval,
        });
        match &s.backend {
            Backend::Memory => {}
            Backend::Disk { path } => {
                let p = path.clone();
                let snap = tokio::task::spawn_blocking(move || store::read_file(&p))
                    .await
                    .map_err(|e| StateError::Read {
                        path: path.clone(),
                        source: std::io::Error::other(e),
                    })??;
                s.import(snap, unix_now());
            }
            Backend::Redis(r) => {
                let list = r.suspensions().await;
                if list.is_err() {
                    r.forget().await;
                }
                s.replace_suspensions(list?);
            }
        }
        info!(
            store = %s.backend.describe(),
            callers = s.callers.len(),
            suspended = s.suspended_count.load(Ordering::Acquire),
            "api caller state loaded"
        );
        Ok(s)
    }

    /// Takes a snapshot's windows that have not ended at `now`.
    fn import(&self, snap: Snapshot, now: u64) {
        for c in snap.counters {
            let Some(k) = NAMES.iter().position(|n| *n == c.counter) else {
                continue;
            };
            if c.end <= now || c.start >= c.end {
                continue;
            }
            let mut e = self
                .callers
                .entry(Arc::from(c.caller.as_str()))
                .or_default();
            e.0[k] = Counter {
                start: c.start,
                end: c.end,
                shared: c.count,
                pending: 0,
            };
        }
        self.replace_suspensions(snap.suspensions);
    }

    fn seen(&self, now: u64) {
        self.latest.fetch_max(now, Ordering::Relaxed);
    }

    /// Checks `caller`'s quota `q` at `now_unix` (the local day is
    /// `utc_offset` seconds east of UTC) and counts the request when it
    /// is allowed. When several quotas refuse, the one with the longest
    /// `retry_after_secs` is returned (retrying sooner would fail).
    pub fn admit(
        &self,
        caller: &str,
        q: &Quota,
        now_unix: u64,
        utc_offset: i32,
    ) -> Result<(), QuotaExceeded> {
        self.seen(now_unix);
        let mut e = match self.callers.get_mut(caller) {
            Some(e) => e,
            None => self.callers.entry(Arc::from(caller)).or_default(),
        };
        e.roll(now_unix, utc_offset);
        let c = &e.0;
        let checks = [
            ("requests_per_minute", q.requests_per_minute, REQ_M, 1),
            ("requests_per_day", q.requests_per_day, REQ_D, 1),
            ("records_per_minute", q.records_per_minute, REC_M, 0),
            ("records_per_day", q.records_per_day, REC_D, 0),
        ];
        let mut worst: Option<QuotaExceeded> = None;
        for (which, limit, k, this) in checks {
            let Some(limit) = limit else { continue };
            let used = c[k].used();
            // Requests: would this one exceed? Records: already reached?
            let over = if this > 0 {
                used.saturating_add(this) > limit
            } else {
                used >= limit
            };
            if over {
                let retry = c[k].end.saturating_sub(now_unix);
                if worst.as_ref().is_none_or(|w| retry > w.retry_after_secs) {
                    worst = Some(QuotaExceeded {
                        which,
                        limit,
                        used,
                        retry_after_secs: retry,
                    });
                }
            }
        }
        if let Some(w) = worst {
            return Err(w);
        }
        e.0[REQ_M].pending += 1;
        e.0[REQ_D].pending += 1;
        drop(e);
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Counts `n` records returned to `caller` (after the response).
    pub fn add_records(&self, caller: &str, n: u64, now_unix: u64, utc_offset: i32) {
        if n == 0 {
            return;
        }
        self.seen(now_unix);
        let mut e = match self.callers.get_mut(caller) {
            Some(e) => e,
            None => self.callers.entry(Arc::from(caller)).or_default(),
        };
        e.roll(now_unix, utc_offset);
        e.0[REC_M].pending = e.0[REC_M].pending.saturating_add(n);
        e.0[REC_D].pending = e.0[REC_D].pending.saturating_add(n);
        drop(e);
        self.dirty.store(true, Ordering::Release);
    }

    /// `caller`'s use in the windows holding `now_unix`.
    pub fn usage(&self, caller: &str, now_unix: u64, utc_offset: i32) -> Usage {
        let (m, _) = minute(now_unix);
        let (d, _) = day(now_unix, utc_offset);
        let mut u = Usage {
            minute_start: m,
            day_start: d,
            ..Usage::default()
        };
        if let Some(e) = self.callers.get(caller) {
            u.requests_this_minute = e.0[REQ_M].in_window(m);
            u.requests_today = e.0[REQ_D].in_window(d);
            u.records_this_minute = e.0[REC_M].in_window(m);
            u.records_today = e.0[REC_D].in_window(d);
        }
        u
    }

    /// Suspends `caller`; false when it already was (the first reason
    /// stays) or the list is full. Takes effect at once here; other
    /// instances see it after the next sync (which this nudges).
    pub fn suspend(&self, caller: &str, reason: String, by: String) -> bool {
        let s = Suspension {
            caller: caller.to_string(),
            reason: cut(reason),
            by: cut(by),
            since: unix_now(),
        };
        {
            let mut m = write(&self.suspended);
            if m.contains_key(caller) {
                return false;
            }
            if m.len() >= MAX_SUSPENSIONS {
                warn!(caller, "api state: suspension list full; not suspended");
                return false;
            }
            m.insert(caller.to_string(), s.clone());
            self.suspended_count.store(m.len(), Ordering::Release);
        }
        warn!(caller, by = %s.by, "api caller suspended");
        if matches!(self.backend, Backend::Redis(_)) {
            lock(&self.pending).push(SuspendOp::Set(s));
        }
        self.dirty.store(true, Ordering::Release);
        self.nudge.notify_one();
        true
    }

    /// Resumes `caller`; what it was suspended for, if it was.
    pub fn resume(&self, caller: &str) -> Option<Suspension> {
        let s = {
            let mut m = write(&self.suspended);
            let s = m.remove(caller)?;
            self.suspended_count.store(m.len(), Ordering::Release);
            s
        };
        info!(caller, "api caller resumed");
        if matches!(self.backend, Backend::Redis(_)) {
            lock(&self.pending).push(SuspendOp::Del(caller.to_string()));
        }
        self.dirty.store(true, Ordering::Release);
        self.nudge.notify_one();
        Some(s)
    }

    /// Whether `caller` is suspended (one atomic load when nobody is).
    pub fn suspended(&self, caller: &str) -> Option<Suspension> {
        if self.suspended_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        read(&self.suspended).get(caller).cloned()
    }

    /// Every suspension, oldest first.
    pub fn suspensions(&self) -> Vec<Suspension> {
        let mut v: Vec<Suspension> = read(&self.suspended).values().cloned().collect();
        v.sort_by(|a, b| a.since.cmp(&b.since).then(a.caller.cmp(&b.caller)));
        v
    }

    fn replace_suspensions(&self, list: Vec<Suspension>) {
        let mut m = write(&self.suspended);
        m.clear();
        for s in list.into_iter().take(MAX_SUSPENSIONS) {
            m.insert(s.caller.clone(), s);
        }
        self.suspended_count.store(m.len(), Ordering::Release);
    }

    /// Where state persists, for the start-up log and admin API.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Drops callers whose windows have all ended (bounded memory: a
    /// caller that stopped calling costs nothing after its day ends).
    fn prune(&self, now: u64) {
        self.callers.retain(|_, c| c.0.iter().any(|w| w.end > now));
    }

    fn snapshot(&self, now: u64) -> Snapshot {
        let mut counters = Vec::new();
        for e in self.callers.iter() {
            for (k, w) in e.value().0.iter().enumerate() {
                if w.end > now && w.used() > 0 {
                    counters.push(SavedCounter {
                        caller: e.key().to_string(),
                        counter: NAMES[k].to_string(),
                        start: w.start,
                        end: w.end,
                        count: w.used(),
                    });
                }
            }
        }
        Snapshot {
            version: SNAPSHOT_VERSION,
            saved_at: unix_now(),
            counters,
            suspensions: self.suspensions(),
        }
    }

    /// One sync: disk saves the snapshot when something changed; Redis
    /// pushes suspension changes and local counter deltas and reads back
    /// the shared totals and the suspension list.
    pub async fn sync(&self) {
        let now = self.latest.load(Ordering::Relaxed);
        self.prune(now);
        match &self.backend {
            Backend::Memory => {}
            Backend::Disk { path } => {
                if !self.dirty.swap(false, Ordering::AcqRel) {
                    return;
                }
                let snap = self.snapshot(now);
                let p = path.clone();
                let r = tokio::task::spawn_blocking(move || store::write_file(&p, &snap))
                    .await
                    .unwrap_or_else(|e| {
                        Err(StateError::Write {
                            path: path.clone(),
                            source: std::io::Error::other(e),
                        })
                    });
                if let Err(e) = r {
                    warn!(error = %e, "api state: cannot save");
                    self.dirty.store(true, Ordering::Release);
                }
            }
            Backend::Redis(r) => {
                self.dirty.store(false, Ordering::Release);
                if let Err(e) = self.sync_redis(r, now).await {
                    warn!(error = %e, "api state: cannot sync with redis; retrying at the next sync");
                    r.forget().await;
                }
            }
        }
    }

    async fn sync_redis(&self, r: &Redis, now: u64) -> Result<(), StateError> {
        // Suspension changes first, in order; a failure keeps the rest.
        let ops: Vec<SuspendOp> = std::mem::take(&mut *lock(&self.pending));
        let mut ops = ops.into_iter();
        let mut failed = None;
        for op in ops.by_ref() {
            let res = match &op {
                SuspendOp::Set(s) => r.suspend(s).await,
                SuspendOp::Del(c) => r.resume(c).await,
            };
            if let Err(e) = res {
                let mut p = lock(&self.pending);
                let newer = std::mem::take(&mut *p);
                p.push(op);
                p.extend(ops.by_ref());
                p.extend(newer);
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }

        // Counters: take local deltas of current windows, push, read back.
        struct Taken {
            caller: Arc<str>,
            k: usize,
            start: u64,
            delta: u64,
        }
        let mut taken = Vec::new();
        let mut items = Vec::new();
        for mut e in self.callers.iter_mut() {
            let caller = e.key().clone();
            for (k, w) in e.value_mut().0.iter_mut().enumerate() {
                if w.end <= now || w.start == w.end {
                    continue;
                }
                let delta = std::mem::take(&mut w.pending);
                // Folded into `shared` now and corrected by the read-back,
                // so decisions in between still see it.
                w.shared = w.shared.saturating_add(delta);
                items.push(Exchange {
                    key: r.count_key(&caller, NAMES[k], w.start),
                    delta,
                    expire_secs: 2 * (w.end - w.start),
                });
                taken.push(Taken {
                    caller: caller.clone(),
                    k,
                    start: w.start,
                    delta,
                });
            }
        }
        match r.exchange(&items).await {
            Ok(totals) => {
                for (t, total) in taken.iter().zip(totals) {
                    if let Some(mut e) = self.callers.get_mut(&t.caller) {
                        let w = &mut e.0[t.k];
                        if w.start == t.start {
                            w.shared = total;
                        }
                    }
                }
            }
            Err(e) => {
                // Give the deltas back, to push next time.
                for t in &taken {
                    if let Some(mut c) = self.callers.get_mut(&t.caller) {
                        let w = &mut c.0[t.k];
                        if w.start == t.start {
                            w.shared = w.shared.saturating_sub(t.delta);
                            w.pending = w.pending.saturating_add(t.delta);
                        }
                    }
                }
                return Err(e);
            }
        }

        // Suspensions: Redis is authoritative, unless a local change is
        // still waiting to be pushed.
        let list = r.suspensions().await?;
        if lock(&self.pending).is_empty() {
            self.replace_suspensions(list);
        }
        Ok(())
    }

    /// Runs [`sync`](Self::sync) every `sync_interval` (sooner after a
    /// suspension change) until `shutdown`, then once more.
    pub async fn run_sync(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.sync_interval) => {}
                _ = self.nudge.notified() => {}
                _ = shutdown.changed() => {
                    self.sync().await;
                    return;
                }
            }
            self.sync().await;
        }
    }
}
