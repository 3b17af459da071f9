//! Quarantine and throttling: identities a rule took out of normal
//! service. Quarantine refuses everything from the identity until a person
//! releases it; throttling delays each statement for a while. Both are
//! checked before every statement, so the empty case costs one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Quarantined identities kept; a rule firing for more refuses the newest
/// ones without recording them (counted), rather than grow without bound.
pub const MAX_QUARANTINED: usize = 100_000;
/// Throttled identities kept.
pub const MAX_THROTTLED: usize = 100_000;

/// Why an identity is quarantined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    /// The identity key (`user|application|network`).
    pub identity: String,
    /// The rule that quarantined it.
    pub rule: String,
    /// Real unix time, seconds.
    pub since: u64,
    /// The evidence in one line (score, measure, statement shape).
    pub reason: String,
}

#[derive(Default)]
pub struct Gate {
    quarantined: RwLock<HashMap<Arc<str>, Quarantined>>,
    q_count: AtomicUsize,
    throttled: RwLock<HashMap<Arc<str>, Instant>>,
    t_count: AtomicUsize,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Gate {
    pub fn quarantined(&self, key: &str) -> Option<Quarantined> {
        if self.q_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        read(&self.quarantined).get(key).cloned()
    }

    /// Quarantines `q.identity`; false when it already was (the first
    /// reason stays) or the list is full.
    pub fn quarantine(&self, q: Quarantined) -> bool {
        let mut m = write(&self.quarantined);
        if m.contains_key(q.identity.as_str()) || m.len() >= MAX_QUARANTINED {
            return false;
        }
        m.insert(Arc::from(q.identity.as_str()), q);
        self.q_count.store(m.len(), Ordering::Release);
        true
    }

    /// Releases `key`; what it was quarantined for, if it was.
    pub fn release(&self, key: &str) -> Option<Quarantined> {
        let mut m = write(&self.quarantined);
        let q = m.remove(key);
        self.q_count.store(m.len(), Ordering::Release);
        q
    }

    pub fn list(&self) -> Vec<Quarantined> {
        let mut v: Vec<Quarantined> = read(&self.quarantined).values().cloned().collect();
        v.sort_by(|a, b| a.since.cmp(&b.since).then(a.identity.cmp(&b.identity)));
        v
    }

    /// Replaces the list (loading state, or another instance's view).
    pub fn replace(&self, list: Vec<Quarantined>) {
        let mut m = write(&self.quarantined);
        m.clear();
        for q in list.into_iter().take(MAX_QUARANTINED) {
            m.insert(Arc::from(q.identity.as_str()), q);
        }
        self.q_count.store(m.len(), Ordering::Release);
    }

    /// Throttles `key` for `dur` from now (extending a running throttle).
    pub fn throttle(&self, key: &Arc<str>, dur: Duration) {
        let until = Instant::now() + dur;
        let mut m = write(&self.throttled);
        if m.len() >= MAX_THROTTLED {
            let now = Instant::now();
            m.retain(|_, u| *u > now);
            if m.len() >= MAX_THROTTLED {
                return;
            }
        }
        m.insert(key.clone(), until);
        self.t_count.store(m.len(), Ordering::Release);
    }

    /// Whether `key` is throttled now.
    pub fn throttled(&self, key: &str) -> bool {
        if self.t_count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let until = read(&self.throttled).get(key).copied();
        match until {
            Some(u) if u > Instant::now() => true,
            Some(_) => {
                let mut m = write(&self.throttled);
                m.remove(key);
                self.t_count.store(m.len(), Ordering::Release);
                false
            }
            None => false,
        }
    }

    pub fn throttled_count(&self) -> usize {
        self.t_count.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_and_release() {
        let g = Gate::default();
        assert!(g.quarantined("a|b|c").is_none());
        let q = Quarantined {
            identity: "a|b|c".into(),
            rule: "r".into(),
            since: 1,
            reason: "x".into(),
        };
        assert!(g.quarantine(q.clone()));
        assert!(!g.quarantine(Quarantined {
            rule: "other".into(),
            ..q.clone()
        }));
        assert_eq!(g.quarantined("a|b|c").map(|q| q.rule), Some("r".into()));
        assert_eq!(g.list().len(), 1);
        assert_eq!(g.release("a|b|c"), Some(q));
        assert!(g.quarantined("a|b|c").is_none());
        assert!(g.release("a|b|c").is_none());
    }

    #[test]
    fn throttles_expire() {
        let g = Gate::default();
        let k: Arc<str> = Arc::from("k");
        assert!(!g.throttled("k"));
        g.throttle(&k, Duration::from_millis(30));
        assert!(g.throttled("k"));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!g.throttled("k"));
        assert_eq!(g.throttled_count(), 0);
    }
}
