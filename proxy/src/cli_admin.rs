//! `danxia sessions list|kill` and `danxia alerts recent`: the on-call
//! operator's view of the running proxy through its admin API (with the
//! token of `admin.token_file`, or `--token-file`). Prints, never decides.

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use crate::cli_behaviour::{admin, enc, error_of, load};

pub enum SessionsCmd {
    List {
        listener: Option<String>,
        user: Option<String>,
        json: bool,
    },
    Kill {
        id: String,
    },
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

/// Calls the admin API; the body of a 200, or the exit code after saying why.
fn call(what: &str, config: &Path, method: &str, path: &str) -> Result<String, ExitCode> {
    let cfg = load(config).map_err(|e| {
        eprintln!("danxia {what}: {e}");
        ExitCode::from(2)
    })?;
    match admin(&cfg.admin, method, path) {
        Ok((200, body)) => Ok(body),
        Ok((status, body)) => {
            eprintln!("danxia {what}: {status}: {}", error_of(&body));
            Err(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("danxia {what}: {e}");
            Err(ExitCode::from(2))
        }
    }
}

pub fn sessions(config: &Path, cmd: SessionsCmd) -> ExitCode {
    match cmd {
        SessionsCmd::List {
            listener,
            user,
            json,
        } => {
            let mut q = Vec::new();
            if let Some(l) = &listener {
                q.push(format!("listener={}", enc(l)));
            }
            if let Some(u) = &user {
                q.push(format!("user={}", enc(u)));
            }
            let path = if q.is_empty() {
                "/sessions".to_string()
            } else {
                format!("/sessions?{}", q.join("&"))
            };
            let body = match call("sessions list", config, "GET", &path) {
                Ok(b) => b,
                Err(code) => return code,
            };
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or(body));
                return ExitCode::SUCCESS;
            }
            let list = v.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no live session");
                return ExitCode::SUCCESS;
            }
            println!(
                "{:<22} {:<10} {:<8} {:<16} {:<16} {:<21} {:<20} {:>6} STATE",
                "ID", "LISTENER", "PROTO", "USER", "DATABASE", "CLIENT", "STARTED", "STMTS"
            );
            for x in list {
                println!(
                    "{:<22} {:<10} {:<8} {:<16} {:<16} {:<21} {:<20} {:>6} {}",
                    s(&x, "id"),
                    s(&x, "listener"),
                    s(&x, "protocol"),
                    s(&x, "user"),
                    s(&x, "database"),
                    s(&x, "client"),
                    s(&x, "started").get(..19).unwrap_or(s(&x, "started")),
                    x.get("statements").and_then(Value::as_u64).unwrap_or(0),
                    s(&x, "state"),
                );
            }
            ExitCode::SUCCESS
        }
        SessionsCmd::Kill { id } => {
            let path = format!("/sessions/{}", enc(&id));
            match call("sessions kill", config, "DELETE", &path) {
                Ok(body) => {
                    let v: Value = serde_json::from_str(&body).unwrap_or_default();
                    let k = &v["killed"];
                    println!(
                        "session {id} (user {}, client {}, listener {}) killed",
                        s(k, "user"),
                        s(k, "client"),
                        s(k, "listener")
                    );
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
    }
}

/// `danxia alerts recent [--limit N] [--json]`.
pub fn alerts_recent(config: &Path, limit: usize, json: bool) -> ExitCode {
    let body = match call(
        "alerts recent",
        config,
        "GET",
        &format!("/alerts?limit={limit}"),
    ) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or(body));
        return ExitCode::SUCCESS;
    }
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no alert since danxia started");
    }
    for a in list {
        println!(
            "{}  {:<8} {:<10} {}",
            s(&a, "time"),
            s(&a, "risk"),
            s(&a, "delivery"),
            s(&a, "title")
        );
    }
    ExitCode::SUCCESS
}
