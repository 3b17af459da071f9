//! What a statement's audit event says, whatever the protocol: the
//! session's identity, the statement (text as configured, facts, the
//! policy's decision) and what its result came to (sensitive counts,
//! masks, limits), plus the alert event that follows an alerted statement.
//! The protocols add only what is theirs (flow, rows, outcome codes).

use std::sync::Arc;

use danxia_policies::AuditText;

use super::{AuditEvent, EventKind, StatementText};
use crate::analysis::Statement;
use crate::metrics::ListenerMetrics;
use crate::policy::metrics::Verdict;
use crate::results::Summary;

/// Longest statement text kept in an audit event; longer text (bulk INSERTs
/// with megabytes of literals) is cut at a character boundary and marked,
/// while the fingerprint still covers the whole statement.
pub const MAX_AUDITED_STATEMENT_BYTES: usize = 1024 * 1024;

/// The detail of a statement whose result a `returned` limit withheld.
pub const RESULT_CUT: &str =
    "result withheld from the client once a `returned` limit was reached; the statement itself ran";

/// Who a session is; cloned cheaply into events.
#[derive(Debug, Clone)]
pub struct SessionIdentity {
    pub session: Arc<str>,
    pub listener: Arc<str>,
    /// `postgres` or `mysql`.
    pub protocol: &'static str,
    pub client: Arc<str>,
    pub user: Option<Arc<str>>,
    pub database: Option<Arc<str>>,
    pub application: Option<Arc<str>>,
    /// Subject of the client's verified TLS certificate (RFC 4514).
    pub tls_subject: Option<Arc<str>>,
    /// Negotiated TLS version (`TLSv1.3`); `None` for plaintext sessions.
    pub tls: Option<&'static str>,
}

impl SessionIdentity {
    /// An event of `kind` carrying this identity.
    pub fn event(&self, kind: EventKind) -> AuditEvent {
        AuditEvent {
            kind: Some(kind),
            session: Some(self.session.clone()),
            listener: Some(self.listener.clone()),
            protocol: Some(self.protocol),
            client: Some(self.client.clone()),
            user: self.user.clone(),
            database: self.database.clone(),
            application: self.application.clone(),
            tls_subject: self.tls_subject.clone(),
            tls: self.tls,
            ..Default::default()
        }
    }
}

/// Fills `ev` with what is known of `s` before it ran: its text (as the
/// deciding rule or `default_text` says), facts and the policy's decision.
pub fn describe_statement(ev: &mut AuditEvent, s: &Statement, default_text: StatementText) {
    let f = &s.facts;
    let decision = s.judgement.as_ref().map(|j| &j.decision);
    ev.policy_version = s.judgement.as_ref().map(|j| j.policy_version);
    let text_mode = match decision.and_then(|d| d.audit_text) {
        Some(AuditText::Full) => StatementText::Full,
        Some(AuditText::Normalized) => StatementText::Normalized,
        Some(AuditText::None) => StatementText::None,
        None => default_text,
    };
    ev.statement = match text_mode {
        StatementText::Full => Some(capped(s.redacted.as_ref().unwrap_or(&s.text))),
        StatementText::Normalized => Some(capped(&f.normalized)),
        StatementText::None => None,
    };
    ev.fingerprint = Some(f.fingerprint.to_string());
    ev.operation = Some(f.operation.as_str());
    ev.tables = f.tables.clone();
    ev.parse_error = f.parse_error.clone();
    ev.signals = f.signals.names().collect();
    if let Some(d) = decision {
        ev.rule = Some(d.rule_id.clone());
        ev.verdict = Some(Verdict::of(d).as_str());
        ev.mode = Some(d.mode.as_str());
        ev.alerts = d.alerts.clone();
        ev.tags = d.tags.clone();
        ev.level = (d.level > 0).then_some(d.level);
    }
}

/// Adds a result's summary to `ev` and to the metrics. Returns the limit
/// that cut the result, if one did: the caller records the statement as
/// refused with that limit's message.
pub fn add_summary<'s>(
    ev: &mut AuditEvent,
    sum: &'s Summary,
    metrics: &ListenerMetrics,
) -> Option<&'s danxia_policies::Limit> {
    metrics.result_summary(sum);
    if sum.scanned_rows > 0 || !sum.counts.is_empty() {
        ev.sensitive = Some(
            sum.counts
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.tag(), n))
                .collect(),
        );
        ev.scanned_rows = Some(sum.scanned_rows);
    }
    if sum.masked > 0 || !sum.mask_rules.is_empty() {
        ev.masked = Some(sum.masked);
        ev.mask_rules = sum.mask_rules.clone();
    }
    for l in &sum.reached {
        if !ev.alerts.contains(&l.rule_id) {
            ev.alerts.push(l.rule_id.clone());
        }
    }
    let l = sum.cut.as_ref()?;
    ev.rule = Some(l.rule_id.clone());
    ev.verdict = Some(Verdict::Denied.as_str());
    if !ev.alerts.contains(&l.rule_id) {
        ev.alerts.push(l.rule_id.clone());
    }
    Some(l)
}

/// The alert that follows a statement event some rule alerted on: who,
/// where, what and which rules, for the SOC to act on without joining
/// records.
pub fn alert_event(ident: &SessionIdentity, st: &AuditEvent) -> AuditEvent {
    let mut ev = ident.event(EventKind::Alert);
    ev.statement = st.statement.clone();
    ev.fingerprint = st.fingerprint.clone();
    ev.operation = st.operation;
    ev.tables = st.tables.clone();
    ev.outcome = st.outcome;
    ev.rule = st.rule.clone();
    ev.verdict = st.verdict;
    ev.mode = st.mode;
    ev.alerts = st.alerts.clone();
    ev.signals = st.signals.clone();
    ev.tags = st.tags.clone();
    ev.level = st.level;
    ev.rows = st.rows;
    ev.policy_version = st.policy_version;
    ev.sensitive = st.sensitive.clone();
    ev.scanned_rows = st.scanned_rows;
    ev.masked = st.masked;
    ev.mask_rules = st.mask_rules.clone();
    ev.identity = st.identity.clone();
    ev.score = st.score;
    ev.evidence = st.evidence.clone();
    ev.learning = st.learning;
    ev.actions = st.actions.clone();
    // HTTP requests: who called what.
    if st.caller.is_some() {
        ev.user = st.user.clone();
        ev.application = st.application.clone();
        ev.caller = st.caller.clone();
        ev.credential = st.credential.clone();
        ev.route = st.route.clone();
        ev.route_id = st.route_id.clone();
        ev.status = st.status;
        ev.records = st.records;
        ev.masked_fields = st.masked_fields.clone();
        ev.removed = st.removed;
        ev.upstream = st.upstream.clone();
    }
    ev
}

/// `text`, cut to `MAX_AUDITED_STATEMENT_BYTES` with a marker saying how
/// much was left out.
pub fn capped(text: &str) -> String {
    if text.len() <= MAX_AUDITED_STATEMENT_BYTES {
        return text.to_string();
    }
    let mut end = MAX_AUDITED_STATEMENT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}…[{} more bytes not audited]",
        &text[..end],
        text.len() - end
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_statements_are_capped_at_a_char_boundary() {
        assert_eq!(capped("select 1"), "select 1");
        let long = "é".repeat(MAX_AUDITED_STATEMENT_BYTES); // 2 bytes each
        let c = capped(&long);
        assert!(c.ends_with(&format!(
            "…[{} more bytes not audited]",
            MAX_AUDITED_STATEMENT_BYTES
        )));
        assert!(c.len() < MAX_AUDITED_STATEMENT_BYTES + 64);
    }
}
