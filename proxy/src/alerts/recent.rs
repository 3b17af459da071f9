//! The most recent alerts, kept in memory for the admin API (`GET
//! /alerts`): what the SOC's webhook or syslog collector would have seen,
//! for an operator at a terminal when those are down or not configured.
//!
//! Bounded: the oldest alert is dropped when [`RECENT_ALERTS`] are held. A
//! push is one short mutex hold and no I/O; alerts are rare next to
//! statements, and repeats are still recorded (marked by what delivery did).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use super::{Alert, Sent};

/// How many alerts are kept.
pub const RECENT_ALERTS: usize = 1000;

/// One alert as `GET /alerts` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RecentAlert {
    /// When it was raised (RFC 3339, UTC).
    pub time: String,
    pub rule: String,
    pub risk: &'static str,
    /// The one-line summary (who, what, how much, why).
    pub title: String,
    /// What delivery did: `queued`, `suppressed` (a repeat inside
    /// `alerts.suppress`), `dropped` (sink queues full) or `disabled` (no
    /// sink takes it).
    pub delivery: &'static str,
    /// The full alert document (who, where, what, how much, why).
    pub alert: serde_json::Value,
}

/// The ring of recent alerts.
#[derive(Debug, Default)]
pub struct Recent {
    ring: Mutex<VecDeque<Arc<RecentAlert>>>,
}

impl Recent {
    pub fn push(&self, a: &Alert, sent: Sent, at: SystemTime) {
        let time = time::OffsetDateTime::from(at)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let entry = Arc::new(RecentAlert {
            time,
            rule: a.rule.to_string(),
            risk: a.risk.as_str(),
            title: a.title.clone(),
            delivery: match sent {
                Sent::Queued => "queued",
                Sent::Suppressed => "suppressed",
                Sent::Dropped => "dropped",
                Sent::Disabled => "disabled",
            },
            alert: a.body.clone(),
        });
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() >= RECENT_ALERTS {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// Up to `limit` alerts, newest first.
    pub fn newest(&self, limit: usize) -> Vec<Arc<RecentAlert>> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Risk;

    fn alert(n: usize) -> Alert {
        Alert {
            key: format!("k{n}"),
            rule: Arc::from("r"),
            risk: Risk::High,
            title: format!("alert {n}"),
            body: serde_json::json!({ "n": n }),
        }
    }

    #[test]
    fn keeps_the_newest_and_is_bounded() {
        let r = Recent::default();
        for n in 0..RECENT_ALERTS + 5 {
            r.push(&alert(n), Sent::Disabled, SystemTime::now());
        }
        let all = r.newest(usize::MAX);
        assert_eq!(all.len(), RECENT_ALERTS);
        assert_eq!(all[0].title, format!("alert {}", RECENT_ALERTS + 4));
        assert_eq!(all[RECENT_ALERTS - 1].title, "alert 5");
        let two = r.newest(2);
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].alert["n"], RECENT_ALERTS + 3);
        assert_eq!(two[0].delivery, "disabled");
        assert_eq!(two[0].risk, "high");
    }
}
