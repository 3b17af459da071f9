//! Time windows (`time = ["mon-fri 09:00-18:00", "22:00-06:00"]`): their
//! syntax, and which of a policy's windows are open at an instant. Owns the
//! policy's time zone. The open-window set is a bitmask (one bit per
//! distinct window in the policy) so the decision cache can key on it; it
//! is recomputed at most once per minute, so a statement never pays for a
//! time-zone conversion on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jiff::tz::TimeZone;

/// The time zone a policy uses when it names none.
pub(crate) const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";
/// Most distinct time windows one policy may use: each takes one bit of the
/// 32-bit open-window mask (packed with a minute stamp into one atomic).
pub(crate) const MAX_WINDOWS: usize = 32;

const MINUTES_PER_DAY: u16 = 24 * 60;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One window: on `days` (bit 0 = Monday), from `start` (inclusive) to
/// `end` (exclusive), in minutes after local midnight. `end <= start` wraps
/// past midnight: the part after midnight belongs to the day the window
/// started on, so `fri 22:00-06:00` is open until Saturday 06:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Window {
    days: u8,
    start: u16,
    end: u16,
}

const ALL_DAYS: u8 = 0x7f;

impl Window {
    /// Parses `[DAYS] [HH:MM-HH:MM]` (at least one of the two). DAYS is a
    /// comma list of day names or ranges (`mon-fri`, `fri-mon` wraps).
    pub(crate) fn parse(text: &str) -> Result<Window, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (days, range) = match words.as_slice() {
            [one] if one.contains(':') => (None, Some(*one)),
            [one] => (Some(*one), None),
            [d, r] => (Some(*d), Some(*r)),
            _ => {
                return Err(format!(
                    "bad time window `{text}`: expected `[days] HH:MM-HH:MM`, e.g. `mon-fri 09:00-18:00`"
                ))
            }
        };
        let days = match days {
            Some(d) => parse_days(d).map_err(|e| format!("bad time window `{text}`: {e}"))?,
            None => ALL_DAYS,
        };
        let (start, end) = match range {
            Some(r) => parse_range(r).map_err(|e| format!("bad time window `{text}`: {e}"))?,
            None => (0, MINUTES_PER_DAY),
        };
        Ok(Window { days, start, end })
    }

    /// Whether the window is open on `weekday` (0 = Monday) at `minute`
    /// after local midnight.
    pub(crate) fn contains(&self, weekday: u8, minute: u16) -> bool {
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.start < self.end {
            on(weekday) && self.start <= minute && minute < self.end
        } else {
            let yesterday = (weekday + 6) % 7;
            (on(weekday) && minute >= self.start) || (on(yesterday) && minute < self.end)
        }
    }
}

fn day_index(name: &str) -> Result<u8, String> {
    let lower = name.to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|d| *d == lower)
        .map(|i| i as u8)
        .ok_or_else(|| format!("unknown day `{name}` (use mon, tue, wed, thu, fri, sat, sun)"))
}

fn parse_days(text: &str) -> Result<u8, String> {
    let mut mask = 0u8;
    for item in text.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << day_index(item)?,
        }
    }
    Ok(mask)
}

/// `HH:MM`, hours 00–24 (24 only as `24:00`, an end of day).
fn parse_clock(text: &str) -> Result<u16, String> {
    let bad = || format!("bad time `{text}` (use HH:MM, 00:00 to 24:00)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("bad time range `{text}` (use HH:MM-HH:MM)"))?;
    let (start, end) = (parse_clock(a)?, parse_clock(b)?);
    if start == MINUTES_PER_DAY {
        return Err("a window cannot start at 24:00".into());
    }
    if start == end {
        return Err(format!(
            "empty time range `{text}` (for all day use 00:00-24:00)"
        ));
    }
    Ok((start, end))
}

/// A policy's distinct windows and the cached open-window mask.
#[derive(Debug)]
pub(crate) struct Clock {
    tz: TimeZone,
    windows: Vec<Window>,
    /// `(unix minute + 1) << 32 | mask`, 0 when nothing is cached yet: one
    /// atomic, so a reader never pairs a stamp with another minute's mask.
    cached: AtomicU64,
}

impl Clock {
    pub(crate) fn new(tz: TimeZone, windows: Vec<Window>) -> Clock {
        Clock {
            tz,
            windows,
            cached: AtomicU64::new(0),
        }
    }

    /// Bit `i` is set when window `i` is open at `now`.
    pub(crate) fn open_mask(&self, now: SystemTime) -> u32 {
        if self.windows.is_empty() {
            return 0;
        }
        let Ok(since) = now.duration_since(UNIX_EPOCH) else {
            return self.compute(now);
        };
        let stamp = (since.as_secs() / 60).wrapping_add(1) & 0xffff_ffff;
        let cached = self.cached.load(Ordering::Acquire);
        if cached >> 32 == stamp {
            return cached as u32;
        }
        let mask = self.compute(now);
        self.cached
            .store(stamp << 32 | u64::from(mask), Ordering::Release);
        mask
    }

    /// Local weekday (0 = Monday) and minute of day at `now`.
    pub(crate) fn local(&self, now: SystemTime) -> Option<(u8, u16)> {
        let ts = jiff::Timestamp::try_from(now).ok()?;
        let dt = self.tz.to_datetime(ts);
        let weekday = dt.weekday().to_monday_zero_offset() as u8;
        let minute = dt.hour() as u16 * 60 + dt.minute() as u16;
        Some((weekday, minute))
    }

    fn compute(&self, now: SystemTime) -> u32 {
        // An instant jiff cannot represent (far outside ±9999 years) opens
        // no window.
        let Some((weekday, minute)) = self.local(now) else {
            return 0;
        };
        self.windows
            .iter()
            .enumerate()
            .filter(|(_, w)| w.contains(weekday, minute))
            .fold(0, |m, (i, _)| m | 1 << i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        let ok: &[(&str, u8, u16, u16)] = &[
            ("mon-fri 09:00-18:00", 0b0011111, 540, 1080),
            ("sat,sun 10:00-12:00", 0b1100000, 600, 720),
            ("22:00-06:00", ALL_DAYS, 1320, 360),
            ("fri-mon 00:00-24:00", 0b1110001, 0, 1440),
            ("Sun", 0b1000000, 0, 1440),
            ("mon,wed-thu 9:30-10:00", 0b0001101, 570, 600),
        ];
        for (text, days, start, end) in ok {
            let w = Window::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((w.days, w.start, w.end), (*days, *start, *end), "{text}");
        }
        let bad: &[(&str, &str)] = &[
            ("mon-fry 09:00-18:00", "unknown day `fry`"),
            ("09:00-25:00", "bad time `25:00`"),
            ("09:60-10:00", "bad time `09:60`"),
            ("09:00", "bad time range"),
            ("10:00-10:00", "empty time range"),
            ("mon 09:00-10:00 extra", "expected `[days] HH:MM-HH:MM`"),
            ("24:00-01:00", "cannot start at 24:00"),
        ];
        for (text, want) in bad {
            let e = Window::parse(text).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn containment() {
        let office = Window::parse("mon-fri 09:00-18:00").unwrap();
        let night = Window::parse("fri 22:00-06:00").unwrap();
        let all_day = Window::parse("sat 00:00-24:00").unwrap();
        let cases: &[(&Window, u8, u16, bool)] = &[
            (&office, 0, 9 * 60, true),
            (&office, 0, 18 * 60, false),
            (&office, 4, 17 * 60 + 59, true),
            (&office, 5, 10 * 60, false),
            (&office, 2, 8 * 60 + 59, false),
            (&night, 4, 22 * 60, true),
            (&night, 4, 21 * 60, false),
            (&night, 5, 5 * 60, true),
            (&night, 5, 6 * 60, false),
            (&night, 3, 23 * 60, false),
            (&night, 4, 3 * 60, false),
            (&all_day, 5, 0, true),
            (&all_day, 5, 1439, true),
            (&all_day, 6, 0, false),
        ];
        for (w, d, m, want) in cases {
            assert_eq!(w.contains(*d, *m), *want, "{w:?} at day {d} minute {m}");
        }
    }

    #[test]
    fn mask_follows_the_clock_in_the_policy_zone() {
        let tz = TimeZone::get(DEFAULT_TIMEZONE).expect("bundled tzdb");
        let clock = Clock::new(
            tz,
            vec![
                Window::parse("mon-fri 09:00-18:00").unwrap(),
                Window::parse("22:00-06:00").unwrap(),
            ],
        );
        // 2024-01-01 was a Monday; 01:30 UTC is 09:30 in Shanghai.
        let monday_0930 = UNIX_EPOCH + std::time::Duration::from_secs(1_704_072_600);
        assert_eq!(clock.local(monday_0930), Some((0, 570)));
        assert_eq!(clock.open_mask(monday_0930), 0b01);
        // Cached for the minute, recomputed for another.
        assert_eq!(clock.open_mask(monday_0930), 0b01);
        let monday_2300 = monday_0930 + std::time::Duration::from_secs(13 * 3600 + 1800);
        assert_eq!(clock.open_mask(monday_2300), 0b10);
        assert_eq!(clock.open_mask(monday_0930), 0b01);
    }
}
