//! Start-up of the writer: where the chain on disk ends, so the next record
//! continues it.
//!
//! Owns the one repair the writer ever makes to existing records: cutting a
//! partial last line (a crash in the middle of a write) from the newest file,
//! and it reports every repair or doubt as a note the writer turns into an
//! `audit_recovery` record. Must never cut or rewrite a complete line: damage
//! before the tail is left for `verify` to find.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::chain::{self, Chain, HashCheck, GENESIS_PREV};
use super::files::{self, AuditFile, LastLine};
use super::settings::HashAlgorithm;
use super::AuditError;

/// Where the writer starts.
#[derive(Debug)]
pub(crate) struct Resume {
    pub chain: Chain,
    /// The file to keep appending to, if the newest one can take the next
    /// record; `None` means the first record starts a new file.
    pub current: Option<ResumeFile>,
    /// What was repaired or doubted, one `audit_recovery` record each.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResumeFile {
    pub path: PathBuf,
    pub created: OffsetDateTime,
    /// Length after any repair: only complete lines.
    pub len: u64,
}

/// Creates `dir` if missing and finds where the chain continues.
pub(crate) fn resume(dir: &Path, alg: HashAlgorithm) -> Result<Resume, AuditError> {
    std::fs::create_dir_all(dir).map_err(|source| AuditError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let files = files::list(dir)?;
    let mut notes = Vec::new();
    let Some(newest) = files.last() else {
        return Ok(Resume {
            chain: Chain::genesis(alg),
            current: None,
            notes,
        });
    };

    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&newest.path)
        .map_err(|source| open_error(&newest.path, source))?;
    let len = file
        .metadata()
        .map_err(|source| read_error(&newest.path, source))?
        .len();
    let tail =
        files::read_tail(&mut file, len).map_err(|source| read_error(&newest.path, source))?;
    if tail.complete_len < len {
        file.set_len(tail.complete_len)
            .and_then(|()| file.sync_all())
            .map_err(|source| AuditError::Truncate {
                path: newest.path.clone(),
                source,
            })?;
        let cut = len - tail.complete_len;
        tracing::warn!(file = %newest.path.display(), bytes = cut, "cut a partial audit record left by a crash");
        notes.push(format!(
            "cut {cut} bytes of a partial record from the end of {} (danxia stopped in the middle of a write)",
            display_name(&newest.path)
        ));
    }

    // The last record: in the newest file, or in an older one when the newest
    // holds none yet (a crash right after a rotation).
    let mut last = tail.last_line.map(|line| (newest, line));
    if last.is_none() {
        for older in files.iter().rev().skip(1) {
            let mut f =
                File::open(&older.path).map_err(|source| open_error(&older.path, source))?;
            let len = f
                .metadata()
                .map_err(|source| read_error(&older.path, source))?
                .len();
            let tail =
                files::read_tail(&mut f, len).map_err(|source| read_error(&older.path, source))?;
            if let Some(line) = tail.last_line {
                last = Some((older, line));
                break;
            }
        }
    }

    let chain = match last {
        None => Chain {
            alg,
            next_seq: newest.first_seq,
            prev: GENESIS_PREV,
        },
        Some((file, line)) => continue_from(file, line, alg, &mut notes)?,
    };
    for note in &notes {
        tracing::warn!(dir = %dir.display(), "{note}");
    }

    let current =
        (tail.complete_len > 0 || newest.first_seq == chain.next_seq).then(|| ResumeFile {
            path: newest.path.clone(),
            created: newest.created,
            len: tail.complete_len,
        });
    Ok(Resume {
        chain,
        current,
        notes,
    })
}

/// The chain after `line`, the last complete line of `file`. Trusts what the
/// line claims even when it is damaged (verify reports the damage); only a
/// line that claims nothing readable starts a new chain segment.
fn continue_from(
    file: &AuditFile,
    line: LastLine,
    alg: HashAlgorithm,
    notes: &mut Vec<String>,
) -> Result<Chain, AuditError> {
    let name = display_name(&file.path);
    let line = match line {
        LastLine::Bytes(bytes) => bytes,
        LastLine::TooLong { len } => {
            return new_segment(
                file,
                alg,
                notes,
                &format!("its last line is {len} bytes, longer than any record"),
            )
        }
    };
    let check = chain::inspect_line(&line);
    let (seq, hash) = match check.head {
        Ok(head) => {
            if check.hash != HashCheck::Matches {
                notes.push(format!(
                    "the last record of {name} (seq {}) does not match its hash: it was changed after it was written; the chain continues from the seq and hash it claims",
                    head.seq
                ));
            }
            (head.seq, head.hash)
        }
        Err(reason) => match chain::claimed_seq_and_hash(&line) {
            Some((seq, hash)) => {
                notes.push(format!(
                    "the last record of {name} (seq {seq}) is not a valid record ({reason}); the chain continues from the seq and hash it claims"
                ));
                (seq, hash)
            }
            None => return new_segment(file, alg, notes, &reason),
        },
    };
    Ok(Chain {
        alg,
        next_seq: seq.saturating_add(1),
        prev: hash,
    })
}

/// Starts a new chain segment after a last line that claims no seq or hash:
/// the seq continues from the file's line count, `prev` is zeros.
fn new_segment(
    file: &AuditFile,
    alg: HashAlgorithm,
    notes: &mut Vec<String>,
    reason: &str,
) -> Result<Chain, AuditError> {
    let mut f = File::open(&file.path).map_err(|source| open_error(&file.path, source))?;
    let lines = files::count_lines(&mut f).map_err(|source| read_error(&file.path, source))?;
    let next_seq = file.first_seq.saturating_add(lines);
    notes.push(format!(
        "the last record of {} cannot be read ({reason}); a new chain segment starts at seq {next_seq} with a zero prev",
        display_name(&file.path)
    ));
    Ok(Chain {
        alg,
        next_seq,
        prev: GENESIS_PREV,
    })
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn open_error(path: &Path, source: std::io::Error) -> AuditError {
    AuditError::Open {
        path: path.to_path_buf(),
        source,
    }
}

fn read_error(path: &Path, source: std::io::Error) -> AuditError {
    AuditError::Read {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{AuditEvent, EventKind};
    use crate::audit::files::file_name;

    fn t0() -> OffsetDateTime {
        time::macros::datetime!(2025-05-06 07:08:09 UTC)
    }

    /// Writes `n` chained records into a new file and returns the chain after.
    fn write_file(dir: &Path, chain: &mut Chain, n: usize) -> PathBuf {
        let path = dir.join(file_name(t0(), chain.next_seq));
        let mut out = Vec::new();
        for _ in 0..n {
            let event = AuditEvent {
                kind: Some(EventKind::Statement),
                statement: Some("select 1".into()),
                ..Default::default()
            };
            chain.append(t0(), &event, &mut out).expect("encodes");
        }
        std::fs::write(&path, out).expect("write");
        path
    }

    #[test]
    fn empty_dir_starts_a_genesis_chain_and_is_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = dir.path().join("a/b");
        let r = resume(&audit, HashAlgorithm::Sha256).expect("resumes");
        assert!(audit.is_dir());
        assert_eq!(r.chain, Chain::genesis(HashAlgorithm::Sha256));
        assert_eq!(r.current, None);
        assert!(r.notes.is_empty());
    }

    #[test]
    fn continues_after_the_last_record_of_the_newest_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        write_file(dir.path(), &mut chain, 3);
        let newest = write_file(dir.path(), &mut chain, 2);
        let r = resume(dir.path(), HashAlgorithm::Sha256).expect("resumes");
        assert_eq!(r.chain, chain);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        let current = r.current.expect("appends to the newest file");
        assert_eq!(current.path, newest);
        assert_eq!(current.len, std::fs::metadata(&newest).expect("stat").len());
    }

    #[test]
    fn a_torn_tail_is_cut_and_noted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        let path = write_file(dir.path(), &mut chain, 2);
        let complete = std::fs::read(&path).expect("read");
        let mut torn = complete.clone();
        torn.extend_from_slice(b"{\"seq\":3,\"ts\":\"2025");
        std::fs::write(&path, &torn).expect("write");

        let r = resume(dir.path(), HashAlgorithm::Sha256).expect("resumes");
        assert_eq!(std::fs::read(&path).expect("read"), complete);
        assert_eq!(r.chain, chain);
        assert_eq!(r.notes.len(), 1);
        let cut = torn.len() - complete.len();
        assert!(
            r.notes[0].starts_with(&format!("cut {cut} bytes")),
            "{}",
            r.notes[0]
        );
    }

    #[test]
    fn an_empty_newest_file_continues_from_the_file_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        write_file(dir.path(), &mut chain, 3);
        let empty = write_file(dir.path(), &mut chain.clone(), 0);
        let r = resume(dir.path(), HashAlgorithm::Sha256).expect("resumes");
        assert_eq!(r.chain, chain);
        assert_eq!(r.current.map(|c| c.path), Some(empty));
    }

    #[test]
    fn a_damaged_last_line_continues_from_its_claims_with_a_note() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        let path = write_file(dir.path(), &mut chain, 2);
        let text = String::from_utf8(std::fs::read(&path).expect("read")).expect("utf-8");

        // Altered content: still JSON, hash no longer matches.
        std::fs::write(
            &path,
            text.replace("select 1\",\"prev", "select 2\",\"prev"),
        )
        .expect("write");
        let r = resume(dir.path(), HashAlgorithm::Sha256).expect("resumes");
        assert_eq!(r.chain, chain);
        assert!(
            r.notes[0].contains("does not match its hash"),
            "{:?}",
            r.notes
        );

        // Not JSON any more, but seq and hash are still at both ends.
        let broken = text.replacen("\"kind\":\"statement\"", "\"kind\":statement\"", 2);
        std::fs::write(&path, &broken).expect("write");
        let r = resume(dir.path(), HashAlgorithm::Sha256).expect("resumes");
        assert_eq!(r.chain, chain);
        assert!(
            r.notes[0].contains("is not a valid record"),
            "{:?}",
            r.notes
        );

        // Nothing claimed at all: a new segment after the lines present.
        std::fs::write(&path, "garbage\ngarbage\n").expect("write");
        let r = resume(dir.path(), HashAlgorithm::Sha256).expect("resumes");
        assert_eq!(r.chain.next_seq, 3);
        assert_eq!(r.chain.prev, GENESIS_PREV);
        assert!(r.notes[0].contains("new chain segment"), "{:?}", r.notes);
    }
}
