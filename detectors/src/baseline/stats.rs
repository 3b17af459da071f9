//! Robust streaming statistics: an exponentially weighted mean and mean
//! absolute deviation ([`Ewma`]), the deviation score against it, and the
//! bundle of them kept per window measure ([`WindowStats`]). Owns the update
//! rule and the score; knows nothing of time, tables or identities.
//!
//! Mean absolute deviation rather than variance: one 200 000-row outlier,
//! squared, would dominate a variance for months and hide the next one,
//! while its absolute deviation fades as fast as the mean does. Only
//! increases score: reading less than usual is not the incident this
//! engine hunts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::window::{WindowTotals, MAX_SENSITIVE_TAGS};

/// Weight of the mean absolute deviation in the deviation unit. For normal
/// data the MAD is about 0.8 σ, so 1.5 MAD is a little over one σ: a score
/// of 6 is then well outside anything the history has shown.
pub const DEV_WEIGHT: f64 = 1.5;
/// Share of the mean that is always one unit: busy identities vary in
/// proportion to their volume, so 25 % over the usual is one unit even when
/// the history happened to be unusually steady.
pub const MEAN_WEIGHT: f64 = 0.25;

/// Exponentially weighted mean and mean absolute deviation of one measure.
///
/// The first samples are averaged evenly (weight `max(alpha, 1/n)`), so the
/// mean is not pinned to the very first value for `1/alpha` samples — which
/// matters while an identity is still learning and serves as a prior.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ewma {
    pub mean: f64,
    /// EWMA of `|x − mean|`, measured against the mean before `x`.
    pub dev: f64,
    /// Samples folded (saturating).
    pub n: u32,
}

/// How one observation compares with an [`Ewma`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Deviation {
    pub expected: f64,
    pub scale: f64,
    pub score: f64,
}

impl Ewma {
    /// A statistic that has seen `n` samples, all zero: what a measure that
    /// never occurred (a sensitive tag never returned) has learned.
    pub const fn zeros(n: u32) -> Ewma {
        Ewma {
            mean: 0.0,
            dev: 0.0,
            n,
        }
    }

    pub fn update(&mut self, x: f64, alpha: f64) {
        // A value restored from a damaged file restarts rather than
        // poisoning every later score.
        if self.n == 0 || !self.mean.is_finite() || !self.dev.is_finite() {
            self.mean = x;
            self.dev = 0.0;
            self.n = 1;
            return;
        }
        let a = alpha.max(1.0 / (f64::from(self.n) + 1.0));
        let d = (x - self.mean).abs();
        self.mean += a * (x - self.mean);
        self.dev += a * (d - self.dev);
        self.n = self.n.saturating_add(1);
    }

    /// The deviation unit: `max(1.5·dev, 0.25·mean, floor)`.
    pub fn scale(&self, floor: f64) -> f64 {
        (DEV_WEIGHT * self.dev)
            .max(MEAN_WEIGHT * self.mean)
            .max(floor)
    }

    /// How far above the usual `x` is, in deviation units, capped at `cap`;
    /// `None` before `min_samples` samples (nothing learned yet).
    pub fn score(&self, x: f64, floor: f64, min_samples: u32, cap: f64) -> Option<Deviation> {
        if self.n < min_samples || !self.mean.is_finite() {
            return None;
        }
        let scale = self.scale(floor);
        if scale.is_nan() || scale <= 0.0 {
            return None;
        }
        let score = ((x - self.mean) / scale).max(0.0).min(cap);
        Some(Deviation {
            expected: self.mean,
            scale,
            score,
        })
    }
}

/// The statistics of every window measure, for one hour-of-day slot, for a
/// whole profile, or for the population.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct WindowStats {
    pub statements: Ewma,
    pub rows: Ewma,
    pub bytes: Ewma,
    pub distinct_tables: Ewma,
    pub new_fingerprints: Ewma,
    /// Failed statements per window. Statistics saved before errors were
    /// counted load with none learned (`n` 0), so errors score only once
    /// `min_samples` windows have been folded since: the past is not
    /// assumed error-free.
    #[serde(default)]
    pub errors: Ewma,
    /// By tag; at most [`MAX_SENSITIVE_TAGS`].
    pub sensitive: BTreeMap<String, Ewma>,
}

impl WindowStats {
    /// Windows folded in (every measure is updated together).
    pub fn samples(&self) -> u32 {
        self.statements.n
    }

    /// The statistic of a sensitive tag; a tag never returned has had zero
    /// in every window folded so far.
    pub fn sensitive(&self, tag: &str) -> Ewma {
        self.sensitive
            .get(tag)
            .copied()
            .unwrap_or(Ewma::zeros(self.samples()))
    }

    /// Folds one window's totals.
    pub fn fold(&mut self, w: &WindowTotals, alpha: f64) {
        let before = self.samples();
        for (tag, stat) in &mut self.sensitive {
            stat.update(w.sensitive.get(tag).copied().unwrap_or(0) as f64, alpha);
        }
        for (tag, &value) in &w.sensitive {
            if self.sensitive.len() >= MAX_SENSITIVE_TAGS {
                break;
            }
            if !self.sensitive.contains_key(tag) {
                let mut stat = Ewma::zeros(before);
                stat.update(value as f64, alpha);
                self.sensitive.insert(tag.clone(), stat);
            }
        }
        self.statements.update(w.statements as f64, alpha);
        self.rows.update(w.rows as f64, alpha);
        self.bytes.update(w.bytes as f64, alpha);
        self.distinct_tables.update(w.distinct_tables as f64, alpha);
        self.new_fingerprints
            .update(w.new_fingerprints as f64, alpha);
        self.errors.update(w.errors as f64, alpha);
    }

    /// Folds one empty window: every measure zero.
    pub fn fold_zero(&mut self, alpha: f64) {
        for stat in [
            &mut self.statements,
            &mut self.rows,
            &mut self.bytes,
            &mut self.distinct_tables,
            &mut self.new_fingerprints,
            &mut self.errors,
        ] {
            stat.update(0.0, alpha);
        }
        for stat in self.sensitive.values_mut() {
            stat.update(0.0, alpha);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_samples_are_averaged_then_weighted() {
        let mut e = Ewma::default();
        e.update(10.0, 0.1);
        assert_eq!((e.mean, e.dev, e.n), (10.0, 0.0, 1));
        e.update(20.0, 0.1);
        assert_eq!((e.mean, e.dev), (15.0, 5.0));
        e.update(30.0, 0.1);
        assert!((e.mean - 20.0).abs() < 1e-9);
        // Past 1/alpha samples the weight is alpha.
        let mut e = Ewma::zeros(100);
        e.update(10.0, 0.1);
        assert!((e.mean - 1.0).abs() < 1e-9);
        assert!((e.dev - 1.0).abs() < 1e-9);
    }

    #[test]
    fn score_table() {
        let e = Ewma {
            mean: 100.0,
            dev: 20.0,
            n: 10,
        };
        // (x, floor, min_samples, expected score)
        let cases: &[(f64, f64, u32, Option<f64>)] = &[
            (100.0, 1.0, 5, Some(0.0)),
            (50.0, 1.0, 5, Some(0.0)),  // decreases never score
            (130.0, 1.0, 5, Some(1.0)), // scale = 1.5·20 = 30
            (400.0, 1.0, 5, Some(10.0)),
            (400.0, 100.0, 5, Some(3.0)), // the floor wins
            (1e12, 1.0, 5, Some(50.0)),   // capped
            (400.0, 1.0, 11, None),       // not enough samples
        ];
        for &(x, floor, min, want) in cases {
            let got = e.score(x, floor, min, 50.0).map(|d| d.score);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{x}: {g} != {w}"),
                (g, w) => assert_eq!(g, w, "{x}"),
            }
        }
        // 0.25·mean wins for a steady, busy measure.
        let steady = Ewma {
            mean: 1000.0,
            dev: 1.0,
            n: 10,
        };
        assert_eq!(steady.scale(20.0), 250.0);
    }

    #[test]
    fn damaged_values_restart() {
        let mut e = Ewma {
            mean: f64::NAN,
            dev: 1.0,
            n: 40,
        };
        assert_eq!(e.score(1.0, 1.0, 5, 50.0), None);
        e.update(7.0, 0.1);
        assert_eq!((e.mean, e.n), (7.0, 1));
    }

    #[test]
    fn a_new_tag_starts_from_the_zeros_before_it() {
        let mut s = WindowStats::default();
        for _ in 0..20 {
            s.fold_zero(0.1);
        }
        let mut w = WindowTotals {
            statements: 3,
            ..WindowTotals::default()
        };
        w.sensitive.insert("pii.phone".to_owned(), 40);
        s.fold(&w, 0.1);
        let tag = s.sensitive("pii.phone");
        assert_eq!(tag.n, 21);
        assert!((tag.mean - 4.0).abs() < 1e-9);
        // A tag never seen reads as zeros over every window so far.
        assert_eq!(s.sensitive("pii.email"), Ewma::zeros(21));
    }
}
