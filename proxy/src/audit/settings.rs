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

/// Digest of the hash chain. Every record not hashed with SHA-256 names its
/// digest in an `alg` field (see `chain.rs`), so verify never has to guess
/// and files written before a change of `audit.hash` stay verifiable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    #[default]
    Sha256,
    /// GB/T 32905-2016, the national commercial cryptography hash.
    Sm3,
}

/// Shortest retention accepted without `allow_short_retention`: the
/// Cybersecurity Law of the PRC (art. 21) requires network logs to be kept
/// for no less than six months.
pub const MIN_LAWFUL_RETENTION: Duration = Duration::from_secs(180 * 86_400);

const DEFAULT_RETENTION: Duration = MIN_LAWFUL_RETENTION;

/// What happens to audit files older than the retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionAction {
    /// Remove the files.
    #[default]
    Delete,
    /// Move them into `archive_dir` (cold storage, a mount shipped off-host).
    Archive,
}

/// Largest accepted `audit.syslog.queue_capacity`: each queued record holds
/// its line (up to `max_message_bytes` are sent).
pub const MAX_SYSLOG_QUEUE: usize = 1 << 20;
/// Smallest `max_message_bytes`: RFC 5426 receivers must accept 480 bytes;
/// below 1 KiB the records of most statements would be cut.
pub const MIN_SYSLOG_MESSAGE: usize = 1024;
/// Largest `max_message_bytes`: one record per message, bounded.
pub const MAX_SYSLOG_MESSAGE: usize = 1024 * 1024;
const DEFAULT_SYSLOG_QUEUE: usize = 4096;
const DEFAULT_SYSLOG_MESSAGE: usize = 8192;
const DEFAULT_SYSLOG_APP_NAME: &str = "danxia";
/// RFC 5424 §6.2.5 and §6.2.4.
const MAX_APP_NAME_LEN: usize = 48;
const MAX_HOSTNAME_LEN: usize = 255;

/// `[audit.syslog]`: a copy of audit records for the SOC's collector. The
/// file stays the source of truth: records are forwarded after they are
/// written, from a bounded queue, and dropped (counted) rather than ever
/// slowing the writer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSyslogSettings {
    /// `udp://host:port` (RFC 5426) or `tcp://host:port` (RFC 6587 octet
    /// counting). Required.
    pub target: String,
    pub facility: crate::alerts::Facility,
    /// APP-NAME header, at most 48 printable ASCII characters.
    pub app_name: String,
    /// HOSTNAME header; empty uses this machine's host name.
    pub hostname: String,
    /// Record kinds to forward (`statement`, `alert`, `session_start`, …).
    /// With `decisions`: a record is forwarded when its kind is in `kinds`
    /// or its verdict in `decisions`; both empty forwards every record.
    pub kinds: Vec<String>,
    /// Verdicts to forward (`allowed`, `denied`, `would_deny`).
    pub decisions: Vec<String>,
    /// Longest message sent; a longer record has its statement cut.
    pub max_message_bytes: usize,
    /// Records waiting for the collector; more are dropped and counted.
    pub queue_capacity: usize,
}

impl Default for AuditSyslogSettings {
    fn default() -> Self {
        AuditSyslogSettings {
            target: String::new(),
            facility: crate::alerts::Facility::default(),
            app_name: DEFAULT_SYSLOG_APP_NAME.into(),
            hostname: String::new(),
            kinds: Vec::new(),
            decisions: Vec::new(),
            max_message_bytes: DEFAULT_SYSLOG_MESSAGE,
            queue_capacity: DEFAULT_SYSLOG_QUEUE,
        }
    }
}

/// The verdicts a statement record can carry.
pub const VERDICTS: &[&str] = &["allowed", "denied", "would_deny"];

impl AuditSyslogSettings {
    /// `(tcp, "host:port")` of `target`.
    pub fn transport(&self) -> Option<(bool, &str)> {
        let (tcp, rest) = if let Some(rest) = self.target.strip_prefix("udp://") {
            (false, rest)
        } else if let Some(rest) = self.target.strip_prefix("tcp://") {
            (true, rest)
        } else {
            return None;
        };
        crate::alerts::split_host_port(rest).map(|_| (tcp, rest))
    }

    fn validate(&self) -> Result<(), String> {
        if self.transport().is_none() {
            return Err(format!(
                "audit.syslog.target must be udp://host:port or tcp://host:port ([ipv6]:port for IPv6), got {:?}",
                self.target
            ));
        }
        let printable = |s: &str| s.bytes().all(|b| (33..=126).contains(&b));
        if self.app_name.len() > MAX_APP_NAME_LEN || !printable(&self.app_name) {
            return Err(format!(
                "audit.syslog.app_name must be at most {MAX_APP_NAME_LEN} printable ASCII characters without spaces (got {:?})",
                self.app_name
            ));
        }
        if self.hostname.len() > MAX_HOSTNAME_LEN || !printable(&self.hostname) {
            return Err(format!(
                "audit.syslog.hostname must be empty or at most {MAX_HOSTNAME_LEN} printable ASCII characters without spaces (got {:?})",
                self.hostname
            ));
        }
        if !(MIN_SYSLOG_MESSAGE..=MAX_SYSLOG_MESSAGE).contains(&self.max_message_bytes) {
            return Err(format!(
                "audit.syslog.max_message_bytes must be between {MIN_SYSLOG_MESSAGE} and {MAX_SYSLOG_MESSAGE} (got {})",
                self.max_message_bytes
            ));
        }
        if !(1..=MAX_SYSLOG_QUEUE).contains(&self.queue_capacity) {
            return Err(format!(
                "audit.syslog.queue_capacity must be between 1 and {MAX_SYSLOG_QUEUE} (got {})",
                self.queue_capacity
            ));
        }
        for kind in &self.kinds {
            if !super::event::KIND_NAMES.contains(&kind.as_str()) {
                return Err(format!(
                    "audit.syslog.kinds: unknown kind {kind:?}; known kinds: {}",
                    super::event::KIND_NAMES.join(", ")
                ));
            }
        }
        for d in &self.decisions {
            if !VERDICTS.contains(&d.as_str()) {
                return Err(format!(
                    "audit.syslog.decisions: unknown verdict {d:?}; use {}",
                    VERDICTS.join(", ")
                ));
            }
        }
        Ok(())
    }
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
    /// Files whose newest record is older than this are pruned (never the
    /// file being written). At least 180 days unless `allow_short_retention`.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Accept a retention below 180 days (tests, or logs shipped elsewhere
    /// that keep the legal copy).
    pub allow_short_retention: bool,
    pub retention_action: RetentionAction,
    /// Where `archive` moves pruned files; required with `archive`.
    pub archive_dir: Option<PathBuf>,
    /// Optional forwarding of records to a syslog collector.
    pub syslog: Option<AuditSyslogSettings>,
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
            retention: DEFAULT_RETENTION,
            allow_short_retention: false,
            retention_action: RetentionAction::default(),
            archive_dir: None,
            syslog: None,
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
        if self.retention.is_zero() {
            return Err("audit.retention must be greater than 0 (default \"180d\")".into());
        }
        if self.retention < MIN_LAWFUL_RETENTION && !self.allow_short_retention {
            return Err(format!(
                "audit.retention = \"{}\" is shorter than 180 days: the Cybersecurity Law (art. 21) requires network logs to be kept for at least six months; use \"180d\" or more, or set audit.allow_short_retention = true if another system keeps the legal copy",
                humantime_serde::re::humantime::format_duration(self.retention)
            ));
        }
        match (&self.retention_action, &self.archive_dir) {
            (RetentionAction::Archive, None) => {
                return Err(
                    "audit.retention_action = \"archive\" needs audit.archive_dir (where pruned files go)".into(),
                )
            }
            (RetentionAction::Archive, Some(a)) if a == &self.dir => {
                return Err("audit.archive_dir must not be audit.dir itself".into())
            }
            _ => {}
        }
        if let Some(s) = &self.syslog {
            s.validate()?;
        }
        Ok(())
    }

    /// How often the writer looks for files to prune: hourly, or twice per
    /// retention when that is shorter (tests), but at most once a second.
    pub fn prune_interval(&self) -> Duration {
        (self.retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(3600))
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
