//! Differential test: the corpus `tests/corpus/pg_differential.sql` (≈ 400
//! statements: DDL, DML, every kind of join, CTEs, window functions, errors
//! of many SQLSTATEs, unicode, bytea, arrays, JSON, ranges, large rows and
//! results, transactions, prepared statements, cursors, …) runs once straight
//! against PostgreSQL and once through danxia, and every result must be
//! identical (`tests/clients/differential.py` compares them). Then the audit
//! must hold one event per statement, with the server's SQLSTATEs, and its
//! hash chain must verify.

use std::collections::BTreeMap;
use std::time::Duration;

use danxia_e2e::*;
use serde_json::Value;

const USER: &str = "postgres";
const DB: &str = "test";
const WAIT: Duration = Duration::from_secs(15);
const MIN_STATEMENTS: usize = 220;

fn statement_is(e: &Value, text: &str) -> bool {
    e["kind"] == "statement" && e["statement"].as_str().map(str::trim) == Some(text)
}

/// The first statement event whose text is `text` (some corpus entries run
/// twice, e.g. `execute p_dept(1)` before and after DEALLOCATE ALL).
fn first<'a>(events: &'a [Value], text: &str) -> &'a Value {
    events
        .iter()
        .find(|e| statement_is(e, text))
        .unwrap_or_else(|| panic!("no statement event for {text:?} in the audit"))
}

#[test]
fn corpus_identical_direct_and_through_danxia() {
    require_postgres();
    // With the shipped policy enforced: an administrator's traffic must
    // pass unchanged (the corpus holds no credential or server-file access).
    let mut d = Danxia::start_with(Options::default_pack());
    let work = tempfile::tempdir().expect("tempdir");
    let summary_path = work.path().join("summary.json");
    let direct = format!("host=127.0.0.1 port={DIRECT_PORT} user={USER} dbname={DB}");
    let out = run(python()
        .arg(workspace_root().join("tests/clients/differential.py"))
        .arg("--direct")
        .arg(&direct)
        .arg("--proxy")
        .arg(d.pg_dsn(USER, DB))
        .arg("--corpus")
        .arg(workspace_root().join("tests/corpus/pg_differential.sql"))
        .arg("--min-statements")
        .arg(MIN_STATEMENTS.to_string())
        .arg("--summary")
        .arg(&summary_path));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "differential run failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(&summary_path).expect("read differential summary"),
    )
    .expect("summary is JSON");
    let entries = summary["entries"].as_u64().expect("entries") as usize;
    assert!(
        entries >= MIN_STATEMENTS,
        "only {entries} corpus entries: {summary}"
    );
    assert_eq!(summary["different"], 0, "{stdout}");

    // The proxy side used two sessions (the corpus run and the clean-up);
    // once both have ended, every statement event is written.
    d.wait_audit_count(WAIT, 2, |e| e["kind"] == "session_end");
    let events = d.audit_events();
    let statements: Vec<&Value> = of_kind(&events, "statement");
    assert!(
        statements.len() >= MIN_STATEMENTS,
        "only {} statement events for {entries} corpus entries",
        statements.len()
    );

    // Every error the server raised directly was raised through danxia too and
    // audited as an error with the same SQLSTATE (compared as multisets).
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for code in summary["error_sqlstates"]
        .as_array()
        .expect("error_sqlstates")
    {
        *want
            .entry(code.as_str().expect("sqlstate").to_string())
            .or_default() += 1;
    }
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for e in &statements {
        if e["outcome"] == "error" {
            let code = e["sqlstate"].as_str().unwrap_or("<none>").to_string();
            *got.entry(code).or_default() += 1;
        }
    }
    for (code, n) in &want {
        let have = got.get(code).copied().unwrap_or(0);
        assert!(
            have >= *n,
            "SQLSTATE {code}: {n} errors directly but {have} error events in the audit.\nall audited: {got:?}\nwanted: {want:?}"
        );
    }
    let codes: Vec<&str> = want.keys().map(String::as_str).collect();
    assert!(
        codes.len() >= 30,
        "the corpus should cover ≥ 30 SQLSTATEs, has {codes:?}"
    );

    // A multi-statement simple query gives one event per statement.
    let upd = first(&events, "update multi_t set x = x * 10");
    assert_eq!(upd["operation"], "update", "{upd}");
    assert_eq!(upd["rows"], 2, "{upd}");
    assert_eq!(upd["protocol_flow"], "simple", "{upd}");
    let ins = first(&events, "insert into multi_t values (1), (2)");
    assert_eq!(ins["operation"], "insert", "{ins}");
    assert_eq!(ins["rows"], 2, "{ins}");

    // Statements differing only in literals share a fingerprint.
    let e1 = first(&events, "execute p_dept(1)");
    let e2 = first(&events, "execute p_dept(999)");
    assert_eq!(e1["fingerprint"], e2["fingerprint"], "{e1}\n{e2}");
    assert_eq!(e1["operation"], "execute", "{e1}");
    let e3 = first(&events, "execute p_ins(50, 'Prepared')");
    assert_ne!(e1["fingerprint"], e3["fingerprint"], "{e1}\n{e3}");

    // Large results are counted in full.
    let big = first(&events, "select repeat('x', 5000000) as five_megabytes");
    assert!(
        big["bytes_out"].as_u64().unwrap_or(0) >= 5_000_000,
        "bytes_out of a 5 MB row: {big}"
    );
    let many = first(
        &events,
        "select g, md5(g::text), g % 7 = 0 as seventh from generate_series(1, 100000) g",
    );
    assert_eq!(many["rows"], 100_000, "{many}");
    assert_eq!(many["outcome"], "ok", "{many}");

    let protocol_errors = of_kind(&events, "protocol_error");
    assert!(
        protocol_errors.is_empty(),
        "the corpus caused protocol errors: {protocol_errors:?}"
    );

    let refused: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "statement" && e["verdict"] == "denied")
        .collect();
    assert!(
        refused.is_empty(),
        "the default pack refused corpus statements: {refused:?}"
    );
    assert!(
        events
            .iter()
            .filter(|e| e["kind"] == "statement")
            .all(|e| e["rule"].is_string() && e["policy_version"] == 1),
        "every statement event names its rule and policy version"
    );

    let status = d.shutdown();
    assert!(
        status.success(),
        "danxia exited with {status}:\n{}",
        d.stderr()
    );
    let v = d.audit_verify();
    let verify_out = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success() && verify_out.starts_with("OK"),
        "danxia audit verify failed ({}): {verify_out}{}",
        v.status,
        String::from_utf8_lossy(&v.stderr)
    );
}
