//! `danxia audit search` and `danxia audit prune`: the operators' tools for
//! the audit directory. Output is for a person at a terminal (or, with
//! `--format json`, for `jq`); exit codes follow grep: 0 found / done,
//! 1 nothing found, 2 unusable input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use time::OffsetDateTime;

use crate::audit::search::{self, Format, Query};
use crate::audit::{self, AuditSettings};
use crate::config::Config;

/// The `[audit]` settings: from `config` when it exists (or was named),
/// with `dir` overriding `audit.dir`.
fn settings(
    dir: Option<PathBuf>,
    config: &Path,
    config_named: bool,
) -> Result<AuditSettings, String> {
    let mut settings = if config.exists() || (config_named && dir.is_none()) {
        let mut cfg = Config::load(config).map_err(|e| e.to_string())?;
        let base = std::env::current_dir().unwrap_or_default();
        cfg.resolve_paths(&base);
        cfg.audit
    } else {
        AuditSettings::default()
    };
    if let Some(dir) = dir {
        settings.dir = dir;
    }
    Ok(settings)
}

/// The command-line filters of `danxia audit search`, as typed.
#[derive(Debug, Default)]
pub struct SearchArgs {
    pub dir: Option<PathBuf>,
    pub config: PathBuf,
    pub config_named: bool,
    pub user: Option<String>,
    pub table: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub decision: Option<String>,
    pub rule: Option<String>,
    pub listener: Option<String>,
    pub session: Option<String>,
    pub kind: Option<String>,
    pub caller: Option<String>,
    pub route: Option<String>,
    pub text: Option<String>,
    pub limit: Option<usize>,
    pub json: bool,
}

/// Writes the table header before the first row only, so a search without
/// matches prints nothing (like grep).
struct HeaderFirst<W: Write> {
    inner: W,
    header: Option<String>,
}

impl<W: Write> Write for HeaderFirst<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(h) = self.header.take() {
            self.inner.write_all(h.as_bytes())?;
            self.inner.write_all(b"\n")?;
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn search(a: SearchArgs) -> ExitCode {
    let fail = |e: String| {
        eprintln!("danxia audit search: {e}");
        ExitCode::from(2)
    };
    let settings = match settings(a.dir, &a.config, a.config_named) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let now = OffsetDateTime::now_utc();
    let time = |t: &Option<String>| t.as_deref().map(|t| search::parse_time(t, now)).transpose();
    let (since, until) = match (time(&a.since), time(&a.until)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) => return fail(format!("--since {e}")),
        (_, Err(e)) => return fail(format!("--until {e}")),
    };
    let decision = match a
        .decision
        .as_deref()
        .map(search::parse_decision)
        .transpose()
    {
        Ok(d) => d.map(str::to_string),
        Err(e) => return fail(e),
    };
    if let Some(kind) = &a.kind {
        if !audit::event::KIND_NAMES.contains(&kind.as_str()) {
            return fail(format!(
                "--kind {kind:?}: use one of {}",
                audit::event::KIND_NAMES.join(", ")
            ));
        }
    }
    if a.limit == Some(0) {
        return fail("--limit must be at least 1".into());
    }
    let query = Query {
        user: a.user,
        table: a.table,
        since,
        until,
        decision,
        rule: a.rule,
        listener: a.listener,
        session: a.session,
        kind: a.kind,
        caller: a.caller,
        route: a.route,
        text: a.text,
        limit: a.limit,
    };
    let format = if a.json { Format::Json } else { Format::Table };
    let stdout = std::io::stdout().lock();
    let mut out = HeaderFirst {
        inner: std::io::BufWriter::with_capacity(64 * 1024, stdout),
        header: (format == Format::Table).then(search::table_header),
    };
    let started = Instant::now();
    match search::search(&settings.dir, &query, format, &mut out) {
        Ok(stats) => {
            let _ = out.flush();
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "{} records; {} files, {} skipped by time; {:.1} MB read in {:.2} s ({:.0} MB/s)",
                stats.matches,
                stats.files,
                stats.files_skipped,
                stats.bytes_read as f64 / 1e6,
                secs,
                stats.bytes_read as f64 / 1e6 / secs.max(1e-9)
            );
            if stats.matches > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => fail(e.to_string()),
    }
}

pub struct PruneArgs {
    pub dir: Option<PathBuf>,
    pub config: PathBuf,
    pub config_named: bool,
    pub dry_run: bool,
    pub before: Option<String>,
    pub force: bool,
}

pub fn prune(a: PruneArgs) -> ExitCode {
    let fail = |e: String| {
        eprintln!("danxia audit prune: {e}");
        ExitCode::from(2)
    };
    let settings = match settings(a.dir, &a.config, a.config_named) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let now = OffsetDateTime::now_utc();
    let retention = time::Duration::try_from(settings.retention).unwrap_or(time::Duration::MAX);
    let by_retention = now
        .checked_sub(retention)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let before = match a
        .before
        .as_deref()
        .map(|t| search::parse_time(t, now))
        .transpose()
    {
        Ok(Some(b)) => b,
        Ok(None) => by_retention,
        Err(e) => return fail(format!("--before {e}")),
    };
    if before > by_retention && !a.force {
        return fail(format!(
            "--before {} would remove records younger than audit.retention ({}, before {}): the Cybersecurity Law requires six months of logs; add --force only if another system keeps the legal copy",
            search::format_time(before),
            humantime_serde::re::humantime::format_duration(settings.retention),
            search::format_time(by_retention)
        ));
    }
    if !settings.dir.is_dir() {
        return fail(format!("{} is not a directory", settings.dir.display()));
    }
    match audit::prune_now(&settings, before, a.dry_run) {
        Ok(outcome) => {
            let verb = if a.dry_run { "would prune" } else { "pruned" };
            for f in &outcome.files {
                println!("{verb} {}", f.display());
            }
            match (outcome.first_seq, outcome.last_seq) {
                (Some(first), Some(last)) => println!(
                    "{verb} {} files ({:.1} MB), seq {first}..{last}, records before {} ({:?}){}",
                    outcome.files.len(),
                    outcome.bytes as f64 / 1e6,
                    search::format_time(before),
                    settings.retention_action,
                    if a.dry_run {
                        ""
                    } else {
                        "; the audit_pruned record and audit-anchor.json keep the chain verifiable"
                    }
                ),
                _ => println!(
                    "nothing to prune: no closed file has only records before {}",
                    search::format_time(before)
                ),
            }
            if let Some(oldest) = outcome.oldest_left {
                println!("oldest record left: {}", search::format_time(oldest));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}
