//! `danxia api …`: the security team's and the SOC's commands for the
//! API data-sharing side: import an OpenAPI document as a route policy
//! skeleton, manage API keys (shown once, stored hashed), and suspend or
//! resume a caller through the running proxy's admin endpoint.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli_behaviour::{admin, enc, error_of, load};
use crate::config::{Config, Protocol};

/// `danxia api import OPENAPI [--out FILE]`.
pub fn import(openapi: &Path, out: Option<&Path>, force: bool) -> ExitCode {
    let text = match std::fs::read_to_string(openapi) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("danxia api import: cannot read {}: {e}", openapi.display());
            return ExitCode::from(2);
        }
    };
    let name = openapi.display().to_string();
    let skeleton = match danxia_policies::api::import_openapi(&text, &name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("danxia api import: {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match out {
        None => {
            print!("{skeleton}");
            ExitCode::SUCCESS
        }
        Some(path) => {
            if path.exists() && !force {
                eprintln!(
                    "danxia api import: {} exists; trim it by hand, write elsewhere, or pass --force to overwrite",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
            if let Err(e) = std::fs::write(path, skeleton) {
                eprintln!("danxia api import: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            eprintln!(
                "danxia api import: wrote {}; trim the routes and grants, then `danxia check --api {}`",
                path.display(),
                path.parent().map_or(".".into(), |p| p.display().to_string())
            );
            ExitCode::SUCCESS
        }
    }
}

/// The keys file: `--keys`, else the first http listener's
/// `auth.keys_file` in the configuration.
fn keys_file(keys: Option<PathBuf>, config: &Path) -> Result<PathBuf, String> {
    if let Some(k) = keys {
        return Ok(k);
    }
    let mut cfg: Config = load(config)?;
    let base = std::env::current_dir().unwrap_or_default();
    cfg.resolve_paths(&base);
    cfg.listeners
        .iter()
        .filter(|l| l.protocol == Protocol::Http)
        .find_map(|l| l.auth.as_ref().and_then(|a| a.keys_file.clone()))
        .ok_or_else(|| {
            format!(
                "{} has no http listener with auth.keys_file; pass --keys FILE",
                config.display()
            )
        })
}

pub enum KeyCmd {
    Add {
        caller: String,
        expires: Option<String>,
    },
    List,
    Revoke {
        id: String,
    },
}

/// `danxia api key add|list|revoke`.
pub fn key(cmd: KeyCmd, keys: Option<PathBuf>, config: &Path) -> ExitCode {
    let path = match keys_file(keys, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("danxia api key: {e}");
            return ExitCode::from(2);
        }
    };
    use crate::http::auth::keys;
    match cmd {
        KeyCmd::Add { caller, expires } => {
            let expires = match expires
                .as_deref()
                .map(str::parse::<jiff::Timestamp>)
                .transpose()
            {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("danxia api key add: --expires: {e}; expected RFC 3339, e.g. 2027-12-31T00:00:00Z");
                    return ExitCode::from(2);
                }
            };
            match keys::add_key(&path, &caller, expires) {
                Ok((secret, entry)) => {
                    println!("{secret}");
                    eprintln!(
                    "danxia api key: key {} for caller {caller} added to {} (stored hashed: this is the only time it is shown)",
                    entry.id,
                    path.display()
                );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("danxia api key add: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        KeyCmd::List => match keys::list_keys(&path) {
            Ok(list) => {
                if list.is_empty() {
                    println!("no API keys in {}", path.display());
                }
                for k in list {
                    println!(
                        "{:<28} caller {:<20} created {}{}{}",
                        k.id,
                        k.caller,
                        k.created,
                        k.expires
                            .as_deref()
                            .map(|e| format!("  expires {e}"))
                            .unwrap_or_default(),
                        if k.disabled { "  DISABLED" } else { "" }
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("danxia api key list: {e}");
                ExitCode::FAILURE
            }
        },
        KeyCmd::Revoke { id } => match keys::revoke_key(&path, &id) {
            Ok(_) => {
                eprintln!(
                    "danxia api key: {id} disabled in {} (a running danxia picks it up within policy.reload_interval)",
                    path.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("danxia api key revoke: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

pub enum CallerCmd {
    List,
    Suspend {
        caller: String,
        reason: Option<String>,
    },
    Resume {
        caller: String,
    },
}

/// `danxia api callers|suspend|resume`: through the running proxy.
pub fn caller(cmd: CallerCmd, config: &Path) -> ExitCode {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("danxia api: {e}");
            return ExitCode::from(2);
        }
    };
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let (method, path) = match &cmd {
        CallerCmd::List => ("GET", "/api/callers".to_string()),
        CallerCmd::Suspend { caller, reason } => (
            "POST",
            format!(
                "/api/suspend?caller={}&by={}{}",
                enc(caller),
                enc(&format!("{by} (danxia api suspend)")),
                reason
                    .as_deref()
                    .map(|r| format!("&reason={}", enc(r)))
                    .unwrap_or_default()
            ),
        ),
        CallerCmd::Resume { caller } => (
            "POST",
            format!(
                "/api/resume?caller={}&by={}",
                enc(caller),
                enc(&format!("{by} (danxia api resume)"))
            ),
        ),
    };
    match admin(&cfg.admin, method, &path) {
        Ok((200, body)) => {
            match cmd {
                CallerCmd::List => {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    for c in v.as_array().cloned().unwrap_or_default() {
                        let suspended = c.get("suspended").filter(|s| !s.is_null());
                        println!(
                            "{:<24} {:<10} {}{}",
                            c.get("caller").and_then(|v| v.as_str()).unwrap_or("?"),
                            c.get("listener").and_then(|v| v.as_str()).unwrap_or("?"),
                            c.get("usage").map(|u| u.to_string()).unwrap_or_default(),
                            match suspended {
                                Some(s) => format!(
                                    "  SUSPENDED: {}",
                                    s.get("reason").and_then(|v| v.as_str()).unwrap_or("")
                                ),
                                None => String::new(),
                            }
                        );
                    }
                }
                CallerCmd::Suspend { caller, .. } => println!("{caller} suspended"),
                CallerCmd::Resume { caller } => println!("{caller} resumed"),
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("danxia api: {status}: {}", error_of(&body));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("danxia api: {e} (is danxia running with this configuration?)");
            ExitCode::from(2)
        }
    }
}

/// Whether a policy directory holds API scope files (`[[route]]` or
/// `[[caller]]` tables) rather than SQL rules, so `danxia check DIR` can
/// point to `--api`.
pub fn looks_like_api_policy(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .any(|t| {
            t.lines().any(|l| {
                let l = l.trim();
                l == "[[route]]" || l == "[[caller]]"
            })
        })
}

/// `danxia api explain`: which route, grant and rule decide a request of
/// `caller`, and why, without sending it.
pub fn explain(
    dir: Option<PathBuf>,
    config: &Path,
    caller: &str,
    method: &str,
    target: &str,
    body_len: Option<u64>,
    at_minute: Option<u16>,
) -> ExitCode {
    let dir = match dir {
        Some(d) => d,
        None => {
            let mut cfg: Config = match load(config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("danxia api explain: {e}");
                    return ExitCode::from(2);
                }
            };
            cfg.resolve_paths(&std::env::current_dir().unwrap_or_default());
            match cfg
                .listeners
                .iter()
                .filter(|l| l.protocol == Protocol::Http)
                .find_map(|l| l.api_policy.clone())
            {
                Some(d) => d,
                None => {
                    eprintln!(
                        "danxia api explain: {} has no http listener with api_policy; pass --policy DIR",
                        config.display()
                    );
                    return ExitCode::from(2);
                }
            }
        }
    };
    let opts = danxia_policies::api::ApiLoadOptions {
        dir: dir.clone(),
        mask_key: Some(std::sync::Arc::from(
            &b"danxia explain: stand-in masking key"[..],
        )),
    };
    let policy = match danxia_policies::api::ApiPolicy::load(&opts) {
        Ok(p) => p,
        Err(d) => {
            eprintln!(
                "danxia api explain: the API policy in {} does not load:\n{d}",
                dir.display()
            );
            return ExitCode::from(2);
        }
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let pairs = crate::http::service::query_pairs(query);
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let minute = at_minute.unwrap_or_else(|| {
        let now = crate::http::unix_now();
        let tz = jiff::tz::TimeZone::system();
        let off = jiff::Timestamp::from_second(now as i64)
            .map(|t| tz.to_offset(t).seconds())
            .unwrap_or(0);
        ((now as i64 + i64::from(off)).rem_euclid(86_400) / 60) as u16
    });
    let method = method.to_ascii_uppercase();
    for line in policy.explain(caller, &method, path, &names, body_len, minute) {
        println!("{line}");
    }
    let allowed = policy
        .route(&method, path)
        .map(|m| {
            policy
                .authorise(caller, &m, &names, body_len, minute)
                .is_allowed()
        })
        .unwrap_or(policy.settings().unknown_route == danxia_policies::api::UnknownRoute::Allow);
    if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `danxia check --api DIR`: validates an API scope policy directory.
pub fn check_api(dir: &Path) -> ExitCode {
    let opts = danxia_policies::api::ApiLoadOptions {
        dir: dir.to_path_buf(),
        mask_key: Some(std::sync::Arc::from(
            &b"danxia check: stand-in masking key"[..],
        )),
    };
    let diags = danxia_policies::api::ApiPolicy::check(&opts);
    let errors = diags
        .iter()
        .filter(|d| d.severity == danxia_policies::Severity::Error)
        .count();
    for d in &diags {
        eprintln!("{d}");
    }
    if errors > 0 {
        eprintln!(
            "danxia check: {}: {errors} error(s), {} warning(s); the API policy would not load",
            dir.display(),
            diags.len() - errors
        );
        return ExitCode::FAILURE;
    }
    match danxia_policies::api::ApiPolicy::load(&opts) {
        Ok(p) => {
            println!(
                "danxia check: {}: OK, {} route(s), {} caller(s), {} warning(s)",
                dir.display(),
                p.routes().len(),
                p.callers().count(),
                diags.len()
            );
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprintln!("{d}");
            ExitCode::FAILURE
        }
    }
}
