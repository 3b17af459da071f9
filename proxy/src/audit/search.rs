//! `danxia audit search`: find the records a DBA needs at 3 a.m. in months
//! of audit files, fast.
//!
//! Speed comes from reading as little as possible: whole files are skipped
//! by time (the first record's time is in the file name, the last one is
//! read from the file's tail); within a file each line is first checked with
//! `memchr::memmem` for the literal bytes the filters imply (`"user":"alice"`)
//! and parsed as JSON only if they are all there; files are read in
//! parallel (one thread per core) while the output stays in chain order; the
//! search stops at `--limit`.
//!
//! Owns the query language (filters, time expressions) and the output
//! formats. Must never load a whole file (lines are streamed, each bounded by
//! `MAX_RECORD_BYTES`) and never write to the audit directory.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

use super::files::{self, AuditFile, LastLine, LineRead};
use super::prune::record_ts;
use super::AuditError;

/// Read buffer per file.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// Matches a worker may send ahead of the output: bounds memory while an
/// earlier file is still being printed.
const CHANNEL_DEPTH: usize = 1024;
/// Records of concurrent sessions are stamped slightly out of order: a file
/// is read on past `--until` for this long before the rest is skipped.
const UNTIL_SLACK_MICROS: i64 = 2_000_000;
/// Statement text shown in the table, in characters.
const TABLE_STATEMENT_CHARS: usize = 80;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One compact line per record, for a person.
    Table,
    /// The raw JSON lines, for `jq`.
    Json,
}

/// What to look for. Every filter set must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub user: Option<String>,
    /// A table, bare (`accounts`) or schema-qualified (`public.accounts`),
    /// case-insensitive.
    pub table: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// The record's `verdict`: `allowed`, `denied`, `would_deny`.
    pub decision: Option<String>,
    pub rule: Option<String>,
    pub listener: Option<String>,
    pub session: Option<String>,
    pub kind: Option<String>,
    pub caller: Option<String>,
    pub route: Option<String>,
    /// Substring of the statement text (case-sensitive).
    pub text: Option<String>,
    pub limit: Option<usize>,
}

/// How much a search read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    pub files: usize,
    /// Files skipped without reading their records (time range).
    pub files_skipped: usize,
    pub bytes_read: u64,
    pub lines: u64,
    /// Lines parsed as JSON (passed the byte prefilter).
    pub parsed: u64,
    pub matches: u64,
}

/// Parses a time: RFC 3339 (`2026-11-26T03:00:00+08:00`), a UTC date
/// (`2026-11-26`) or date and time (`2026-11-26 03:00`), `now`, or a
/// duration ago (`90m`, `2h`, `3d`, `1w`).
pub fn parse_time(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let t = text.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Ok(v) = OffsetDateTime::parse(t, &Rfc3339) {
        return Ok(v);
    }
    let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = Date::parse(t, date_fmt) {
        return Ok(PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc());
    }
    for fmt in [
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    ] {
        if let Ok(v) = PrimitiveDateTime::parse(t, fmt) {
            return Ok(v.assume_utc());
        }
    }
    if t.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(d) = humantime_serde::re::humantime::parse_duration(t) {
            let d = time::Duration::try_from(d).map_err(|e| format!("{t:?}: {e}"))?;
            return now
                .checked_sub(d)
                .ok_or_else(|| format!("{t:?} ago is before the calendar starts"));
        }
    }
    Err(format!(
        "{t:?} is not a time: use RFC 3339 (2026-11-26T03:00:00+08:00), a UTC date (2026-11-26), \"2026-11-26 03:00\" (UTC), or a duration ago (30m, 2h, 3d)"
    ))
}

/// A time for messages: RFC 3339 UTC, seconds.
pub fn format_time(t: OffsetDateTime) -> String {
    let ts = record_ts(t);
    format!("{}Z", ts.get(..19).unwrap_or(&ts))
}

/// The verdict a `--decision` value stands for.
pub fn parse_decision(text: &str) -> Result<&'static str, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "allow" | "allowed" => Ok("allowed"),
        "deny" | "denied" | "block" | "blocked" => Ok("denied"),
        "would_deny" | "would-deny" | "woulddeny" => Ok("would_deny"),
        other => Err(format!(
            "--decision {other:?}: use allow, deny or would_deny"
        )),
    }
}

/// The fields of a record a filter or the table looks at.
#[derive(Deserialize, Default)]
struct Rec<'a> {
    #[serde(borrow, default)]
    ts: Cow<'a, str>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    listener: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    statement: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tables: Vec<Cow<'a, str>>,
    rows: Option<u64>,
    #[serde(borrow, default)]
    outcome: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    detail: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    rule: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    verdict: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    caller: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    route: Option<Cow<'a, str>>,
    records: Option<u64>,
}

/// A query turned into byte needles and exact checks.
struct Compiled {
    needles: Vec<memchr::memmem::Finder<'static>>,
    since: Option<String>,
    until: Option<String>,
    /// `until` plus the slack: past it, the rest of a file is skipped.
    stop_after: Option<String>,
    query: Query,
    /// `table` lower-cased and unquoted.
    table: Option<String>,
}

/// `"field":<JSON string>` as the writer lays it out.
fn field_needle(field: &str, value: &str) -> Vec<u8> {
    let mut n = format!("\"{field}\":").into_bytes();
    n.extend_from_slice(serde_json::to_string(value).unwrap_or_default().as_bytes());
    n
}

fn unquote_lower(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '"' | '`' | '[' | ']'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a recorded table name is the one asked for: equal, or equal in
/// the last component when either side is bare.
fn table_matches(recorded: &str, wanted: &str) -> bool {
    let r = unquote_lower(recorded);
    if r == wanted {
        return true;
    }
    let last = |s: &str| s.rsplit('.').next().unwrap_or(s).to_string();
    let (r_qualified, w_qualified) = (r.contains('.'), wanted.contains('.'));
    if r_qualified && w_qualified {
        return false;
    }
    last(&r) == last(wanted)
}

impl Compiled {
    fn new(query: &Query) -> Compiled {
        let mut needles = Vec::new();
        let mut exact = |field: &str, v: &Option<String>| {
            if let Some(v) = v {
                needles.push(memchr::memmem::Finder::new(&field_needle(field, v)).into_owned());
            }
        };
        exact("user", &query.user);
        exact("verdict", &query.decision);
        exact("rule", &query.rule);
        exact("listener", &query.listener);
        exact("session", &query.session);
        exact("kind", &query.kind);
        exact("caller", &query.caller);
        exact("route", &query.route);
        if let Some(text) = &query.text {
            // A substring escapes the same inside the record's JSON string.
            let quoted = serde_json::to_string(text).unwrap_or_default();
            let inner = &quoted[1..quoted.len().saturating_sub(1).max(1)];
            needles.push(memchr::memmem::Finder::new(inner.as_bytes()).into_owned());
        }
        if query.table.is_some() {
            needles.push(memchr::memmem::Finder::new(b"\"tables\":[").into_owned());
        }
        Compiled {
            needles,
            since: query.since.map(record_ts),
            until: query.until.map(record_ts),
            stop_after: query
                .until
                .map(|u| record_ts(u + time::Duration::microseconds(UNTIL_SLACK_MICROS))),
            table: query.table.as_deref().map(unquote_lower),
            query: query.clone(),
        }
    }

    /// The exact checks, on a parsed record.
    fn matches(&self, r: &Rec<'_>) -> bool {
        let q = &self.query;
        let eq = |want: &Option<String>, got: &Option<Cow<'_, str>>| {
            want.as_ref()
                .is_none_or(|w| got.as_deref() == Some(w.as_str()))
        };
        eq(&q.user, &r.user)
            && eq(&q.decision, &r.verdict)
            && eq(&q.rule, &r.rule)
            && eq(&q.listener, &r.listener)
            && eq(&q.session, &r.session)
            && eq(&q.kind, &r.kind)
            && eq(&q.caller, &r.caller)
            && eq(&q.route, &r.route)
            && q.text.as_ref().is_none_or(|t| {
                r.statement
                    .as_deref()
                    .is_some_and(|s| s.contains(t.as_str()))
            })
            && self
                .table
                .as_ref()
                .is_none_or(|t| r.tables.iter().any(|rt| table_matches(rt, t)))
            && self
                .since
                .as_ref()
                .is_none_or(|s| r.ts.as_ref() >= s.as_str())
            && self
                .until
                .as_ref()
                .is_none_or(|u| r.ts.as_ref() <= u.as_str())
    }
}

/// The `ts` of a line laid out by the writer, without parsing it.
fn line_ts(line: &[u8]) -> Option<&[u8]> {
    let at = memchr::memmem::find(line.get(..64)?, b",\"ts\":\"")? + 7;
    let rest = &line[at..];
    let end = memchr::memchr(b'"', rest)?;
    Some(&rest[..end])
}

enum WorkerMsg {
    Match(Vec<u8>),
    Done(SearchStats),
    Failed(AuditError),
}

/// Whether `file` may hold records in the query's time range: its first
/// record is not after `until` (file name) and its last not before `since`
/// (read from its tail).
fn may_overlap(file: &AuditFile, c: &Compiled) -> Result<bool, AuditError> {
    if let Some(until) = &c.until {
        if record_ts(file.created).as_str() > until.as_str() {
            return Ok(false);
        }
    }
    let Some(since) = &c.since else {
        return Ok(true);
    };
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
    Ok(match tail.last_line {
        Some(LastLine::Bytes(line)) => line_ts(&line).is_none_or(|ts| ts >= since.as_bytes()),
        // Unknown: read it.
        _ => true,
    })
}

/// Searches one file, sending matches in order; stops when `stop` is set,
/// the receiver is gone, `limit` matches were sent, or the records are past
/// `until`.
fn search_file(file: &AuditFile, c: &Compiled, stop: &AtomicBool, tx: &SyncSender<WorkerMsg>) {
    let mut stats = SearchStats {
        files: 1,
        ..Default::default()
    };
    let result = (|| -> Result<(), AuditError> {
        if !may_overlap(file, c)? {
            stats.files_skipped = 1;
            return Ok(());
        }
        let f = File::open(&file.path).map_err(|source| AuditError::Open {
            path: file.path.clone(),
            source,
        })?;
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, f);
        let mut buf = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let read =
                files::read_line(&mut reader, &mut buf).map_err(|source| AuditError::Read {
                    path: file.path.clone(),
                    source,
                })?;
            match read {
                LineRead::Eof | LineRead::Partial => return Ok(()),
                LineRead::TooLong => {
                    // Skip the rest of an overlong line; verify reports it.
                    stats.bytes_read += buf.len() as u64;
                    continue;
                }
                LineRead::Line => {}
            }
            stats.bytes_read += buf.len() as u64;
            stats.lines += 1;
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if let Some(ts) = line_ts(line) {
                if c.since.as_ref().is_some_and(|s| ts < s.as_bytes()) {
                    continue;
                }
                if c.stop_after.as_ref().is_some_and(|s| ts > s.as_bytes()) {
                    return Ok(());
                }
            }
            if !c.needles.iter().all(|n| n.find(line).is_some()) {
                continue;
            }
            stats.parsed += 1;
            let Ok(rec) = serde_json::from_slice::<Rec<'_>>(line) else {
                continue;
            };
            if !c.matches(&rec) {
                continue;
            }
            stats.matches += 1;
            if tx.send(WorkerMsg::Match(line.to_vec())).is_err() {
                return Ok(());
            }
            if c.query.limit.is_some_and(|l| stats.matches >= l as u64) {
                return Ok(());
            }
        }
    })();
    let _ = match result {
        Ok(()) => tx.send(WorkerMsg::Done(stats)),
        Err(e) => tx.send(WorkerMsg::Failed(e)),
    };
}

/// Runs `query` over the audit files of `dir`, writing matches to `out` in
/// chain order. A closed `out` (`| head`) ends the search quietly.
pub fn search(
    dir: &Path,
    query: &Query,
    format: Format,
    out: &mut dyn Write,
) -> Result<SearchStats, AuditError> {
    let files = files::list(dir)?;
    let compiled = Compiled::new(query);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = AtomicBool::new(false);
    let mut total = SearchStats::default();
    let mut failure = None;
    std::thread::scope(|scope| {
        let mut inflight: VecDeque<Receiver<WorkerMsg>> = VecDeque::new();
        let mut next = 0;
        'files: loop {
            while inflight.len() < workers && next < files.len() {
                let (tx, rx) = sync_channel(CHANNEL_DEPTH);
                let (file, c, stop) = (&files[next], &compiled, &stop);
                scope.spawn(move || search_file(file, c, stop, &tx));
                inflight.push_back(rx);
                next += 1;
            }
            let Some(rx) = inflight.pop_front() else {
                break;
            };
            for msg in rx {
                match msg {
                    WorkerMsg::Match(line) => {
                        total.matches += 1;
                        let written = match format {
                            Format::Json => {
                                out.write_all(&line).and_then(|()| out.write_all(b"\n"))
                            }
                            Format::Table => write_row(out, &line),
                        };
                        if written.is_err()
                            || query.limit.is_some_and(|l| total.matches >= l as u64)
                        {
                            break 'files;
                        }
                    }
                    WorkerMsg::Done(s) => {
                        total.files += s.files;
                        total.files_skipped += s.files_skipped;
                        total.bytes_read += s.bytes_read;
                        total.lines += s.lines;
                        total.parsed += s.parsed;
                    }
                    WorkerMsg::Failed(e) => {
                        failure = Some(e);
                        break 'files;
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        // Dropping the receivers ends the workers still sending.
        drop(inflight);
    });
    let _ = out.flush();
    match failure {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// The table's header line.
pub fn table_header() -> String {
    format!(
        "{:<19}  {:<13}  {:<8}  {:<10}  {:<21}  {:<10}  {:<18}  {:>6}  {:<24}  statement",
        "time (UTC)", "kind", "listener", "user", "client", "verdict", "rule", "rows", "tables"
    )
}

fn cell(s: Option<&str>, width: usize) -> String {
    let s = s.unwrap_or("-");
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn write_row(out: &mut dyn Write, line: &[u8]) -> std::io::Result<()> {
    let r: Rec<'_> = serde_json::from_slice(line).unwrap_or_default();
    let time = r.ts.get(..19).unwrap_or(&r.ts).replace('T', " ");
    let rows = r
        .rows
        .or(r.records)
        .map_or("-".to_string(), |n| n.to_string());
    let tables = if r.tables.is_empty() {
        None
    } else {
        Some(r.tables.join(","))
    };
    let verdict = r.verdict.as_deref().or(r.outcome.as_deref());
    let who = r.user.as_deref().or(r.caller.as_deref());
    let text: Option<String> = r
        .statement
        .as_deref()
        .or(r.detail.as_deref())
        .or(r.error.as_deref())
        .map(|s| {
            s.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        });
    writeln!(
        out,
        "{:<19}  {:<13}  {:<8}  {:<10}  {:<21}  {:<10}  {:<18}  {:>6}  {:<24}  {}",
        time,
        cell(r.kind.as_deref(), 13),
        cell(r.listener.as_deref(), 8),
        cell(who, 10),
        cell(r.client.as_deref(), 21),
        cell(verdict, 10),
        cell(r.rule.as_deref(), 18),
        rows,
        cell(tables.as_deref(), 24),
        cell(text.as_deref(), TABLE_STATEMENT_CHARS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Chain;
    use crate::audit::event::{AuditEvent, EventKind};
    use crate::audit::files::file_name;
    use crate::audit::settings::HashAlgorithm;
    use std::sync::Arc;
    use time::macros::datetime;

    fn now() -> OffsetDateTime {
        datetime!(2026-11-26 12:00 UTC)
    }

    #[test]
    fn times_parse_in_every_accepted_spelling() {
        let cases = [
            ("2026-11-26T03:00:00+08:00", datetime!(2026-11-25 19:00 UTC)),
            ("2026-11-26T03:00:00Z", datetime!(2026-11-26 03:00 UTC)),
            ("2026-11-26", datetime!(2026-11-26 00:00 UTC)),
            ("2026-11-26 03:30", datetime!(2026-11-26 03:30 UTC)),
            ("2026-11-26T03:30:15", datetime!(2026-11-26 03:30:15 UTC)),
            ("2h", datetime!(2026-11-26 10:00 UTC)),
            ("3d", datetime!(2026-11-23 12:00 UTC)),
            ("90m", datetime!(2026-11-26 10:30 UTC)),
            ("now", now()),
        ];
        for (text, want) in cases {
            assert_eq!(parse_time(text, now()), Ok(want), "{text}");
        }
        for bad in ["yesterday", "2026-13-01", "", "-2h", "2 hours ago"] {
            let err = parse_time(bad, now()).expect_err(bad);
            assert!(err.contains("is not a time"), "{bad}: {err}");
        }
    }

    #[test]
    fn decisions_accept_short_and_recorded_spellings() {
        assert_eq!(parse_decision("deny"), Ok("denied"));
        assert_eq!(parse_decision("Allowed"), Ok("allowed"));
        assert_eq!(parse_decision("would-deny"), Ok("would_deny"));
        assert!(parse_decision("alert").is_err());
    }

    #[test]
    fn table_names_match_bare_or_qualified_case_insensitively() {
        for (recorded, wanted, want) in [
            ("public.accounts", "accounts", true),
            ("accounts", "public.accounts", true),
            ("PUBLIC.Accounts", "public.accounts", true),
            ("\"public\".\"accounts\"", "public.accounts", true),
            ("other.accounts", "public.accounts", false),
            ("public.accounts_old", "accounts", false),
            ("test.t", "T", true),
        ] {
            assert_eq!(
                table_matches(recorded, &unquote_lower(wanted)),
                want,
                "{recorded} vs {wanted}"
            );
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
    }

    /// (user, table, verdict, rule) of one fixture record.
    type Row<'a> = (&'a str, &'a str, &'a str, &'a str);

    /// Two days of records in three files: alice and bob, allowed and
    /// denied, different tables.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        let plan: [(OffsetDateTime, &[Row]); 3] = [
            (
                datetime!(2026-11-24 10:00 UTC),
                &[
                    ("alice", "public.accounts", "allowed", "default"),
                    ("bob", "public.orders", "allowed", "default"),
                ],
            ),
            (
                datetime!(2026-11-25 10:00 UTC),
                &[
                    ("alice", "public.orders", "denied", "no-orders"),
                    ("bob", "accounts", "denied", "no-accounts"),
                ],
            ),
            (
                datetime!(2026-11-26 10:00 UTC),
                &[("alice", "ACCOUNTS", "would_deny", "no-accounts")],
            ),
        ];
        for (t, records) in plan {
            let path = dir.path().join(file_name(t, chain.next_seq));
            let mut out = Vec::new();
            for (i, (user, table, verdict, rule)) in records.iter().enumerate() {
                let e = AuditEvent {
                    kind: Some(EventKind::Statement),
                    listener: Some(Arc::from("pg")),
                    user: Some(Arc::from(*user)),
                    statement: Some(format!("select * from {table} -- \"{user}\"")),
                    tables: vec![table.to_string()],
                    verdict: Some(match *verdict {
                        "allowed" => "allowed",
                        "denied" => "denied",
                        _ => "would_deny",
                    }),
                    rule: Some(Arc::from(*rule)),
                    rows: Some(i as u64),
                    ..Default::default()
                };
                chain
                    .append(t + time::Duration::minutes(i as i64), &e, &mut out)
                    .expect("encodes");
            }
            std::fs::write(&path, out).expect("write");
        }
        Fixture { dir }
    }

    fn run(f: &Fixture, q: Query) -> (Vec<u64>, SearchStats) {
        let mut out = Vec::new();
        let stats = search(f.dir.path(), &q, Format::Json, &mut out).expect("searches");
        let seqs = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("JSON")["seq"]
                    .as_u64()
                    .expect("seq")
            })
            .collect();
        (seqs, stats)
    }

    #[test]
    fn filters_are_anded_and_results_come_in_chain_order() {
        let f = fixture();
        let q = |edit: fn(&mut Query)| {
            let mut q = Query::default();
            edit(&mut q);
            q
        };
        let cases: [(Query, &[u64]); 9] = [
            (Query::default(), &[1, 2, 3, 4, 5]),
            (q(|q| q.user = Some("alice".into())), &[1, 3, 5]),
            (q(|q| q.table = Some("accounts".into())), &[1, 4, 5]),
            (q(|q| q.table = Some("public.ACCOUNTS".into())), &[1, 4, 5]),
            (
                q(|q| {
                    q.user = Some("alice".into());
                    q.table = Some("accounts".into());
                }),
                &[1, 5],
            ),
            (q(|q| q.decision = Some("denied".into())), &[3, 4]),
            (q(|q| q.rule = Some("no-accounts".into())), &[4, 5]),
            (q(|q| q.text = Some("orders -- \"bob\"".into())), &[2]),
            (
                q(|q| {
                    q.since = Some(datetime!(2026-11-25 00:00 UTC));
                    q.until = Some(datetime!(2026-11-25 10:00:30 UTC));
                }),
                &[3],
            ),
        ];
        for (query, want) in cases {
            let (seqs, _) = run(&f, query.clone());
            assert_eq!(seqs, want, "{query:?}");
        }
    }

    #[test]
    fn files_out_of_range_are_skipped_and_limit_stops_early() {
        let f = fixture();
        let (seqs, stats) = run(
            &f,
            Query {
                since: Some(datetime!(2026-11-26 00:00 UTC)),
                ..Default::default()
            },
        );
        assert_eq!(seqs, [5]);
        assert_eq!((stats.files, stats.files_skipped), (3, 2));
        assert_eq!(stats.lines, 1);
        let (seqs, _) = run(
            &f,
            Query {
                limit: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(seqs, [1, 2]);
        // The prefilter keeps non-matching lines from being parsed.
        let (_, stats) = run(
            &f,
            Query {
                user: Some("bob".into()),
                ..Default::default()
            },
        );
        assert_eq!((stats.lines, stats.parsed, stats.matches), (5, 2, 2));
    }

    #[test]
    fn the_table_shows_one_line_per_record() {
        let f = fixture();
        let mut out = Vec::new();
        let q = Query {
            user: Some("bob".into()),
            decision: Some("denied".into()),
            ..Default::default()
        };
        search(f.dir.path(), &q, Format::Table, &mut out).expect("searches");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        for part in [
            "2026-11-25 10:01:00",
            "statement",
            "pg",
            "bob",
            "denied",
            "no-accounts",
            "accounts",
            "select * from accounts",
        ] {
            assert!(lines[0].contains(part), "{part} in {}", lines[0]);
        }
    }

    /// Writes ~180 days of chained audit files in the writer's real format
    /// into `$DANXIA_AUDIT_BENCH_DIR` (about `$DANXIA_AUDIT_BENCH_MB`, default
    /// 2048 MB), for `bench/audit_search.sh`. One file per day (rotated at
    /// 256 MiB like the default); 40 users, and `rare` once a day.
    #[test]
    #[ignore = "writes gigabytes: run by bench/audit_search.sh"]
    fn generate_bench_corpus() {
        use std::io::Write as _;
        let Ok(dir) = std::env::var("DANXIA_AUDIT_BENCH_DIR") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create");
        let mb: u64 = std::env::var("DANXIA_AUDIT_BENCH_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2048);
        const DAYS: i64 = 180;
        let per_day = mb * 1_000_000 / DAYS as u64;
        let start = OffsetDateTime::now_utc() - time::Duration::days(DAYS);
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        let users: Vec<Arc<str>> = (0..40).map(|i| Arc::from(format!("app{i:02}"))).collect();
        let tables = [
            "public.orders",
            "public.customers",
            "public.payroll",
            "public.audit_log",
            "public.items",
        ];
        let listener: Arc<str> = Arc::from("pg");
        let mut buf = Vec::with_capacity(8 << 20);
        for day in 0..DAYS {
            let t0 = start + time::Duration::days(day);
            let mut file = std::io::BufWriter::with_capacity(
                1 << 20,
                File::create(dir.join(file_name(t0, chain.next_seq))).expect("create file"),
            );
            let mut written = 0u64;
            let mut i = 0u64;
            while written < per_day {
                let rare = i == 1000;
                let table = tables[(i % 5) as usize];
                let e = AuditEvent {
                    kind: Some(EventKind::Statement),
                    session: Some(Arc::from(format!("1764000000-{}", i / 50))),
                    listener: Some(listener.clone()),
                    protocol: Some("postgres"),
                    client: Some(Arc::from("10.1.2.3:51234")),
                    user: Some(if rare { Arc::from("rare") } else { users[(i % 40) as usize].clone() }),
                    database: Some(Arc::from("prod")),
                    statement: Some(format!("select id, name, amount, created_at from {table} where customer_id = {} and status = 'open' order by created_at desc limit 50", i * 7919 % 100_000)),
                    fingerprint: Some("3f2a9c0d11b7e6a4".into()),
                    operation: Some("select"),
                    tables: vec![table.to_string()],
                    protocol_flow: Some("extended"),
                    rows: Some(i % 50),
                    bytes_out: Some(1200 + i % 800),
                    duration_us: Some(300 + i % 1000),
                    outcome: Some(crate::audit::event::Outcome::Ok),
                    rule: Some(Arc::from(if i.is_multiple_of(97) { "deny-payroll" } else { "default" })),
                    verdict: Some(if i.is_multiple_of(97) { "denied" } else { "allowed" }),
                    mode: Some("enforce"),
                    policy_version: Some(1),
                    ..Default::default()
                };
                let ts = t0
                    + time::Duration::microseconds(
                        (i as i64 * 86_400_000_000 / (per_day as i64 / 400).max(1))
                            .min(86_399_000_000),
                    );
                buf.clear();
                chain.append(ts, &e, &mut buf).expect("encodes");
                file.write_all(&buf).expect("write");
                written += buf.len() as u64;
                i += 1;
            }
            file.flush().expect("flush");
        }
    }
}
