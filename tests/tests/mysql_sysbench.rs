//! sysbench's `oltp_read_write` (libmariadb, server-side prepared
//! statements, 4 threads, transactions) through danxia with the default pack
//! enforced, as root: prepare, 10 s of run and cleanup must all succeed,
//! nothing may be refused, every error the server raised (sysbench ignores
//! deadlocks and retries) must be in the audit with its MySQL error number,
//! and the audit chain must verify.

use std::process::Command;

use danxia_e2e::*;
use serde_json::Value;

const DB: &str = "danxia_e2e_sysbench";
/// The errors sysbench 1.0 ignores (and retries the transaction after) by
/// default: deadlock, record changed since last read, lock wait timeout.
const RETRIED_ERRORS: [u64; 3] = [1213, 1020, 1205];

fn sysbench(port: u16, phase: &str) -> Command {
    let mut c = Command::new("sysbench");
    c.arg("oltp_read_write")
        .arg("--db-driver=mysql")
        .arg("--mysql-host=127.0.0.1")
        .arg(format!("--mysql-port={port}"))
        .arg("--mysql-user=root")
        .arg(format!("--mysql-db={DB}"))
        .arg("--mysql-ssl=off")
        .arg("--tables=2")
        .arg("--table-size=1000");
    if phase == "run" {
        c.args(["--threads=4", "--time=10", "--report-interval=0"]);
    }
    c.arg(phase);
    c
}

/// The number after `label:` in sysbench's report (e.g. "reconnects:").
fn stat(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in the sysbench report:\n{report}"))
}

#[test]
fn mysql_sysbench_oltp_read_write_through_danxia() {
    require_mariadb();
    mariadb_exec(&format!(
        "drop database if exists {DB}; create database {DB}"
    ));
    let mut d = Danxia::start_with(Options {
        mysql: true,
        ..Options::default_pack()
    });
    let prepare = run_ok(&mut sysbench(d.mysql_port, "prepare"));
    assert!(
        prepare.contains("Inserting 1000 records into 'sbtest2'"),
        "{prepare}"
    );
    let report = run_ok(&mut sysbench(d.mysql_port, "run"));
    let cleanup = run_ok(&mut sysbench(d.mysql_port, "cleanup"));
    assert!(cleanup.contains("Dropping table 'sbtest2'"), "{cleanup}");
    mariadb_exec(&format!("drop database if exists {DB}"));

    assert!(
        !report.contains("FATAL") && !report.to_lowercase().contains("error:"),
        "sysbench reported errors:\n{report}"
    );
    assert_eq!(stat(&report, "reconnects:"), 0, "{report}");
    let transactions = stat(&report, "transactions:");
    assert!(
        transactions >= 100,
        "only {transactions} transactions in 10 s:\n{report}"
    );
    // Deadlocks between the 4 threads happen directly too (a handful in
    // 10 s on 2 × 1000 rows); sysbench rolls back and retries them.
    let ignored = stat(&report, "ignored errors:");
    assert!(
        ignored * 100 <= transactions,
        "{ignored} ignored errors in {transactions} transactions:\n{report}"
    );

    let status = d.shutdown();
    assert!(
        status.success(),
        "danxia exited with {status}:\n{}",
        d.stderr()
    );
    let events = d.audit_events();
    let st = mysql_statements(&events);
    let queries = stat(&report, "queries:");
    let prepared = st
        .iter()
        .filter(|e| e["protocol_flow"] == "prepared")
        .count() as u64;
    assert!(
        prepared >= queries * 9 / 10,
        "sysbench runs its statements as prepared statements: {prepared} prepared executes audited for {queries} queries"
    );
    let refused: Vec<&&Value> = st.iter().filter(|e| e["verdict"] != "allowed").collect();
    assert!(
        refused.is_empty(),
        "the default pack refused sysbench: {refused:?}"
    );
    let errors: Vec<&&Value> = st.iter().filter(|e| e["outcome"] == "error").collect();
    assert!(
        errors
            .iter()
            .all(|e| RETRIED_ERRORS.iter().any(|c| e["error_code"] == *c)),
        "only the errors sysbench retries: {errors:?}"
    );
    assert_eq!(
        errors.len() as u64,
        ignored,
        "every error sysbench ignored is audited as an error: {errors:?}"
    );
    assert!(
        of_kind(&events, "protocol_error").is_empty(),
        "{:?}",
        of_kind(&events, "protocol_error")
    );
    let v = d.audit_verify();
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success() && out.starts_with("OK"),
        "danxia audit verify failed ({}): {out}{}",
        v.status,
        String::from_utf8_lossy(&v.stderr)
    );
}
