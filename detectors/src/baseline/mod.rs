//! Behaviour baselines: what each identity normally does, learned from the
//! statements it completes, and how far one statement — and the short
//! window it falls in — departs from that. Owns the per-identity
//! [`Profile`], the [`Population`] that stands in for identities too new to
//! have a baseline of their own, and the scoring with its [`Evidence`].
//!
//! It must never read a clock (time is always passed in, so tests and
//! replays are deterministic), do I/O, or grow without bound on what a
//! client sends: every map below has a cap from [`BaselineConfig`] or a
//! named constant. Everything is plain serde data so the proxy can persist
//! profiles as JSON.
//!
//! ## The model, in one page
//!
//! * **Windows.** Time is cut into windows of `window_secs` (10 minutes by
//!   default). The profile keeps running totals of the current window;
//!   when a later statement (or [`Profile::tick`]) arrives the window is
//!   *closed* and its totals folded into robust running statistics
//!   (`stats.rs`: an exponentially weighted mean and mean absolute
//!   deviation). Empty windows after a gap are folded as zeros, which is
//!   what makes 3 a.m. activity stand out for an identity idle at night.
//! * **Time of day.** Window measures are kept per local hour of day (24
//!   slots) as well as over the whole profile; a statement is compared with
//!   its hour's slot once that has enough samples.
//! * **Deviation.** `score = (observed − expected) / scale` with
//!   `scale = max(1.5·dev, 0.25·mean, floor)`. Only increases score. Floors
//!   (`score.rs`) keep an identity with a very steady history from alerting
//!   on noise.
//! * **Rarity of the hour** (`hours.rs`): a decayed count of statements per
//!   hour of the week, smoothed over neighbouring hours and same-kind days.
//! * **Enumeration** (`enumeration.rs`): per statement shape, distinct key
//!   values (the caller's digests of its literals) in the window.
//! * **Errors** (`score.rs`): statements that failed because of the caller,
//!   per window, scored like the other counts but weighted by their share
//!   of the window — 30 errors among 30 statements is probing, 30 among
//!   10 000 is not.
//! * **Learning.** A new identity first learns for `learning_secs` and
//!   `min_active_windows` windows; meanwhile it is scored against a
//!   [`Prior`] — the [`Population`] of all identities, or another profile —
//!   and never on hour rarity or new tables, which need its own history.
//!
//! The combined score is `sqrt(Σ score²)` over evidence items scoring at
//! least 1, capped at `score_cap`; the evidence says which measure, observed
//! against expected, so an analyst can see why.

mod config;
mod enumeration;
mod evidence;
mod fingerprints;
mod hours;
mod population;
mod profile;
mod score;
mod stats;
mod summary;
mod tables;
mod window;

#[cfg(test)]
mod scenarios;

pub use config::{
    BaselineConfig, MAX_ENUM_FINGERPRINTS_LIMIT, MAX_ENUM_KEYS_LIMIT, MAX_FILL_WINDOWS_LIMIT,
    MAX_FINGERPRINTS_LIMIT, MAX_TABLES_LIMIT, MAX_WINDOW_SECS,
};
pub use evidence::{Assessment, Evidence, Measure};
pub use hours::{
    HOUR_MEMORY_SECS, HOUR_SCORE_PER_DECADE, MAX_HOUR_SCORE, MIN_HOUR_SHARE, NEIGHBOUR_HOUR_WEIGHT,
    SAME_KIND_DAY_WEIGHT,
};
pub use population::Population;
pub use profile::Profile;
pub use score::{
    ERROR_SHARE, EVIDENCE_MIN_SCORE, FLOOR_BYTES, FLOOR_DISTINCT_TABLES, FLOOR_ENUMERATION,
    FLOOR_ERRORS, FLOOR_NEW_FINGERPRINTS, FLOOR_ROWS, FLOOR_ROWS_PER_STATEMENT, FLOOR_SENSITIVE,
    FLOOR_STATEMENTS, FLOOR_TABLE_ROWS, MAX_EVIDENCE, MIN_ERRORS,
};
pub use stats::{DEV_WEIGHT, MEAN_WEIGHT};
pub use summary::{HourSummary, ProfileSummary, TableSummary, TagSummary, SUMMARY_TOP_TABLES};
pub use tables::POPULATION_MAX_TABLES;
pub use window::{WindowTotals, MAX_SENSITIVE_TAGS, MAX_TABLES_PER_STATEMENT};

/// One completed statement, as the proxy saw it. Borrowed so that the hot
/// path builds it without allocating.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// When it completed, unix seconds (the behaviour clock).
    pub at: u64,
    /// The local offset from UTC at `at`, seconds: hours of day and of the
    /// week are local, because people keep local hours.
    pub utc_offset: i32,
    /// The statement's shape (see [`crate::Fingerprint`]).
    pub fingerprint: u64,
    /// Normalised table names it touched, possibly none. Duplicates are
    /// counted once; only the first [`MAX_TABLES_PER_STATEMENT`] are used.
    pub tables: &'a [String],
    /// Rows returned or affected.
    pub rows: u64,
    /// Bytes sent to the client.
    pub bytes: u64,
    /// Sensitive values returned, by tag (`"pii.id_number"`, …).
    pub sensitive: &'a [(&'a str, u64)],
    /// A digest of the statement's literal / parameter values, for
    /// enumeration; `None` when it has none.
    pub key_digest: Option<u64>,
    /// It failed because of the caller: refused, an HTTP 4xx (401, 403,
    /// 404, …), an SQL error of class 42 (syntax error, insufficient
    /// privilege, undefined table). A burst of them is probing for what
    /// exists or is allowed. Server-side failures are not the caller's
    /// and are `false`.
    pub error: bool,
}

/// What a learning identity is compared with instead of its own history.
#[derive(Debug, Clone, Copy)]
pub enum Prior<'a> {
    /// Nothing: a learning identity scores 0.
    None,
    /// The typical identity (whole-population window statistics).
    Population(&'a Population),
    /// Another identity's profile, used exactly as if it were this one's —
    /// e.g. the same user from its usual network, when it appears from a
    /// new one.
    Profile(&'a Profile),
}
