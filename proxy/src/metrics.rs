//! Prometheus metrics: the recorder, the names, and per-listener handles.
//!
//! Handles are resolved once per listener (or lazily once per label set) so
//! that the hot path increments an atomic instead of hashing label sets.
//! Label values come only from bounded sets (listener names from the config,
//! operation kinds, outcomes, error kinds) — never a user, address or SQL.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use danxia_detectors::Operation;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::audit::Outcome;
use crate::results::Summary;
use danxia_detectors::pii::Kind;

/// Histogram buckets for statement duration and proxy-added time (seconds):
/// 10 µs .. 60 s, dense where a proxy's own cost lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram samples are folded into buckets when nobody scrapes,
/// which bounds the memory held by unscraped samples.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the global Prometheus recorder and describes every metric.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .install_recorder()?;
    describe();
    gauge!("danxia_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn describe() {
    crate::tls::describe_metrics();
    describe_counter!(
        "danxia_sensitive_values_total",
        "Sensitive values (by classification tag) returned to clients in the clear, in scanned result rows."
    );
    describe_counter!(
        "danxia_result_rows_scanned_total",
        "Result rows scanned for sensitive values (see data.scan)."
    );
    describe_counter!(
        "danxia_result_rows_unscanned_total",
        "Result rows too large to inspect (data.max_inspected_row_bytes), streamed unscanned."
    );
    describe_counter!(
        "danxia_masked_values_total",
        "Result cells rewritten by a mask rule."
    );
    describe_counter!(
        "danxia_result_limits_total",
        "Results that reached a `returned` limit, by rule and action (cut: withheld; alert)."
    );
    describe_gauge!(
        "danxia_build_info",
        "Build information; the value is always 1."
    );
    describe_gauge!("danxia_connections_active", "Client connections open now.");
    describe_counter!("danxia_connections_total", "Client connections accepted.");
    describe_counter!(
        "danxia_connections_rejected_total",
        "Client connections refused (reason: max_connections)."
    );
    describe_counter!(
        "danxia_statements_total",
        "Statements completed, by operation kind and outcome."
    );
    describe_histogram!(
        "danxia_statement_duration_seconds",
        Unit::Seconds,
        "Time from a statement reaching the proxy to its completion from the backend."
    );
    describe_histogram!(
        "danxia_proxy_added_seconds",
        Unit::Seconds,
        "Time the proxy itself spends between reading bytes and having written them on."
    );
    describe_counter!(
        "danxia_client_bytes_total",
        Unit::Bytes,
        "Bytes from (in) and to (out) clients."
    );
    describe_counter!(
        "danxia_backend_bytes_total",
        Unit::Bytes,
        "Bytes from (in) and to (out) backends."
    );
    describe_counter!(
        "danxia_protocol_errors_total",
        "Sessions ended by a protocol error, by kind."
    );
    describe_counter!(
        "danxia_auth_failures_total",
        "Authentications the backend rejected."
    );
    describe_counter!(
        "danxia_backend_connect_failures_total",
        "Failed attempts to connect to a backend, by reason (refused: the connection failed; timeout: no TCP connection within limits.backend_connect_timeout; silent: connected, but the server sent nothing within limits.backend_connect_timeout)."
    );
    describe_counter!(
        "danxia_backend_lost_total",
        "Sessions whose backend connection was closed by the server or failed after startup (server terminated or restarted, host crashed, network cut)."
    );
    describe_counter!(
        "danxia_orphaned_queries_total",
        "Statements still running on the backend when their session ended, which danxia stopped (PostgreSQL: a CancelRequest; MySQL: the backend connection closed), by reason (client_gone, killed, error)."
    );
    describe_gauge!(
        "danxia_backend_up",
        "1 when the last /readyz probe reached every backend of the listener, 0 otherwise."
    );
    describe_counter!(
        "danxia_cancel_requests_total",
        "CancelRequests received (forwarded to a backend, or unknown key)."
    );
    describe_counter!(
        "danxia_audit_events_written_total",
        "Audit events written to disk."
    );
    describe_counter!(
        "danxia_audit_events_dropped_total",
        "Audit events dropped because the queue was full (audit.on_full = \"drop\")."
    );
    describe_counter!(
        "danxia_audit_write_failures_total",
        "Failed audit write attempts."
    );
    describe_gauge!(
        "danxia_audit_queue_depth",
        "Audit events waiting to be written."
    );
    describe_gauge!(
        "danxia_audit_healthy",
        "1 while audit writes succeed, 0 while they fail."
    );
    describe_counter!(
        "danxia_sql_analysis_cache_total",
        "SQL analysis lookups by result (hit: served from the fingerprint cache)."
    );
    describe_counter!(
        "danxia_sql_parse_failures_total",
        "Statements the SQL analyser could not parse (audited with parse_error)."
    );
}

const OUTCOMES: [Outcome; 4] = [
    Outcome::Ok,
    Outcome::Error,
    Outcome::Refused,
    Outcome::Aborted,
];

fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Error => "error",
        Outcome::Refused => "refused",
        Outcome::Aborted => "aborted",
    }
}

/// Handles for one listener's series.
pub struct ListenerMetrics {
    name: Arc<str>,
    pub connections_active: Gauge,
    pub connections_total: Counter,
    pub rejected_max_connections: Counter,
    pub client_in: Counter,
    pub client_out: Counter,
    pub backend_in: Counter,
    pub backend_out: Counter,
    pub statement_duration: Histogram,
    pub proxy_added: Histogram,
    pub auth_failures: Counter,
    /// Connect failures: the TCP connection failed.
    pub backend_connect_failures: Counter,
    /// Connect failures: no TCP connection within the timeout.
    pub backend_connect_timeouts: Counter,
    /// Connect failures: connected, but no first message from the server.
    pub backend_silent: Counter,
    /// Backend connections lost after startup.
    pub backend_lost: Counter,
    pub cancel_forwarded: Counter,
    /// Backend queries cancelled because a limit cut their result.
    pub cut_cancels: Counter,
    pub cancel_unknown: Counter,
    statements: Vec<[OnceLock<Counter>; 4]>,
    /// Sensitive values returned in the clear, by kind (resolved lazily).
    sensitive: [OnceLock<Counter>; Kind::COUNT],
    pub scanned_rows: Counter,
    pub unscanned_rows: Counter,
    pub masked_values: Counter,
}

impl ListenerMetrics {
    pub fn new(listener: &str) -> Self {
        let l = listener.to_string();
        Self {
            name: Arc::from(listener),
            connections_active: gauge!("danxia_connections_active", "listener" => l.clone()),
            connections_total: counter!("danxia_connections_total", "listener" => l.clone()),
            rejected_max_connections: counter!("danxia_connections_rejected_total", "listener" => l.clone(), "reason" => "max_connections"),
            client_in: counter!("danxia_client_bytes_total", "listener" => l.clone(), "direction" => "in"),
            client_out: counter!("danxia_client_bytes_total", "listener" => l.clone(), "direction" => "out"),
            backend_in: counter!("danxia_backend_bytes_total", "listener" => l.clone(), "direction" => "in"),
            backend_out: counter!("danxia_backend_bytes_total", "listener" => l.clone(), "direction" => "out"),
            statement_duration: histogram!("danxia_statement_duration_seconds", "listener" => l.clone()),
            proxy_added: histogram!("danxia_proxy_added_seconds", "listener" => l.clone()),
            auth_failures: counter!("danxia_auth_failures_total", "listener" => l.clone()),
            backend_connect_failures: counter!("danxia_backend_connect_failures_total", "listener" => l.clone(), "reason" => "refused"),
            backend_connect_timeouts: counter!("danxia_backend_connect_failures_total", "listener" => l.clone(), "reason" => "timeout"),
            backend_silent: counter!("danxia_backend_connect_failures_total", "listener" => l.clone(), "reason" => "silent"),
            backend_lost: counter!("danxia_backend_lost_total", "listener" => l.clone()),
            cancel_forwarded: counter!("danxia_cancel_requests_total", "listener" => l.clone(), "result" => "forwarded"),
            cut_cancels: counter!("danxia_cancel_requests_total", "listener" => l.clone(), "result" => "cut"),
            cancel_unknown: counter!("danxia_cancel_requests_total", "listener" => l, "result" => "unknown_key"),
            statements: Operation::ALL.iter().map(|_| Default::default()).collect(),
            sensitive: Default::default(),
            scanned_rows: counter!("danxia_result_rows_scanned_total", "listener" => listener.to_string()),
            unscanned_rows: counter!("danxia_result_rows_unscanned_total", "listener" => listener.to_string()),
            masked_values: counter!("danxia_masked_values_total", "listener" => listener.to_string()),
        }
    }

    /// Counts what one statement's result returned, masked and tripped.
    pub fn result_summary(&self, s: &Summary) {
        for (kind, n) in s.counts.iter() {
            if n == 0 {
                continue;
            }
            if let Some(c) = self.sensitive.get(kind.index()) {
                c.get_or_init(|| {
                    counter!("danxia_sensitive_values_total",
                        "listener" => self.name.to_string(),
                        "tag" => kind.tag())
                })
                .increment(u64::from(n));
            }
        }
        self.scanned_rows.increment(s.scanned_rows);
        self.unscanned_rows.increment(s.unscanned_rows);
        self.masked_values.increment(s.masked);
        for l in s.cut.iter().chain(&s.reached) {
            counter!("danxia_result_limits_total",
                "listener" => self.name.to_string(),
                "rule" => l.rule_id.to_string(),
                "action" => if l.block { "cut" } else { "alert" })
            .increment(1);
        }
    }

    /// Counts one completed statement.
    pub fn statement(&self, op: Operation, outcome: Outcome) {
        let oi = op as usize;
        let ui = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0);
        if let Some(row) = self.statements.get(oi) {
            row[ui]
                .get_or_init(|| {
                    counter!("danxia_statements_total",
                        "listener" => self.name.to_string(),
                        "operation" => op.as_str(),
                        "outcome" => outcome_label(outcome))
                })
                .increment(1);
        }
    }

    /// Counts a statement left running by a session that ended (`reason`:
    /// client_gone, killed, error — a bounded set) and that danxia stopped.
    pub fn orphaned_query(&self, reason: &'static str) {
        counter!("danxia_orphaned_queries_total", "listener" => self.name.to_string(), "reason" => reason)
            .increment(1);
    }

    /// Counts a session ended by a protocol error of `kind` (a bounded set,
    /// see `SessionError::protocol_kind`). Rare, so resolved per call.
    pub fn protocol_error(&self, kind: &'static str) {
        counter!("danxia_protocol_errors_total", "listener" => self.name.to_string(), "kind" => kind)
            .increment(1);
    }
}
