//! `danxia audit verify`: walks the audit files in chain order and says
//! whether the chain is intact, or where and how it was broken.
//!
//! Owns the classification of damage (altered, removed, reordered,
//! malformed, truncated). Must never modify a file, and never hold more than
//! one record in memory: months of logs are streamed line by line.
//!
//! A hash chain without a key proves that the files are unchanged since the
//! last hash you trust: someone able to rewrite every record after a change
//! can recompute the chain. The report prints the last hash so it can be kept
//! elsewhere (a ticket, another host) and compared later.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::anchor::{self, Anchor};
use super::chain::{self, Digest, HashCheck, GENESIS_PREV};
use super::event::PrunedRange;
use super::files::{self, LineRead};
use super::AuditError;

/// Literal looked for before parsing a record as an `audit_pruned` one.
const PRUNED_KIND: &[u8] = b"\"kind\":\"audit_pruned\"";

/// Read buffer per file: large sequential reads, small next to a record.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// How many lines after a seq gap are searched for the missing seq before
/// the gap is called a removal rather than a reordering.
const REORDER_LOOKAHEAD_LINES: usize = 4096;

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Files read, including the one with the problem.
    pub files: usize,
    /// Records that verified, in order, before any problem.
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// `prev` of the first record (hex): zeros when the chain starts here,
    /// otherwise the last hash of the pruned history before it.
    pub first_prev: Option<String>,
    /// `hash` of the last verified record (hex): keep it elsewhere to detect
    /// a later rewrite of the whole chain.
    pub last_hash: Option<String>,
    /// The first problem; verification stops there.
    pub problem: Option<VerifyProblem>,
    /// Records verified per digest (`sha256`, `sm3`), in order of first use.
    pub algorithms: Vec<(&'static str, u64)>,
    /// The `audit_pruned` record that explains where the chain starts.
    pub pruned: Option<PrunedNote>,
    /// The seq of the anchor file that was checked, if any.
    pub anchor_seq: Option<u64>,
}

/// Where pruning cut the chain, as its `audit_pruned` record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedNote {
    /// The seq of the `audit_pruned` record.
    pub record_seq: u64,
    /// Its `ts`: when the files were pruned.
    pub at: String,
    pub range: PrunedRange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyProblem {
    pub file: PathBuf,
    /// 1-based line number within `file`; 0 when the problem is about the
    /// directory as a whole (records missing at its end).
    pub line: u64,
    /// The seq the line claims, when it can be read.
    pub seq: Option<u64>,
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The record's hash does not match its bytes: it was edited.
    Altered,
    /// A seq gap, or `prev` does not match the previous record's hash:
    /// records or whole files were deleted.
    Removed,
    /// The seq goes backwards or repeats: records were moved or duplicated.
    Reordered,
    /// Not JSON, or the chain fields are missing.
    Malformed,
    /// The last line of a file has no newline: a record was cut off.
    Truncated,
}

impl ProblemKind {
    fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Altered => "altered",
            ProblemKind::Removed => "removed",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Malformed => "malformed",
            ProblemKind::Truncated => "truncated",
        }
    }

    /// Whether the damage can only come from a deliberate edit, as opposed
    /// to a crash or a broken disk.
    fn is_tampering(self) -> bool {
        matches!(
            self,
            ProblemKind::Altered | ProblemKind::Removed | ProblemKind::Reordered
        )
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl VerifyReport {
    /// True when every record verified.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }

    fn range(&self) -> String {
        match (self.first_seq, self.last_seq) {
            (Some(a), Some(b)) => format!("seq {a}..{b}"),
            _ => "no records".into(),
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            None if self.records == 0 => {
                write!(f, "OK: {} files, no audit records to verify.", self.files)
            }
            None => {
                write!(
                    f,
                    "OK: {} files, {} records, {}, chain intact.",
                    self.files,
                    self.records,
                    self.range()
                )?;
                let digests: Vec<String> = self
                    .algorithms
                    .iter()
                    .map(|(alg, n)| format!("{alg} ({n} records)"))
                    .collect();
                if !digests.is_empty() {
                    write!(f, " Digest: {}.", digests.join(", "))?;
                }
                let zeros = chain::to_hex(&GENESIS_PREV);
                if let Some(p) = &self.pruned {
                    write!(
                        f,
                        " History before seq {} pruned on {} (anchor hash {}): {} files ({}), seq {}..{}, see the audit_pruned record at seq {}.",
                        p.range.last_seq.saturating_add(1),
                        p.at,
                        p.range.last_hash,
                        p.range.files.len(),
                        p.range.action,
                        p.range.first_seq,
                        p.range.last_seq,
                        p.record_seq
                    )?;
                } else if let Some(prev) = self.first_prev.as_ref().filter(|p| **p != zeros) {
                    write!(
                        f,
                        " The chain starts at seq {} after pruned history: its first prev {prev} must equal the last hash of the archived files.",
                        self.first_seq.unwrap_or_default()
                    )?;
                }
                if let Some(hash) = &self.last_hash {
                    write!(
                        f,
                        " Last hash {hash}: keep it outside this host to detect a rewrite of the whole chain later."
                    )?;
                }
                Ok(())
            }
            Some(p) => {
                let verdict = if p.kind.is_tampering() {
                    "TAMPERED"
                } else {
                    "DAMAGED"
                };
                write!(f, "{verdict}: file {}", p.file.display())?;
                if p.line > 0 {
                    write!(f, " line {}", p.line)?;
                }
                if let Some(seq) = p.seq {
                    write!(f, " (seq {seq})")?;
                }
                write!(f, ": {} — {}.", p.kind, p.message)?;
                if self.records == 0 {
                    write!(f, " No record before it; nothing after it was checked.")
                } else {
                    write!(
                        f,
                        " The {} records before it ({}) verify; nothing after it was checked.",
                        self.records,
                        self.range()
                    )
                }
            }
        }
    }
}

/// Verifies every audit file in `dir`. `Err` only when the files cannot be
/// read (directory missing, permission, I/O error); damage is reported in
/// `VerifyReport::problem`.
pub fn verify_dir(dir: &Path) -> Result<VerifyReport, AuditError> {
    let mut walk = Walk::default();
    let anchor_path = anchor::path(dir);
    let files = files::list(dir)?;
    match anchor::read(dir) {
        Ok(a) => walk.anchor = a,
        Err(message) => {
            walk.report.problem = Some(VerifyProblem {
                file: anchor_path,
                line: 1,
                seq: None,
                kind: ProblemKind::Malformed,
                message,
            });
            return Ok(walk.report);
        }
    }
    for file in &files {
        walk.report.files += 1;
        if let Some(problem) = walk.file(&file.path)? {
            walk.report.problem = Some(problem);
            return Ok(walk.report);
        }
    }
    walk.report.problem = walk.finish(&anchor_path, files.last().map(|f| f.path.as_path()));
    Ok(walk.report)
}

#[derive(Default)]
struct Walk {
    report: VerifyReport,
    /// seq and hash of the last verified record.
    last: Option<(u64, Digest)>,
    anchor: Option<Anchor>,
    /// The last `audit_pruned` record seen: its seq and what it removed.
    last_prune: Option<(u64, PrunedRange)>,
}

#[derive(serde::Deserialize)]
struct PrunedLine {
    ts: String,
    pruned: PrunedRange,
}

impl Walk {
    /// Checks made once every file verified: the chain reaches the anchor,
    /// and a start after pruned history is explained.
    fn finish(&mut self, anchor_path: &Path, newest: Option<&Path>) -> Option<VerifyProblem> {
        if let Some(anchor) = &self.anchor {
            let reached = self.report.last_seq.unwrap_or(0);
            if reached < anchor.seq {
                return Some(VerifyProblem {
                    file: newest.unwrap_or(anchor_path).to_path_buf(),
                    line: 0,
                    seq: self.report.last_seq,
                    kind: ProblemKind::Removed,
                    message: format!(
                        "the files end at seq {reached}, but {ANCHOR} written {} saw the chain reach seq {}: the newest records (or files) were removed",
                        anchor.written,
                        anchor.seq,
                        ANCHOR = anchor::ANCHOR_FILE
                    ),
                });
            }
        }
        let zeros = chain::to_hex(&GENESIS_PREV);
        let pruned_start = self.report.first_prev.as_ref().is_some_and(|p| *p != zeros);
        if let (true, None, Some((seq, range)), Some(first)) = (
            pruned_start,
            &self.report.pruned,
            &self.last_prune,
            self.report.first_seq,
        ) {
            if range.last_seq.saturating_add(1) < first {
                return Some(VerifyProblem {
                    file: anchor_path.to_path_buf(),
                    line: 0,
                    seq: Some(first),
                    kind: ProblemKind::Removed,
                    message: format!(
                        "the chain starts at seq {first}, but the last pruning (audit_pruned record at seq {seq}) kept everything from seq {}: seq {}..{} were removed afterwards",
                        range.last_seq + 1,
                        range.last_seq + 1,
                        first - 1
                    ),
                });
            }
        }
        None
    }

    fn count_alg(&mut self, alg: Option<super::settings::HashAlgorithm>) {
        let Some(alg) = alg else { return };
        let name = alg.name();
        match self.report.algorithms.iter_mut().find(|(a, _)| *a == name) {
            Some((_, n)) => *n += 1,
            None => self.report.algorithms.push((name, 1)),
        }
    }

    /// Checks an `audit_pruned` record against where the chain starts.
    fn pruned_record(&mut self, line: &[u8], seq: u64) -> Result<(), String> {
        let Ok(record) = serde_json::from_slice::<PrunedLine>(line) else {
            return Ok(()); // not one danxia wrote with a range; nothing to check
        };
        if Some(record.pruned.last_seq.saturating_add(1)) == self.report.first_seq {
            if self.report.first_prev.as_deref() != Some(record.pruned.last_hash.as_str()) {
                return Err(format!(
                    "this audit_pruned record says the last pruned record (seq {}) had hash {}, but the first record kept has prev {}: the oldest files were replaced",
                    record.pruned.last_seq,
                    record.pruned.last_hash,
                    self.report.first_prev.as_deref().unwrap_or("-")
                ));
            }
            self.report.pruned = Some(PrunedNote {
                record_seq: seq,
                at: record.ts,
                range: record.pruned.clone(),
            });
        }
        self.last_prune = Some((seq, record.pruned));
        Ok(())
    }
}

impl Walk {
    /// Verifies one file; `Some` at its first problem.
    fn file(&mut self, path: &Path) -> Result<Option<VerifyProblem>, AuditError> {
        let read_error = |source| AuditError::Read {
            path: path.to_path_buf(),
            source,
        };
        let f = File::open(path).map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, f);
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        loop {
            let read = files::read_line(&mut reader, &mut buf).map_err(read_error)?;
            if read == LineRead::Eof {
                return Ok(None);
            }
            line_no += 1;
            let problem = |seq, kind, message: String| VerifyProblem {
                file: path.to_path_buf(),
                line: line_no,
                seq,
                kind,
                message,
            };
            match read {
                LineRead::Eof | LineRead::Line => {}
                LineRead::Partial => {
                    let seq = chain::claimed_seq(&buf);
                    return Ok(Some(problem(
                        seq,
                        ProblemKind::Truncated,
                        format!(
                            "the file ends in the middle of a record ({} bytes without a newline): a crash during a write (danxia cuts it on its next start) or a deliberate cut",
                            buf.len()
                        ),
                    )));
                }
                LineRead::TooLong => {
                    return Ok(Some(problem(
                        None,
                        ProblemKind::Malformed,
                        format!(
                            "the line is longer than {} bytes, more than any record",
                            files::MAX_RECORD_BYTES
                        ),
                    )))
                }
            }
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let check = chain::inspect_line(line);
            let head = match (check.hash, check.head) {
                (HashCheck::Mismatch, head) => {
                    return Ok(Some(problem(
                        head.ok().map(|h| h.seq),
                        ProblemKind::Altered,
                        "the record's hash does not match its content: the line was changed after it was written".into(),
                    )))
                }
                (_, Err(reason)) => {
                    return Ok(Some(problem(
                        chain::claimed_seq(line),
                        ProblemKind::Malformed,
                        format!("not an audit record: {reason}"),
                    )))
                }
                (HashCheck::UnknownAlgorithm, Ok(head)) => {
                    return Ok(Some(problem(
                        Some(head.seq),
                        ProblemKind::Malformed,
                        "the record names a digest (\"alg\") this danxia does not know: verify it with the danxia version that wrote it".into(),
                    )))
                }
                (HashCheck::Missing, Ok(head)) => {
                    return Ok(Some(problem(
                        Some(head.seq),
                        ProblemKind::Malformed,
                        "the line does not end with its hash field laid out as danxia writes it".into(),
                    )))
                }
                (HashCheck::Matches, Ok(head)) => head,
            };

            if let Some((last_seq, last_hash)) = self.last {
                let expected = last_seq.saturating_add(1);
                if head.seq < expected {
                    return Ok(Some(problem(
                        Some(head.seq),
                        ProblemKind::Reordered,
                        format!(
                            "seq {} follows seq {last_seq}: records were repeated or moved back",
                            head.seq
                        ),
                    )));
                }
                if head.seq > expected {
                    let (kind, message) = match find_seq_ahead(&mut reader, expected) {
                        Some(ahead) => (
                            ProblemKind::Reordered,
                            format!(
                                "seq {} comes before seq {expected}, which appears {ahead} lines further down: records were moved",
                                head.seq
                            ),
                        ),
                        None => (
                            ProblemKind::Removed,
                            format!(
                                "seq {} follows seq {last_seq}: {} records are missing (lines or whole files were deleted)",
                                head.seq,
                                head.seq - expected
                            ),
                        ),
                    };
                    return Ok(Some(problem(Some(head.seq), kind, message)));
                }
                if head.prev != last_hash {
                    return Ok(Some(problem(
                        Some(head.seq),
                        ProblemKind::Removed,
                        format!(
                            "its prev does not match the hash of seq {last_seq}: records were removed or replaced and the rest renumbered"
                        ),
                    )));
                }
            } else {
                if let Some(kept) = self.anchor.as_ref().and_then(|a| a.first_kept_seq) {
                    if head.seq > kept {
                        return Ok(Some(problem(
                            Some(head.seq),
                            ProblemKind::Removed,
                            format!(
                                "the chain starts at seq {}, but {} says pruning kept everything from seq {kept}: seq {kept}..{} were removed",
                                head.seq,
                                anchor::ANCHOR_FILE,
                                head.seq - 1
                            ),
                        )));
                    }
                }
                self.report.first_seq = Some(head.seq);
                self.report.first_prev = Some(chain::to_hex(&head.prev));
            }
            if let Some(anchor) = self.anchor.as_ref().filter(|a| a.seq == head.seq) {
                if anchor.hash != chain::to_hex(&head.hash) {
                    return Ok(Some(problem(
                        Some(head.seq),
                        ProblemKind::Removed,
                        format!(
                            "{} written {} recorded hash {} for seq {}: the chain was rewritten from here on",
                            anchor::ANCHOR_FILE,
                            anchor.written,
                            anchor.hash,
                            head.seq
                        ),
                    )));
                }
                self.report.anchor_seq = Some(head.seq);
            }
            if memchr::memmem::find(line, PRUNED_KIND).is_some() {
                if let Err(message) = self.pruned_record(line, head.seq) {
                    return Ok(Some(problem(Some(head.seq), ProblemKind::Removed, message)));
                }
            }
            self.count_alg(check.alg);
            self.last = Some((head.seq, head.hash));
            self.report.records += 1;
            self.report.last_seq = Some(head.seq);
            self.report.last_hash = Some(chain::to_hex(&head.hash));
        }
    }
}

/// After a forward seq gap: whether the missing `seq` appears within the
/// next lines of the same file (then the records were moved, not removed).
/// Returns how many lines further down.
fn find_seq_ahead(reader: &mut BufReader<File>, seq: u64) -> Option<usize> {
    let mut buf = Vec::new();
    for ahead in 1..=REORDER_LOOKAHEAD_LINES {
        match files::read_line(reader, &mut buf) {
            Ok(LineRead::Line | LineRead::Partial) => {}
            Ok(LineRead::Eof | LineRead::TooLong) | Err(_) => return None,
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if chain::parse_head(line).is_ok_and(|h| h.seq == seq) {
            return Some(ahead);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Chain;
    use crate::audit::event::{AuditEvent, EventKind};
    use crate::audit::files::file_name;
    use crate::audit::settings::HashAlgorithm;

    const RECORDS_PER_FILE: [usize; 3] = [4, 5, 3];

    fn event(i: usize) -> AuditEvent {
        AuditEvent {
            kind: Some(EventKind::Statement),
            statement: Some(format!("select {i}")),
            ..Default::default()
        }
    }

    /// Writes files of chained records, as the writer would, starting at
    /// `chain`; returns their paths in order.
    fn build(dir: &Path, chain: &mut Chain, sizes: &[usize]) -> Vec<PathBuf> {
        let t = time::macros::datetime!(2025-02-03 04:05:06.789 UTC);
        let mut paths = Vec::new();
        for &n in sizes {
            let path = dir.join(file_name(t, chain.next_seq));
            let mut out = Vec::new();
            for i in 0..n {
                chain.append(t, &event(i), &mut out).expect("encodes");
            }
            std::fs::write(&path, out).expect("write");
            paths.push(path);
        }
        paths
    }

    fn lines(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).expect("read");
        text.split_inclusive('\n').map(str::to_string).collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.concat()).expect("write");
    }

    #[test]
    fn an_intact_chain_across_files_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        build(dir.path(), &mut chain, &RECORDS_PER_FILE);
        let report = verify_dir(dir.path()).expect("verifies");
        let total: usize = RECORDS_PER_FILE.iter().sum();
        assert_eq!(report.problem, None);
        assert_eq!(report.files, RECORDS_PER_FILE.len());
        assert_eq!(report.records, total as u64);
        assert_eq!(
            (report.first_seq, report.last_seq),
            (Some(1), Some(total as u64))
        );
        assert_eq!(report.last_hash, Some(chain::to_hex(&chain.prev)));
        let text = report.to_string();
        assert!(
            text.starts_with(&format!(
                "OK: 3 files, {total} records, seq 1..{total}, chain intact."
            )),
            "{text}"
        );
        assert!(!text.contains("pruned"), "{text}");
    }

    #[test]
    fn an_empty_dir_verifies_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = verify_dir(dir.path()).expect("verifies");
        assert_eq!((report.files, report.records, report.is_ok()), (0, 0, true));
        assert!(report
            .to_string()
            .starts_with("OK: 0 files, no audit records"));
        let missing = dir.path().join("missing");
        let err = verify_dir(&missing).expect_err("missing dir");
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn pruned_history_is_reported_not_flagged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        let paths = build(dir.path(), &mut chain, &RECORDS_PER_FILE);
        let pruned_last_hash = chain::to_hex(
            &chain::inspect_line(lines(&paths[0]).last().expect("line").trim_end().as_bytes())
                .head
                .expect("parses")
                .hash,
        );
        std::fs::remove_file(&paths[0]).expect("remove");
        let report = verify_dir(dir.path()).expect("verifies");
        assert_eq!(report.problem, None);
        let first = RECORDS_PER_FILE[0] as u64 + 1;
        assert_eq!(report.first_seq, Some(first));
        assert_eq!(
            report.first_prev.as_deref(),
            Some(pruned_last_hash.as_str())
        );
        let text = report.to_string();
        assert!(
            text.contains(&format!("starts at seq {first} after pruned history")),
            "{text}"
        );
        assert!(text.contains(&pruned_last_hash), "{text}");
    }

    /// One tampering case: how to damage the files, and where verify must
    /// stop (file index, line, seq, kind).
    struct Case {
        name: &'static str,
        damage: fn(&[PathBuf]),
        file: usize,
        line: u64,
        seq: Option<u64>,
        kind: ProblemKind,
    }

    fn edit(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
        let mut l = lines(path);
        f(&mut l);
        write_lines(path, &l);
    }

    /// Rewrites record `index` of `path` with a correct hash over a wrong
    /// prev: what someone who deletes a record and renumbers the rest does.
    fn forge_prev(path: &Path, index: usize) {
        edit(path, |l| {
            let head = chain::parse_head(l[index].trim_end().as_bytes()).expect("parses");
            let mut forged = Chain {
                alg: HashAlgorithm::Sha256,
                next_seq: head.seq,
                prev: [7; chain::DIGEST_LEN],
            };
            let mut out = Vec::new();
            let t = time::macros::datetime!(2025-02-03 04:05:06.789 UTC);
            forged.append(t, &event(index), &mut out).expect("encodes");
            l[index] = String::from_utf8(out).expect("utf-8");
        });
    }

    #[test]
    fn each_kind_of_damage_is_found_where_it_is() {
        let cases = [
            Case {
                name: "one byte of content altered",
                damage: |p| edit(&p[0], |l| l[2] = l[2].replace("select 2", "select 9")),
                file: 0,
                line: 3,
                seq: Some(3),
                kind: ProblemKind::Altered,
            },
            Case {
                name: "the very first record altered",
                damage: |p| edit(&p[0], |l| l[0] = l[0].replace("select 0", "select 7")),
                file: 0,
                line: 1,
                seq: Some(1),
                kind: ProblemKind::Altered,
            },
            Case {
                name: "hash itself altered",
                damage: |p| {
                    edit(&p[1], |l| {
                        let at = l[1].len() - 4;
                        let c = if &l[1][at..at + 1] == "0" { "1" } else { "0" };
                        l[1].replace_range(at..at + 1, c);
                    })
                },
                file: 1,
                line: 2,
                seq: Some(6),
                kind: ProblemKind::Altered,
            },
            Case {
                name: "a line deleted",
                damage: |p| edit(&p[0], |l| drop(l.remove(2))),
                file: 0,
                line: 3,
                seq: Some(4),
                kind: ProblemKind::Removed,
            },
            Case {
                name: "the last line of a file deleted",
                damage: |p| edit(&p[0], |l| drop(l.pop())),
                file: 1,
                line: 1,
                seq: Some(5),
                kind: ProblemKind::Removed,
            },
            Case {
                name: "a middle file deleted",
                damage: |p| std::fs::remove_file(&p[1]).expect("remove"),
                file: 2,
                line: 1,
                seq: Some(10),
                kind: ProblemKind::Removed,
            },
            Case {
                name: "a record replaced and the chain renumbered",
                damage: |p| forge_prev(&p[1], 2),
                file: 1,
                line: 3,
                seq: Some(7),
                kind: ProblemKind::Removed,
            },
            Case {
                name: "two lines swapped",
                damage: |p| edit(&p[1], |l| l.swap(1, 2)),
                file: 1,
                line: 2,
                seq: Some(7),
                kind: ProblemKind::Reordered,
            },
            Case {
                name: "a line repeated",
                damage: |p| {
                    edit(&p[0], |l| {
                        let copy = l[1].clone();
                        l.insert(2, copy);
                    })
                },
                file: 0,
                line: 3,
                seq: Some(2),
                kind: ProblemKind::Reordered,
            },
            Case {
                name: "a line that is not JSON",
                damage: |p| edit(&p[2], |l| l[0] = "hello\n".into()),
                file: 2,
                line: 1,
                seq: None,
                kind: ProblemKind::Malformed,
            },
            Case {
                name: "an empty line",
                damage: |p| edit(&p[0], |l| l.insert(1, "\n".into())),
                file: 0,
                line: 2,
                seq: None,
                kind: ProblemKind::Malformed,
            },
            Case {
                name: "the last line truncated",
                damage: |p| {
                    edit(&p[2], |l| {
                        let last = l.len() - 1;
                        let keep = l[last].len() / 2;
                        l[last].truncate(keep);
                    })
                },
                file: 2,
                line: 3,
                seq: Some(12),
                kind: ProblemKind::Truncated,
            },
        ];
        for case in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut chain = Chain::genesis(HashAlgorithm::Sha256);
            let paths = build(dir.path(), &mut chain, &RECORDS_PER_FILE);
            (case.damage)(&paths);
            let report = verify_dir(dir.path()).expect("verifies");
            let problem = report
                .problem
                .clone()
                .unwrap_or_else(|| panic!("{}: no problem found", case.name));
            assert_eq!(
                (&problem.file, problem.line, problem.seq, problem.kind),
                (&paths[case.file], case.line, case.seq, case.kind),
                "{}: {}",
                case.name,
                problem.message
            );
            let text = report.to_string();
            let verdict = if case.kind.is_tampering() {
                "TAMPERED"
            } else {
                "DAMAGED"
            };
            assert!(
                text.starts_with(&format!(
                    "{verdict}: file {} line {}",
                    paths[case.file].display(),
                    case.line
                )),
                "{}: {text}",
                case.name
            );
            assert!(
                text.contains(&format!(": {} — ", case.kind)),
                "{}: {text}",
                case.name
            );
            let before = if report.records == 0 {
                "No record before it".to_string()
            } else {
                format!("The {} records before it (seq 1..", report.records)
            };
            assert!(text.contains(&before), "{}: {text}", case.name);
        }
    }
}
