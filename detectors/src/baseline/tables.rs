//! Per-table statistics of one identity (or of the population): rows per
//! statement and rows per active window, bounded by least-recently-used
//! eviction so a client touching endless table names forgets old ones
//! instead of growing the profile. Knows nothing of windows or scoring.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::stats::Ewma;

/// Tables remembered by the population (all identities together).
pub const POPULATION_MAX_TABLES: usize = 4_096;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TableStats {
    /// Rows per statement touching the table (for the population: the
    /// largest statement of each window, a deliberately high stand-in).
    pub per_statement: Ewma,
    /// Rows from the table per window in which it was touched; windows
    /// without it are not folded (an occasional table is not "usually 0").
    pub per_window: Ewma,
    /// LRU clock value of the last use.
    pub last_used: u64,
}

/// Table name → statistics, at most `cap` entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Tables {
    map: BTreeMap<String, TableStats>,
    clock: u64,
}

impl Tables {
    pub fn get(&self, name: &str) -> Option<&TableStats> {
        self.map.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &TableStats)> {
        self.map.iter()
    }

    /// The entry for `name`, marked used, created (evicting the least
    /// recently used beyond `cap`) if missing. Allocates only when created;
    /// `None` only if the map refused the entry, which it never does (the
    /// borrow checker cannot see the lookup after insertion succeed).
    pub fn touch(&mut self, name: &str, cap: usize) -> Option<&mut TableStats> {
        self.clock = self.clock.wrapping_add(1);
        if !self.map.contains_key(name) {
            while self.map.len() >= cap.max(1) {
                let oldest = self
                    .map
                    .iter()
                    .min_by_key(|(_, t)| t.last_used)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => {
                        self.map.remove(&k);
                    }
                    None => break,
                }
            }
            self.map.insert(name.to_owned(), TableStats::default());
        }
        let stats = self.map.get_mut(name)?;
        stats.last_used = self.clock;
        Some(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut t = Tables::default();
        for name in ["a", "b", "c"] {
            if let Some(s) = t.touch(name, 3) {
                s.per_window.update(1.0, 0.1);
            }
        }
        t.touch("a", 3);
        t.touch("d", 3);
        assert!(t.contains("a") && t.contains("c") && t.contains("d"));
        assert!(!t.contains("b"));
        assert_eq!(t.len(), 3);
        assert_eq!(t.get("d").map(|s| s.per_window.n), Some(0));
    }
}
