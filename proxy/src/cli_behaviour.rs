//! `danxia baseline show` and `danxia quarantine list|add|release`: the
//! analyst's and SOC's tools for behaviour baselines. They ask the running
//! proxy through its admin endpoint (`admin.listen` in the config); when
//! the proxy is not running and the store is the disk snapshot, `baseline
//! show` and `quarantine list` read the snapshot and `quarantine release`
//! edits it, so the release holds when the proxy starts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::behaviour::{Clock, Store, StoreKind};
use crate::config::Config;

/// How long to wait for the admin endpoint.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest admin answer read.
const MAX_ANSWER: u64 = 64 << 20;

pub(crate) fn load(config: &Path) -> Result<Config, String> {
    let mut cfg = Config::load(config).map_err(|e| e.to_string())?;
    let base = std::env::current_dir().unwrap_or_default();
    cfg.resolve_paths(&base);
    Ok(cfg)
}

/// Percent-encodes a query value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `--token-file`, when given: overrides `admin.token_file` of the
/// configuration for every command of this process.
static TOKEN_FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Makes the CLI read the admin token from `path` (`--token-file`).
pub fn set_token_file(path: std::path::PathBuf) {
    let _ = TOKEN_FILE.set(path);
}

/// The admin API token: from `--token-file`, else `admin.token_file`.
fn admin_token(cfg: &crate::config::AdminConfig) -> Result<String, String> {
    let path = TOKEN_FILE.get().unwrap_or(&cfg.token_file);
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the admin token file {}: {e} (run as the user danxia runs as, or pass --token-file FILE)",
            path.display()
        )
    })?;
    Ok(text.trim().to_string())
}

/// One HTTP/1.0 request to the admin endpoint with the admin token:
/// (status, body), or why it could not be made (the proxy is not running,
/// the token file is unreadable).
pub(crate) fn admin(
    cfg: &crate::config::AdminConfig,
    method: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let addr: SocketAddr = cfg.listen;
    let token = admin_token(cfg)?;
    let mut s = TcpStream::connect_timeout(&addr, ADMIN_TIMEOUT)
        .map_err(|e| format!("admin endpoint {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(ADMIN_TIMEOUT));
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    )
    .map_err(|e| format!("admin endpoint {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.take(MAX_ANSWER)
        .read_to_end(&mut raw)
        .map_err(|e| format!("admin endpoint {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("admin endpoint {addr}: not an HTTP answer"))?;
    Ok((status, body.to_string()))
}

fn offline_snapshot(cfg: &Config) -> Result<crate::behaviour::Snapshot, String> {
    if cfg.behaviour.store != StoreKind::Disk {
        return Err(format!(
            "the proxy is not answering on {} and the store is not the disk snapshot: start the proxy",
            cfg.admin.listen
        ));
    }
    Store::read_file(
        &cfg.behaviour
            .dir
            .join(crate::behaviour::store::SNAPSHOT_FILE),
    )
    .map_err(|e| e.to_string())
}

pub fn baseline_show(config: &Path, identity: &str, json: bool) -> ExitCode {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("danxia baseline show: {e}");
            return ExitCode::from(2);
        }
    };
    let path = format!("/behaviour/profile?identity={}", enc(identity));
    match admin(&cfg.admin, "GET", &path) {
        Ok((200, body)) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or(body));
                return ExitCode::SUCCESS;
            }
            for p in v.as_array().into_iter().flatten() {
                print_profile(p);
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("danxia baseline show: {status}: {}", error_of(&body));
            ExitCode::FAILURE
        }
        Err(online) => {
            let snap = match offline_snapshot(&cfg) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("danxia baseline show: {online}; {e}");
                    return ExitCode::from(2);
                }
            };
            eprintln!("(the proxy is not running: reading the snapshot it saved last)");
            let engine = cfg.behaviour.engine();
            let clock = Clock::new(cfg.behaviour.clock.as_ref(), &cfg.behaviour.timezone);
            let now = clock.now();
            let found: Vec<_> = snap
                .profiles
                .iter()
                .filter(|p| p.identity == identity || p.user == identity)
                .collect();
            if found.is_empty() {
                eprintln!("danxia baseline show: no baseline for `{identity}` (give user|application|network, or a user name)");
                return ExitCode::FAILURE;
            }
            for p in found {
                let summary = p.profile.summary(&engine, now, clock.offset(now));
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"identity": p.identity, "summary": summary})
                        )
                        .unwrap_or_default()
                    );
                } else {
                    println!("identity {}\n{summary}", p.identity);
                }
            }
            ExitCode::SUCCESS
        }
    }
}

fn print_profile(p: &serde_json::Value) {
    let id = p.get("identity").and_then(|v| v.as_str()).unwrap_or("?");
    println!("identity {id}");
    if let Some(q) = p.get("quarantined").filter(|q| !q.is_null()) {
        println!(
            "QUARANTINED by rule {} since unix time {}: {}",
            q.get("rule").and_then(|v| v.as_str()).unwrap_or("?"),
            q.get("since").and_then(|v| v.as_u64()).unwrap_or(0),
            q.get("reason").and_then(|v| v.as_str()).unwrap_or("")
        );
    }
    println!("{}", p.get("text").and_then(|v| v.as_str()).unwrap_or(""));
}

pub(crate) fn error_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string())
}

pub enum QuarantineCmd {
    List,
    Add {
        identity: String,
        reason: Option<String>,
    },
    Release {
        identity: String,
    },
}

pub fn quarantine(config: &Path, cmd: QuarantineCmd) -> ExitCode {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("danxia quarantine: {e}");
            return ExitCode::from(2);
        }
    };
    let (method, path) = match &cmd {
        QuarantineCmd::List => ("GET", "/quarantine".to_string()),
        QuarantineCmd::Add { identity, reason } => (
            "POST",
            format!(
                "/quarantine?identity={}{}",
                enc(identity),
                reason
                    .as_deref()
                    .map(|r| format!("&reason={}", enc(r)))
                    .unwrap_or_default()
            ),
        ),
        QuarantineCmd::Release { identity } => (
            "POST",
            format!("/quarantine/release?identity={}", enc(identity)),
        ),
    };
    match admin(&cfg.admin, method, &path) {
        Ok((200, body)) => {
            match cmd {
                QuarantineCmd::List => {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let list = v.as_array().cloned().unwrap_or_default();
                    if list.is_empty() {
                        println!("no identity is quarantined");
                    }
                    for q in list {
                        println!(
                            "{}  rule {}  since unix time {}  {}",
                            q.get("identity").and_then(|v| v.as_str()).unwrap_or("?"),
                            q.get("rule").and_then(|v| v.as_str()).unwrap_or("?"),
                            q.get("since").and_then(|v| v.as_u64()).unwrap_or(0),
                            q.get("reason").and_then(|v| v.as_str()).unwrap_or("")
                        );
                    }
                }
                QuarantineCmd::Add { identity, .. } => println!("{identity} quarantined"),
                QuarantineCmd::Release { identity } => println!("{identity} released"),
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("danxia quarantine: {status}: {}", error_of(&body));
            ExitCode::FAILURE
        }
        Err(online) => {
            // Offline: the disk snapshot is what the proxy starts from.
            let mut snap = match offline_snapshot(&cfg) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("danxia quarantine: {online}; {e}");
                    return ExitCode::from(2);
                }
            };
            match cmd {
                QuarantineCmd::List => {
                    eprintln!("(the proxy is not running: reading the snapshot it saved last)");
                    for q in &snap.quarantine {
                        println!(
                            "{}  rule {}  since unix time {}  {}",
                            q.identity, q.rule, q.since, q.reason
                        );
                    }
                    ExitCode::SUCCESS
                }
                QuarantineCmd::Release { identity } => {
                    let before = snap.quarantine.len();
                    snap.quarantine.retain(|q| q.identity != identity);
                    if snap.quarantine.len() == before {
                        eprintln!("danxia quarantine release: `{identity}` is not quarantined");
                        return ExitCode::FAILURE;
                    }
                    let path = cfg
                        .behaviour
                        .dir
                        .join(crate::behaviour::store::SNAPSHOT_FILE);
                    match Store::write_file(&path, &snap) {
                        Ok(()) => {
                            println!("{identity} released (in the snapshot; the proxy starts without it)");
                            ExitCode::SUCCESS
                        }
                        Err(e) => {
                            eprintln!("danxia quarantine release: {e}");
                            ExitCode::FAILURE
                        }
                    }
                }
                QuarantineCmd::Add { .. } => {
                    eprintln!("danxia quarantine add: {online}: the proxy must be running");
                    ExitCode::from(2)
                }
            }
        }
    }
}
