//! The typical identity: the totals of every identity's active windows,
//! folded as samples (one per identity-window), with no time-of-day slots.
//! It scores identities that have no baseline of their own yet — a brand-new
//! account reading dozens of catalogue tables stands out against what
//! accounts usually do in ten minutes. Owns those statistics; the caller
//! decides which windows are folded (e.g. only established identities', so
//! a burst of new ones cannot teach the prior that bursts are normal).

use serde::{Deserialize, Serialize};

use super::score::Expectation;
use super::stats::{Ewma, WindowStats};
use super::tables::{Tables, POPULATION_MAX_TABLES};
use super::window::WindowTotals;
use super::BaselineConfig;

/// Window statistics over all identities' active windows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Population {
    global: WindowStats,
    distinct_keys: Ewma,
    tables: Tables,
    samples: u64,
}

impl Population {
    /// Folds one identity's closed window (what [`super::Profile::observe`]
    /// and [`super::Profile::tick`] return), weight `global_alpha`.
    pub fn fold(&mut self, cfg: &BaselineConfig, w: &WindowTotals) {
        let alpha = cfg.global_alpha;
        self.global.fold(w, alpha);
        self.distinct_keys.update(w.max_distinct_keys as f64, alpha);
        // A window holds at most `max_tables` tables; the bound guards
        // against totals built elsewhere.
        for (table, &rows) in w.table_rows.iter().take(cfg.max_tables) {
            let Some(stats) = self.tables.touch(table, POPULATION_MAX_TABLES) else {
                continue;
            };
            stats.per_window.update(rows as f64, alpha);
            if let Some(&max) = w.max_rows_per_statement.get(table) {
                stats.per_statement.update(max as f64, alpha);
            }
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// Windows folded.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub(crate) fn expectation(&self) -> Expectation<'_> {
        Expectation {
            window: &self.global,
            tables: &self.tables,
            distinct_keys: &self.distinct_keys,
            own_tables: None,
        }
    }
}
