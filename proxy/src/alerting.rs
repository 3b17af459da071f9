//! From an alerted statement to the SOC: the alert audit event (who,
//! where, what, how much, why, risk) and the same alert as a webhook /
//! syslog document. Owns the risk grading and the alert document's shape;
//! delivery is `alerts`' job.

use std::sync::Arc;

use serde_json::json;

use crate::alerts::{Alert, Risk};
use crate::audit::statement::{alert_event, SessionIdentity};
use crate::audit::AuditEvent;
use crate::listener::ListenerCtx;

/// How serious an alert is: the anomaly score, what the rules did, the
/// classification level and volume of sensitive data, injection signals.
pub fn risk(ev: &AuditEvent) -> Risk {
    let mut r = Risk::Low;
    let mut at_least = |x: Risk| {
        if x > r {
            r = x;
        }
    };
    match ev.score {
        Some(s) if s >= 20.0 => at_least(Risk::Critical),
        Some(s) if s >= 10.0 => at_least(Risk::High),
        Some(s) if s >= 6.0 => at_least(Risk::Medium),
        _ => {}
    }
    if ev.actions.contains(&"quarantine") {
        at_least(Risk::Critical);
    }
    if ev.actions.contains(&"cut") || ev.verdict == Some("denied") {
        at_least(Risk::High);
    }
    let sensitive: u64 = ev
        .sensitive
        .as_ref()
        .map(|m| m.values().map(|n| u64::from(*n)).sum())
        .unwrap_or(0);
    let level = ev.level.unwrap_or(0);
    if level >= 3 || sensitive >= 1000 {
        at_least(Risk::High);
    } else if level >= 2 || sensitive > 0 || !ev.signals.is_empty() {
        at_least(Risk::Medium);
    }
    r
}

/// The alert event that follows `st` (a statement event some rule alerted
/// on), sent to the configured sinks as well.
pub fn raise(ctx: &ListenerCtx, ident: &SessionIdentity, st: &AuditEvent) -> AuditEvent {
    let mut ev = alert_event(ident, st);
    let risk = risk(&ev);
    ev.risk = Some(risk.as_str());
    let rule: Arc<str> = ev
        .alerts
        .first()
        .cloned()
        .unwrap_or_else(|| Arc::from("alert"));
    let network = st
        .identity
        .as_deref()
        .and_then(|k| k.rsplit('|').next())
        .map(str::to_string);
    let behaviour_time = ctx.behaviour.as_ref().map(|b| b.clock.now());
    let reason = if ev.actions.contains(&"quarantine") {
        "quarantine"
    } else if st.score.is_some_and(|s| s >= 1.0) && !st.evidence.is_empty() {
        "anomaly"
    } else if ev.actions.contains(&"cut") {
        "limit"
    } else {
        "rule"
    };
    let table = ev.tables.first().cloned().unwrap_or_default();
    let who = st
        .identity
        .as_deref()
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "{}@{}",
                st.user.as_deref().unwrap_or("?"),
                st.client.as_deref().unwrap_or("?")
            )
        });
    let title = format!(
        "danxia {} alert: {} ({}) {} {}{} on {} — rules {}{}",
        risk.as_str(),
        st.user.as_deref().unwrap_or("?"),
        st.client.as_deref().unwrap_or("?"),
        st.operation.unwrap_or("statement"),
        if ev.tables.is_empty() {
            String::new()
        } else {
            format!("{} ", ev.tables.join(","))
        },
        match st.rows {
            Some(r) => format!("({r} rows)"),
            None => String::new(),
        },
        st.listener.as_deref().unwrap_or("?"),
        ev.alerts.iter().map(|a| &**a).collect::<Vec<_>>().join(","),
        match (st.score, st.evidence.first()) {
            (Some(s), Some(e)) => format!("; score {s:.1}: {}", e.text),
            _ => String::new(),
        }
    );
    let body = json!({
        "type": "danxia.alert",
        "time": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "behaviour_time": behaviour_time,
        "risk": risk.as_str(),
        "rule": rule,
        "reason": reason,
        "score": st.score,
        "action": ev.actions.first().copied().unwrap_or(if ev.verdict == Some("denied") { "deny" } else { "alert" }),
        "actions": ev.actions,
        "who": {
            "user": st.user,
            "application": st.application,
            "client": st.client,
            "network": network,
            "identity": st.identity,
            "session": st.session,
            "caller": st.caller,
            "credential": st.credential,
        },
        "where": {
            "listener": st.listener,
            "protocol": st.protocol,
            "database": st.database,
            "tables": ev.tables,
            "route": st.route,
            "upstream": st.upstream,
        },
        "what": {
            "operation": st.operation,
            "fingerprint": st.fingerprint,
            "statement": st.statement.as_deref().map(|s| cut_text(s, 2000)),
            "verdict": st.verdict,
            "outcome": st.outcome,
            "status": st.status,
        },
        "how_much": {
            "rows": st.rows,
            "records": st.records,
            "masked": st.masked,
            "bytes": st.bytes_out,
            "sensitive": st.sensitive,
            "tags": st.tags,
            "level": st.level,
        },
        "why": {
            "rules": ev.alerts,
            "signals": st.signals,
            "evidence": st.evidence,
        },
    });
    ctx.alerts.send(Alert {
        key: format!("{rule}|{who}|{table}"),
        rule,
        risk,
        title,
        body,
    });
    ev
}

fn cut_text(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_grades() {
        let mut ev = AuditEvent::default();
        assert_eq!(risk(&ev), Risk::Low);
        ev.score = Some(7.0);
        assert_eq!(risk(&ev), Risk::Medium);
        ev.score = Some(12.0);
        assert_eq!(risk(&ev), Risk::High);
        ev.actions.push("quarantine");
        assert_eq!(risk(&ev), Risk::Critical);
        let mut ev = AuditEvent {
            level: Some(2),
            ..AuditEvent::default()
        };
        assert_eq!(risk(&ev), Risk::Medium);
        ev.sensitive = Some([("pii.id_number", 5000u32)].into_iter().collect());
        assert_eq!(risk(&ev), Risk::High);
    }
}
