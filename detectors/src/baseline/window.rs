//! The current short window of one identity: running totals of what its
//! statements did since the window began ([`Window`]), and their closed form
//! ([`WindowTotals`]) that the profile and the population fold in when the
//! window ends. Owns the per-window caps. Knows nothing of expectations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::enumeration::Enumeration;
use super::{BaselineConfig, Observation};

/// Sensitive tags counted per window (and learned per statistic). Tags come
/// from the proxy's own classifiers, a small closed set; the cap only stops
/// a bug from growing a profile. Further tags are ignored.
pub const MAX_SENSITIVE_TAGS: usize = 64;
/// Tables of one statement that are counted; a statement naming more is
/// counted by its first ones (the de-duplication is quadratic in this).
pub const MAX_TABLES_PER_STATEMENT: usize = 64;

/// One closed window's totals for one identity: what the caller folds into
/// the [`super::Population`], and what the profile folds into its own
/// statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowTotals {
    /// Unix seconds at which the window began.
    pub start: u64,
    pub statements: u64,
    /// Statements that failed because of the caller
    /// ([`Observation::error`]). Absent from totals saved before it was
    /// counted.
    #[serde(default)]
    pub errors: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Sensitive values returned, by tag.
    pub sensitive: BTreeMap<String, u64>,
    /// Distinct tables touched (saturates at `max_tables`).
    pub distinct_tables: u64,
    /// Statements whose fingerprint the identity had never run before.
    pub new_fingerprints: u64,
    /// Rows per table.
    pub table_rows: BTreeMap<String, u64>,
    /// The largest single statement's rows, per table.
    pub max_rows_per_statement: BTreeMap<String, u64>,
    /// The largest number of distinct key digests of one fingerprint.
    pub max_distinct_keys: u64,
}

/// Per-table running totals within a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct WindowTable {
    pub rows: u64,
    pub max_rows: u64,
}

/// The open window's running totals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Window {
    /// `start / window_secs`.
    pub index: u64,
    /// The local offset when the window opened: its hour of day is local.
    pub utc_offset: i32,
    pub statements: u64,
    /// Absent from windows saved before errors were counted.
    #[serde(default)]
    pub errors: u64,
    pub rows: u64,
    pub bytes: u64,
    /// At most [`MAX_SENSITIVE_TAGS`].
    pub sensitive: BTreeMap<String, u64>,
    /// At most `max_tables`; its length is the distinct-table count.
    pub tables: BTreeMap<String, WindowTable>,
    pub new_fingerprints: u64,
    pub enumeration: Enumeration,
}

/// The distinct tables of a statement, in order, at most
/// [`MAX_TABLES_PER_STATEMENT`].
pub(crate) fn unique_tables(tables: &[String]) -> impl Iterator<Item = &String> {
    let tables = tables.get(..MAX_TABLES_PER_STATEMENT).unwrap_or(tables);
    tables
        .iter()
        .enumerate()
        .filter(move |&(i, t)| !tables.get(..i).unwrap_or_default().contains(t))
        .map(|(_, t)| t)
}

impl Window {
    /// An empty window; allocates nothing.
    pub fn new(index: u64, utc_offset: i32) -> Window {
        Window {
            index,
            utc_offset,
            statements: 0,
            errors: 0,
            rows: 0,
            bytes: 0,
            sensitive: BTreeMap::new(),
            tables: BTreeMap::new(),
            new_fingerprints: 0,
            enumeration: Enumeration::default(),
        }
    }

    pub fn start(&self, window_secs: u64) -> u64 {
        self.index.saturating_mul(window_secs)
    }

    /// Adds one statement; returns its fingerprint's distinct key count in
    /// this window when it has a key digest and the fingerprint is tracked.
    pub fn record(
        &mut self,
        cfg: &BaselineConfig,
        obs: &Observation<'_>,
        new_fingerprint: bool,
    ) -> Option<u64> {
        self.statements = self.statements.saturating_add(1);
        self.errors = self.errors.saturating_add(u64::from(obs.error));
        self.rows = self.rows.saturating_add(obs.rows);
        self.bytes = self.bytes.saturating_add(obs.bytes);
        if new_fingerprint {
            self.new_fingerprints = self.new_fingerprints.saturating_add(1);
        }
        for &(tag, count) in obs.sensitive {
            if count == 0 {
                continue;
            }
            if let Some(c) = self.sensitive.get_mut(tag) {
                *c = c.saturating_add(count);
            } else if self.sensitive.len() < MAX_SENSITIVE_TAGS {
                self.sensitive.insert(tag.to_owned(), count);
            }
        }
        for table in unique_tables(obs.tables) {
            if let Some(t) = self.tables.get_mut(table.as_str()) {
                t.rows = t.rows.saturating_add(obs.rows);
                t.max_rows = t.max_rows.max(obs.rows);
            } else if self.tables.len() < cfg.max_tables {
                let t = WindowTable {
                    rows: obs.rows,
                    max_rows: obs.rows,
                };
                self.tables.insert(table.clone(), t);
            }
        }
        let key = obs.key_digest?;
        self.enumeration.record(
            obs.fingerprint,
            key,
            cfg.max_enum_fingerprints,
            cfg.max_enum_keys,
        )
    }

    /// The window's closed form (moves its maps; nothing is copied but the
    /// table names, once).
    pub fn into_totals(self, window_secs: u64) -> WindowTotals {
        let start = self.start(window_secs);
        let max_distinct_keys = self.enumeration.max_distinct();
        let mut table_rows = BTreeMap::new();
        let mut max_rows_per_statement = BTreeMap::new();
        let distinct_tables = self.tables.len() as u64;
        for (name, t) in self.tables {
            table_rows.insert(name.clone(), t.rows);
            max_rows_per_statement.insert(name, t.max_rows);
        }
        WindowTotals {
            start,
            statements: self.statements,
            errors: self.errors,
            rows: self.rows,
            bytes: self.bytes,
            sensitive: self.sensitive,
            distinct_tables,
            new_fingerprints: self.new_fingerprints,
            table_rows,
            max_rows_per_statement,
            max_distinct_keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_tables_dedups_in_order() {
        let t: Vec<String> = ["a", "b", "a", "c", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let u: Vec<&str> = unique_tables(&t).map(String::as_str).collect();
        assert_eq!(u, ["a", "b", "c"]);
        let many: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
        assert_eq!(unique_tables(&many).count(), MAX_TABLES_PER_STATEMENT);
    }

    #[test]
    fn records_and_closes() {
        let cfg = BaselineConfig {
            max_tables: 2,
            ..BaselineConfig::default()
        };
        let mut w = Window::new(10, 0);
        let tables = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let obs = Observation {
            at: 6_000,
            utc_offset: 0,
            fingerprint: 1,
            tables: &tables,
            rows: 5,
            bytes: 50,
            sensitive: &[("pii.phone", 2), ("pii.email", 0)],
            key_digest: Some(9),
            error: false,
        };
        assert_eq!(w.record(&cfg, &obs, true), Some(1));
        let obs2 = Observation {
            rows: 7,
            key_digest: Some(10),
            error: true,
            tables: &tables[..1],
            ..obs.clone()
        };
        assert_eq!(w.record(&cfg, &obs2, false), Some(2));
        let t = w.into_totals(600);
        assert_eq!(t.start, 6_000);
        assert_eq!((t.statements, t.rows, t.bytes), (2, 12, 100));
        assert_eq!(t.errors, 1);
        assert_eq!(t.distinct_tables, 2, "capped at max_tables");
        assert_eq!(t.table_rows.get("a"), Some(&12));
        assert_eq!(t.max_rows_per_statement.get("a"), Some(&7));
        assert_eq!(t.sensitive.get("pii.phone"), Some(&4));
        assert!(!t.sensitive.contains_key("pii.email"));
        assert_eq!((t.new_fingerprints, t.max_distinct_keys), (1, 2));
    }
}
