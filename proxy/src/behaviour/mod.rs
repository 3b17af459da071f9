//! Behaviour baselines in the proxy: who each session is (user ×
//! application × client network), what that identity normally does (the
//! engine in `danxia_detectors::baseline`), and what rules with `anomaly`,
//! `window`, `throttle` and `quarantine` do about it. Sessions call
//! [`SessionBehaviour::before`] with each decided statement (quarantine,
//! exhausted windows and pre-run anomaly refusals, mid-stream cuts derived
//! from the baseline, throttling) and [`SessionBehaviour::after`] with each
//! completed one (observe, score, alerts, follow-ups), both without I/O;
//! state reaches the store from a background task.
//!
//! Knows nothing of wire protocols; must never block a session on the
//! store, and never let a hostile client grow state without bound (the
//! registry, window counters and gate are all capped).

pub mod clock;
pub mod config;
pub mod gate;
pub mod registry;
pub mod store;
pub mod who;
pub mod windows;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use danxia_detectors::baseline::{Assessment, Observation};
use danxia_detectors::StatementFacts;
use danxia_policies::{Action, Counted, Decision, FollowUp, Limit};
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::audit::{AuditEvent, EvidenceOut, Outcome};
use crate::results::Summary;
pub use clock::Clock;
pub use config::{BehaviourConfig, StoreKind};
pub use gate::{Gate, Quarantined};
pub use registry::{Registry, StoredProfile};
pub use store::{Snapshot, Store, StoreError};
pub use who::Who;

/// Metrics of the behaviour layer.
struct Metrics {
    observed: Counter,
    score: Histogram,
    identities: Gauge,
    quarantined: Gauge,
    throttled: Gauge,
    saves_ok: Counter,
    saves_failed: Counter,
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            observed: counter!("danxia_behaviour_statements_observed_total"),
            score: histogram!("danxia_behaviour_anomaly_score"),
            identities: gauge!("danxia_behaviour_identities"),
            quarantined: gauge!("danxia_behaviour_quarantined_identities"),
            throttled: gauge!("danxia_behaviour_throttled_identities"),
            saves_ok: counter!("danxia_behaviour_store_saves_total", "result" => "ok"),
            saves_failed: counter!("danxia_behaviour_store_saves_total", "result" => "failed"),
        }
    }
}

/// Pending changes to the quarantine list for a shared (Redis) store.
enum QuarantineOp {
    Set(Quarantined),
    Del(String),
}

/// The proxy-wide behaviour service.
pub struct Behaviour {
    pub config: BehaviourConfig,
    pub clock: Clock,
    pub registry: Registry,
    pub gate: Gate,
    pub windows: windows::Windows,
    pub store: Store,
    metrics: Metrics,
    pending: Mutex<Vec<QuarantineOp>>,
    /// The quarantine list changed since the last disk save.
    gate_changed: std::sync::atomic::AtomicBool,
    nudge: Notify,
}

impl Behaviour {
    /// Builds the service and loads what the store holds. A store that
    /// cannot be read is an error (the operator must decide: move the
    /// file aside or fix Redis), not a silent fresh start.
    pub async fn start(config: BehaviourConfig) -> Result<Arc<Behaviour>, StoreError> {
        let store = match config.store {
            StoreKind::Memory => Store::Memory,
            StoreKind::Disk => Store::disk(&config.dir),
            StoreKind::Redis => Store::redis(&config.redis_url, &config.redis_prefix)?,
        };
        let clock = Clock::new(config.clock.as_ref(), &config.timezone);
        let registry = Registry::new(
            config.engine(),
            config.max_identities,
            config.new_network_score,
            config.new_application_score,
        );
        let b = Arc::new(Behaviour {
            clock,
            registry,
            gate: Gate::default(),
            windows: windows::Windows::default(),
            store,
            metrics: Metrics::new(),
            pending: Mutex::new(Vec::new()),
            gate_changed: false.into(),
            nudge: Notify::new(),
            config,
        });
        let snap = b.store.load().await?;
        let n = snap.profiles.len();
        b.registry
            .import(snap.profiles, snap.population, b.clock.now());
        b.gate.replace(snap.quarantine);
        b.update_gauges();
        info!(
            store = %b.store.describe(),
            identities = n,
            quarantined = b.gate.list().len(),
            scaled_clock = b.clock.is_scaled(),
            "behaviour baselines loaded"
        );
        Ok(b)
    }

    fn update_gauges(&self) {
        self.metrics.identities.set(self.registry.len() as f64);
        self.metrics.quarantined.set(self.gate.list().len() as f64);
        self.metrics
            .throttled
            .set(self.gate.throttled_count() as f64);
    }

    /// The identity of a session.
    pub fn who(&self, user: &str, application: &str, address: Option<IpAddr>) -> Who {
        Who::new(
            user,
            application,
            address,
            self.config.network_prefix_v4,
            self.config.network_prefix_v6,
        )
    }

    /// Quarantines `who` (audited by the caller's event; alerted by its
    /// rule). With a shared store the list reaches the other instances.
    pub fn quarantine(&self, who: &Who, rule: &str, reason: String) -> bool {
        let q = Quarantined {
            identity: who.key.to_string(),
            rule: rule.to_string(),
            since: gate::unix_now(),
            reason,
        };
        if !self.gate.quarantine(q.clone()) {
            return false;
        }
        counter!("danxia_behaviour_quarantines_total", "rule" => rule.to_string()).increment(1);
        warn!(identity = %who.key, rule, "identity quarantined");
        if self.store.is_redis() {
            self.lock_pending().push(QuarantineOp::Set(q));
        }
        self.gate_changed
            .store(true, std::sync::atomic::Ordering::Release);
        self.nudge.notify_one();
        true
    }

    /// Releases a quarantined identity.
    pub fn release(&self, identity: &str) -> Option<Quarantined> {
        let q = self.gate.release(identity)?;
        info!(identity, rule = %q.rule, "identity released from quarantine");
        counter!("danxia_behaviour_releases_total").increment(1);
        if self.store.is_redis() {
            self.lock_pending()
                .push(QuarantineOp::Del(identity.to_string()));
        }
        self.gate_changed
            .store(true, std::sync::atomic::Ordering::Release);
        self.nudge.notify_one();
        Some(q)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<QuarantineOp>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn throttle(&self, who: &Who, rule: &str) {
        self.gate.throttle(&who.key, self.config.throttle_for);
        counter!("danxia_behaviour_throttles_total", "rule" => rule.to_string()).increment(1);
    }

    /// One sync: pending quarantine changes, then profiles (all for a disk
    /// snapshot, changed ones for Redis), then (Redis) what others wrote.
    pub async fn sync(&self, pulled_until: &mut f64) {
        let ops: Vec<QuarantineOp> = std::mem::take(&mut *self.lock_pending());
        let mut failed = false;
        for op in ops {
            let r = match &op {
                QuarantineOp::Set(q) => self.store.quarantine_set(q).await,
                QuarantineOp::Del(k) => self.store.quarantine_del(k).await,
            };
            if let Err(e) = r {
                warn!(error = %e, "behaviour: cannot share a quarantine change; retrying at the next sync");
                self.lock_pending().push(op);
                failed = true;
            }
        }
        let redis = self.store.is_redis();
        let changed = self.registry.export(true);
        let gate_changed = self
            .gate_changed
            .swap(false, std::sync::atomic::Ordering::AcqRel);
        if !changed.is_empty() || (gate_changed && !redis) {
            // A disk snapshot is whole; Redis takes what changed.
            let profiles = if redis {
                changed
            } else {
                self.registry.export(false)
            };
            let snap = Snapshot {
                version: 1,
                saved_at: gate::unix_now(),
                profiles,
                population: Some(self.registry.population()),
                quarantine: self.gate.list(),
            };
            match self.store.save(snap).await {
                Ok(()) => self.metrics.saves_ok.increment(1),
                Err(e) => {
                    self.metrics.saves_failed.increment(1);
                    warn!(error = %e, "behaviour: cannot save baselines");
                    self.gate_changed
                        .store(true, std::sync::atomic::Ordering::Release);
                    failed = true;
                }
            }
        }
        if redis && !failed {
            match self.store.pull_since(*pulled_until).await {
                Ok((profiles, next)) => {
                    self.registry.import(profiles, None, self.clock.now());
                    *pulled_until = next;
                }
                Err(e) => warn!(error = %e, "behaviour: cannot read shared baselines"),
            }
            match self.store.quarantine_list().await {
                Ok(list) if self.lock_pending().is_empty() => self.gate.replace(list),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "behaviour: cannot read the shared quarantine list"),
            }
        }
        self.update_gauges();
    }

    /// Runs [`Behaviour::sync`] every `sync_interval` (sooner after a
    /// quarantine change) until `shutdown`, then once more.
    pub async fn run_sync(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut pulled = gate::unix_now() as f64;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.sync_interval) => {}
                _ = self.nudge.notified() => {}
                _ = shutdown.changed() => {
                    self.sync(&mut pulled).await;
                    return;
                }
            }
            self.sync(&mut pulled).await;
        }
    }
}

/// A session's view: its identity (kept current when the user, database
/// or application changes) and the service. Shared by the session's two
/// directions (the client side decides, the server side completes).
pub struct SessionBehaviour {
    pub service: Arc<Behaviour>,
    who: Mutex<Arc<Who>>,
    address: Option<IpAddr>,
}

impl SessionBehaviour {
    pub fn new(
        service: Arc<Behaviour>,
        user: &str,
        application: &str,
        address: Option<IpAddr>,
    ) -> SessionBehaviour {
        let who = Arc::new(service.who(user, application, address));
        SessionBehaviour {
            service,
            who: Mutex::new(who),
            address,
        }
    }

    pub fn who(&self) -> Arc<Who> {
        self.who.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The user or application changed.
    pub fn set(&self, user: &str, application: &str) {
        let mut w = self.who.lock().unwrap_or_else(|p| p.into_inner());
        if &*w.user != user || &*w.application != application {
            *w = Arc::new(self.service.who(user, application, self.address));
        }
    }

    /// Before a decided statement runs: the decision as the behaviour
    /// layer amends it, and whether to delay it (throttled identity).
    pub fn before(&self, facts: &StatementFacts, d: Arc<Decision>) -> (Arc<Decision>, bool) {
        let b = &*self.service;
        let who = self.who();
        if let Some(q) = b.gate.quarantined(&who.key) {
            counter!("danxia_behaviour_refused_total", "reason" => "quarantine").increment(1);
            let mut c = (*d).clone();
            c.block = true;
            c.action = Action::Quarantine;
            c.rule_id = Arc::from(q.rule.as_str());
            c.message = Arc::from(format!(
                "identity {} is quarantined (since unix time {}); a security officer must release it",
                who.key, q.since
            ));
            c.limits.clear();
            c.anomaly.clear();
            c.follow_ups.clear();
            c.masks = None;
            return (Arc::new(c), false);
        }
        let throttled = b.gate.throttled(&who.key);
        if d.block
            || (d.anomaly.iter().all(|a| !a.block) && d.limits.iter().all(|l| l.window.is_none()))
        {
            return (d, throttled);
        }
        let now = b.clock.now();
        let mut c = (*d).clone();
        let mut refuse: Option<(Arc<str>, String)> = None;
        for l in c.limits.iter_mut() {
            let Some(w) = l.window else { continue };
            let cur = b
                .windows
                .current(&l.rule_id, &who.key, w, now)
                .get(l.counted);
            if l.block && cur >= l.threshold && refuse.is_none() {
                refuse = Some((
                    l.rule_id.clone(),
                    format!(
                        "{} (this identity already has {cur} {} of {} in the current {w} s window)",
                        l.message,
                        l.counted.name(),
                        l.threshold
                    ),
                ));
            }
            l.already = cur;
        }
        if refuse.is_none() {
            let blocking: Vec<_> = c.anomaly.iter().filter(|a| a.block).cloned().collect();
            if !blocking.is_empty() {
                let offset = b.clock.offset(now);
                let key = None; // the values are not known before Bind/Execute everywhere
                if let Some(p) = b.registry.preview(&who, now, offset, facts, key) {
                    for a in &blocking {
                        if p.score >= a.threshold() {
                            let top = p
                                .evidence
                                .first()
                                .map(|e| e.to_string())
                                .unwrap_or_default();
                            refuse = Some((
                                a.rule_id.clone(),
                                format!("{} (anomaly score {:.1}: {top})", a.message, p.score),
                            ));
                            break;
                        }
                    }
                }
                if refuse.is_none() {
                    // Idempotent: a statement amended before (at Parse) is
                    // amended again at each execution.
                    c.limits.retain(|l| {
                        !(l.window.is_none()
                            && l.counted == Counted::Rows
                            && blocking.iter().any(|a| a.rule_id == l.rule_id))
                    });
                    for a in &blocking {
                        if let Some(n) =
                            b.registry
                                .rows_for_score(&who, &facts.tables, a.threshold(), now)
                        {
                            c.limits.push(Limit {
                                rule_id: a.rule_id.clone(),
                                counted: Counted::Rows,
                                threshold: n.max(1),
                                window: None,
                                already: 0,
                                block: true,
                                follow_up: a.follow_up,
                                message: a.message.clone(),
                            });
                        }
                    }
                }
            }
        }
        if let Some((rule, message)) = refuse {
            counter!("danxia_behaviour_refused_total", "reason" => "rule").increment(1);
            c.block = true;
            c.action = Action::Deny;
            c.rule_id = rule;
            c.message = Arc::from(message);
        }
        (Arc::new(c), throttled)
    }

    /// How long a throttled identity waits before each statement.
    pub fn delay(&self) -> Duration {
        self.service.config.throttle_delay
    }

    /// After a statement completed (or failed): observes it, scores it,
    /// applies `anomaly` and `window` rules and follow-ups, and writes the
    /// behaviour fields into its audit event.
    pub fn after(
        &self,
        stmt: Option<&crate::analysis::Statement>,
        ev: &mut AuditEvent,
        summary: Option<&Summary>,
        values: Option<u64>,
    ) {
        let b = &*self.service;
        let who = self.who();
        ev.identity = Some(who.key.clone());
        let Some(s) = stmt else { return };
        let Some(j) = &s.judgement else { return };
        let d = &j.decision;
        let cut = summary.and_then(|x| x.cut.as_ref());
        let ran = match ev.outcome {
            Some(Outcome::Refused) => cut.is_some(),
            Some(Outcome::Ok) | Some(Outcome::Error) => true,
            _ => false,
        };
        if !ran {
            // Not run, so nothing to learn from; but a deciding
            // `quarantine` rule refused it, and quarantines.
            for (rule, f) in &d.follow_ups {
                if *f == FollowUp::Quarantine
                    && b.quarantine(
                        &who,
                        rule,
                        format!("rule {rule} matched; statement {}", s.facts.fingerprint),
                    )
                {
                    push_action(ev, "quarantine");
                    push_unique(&mut ev.alerts, rule);
                }
            }
            return;
        }
        let now = b.clock.now();
        // What reached the client: a cut result counts up to its cut.
        let rows = match (cut, summary) {
            (Some(_), Some(sum)) => sum.rows,
            _ => ev.rows.or(summary.map(|x| x.rows)).unwrap_or(0),
        };
        let mut sensitive: Vec<(&'static str, u64)> = Vec::new();
        if let Some(sum) = summary {
            for (k, n) in sum.counts.iter() {
                if n > 0 {
                    sensitive.push((k.tag(), u64::from(n)));
                }
            }
        }
        // Bound values when it had them, else its literals.
        let key_digest = values.or(s.values);
        // The caller's failure: refused, or SQL class 42 (syntax error or
        // access rule violation: insufficient privilege, undefined table or
        // column) — a burst of them is probing. Other errors (serialization,
        // disk full, …) are the server's, not the caller's.
        let error = matches!(ev.outcome, Some(Outcome::Refused))
            || ev.sqlstate.as_deref().is_some_and(|c| c.starts_with("42"));
        let obs = Observation {
            at: now,
            utc_offset: b.clock.offset(now),
            fingerprint: s.facts.fingerprint.0,
            tables: &s.facts.tables,
            rows,
            bytes: ev.bytes_out.unwrap_or(0),
            sensitive: &sensitive,
            key_digest,
            error,
        };
        let a: Assessment = b.registry.observe(&who, &obs);
        b.metrics.observed.increment(1);
        b.metrics.score.record(a.score);
        if a.score >= 1.0 || !a.evidence.is_empty() {
            ev.score = Some(round2(a.score));
            ev.evidence = a.evidence.iter().map(EvidenceOut::from).collect();
        }
        if a.learning {
            ev.learning = Some(true);
        }
        let mut follow: Vec<(Arc<str>, FollowUp, String)> = Vec::new();
        for r in &d.anomaly {
            if a.score >= r.threshold() {
                counter!("danxia_behaviour_anomalies_total", "rule" => r.rule_id.to_string())
                    .increment(1);
                push_unique(&mut ev.alerts, &r.rule_id);
                let top = a
                    .evidence
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                follow.push((
                    r.rule_id.clone(),
                    r.follow_up,
                    format!("anomaly score {:.1}: {top}", a.score),
                ));
            }
        }
        // Window rules: add this statement once per rule, then compare.
        let mut totals: Vec<(&Arc<str>, windows::Count)> = Vec::new();
        for l in d.limits.iter().filter(|l| l.window.is_some()) {
            let w = l.window.unwrap_or(1);
            let total = match totals.iter().find(|(r, _)| *r == &l.rule_id) {
                Some((_, c)) => c.get(l.counted),
                None => {
                    let c = b
                        .windows
                        .add(&l.rule_id, &who.key, w, now, rows, 1, &sensitive);
                    let t = c.get(l.counted);
                    totals.push((&l.rule_id, c));
                    t
                }
            };
            if total >= l.threshold
                && b.windows
                    .report_once(&l.rule_id, &who.key, w, now, l.counted)
            {
                push_unique(&mut ev.alerts, &l.rule_id);
                follow.push((
                    l.rule_id.clone(),
                    l.follow_up,
                    format!(
                        "{total} {} in the current {w} s window (limit {})",
                        l.counted.name(),
                        l.threshold
                    ),
                ));
            }
        }
        if let Some(l) = cut {
            if l.follow_up != FollowUp::None {
                follow.push((
                    l.rule_id.clone(),
                    l.follow_up,
                    format!("result reached {} {}", l.threshold, l.counted.name()),
                ));
            }
        }
        for (rule, f) in &d.follow_ups {
            follow.push((rule.clone(), *f, format!("rule {rule} matched")));
        }
        for (rule, f, why) in follow {
            match f {
                FollowUp::None => {}
                FollowUp::Throttle => {
                    b.throttle(&who, &rule);
                    push_action(ev, "throttle");
                }
                FollowUp::Quarantine => {
                    let reason = format!("{why}; statement {}", s.facts.fingerprint);
                    if b.quarantine(&who, &rule, reason) {
                        push_action(ev, "quarantine");
                        push_unique(&mut ev.alerts, &rule);
                    }
                }
            }
        }
        if cut.is_some() {
            push_action(ev, "cut");
        }
    }
}

fn push_unique(v: &mut Vec<Arc<str>>, id: &Arc<str>) {
    if !v.contains(id) {
        v.push(id.clone());
    }
}

fn push_action(ev: &mut AuditEvent, a: &'static str) {
    if !ev.actions.contains(&a) {
        ev.actions.push(a);
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
