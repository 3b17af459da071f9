//! A real libpq application (psycopg2) through danxia: transactions, named
//! cursors, COPY both ways, LISTEN/NOTIFY, cancel, error fields equal to a
//! direct connection, many parameter types, a 10 MB value, executemany,
//! notices, autocommit and closing halfway through a result — all in
//! `tests/clients/psycopg2_suite.py`. This file starts danxia, runs the
//! suite through it, and then checks what danxia recorded about it.

use std::time::Duration;

use danxia_e2e::*;
use serde_json::Value;

const USER: &str = "postgres";
const DB: &str = "test";
const WAIT: Duration = Duration::from_secs(10);

/// Rows the suite's COPY checks move in each direction (COPY_ROWS there).
const COPY_ROWS: u64 = 100_000;

fn direct_dsn() -> String {
    format!("host=127.0.0.1 port={DIRECT_PORT} user={USER} dbname={DB}")
}

fn statement_is(e: &Value, text: &str) -> bool {
    e["kind"] == "statement" && e["statement"].as_str().map(str::trim) == Some(text)
}

/// Runs the suite (or only the checks in `only`) through `d`; panics with
/// its output unless it passes.
fn run_suite(d: &Danxia, only: &[&str]) -> String {
    let mut cmd = python();
    cmd.arg(workspace_root().join("tests/clients/psycopg2_suite.py"))
        .arg(d.pg_dsn(USER, DB))
        .arg("--direct")
        .arg(direct_dsn());
    for name in only {
        cmd.arg("--only").arg(name);
    }
    let out = run(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "psycopg2 suite failed through danxia ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn show(events: &[&Value]) -> String {
    events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn psycopg2_suite_through_danxia() {
    require_postgres();
    // The shipped default pack, enforced: the suite's traffic (as an
    // administrator) must pass unchanged.
    let mut d = Danxia::start_with(Options::default_pack());
    let stdout = run_suite(&d, &[]);
    assert!(
        stdout.contains("17 checks, 17 passed, 0 failed"),
        "unexpected summary from the suite:\n{stdout}"
    );

    // Everything the suite did is in the audit once its final statement (the
    // second `drop schema if exists danxia_suite_<pid>`, after the one at
    // set-up) is; danxia writes events in order.
    d.wait_audit_count(WAIT, 2, |e| {
        e["kind"] == "statement"
            && e["statement"].as_str().is_some_and(|s| {
                s.trim_start()
                    .starts_with("drop schema if exists danxia_suite_")
            })
    });
    let events = d.audit_events();

    // The cancelled `select pg_sleep(30)`: an error with SQLSTATE 57014.
    let sleeps: Vec<&Value> = events
        .iter()
        .filter(|e| statement_is(e, "select pg_sleep(30)"))
        .collect();
    assert_eq!(sleeps.len(), 1, "pg_sleep events:\n{}", show(&sleeps));
    assert_eq!(sleeps[0]["outcome"], "error", "{}", sleeps[0]);
    assert_eq!(sleeps[0]["sqlstate"], "57014", "{}", sleeps[0]);
    assert!(
        sleeps[0]["duration_us"].as_u64().unwrap_or(u64::MAX) < 10_000_000,
        "the cancelled statement should have ended well before 10 s: {}",
        sleeps[0]
    );
    let forwarded = d.metric("danxia_cancel_requests_total", &[("result", "forwarded")]);
    assert!(
        forwarded >= 1.0,
        "danxia_cancel_requests_total{{result=\"forwarded\"}} = {forwarded}\n{}",
        d.metrics()
    );

    assert_eq!(
        d.metric("danxia_policy_decisions_total", &[("verdict", "denied")]),
        0.0,
        "the default pack must not refuse the suite's statements"
    );
    // `select pg_sleep(30)` is a time-delay signal: allowed for an
    // administrator, with an alert.
    assert_eq!(
        sleeps[0]["alerts"],
        serde_json::json!(["alert-injection-admins"]),
        "{}",
        sleeps[0]
    );

    // COPY in and out of exactly 100000 rows each.
    let copies: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "statement" && e["rows"] == COPY_ROWS)
        .filter(|e| e["operation"] == "copy_in" || e["operation"] == "copy_out")
        .collect();
    for op in ["copy_in", "copy_out"] {
        let n = copies
            .iter()
            .filter(|e| e["operation"] == op && e["outcome"] == "ok")
            .count();
        assert_eq!(
            n,
            1,
            "{op} events with rows = {COPY_ROWS}:\n{}",
            show(&copies)
        );
    }
    // The COPY of a duplicate key failed with 23505, the COPY the client
    // aborted (CopyFail) with 57014; both are audited as errors.
    for code in ["23505", "57014"] {
        let failed: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "statement" && e["operation"] == "copy_in")
            .filter(|e| e["sqlstate"] == code)
            .collect();
        assert_eq!(
            failed.len(),
            1,
            "copy_in events with sqlstate {code}:\n{}",
            show(&failed)
        );
        assert_eq!(failed[0]["outcome"], "error", "{}", failed[0]);
    }

    // The unique violation of the error checks, with its SQLSTATE and text.
    let unique: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "statement" && e["sqlstate"] == "23505")
        .filter(|e| e["operation"] == "insert")
        .collect();
    assert!(
        !unique.is_empty(),
        "no insert with sqlstate 23505 in the audit"
    );
    for e in &unique {
        assert_eq!(e["outcome"], "error", "{e}");
        assert!(
            e["error"]
                .as_str()
                .unwrap_or("")
                .contains("duplicate key value violates unique constraint"),
            "error text of the unique violation: {e}"
        );
    }
    for (code, what) in [
        ("22012", "division by zero"),
        ("42P01", "undefined table"),
        ("42601", "syntax error"),
    ] {
        assert!(
            events.iter().any(|e| e["kind"] == "statement"
                && e["sqlstate"] == code
                && e["outcome"] == "error"),
            "no {what} ({code}) statement event in the audit"
        );
    }

    // LISTEN / NOTIFY and the application name of the suite's session.
    for op in ["listen", "notify"] {
        assert!(
            events
                .iter()
                .any(|e| e["kind"] == "statement" && e["operation"] == op),
            "no {op} statement event in the audit"
        );
    }
    assert!(
        events.iter().any(|e| e["kind"] == "session_start"
            && e["application"]
                .as_str()
                .is_some_and(|a| a.starts_with("danxia-suite-"))),
        "no session_start with the suite's application_name"
    );
    // Large-object calls travel as FunctionCall messages: each one is
    // audited as an operation `call` with the function's oid.
    let calls: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "statement" && e["protocol_flow"] == "function_call")
        .collect();
    assert!(
        calls.len() >= 3,
        "the large-object check makes several FunctionCalls; audited: {}",
        show(&calls)
    );
    for c in &calls {
        assert_eq!(c["operation"], "call", "{c}");
        assert_eq!(c["outcome"], "ok", "{c}");
        assert!(
            c["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("FunctionCall oid ")),
            "{c}"
        );
    }
    let protocol_errors = of_kind(&events, "protocol_error");
    assert!(
        protocol_errors.is_empty(),
        "a well-behaved client caused protocol errors:\n{}",
        show(&protocol_errors)
    );

    // The hash chain is intact once danxia has stopped.
    let status = d.shutdown();
    assert!(
        status.success(),
        "danxia exited with {status}:\n{}",
        d.stderr()
    );
    let v = d.audit_verify();
    assert!(
        v.status.success(),
        "audit verify failed: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

/// With client_encoding GBK, '乗' is the bytes 0x81 0x5C: the second byte
/// is an ASCII backslash. PostgreSQL lexes by characters of the client
/// encoding, so `select E'乗'; drop table …; select '…'` is three
/// statements. danxia must see the same three (operation `ddl` for the DROP,
/// with its table) and record their text as UTF-8; otherwise a DROP can hide
/// inside what the audit and the policy take for a string literal.
#[test]
fn gbk_statements_split_like_the_server() {
    require_postgres();
    let d = Danxia::start();
    run_suite(&d, &["client_encoding_gbk"]);
    // The suite's last statement is the clean-up `drop schema`.
    d.wait_audit_count(WAIT, 2, |e| {
        e["kind"] == "statement"
            && e["statement"].as_str().is_some_and(|s| {
                s.trim_start()
                    .starts_with("drop schema if exists danxia_suite_")
            })
    });
    let events = d.audit_events();
    let session = events
        .iter()
        .find(|e| {
            e["kind"] == "statement"
                && e["statement"].as_str().is_some_and(|s| {
                    s.starts_with("create table danxia_suite_")
                        && s.ends_with(".gbk_victim (x int)")
                })
        })
        .map(|e| e["session"].clone())
        .expect("the GBK session's create table is audited");
    let stmts: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "statement" && e["session"] == session)
        .collect();
    let drop = stmts.iter().find(|e| {
        e["statement"].as_str().is_some_and(|s| {
            s.starts_with("drop table danxia_suite_") && s.ends_with(".gbk_victim")
        })
    });
    let drop = drop.unwrap_or_else(|| {
        panic!(
            "the DROP TABLE inside the GBK multi-statement query is not audited as a statement of its own; the session's statements:\n{}",
            show(&stmts)
        )
    });
    assert_eq!(drop["operation"], "ddl", "{drop}");
    assert!(
        drop["tables"].to_string().contains("gbk_victim"),
        "tables of the DROP: {drop}"
    );
    for text in ["select E'乗'", "select 'after the drop'"] {
        assert!(
            stmts.iter().any(|e| statement_is(e, text)),
            "no statement event with the text {text:?} (GBK transcoded to UTF-8); the session's statements:\n{}",
            show(&stmts)
        );
    }
}
