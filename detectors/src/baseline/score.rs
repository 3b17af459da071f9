//! Scoring: turns a statement, its window's totals and an expectation
//! source into evidence, and evidence into an [`Assessment`]. Owns the
//! floors, the evidence threshold and the combination rule. Never records
//! anything, and reads expectations only through [`Expectation`], so a
//! profile, another profile (as a prior) and the population are scored by
//! the same code.

use super::evidence::{Assessment, Evidence, Measure};
use super::stats::{Ewma, WindowStats};
use super::tables::Tables;
use super::window::{unique_tables, Window};
use super::BaselineConfig;

/// Floors of the deviation unit, per measure: the smallest difference that
/// counts as one unit however steady the history. They are what keeps an
/// identity idle at some hour (mean 0, deviation 0) from alerting on a
/// single statement, and a steady one from alerting on noise.
pub const FLOOR_STATEMENTS: f64 = 20.0;
pub const FLOOR_ROWS: f64 = 500.0;
pub const FLOOR_BYTES: f64 = 256.0 * 1024.0;
/// Per tag.
pub const FLOOR_SENSITIVE: f64 = 50.0;
pub const FLOOR_DISTINCT_TABLES: f64 = 3.0;
pub const FLOOR_NEW_FINGERPRINTS: f64 = 3.0;
pub const FLOOR_TABLE_ROWS: f64 = 500.0;
pub const FLOOR_ENUMERATION: f64 = 50.0;
pub const FLOOR_ROWS_PER_STATEMENT: f64 = 200.0;
/// Failed statements: 3 more errors than usual is one unit, so for an
/// identity that usually has none, 25 failures that make up the window score
/// 8 (the default alert) on their own.
pub const FLOOR_ERRORS: f64 = 3.0;

/// Fewer failed statements than this in a window never score: a mistyped
/// statement or two, a retried 404, is not probing.
pub const MIN_ERRORS: u64 = 5;
/// Share of the window's statements at which failures count in full. Below
/// it the errors score is scaled down in proportion (by `share /
/// ERROR_SHARE`): 30 failures among 30 statements is probing, 30 among
/// 10 000 is a busy service's usual noise. Proportional rather than a cut
/// at the share, so padding probes with successful requests only dilutes
/// the score (and shows in the statement count) instead of hiding it.
pub const ERROR_SHARE: f64 = 1.0 / 3.0;

/// Evidence scoring below this is not reported and does not count.
pub const EVIDENCE_MIN_SCORE: f64 = 1.0;
/// Evidence items kept per assessment.
pub const MAX_EVIDENCE: usize = 8;

/// Where expectations come from: an identity's own statistics (the slot of
/// the window's hour when it has enough samples, else the global ones), or
/// the population's.
pub(crate) struct Expectation<'a> {
    pub window: &'a WindowStats,
    pub tables: &'a Tables,
    /// Max distinct keys of one fingerprint per active window.
    pub distinct_keys: &'a Ewma,
    /// A learning identity's own table statistics: a table it has enough
    /// history for is judged on that rather than on the prior (a nightly
    /// job's export is its own usual long before the identity has enough
    /// active windows to be established).
    pub own_tables: Option<&'a Tables>,
}

/// What is known of the statement beyond its window's totals.
pub(crate) struct StatementView<'a> {
    pub fingerprint: u64,
    pub tables: &'a [String],
    /// `None` before it runs ([`super::Profile::preview`]).
    pub rows: Option<u64>,
    /// Its fingerprint's distinct keys in the window, including its own.
    pub distinct_keys: Option<u64>,
}

/// What a preview adds to the window's totals so far (zero when observing:
/// the window already includes the statement).
#[derive(Default)]
pub(crate) struct Projection {
    pub statements: u64,
    pub tables: u64,
    pub new_fingerprints: u64,
}

/// Gathers evidence; allocates only for evidence that counts.
pub(crate) struct Collector<'c> {
    cfg: &'c BaselineConfig,
    items: Vec<Evidence>,
}

impl<'c> Collector<'c> {
    pub fn new(cfg: &'c BaselineConfig) -> Self {
        Collector {
            cfg,
            items: Vec::new(),
        }
    }

    /// Scores `observed` against `stat`; keeps it when it counts.
    pub fn deviation(
        &mut self,
        measure: Measure,
        subject: impl FnOnce() -> Option<String>,
        observed: u64,
        stat: &Ewma,
        floor: f64,
    ) {
        let observed = observed as f64;
        let Some(d) = stat.score(observed, floor, self.cfg.min_samples, self.cfg.score_cap) else {
            return;
        };
        self.fixed(measure, subject, observed, d.expected, d.scale, d.score);
    }

    /// Keeps an item whose score was computed elsewhere, when it counts.
    pub fn fixed(
        &mut self,
        measure: Measure,
        subject: impl FnOnce() -> Option<String>,
        observed: f64,
        expected: f64,
        scale: f64,
        score: f64,
    ) {
        let score = score.min(self.cfg.score_cap);
        if score >= EVIDENCE_MIN_SCORE {
            self.items.push(Evidence {
                measure,
                subject: subject(),
                observed,
                expected,
                scale,
                score,
            });
        }
    }

    pub fn finish(mut self, learning: bool) -> Assessment {
        let sum_sq: f64 = self.items.iter().map(|e| e.score * e.score).sum();
        // Stable: ties keep the order measures were scored in.
        self.items.sort_by(|a, b| b.score.total_cmp(&a.score));
        self.items.truncate(MAX_EVIDENCE);
        Assessment {
            score: sum_sq.sqrt().min(self.cfg.score_cap),
            evidence: self.items,
            learning,
        }
    }
}

/// Scores everything but hour rarity and new tables (which need the
/// identity's own history): the window totals, and per table the
/// statement's rows and the window's rows.
pub(crate) fn score_window(
    exp: &Expectation<'_>,
    window: &Window,
    extra: &Projection,
    stmt: &StatementView<'_>,
    out: &mut Collector<'_>,
) {
    let cfg = out.cfg;
    let ws = exp.window;
    let none = || None;
    let statements = window.statements.saturating_add(extra.statements);
    out.deviation(
        Measure::Statements,
        none,
        statements,
        &ws.statements,
        FLOOR_STATEMENTS,
    );
    out.deviation(Measure::Rows, none, window.rows, &ws.rows, FLOOR_ROWS);
    out.deviation(Measure::Bytes, none, window.bytes, &ws.bytes, FLOOR_BYTES);
    for (tag, &count) in &window.sensitive {
        let stat = ws.sensitive(tag);
        out.deviation(
            Measure::Sensitive,
            || Some(tag.clone()),
            count,
            &stat,
            FLOOR_SENSITIVE,
        );
    }
    let tables = (window.tables.len() as u64).saturating_add(extra.tables);
    out.deviation(
        Measure::DistinctTables,
        none,
        tables,
        &ws.distinct_tables,
        FLOOR_DISTINCT_TABLES,
    );
    let new = window
        .new_fingerprints
        .saturating_add(extra.new_fingerprints);
    out.deviation(
        Measure::NewFingerprints,
        none,
        new,
        &ws.new_fingerprints,
        FLOOR_NEW_FINGERPRINTS,
    );
    score_errors(window.errors, statements, &ws.errors, out);
    for table in unique_tables(stmt.tables) {
        let own = exp
            .own_tables
            .and_then(|t| t.get(table))
            .filter(|t| t.per_statement.n >= cfg.min_samples);
        let Some(stats) = own.or_else(|| exp.tables.get(table)) else {
            continue;
        };
        let subject = || Some(table.clone());
        if let Some(rows) = stmt.rows {
            out.deviation(
                Measure::RowsPerStatement,
                subject,
                rows,
                &stats.per_statement,
                FLOOR_ROWS_PER_STATEMENT,
            );
        }
        if let Some(t) = window.tables.get(table.as_str()) {
            out.deviation(
                Measure::TableRows,
                subject,
                t.rows,
                &stats.per_window,
                FLOOR_TABLE_ROWS,
            );
        }
    }
    if let Some(distinct) = stmt.distinct_keys {
        if distinct >= u64::from(cfg.enumeration_min_distinct) {
            out.deviation(
                Measure::Enumeration,
                || Some(format!("{:016x}", stmt.fingerprint)),
                distinct,
                exp.distinct_keys,
                FLOOR_ENUMERATION,
            );
        }
    }
}

/// Failed statements in the window: the count against the usual, like the
/// other counts, weighted by their share of the window's statements:
///
/// ```text
/// weight = min(1, (errors / statements) / ERROR_SHARE)
/// score  = weight · (errors − usual) / max(1.5·dev, 0.25·usual, FLOOR_ERRORS)
/// ```
///
/// and nothing below [`MIN_ERRORS`]. The evidence's scale is the deviation
/// unit divided by the weight, so `score = (observed − expected) / scale`
/// holds for it as for every count.
fn score_errors(errors: u64, statements: u64, stat: &Ewma, out: &mut Collector<'_>) {
    if errors < MIN_ERRORS {
        return;
    }
    let cfg = out.cfg;
    // Uncapped here: the weight applies first, `fixed` caps.
    let Some(d) = stat.score(errors as f64, FLOOR_ERRORS, cfg.min_samples, f64::INFINITY) else {
        return;
    };
    // A window counts every statement it counts an error for; the max only
    // guards totals built elsewhere.
    let share = errors as f64 / statements.max(errors) as f64;
    let weight = (share / ERROR_SHARE).min(1.0);
    out.fixed(
        Measure::Errors,
        || None,
        errors as f64,
        d.expected,
        d.scale / weight,
        d.score * weight,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combines_sorts_and_truncates() {
        let cfg = BaselineConfig::default();
        let mut c = Collector::new(&cfg);
        for (i, s) in [3.0, 4.0, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1e9]
            .into_iter()
            .enumerate()
        {
            c.fixed(Measure::Rows, || Some(i.to_string()), 0.0, 0.0, 0.0, s);
        }
        let a = c.finish(false);
        assert_eq!(a.evidence.len(), MAX_EVIDENCE);
        assert_eq!(a.evidence[0].score, 50.0, "each item is capped");
        assert_eq!(a.evidence[1].score, 4.0);
        assert_eq!(
            a.evidence[3].subject.as_deref(),
            Some("4"),
            "ties stay in order"
        );
        assert_eq!(a.score, 50.0, "the combination is capped");

        let mut c = Collector::new(&cfg);
        c.fixed(Measure::Rows, || None, 0.0, 0.0, 0.0, 3.0);
        c.fixed(Measure::Bytes, || None, 0.0, 0.0, 0.0, 4.0);
        c.fixed(Measure::Statements, || None, 0.0, 0.0, 0.0, 0.99);
        let a = c.finish(true);
        assert_eq!((a.score, a.evidence.len(), a.learning), (5.0, 2, true));
        assert_eq!(Collector::new(&cfg).finish(false).score, 0.0);
    }

    #[test]
    fn errors_table() {
        let cfg = BaselineConfig::default();
        let quiet = Ewma {
            mean: 0.4,
            dev: 0.6,
            n: 50,
        };
        let busy = Ewma {
            mean: 15.0,
            dev: 4.0,
            n: 50,
        };
        // (errors, statements, usual, expected score: None = no evidence)
        let cases: &[(u64, u64, Ewma, Option<f64>)] = &[
            (4, 4, quiet, None),                       // below MIN_ERRORS
            (5, 5, quiet, Some(4.6 / 3.0)),            // all failed: full weight
            (40, 50, quiet, Some(39.6 / 3.0)),         // probing
            (30, 90, quiet, Some(29.6 / 3.0)),         // exactly a third
            (30, 180, quiet, Some(29.6 / 3.0 / 2.0)),  // a sixth: half
            (30, 10_000, quiet, None),                 // 0.3 % of a busy window
            (20, 5_000, busy, None),                   // a busy identity's usual
            (60, 150, busy, Some(45.0 / 6.0)),         // scale 1.5·4 = 6
            (40, 50, Ewma::zeros(2), None),            // not enough samples
            (1_000_000, 1_000_000, quiet, Some(50.0)), // capped
        ];
        for &(errors, statements, stat, want) in cases {
            let mut c = Collector::new(&cfg);
            score_errors(errors, statements, &stat, &mut c);
            let a = c.finish(false);
            let got = a.evidence.first();
            match (got, want) {
                (Some(e), Some(w)) => {
                    assert_eq!(e.measure, Measure::Errors);
                    assert!(
                        (e.score - w).abs() < 1e-9,
                        "{errors}/{statements}: {e:?} != {w}"
                    );
                    let cap = if w == cfg.score_cap { w } else { f64::INFINITY };
                    let linear = (e.observed - e.expected) / e.scale;
                    assert!((linear.min(cap) - e.score).abs() < 1e-9, "{e:?}");
                }
                (None, None) => {}
                (g, w) => panic!("{errors}/{statements}: {g:?} != {w:?}"),
            }
        }
    }
}
