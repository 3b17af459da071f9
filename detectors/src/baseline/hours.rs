//! When an identity is active: a decayed count of its statements in each
//! local hour of the week (168 buckets), and how rare a given hour is for
//! it. Also owns the local-time arithmetic (hour of day, hour of week,
//! labels) the rest of the module uses. Knows nothing of volumes.
//!
//! A bucket's share is smoothed before it is judged, so an hour next to a
//! busy one, or one that is busy on the other weekdays, is not "rare" just
//! because this particular hour happened to be quiet:
//!
//! ```text
//! smoothed(h) = c[h] + 0.5·(c[h−1] + c[h+1]) + 0.3·Σ c[same hour, other days of the same kind]
//! share(h)    = smoothed(h) / Σ smoothed
//! score(h)    = clamp(2 · log10((1/168) / max(share, 1e-6)), 0, 8)
//! ```
//!
//! (weekdays and weekend days are the two kinds). An hour as busy as the
//! average scores 0, one 100× rarer scores 4, one never seen ~7.5.

use serde::{Deserialize, Serialize};

pub(crate) const HOURS_PER_DAY: usize = 24;
pub(crate) const HOURS_PER_WEEK: usize = 7 * HOURS_PER_DAY;
pub(crate) const SECS_PER_HOUR: i128 = 3_600;
pub(crate) const SECS_PER_DAY: i128 = 86_400;
/// 1970-01-01, day 0 of unix time, was a Thursday (Monday = 0).
const EPOCH_WEEKDAY: i128 = 3;
const WEEKDAYS: f64 = 5.0;
const WEEKEND_DAYS: f64 = 2.0;
pub(crate) const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Time constant of the counts' decay: four weeks, so a changed routine
/// takes over within a month while one odd night does not.
pub const HOUR_MEMORY_SECS: f64 = 28.0 * 86_400.0;
/// Weight of each neighbouring hour in the smoothed share.
pub const NEIGHBOUR_HOUR_WEIGHT: f64 = 0.5;
/// Weight of the same hour on each other day of the same kind.
pub const SAME_KIND_DAY_WEIGHT: f64 = 0.3;
/// Shares below this count as this (an hour never seen scores ~7.5).
pub const MIN_HOUR_SHARE: f64 = 1e-6;
/// Score per factor of ten below the average share.
pub const HOUR_SCORE_PER_DECADE: f64 = 2.0;
/// Highest hour-of-week score.
pub const MAX_HOUR_SCORE: f64 = 8.0;

fn local_secs(at: u64, utc_offset: i32) -> i128 {
    i128::from(at) + i128::from(utc_offset)
}

/// Local hour of day (0–23) at `at`.
pub(crate) fn hour_of_day(at: u64, utc_offset: i32) -> usize {
    (local_secs(at, utc_offset).rem_euclid(SECS_PER_DAY) / SECS_PER_HOUR) as usize
}

/// Local hour of the week (0 = Monday 00:00 … 167 = Sunday 23:00) at `at`.
pub(crate) fn hour_of_week(at: u64, utc_offset: i32) -> usize {
    let local = local_secs(at, utc_offset);
    let weekday = (local.div_euclid(SECS_PER_DAY) + EPOCH_WEEKDAY).rem_euclid(7) as usize;
    weekday * HOURS_PER_DAY + hour_of_day(at, utc_offset)
}

/// `"Tue 03:00"`.
pub(crate) fn label(hour_of_week: usize) -> String {
    let day = DAY_NAMES
        .get(hour_of_week / HOURS_PER_DAY)
        .copied()
        .unwrap_or("?");
    format!("{day} {:02}:00", hour_of_week % HOURS_PER_DAY)
}

fn is_weekend(day: usize) -> bool {
    day >= 5
}

/// Decayed statement counts per local hour of the week.
///
/// Serialised as the plain list of 168 counts; the per-kind totals are
/// derived and rebuilt on load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<f64>", into = "Vec<f64>")]
pub(crate) struct HourOfWeek {
    counts: Vec<f64>,
    weekday_total: f64,
    weekend_total: f64,
}

impl Default for HourOfWeek {
    fn default() -> Self {
        HourOfWeek {
            counts: vec![0.0; HOURS_PER_WEEK],
            weekday_total: 0.0,
            weekend_total: 0.0,
        }
    }
}

impl TryFrom<Vec<f64>> for HourOfWeek {
    type Error = String;

    fn try_from(counts: Vec<f64>) -> Result<Self, String> {
        if counts.len() != HOURS_PER_WEEK {
            return Err(format!(
                "hour-of-week counts: expected {HOURS_PER_WEEK}, got {}",
                counts.len()
            ));
        }
        let mut h = HourOfWeek {
            // A damaged count is dropped rather than trusted.
            counts: counts
                .into_iter()
                .map(|c| if c.is_finite() && c > 0.0 { c } else { 0.0 })
                .collect(),
            weekday_total: 0.0,
            weekend_total: 0.0,
        };
        h.recount();
        Ok(h)
    }
}

impl From<HourOfWeek> for Vec<f64> {
    fn from(h: HourOfWeek) -> Vec<f64> {
        h.counts
    }
}

impl HourOfWeek {
    fn count(&self, h: usize) -> f64 {
        self.counts.get(h % HOURS_PER_WEEK).copied().unwrap_or(0.0)
    }

    pub fn counts(&self) -> &[f64] {
        &self.counts
    }

    fn recount(&mut self) {
        let (mut weekday, mut weekend) = (0.0, 0.0);
        for (h, c) in self.counts.iter().enumerate() {
            if is_weekend(h / HOURS_PER_DAY) {
                weekend += c;
            } else {
                weekday += c;
            }
        }
        self.weekday_total = weekday;
        self.weekend_total = weekend;
    }

    /// Counts one statement in hour `h`.
    pub fn add(&mut self, h: usize) {
        if let Some(c) = self.counts.get_mut(h) {
            *c += 1.0;
            if is_weekend(h / HOURS_PER_DAY) {
                self.weekend_total += 1.0;
            } else {
                self.weekday_total += 1.0;
            }
        }
    }

    /// Fades every count by `elapsed_secs` of the decay; called once per
    /// window change (168 multiplications), not per statement.
    pub fn decay(&mut self, elapsed_secs: f64) {
        let factor = (-elapsed_secs / HOUR_MEMORY_SECS).exp();
        for c in &mut self.counts {
            *c *= factor;
        }
        self.recount();
    }

    /// Smoothed share of hour `h` in this identity's activity (0 when it
    /// has none).
    pub fn share(&self, h: usize) -> f64 {
        let total = self.weekday_total + self.weekend_total;
        // Σ smoothed: each count appears once as itself, twice as a
        // half-weighted neighbour, and once per other day of its kind.
        let norm = 2.0 * total
            + SAME_KIND_DAY_WEIGHT
                * ((WEEKDAYS - 1.0) * self.weekday_total
                    + (WEEKEND_DAYS - 1.0) * self.weekend_total);
        if norm.is_nan() || norm <= 0.0 {
            return 0.0;
        }
        let h = h % HOURS_PER_WEEK;
        let (day, hour) = (h / HOURS_PER_DAY, h % HOURS_PER_DAY);
        let mut s = self.count(h)
            + NEIGHBOUR_HOUR_WEIGHT * (self.count(h + HOURS_PER_WEEK - 1) + self.count(h + 1));
        for other in 0..7 {
            if other != day && is_weekend(other) == is_weekend(day) {
                s += SAME_KIND_DAY_WEIGHT * self.count(other * HOURS_PER_DAY + hour);
            }
        }
        s / norm
    }

    /// How rare hour `h` is, 0 (average or busier) to [`MAX_HOUR_SCORE`].
    pub fn rarity(share: f64) -> f64 {
        let average = 1.0 / HOURS_PER_WEEK as f64;
        ((average / share.max(MIN_HOUR_SHARE)).log10() * HOUR_SCORE_PER_DECADE)
            .clamp(0.0, MAX_HOUR_SCORE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-01 00:00 UTC, a Monday.
    const MONDAY_UTC: u64 = 1_704_067_200;

    #[test]
    fn local_time_table() {
        // (at, offset, hour of day, hour of week)
        let cases: &[(u64, i32, usize, usize)] = &[
            (MONDAY_UTC, 0, 0, 0),
            (MONDAY_UTC + 3 * 3600, 0, 3, 3),
            (MONDAY_UTC, 8 * 3600, 8, 8),
            (MONDAY_UTC, -3600, 23, 167), // still Sunday locally
            (MONDAY_UTC + 86_400 + 3 * 3600 + 59, 0, 3, 27),
            (0, 0, 0, 3 * 24), // the epoch was a Thursday
            (0, -5 * 3600, 19, 2 * 24 + 19),
            (
                u64::MAX,
                i32::MAX,
                hour_of_day(u64::MAX, i32::MAX),
                hour_of_week(u64::MAX, i32::MAX),
            ),
        ];
        for &(at, off, hod, how) in cases {
            assert_eq!(hour_of_day(at, off), hod, "{at} {off}");
            assert_eq!(hour_of_week(at, off), how, "{at} {off}");
            assert!(how < HOURS_PER_WEEK);
        }
        assert_eq!(label(27), "Tue 03:00");
        assert_eq!(label(167), "Sun 23:00");
    }

    fn brute_share(h: &HourOfWeek, x: usize) -> f64 {
        let smoothed = |x: usize| {
            let (day, hour) = (x / 24, x % 24);
            let mut s = h.count(x) + 0.5 * (h.count(x + 167) + h.count(x + 1));
            for d in 0..7 {
                if d != day && (d >= 5) == (day >= 5) {
                    s += 0.3 * h.count(d * 24 + hour);
                }
            }
            s
        };
        let total: f64 = (0..HOURS_PER_WEEK).map(smoothed).sum();
        smoothed(x) / total
    }

    #[test]
    fn closed_form_normaliser_matches_the_definition() {
        let mut h = HourOfWeek::default();
        let mut seed = 0x1234_5678_u64;
        for _ in 0..5_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            h.add((seed % 168) as usize);
        }
        h.decay(86_400.0);
        let sum: f64 = (0..HOURS_PER_WEEK).map(|x| h.share(x)).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
        for x in [0, 1, 27, 100, 130, 167] {
            assert!((h.share(x) - brute_share(&h, x)).abs() < 1e-12);
        }
    }

    #[test]
    fn office_hours_make_nights_rare() {
        let mut h = HourOfWeek::default();
        for day in 0..5 {
            for hour in 9..18 {
                for _ in 0..100 {
                    h.add(day * 24 + hour);
                }
            }
        }
        let score = |x: usize| HourOfWeek::rarity(h.share(x));
        assert_eq!(score(24 + 10), 0.0, "Tue 10:00 is routine");
        assert!(score(24 + 8) < 1.0, "the hour before work is a neighbour");
        assert!(score(24 + 3) > 7.0, "Tue 03:00: {}", score(24 + 3));
        assert!(
            score(5 * 24 + 10) > 7.0,
            "Sat 10:00: {}",
            score(5 * 24 + 10)
        );
        // An empty history has no rare hours worth more than the cap.
        assert!(HourOfWeek::rarity(HourOfWeek::default().share(3)) <= MAX_HOUR_SCORE);
        // Decay keeps shares: it fades every bucket alike.
        let before = h.share(24 + 10);
        h.decay(7.0 * 86_400.0);
        assert!((h.share(24 + 10) - before).abs() < 1e-12);
        h.decay(1e30);
        assert_eq!(h.share(24 + 10), 0.0);
    }

    #[test]
    fn loading_checks_length_and_values() {
        assert!(serde_json::from_str::<HourOfWeek>("[1.0, 2.0]").is_err());
        let mut v = vec![0.0; 168];
        v[3] = -5.0;
        v[4] = 2.0;
        let h: HourOfWeek = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(h.counts()[3], 0.0);
        assert_eq!(h.weekday_total, 2.0);
    }
}
