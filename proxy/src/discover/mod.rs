//! `danxia discover`: finds the columns of a PostgreSQL or MySQL/MariaDB
//! database that hold personal data and writes them into the
//! classification file the policy reads (`docs/discovery.md`).
//!
//! It reads the catalogue, samples at most `--sample` rows of each table
//! (text protocol, values cut to 64 KiB, a statement timeout per sample),
//! weighs each column's name and sampled values ([`classify`]), and merges
//! the findings into the file with the policy crate's merge rules, which
//! never lose a hand edit. It must never write to the database (sessions
//! are read-only), never print or log a sampled value, and never leave a
//! half-written classification file (the file is replaced atomically).
//!
//! Exit codes: 0 done (tables that could not be sampled are warned about
//! and counted), 1 the classification file could not be read, merged or
//! written, 2 unusable arguments or no usable connection.

pub mod classify;
pub mod dsn;
mod mysql;
mod postgres;

pub use crate::files::write_atomically;
use std::fmt;
use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use danxia_detectors::pii::Scanner;
use danxia_policies::{merge_classification, Diagnostics, Finding, MergeReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use classify::{file_name, ColumnEvidence, NameCase};
use dsn::{Dialect, Dsn};

/// How long connecting (TCP, authentication, session set-up) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a single sampling statement may run on the server.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `--sample`: rows sampled per table.
pub const DEFAULT_SAMPLE_ROWS: u64 = 1000;
/// Default `--min-ratio`: share of sampled values that must hold a kind.
pub const DEFAULT_MIN_RATIO: f64 = 0.5;

/// Exit status: the classification file could not be read, merged or
/// written.
const EXIT_FILE: u8 = 1;
/// Exit status: unusable arguments, or no usable connection.
const EXIT_USAGE: u8 = 2;

/// The command line of `danxia discover`.
#[derive(Debug, Clone)]
pub struct DiscoverArgs {
    /// `postgres://…` or `mysql://…` (see [`dsn::DSN_FORMS`]).
    pub dsn: String,
    /// Rows sampled per table at most; 0 reads names only.
    pub sample: u64,
    /// Classification file to create or merge into; `None` prints.
    pub out: Option<PathBuf>,
    /// Schemas (PostgreSQL) or databases (MySQL) to scan; empty: all.
    pub schemas: Vec<String>,
    /// Share of sampled values, 0 to 1, that must hold a kind for the
    /// column to get its tag on content alone.
    pub min_ratio: f64,
}

/// Why discovery stopped. Each message is one line saying what to fix.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {product} at {target}: {reason}; {fix}")]
    Connect {
        product: &'static str,
        target: String,
        reason: String,
        fix: &'static str,
    },
    #[error("cannot read the catalogue at {target}: {reason}; check that the user may read it")]
    Catalogue { target: String, reason: String },
    #[error("lost the connection to {target}: {reason}; check the server and run again")]
    ConnectionLost { target: String, reason: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    /// The classification file does not merge; the diagnostics say where.
    #[error("{0}")]
    Merge(Diagnostics),
}

impl DiscoverError {
    fn exit_code(&self) -> u8 {
        match self {
            DiscoverError::File { .. } | DiscoverError::Merge(_) => EXIT_FILE,
            _ => EXIT_USAGE,
        }
    }
}

/// A table or view to sample, as the catalogue names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Schema (PostgreSQL) or database (MySQL).
    pub schema: String,
    pub name: String,
    /// Column names in table order; never empty.
    pub columns: Vec<String>,
}

impl Table {
    /// Adds one catalogue row (schema, table, column) to `tables`, which the
    /// catalogue query returns ordered by table then column position.
    pub(crate) fn push_column(
        tables: &mut Vec<Table>,
        schema: String,
        name: String,
        column: String,
    ) {
        match tables.last_mut() {
            Some(t) if t.schema == schema && t.name == name => t.columns.push(column),
            _ => tables.push(Table {
                schema,
                name,
                columns: vec![column],
            }),
        }
    }
}

/// A sample that failed.
#[derive(Debug)]
pub enum SampleError {
    /// The server refused this table (permission, timeout, a view that
    /// errors): warn, skip it, go on.
    Table(String),
    /// The session is gone: stop.
    Fatal(DiscoverError),
}

/// The run, counted for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub tables_scanned: usize,
    pub tables_skipped: usize,
    pub columns_classified: usize,
    pub merge: MergeReport,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.merge;
        write!(
            f,
            "{} table(s) scanned, {} skipped, {} column(s) classified; \
             {} added, {} evidence updated, {} kept as edited, {} not seen",
            self.tables_scanned,
            self.tables_skipped,
            self.columns_classified,
            m.added,
            m.evidence_updated,
            m.kept_as_edited,
            m.not_seen
        )
    }
}

/// Runs `danxia discover`; prints errors and the summary on stderr.
pub fn run(args: DiscoverArgs) -> ExitCode {
    match discover(args) {
        Ok(summary) => {
            eprintln!("danxia discover: {summary}");
            ExitCode::SUCCESS
        }
        Err(DiscoverError::Merge(d)) => {
            eprintln!("{d}");
            eprintln!("danxia discover: the classification file could not be merged (nothing was written); fix the errors above and run again");
            ExitCode::from(EXIT_FILE)
        }
        Err(e) => {
            eprintln!("danxia discover: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn discover(args: DiscoverArgs) -> Result<Summary, DiscoverError> {
    if !(0.0..=1.0).contains(&args.min_ratio) {
        return Err(DiscoverError::Usage(format!(
            "--min-ratio {} is out of range: use a share from 0 to 1, e.g. 0.5",
            args.min_ratio
        )));
    }
    let mut dsn = Dsn::parse(&args.dsn).map_err(DiscoverError::Usage)?;
    if dsn.password.is_none() {
        dsn.password = std::env::var(dsn.dialect.password_env())
            .ok()
            .filter(|p| !p.is_empty());
    }
    // Read and check the file first: a scan that could not be saved is
    // time wasted on the database.
    let existing = match &args.out {
        Some(path) => read_existing(path)?,
        None => None,
    };
    let file_label = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("<stdout>"));
    merge_classification(existing.as_deref(), &[], &file_label).map_err(DiscoverError::Merge)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DiscoverError::Runtime)?;
    let scan = runtime.block_on(scan(&dsn, &args))?;

    let (text, merge) = merge_classification(existing.as_deref(), &scan.findings, &file_label)
        .map_err(DiscoverError::Merge)?;
    match &args.out {
        Some(path) => write_atomically(path, &text).map_err(|e| DiscoverError::File {
            path: path.clone(),
            reason: format!("cannot write the classification file: {e}"),
        })?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| DiscoverError::File {
                    path: file_label.clone(),
                    reason: e.to_string(),
                })?;
        }
    }
    Ok(Summary {
        tables_scanned: scan.tables_scanned,
        tables_skipped: scan.tables_skipped,
        columns_classified: scan.findings.len(),
        merge,
    })
}

/// The classification file's text, `None` when it does not exist yet.
fn read_existing(path: &Path) -> Result<Option<String>, DiscoverError> {
    let file_error = |reason: String| DiscoverError::File {
        path: path.to_path_buf(),
        reason,
    };
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| file_error("not UTF-8 text: is this the classification file?".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            if dir.is_dir() {
                Ok(None)
            } else {
                Err(file_error(format!(
                    "directory {} does not exist: create it or choose another --out",
                    dir.display()
                )))
            }
        }
        Err(e) => Err(file_error(format!(
            "cannot read the classification file: {e}"
        ))),
    }
}

/// What the scan found.
struct Scan {
    findings: Vec<Finding>,
    tables_scanned: usize,
    tables_skipped: usize,
}

/// A connected database of either kind.
enum Backend {
    Postgres(postgres::Postgres),
    Mysql(mysql::Mysql),
}

impl Backend {
    async fn connect(dsn: &Dsn) -> Result<Backend, DiscoverError> {
        Ok(match dsn.dialect {
            Dialect::Postgres => Backend::Postgres(postgres::connect(dsn).await?),
            Dialect::Mysql => Backend::Mysql(mysql::connect(dsn).await?),
        })
    }

    async fn tables(&mut self, schemas: &[String]) -> Result<Vec<Table>, DiscoverError> {
        match self {
            Backend::Postgres(p) => p.tables(schemas).await,
            Backend::Mysql(m) => m.tables(schemas).await,
        }
    }

    async fn sample(
        &mut self,
        table: &Table,
        limit: u64,
        scanner: &Scanner,
        columns: &mut [ColumnEvidence],
    ) -> Result<u64, SampleError> {
        match self {
            Backend::Postgres(p) => p.sample(table, limit, scanner, columns).await,
            Backend::Mysql(m) => m.sample(table, limit, scanner, columns).await,
        }
    }

    async fn close(self) {
        match self {
            // Dropping the client ends the connection task.
            Backend::Postgres(_) => {}
            Backend::Mysql(m) => m.close().await,
        }
    }

    fn name_case(&self) -> NameCase {
        match self {
            Backend::Postgres(_) => NameCase::AsStored,
            Backend::Mysql(_) => NameCase::Lower,
        }
    }
}

async fn scan(dsn: &Dsn, args: &DiscoverArgs) -> Result<Scan, DiscoverError> {
    let mut db = Backend::connect(dsn).await?;
    let tables = db.tables(&args.schemas).await?;
    if tables.is_empty() {
        let scope = if args.schemas.is_empty() {
            String::new()
        } else {
            format!(" in {}", args.schemas.join(", "))
        };
        eprintln!(
            "danxia discover: warning: {dsn} has no tables or views{scope} that this user can see"
        );
    }
    let case = db.name_case();
    let scanner = Scanner::all();
    let progress = progress_bar(tables.len());
    let mut out = Scan {
        findings: Vec::new(),
        tables_scanned: 0,
        tables_skipped: 0,
    };
    for table in &tables {
        let key = file_name(&[&table.schema, &table.name], case);
        progress.set_message(key.clone());
        let mut columns: Vec<ColumnEvidence> = table
            .columns
            .iter()
            .map(|c| ColumnEvidence::new(c))
            .collect();
        let sampled = if args.sample == 0 {
            Ok(0)
        } else {
            db.sample(table, args.sample, &scanner, &mut columns).await
        };
        match sampled {
            Ok(rows) => {
                tracing::debug!(table = %key, rows, "discover: sampled");
                out.tables_scanned += 1;
                for (name, evidence) in table.columns.iter().zip(&columns) {
                    let column = file_name(&[name], case);
                    if let Some(f) = evidence.finding(key.clone(), column, args.min_ratio) {
                        out.findings.push(f);
                    }
                }
            }
            Err(SampleError::Table(reason)) => {
                out.tables_skipped += 1;
                progress.suspend(|| {
                    eprintln!(
                        "danxia discover: warning: cannot sample {key}: {reason}; skipped (grant the user SELECT on it, or narrow --schema)"
                    )
                });
            }
            Err(SampleError::Fatal(e)) => {
                progress.finish_and_clear();
                return Err(e);
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    db.close().await;
    Ok(out)
}

/// One tick per table, naming it; drawn on stderr only when stderr is a
/// terminal (never in logs or CI output).
fn progress_bar(tables: usize) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(tables as u64), target);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} tables {wide_msg}") {
        bar.set_style(style);
    }
    bar
}

/// An error and its sources, `: `-joined, on one line. A message that
/// already quotes its source's (`I/O error: connection refused` over
/// `connection refused`) gives way to it, so nothing is said twice.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut messages = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(src) = cur {
        let text = src.to_string();
        if messages.last().is_some_and(|m| m.contains(&text)) {
            messages.pop();
        }
        messages.push(text);
        cur = src.source();
    }
    messages.join(": ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let s = Summary {
            tables_scanned: 3,
            tables_skipped: 1,
            columns_classified: 5,
            merge: MergeReport {
                added: 4,
                evidence_updated: 1,
                kept_as_edited: 1,
                not_seen: 2,
            },
        };
        assert_eq!(
            s.to_string(),
            "3 table(s) scanned, 1 skipped, 5 column(s) classified; \
             4 added, 1 evidence updated, 1 kept as edited, 2 not seen"
        );
    }

    #[test]
    fn error_chain_says_each_thing_once() {
        #[derive(Debug)]
        struct Wrap(String, Option<Box<Wrap>>);
        impl fmt::Display for Wrap {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|w| w as _)
            }
        }
        let w = |m: &str, s: Option<Wrap>| Wrap(m.into(), s.map(Box::new));
        let refused = || w("Connection refused", None);
        let cases = [
            (
                w("error connecting to server", Some(refused())),
                "error connecting to server: Connection refused",
            ),
            (
                w(
                    "I/O: I/O: Connection refused",
                    Some(w("I/O: Connection refused", Some(refused()))),
                ),
                "Connection refused",
            ),
            (w("line one\nline two", None), "line one line two"),
        ];
        for (e, want) in cases {
            assert_eq!(error_chain(&e), want);
        }
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("classification.toml");
        write_atomically(&path, "one\n").unwrap_or_else(|e| panic!("{e}"));
        write_atomically(&path, "two\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read_to_string(&path).ok().as_deref(), Some("two\n"));
        let names: Vec<_> = fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("classification.toml")]);
    }

    #[test]
    fn bad_arguments_exit_2_before_connecting() {
        let args = |dsn: &str, min_ratio: f64| DiscoverArgs {
            dsn: dsn.into(),
            sample: 10,
            out: None,
            schemas: Vec::new(),
            min_ratio,
        };
        for (a, want) in [
            (args("postgres://u@h/d", 1.5), "--min-ratio 1.5"),
            (args("postgres://u@h/d", f64::NAN), "--min-ratio NaN"),
            (args("ftp://u@h/d", 0.5), "unknown scheme"),
        ] {
            let e = discover(a).expect_err(want);
            assert_eq!(e.exit_code(), EXIT_USAGE);
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[test]
    fn an_invalid_existing_file_exits_1_before_connecting() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("c.toml");
        fs::write(&path, "version = 7\n").unwrap_or_else(|e| panic!("{e}"));
        let e = discover(DiscoverArgs {
            // Nothing listens on port 1: reaching the connect would be a
            // connection error (exit 2), not this one.
            dsn: "postgres://u@127.0.0.1:1/d".into(),
            sample: 10,
            out: Some(path.clone()),
            schemas: Vec::new(),
            min_ratio: 0.5,
        })
        .expect_err("invalid file");
        assert_eq!(e.exit_code(), EXIT_FILE);
        assert!(e.to_string().contains("version 7"), "{e}");
        assert_eq!(
            fs::read_to_string(&path).ok().as_deref(),
            Some("version = 7\n")
        );
    }
}
