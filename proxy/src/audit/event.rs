//! The audit event: one per statement, per session start/end, per auth
//! failure and per protocol error. This module owns the record's shape only;
//! chaining, writing and verifying live in the sibling modules.
//!
//! Field order is part of the on-disk format (the hash chain covers the exact
//! bytes), so add fields at the end and never reorder them.

use std::sync::Arc;

use serde::Serialize;

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SessionStart,
    SessionEnd,
    AuthFailure,
    Statement,
    ProtocolError,
    /// Written by the audit writer itself when it recovers a torn tail or
    /// starts a new chain; never by a session.
    AuditRecovery,
    /// A policy rule raised an alert about the statement recorded just
    /// before it (same session and fingerprint).
    Alert,
    /// One HTTP request through an `http` listener (API data sharing).
    Request,
    /// An operator's emergency action (suspend / resume an API caller).
    Admin,
}

/// How a statement (or session) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The backend answered with an ErrorResponse; `sqlstate` says which.
    Error,
    /// The proxy refused it (protocol violation, limit exceeded, policy).
    Refused,
    /// The session ended before the statement completed.
    Aborted,
}

/// One audit record as the sessions hand it to the writer. Session-constant
/// fields are `Arc<str>` so that building one event per statement clones
/// pointers, not strings.
/// The writer adds
/// `seq`, `ts`, `prev` and `hash` around it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditEvent {
    pub kind: Option<EventKind>,
    /// Proxy-wide unique session id (monotonic per process start, prefixed
    /// with the process start time so ids never repeat across restarts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
    /// Client socket address, `ip:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<Arc<str>>,
    /// Statement text as configured by `audit.statement_text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// 16 hex digits, stable across whitespace, comments and literal values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// `simple` (Query message) or `extended` (Parse/Bind/Execute).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_flow: Option<&'static str>,
    /// Rows returned (SELECT, FETCH, COPY TO) or affected (INSERT, UPDATE,
    /// DELETE, COPY FROM), from the backend's CommandComplete tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Bytes sent to the client for this statement's results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// Bytes received from the client for this statement (incl. COPY data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    /// Error or refusal message (backend's or the proxy's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the SQL analyser could not parse the statement, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// Free-form detail for session and protocol events (e.g. the reason a
    /// session ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The policy rule that decided the statement (`default` when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<str>>,
    /// `allowed`, `denied` (blocked), or `would_deny` (a deny rule matched
    /// but its mode, monitor or learn, let the statement through).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'static str>,
    /// The mode the deciding rule was applied in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Rules that raised an alert about this statement.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Arc<str>>,
    /// Injection and misuse signals in the statement's shape.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<&'static str>,
    /// Classification tags of the data the statement touches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Arc<str>>,
    /// Highest classification level touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<u8>,
    /// Version of the policy that decided (see `GET /policy`): which rule
    /// files were in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<u64>,
    /// Sensitive values the result returned in the clear, by tag (within
    /// the scan budget: see `scanned_rows`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<std::collections::BTreeMap<&'static str, u32>>,
    /// Result rows scanned for sensitive values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanned_rows: Option<u64>,
    /// Result cells rewritten by masking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked: Option<u64>,
    /// The mask rules that applied to the result.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mask_rules: Vec<Arc<str>>,
    /// MySQL: the server's (or the proxy's) error number, beside `sqlstate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u16>,
    /// MySQL prepared statements: the parameter values of this execution,
    /// rendered compactly and bounded (`[42, 'alice', NULL]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
    /// Behaviour identity (`user|application|network`) the baseline keeps
    /// for this session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Arc<str>>,
    /// Anomaly score of the statement against the identity's baseline
    /// (present when at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// What drove the score: measure, observed against expected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceOut>,
    /// The identity is still learning its baseline (scores come from a
    /// prior: the population or the same user's usual behaviour).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning: Option<bool>,
    /// What the behaviour rules did: `cut`, `throttle`, `quarantine`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<&'static str>,
    /// Alert events: `low`, `medium`, `high` or `critical`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<&'static str>,
    /// HTTP: the authenticated API caller (the policy's `[[caller]]` id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<Arc<str>>,
    /// HTTP: how the caller authenticated and with what, never the secret
    /// (`api_key:<key id>`, `jwt:<subject>`, `mtls:<subject>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// HTTP: the route template the request matched (`/api/v1/persons/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Arc<str>>,
    /// HTTP: the route's id in the API policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_id: Option<Arc<str>>,
    /// HTTP: the status code sent to the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// HTTP: records in the response body (per the route's `records` path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// HTTP: response fields masked (JSON paths, first ones only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked_fields: Vec<String>,
    /// HTTP: response fields removed as outside the caller's scope.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_fields: Vec<String>,
    /// HTTP: how many fields were removed (all of them, not only those
    /// listed in `removed_fields`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
    /// HTTP: the upstream API the request went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Arc<str>>,
    /// Subject of the client's verified TLS certificate, RFC 4514
    /// (`CN=app1,O=Health`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_subject: Option<Arc<str>>,
    /// Negotiated TLS version of the client connection (`TLSv1.3`);
    /// absent for plaintext sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<&'static str>,
}

/// One piece of baseline evidence as audit events and alerts carry it.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceOut {
    pub measure: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub observed: f64,
    pub expected: f64,
    pub score: f64,
    /// The sentence an analyst reads.
    pub text: String,
}

impl From<&danxia_detectors::baseline::Evidence> for EvidenceOut {
    fn from(e: &danxia_detectors::baseline::Evidence) -> Self {
        let r = |x: f64| (x * 100.0).round() / 100.0;
        EvidenceOut {
            measure: e.measure.as_str(),
            subject: e.subject.clone(),
            observed: r(e.observed),
            expected: r(e.expected),
            score: r(e.score),
            text: e.to_string(),
        }
    }
}
