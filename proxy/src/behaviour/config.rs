//! The `[behaviour]` table: whether baselines are kept, where their state
//! lives, the engine's windows and learning period, how identities are
//! formed, what throttling means, and (for simulation and replay only) a
//! scaled clock. Validated once at load, so the proxy never starts with a
//! setting the engine would misread.

use std::path::PathBuf;
use std::time::Duration;

use danxia_detectors::baseline::BaselineConfig;
use serde::Deserialize;

/// Where baselines, population and quarantine persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A snapshot file in `dir`, written every `sync_interval` and at
    /// shutdown (atomic replace). Needs nothing but the disk.
    Disk,
    /// Redis at `redis_url`, shared by every danxia instance using the same
    /// `redis_prefix` (profiles, population and the quarantine list).
    Redis,
    /// Nothing persists (tests, throwaway runs).
    Memory,
}

/// `[behaviour.clock]`: a clock that runs `speed` times faster than real
/// time from `start` at real unix time `anchor`. Only for simulations and
/// replays; never set it in production.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    /// RFC 3339 time the behaviour clock reads at `anchor`.
    pub start: String,
    /// Real unix time (seconds, may be fractional).
    pub anchor: f64,
    /// Behaviour seconds per real second.
    pub speed: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BehaviourConfig {
    /// Keep baselines, score statements and run `anomaly` / `window` rules.
    pub enabled: bool,
    pub store: StoreKind,
    /// Directory of the disk store (`baselines.json`).
    pub dir: PathBuf,
    /// Redis URL for `store = "redis"`.
    pub redis_url: String,
    /// Key prefix in Redis: instances sharing one prefix share baselines.
    pub redis_prefix: String,
    /// How often state is written to the store (and, with Redis, read back
    /// from the other instances).
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// Length of the short window every window measure is counted over.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long a new identity learns before its own baseline scores it.
    #[serde(with = "humantime_serde")]
    pub learning: Duration,
    /// …and in how many active windows at least.
    pub min_active_windows: u32,
    /// Client addresses are grouped into networks of this prefix length:
    /// the identity is user × application × network.
    pub network_prefix_v4: u8,
    pub network_prefix_v6: u8,
    /// Distinct key values of one statement shape in one window below
    /// which enumeration never scores.
    pub enumeration_min_distinct: u32,
    /// Identities kept; beyond it the least recently seen is forgotten.
    pub max_identities: usize,
    /// Evidence score when a user with an established baseline appears from
    /// a network it never used.
    pub new_network_score: f64,
    /// …or with an application it never used.
    pub new_application_score: f64,
    /// IANA time zone of hours of the day and week.
    pub timezone: String,
    /// A throttled identity waits this long before each statement…
    #[serde(with = "humantime_serde")]
    pub throttle_delay: Duration,
    /// …for this long after the rule that throttled it last fired.
    #[serde(with = "humantime_serde")]
    pub throttle_for: Duration,
    pub clock: Option<ClockConfig>,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        let e = BaselineConfig::default();
        BehaviourConfig {
            enabled: true,
            store: StoreKind::Disk,
            dir: PathBuf::from("var/behaviour"),
            redis_url: "redis://127.0.0.1:6379/".into(),
            redis_prefix: "danxia".into(),
            sync_interval: Duration::from_secs(30),
            window: Duration::from_secs(e.window_secs),
            learning: Duration::from_secs(e.learning_secs),
            min_active_windows: e.min_active_windows,
            network_prefix_v4: 24,
            network_prefix_v6: 64,
            enumeration_min_distinct: e.enumeration_min_distinct,
            max_identities: 10_000,
            new_network_score: 5.0,
            new_application_score: 3.0,
            timezone: "Asia/Shanghai".into(),
            throttle_delay: Duration::from_millis(500),
            throttle_for: Duration::from_secs(15 * 60),
            clock: None,
        }
    }
}

impl BehaviourConfig {
    /// The engine's settings.
    pub fn engine(&self) -> BaselineConfig {
        BaselineConfig {
            window_secs: self.window.as_secs().max(1),
            learning_secs: self.learning.as_secs(),
            min_active_windows: self.min_active_windows,
            enumeration_min_distinct: self.enumeration_min_distinct,
            // Enough to see a key space walked (min_distinct is 100) while
            // bounding one window's enumeration state to ~1 MB.
            max_enum_keys: 1024,
            max_enum_fingerprints: 64,
            ..BaselineConfig::default()
        }
    }

    /// What is wrong, naming the key to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.window < Duration::from_secs(1) {
            return Err("behaviour.window must be at least 1s".into());
        }
        self.engine()
            .validate()
            .map_err(|e| format!("behaviour: {e}"))?;
        if self.network_prefix_v4 > 32 {
            return Err("behaviour.network_prefix_v4 must be 0..=32".into());
        }
        if self.network_prefix_v6 > 128 {
            return Err("behaviour.network_prefix_v6 must be 0..=128".into());
        }
        if self.max_identities == 0 {
            return Err("behaviour.max_identities must be at least 1".into());
        }
        if self.sync_interval < Duration::from_millis(100) {
            return Err("behaviour.sync_interval must be at least 100ms".into());
        }
        for (k, v) in [
            ("new_network_score", self.new_network_score),
            ("new_application_score", self.new_application_score),
        ] {
            if !(0.0..=50.0).contains(&v) {
                return Err(format!("behaviour.{k} must be between 0 and 50"));
            }
        }
        if self.throttle_delay > Duration::from_secs(60) {
            return Err(
                "behaviour.throttle_delay must be at most 60s (a client would time out)".into(),
            );
        }
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            return Err(format!(
                "behaviour.timezone `{}` is not a known IANA time zone (e.g. Asia/Shanghai, UTC)",
                self.timezone
            ));
        }
        if self.store == StoreKind::Redis && !self.redis_url.starts_with("redis://") {
            return Err(
                "behaviour.redis_url must be redis://host:port/ (TLS to Redis is not supported)"
                    .into(),
            );
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            return Err("behaviour.redis_prefix must be a non-empty word".into());
        }
        if let Some(c) = &self.clock {
            if c.start.parse::<jiff::Timestamp>().is_err() {
                return Err(format!(
                    "behaviour.clock.start `{}` is not an RFC 3339 time (e.g. 2026-11-04T00:00:00+08:00)",
                    c.start
                ));
            }
            if !(c.speed.is_finite() && c.speed > 0.0 && c.speed <= 1e6) {
                return Err("behaviour.clock.speed must be above 0 and at most 1000000".into());
            }
            if !c.anchor.is_finite() || c.anchor < 0.0 {
                return Err("behaviour.clock.anchor must be a unix time in seconds".into());
            }
        }
        Ok(())
    }
}
