//! One request's record: built as the request is decided, completed when
//! the response has gone out (or the exchange was cut short), then
//! audited, counted against quotas, fed to the caller's behaviour baseline
//! and, when something alerted, sent to the SOC. Owns the completion
//! logic; `Drop` completes an exchange nobody completed, so a client that
//! goes away mid-response is still audited.

use std::sync::Arc;
use std::time::Instant;

use danxia_detectors::baseline::{Assessment, Observation};
use metrics::counter;

use crate::audit::statement::SessionIdentity;
use crate::audit::{AuditEvent, EvidenceOut, Outcome};
use crate::behaviour::who::Who;

use super::inspect::Findings;
use super::HttpCtx;

/// The authenticated caller's policy settings an exchange needs at the end.
#[derive(Debug, Clone, Default)]
pub struct CallerLimits {
    pub quota: Option<super::state::Quota>,
    /// `quota.requests_per_second` (a local rate limit).
    pub rate: Option<u64>,
    pub anomaly: Option<f64>,
    pub block_anomaly: Option<f64>,
}

/// What the baseline is told about the request.
#[derive(Debug, Clone)]
pub struct Observed {
    pub who: Arc<Who>,
    /// Stable hash of method + route id.
    pub fingerprint: u64,
    /// The route template, the baseline's "table".
    pub route: String,
    /// Digest of the path and query values (enumeration).
    pub key_digest: Option<u64>,
}

pub struct Exchange {
    pub hx: Arc<HttpCtx>,
    pub ident: SessionIdentity,
    pub ev: AuditEvent,
    pub started: Instant,
    pub caller: Option<Arc<str>>,
    pub limits: CallerLimits,
    pub observed: Option<Observed>,
    pub done: bool,
}

impl Exchange {
    /// Completes the record: `findings` of the body inspection (if any),
    /// `bytes_out` sent to the client. Returns the events to write (the
    /// request, then its alert if one was raised).
    pub fn complete(
        &mut self,
        outcome: Outcome,
        findings: Option<&Findings>,
        bytes_out: u64,
    ) -> Vec<AuditEvent> {
        self.done = true;
        let hx = self.hx.clone();
        let mut ev = std::mem::take(&mut self.ev);
        ev.outcome = Some(outcome);
        ev.duration_us = Some(self.started.elapsed().as_micros() as u64);
        ev.bytes_out = Some(bytes_out);
        let status = ev.status.unwrap_or(0);
        let ok = (200..300).contains(&status);
        if let Some(f) = findings {
            ev.records = Some(f.records);
            ev.rows = Some(f.records);
            let mut sensitive = std::collections::BTreeMap::new();
            for (k, n) in f.counts.iter() {
                if n > 0 {
                    sensitive.insert(k.tag(), n);
                }
            }
            if !sensitive.is_empty() {
                for (tag, n) in &sensitive {
                    hx.metrics.sensitive(tag, "clear", u64::from(*n));
                }
                ev.sensitive = Some(sensitive);
            }
            for (k, n) in f.masked_counts.iter() {
                if n > 0 {
                    hx.metrics.sensitive(k.tag(), "masked", u64::from(n));
                }
            }
            if f.masked > 0 {
                ev.masked = Some(f.masked);
                ev.masked_fields = f.masked_paths.clone();
            }
            if f.removed > 0 {
                ev.removed = Some(f.removed);
                ev.removed_fields = f.removed_paths.clone();
            }
        }
        let records = if ok { ev.records.unwrap_or(0) } else { 0 };
        let now = super::unix_now();
        if let Some(c) = &self.caller {
            if records > 0 && self.limits.quota.is_some() {
                hx.state.add_records(c, records, now, hx.utc_offset(now));
            }
        }
        hx.metrics.finished(&ev, records);
        self.observe(&mut ev, records);
        let mut out = Vec::with_capacity(2);
        let alert =
            (!ev.alerts.is_empty()).then(|| crate::alerting::raise(&hx.lx, &self.ident, &ev));
        out.push(ev);
        out.extend(alert);
        out
    }

    /// Feeds the baseline and acts on the caller's anomaly thresholds.
    fn observe(&mut self, ev: &mut AuditEvent, records: u64) {
        let (Some(b), Some(o)) = (&self.hx.lx.behaviour, &self.observed) else {
            return;
        };
        ev.identity = Some(o.who.key.clone());
        let now = b.clock.now();
        let mut sensitive: Vec<(&'static str, u64)> = Vec::new();
        if let Some(m) = &ev.sensitive {
            for (k, n) in m {
                sensitive.push((k, u64::from(*n)));
            }
        }
        let tables = [o.route.clone()];
        let status = ev.status.unwrap_or(0);
        let error = (400..500).contains(&status);
        let obs = Observation {
            at: now,
            utc_offset: b.clock.offset(now),
            fingerprint: o.fingerprint,
            tables: &tables,
            rows: records,
            bytes: ev.bytes_out.unwrap_or(0),
            sensitive: &sensitive,
            key_digest: o.key_digest,
            error,
        };
        let a: Assessment = b.registry.observe(&o.who, &obs);
        if a.score >= 1.0 || !a.evidence.is_empty() {
            ev.score = Some(crate::behaviour::round2(a.score));
            ev.evidence = a.evidence.iter().map(EvidenceOut::from).collect();
        }
        if a.learning {
            ev.learning = Some(true);
        }
        let Some(caller) = &self.caller else { return };
        if let Some(t) = self.limits.anomaly {
            if a.score >= t {
                counter!("danxia_behaviour_anomalies_total", "rule" => "api.anomaly").increment(1);
                let id: Arc<str> = Arc::from("api.anomaly");
                if !ev.alerts.contains(&id) {
                    ev.alerts.push(id);
                }
            }
        }
        if let Some(t) = self.limits.block_anomaly {
            if a.score >= t {
                counter!("danxia_behaviour_anomalies_total", "rule" => "api.block-anomaly")
                    .increment(1);
                let top = a
                    .evidence
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                let reason = format!(
                    "anomaly score {:.1} reached block_anomaly {t}: {top}",
                    a.score
                );
                if self
                    .hx
                    .state
                    .suspend(caller, reason, "danxia (block_anomaly)".into())
                {
                    ev.actions.push("suspend");
                    let id: Arc<str> = Arc::from("api.block-anomaly");
                    if !ev.alerts.contains(&id) {
                        ev.alerts.push(id);
                    }
                }
            }
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The client went away (or the response future was dropped)
        // before the exchange completed: audit what is known.
        let events = self.complete(Outcome::Aborted, None, 0);
        let auditor = self.hx.lx.auditor.clone();
        for ev in events {
            let _ = auditor.try_record(ev);
        }
    }
}

/// Writes events, waiting for queue space when `audit.on_full = "block"`.
pub async fn record_all(auditor: &crate::audit::Auditor, events: Vec<AuditEvent>) {
    for ev in events {
        // The writer counts and logs its own failures.
        let _ = auditor.record(ev).await;
    }
}
