//! Counters of `window` rules: per rule and identity, what the identity's
//! statements matched by the rule returned in the rule's current window
//! (fixed windows of the rule's length on the behaviour clock). Bounded:
//! beyond `MAX_WINDOW_COUNTERS` entries, counters of windows already over
//! are dropped first, then the whole map (failing open on counting, which
//! the metric `danxia_behaviour_window_counters_reset_total` shows).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use danxia_policies::Counted;

pub const MAX_WINDOW_COUNTERS: usize = 200_000;

#[derive(Debug, Clone, Default)]
pub struct Count {
    /// Which window (behaviour time / window length).
    index: u64,
    rows: u64,
    statements: u64,
    values: HashMap<&'static str, u64>,
    /// Thresholds (by what they count) already reported in this window.
    reported: Vec<Counted>,
}

impl Count {
    pub fn get(&self, c: Counted) -> u64 {
        match c {
            Counted::Rows => self.rows,
            Counted::Statements => self.statements,
            Counted::Values(k) => self.values.get(k.tag()).copied().unwrap_or(0),
        }
    }
}

/// (rule id, identity key).
type Key = (Arc<str>, Arc<str>);

#[derive(Default)]
pub struct Windows {
    map: Mutex<HashMap<Key, Count>>,
}

impl Windows {
    fn with<T>(
        &self,
        rule: &Arc<str>,
        who: &Arc<str>,
        window: u64,
        now: u64,
        f: impl FnOnce(&mut Count) -> T,
    ) -> T {
        let index = now / window.max(1);
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let key = (rule.clone(), who.clone());
        if !m.contains_key(&key) && m.len() >= MAX_WINDOW_COUNTERS {
            // Drop counters whose window is over (the window length is
            // not kept per entry: an entry older than a day is over for
            // any window up to a day; longer windows lose their count).
            m.retain(|_, c| c.index + 1 >= index);
            if m.len() >= MAX_WINDOW_COUNTERS {
                m.clear();
                metrics::counter!("danxia_behaviour_window_counters_reset_total").increment(1);
            }
        }
        let c = m.entry(key).or_default();
        if c.index != index {
            *c = Count {
                index,
                ..Count::default()
            };
        }
        f(c)
    }

    /// What the identity has returned so far in the rule's window.
    pub fn current(&self, rule: &Arc<str>, who: &Arc<str>, window: u64, now: u64) -> Count {
        self.with(rule, who, window, now, |c| c.clone())
    }

    /// Adds one statement's counts; returns the totals after.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &self,
        rule: &Arc<str>,
        who: &Arc<str>,
        window: u64,
        now: u64,
        rows: u64,
        statements: u64,
        values: &[(&'static str, u64)],
    ) -> Count {
        self.with(rule, who, window, now, |c| {
            c.rows += rows;
            c.statements += statements;
            for (tag, n) in values {
                *c.values.entry(tag).or_insert(0) += n;
            }
            c.clone()
        })
    }

    /// Marks `what` reported for this window; false if it already was.
    pub fn report_once(
        &self,
        rule: &Arc<str>,
        who: &Arc<str>,
        window: u64,
        now: u64,
        what: Counted,
    ) -> bool {
        self.with(rule, who, window, now, |c| {
            if c.reported.contains(&what) {
                false
            } else {
                c.reported.push(what);
                true
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reset_with_the_window() {
        let w = Windows::default();
        let r: Arc<str> = Arc::from("r");
        let k: Arc<str> = Arc::from("k");
        let c = w.add(&r, &k, 3600, 7200, 10, 1, &[("pii.phone", 3)]);
        assert_eq!(c.get(Counted::Rows), 10);
        let c = w.add(&r, &k, 3600, 7300, 5, 1, &[("pii.phone", 3)]);
        assert_eq!(c.get(Counted::Rows), 15);
        assert_eq!(c.get(Counted::Statements), 2);
        assert!(w.report_once(&r, &k, 3600, 7300, Counted::Rows));
        assert!(!w.report_once(&r, &k, 3600, 7400, Counted::Rows));
        // Next hour: a new window.
        assert_eq!(w.current(&r, &k, 3600, 10_900).get(Counted::Rows), 0);
        assert!(w.report_once(&r, &k, 3600, 10_900, Counted::Rows));
    }
}
