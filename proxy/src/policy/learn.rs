//! `learn` mode's writer: appends each fingerprint first seen for a
//! (user, database) to the learned allowlist file, in the format the
//! policy crate reads back (`danxia_policies::allowlist`), so the security
//! team can review and edit it before switching to `enforce`.
//!
//! Sessions hand entries over a bounded queue and never wait: when the
//! queue is full the entry is dropped and counted (learning is best
//! effort; enforcement never depends on it). One task owns the file.
//!
//! Every entry carries the whole normalised statement, because the policy
//! matches that text as well as the fingerprint (a crafted statement can
//! share a fingerprint). It must never write a cut statement: one longer
//! than [`MAX_STATEMENT_CHARS`] is not learned at all.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use danxia_detectors::Fingerprint;
use danxia_policies::allowlist::{render, Entry, HEADER, MAX_STATEMENT_CHARS};
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Entries queued for the writer before sessions start dropping them.
const QUEUE: usize = 4096;
/// Entries written per file append.
const BATCH: usize = 512;

/// The handle sessions use.
pub struct Learner {
    tx: mpsc::Sender<Entry>,
    /// A too-long statement has been skipped (and warned about) already.
    warned_long: AtomicBool,
}

impl Learner {
    /// Starts the writer task for `path` (created, with its header, on the
    /// first entry).
    pub fn start(path: PathBuf) -> Arc<Learner> {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(path, rx));
        Arc::new(Learner {
            tx,
            warned_long: AtomicBool::new(false),
        })
    }

    /// Queues one observation; false when the queue is full (dropped). A
    /// statement longer than [`MAX_STATEMENT_CHARS`] is skipped (true: it
    /// is handled, not dropped for lack of room), with one warning per
    /// process: an entry must hold the whole text to ever match, so it
    /// stays `not_allowlisted`.
    pub fn record(&self, user: &str, database: &str, fp: Fingerprint, normalized: &str) -> bool {
        if too_long(normalized) {
            if !self.warned_long.swap(true, Ordering::Relaxed) {
                warn!(
                    fingerprint = %fp,
                    max_chars = MAX_STATEMENT_CHARS,
                    "statement too long to learn; it is not added to the allowlist (warned once)"
                );
            }
            return true;
        }
        self.tx
            .try_send(Entry {
                user: user.to_string(),
                database: database.to_string(),
                fingerprint: fp,
                statement: Some(normalized.to_string()),
            })
            .is_ok()
    }
}

#[derive(Deserialize)]
struct FileEntries {
    #[serde(default)]
    allow: Vec<FileEntry>,
}

/// Whether `normalized` is longer than an entry may be (checked in bytes
/// first, so the common short statement is not walked char by char).
fn too_long(normalized: &str) -> bool {
    normalized.len() > MAX_STATEMENT_CHARS && normalized.chars().count() > MAX_STATEMENT_CHARS
}

#[derive(Deserialize)]
struct FileEntry {
    user: String,
    database: String,
    fingerprint: String,
    #[serde(default)]
    statement: Option<String>,
}

/// User, database, fingerprint and statement: two statements that share a
/// fingerprint are two entries.
type Key = (String, String, u64, Option<String>);

fn key(e: &Entry) -> Key {
    (
        e.user.clone(),
        e.database.clone(),
        e.fingerprint.0,
        e.statement.clone(),
    )
}

/// What the file already holds, so restarts do not append duplicates.
fn known(path: &Path) -> HashSet<Key> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashSet::new();
    };
    match toml::from_str::<FileEntries>(&text) {
        Ok(f) => f
            .allow
            .into_iter()
            .filter_map(|e| {
                let fp: Fingerprint = e.fingerprint.parse().ok()?;
                Some((e.user, e.database, fp.0, e.statement))
            })
            .collect(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "learned allowlist does not parse; new entries are appended anyway");
            HashSet::new()
        }
    }
}

async fn write_loop(path: PathBuf, mut rx: mpsc::Receiver<Entry>) {
    let p = path.clone();
    let mut seen = tokio::task::spawn_blocking(move || known(&p))
        .await
        .unwrap_or_default();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let fresh: Vec<Entry> = batch.drain(..).filter(|e| seen.insert(key(e))).collect();
        if fresh.is_empty() {
            continue;
        }
        let p = path.clone();
        let n = fresh.len();
        let r = tokio::task::spawn_blocking(move || append(&p, &fresh)).await;
        match r {
            Ok(Ok(())) => {
                info!(path = %path.display(), entries = n, "learned statement shapes appended to the allowlist")
            }
            Ok(Err(e)) => {
                warn!(path = %path.display(), error = %e, "cannot append to the learned allowlist")
            }
            Err(e) => warn!(error = %e, "allowlist writer thread failed"),
        }
    }
}

fn append(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut out = String::new();
    if f.metadata()?.len() == 0 {
        out.push_str(HEADER);
    }
    for e in entries {
        out.push('\n');
        out.push_str(&render(e));
    }
    f.write_all(out.as_bytes())?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_statements_are_skipped_whole() {
        assert!(!too_long(&"x".repeat(MAX_STATEMENT_CHARS)));
        assert!(too_long(&"x".repeat(MAX_STATEMENT_CHARS + 1)));
        // Characters, not bytes: multi-byte text at the limit is kept.
        assert!(!too_long(&"é".repeat(MAX_STATEMENT_CHARS)));
    }

    #[tokio::test]
    async fn record_queues_the_whole_statement() {
        let (tx, mut rx) = mpsc::channel(4);
        let l = Learner {
            tx,
            warned_long: AtomicBool::new(false),
        };
        let fp = Fingerprint(1);
        assert!(l.record("app", "shop", fp, "select ?"));
        let long = "y".repeat(MAX_STATEMENT_CHARS + 1);
        assert!(l.record("app", "shop", fp, &long), "skipped, not dropped");
        assert!(l.record("app", "shop", fp, &long));
        drop(l);
        let e = rx.recv().await.expect("queued");
        assert_eq!(e.statement.as_deref(), Some("select ?"));
        assert!(rx.recv().await.is_none(), "the long statement was queued");
    }

    #[test]
    fn known_keys_include_the_statement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("allow.toml");
        let a = Entry {
            user: "app".into(),
            database: "shop".into(),
            fingerprint: Fingerprint(7),
            statement: Some("select ?".into()),
        };
        let b = Entry {
            statement: Some("select ?, ?".into()),
            ..a.clone()
        };
        append(&path, std::slice::from_ref(&a)).expect("append");
        let seen = known(&path);
        assert!(seen.contains(&key(&a)));
        assert!(!seen.contains(&key(&b)), "a colliding statement is new");
    }
}
