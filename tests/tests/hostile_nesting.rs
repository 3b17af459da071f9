//! Hostile nesting through danxia: psql and the mariadb client each send a
//! 1 MB statement of 500 000 nested parentheses as a non-administrator
//! under the shipped default pack. danxia's analyser must not overflow its
//! stack or stall: the statement is unparsed (a parse error, audited),
//! refused with the pack's `unparsed_action = "deny"` (PostgreSQL: SQLSTATE
//! 42501; MySQL: ERR 1142 / SQLSTATE 42000), counted in
//! `danxia_sql_parse_failures_total`, and the same session then runs an
//! ordinary statement.

use std::time::Duration;

use danxia_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// Parentheses on each side: 2 × 500 000 bytes plus `select 1`.
const DEPTH: usize = 500_000;

fn nested_statement() -> String {
    format!("select {}1{}", "(".repeat(DEPTH), ")".repeat(DEPTH))
}

fn refused_unparsed(e: &Value, listener: &str) -> bool {
    e["kind"] == "statement"
        && e["listener"] == listener
        && e["verdict"] == "denied"
        && e["rule"] == "default.unparsed"
}

/// The audit record of the refusal carries the parse error.
fn assert_audited(d: &Danxia, listener: &str) {
    let events = d.wait_audit(WAIT, |e| refused_unparsed(e, listener));
    let ev = events
        .iter()
        .find(|e| refused_unparsed(e, listener))
        .expect("an audit record of the refusal");
    assert!(
        ev["parse_error"].as_str().is_some_and(|s| !s.is_empty()),
        "the parse failure is audited: {ev}"
    );
}

#[test]
fn deeply_nested_statements_are_refused_cleanly_and_sessions_survive() {
    require_postgres();
    ensure_app_role();
    ensure_mysql_app_user();
    let d = Danxia::start_with(Options {
        mysql: true,
        ..Options::default_pack()
    });
    let sql = nested_statement();

    // psql: one session, the nested statement then an ordinary one.
    let out = run_with_stdin(
        d.psql(APP_USER, "test")
            .args(["-v", "ON_ERROR_STOP=0", "-At"]),
        &format!("{sql};\nselect 41 + 1;\n"),
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("(rule default.unparsed)"),
        "psql sees danxia's refusal: {stderr}"
    );
    assert_eq!(stdout.trim(), "42", "the session goes on: {stderr}");
    let out = run_with_stdin(
        d.psql(APP_USER, "test")
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-v", "VERBOSITY=verbose"]),
        &format!("{sql};\n"),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("42501"),
        "SQLSTATE 42501: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_audited(&d, "pg");

    // mariadb: --force goes on after the error on the same connection.
    let out = run_with_stdin(
        d.mariadb(MYSQL_APP_USER, Some(MYSQL_APP_PASSWORD), "test")
            .args(["--force", "-N"]),
        &format!("{sql};\nselect 41 + 1;\n"),
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("ERROR 1142 (42000)"),
        "mariadb sees ERR 1142: {stderr}"
    );
    assert_eq!(stdout.trim(), "42", "the session goes on: {stderr}");
    assert_audited(&d, "mysql");

    // Counted, and the proxy serves new sessions on both listeners.
    assert!(
        d.metric("danxia_sql_parse_failures_total", &[]) >= 3.0,
        "each nested statement counted as a parse failure"
    );
    let out = run_ok(d.psql(APP_USER, "test").args(["-At", "-c", "select 1"]));
    assert_eq!(out.trim(), "1");
    let out = run_ok(
        d.mariadb(MYSQL_APP_USER, Some(MYSQL_APP_PASSWORD), "test")
            .args(["-N", "-e", "select 1"]),
    );
    assert_eq!(out.trim(), "1");
}
