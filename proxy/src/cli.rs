//! `danxia check` and `danxia explain`: the security team's tools for
//! working on a policy without running the proxy. They load the policy
//! exactly as `danxia run` does (same files, same validation), so what they
//! say is what the proxy will do. Output is for a person at a terminal.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use danxia_detectors::{analyze, LexOptions, StatementFacts};
use danxia_policies::{
    check as check_policy, Identity, LoadOptions, Mode, Policy, Request, Severity,
};

use crate::config::Config;

/// Where the policy is: an explicit directory (with optional data files)
/// or the configuration's `[policy]`.
fn load_options(
    dir: Option<PathBuf>,
    config: &Path,
    classification: Option<PathBuf>,
    allowlist: Option<PathBuf>,
) -> Result<(LoadOptions, Option<Mode>), String> {
    let from_config = || -> Result<Option<crate::config::PolicyConfig>, String> {
        let mut cfg = Config::load(config).map_err(|e| e.to_string())?;
        // Relative paths mean what they mean to `danxia run`: relative to
        // the working directory.
        let base = std::env::current_dir().unwrap_or_default();
        cfg.resolve_paths(&base);
        Ok(cfg.policy)
    };
    match dir {
        Some(dir) => Ok((
            LoadOptions {
                dir,
                classification,
                allowlist,
                mask_key: None,
            },
            None,
        )),
        None => {
            let p = from_config()?.ok_or_else(|| {
                format!(
                    "{} has no [policy] section: name a policy directory, e.g. `danxia check policies/packs/default`",
                    config.display()
                )
            })?;
            let mut o = p.load_options();
            if classification.is_some() {
                o.classification = classification;
            }
            if allowlist.is_some() {
                o.allowlist = allowlist;
            }
            Ok((o, Some(p.mode)))
        }
    }
}

pub fn check(
    dir: Option<PathBuf>,
    config: &Path,
    classification: Option<PathBuf>,
    allowlist: Option<PathBuf>,
) -> ExitCode {
    let (mut opts, _) = match load_options(dir, config, classification, allowlist) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("danxia check: {e}");
            return ExitCode::from(2);
        }
    };
    // Checking the policy text needs no secret (`danxia run` reads the
    // configured policy.masking_key_file, and refuses to start without it).
    if opts.mask_key.is_none() {
        opts.mask_key = Some(Arc::from(&b"danxia check: stand-in masking key"[..]));
    }
    let diags = check_policy(&opts);
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    for d in &diags {
        println!("{d}");
    }
    if errors > 0 {
        println!(
            "danxia check: {}: {errors} error(s), {} warning(s); the policy would not load",
            opts.dir.display(),
            diags.len() - errors
        );
        if crate::cli_api::looks_like_api_policy(&opts.dir) {
            println!(
                "danxia check: {} looks like an API scope policy ([[route]], [[caller]]): check it with `danxia check --api {}`",
                opts.dir.display(),
                opts.dir.display()
            );
        }
        return ExitCode::FAILURE;
    }
    match Policy::load(&opts) {
        Ok(p) => {
            println!(
                "danxia check: {}: OK, {} rule(s), {} warning(s)",
                opts.dir.display(),
                p.rule_count(),
                diags.len()
            );
            ExitCode::SUCCESS
        }
        Err(d) => {
            // check() and load() share their validation; should they ever
            // disagree, the loader has the last word.
            println!("{d}");
            ExitCode::FAILURE
        }
    }
}

pub struct ExplainArgs {
    /// Read the SQL as MySQL / MariaDB does (else PostgreSQL).
    pub mysql: bool,
    pub user: String,
    pub database: String,
    pub application: String,
    pub address: Option<IpAddr>,
    pub mode: Option<String>,
    pub policy: Option<PathBuf>,
    pub config: PathBuf,
    pub sql: String,
}

pub fn explain(a: ExplainArgs) -> ExitCode {
    let (mut opts, config_mode) = match load_options(a.policy, &a.config, None, None) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("danxia explain: {e}");
            return ExitCode::from(2);
        }
    };
    // Explaining masks nothing: `hash` strategies need no real key here.
    if opts.mask_key.is_none() {
        opts.mask_key = Some(Arc::from(&b"danxia explain: stand-in masking key"[..]));
    }
    let policy = match Policy::load(&opts) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("danxia explain: the policy does not load:\n{d}");
            return ExitCode::from(2);
        }
    };
    let mode = match a.mode.as_deref() {
        Some("learn") => Mode::Learn,
        Some("monitor") => Mode::Monitor,
        Some(_) => Mode::Enforce,
        None => config_mode.unwrap_or_default(),
    };
    let identity = Identity::new(
        Arc::from("explain"),
        Arc::from(a.user.as_str()),
        Arc::from(a.database.as_str()),
        Arc::from(a.application.as_str()),
        a.address,
    );
    println!(
        "policy {} ({} rules), mode {}, protocol {}, user {:?}, database {:?}, application {:?}, address {}",
        opts.dir.display(),
        policy.rule_count(),
        mode.as_str(),
        if a.mysql { "mysql" } else { "postgres" },
        a.user,
        a.database,
        a.application,
        a.address.map_or("(none)".to_string(), |x| x.to_string())
    );
    let dialect = if a.mysql {
        danxia_detectors::Dialect::MySql
    } else {
        danxia_detectors::Dialect::Postgres
    };
    let statements = analyze(&a.sql, LexOptions::for_dialect(dialect));
    let n = statements.len();
    let mut refused = false;
    let now = SystemTime::now();
    for (i, facts) in statements.iter().enumerate() {
        println!();
        if n > 1 {
            println!("== statement {} of {n}", i + 1);
        }
        print_facts(facts);
        let e = policy.explain(&Request {
            identity: &identity,
            facts,
            stacked: i > 0,
            mode,
            now,
        });
        print!("{e}");
        refused |= e.decision.block;
    }
    if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_facts(f: &StatementFacts) {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    println!("statement:   {}", f.normalized);
    println!("fingerprint: {}", f.fingerprint);
    println!("operation:   {}", f.operation);
    println!("tables:      {}", list(&f.tables));
    println!("columns:     {}", list(&f.columns));
    println!("functions:   {}", list(&f.functions));
    let signals: Vec<&str> = f.signals.names().collect();
    println!(
        "signals:     {}",
        if signals.is_empty() {
            "-".to_string()
        } else {
            signals.join(", ")
        }
    );
    let mut shape = Vec::new();
    if f.select_star {
        shape.push("select *");
    }
    if f.unbounded_write {
        shape.push("write without a bounding WHERE");
    }
    if f.limited {
        shape.push("has LIMIT");
    }
    if !shape.is_empty() {
        println!("shape:       {}", shape.join(", "));
    }
    if let Some(e) = &f.parse_error {
        println!("parse error: {e}");
    }
}
