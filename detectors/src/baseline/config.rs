//! The engine's one configuration type: its fields with their defaults, and
//! the validation the proxy runs right after parsing. Every limit the engine
//! applies that is not a named constant is here, so an operator can see and
//! tune it; [`BaselineConfig::validate`] also bounds each cap, so a typo in a
//! config file cannot make per-identity state unbounded.

use serde::{Deserialize, Serialize};

/// Longest window accepted: a day. Longer windows would straddle every
/// hour-of-day slot and make time-of-day expectations meaningless.
pub const MAX_WINDOW_SECS: u64 = 86_400;
/// Most empty windows folded as zeros after a gap that a config may ask
/// for: each fold is ~10 statistics updates, so this bounds the cost of the
/// first statement after a long silence.
pub const MAX_FILL_WINDOWS_LIMIT: u32 = 100_000;
/// Upper bounds for the per-identity caps (memory per identity).
pub const MAX_TABLES_LIMIT: usize = 65_536;
pub const MAX_FINGERPRINTS_LIMIT: usize = 1 << 20;
pub const MAX_ENUM_FINGERPRINTS_LIMIT: usize = 4_096;
pub const MAX_ENUM_KEYS_LIMIT: usize = 1 << 20;

/// How the baseline engine learns and scores. `Default` gives the values
/// documented on each field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// Length of the short window that totals are kept over, seconds.
    /// Default 600.
    pub window_secs: u64,
    /// An identity learns at least this long after it was first seen,
    /// seconds. Default 7 days, so it has seen a weekend.
    pub learning_secs: u64,
    /// …and until it was active in this many closed windows. Default 12.
    pub min_active_windows: u32,
    /// EWMA weight of the per-hour-of-day slot statistics. Default 0.1
    /// (a slot gets 6 samples an hour, so about two days of memory).
    pub slot_alpha: f64,
    /// EWMA weight of the whole-profile window statistics (and of the
    /// population's). Default 0.02.
    pub global_alpha: f64,
    /// EWMA weight of per-statement statistics (rows per statement per
    /// table). Default 0.01.
    pub statement_alpha: f64,
    /// A statistic scores only after this many samples. Default 5.
    pub min_samples: u32,
    /// At most this many empty windows are folded as zeros after a gap
    /// (the most recent ones). Default 1008 (a week of 10-minute windows).
    pub max_fill_windows: u32,
    /// Tables remembered per identity; beyond, the least recently used is
    /// forgotten. Also caps the distinct tables counted in one window.
    /// Default 256.
    pub max_tables: usize,
    /// Statement shapes remembered per identity (for "new fingerprint");
    /// beyond, the oldest is forgotten. Default 4096.
    pub max_fingerprints: usize,
    /// Fingerprints tracked for enumeration per window; further ones are
    /// ignored for the rest of the window. Default 128.
    pub max_enum_fingerprints: usize,
    /// Distinct key digests kept per tracked fingerprint per window; the
    /// count saturates there. Default 4096.
    pub max_enum_keys: usize,
    /// Below this many distinct keys in a window, enumeration never scores.
    /// Default 100.
    pub enumeration_min_distinct: u32,
    /// Score of touching a table never touched before (established
    /// identities only). Default 3.0.
    pub new_table_score: f64,
    /// Cap of any single evidence score and of the combined score.
    /// Default 50.0.
    pub score_cap: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            window_secs: 600,
            learning_secs: 7 * 86_400,
            min_active_windows: 12,
            slot_alpha: 0.1,
            global_alpha: 0.02,
            statement_alpha: 0.01,
            min_samples: 5,
            max_fill_windows: 1008,
            max_tables: 256,
            max_fingerprints: 4096,
            max_enum_fingerprints: 128,
            max_enum_keys: 4096,
            enumeration_min_distinct: 100,
            new_table_score: 3.0,
            score_cap: 50.0,
        }
    }
}

impl BaselineConfig {
    /// Checks every field is usable; the message names the field and the
    /// accepted range.
    pub fn validate(&self) -> Result<(), String> {
        if self.window_secs == 0 || self.window_secs > MAX_WINDOW_SECS {
            return Err(format!(
                "baseline.window_secs must be 1..={MAX_WINDOW_SECS}, got {}",
                self.window_secs
            ));
        }
        for (name, alpha) in [
            ("slot_alpha", self.slot_alpha),
            ("global_alpha", self.global_alpha),
            ("statement_alpha", self.statement_alpha),
        ] {
            // Written so that NaN fails too.
            if !(alpha > 0.0 && alpha <= 1.0) {
                return Err(format!("baseline.{name} must be in (0, 1], got {alpha}"));
            }
        }
        if self.min_samples == 0 {
            return Err("baseline.min_samples must be at least 1".to_owned());
        }
        if self.max_fill_windows > MAX_FILL_WINDOWS_LIMIT {
            return Err(format!(
                "baseline.max_fill_windows must be at most {MAX_FILL_WINDOWS_LIMIT}, got {}",
                self.max_fill_windows
            ));
        }
        for (name, value, limit) in [
            ("max_tables", self.max_tables, MAX_TABLES_LIMIT),
            (
                "max_fingerprints",
                self.max_fingerprints,
                MAX_FINGERPRINTS_LIMIT,
            ),
            (
                "max_enum_fingerprints",
                self.max_enum_fingerprints,
                MAX_ENUM_FINGERPRINTS_LIMIT,
            ),
            ("max_enum_keys", self.max_enum_keys, MAX_ENUM_KEYS_LIMIT),
        ] {
            if value == 0 || value > limit {
                return Err(format!("baseline.{name} must be 1..={limit}, got {value}"));
            }
        }
        if !(self.new_table_score.is_finite() && self.new_table_score >= 0.0) {
            return Err(format!(
                "baseline.new_table_score must be a finite number >= 0, got {}",
                self.new_table_score
            ));
        }
        if !(self.score_cap.is_finite() && self.score_cap >= 1.0) {
            return Err(format!(
                "baseline.score_cap must be a finite number >= 1, got {}",
                self.score_cap
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(BaselineConfig::default().validate(), Ok(()));
    }

    #[test]
    fn rejects_out_of_range_fields() {
        type Edit = fn(&mut BaselineConfig);
        let cases: &[(Edit, &str)] = &[
            (|c| c.window_secs = 0, "window_secs"),
            (|c| c.window_secs = MAX_WINDOW_SECS + 1, "window_secs"),
            (|c| c.slot_alpha = 0.0, "slot_alpha"),
            (|c| c.global_alpha = 1.5, "global_alpha"),
            (|c| c.statement_alpha = f64::NAN, "statement_alpha"),
            (|c| c.min_samples = 0, "min_samples"),
            (|c| c.max_fill_windows = u32::MAX, "max_fill_windows"),
            (|c| c.max_tables = 0, "max_tables"),
            (|c| c.max_fingerprints = usize::MAX, "max_fingerprints"),
            (|c| c.max_enum_fingerprints = 0, "max_enum_fingerprints"),
            (|c| c.max_enum_keys = 0, "max_enum_keys"),
            (|c| c.new_table_score = f64::INFINITY, "new_table_score"),
            (|c| c.score_cap = 0.5, "score_cap"),
        ];
        for (edit, field) in cases {
            let mut cfg = BaselineConfig::default();
            edit(&mut cfg);
            let err = cfg.validate().expect_err(field);
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn partial_config_takes_defaults() {
        let cfg: BaselineConfig = serde_json::from_str(r#"{"window_secs": 300}"#).unwrap();
        assert_eq!(cfg.window_secs, 300);
        assert_eq!(cfg.max_tables, 256);
        assert!(serde_json::from_str::<BaselineConfig>(r#"{"window_sec": 300}"#).is_err());
    }
}
