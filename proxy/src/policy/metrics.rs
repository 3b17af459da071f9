//! Policy metrics: reloads, decisions by rule, alerts, decision-cache hit
//! rate and learning. Rule ids are a bounded label set (the rules the
//! security team wrote), so they may be labels; users and SQL never are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use danxia_policies::{Decision, Policy};
use metrics::{counter, gauge, Counter, Gauge};

pub struct ReloadMetrics {
    pub reload_ok: Counter,
    pub reload_failed: Counter,
    version: Gauge,
    rules: Gauge,
}

impl ReloadMetrics {
    pub fn new() -> Self {
        Self {
            reload_ok: counter!("danxia_policy_reloads_total", "result" => "ok"),
            reload_failed: counter!("danxia_policy_reloads_total", "result" => "error"),
            version: gauge!("danxia_policy_version"),
            rules: gauge!("danxia_policy_rules"),
        }
    }

    pub fn loaded(&self, p: &Policy) {
        self.version.set(p.version() as f64);
        self.rules.set(p.rule_count() as f64);
    }
}

impl Default for ReloadMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What happened to a statement, as the decisions metric labels it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allowed,
    Denied,
    /// A deny rule matched but its mode (monitor/learn) let it through.
    WouldDeny,
}

impl Verdict {
    pub fn of(d: &Decision) -> Verdict {
        match (d.block, d.action) {
            (true, _) => Verdict::Denied,
            (false, danxia_policies::Action::Deny) => Verdict::WouldDeny,
            _ => Verdict::Allowed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::WouldDeny => "would_deny",
        }
    }
}

/// Per-listener decision counters, resolved once per (rule, verdict) so
/// the hot path does one small map lookup instead of a registry lookup.
pub struct DecisionMetrics {
    listener: Arc<str>,
    decisions: Mutex<HashMap<(Arc<str>, Verdict), Counter>>,
    alerts: Mutex<HashMap<Arc<str>, Counter>>,
    pub cache_hit: Counter,
    pub cache_miss: Counter,
    pub learned_dropped: Counter,
}

/// Distinct (rule, verdict) label sets kept per listener. Rule ids come
/// from the policy files, so this only bounds a pathological policy.
const MAX_LABEL_SETS: usize = 4096;

impl DecisionMetrics {
    pub fn new(listener: &str) -> Self {
        let l = listener.to_string();
        Self {
            listener: Arc::from(listener),
            decisions: Mutex::new(HashMap::new()),
            alerts: Mutex::new(HashMap::new()),
            cache_hit: counter!("danxia_policy_decision_cache_total", "listener" => l.clone(), "result" => "hit"),
            cache_miss: counter!("danxia_policy_decision_cache_total", "listener" => l.clone(), "result" => "miss"),
            learned_dropped: counter!("danxia_policy_learn_dropped_total", "listener" => l),
        }
    }

    /// Counts one decision and the alerts it raised.
    pub fn record(&self, d: &Decision) {
        let v = Verdict::of(d);
        {
            let mut map = lock(&self.decisions);
            let key = (d.rule_id.clone(), v);
            if let Some(c) = map.get(&key) {
                c.increment(1);
            } else {
                let c = counter!("danxia_policy_decisions_total",
                    "listener" => self.listener.to_string(),
                    "rule" => d.rule_id.to_string(),
                    "verdict" => v.as_str());
                c.increment(1);
                if map.len() < MAX_LABEL_SETS {
                    map.insert(key, c);
                }
            }
        }
        if d.alerts.is_empty() {
            return;
        }
        let mut map = lock(&self.alerts);
        for rule in &d.alerts {
            if let Some(c) = map.get(rule) {
                c.increment(1);
            } else {
                let c = counter!("danxia_policy_alerts_total",
                    "listener" => self.listener.to_string(),
                    "rule" => rule.to_string());
                c.increment(1);
                if map.len() < MAX_LABEL_SETS {
                    map.insert(rule.clone(), c);
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
