//! Retention: which audit files are old enough to go, and removing or
//! archiving them without breaking what verify can prove.
//!
//! A file goes when its newest record is older than the cut-off; files go
//! oldest first and the first file too young stops the plan, so what stays
//! is always one unbroken piece of the chain. The newest file (the one being
//! written, or the one the next writer continues) never goes. Before any
//! file is removed the writer records an `audit_pruned` event in the chain
//! and the anchor (see `anchor.rs`); this module only plans and removes.
//!
//! Must never remove a file it could not read the last record of, and never
//! remove anything in a dry run.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::OffsetDateTime;

use super::event::PrunedRange;
use super::files::{self, AuditFile, LastLine};
use super::settings::{AuditSettings, RetentionAction};
use super::AuditError;

/// One file the plan removes, with its newest record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub file: AuditFile,
    pub last_seq: u64,
    pub last_hash: String,
    pub newest_ts: String,
}

/// What a prune did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Files removed or archived (in a dry run: that would be), oldest first.
    pub files: Vec<PathBuf>,
    /// Bytes in those files.
    pub bytes: u64,
    /// Seq range of the records in them.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The oldest record left afterwards (from its file name), if any.
    pub oldest_left: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
struct TailHead<'a> {
    seq: u64,
    #[serde(borrow)]
    ts: &'a str,
    hash: &'a str,
}

/// The newest record of `file`: seq, hash and ts; `None` when the file has
/// no complete record that parses.
fn newest_record(file: &AuditFile) -> Result<Option<(u64, String, String)>, AuditError> {
    let mut f = File::open(&file.path).map_err(|source| AuditError::Open {
        path: file.path.clone(),
        source,
    })?;
    let read_error = |source| AuditError::Read {
        path: file.path.clone(),
        source,
    };
    let len = f.metadata().map_err(read_error)?.len();
    let tail = files::read_tail(&mut f, len).map_err(read_error)?;
    let Some(LastLine::Bytes(line)) = tail.last_line else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<TailHead<'_>>(&line)
        .ok()
        .map(|h| (h.seq, h.hash.to_string(), h.ts.to_string())))
}

/// `ts` as records write it, for comparing with a record's `ts` as text
/// (the fixed-width UTC format sorts like the time it stands for).
pub(crate) fn record_ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The files of `dir` whose newest record is older than `cutoff`, oldest
/// first, stopping at the first that is not (or cannot be read). The newest
/// file and `keep` (the file being written) are never candidates.
pub(crate) fn plan(
    dir: &Path,
    cutoff: OffsetDateTime,
    keep: Option<&Path>,
) -> Result<Vec<Candidate>, AuditError> {
    let mut all = files::list(dir)?;
    all.pop(); // the newest file stays
    let cutoff = record_ts(cutoff);
    let mut out = Vec::new();
    for file in all {
        if keep == Some(file.path.as_path()) {
            break;
        }
        match newest_record(&file)? {
            Some((last_seq, last_hash, newest_ts)) if newest_ts < cutoff => out.push(Candidate {
                file,
                last_seq,
                last_hash,
                newest_ts,
            }),
            Some(_) => break,
            None => {
                tracing::warn!(file = %file.path.display(), "audit file without a readable last record: not pruned (run `danxia audit verify`)");
                break;
            }
        }
    }
    Ok(out)
}

/// The `pruned` field of the `audit_pruned` record for `plan`.
pub(crate) fn range(plan: &[Candidate], action: RetentionAction) -> Option<PrunedRange> {
    let (first, last) = (plan.first()?, plan.last()?);
    Some(PrunedRange {
        action: match action {
            RetentionAction::Delete => "delete",
            RetentionAction::Archive => "archive",
        }
        .into(),
        files: plan
            .iter()
            .map(|c| {
                c.file
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect(),
        first_seq: first.file.first_seq,
        last_seq: last.last_seq,
        last_hash: last.last_hash.clone(),
        newest_ts: last.newest_ts.clone(),
    })
}

/// Removes (or archives) the planned files, oldest first. Stops at the first
/// failure: the files left are still a contiguous chain.
pub(crate) fn execute(plan: &[Candidate], settings: &AuditSettings) -> Result<u64, AuditError> {
    let mut bytes = 0;
    for c in plan {
        let path = &c.file.path;
        let err = |source| AuditError::Prune {
            path: path.clone(),
            source,
        };
        bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        match (&settings.retention_action, &settings.archive_dir) {
            (RetentionAction::Archive, Some(archive)) => {
                std::fs::create_dir_all(archive).map_err(err)?;
                let to = archive.join(path.file_name().unwrap_or_default());
                if std::fs::rename(path, &to).is_err() {
                    // Another file system: copy, make it durable, then remove.
                    std::fs::copy(path, &to).map_err(err)?;
                    File::open(&to).and_then(|f| f.sync_all()).map_err(err)?;
                    std::fs::remove_file(path).map_err(err)?;
                }
            }
            _ => std::fs::remove_file(path).map_err(err)?,
        }
    }
    Ok(bytes)
}

/// `danxia audit prune`: prunes `settings.dir` of files whose newest record
/// is older than `before`, through a writer of its own so the
/// `audit_pruned` record continues the chain (fails with `Locked` while
/// danxia runs on the directory). A dry run only plans.
pub fn prune_now(
    settings: &AuditSettings,
    before: OffsetDateTime,
    dry_run: bool,
) -> Result<PruneOutcome, AuditError> {
    let planned = plan(&settings.dir, before, None)?;
    let mut outcome = PruneOutcome {
        files: planned.iter().map(|c| c.file.path.clone()).collect(),
        bytes: planned
            .iter()
            .map(|c| std::fs::metadata(&c.file.path).map_or(0, |m| m.len()))
            .sum(),
        first_seq: planned.first().map(|c| c.file.first_seq),
        last_seq: planned.last().map(|c| c.last_seq),
        oldest_left: None,
    };
    if !dry_run {
        // Through the writer even with nothing planned: it takes the
        // directory's lock, so a running danxia is refused either way.
        let mut s = settings.clone();
        s.syslog = None;
        let pruned = super::writer::prune_with_writer(s, before)?;
        outcome.files.truncate(pruned);
    }
    let left = files::list(&settings.dir)?;
    outcome.oldest_left = left
        .iter()
        .find(|f| !dry_run || !outcome.files.contains(&f.path))
        .map(|f| f.created);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Chain;
    use crate::audit::event::{AuditEvent, EventKind};
    use crate::audit::files::file_name;
    use crate::audit::settings::HashAlgorithm;
    use time::macros::datetime;

    /// Three files of two records each, one day apart.
    fn build(dir: &Path) -> Vec<PathBuf> {
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        let days = [
            datetime!(2026-01-01 10:00 UTC),
            datetime!(2026-01-02 10:00 UTC),
            datetime!(2026-01-03 10:00 UTC),
        ];
        days.iter()
            .map(|&t| {
                let path = dir.join(file_name(t, chain.next_seq));
                let mut out = Vec::new();
                for i in 0..2 {
                    let e = AuditEvent {
                        kind: Some(EventKind::Statement),
                        statement: Some(format!("select {i}")),
                        ..Default::default()
                    };
                    chain
                        .append(t + time::Duration::hours(i), &e, &mut out)
                        .expect("encodes");
                }
                std::fs::write(&path, out).expect("write");
                path
            })
            .collect()
    }

    #[test]
    fn the_plan_takes_old_files_oldest_first_and_never_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = build(dir.path());
        let names = |p: &[Candidate]| p.iter().map(|c| c.file.path.clone()).collect::<Vec<_>>();
        // Before the first file's newest record (11:00): nothing.
        let p = plan(dir.path(), datetime!(2026-01-01 11:00 UTC), None).expect("plans");
        assert!(p.is_empty());
        let p = plan(dir.path(), datetime!(2026-01-01 11:00:00.000001 UTC), None).expect("plans");
        assert_eq!(names(&p), paths[..1]);
        assert_eq!(
            (p[0].last_seq, p[0].newest_ts.as_str()),
            (2, "2026-01-01T11:00:00.000000Z")
        );
        // Far in the future: everything but the newest file.
        let p = plan(dir.path(), datetime!(2030-01-01 0:00 UTC), None).expect("plans");
        assert_eq!(names(&p), paths[..2]);
        let r = range(&p, RetentionAction::Delete).expect("range");
        assert_eq!((r.first_seq, r.last_seq, r.files.len()), (1, 4, 2));
        // The file being written stops the plan.
        let p = plan(dir.path(), datetime!(2030-01-01 0:00 UTC), Some(&paths[1])).expect("plans");
        assert_eq!(names(&p), paths[..1]);
        // A file whose last record cannot be read stops it too.
        std::fs::write(&paths[0], b"not a record\n").expect("write");
        let p = plan(dir.path(), datetime!(2030-01-01 0:00 UTC), None).expect("plans");
        assert!(p.is_empty());
    }

    #[test]
    fn archive_moves_and_delete_removes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = build(dir.path());
        let archive = dir.path().join("archive");
        let p = plan(dir.path(), datetime!(2030-01-01 0:00 UTC), None).expect("plans");
        let settings = AuditSettings {
            dir: dir.path().to_path_buf(),
            retention_action: RetentionAction::Archive,
            archive_dir: Some(archive.clone()),
            ..Default::default()
        };
        let bytes = execute(&p[..1], &settings).expect("archives");
        assert!(bytes > 0);
        assert!(!paths[0].exists());
        assert!(archive.join(paths[0].file_name().expect("name")).exists());
        let settings = AuditSettings {
            dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        execute(&p[1..], &settings).expect("deletes");
        assert!(!paths[1].exists() && paths[2].exists());
    }

    #[test]
    fn record_ts_matches_the_record_format() {
        assert_eq!(
            record_ts(datetime!(2026-11-26 01:02:03.000456 +08:00)),
            "2026-11-25T17:02:03.000456Z"
        );
    }
}
