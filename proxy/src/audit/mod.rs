//! The audit trail: one hash-chained JSON Lines record per statement and
//! session event, written off the hot path, verifiable afterwards.
//!
//! Owns the `[audit]` settings, the record format and hash chain, the writer
//! thread with its queue, rotation and durability policies, and `verify`.
//! Must never block a tokio worker on file I/O, never let a session panic
//! because auditing failed (callers get an `AuditError` and decide), and
//! never remove or rewrite a complete record already on disk.
//!
//! The format, the failure answers and the verify report are described for
//! operators in `docs/audit.md`.

mod anchor;
mod chain;
pub mod event;
mod files;
mod forward;
mod prune;
mod resume;
pub mod search;
mod settings;
pub mod statement;
mod verify;
mod writer;

use std::path::PathBuf;

// The module's whole public API; the binary uses only part of it so far.
#[allow(unused_imports)]
pub use event::{AuditEvent, EventKind, EvidenceOut, Outcome};
#[allow(unused_imports)]
pub use prune::{prune_now, PruneOutcome};
#[allow(unused_imports)]
pub use settings::{
    AuditSettings, AuditSyslogSettings, Fsync, HashAlgorithm, OnError, OnFull, RetentionAction,
    StatementText,
};
#[allow(unused_imports)]
pub use verify::{verify_dir, ProblemKind, PrunedNote, VerifyProblem, VerifyReport};
#[allow(unused_imports)]
pub use writer::{start, AuditTask, Auditor, WriterStats};

/// Everything that can go wrong in auditing. Variants carry the path and say
/// what to fix; damage found by verify is not an error but a `VerifyReport`.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid [audit] settings: {0}")]
    InvalidSettings(String),

    #[error("cannot create audit directory {dir}: {source}; create it or point audit.dir at a writable directory")]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot list audit directory {dir}: {source}; check that it exists and is readable")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot open audit file {path}: {source}; it must be a regular file the danxia user can read and write in a directory it can write")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot read audit file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot write audit file {path}: {source}; free disk space or repair the file system (writes resume by themselves)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot cut the partial record at the end of audit file {path}: {source}; make the file writable, or move it aside to start a new chain")]
    Truncate {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot fsync {path}: {source}; records written since the last fsync may not be on disk — check the disk and its kernel log")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot encode audit record seq {seq}: {reason}")]
    Encode { seq: u64, reason: String },

    #[error("audit queue full ({capacity} events): event dropped; raise audit.queue_capacity or find why the audit disk is slow")]
    QueueFull { capacity: usize },

    #[error("the audit writer has stopped: events can no longer be recorded; see the earlier audit errors in the log")]
    WriterStopped,

    #[error("cannot start the audit writer thread: {source}")]
    Spawn { source: std::io::Error },

    #[error("the audit writer for {dir} panicked; events still queued were lost — run `danxia audit verify` on the directory")]
    WriterPanicked { dir: PathBuf },

    #[error("audit directory {dir} is in use by another danxia process (it holds {lock}); one writer per directory keeps the chain whole: stop the other process or point audit.dir elsewhere")]
    Locked { dir: PathBuf, lock: PathBuf },

    #[error("cannot prune audit file {path}: {source}; check the permissions of the audit and archive directories")]
    Prune {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("invalid search: {0}")]
    Search(String),
}
