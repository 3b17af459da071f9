//! The policy at run time: the compiled [`Policy`] the sessions consult,
//! swapped whole and atomically on reload (SIGHUP, a change to the policy
//! files, or `POST /policy/reload`), plus the learned-allowlist writer.
//!
//! Loading, validating and compiling happen on a blocking thread, never on
//! a session's path; a policy that fails to load leaves the running one in
//! place, logs every diagnostic, counts the failure and keeps the reason for
//! `GET /policy`. Owns no wire protocol.

pub mod learn;
pub mod metrics;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, Guard};
use danxia_policies::{Diagnostics, LoadOptions, Policy};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::config::PolicyConfig;
use crate::pg::session::shutdown_signalled;

/// What the sessions read: one loaded policy and when it was loaded.
pub struct Loaded {
    pub policy: Policy,
    pub loaded_at: SystemTime,
}

/// The running policy and how to reload it.
pub struct PolicyRuntime {
    current: ArcSwap<Loaded>,
    /// `None` when no `[policy]` is configured: nothing to reload.
    opts: Option<LoadOptions>,
    reload_interval: Duration,
    /// Serialises reloads so two triggers never race to swap.
    reloading: tokio::sync::Mutex<()>,
    last_error: Mutex<Option<String>>,
    metrics: metrics::ReloadMetrics,
}

/// `GET /policy`: what is loaded and why the last reload failed, if it did.
#[derive(Debug, Serialize)]
pub struct Status {
    pub configured: bool,
    pub dir: Option<PathBuf>,
    pub version: u64,
    pub rules: usize,
    pub loaded_at_unix: u64,
    pub warnings: Vec<String>,
    pub last_error: Option<String>,
}

impl PolicyRuntime {
    /// Loads the configured policy (or the empty allow-all one). A policy
    /// that does not load stops start-up: danxia never runs with a policy
    /// other than the one the operator wrote.
    pub fn start(config: Option<&PolicyConfig>) -> Result<Arc<Self>, Diagnostics> {
        let opts = config.map(PolicyConfig::load_options);
        let policy = match &opts {
            Some(o) => Policy::load(o)?,
            None => Policy::allow_all(),
        };
        for w in policy.warnings() {
            warn!("policy: {w}");
        }
        let rt = Arc::new(Self {
            current: ArcSwap::from_pointee(Loaded {
                policy,
                loaded_at: SystemTime::now(),
            }),
            opts,
            reload_interval: config.map_or(Duration::ZERO, |c| c.reload_interval),
            reloading: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
            metrics: metrics::ReloadMetrics::new(),
        });
        rt.metrics.loaded(&rt.current.load().policy);
        Ok(rt)
    }

    /// The policy sessions decide with now. Cheap (no lock, no refcount
    /// traffic in the common case).
    pub fn current(&self) -> Guard<Arc<Loaded>> {
        self.current.load()
    }

    /// Re-reads and recompiles the policy files off the async threads and
    /// swaps the result in. On failure the running policy stays.
    pub async fn reload(self: &Arc<Self>, trigger: &'static str) -> Result<u64, String> {
        let Some(opts) = self.opts.clone() else {
            return Err("no [policy] is configured in danxia.toml: nothing to reload".into());
        };
        let _one_at_a_time = self.reloading.lock().await;
        let loaded = tokio::task::spawn_blocking(move || Policy::load(&opts))
            .await
            .map_err(|e| format!("policy loader thread failed: {e}"))?;
        match loaded {
            Ok(policy) => {
                for w in policy.warnings() {
                    warn!("policy: {w}");
                }
                let version = policy.version();
                let rules = policy.rule_count();
                self.metrics.loaded(&policy);
                self.metrics.reload_ok.increment(1);
                self.current.store(Arc::new(Loaded {
                    policy,
                    loaded_at: SystemTime::now(),
                }));
                *lock(&self.last_error) = None;
                info!(trigger, version, rules, "policy reloaded");
                Ok(version)
            }
            Err(diags) => {
                self.metrics.reload_failed.increment(1);
                let text = diags.to_string();
                error!(
                    trigger,
                    "policy reload failed; the previous policy stays in force:\n{text}"
                );
                *lock(&self.last_error) = Some(text.clone());
                Err(text)
            }
        }
    }

    pub fn status(&self) -> Status {
        let cur = self.current();
        Status {
            configured: self.opts.is_some(),
            dir: self.opts.as_ref().map(|o| o.dir.clone()),
            version: cur.policy.version(),
            rules: cur.policy.rule_count(),
            loaded_at_unix: cur
                .loaded_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            warnings: cur
                .policy
                .warnings()
                .iter()
                .map(|w| w.to_string())
                .collect(),
            last_error: lock(&self.last_error).clone(),
        }
    }

    /// Reloads on SIGHUP and whenever the policy files change, until
    /// `shutdown` fires.
    pub fn spawn_watchers(self: &Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        if self.opts.is_none() {
            return;
        }
        let rt = self.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hup = match signal(SignalKind::hangup()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot install the SIGHUP handler; reload with POST /policy/reload");
                    return;
                }
            };
            loop {
                tokio::select! {
                    _ = hup.recv() => { let _ = rt.reload("sighup").await; }
                    _ = shutdown_signalled(&mut stop) => return,
                }
            }
        });
        if self.reload_interval.is_zero() {
            return;
        }
        let rt = self.clone();
        let mut stop = shutdown;
        tokio::spawn(async move {
            let mut seen = rt.files_stamp();
            let mut tick = tokio::time::interval(rt.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown_signalled(&mut stop) => return,
                }
                let rt2 = rt.clone();
                let now = tokio::task::spawn_blocking(move || rt2.files_stamp())
                    .await
                    .unwrap_or_default();
                if now != seen {
                    seen = now;
                    let _ = rt.reload("file change").await;
                }
            }
        });
    }

    /// Names, sizes and modification times of every file the policy is
    /// built from: any difference means something changed. Polling (rather
    /// than inotify) works the same on every file system, including network
    /// and container mounts, at the cost of noticing within one interval.
    fn files_stamp(&self) -> Vec<(PathBuf, u64, u128)> {
        let Some(o) = &self.opts else {
            return Vec::new();
        };
        files_stamp(
            &o.dir,
            o.classification.iter().chain(o.allowlist.iter()).cloned(),
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Names, sizes and modification times of the `*.toml` files in `dir` (in
/// name order) and of `extra`: any difference means something changed.
/// Shared by the SQL policy and the API policies' watchers.
pub fn files_stamp(
    dir: &std::path::Path,
    extra: impl Iterator<Item = PathBuf>,
) -> Vec<(PathBuf, u64, u128)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths.extend(extra);
    paths
        .into_iter()
        .map(|p| {
            let (len, mtime) = std::fs::metadata(&p)
                .map(|m| {
                    let t = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos());
                    (m.len(), t)
                })
                .unwrap_or((u64::MAX, 0));
            (p, len, mtime)
        })
        .collect()
}
