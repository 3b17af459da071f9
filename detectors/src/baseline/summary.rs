//! What an analyst reads about one identity (`danxia baseline show`): a
//! plain data snapshot of a [`Profile`] ([`ProfileSummary`], serialisable
//! for the admin API) and its text form — headings, aligned columns and an
//! hour-of-week heat map. Owns presentation only, including the small
//! civil-time conversion it needs to print local dates without a clock or a
//! time-zone database.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::evidence::Num;
use super::hours::{DAY_NAMES, HOURS_PER_DAY};
use super::profile::Profile;
use super::BaselineConfig;

/// Tables listed in a summary, busiest (rows per active window) first.
pub const SUMMARY_TOP_TABLES: usize = 10;
/// Longest table name printed whole; longer ones are shortened.
const MAX_NAME_WIDTH: usize = 40;
/// Heat-map characters from no activity to the busiest hour.
const HEAT: &[u8] = b" .:-=+*#%@";

/// A snapshot of a profile for people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileSummary {
    pub first_seen: u64,
    pub last_seen: u64,
    /// The offset the times are shown at, seconds east of UTC.
    pub utc_offset: i32,
    pub learning: bool,
    /// The learning period's time bound (`first_seen + learning_secs`).
    pub learning_until: u64,
    /// Closed active windows so far, and how many learning needs.
    pub active_windows: u64,
    pub min_active_windows: u32,
    pub statements_seen: u64,
    pub window_secs: u64,
    /// The usual window per local hour of day, 24 rows.
    pub hours: Vec<HourSummary>,
    /// Share of activity per local hour of the week: 7 rows (Monday first)
    /// of 24.
    pub heat: Vec<Vec<f64>>,
    /// At most [`SUMMARY_TOP_TABLES`].
    pub top_tables: Vec<TableSummary>,
    pub tables_known: usize,
    pub known_fingerprints: usize,
    /// Usual max distinct key values of one fingerprint per active window.
    pub usual_max_distinct_keys: f64,
    /// Usual failed statements per window (all hours); 0 from a proxy that
    /// did not count them yet.
    #[serde(default)]
    pub usual_errors: f64,
    /// Usual sensitive values per window, by tag.
    pub sensitive: Vec<TagSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HourSummary {
    pub hour: u8,
    /// Expected statements and rows per window (EWMA means).
    pub statements: f64,
    pub rows: f64,
    /// Expected failed statements per window.
    #[serde(default)]
    pub errors: f64,
    pub samples: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableSummary {
    pub table: String,
    pub rows_per_statement: f64,
    pub rows_per_window: f64,
    /// Statements that touched it (saturating at `u32::MAX`).
    pub statements: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TagSummary {
    pub tag: String,
    pub per_window: f64,
}

impl ProfileSummary {
    pub(super) fn of(p: &Profile, cfg: &BaselineConfig, now: u64, utc_offset: i32) -> Self {
        let hours = p
            .slots
            .iter()
            .enumerate()
            .map(|(hour, s)| HourSummary {
                hour: hour as u8,
                statements: s.statements.mean,
                rows: s.rows.mean,
                errors: s.errors.mean,
                samples: s.samples(),
            })
            .collect();
        let counts = p.hours.counts();
        let total: f64 = counts.iter().sum();
        let heat = counts
            .chunks(HOURS_PER_DAY)
            .map(|day| {
                day.iter()
                    .map(|c| if total > 0.0 { c / total } else { 0.0 })
                    .collect()
            })
            .collect();
        let mut top_tables: Vec<TableSummary> = p
            .tables
            .iter()
            .map(|(name, t)| TableSummary {
                table: name.clone(),
                rows_per_statement: t.per_statement.mean,
                rows_per_window: t.per_window.mean,
                statements: t.per_statement.n,
            })
            .collect();
        top_tables.sort_by(|a, b| {
            b.rows_per_window
                .total_cmp(&a.rows_per_window)
                .then_with(|| a.table.cmp(&b.table))
        });
        top_tables.truncate(SUMMARY_TOP_TABLES);
        ProfileSummary {
            first_seen: p.first_seen(),
            last_seen: p.last_seen(),
            utc_offset,
            learning: p.is_learning(cfg, now),
            learning_until: p.first_seen().saturating_add(cfg.learning_secs),
            active_windows: p.active_windows,
            min_active_windows: cfg.min_active_windows,
            statements_seen: p.statements_seen(),
            window_secs: cfg.window_secs,
            hours,
            heat,
            top_tables,
            tables_known: p.tables.len(),
            known_fingerprints: p.fingerprints.len(),
            usual_max_distinct_keys: p.distinct_keys.mean,
            usual_errors: p.global.errors.mean,
            sensitive: p
                .global
                .sensitive
                .iter()
                .map(|(tag, s)| TagSummary {
                    tag: tag.clone(),
                    per_window: s.mean,
                })
                .collect(),
        }
    }
}

/// `2024-01-08 03:00 UTC+08:00`.
struct LocalTime(u64, i32);

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = i128::from(self.0) + i128::from(self.1);
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let off = self.1.unsigned_abs();
        let sign = if self.1 < 0 { '-' } else { '+' };
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC{sign}{:02}:{:02}",
            secs / 3_600,
            secs % 3_600 / 60,
            off / 3_600,
            off % 3_600 / 60
        )
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    (y, m, d)
}

/// A table name cut to [`MAX_NAME_WIDTH`] characters.
fn short(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_WIDTH {
        name.to_owned()
    } else {
        let mut s: String = name.chars().take(MAX_NAME_WIDTH - 1).collect();
        s.push('…');
        s
    }
}

impl fmt::Display for ProfileSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |t| LocalTime(t, self.utc_offset);
        writeln!(f, "identity baseline")?;
        writeln!(f, "  first seen       {}", at(self.first_seen))?;
        writeln!(f, "  last seen        {}", at(self.last_seen))?;
        writeln!(f, "  statements       {}", self.statements_seen)?;
        if self.learning {
            writeln!(
                f,
                "  learning         yes: until {} and {} active windows ({} so far)",
                at(self.learning_until),
                self.min_active_windows,
                self.active_windows
            )?;
        } else {
            writeln!(
                f,
                "  learning         no: established ({} active windows)",
                self.active_windows
            )?;
        }
        writeln!(f, "  fingerprints     {} known", self.known_fingerprints)?;
        writeln!(f, "  tables           {} known", self.tables_known)?;
        writeln!(
            f,
            "  distinct keys    usually {} per fingerprint per window at most",
            Num(self.usual_max_distinct_keys)
        )?;
        writeln!(
            f,
            "  errors           usually {} failed statements per window",
            Num(self.usual_errors)
        )?;

        writeln!(f)?;
        writeln!(
            f,
            "usual {}-second window by local hour of day",
            self.window_secs
        )?;
        writeln!(
            f,
            "  {:<6} {:>12} {:>12} {:>8} {:>8}",
            "hour", "statements", "rows", "errors", "windows"
        )?;
        for h in &self.hours {
            writeln!(
                f,
                "  {:02}:00  {:>12} {:>12} {:>8} {:>8}",
                h.hour,
                Num(h.statements).to_string(),
                Num(h.rows).to_string(),
                Num(h.errors).to_string(),
                h.samples
            )?;
        }

        writeln!(f)?;
        writeln!(
            f,
            "activity by local hour of the week (\"{}\": none to busiest)",
            String::from_utf8_lossy(HEAT)
        )?;
        writeln!(f, "        0         1         2")?;
        writeln!(f, "        012345678901234567890123")?;
        let busiest = self.heat.iter().flatten().copied().fold(0.0_f64, f64::max);
        for (day, row) in self.heat.iter().enumerate() {
            let name = DAY_NAMES.get(day).copied().unwrap_or("?");
            let cells: String = row.iter().map(|&share| heat_char(share, busiest)).collect();
            writeln!(f, "  {name}  |{cells}|")?;
        }

        writeln!(f)?;
        writeln!(f, "top tables (by usual rows per active window)")?;
        if self.top_tables.is_empty() {
            writeln!(f, "  (none)")?;
        } else {
            let names: Vec<String> = self.top_tables.iter().map(|t| short(&t.table)).collect();
            let width = names
                .iter()
                .map(|n| n.chars().count())
                .max()
                .unwrap_or(0)
                .max("table".len());
            writeln!(
                f,
                "  {:<width$}  {:>14}  {:>12}  {:>10}",
                "table", "rows/statement", "rows/window", "statements"
            )?;
            for (t, name) in self.top_tables.iter().zip(&names) {
                writeln!(
                    f,
                    "  {:<width$}  {:>14}  {:>12}  {:>10}",
                    name,
                    Num(t.rows_per_statement).to_string(),
                    Num(t.rows_per_window).to_string(),
                    t.statements
                )?;
            }
        }

        if !self.sensitive.is_empty() {
            writeln!(f)?;
            writeln!(f, "sensitive values per window (usual)")?;
            let width = self
                .sensitive
                .iter()
                .map(|t| t.tag.chars().count())
                .max()
                .unwrap_or(0);
            for t in &self.sensitive {
                writeln!(
                    f,
                    "  {:<width$}  {:>10}",
                    t.tag,
                    Num(t.per_window).to_string()
                )?;
            }
        }
        Ok(())
    }
}

/// The heat-map character for `share` relative to the busiest hour: blank
/// for none, at least `.` for any activity.
fn heat_char(share: f64, busiest: f64) -> char {
    if !(share > 0.0 && busiest > 0.0) {
        return ' ';
    }
    let top = HEAT.len() - 1;
    let level = ((share / busiest) * top as f64).ceil() as usize;
    HEAT.get(level.clamp(1, top))
        .map_or(' ', |&b| char::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let cases: &[(u64, i32, &str)] = &[
            (0, 0, "1970-01-01 00:00 UTC+00:00"),
            (1_704_067_200, 8 * 3_600, "2024-01-01 08:00 UTC+08:00"),
            (1_709_251_199, 0, "2024-02-29 23:59 UTC+00:00"),
            (
                1_704_067_200,
                -(5 * 3_600 + 1_800),
                "2023-12-31 18:30 UTC-05:30",
            ),
        ];
        for &(t, off, want) in cases {
            assert_eq!(LocalTime(t, off).to_string(), want);
        }
    }

    #[test]
    fn heat_levels() {
        assert_eq!(heat_char(0.0, 1.0), ' ');
        assert_eq!(heat_char(0.0001, 1.0), '.');
        assert_eq!(heat_char(1.0, 1.0), '@');
        assert_eq!(heat_char(0.5, 1.0), '+');
        assert_eq!(heat_char(0.4, 1.0), '=');
        assert_eq!(heat_char(f64::NAN, 1.0), ' ');
    }

    #[test]
    fn long_names_are_shortened() {
        let long = "s".repeat(100);
        assert_eq!(short(&long).chars().count(), MAX_NAME_WIDTH);
        assert_eq!(short("public.citizens"), "public.citizens");
    }
}
