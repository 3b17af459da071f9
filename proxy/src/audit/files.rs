//! Audit files on disk: their names, their order, and reading lines from them
//! with bounded memory.
//!
//! Owns the file-name format `audit-<YYYYMMDD>T<HHMMSS>Z-<first seq>.jsonl`
//! and the line readers shared by the writer's start-up and the verifier.
//! Must never write or truncate a file: only the writer's start-up decides
//! that, and only for a partial tail.

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::AuditError;

const NAME_PREFIX: &str = "audit-";
const NAME_SUFFIX: &str = ".jsonl";
/// Digits of the first seq in a file name, zero-padded so names sort in
/// chain order for the first trillion records (ordering uses the number, so
/// longer names later still sort right).
const SEQ_DIGITS: usize = 12;
const NAME_TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// Longest line the readers accept. A record holds at most one statement;
/// 512 MiB covers a 64 MiB statement (the default `limits.max_message_bytes`)
/// even if JSON escaping grows every byte sixfold, and bounds the memory a
/// damaged or hostile file can make verify allocate.
pub(crate) const MAX_RECORD_BYTES: usize = 512 * 1024 * 1024;

/// Read size when scanning a file backwards for its last line.
const TAIL_CHUNK: usize = 64 * 1024;

/// One audit file, as its name describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditFile {
    pub path: PathBuf,
    /// When the file was started (the timestamp of its first record).
    pub created: OffsetDateTime,
    /// The seq of its first record.
    pub first_seq: u64,
}

/// The name of the file whose first record is `first_seq`, stamped `created`.
pub(crate) fn file_name(created: OffsetDateTime, first_seq: u64) -> String {
    let created = created.to_offset(time::UtcOffset::UTC);
    // The format has only numeric components, so formatting cannot fail for
    // a four-digit year; fall back to the Unix timestamp if it ever does.
    let stamp = created
        .format(NAME_TIME_FORMAT)
        .unwrap_or_else(|_| created.unix_timestamp().to_string());
    format!("{NAME_PREFIX}{stamp}-{first_seq:0SEQ_DIGITS$}{NAME_SUFFIX}")
}

/// Reads a file name back; `None` for anything that is not an audit file.
pub(crate) fn parse_file_name(name: &str) -> Option<(OffsetDateTime, u64)> {
    let middle = name.strip_prefix(NAME_PREFIX)?.strip_suffix(NAME_SUFFIX)?;
    let (stamp, seq) = middle.split_once('-')?;
    if seq.len() < SEQ_DIGITS || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let created = PrimitiveDateTime::parse(stamp, NAME_TIME_FORMAT)
        .ok()?
        .assume_utc();
    Some((created, seq.parse().ok()?))
}

/// The audit files of `dir` in chain order: by the first seq in their names
/// (not by name, so a clock stepped backwards cannot reorder the chain).
/// Other files are ignored.
pub(crate) fn list(dir: &Path) -> Result<Vec<AuditFile>, AuditError> {
    let read_dir = |source| AuditError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let entry = entry.map_err(read_dir)?;
        let name = entry.file_name();
        let Some((created, first_seq)) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        files.push(AuditFile {
            path: entry.path(),
            created,
            first_seq,
        });
    }
    files.sort_by(|a, b| (a.first_seq, &a.path).cmp(&(b.first_seq, &b.path)));
    Ok(files)
}

/// What `read_line` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// End of file, nothing read.
    Eof,
    /// A complete line; the buffer ends with `\n`.
    Line,
    /// Bytes up to the end of the file without a final `\n`.
    Partial,
    /// More than `MAX_RECORD_BYTES` without a `\n`; the buffer holds the
    /// first `MAX_RECORD_BYTES` and the reader is mid-line.
    TooLong,
}

/// Reads one line into `buf` (cleared first), never more than
/// `MAX_RECORD_BYTES`, so a file without newlines cannot exhaust memory.
pub(crate) fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<LineRead> {
    read_line_limited(reader, buf, MAX_RECORD_BYTES)
}

fn read_line_limited(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<LineRead> {
    buf.clear();
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    let n = reader.by_ref().take(limit_u64).read_until(b'\n', buf)?;
    Ok(if n == 0 {
        LineRead::Eof
    } else if buf.last() == Some(&b'\n') {
        LineRead::Line
    } else if n >= limit {
        LineRead::TooLong
    } else {
        LineRead::Partial
    })
}

/// The end of a file as the writer's start-up needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tail {
    /// Length of the file up to and including its last `\n`; anything after
    /// it is a partial line.
    pub complete_len: u64,
    /// The last complete line (without `\n`), if the file has one.
    pub last_line: Option<LastLine>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LastLine {
    Bytes(Vec<u8>),
    /// Longer than `MAX_RECORD_BYTES`: not read.
    TooLong {
        len: u64,
    },
}

/// Finds the last complete line of a file of `len` bytes by reading it
/// backwards in chunks: months of records are never read to find the end.
pub(crate) fn read_tail<F: Read + Seek>(file: &mut F, len: u64) -> io::Result<Tail> {
    let complete_len = match rfind_newline(file, len)? {
        Some(pos) => pos + 1,
        None => 0,
    };
    if complete_len == 0 {
        return Ok(Tail {
            complete_len,
            last_line: None,
        });
    }
    let line_end = complete_len - 1; // offset of the final `\n`
    let line_start = rfind_newline(file, line_end)?.map_or(0, |pos| pos + 1);
    let line_len = line_end - line_start;
    let last_line = match usize::try_from(line_len) {
        Ok(n) if n <= MAX_RECORD_BYTES => {
            let mut bytes = vec![0u8; n];
            file.seek(SeekFrom::Start(line_start))?;
            file.read_exact(&mut bytes)?;
            LastLine::Bytes(bytes)
        }
        _ => LastLine::TooLong { len: line_len },
    };
    Ok(Tail {
        complete_len,
        last_line: Some(last_line),
    })
}

/// Offset of the last `\n` before `end`.
fn rfind_newline<F: Read + Seek>(file: &mut F, end: u64) -> io::Result<Option<u64>> {
    let mut chunk = vec![0u8; TAIL_CHUNK];
    let mut hi = end;
    while hi > 0 {
        let size = hi.min(TAIL_CHUNK as u64);
        let lo = hi - size;
        // `size` is at most TAIL_CHUNK, so it fits in usize.
        let buf = &mut chunk[..size as usize];
        file.seek(SeekFrom::Start(lo))?;
        file.read_exact(buf)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(lo + i as u64));
        }
        hi = lo;
    }
    Ok(None)
}

/// Number of `\n` in a file, streamed.
pub(crate) fn count_lines(file: &mut File) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut chunk = vec![0u8; TAIL_CHUNK];
    let mut lines = 0u64;
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => return Ok(lines),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        lines += chunk[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn file_names_round_trip_and_sort_in_seq_order() {
        let t = time::macros::datetime!(2025-01-02 03:04:05.678 UTC);
        let name = file_name(t, 42);
        assert_eq!(name, "audit-20250102T030405Z-000000000042.jsonl");
        let (created, seq) = parse_file_name(&name).expect("parses");
        assert_eq!(seq, 42);
        assert_eq!(created, time::macros::datetime!(2025-01-02 03:04:05 UTC));

        for bad in [
            "audit-20250102T030405Z-42.jsonl",
            "audit-20250102T030405Z-00000000004x.jsonl",
            "audit-2025-000000000042.jsonl",
            "other-20250102T030405Z-000000000042.jsonl",
            "audit-20250102T030405Z-000000000042.jsonl.gz",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn list_orders_by_seq_even_when_the_clock_went_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let later = time::macros::datetime!(2025-06-01 00:00:00 UTC);
        let earlier = time::macros::datetime!(2024-06-01 00:00:00 UTC);
        let names = [file_name(later, 1), file_name(earlier, 100)];
        for name in &names {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        std::fs::write(dir.path().join("notes.txt"), b"").expect("write");
        let files = list(dir.path()).expect("lists");
        let seqs: Vec<u64> = files.iter().map(|f| f.first_seq).collect();
        assert_eq!(seqs, [1, 100]);
        assert!(list(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn read_line_tells_complete_partial_and_too_long_apart() {
        let mut reader = Cursor::new(b"abc\ndefghij\nxy".to_vec());
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        loop {
            let got = read_line_limited(&mut reader, &mut buf, 6).expect("reads");
            seen.push((got, String::from_utf8_lossy(&buf).into_owned()));
            if got == LineRead::Eof {
                break;
            }
        }
        let want = [
            (LineRead::Line, "abc\n"),
            (LineRead::TooLong, "defghi"),
            (LineRead::Line, "j\n"),
            (LineRead::Partial, "xy"),
            (LineRead::Eof, ""),
        ]
        .map(|(r, s)| (r, s.to_string()));
        assert_eq!(seen, want);
    }

    #[test]
    fn read_tail_finds_the_last_complete_line_across_chunks() {
        let long = "x".repeat(TAIL_CHUNK * 2 + 17);
        let cases: Vec<(String, u64, Option<&str>)> = vec![
            (String::new(), 0, None),
            ("partial".into(), 0, None),
            ("one\n".into(), 4, Some("one")),
            ("one\ntwo\n".into(), 8, Some("two")),
            ("one\ntwo\ntor".into(), 8, Some("two")),
            (format!("a\n{long}\n"), (long.len() + 3) as u64, Some(&long)),
            (format!("a\n{long}"), 2, Some("a")),
        ];
        for (content, complete_len, last) in cases {
            let mut file = Cursor::new(content.as_bytes().to_vec());
            let tail = read_tail(&mut file, content.len() as u64).expect("reads");
            assert_eq!(tail.complete_len, complete_len, "{content:.20?}");
            assert_eq!(
                tail.last_line,
                last.map(|l| LastLine::Bytes(l.as_bytes().to_vec())),
                "{content:.20?}"
            );
        }
    }

    #[test]
    fn count_lines_counts_newlines() {
        let mut file = tempfile::tempfile().expect("tempfile");
        let content = "a\n".repeat(TAIL_CHUNK) + "tail";
        std::io::Write::write_all(&mut file, content.as_bytes()).expect("write");
        assert_eq!(count_lines(&mut file).expect("counts"), TAIL_CHUNK as u64);
    }
}
