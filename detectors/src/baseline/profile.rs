//! One identity's learned behaviour: its open window, the statistics its
//! closed windows were folded into (per hour of day and overall), its
//! tables, statement shapes and hours of activity. Owns the window clock —
//! opening, closing and gap-filling windows from the times it is given —
//! and the order of record-then-score. Must never read a clock: every
//! method takes the time.

use serde::{Deserialize, Serialize};

use super::evidence::{Assessment, Measure};
use super::fingerprints::Fingerprints;
use super::hours::{self, hour_of_day, hour_of_week, HourOfWeek, HOURS_PER_DAY, HOURS_PER_WEEK};
use super::score::{
    score_window, Collector, Expectation, Projection, StatementView, FLOOR_ROWS_PER_STATEMENT,
};
use super::stats::{Ewma, WindowStats};
use super::summary::ProfileSummary;
use super::tables::Tables;
use super::window::{unique_tables, Window, WindowTotals};
use super::{BaselineConfig, Observation, Prior};

/// Per-identity learned state. Bounded by the caps of [`BaselineConfig`]:
/// tables (LRU), fingerprints (FIFO), the window's tables, tags and
/// enumeration sets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub(super) first_seen: u64,
    pub(super) last_seen: u64,
    pub(super) statements: u64,
    /// Closed windows with at least one statement.
    pub(super) active_windows: u64,
    /// The window length the window indices below are in; when the
    /// configuration changes it, the open window is dropped and gap
    /// tracking restarts (the statistics adapt through their EWMAs).
    pub(super) window_secs: u64,
    /// Every window with a smaller index has been folded; `None` until the
    /// first statement.
    pub(super) folded_until: Option<u64>,
    /// The open window (index `folded_until`).
    pub(super) current: Option<Window>,
    /// Window statistics per local hour of day.
    pub(super) slots: [WindowStats; HOURS_PER_DAY],
    /// Window statistics over all hours.
    pub(super) global: WindowStats,
    /// Max distinct keys of one fingerprint per *active* window. Not
    /// zero-filled: idle hours would otherwise drag the expectation towards
    /// 0 overnight and make every Monday morning look like enumeration.
    pub(super) distinct_keys: Ewma,
    pub(super) tables: Tables,
    pub(super) fingerprints: Fingerprints,
    pub(super) hours: HourOfWeek,
}

impl Profile {
    /// A profile first seen at `at`, with nothing learned.
    pub fn new(at: u64) -> Profile {
        Profile {
            first_seen: at,
            last_seen: at,
            statements: 0,
            active_windows: 0,
            window_secs: 0,
            folded_until: None,
            current: None,
            slots: Default::default(),
            global: WindowStats::default(),
            distinct_keys: Ewma::default(),
            tables: Tables::default(),
            fingerprints: Fingerprints::default(),
            hours: HourOfWeek::default(),
        }
    }

    pub fn first_seen(&self) -> u64 {
        self.first_seen
    }

    pub fn last_seen(&self) -> u64 {
        self.last_seen
    }

    pub fn statements_seen(&self) -> u64 {
        self.statements
    }

    /// Still learning: younger than `learning_secs`, or active in fewer
    /// than `min_active_windows` closed windows.
    pub fn is_learning(&self, cfg: &BaselineConfig, now: u64) -> bool {
        now.saturating_sub(self.first_seen) < cfg.learning_secs
            || self.active_windows < u64::from(cfg.min_active_windows)
    }

    /// This profile as an expectation source for a window at local `hour`.
    pub(super) fn expectation(&self, cfg: &BaselineConfig, hour: usize) -> Expectation<'_> {
        let window = self
            .slots
            .get(hour)
            .filter(|s| s.samples() >= cfg.min_samples)
            .unwrap_or(&self.global);
        Expectation {
            window,
            tables: &self.tables,
            distinct_keys: &self.distinct_keys,
            own_tables: None,
        }
    }

    /// Own statistics once established, else the prior's (if any).
    fn source<'x>(
        &'x self,
        cfg: &BaselineConfig,
        learning: bool,
        hour: usize,
        prior: Prior<'x>,
    ) -> Option<Expectation<'x>> {
        if !learning {
            return Some(self.expectation(cfg, hour));
        }
        let exp = match prior {
            Prior::None => None,
            Prior::Population(p) => Some(p.expectation()),
            Prior::Profile(p) => Some(p.expectation(cfg, hour)),
        };
        exp.map(|e| Expectation {
            own_tables: Some(&self.tables),
            ..e
        })
    }

    fn window_secs(cfg: &BaselineConfig) -> u64 {
        cfg.window_secs.max(1)
    }

    /// Forgets window positions taken with another window length.
    fn sync_window_len(&mut self, cfg: &BaselineConfig) {
        let ws = Self::window_secs(cfg);
        if self.window_secs != ws {
            self.window_secs = ws;
            self.current = None;
            self.folded_until = None;
        }
    }

    /// Folds every window before `idx`: closes the open one (returned) and
    /// folds at most `max_fill_windows` of the empty ones after it as zeros.
    fn advance(&mut self, cfg: &BaselineConfig, idx: u64, utc_offset: i32) -> Option<WindowTotals> {
        let from = self.folded_until?;
        if idx <= from {
            return None;
        }
        let mut next = from;
        let closed = match self.current.take() {
            Some(w) => {
                next = next.saturating_add(1);
                Some(self.close(cfg, w))
            }
            None => None,
        };
        if next < idx {
            self.fill(cfg, next, idx, utc_offset);
        }
        let ws = Self::window_secs(cfg);
        self.hours.decay((idx - from) as f64 * ws as f64);
        self.folded_until = Some(idx);
        closed
    }

    fn close(&mut self, cfg: &BaselineConfig, w: Window) -> WindowTotals {
        let ws = Self::window_secs(cfg);
        let hour = hour_of_day(w.start(ws), w.utc_offset);
        let totals = w.into_totals(ws);
        if let Some(slot) = self.slots.get_mut(hour) {
            slot.fold(&totals, cfg.slot_alpha);
        }
        self.global.fold(&totals, cfg.global_alpha);
        self.distinct_keys
            .update(totals.max_distinct_keys as f64, cfg.global_alpha);
        for (table, &rows) in &totals.table_rows {
            if let Some(t) = self.tables.touch(table, cfg.max_tables) {
                t.per_window.update(rows as f64, cfg.global_alpha);
            }
        }
        // Rows per statement learn from each active window's largest
        // statement, not from every statement: an identity that runs a
        // 10-row aggregate ten times and a 2000-row export once a night
        // has 2000 as a usual statement, which a mean over statements
        // would never learn.
        for (table, &rows) in &totals.max_rows_per_statement {
            if let Some(t) = self.tables.touch(table, cfg.max_tables) {
                t.per_statement.update(rows as f64, cfg.slot_alpha);
            }
        }
        self.active_windows = self.active_windows.saturating_add(1);
        totals
    }

    /// Folds the empty windows `from..to` as zeros — only the last
    /// `max_fill_windows` of them: after a long silence the most recent
    /// week says all there is to say, and the cost stays bounded.
    fn fill(&mut self, cfg: &BaselineConfig, from: u64, to: u64, utc_offset: i32) {
        let ws = Self::window_secs(cfg);
        let n = (to - from).min(u64::from(cfg.max_fill_windows));
        for idx in to - n..to {
            let hour = hour_of_day(idx.saturating_mul(ws), utc_offset);
            if let Some(slot) = self.slots.get_mut(hour) {
                slot.fold_zero(cfg.slot_alpha);
            }
            self.global.fold_zero(cfg.global_alpha);
        }
    }

    /// Hour rarity and new tables: what only an established identity's own
    /// history can say.
    fn score_established(
        &self,
        cfg: &BaselineConfig,
        hour_of_week: usize,
        tables: &[String],
        out: &mut Collector<'_>,
    ) {
        let share = self.hours.share(hour_of_week);
        out.fixed(
            Measure::HourOfWeek,
            || Some(hours::label(hour_of_week)),
            share,
            1.0 / HOURS_PER_WEEK as f64,
            0.0,
            HourOfWeek::rarity(share),
        );
        for table in unique_tables(tables) {
            if !self.tables.contains(table) {
                out.fixed(
                    Measure::NewTable,
                    || Some(table.clone()),
                    1.0,
                    0.0,
                    0.0,
                    cfg.new_table_score,
                );
            }
        }
    }

    /// Records a completed statement, then scores it (window measures use
    /// the window totals *including* this statement; rows per statement and
    /// new tables are judged against what was known before it). While
    /// learning, scores come from `prior` instead of the profile's own
    /// statistics; with no prior a learning identity scores 0. Returns the
    /// totals of the active window this call closed, if any (windows closed
    /// by gap-filling are empty and not returned).
    pub fn observe(
        &mut self,
        cfg: &BaselineConfig,
        obs: &Observation<'_>,
        prior: Prior<'_>,
    ) -> (Assessment, Option<WindowTotals>) {
        self.sync_window_len(cfg);
        let ws = Self::window_secs(cfg);
        // A statement stamped before the open window (clock skew, a slow
        // statement completing late) counts in the open one.
        let idx = (obs.at / ws).max(self.folded_until.unwrap_or(0));
        if self.folded_until.is_none() {
            self.folded_until = Some(idx);
        }
        let closed = self.advance(cfg, idx, obs.utc_offset);
        self.first_seen = self.first_seen.min(obs.at);
        self.last_seen = self.last_seen.max(obs.at);
        self.statements = self.statements.saturating_add(1);

        let learning = self.is_learning(cfg, obs.at);
        let new_fingerprint = self
            .fingerprints
            .insert(obs.fingerprint, cfg.max_fingerprints);
        let mut window = self
            .current
            .take()
            .unwrap_or_else(|| Window::new(idx, obs.utc_offset));
        let distinct_keys = window.record(cfg, obs, new_fingerprint);
        let how = hour_of_week(obs.at, obs.utc_offset);

        let mut out = Collector::new(cfg);
        let hour = hour_of_day(window.start(ws), window.utc_offset);
        if let Some(exp) = self.source(cfg, learning, hour, prior) {
            let stmt = StatementView {
                fingerprint: obs.fingerprint,
                tables: obs.tables,
                rows: Some(obs.rows),
                distinct_keys,
            };
            score_window(&exp, &window, &Projection::default(), &stmt, &mut out);
        }
        if !learning {
            self.score_established(cfg, how, obs.tables, &mut out);
        }
        let assessment = out.finish(learning);

        self.current = Some(window);
        for table in unique_tables(obs.tables) {
            // Keeps the table recent (its stats learn at window close).
            let _ = self.tables.touch(table, cfg.max_tables);
        }
        self.hours.add(how);
        (assessment, closed)
    }

    /// Scores a statement *before* it runs, recording nothing: hour rarity,
    /// new tables, a new fingerprint, enumeration as if `key_digest` were
    /// added to its window, and the window's totals so far (counting this
    /// statement). Rows are unknown, so rows per statement is not scored.
    #[allow(clippy::too_many_arguments)] // the proxy's call site names each fact
    pub fn preview(
        &self,
        cfg: &BaselineConfig,
        at: u64,
        utc_offset: i32,
        fingerprint: u64,
        tables: &[String],
        key_digest: Option<u64>,
        prior: Prior<'_>,
    ) -> Assessment {
        let ws = Self::window_secs(cfg);
        let synced = self.window_secs == ws;
        let idx = (at / ws).max(self.folded_until.filter(|_| synced).unwrap_or(0));
        let empty;
        let window = match &self.current {
            Some(w) if synced && w.index == idx => w,
            _ => {
                empty = Window::new(idx, utc_offset);
                &empty
            }
        };
        let learning = self.is_learning(cfg, at);
        let extra = Projection {
            statements: 1,
            tables: unique_tables(tables)
                .filter(|t| !window.tables.contains_key(t.as_str()))
                .count()
                .min(cfg.max_tables.saturating_sub(window.tables.len())) as u64,
            new_fingerprints: u64::from(!self.fingerprints.contains(fingerprint)),
        };
        let distinct_keys = key_digest.and_then(|k| {
            window
                .enumeration
                .peek(fingerprint, k, cfg.max_enum_fingerprints, cfg.max_enum_keys)
        });

        let mut out = Collector::new(cfg);
        let hour = hour_of_day(window.start(ws), window.utc_offset);
        if let Some(exp) = self.source(cfg, learning, hour, prior) {
            let stmt = StatementView {
                fingerprint,
                tables,
                rows: None,
                distinct_keys,
            };
            score_window(&exp, window, &extra, &stmt, &mut out);
        }
        if !learning {
            self.score_established(cfg, hour_of_week(at, utc_offset), tables, &mut out);
        }
        out.finish(learning)
    }

    /// Rows at which one statement touching `tables` would by itself reach
    /// `score` on rows per statement: the minimum over the touched tables
    /// with learned statistics. `None` while learning or when no touched
    /// table has them. Lets the proxy cut a result mid-stream at a
    /// baseline-derived row count.
    pub fn rows_for_score(
        &self,
        cfg: &BaselineConfig,
        tables: &[String],
        score: f64,
        now: u64,
    ) -> Option<u64> {
        if self.is_learning(cfg, now) {
            return None;
        }
        let score = if score.is_finite() {
            score.max(0.0)
        } else {
            0.0
        };
        unique_tables(tables)
            .filter_map(|t| self.tables.get(t))
            .map(|t| t.per_statement)
            .filter(|s| s.n >= cfg.min_samples && s.mean.is_finite())
            // `as` saturates: an unreachable score gives u64::MAX.
            .map(|s| (s.mean + score * s.scale(FLOOR_ROWS_PER_STATEMENT)).ceil() as u64)
            .min()
    }

    /// Closes windows that ended before `now` (for idle identities),
    /// folding the empty ones as zeros; returns the active window closed,
    /// if any.
    pub fn tick(
        &mut self,
        cfg: &BaselineConfig,
        now: u64,
        utc_offset: i32,
    ) -> Option<WindowTotals> {
        self.sync_window_len(cfg);
        self.advance(cfg, now / Self::window_secs(cfg), utc_offset)
    }

    /// What an analyst reads (`danxia baseline show`); times are shown at
    /// `utc_offset`.
    pub fn summary(&self, cfg: &BaselineConfig, now: u64, utc_offset: i32) -> ProfileSummary {
        ProfileSummary::of(self, cfg, now, utc_offset)
    }
}
