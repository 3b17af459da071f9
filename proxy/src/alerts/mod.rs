//! Alert delivery to the security operations centre (SOC).
//!
//! Owns the path from "danxia raised an alert" to the SOC's endpoints: risk
//! filtering, suppression of repeats (`dedup`), a bounded queue and one
//! background task per sink (`webhook`: JSON POST; `syslog`: RFC 5424 over
//! UDP or TCP), and the alert metrics.
//!
//! Must never slow or block a session: [`Alerts::send`] takes no await, does
//! no I/O and only `try_send`s into bounded queues; a slow or dead endpoint
//! costs retries in the sink's task and then counted drops. Must never log a
//! webhook header value or the webhook URL's path and query (tokens live
//! there); logs name the sink, the endpoint's `host:port`, the rule and the
//! alert id.

mod config;
pub mod dedup;
pub mod recent;
pub(crate) mod syslog;
mod webhook;

pub(crate) use config::split_host_port;
pub use config::{AlertsConfig, Facility, SyslogConfig, SyslogTransport, WebhookConfig};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge};
use tokio::sync::{mpsc, Notify};

use dedup::{Decision, Dedup};

/// How serious an alert is; ordered, so `min_risk` filters by comparison.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    /// The lowercase name, as in the config and the `risk` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }

    /// RFC 5424 severity: low 5 notice, medium 4 warning, high 3 error,
    /// critical 2 critical.
    pub fn syslog_severity(self) -> u8 {
        match self {
            Risk::Low => 5,
            Risk::Medium => 4,
            Risk::High => 3,
            Risk::Critical => 2,
        }
    }
}

/// One alert as the proxy hands it over.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Deduplication key (e.g. "rule-id|identity|table"); alerts with the same
    /// key inside the suppression window are one incident.
    pub key: String,
    /// Metric label (rule ids are a bounded set).
    pub rule: Arc<str>,
    pub risk: Risk,
    /// One human line for syslog MSG and logs: who, what, how much, why.
    pub title: String,
    /// The full alert document: POSTed as the webhook body; its compact JSON is
    /// also carried in syslog MSG after the title. The dispatcher adds the field
    /// "suppressed": N (alerts of this key suppressed since the last one sent)
    /// and "alert_id": a unique id (process-start-hex + "-" + counter) to the
    /// top-level object before sending. A body that is not a JSON object is
    /// wrapped as `{"detail": body}` first.
    pub body: serde_json::Value,
}

/// What [`Alerts::send`] did with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// In at least one sink's queue.
    Queued,
    /// A repeat of its key inside the suppression window; counted only.
    Suppressed,
    /// Every sink queue was full (counted per sink as `dropped`).
    Dropped,
    /// No sink takes it: none configured, or its risk is below `min_risk`.
    Disabled,
}

/// Why alerting could not start, or why one delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The `[alerts]` table is unusable; the message names the key.
    #[error("{0}")]
    Config(String),
    /// `Alerts::start` needs a tokio runtime to spawn the sink tasks.
    #[error("alert sinks must be started inside a tokio runtime")]
    NoRuntime,
    /// The webhook answered with a status that is not 2xx.
    #[error("webhook answered HTTP {status}")]
    WebhookStatus { status: u16 },
    /// The webhook request failed before a status arrived (connect, I/O).
    #[error("webhook request failed: {0}")]
    WebhookRequest(String),
    /// A delivery attempt took longer than its limit.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Resolving, connecting or writing to the syslog collector failed.
    #[error("syslog: {0}")]
    Syslog(#[from] std::io::Error),
}

/// Delivery counts of one sink, as also exported in
/// `danxia_alert_deliveries_total{sink,result}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Alerts delivered.
    pub ok: u64,
    /// Attempts that failed and were retried.
    pub retried: u64,
    /// Alerts given up on (permanent error or retries exhausted).
    pub failed: u64,
    /// Alerts not queued because the queue was full.
    pub dropped: u64,
}

/// A snapshot of the counters of one [`Alerts`] instance, for tests and
/// the admin endpoint (the metrics are process-global; these are not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertStats {
    /// Alerts handed to `send`.
    pub alerts: u64,
    /// Alerts suppressed as repeats.
    pub suppressed: u64,
    pub webhook: Option<SinkStats>,
    pub syslog: Option<SinkStats>,
}

/// An alert after dedup, shared by every sink's queue.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub rule: Arc<str>,
    pub risk: Risk,
    pub key: String,
    pub title: String,
    pub alert_id: String,
    /// The body with "suppressed" and "alert_id" added.
    pub body: serde_json::Value,
    /// When `send` accepted it: the syslog TIMESTAMP.
    pub at: SystemTime,
}

/// Counters of one sink: the exported metric and a local copy for
/// [`AlertStats`].
pub(crate) struct SinkCounters {
    ok: (Counter, AtomicU64),
    retried: (Counter, AtomicU64),
    failed: (Counter, AtomicU64),
    dropped: (Counter, AtomicU64),
}

impl SinkCounters {
    fn new(sink: &'static str) -> Self {
        let c = |result: &'static str| {
            (
                counter!("danxia_alert_deliveries_total", "sink" => sink, "result" => result),
                AtomicU64::new(0),
            )
        };
        SinkCounters {
            ok: c("ok"),
            retried: c("retried"),
            failed: c("failed"),
            dropped: c("dropped"),
        }
    }

    fn bump(c: &(Counter, AtomicU64)) {
        c.0.increment(1);
        c.1.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ok(&self) {
        Self::bump(&self.ok);
    }
    pub fn retried(&self) {
        Self::bump(&self.retried);
    }
    pub fn failed(&self) {
        Self::bump(&self.failed);
    }
    fn dropped(&self) {
        Self::bump(&self.dropped);
    }

    fn snapshot(&self) -> SinkStats {
        SinkStats {
            ok: self.ok.1.load(Ordering::Relaxed),
            retried: self.retried.1.load(Ordering::Relaxed),
            failed: self.failed.1.load(Ordering::Relaxed),
            dropped: self.dropped.1.load(Ordering::Relaxed),
        }
    }
}

/// State shared between `send`, `flush` and one sink's task.
pub(crate) struct SinkShared {
    pub name: &'static str,
    pub counters: SinkCounters,
    /// Alerts queued plus the one being delivered: `flush` waits for 0.
    pending: AtomicUsize,
    pub depth: Gauge,
    idle: Arc<Notify>,
}

impl SinkShared {
    fn new(name: &'static str, idle: Arc<Notify>) -> Self {
        SinkShared {
            name,
            counters: SinkCounters::new(name),
            pending: AtomicUsize::new(0),
            depth: gauge!("danxia_alert_queue_depth", "sink" => name),
            idle,
        }
    }

    /// The sink's task finished one alert, delivered or not.
    pub fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// The receiving end a sink task reads from.
pub(crate) struct SinkQueue {
    pub rx: mpsc::Receiver<Arc<Outgoing>>,
    pub shared: Arc<SinkShared>,
}

impl SinkQueue {
    /// The next alert, or `None` once every `Alerts` handle is gone and the
    /// queue is drained. Updates the depth gauge.
    pub async fn next(&mut self) -> Option<Arc<Outgoing>> {
        let out = self.rx.recv().await;
        self.shared.depth.set(self.rx.len() as f64);
        out
    }
}

struct SinkHandle {
    tx: mpsc::Sender<Arc<Outgoing>>,
    shared: Arc<SinkShared>,
}

struct Inner {
    sinks: Vec<SinkHandle>,
    dedup: Mutex<Dedup>,
    min_risk: Risk,
    idle: Arc<Notify>,
    alerts: AtomicU64,
    suppressed: AtomicU64,
    /// The last alerts raised, for `GET /alerts`.
    recent: recent::Recent,
}

/// Cheap to clone (Arc inside); Send + Sync.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

/// Describes the alert metrics once per process.
fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        describe_counter!(
            "danxia_alerts_total",
            "Alerts raised, by rule and risk, before suppression and min_risk."
        );
        describe_counter!(
            "danxia_alerts_suppressed_total",
            "Alerts suppressed as repeats of an incident within alerts.suppress."
        );
        describe_counter!(
            "danxia_alert_deliveries_total",
            "Alert deliveries by sink and result (ok; retried: one failed attempt; failed: \
             gave up; dropped: queue full)."
        );
        describe_gauge!(
            "danxia_alert_queue_depth",
            "Alerts waiting in a sink's queue."
        );
    });
}

/// The unique part of alert ids for this process: its start (first use)
/// in microseconds since the Unix epoch, hex.
fn process_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        format!("{micros:x}")
    })
}

/// A process-wide id: unique across `Alerts` instances of one process.
fn next_alert_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", process_tag())
}

impl Alerts {
    /// Starts one background task per configured sink (must be called inside a
    /// tokio runtime). Validates the config first: the webhook url must be
    /// http://host:port/path (https is rejected until the TLS step; use an
    /// http relay on loopback meanwhile); the syslog address must parse as
    /// host:port.
    pub fn start(cfg: &AlertsConfig) -> Result<Alerts, AlertError> {
        cfg.validate().map_err(AlertError::Config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AlertError::NoRuntime)?;
        describe();
        let idle = Arc::new(Notify::new());
        let mut sinks = Vec::new();
        if let Some(w) = &cfg.webhook {
            let sink = webhook::WebhookSink::new(w).map_err(AlertError::Config)?;
            let (handle, queue) = Self::queue("webhook", cfg.queue_capacity, &idle);
            runtime.spawn(sink.run(queue));
            sinks.push(handle);
        }
        if let Some(s) = &cfg.syslog {
            let sink = syslog::SyslogSink::new(s);
            let (handle, queue) = Self::queue("syslog", cfg.queue_capacity, &idle);
            runtime.spawn(sink.run(queue));
            sinks.push(handle);
        }
        Ok(Alerts {
            inner: Arc::new(Inner {
                sinks,
                dedup: Mutex::new(Dedup::new(cfg.suppress, cfg.max_keys)),
                min_risk: cfg.min_risk,
                idle,
                alerts: AtomicU64::new(0),
                suppressed: AtomicU64::new(0),
                recent: recent::Recent::default(),
            }),
        })
    }

    fn queue(name: &'static str, capacity: usize, idle: &Arc<Notify>) -> (SinkHandle, SinkQueue) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(SinkShared::new(name, idle.clone()));
        (
            SinkHandle {
                tx,
                shared: shared.clone(),
            },
            SinkQueue { rx, shared },
        )
    }

    /// No sinks: `send` returns Disabled (still counts danxia_alerts_total).
    pub fn disabled() -> Alerts {
        describe();
        Alerts {
            inner: Arc::new(Inner {
                sinks: Vec::new(),
                dedup: Mutex::new(Dedup::new(Duration::ZERO, 1)),
                min_risk: Risk::Low,
                idle: Arc::new(Notify::new()),
                alerts: AtomicU64::new(0),
                suppressed: AtomicU64::new(0),
                recent: recent::Recent::default(),
            }),
        }
    }

    /// Non-blocking: dedup, then try_send to every sink queue.
    pub fn send(&self, alert: Alert) -> Sent {
        // Kept before delivery takes the alert apart; recorded whatever
        // delivery does with it.
        let copy = Alert {
            key: String::new(),
            rule: alert.rule.clone(),
            risk: alert.risk,
            title: alert.title.clone(),
            body: alert.body.clone(),
        };
        let sent = self.send_at(alert, Instant::now());
        self.inner.recent.push(&copy, sent, SystemTime::now());
        sent
    }

    /// Up to `limit` of the last alerts raised, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<recent::RecentAlert>> {
        self.inner.recent.newest(limit)
    }

    fn send_at(&self, alert: Alert, now: Instant) -> Sent {
        let inner = &*self.inner;
        inner.alerts.fetch_add(1, Ordering::Relaxed);
        counter!("danxia_alerts_total", "rule" => alert.rule.clone(), "risk" => alert.risk.as_str())
            .increment(1);
        if inner.sinks.is_empty() || alert.risk < inner.min_risk {
            return Sent::Disabled;
        }
        let decision = inner
            .dedup
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .check(&alert.key, now);
        let suppressed = match decision {
            Decision::Suppress => {
                inner.suppressed.fetch_add(1, Ordering::Relaxed);
                counter!("danxia_alerts_suppressed_total", "rule" => alert.rule).increment(1);
                return Sent::Suppressed;
            }
            Decision::Send { suppressed } => suppressed,
        };
        // Reserve a slot in every queue first: when all are full the alert
        // is dropped without building anything (and without using an id).
        let mut permits = Vec::with_capacity(inner.sinks.len());
        for sink in &inner.sinks {
            match sink.tx.try_reserve() {
                Ok(permit) => permits.push((sink, permit)),
                // Full, or the task is gone: either way not delivered.
                Err(_) => sink.shared.counters.dropped(),
            }
        }
        if permits.is_empty() {
            return Sent::Dropped;
        }
        let alert_id = next_alert_id();
        let mut body = match alert.body {
            serde_json::Value::Object(map) => map,
            other => {
                let mut map = serde_json::Map::new();
                map.insert("detail".into(), other);
                map
            }
        };
        body.insert("suppressed".into(), suppressed.into());
        body.insert("alert_id".into(), alert_id.clone().into());
        let out = Arc::new(Outgoing {
            rule: alert.rule,
            risk: alert.risk,
            key: alert.key,
            title: alert.title,
            alert_id,
            body: serde_json::Value::Object(body),
            at: SystemTime::now(),
        });
        for (sink, permit) in permits {
            sink.shared.pending.fetch_add(1, Ordering::AcqRel);
            permit.send(out.clone());
            let depth = sink.tx.max_capacity() - sink.tx.capacity();
            sink.shared.depth.set(depth as f64);
        }
        Sent::Queued
    }

    /// Waits (up to `timeout`) until every sink queue is empty and in-flight
    /// deliveries finished (used at shutdown and in tests).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            // Register before checking, so a wake-up between the check and
            // the await is not lost.
            notified.as_mut().enable();
            if self
                .inner
                .sinks
                .iter()
                .all(|s| s.shared.pending.load(Ordering::Acquire) == 0)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Counts of this instance (the metrics are process-global).
    pub fn stats(&self) -> AlertStats {
        let mut stats = AlertStats {
            alerts: self.inner.alerts.load(Ordering::Relaxed),
            suppressed: self.inner.suppressed.load(Ordering::Relaxed),
            ..Default::default()
        };
        for s in &self.inner.sinks {
            let snap = Some(s.shared.counters.snapshot());
            match s.shared.name {
                "webhook" => stats.webhook = snap,
                _ => stats.syslog = snap,
            }
        }
        stats
    }
}

/// Delay before retry number `retry` (1-based): `base` doubling, capped.
pub(crate) fn backoff_delay(base: Duration, max: Duration, retry: u32) -> Duration {
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

/// An error with its sources, `: `-joined (hyper's top-level errors alone
/// say little, e.g. "client error (Connect)").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

#[cfg(test)]
mod tests;
