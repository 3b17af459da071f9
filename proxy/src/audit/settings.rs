//! The `[audit]` table of `danxia.toml`: where the audit files go, how much
//! the writer may buffer, and what happens when the queue is full or the disk
//! fails.
//!
//! Owns parsing defaults and validation only. Must never open files or start
//! threads: a configuration that fails `validate` must leave nothing behind.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Smallest accepted `rotate_bytes`. Below one page a file would hold only a
/// handful of records and the directory would fill with tiny files.
pub const MIN_ROTATE_BYTES: u64 = 4096;

/// Largest accepted `queue_capacity`. Each queued event holds its statement
/// text, so 16 Mi events can already pin gigabytes of memory while the disk is
/// slow; a larger queue only postpones the moment `on_full` applies.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;

const DEFAULT_DIR: &str = "var/audit";
const DEFAULT_QUEUE_CAPACITY: usize = 65_536;
const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_ROTATE_BYTES: u64 = 256 * 1024 * 1024;

/// How much of the statement text each event keeps. Sessions apply it when
/// they build the event; the writer enforces `None` as a safety net.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementText {
    /// The statement exactly as the client sent it (literal values included).
    #[default]
    Full,
    /// Literals replaced by placeholders: keeps the shape, not the data.
    Normalized,
    /// No statement text at all; the fingerprint still identifies the shape.
    None,
}

/// What `Auditor::record` does when the queue to the writer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFull {
    /// Wait for space: nothing is lost, traffic slows to the disk's pace.
    #[default]
    Block,
    /// Drop the event and count it in `danxia_audit_events_dropped_total`.
    Drop,
}

/// What the writer does when writing, flushing or syncing a file fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Keep the events and retry with backoff until the disk is back; the
    /// queue fills and sessions wait (fail closed).
    #[default]
    Block,
    /// Count the events as lost and carry on (fail open); the chain records
    /// the loss in an `audit_recovery` event once writes work again.
    Continue,
}

/// When the writer asks the kernel to put written records on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Never: records sit in the OS page cache until the kernel writes them.
    None,
    /// After a batch, at most once per `fsync_interval`, and always before a
    /// file is closed or the writer stops.
    #[default]
    Batch,
    /// After every record: the slowest mode, at most one record lost in a
    /// power cut.
    Every,
}

/// Digest of the hash chain. Adding SM3 is one variant here plus its arm in
/// `chain.rs`; verify tries every variant, so old files stay verifiable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    #[default]
    Sha256,
}

/// The validated `[audit]` table. Every key is optional; the defaults are the
/// values shipped in `danxia.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Directory of the JSON Lines files, created if missing.
    pub dir: PathBuf,
    pub statement_text: StatementText,
    /// Bounded queue between sessions and the writer, in events.
    pub queue_capacity: usize,
    pub on_full: OnFull,
    pub on_error: OnError,
    pub fsync: Fsync,
    /// Longest time a written record may wait for its fsync in `batch` mode.
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// A new file starts when the current one would grow beyond this size.
    pub rotate_bytes: u64,
    /// A new file starts when the UTC day of the records changes.
    pub rotate_daily: bool,
    pub hash: HashAlgorithm,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            dir: PathBuf::from(DEFAULT_DIR),
            statement_text: StatementText::default(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            on_full: OnFull::default(),
            on_error: OnError::default(),
            fsync: Fsync::default(),
            fsync_interval: DEFAULT_FSYNC_INTERVAL,
            rotate_bytes: DEFAULT_ROTATE_BYTES,
            rotate_daily: true,
            hash: HashAlgorithm::default(),
        }
    }
}

impl AuditSettings {
    /// Checks the values serde cannot: says which key is wrong and what is
    /// expected, so the operator can fix the file without reading code.
    pub fn validate(&self) -> Result<(), String> {
        if self.dir.as_os_str().is_empty() {
            return Err("audit.dir must not be empty (default \"var/audit\")".into());
        }
        if self.queue_capacity < 1 {
            return Err("audit.queue_capacity must be at least 1".into());
        }
        if self.queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(format!(
                "audit.queue_capacity must be at most {MAX_QUEUE_CAPACITY} (got {})",
                self.queue_capacity
            ));
        }
        if self.rotate_bytes < MIN_ROTATE_BYTES {
            return Err(format!(
                "audit.rotate_bytes must be at least {MIN_ROTATE_BYTES} (got {})",
                self.rotate_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped configuration file, so its `[audit]` table and these
    /// defaults cannot drift apart unnoticed.
    const SHIPPED: &str = include_str!("../../../danxia.toml");

    fn parse(text: &str) -> Result<AuditSettings, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn shipped_table_equals_defaults() {
        let table: toml::Table = toml::from_str(SHIPPED).expect("danxia.toml parses");
        let audit = table.get("audit").expect("danxia.toml has [audit]").clone();
        let shipped: AuditSettings = audit.try_into().expect("[audit] deserialises");
        assert_eq!(shipped, AuditSettings::default());
        assert_eq!(shipped.validate(), Ok(()));
    }

    #[test]
    fn empty_table_gives_defaults() {
        assert_eq!(parse("").expect("empty parses"), AuditSettings::default());
    }

    #[test]
    fn every_enum_spelling_parses() {
        let s = parse(
            r#"statement_text = "normalized"
               on_full = "drop"
               on_error = "continue"
               fsync = "every"
               fsync_interval = "250ms"
               hash = "sha256""#,
        )
        .expect("parses");
        assert_eq!(s.statement_text, StatementText::Normalized);
        assert_eq!(s.on_full, OnFull::Drop);
        assert_eq!(s.on_error, OnError::Continue);
        assert_eq!(s.fsync, Fsync::Every);
        assert_eq!(s.fsync_interval, Duration::from_millis(250));
        assert_eq!(s.hash, HashAlgorithm::Sha256);
        for (text, want) in [("full", StatementText::Full), ("none", StatementText::None)] {
            let s = parse(&format!("statement_text = \"{text}\"")).expect("parses");
            assert_eq!(s.statement_text, want);
        }
        for (text, want) in [("none", Fsync::None), ("batch", Fsync::Batch)] {
            let s = parse(&format!("fsync = \"{text}\"")).expect("parses");
            assert_eq!(s.fsync, want);
        }
    }

    #[test]
    fn unknown_keys_and_values_are_rejected() {
        for text in [
            "queue_size = 10",
            "fsync = \"always\"",
            "hash = \"md5\"",
            "fsync_interval = \"soon\"",
        ] {
            assert!(parse(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn validate_names_the_key_and_the_bound() {
        let cases: [(AuditSettings, &str); 4] = [
            (
                AuditSettings {
                    queue_capacity: 0,
                    ..Default::default()
                },
                "audit.queue_capacity must be at least 1",
            ),
            (
                AuditSettings {
                    queue_capacity: MAX_QUEUE_CAPACITY + 1,
                    ..Default::default()
                },
                "audit.queue_capacity must be at most",
            ),
            (
                AuditSettings {
                    rotate_bytes: MIN_ROTATE_BYTES - 1,
                    ..Default::default()
                },
                "audit.rotate_bytes must be at least 4096",
            ),
            (
                AuditSettings {
                    dir: PathBuf::new(),
                    ..Default::default()
                },
                "audit.dir must not be empty",
            ),
        ];
        for (settings, want) in cases {
            let err = settings.validate().expect_err("invalid settings");
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
        let edge = AuditSettings {
            queue_capacity: 1,
            rotate_bytes: MIN_ROTATE_BYTES,
            ..Default::default()
        };
        assert_eq!(edge.validate(), Ok(()));
    }
}
