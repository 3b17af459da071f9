//! The behaviour clock: real time, or for simulations and replays a clock
//! running faster from a chosen start. Also the local UTC offset, because
//! hours of the day and of the week are local. Owns nothing else.

use std::time::{SystemTime, UNIX_EPOCH};

use super::config::ClockConfig;

#[derive(Debug, Clone)]
pub struct Clock {
    scaled: Option<Scaled>,
    tz: jiff::tz::TimeZone,
}

#[derive(Debug, Clone, Copy)]
struct Scaled {
    start: f64,
    anchor: f64,
    speed: f64,
}

fn real_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Clock {
    /// `clock` and `timezone` were validated with the config.
    pub fn new(clock: Option<&ClockConfig>, timezone: &str) -> Clock {
        let scaled = clock.and_then(|c| {
            let start = c.start.parse::<jiff::Timestamp>().ok()?;
            Some(Scaled {
                start: start.as_millisecond() as f64 / 1000.0,
                anchor: c.anchor,
                speed: c.speed,
            })
        });
        Clock {
            scaled,
            tz: jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC),
        }
    }

    /// Behaviour time now, unix seconds.
    pub fn now(&self) -> u64 {
        let real = real_now();
        let t = match self.scaled {
            None => real,
            Some(s) => s.start + (real - s.anchor) * s.speed,
        };
        t.max(0.0) as u64
    }

    /// The local offset from UTC at behaviour time `at`, seconds.
    pub fn offset(&self, at: u64) -> i32 {
        jiff::Timestamp::from_second(at as i64)
            .map(|ts| self.tz.to_offset(ts).seconds())
            .unwrap_or(0)
    }

    /// Behaviour time as RFC 3339 in the local zone, for people.
    pub fn show(&self, at: u64) -> String {
        jiff::Timestamp::from_second(at as i64)
            .map(|ts| {
                ts.to_zoned(self.tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S %:z")
                    .to_string()
            })
            .unwrap_or_else(|_| at.to_string())
    }

    pub fn is_scaled(&self) -> bool {
        self.scaled.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_from_its_start() {
        let c = ClockConfig {
            start: "2026-11-04T00:00:00+08:00".into(),
            anchor: real_now(),
            speed: 1000.0,
        };
        let clock = Clock::new(Some(&c), "Asia/Shanghai");
        let start = 1_793_721_600; // 2026-11-03T16:00:00Z
        let now = clock.now();
        assert!((start..start + 60).contains(&now), "{now}");
        assert_eq!(clock.offset(now), 8 * 3600);
        assert!(
            clock.show(start).starts_with("2026-11-04 00:00:00 +08:00"),
            "{}",
            clock.show(start)
        );
        assert!(Clock::new(None, "UTC").now() > start);
    }
}
