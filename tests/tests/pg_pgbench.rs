//! Sustained real traffic and query cancellation through danxia: pgbench's
//! initialisation (COPY of 100 000 rows) and its TPC-B-like workload in each
//! query mode (simple, extended, prepared), with every statement audited;
//! and CancelRequest routing with the proxy-issued secret.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use danxia_e2e::wire::{self, RawSession};
use danxia_e2e::*;
use serde_json::Value;

const USER: &str = "postgres";
const DB: &str = "test";
const BENCH_DB: &str = "danxia_e2e_pgbench";
/// Statements in one transaction of pgbench's default (tpcb-like) script:
/// BEGIN, 3 UPDATEs, SELECT, INSERT, END.
const STATEMENTS_PER_TXN: usize = 7;

fn pgbench_through(d: &Danxia, app: &str) -> std::process::Command {
    let mut c = pgbench();
    c.args(["-h", "127.0.0.1", "-U", USER])
        .arg("-p")
        .arg(d.pg_port.to_string())
        .env("PGAPPNAME", app)
        .env("PGCONNECT_TIMEOUT", "10");
    c
}

/// The integer after `label` in pgbench's report.
fn report_number(out: &str, label: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("pgbench output has no {label:?} line:\n{out}"));
    line[line.find(label).expect("label") + label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {label:?} in {line:?}"))
}

/// Statement events grouped by the application name of their session.
fn statements_by_app(events: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut app_of: BTreeMap<String, String> = BTreeMap::new();
    for e in events.iter().filter(|e| e["kind"] == "session_start") {
        if let (Some(s), Some(a)) = (e["session"].as_str(), e["application"].as_str()) {
            app_of.insert(s.to_string(), a.to_string());
        }
    }
    let mut out: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["kind"] == "statement") {
        let app = e["session"]
            .as_str()
            .and_then(|s| app_of.get(s))
            .cloned()
            .unwrap_or_default();
        out.entry(app).or_default().push(e);
    }
    out
}

#[test]
fn pgbench_all_query_modes() {
    require_postgres();
    run_ok(psql_direct(USER, DB).args([
        "-c",
        &format!("drop database if exists {BENCH_DB} with (force)"),
    ]));
    run_ok(psql_direct(USER, DB).args(["-c", &format!("create database {BENCH_DB}")]));
    let d = Danxia::start();

    let init = run(pgbench_through(&d, "e2e_init").args(["-i", "-s", "1", "-q", BENCH_DB]));
    let init_out =
        String::from_utf8_lossy(&init.stdout).into_owned() + &String::from_utf8_lossy(&init.stderr);
    assert!(
        init.status.success(),
        "pgbench -i through danxia failed:\n{init_out}"
    );
    assert!(init_out.contains("done in"), "{init_out}");
    let events = d.wait_audit(Duration::from_secs(10), |e| {
        e["kind"] == "statement" && e["operation"] == "copy_in"
    });
    let copy = events
        .iter()
        .find(|e| e["operation"] == "copy_in")
        .expect("copy_in event");
    assert_eq!(copy["rows"], 100_000, "{copy}");
    assert_eq!(
        copy["tables"],
        serde_json::json!(["pgbench_accounts"]),
        "{copy}"
    );
    assert_eq!(copy["outcome"], "ok");

    let mut expected: Vec<(String, &str, u64)> = Vec::new();
    for mode in ["simple", "extended", "prepared"] {
        let app = format!("e2e_{mode}");
        let out =
            run(pgbench_through(&d, &app)
                .args(["-c", "4", "-j", "2", "-T", "5", "-M", mode, BENCH_DB]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "pgbench -M {mode} through danxia exited {}:\n{text}",
            out.status
        );
        assert!(
            !text.to_lowercase().contains("error"),
            "pgbench -M {mode} reported an error:\n{text}"
        );
        let txns = report_number(&text, "number of transactions actually processed:");
        assert!(txns > 0, "no transactions in -M {mode}:\n{text}");
        assert_eq!(
            report_number(&text, "number of failed transactions:"),
            0,
            "{text}"
        );
        expected.push((app, mode, txns));
    }

    // Every statement of every transaction was audited, with the flow the
    // client used.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = d.audit_events();
        let by_app = statements_by_app(&events);
        let mut missing = Vec::new();
        for (app, mode, txns) in &expected {
            let st = by_app.get(app).map(Vec::as_slice).unwrap_or(&[]);
            let want_flow = if *mode == "simple" {
                "simple"
            } else {
                "extended"
            };
            let in_flow = st
                .iter()
                .filter(|e| e["protocol_flow"] == want_flow)
                .count();
            let want = *txns as usize * STATEMENTS_PER_TXN;
            if in_flow < want {
                missing.push(format!(
                    "{mode}: {in_flow} {want_flow} statement events < {want} ({txns} txns)"
                ));
                continue;
            }
            let errors: Vec<_> = st.iter().filter(|e| e["outcome"] != "ok").collect();
            assert!(
                errors.is_empty(),
                "-M {mode}: statements not ok: {errors:?}"
            );
            let count = |op: &str| st.iter().filter(|e| e["operation"] == op).count();
            assert!(
                count("update") >= 3 * *txns as usize,
                "-M {mode}: updates {}",
                count("update")
            );
            assert!(
                count("insert") >= *txns as usize,
                "-M {mode}: inserts {}",
                count("insert")
            );
            assert!(
                count("transaction") >= 2 * *txns as usize,
                "-M {mode}: BEGIN/END {}",
                count("transaction")
            );
            let accounts = st
                .iter()
                .filter(|e| {
                    e["operation"] == "update"
                        && e["tables"] == serde_json::json!(["pgbench_accounts"])
                })
                .count();
            assert!(
                accounts >= *txns as usize,
                "-M {mode}: updates of pgbench_accounts {accounts}"
            );
        }
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            panic!("audit incomplete after 30 s: {missing:?}\n{}", d.stderr());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(d.metric("danxia_audit_events_dropped_total", &[]), 0.0);
    d.wait_metric(
        Duration::from_secs(10),
        "danxia_connections_active",
        &[("listener", "pg")],
        |v| v == 0.0,
    );
    drop(d);
    run_ok(psql_direct(USER, DB).args([
        "-c",
        &format!("drop database if exists {BENCH_DB} with (force)"),
    ]));
}

/// On session `s` to `port`: a CancelRequest with a wrong key leaves a
/// running statement alone; one with the session's key cancels it (57014)
/// within 5 s. `on_step` runs after each ("wrong", "right").
fn cancel_flow(port: u16, s: &mut RawSession, on_step: &dyn Fn(&str)) {
    let (pid, secret) = s.key.expect("BackendKeyData");
    // A cancel with a wrong key does nothing.
    s.send(&wire::query("select pg_sleep(1.5), 'slept'"))
        .expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(&wire::cancel_request(pid, secret ^ 0x5a5a_5a5a))
        .expect("cancel");
    assert!(
        wire::wait_closed(&mut c, Duration::from_secs(5)),
        "danxia closes the cancel connection"
    );
    let msgs = s.read_until_ready().expect("sleep result");
    assert_eq!(
        wire::tags(&msgs),
        "TDCZ",
        "a wrong-key cancel must not cancel: {msgs:?}"
    );
    on_step("wrong");

    // The right key cancels the running statement.
    s.send(&wire::query("select pg_sleep(30)")).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(&wire::cancel_request(pid, secret))
        .expect("cancel");
    s.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let msgs = s
        .read_until_ready()
        .expect("an answer within 5 s of the cancel");
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = msgs
        .iter()
        .find(|m| m.tag == b'E')
        .unwrap_or_else(|| panic!("no ErrorResponse: {msgs:?}"));
    assert_eq!(
        err.sqlstate().as_deref(),
        Some("57014"),
        "{:?}",
        err.fields()
    );
    assert!(wire::wait_closed(&mut c, Duration::from_secs(5)));
    on_step("right");

    s.stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
}

#[test]
fn cancel_request_is_routed_by_the_proxy_issued_key() {
    require_postgres();
    // PostgreSQL's own behaviour first: proves what the raw client expects.
    let mut direct = RawSession::connect(DIRECT_PORT, USER, DB).expect("direct session");
    cancel_flow(DIRECT_PORT, &mut direct, &|_| {});
    direct.terminate();

    let d = Danxia::start();
    let mut s = RawSession::connect(d.pg_port, USER, DB).expect("session");
    let (pid, _) = s.key.expect("danxia sends BackendKeyData");
    let msgs = s.simple_query("select pg_backend_pid()").expect("query");
    let backend_pid: i32 = msgs[1].data_row()[0]
        .as_deref()
        .and_then(|p| p.parse().ok())
        .expect("backend pid");
    // The client sees the backend's real pid (applications compare it with
    // NOTIFY pids and pg_backend_pid()); only the secret is danxia's own,
    // and the wrong-secret step of cancel_flow proves it is checked.
    assert_eq!(
        pid, backend_pid,
        "the client must see the backend's real process id"
    );
    cancel_flow(d.pg_port, &mut s, &|step| {
        let result = if step == "wrong" {
            "unknown_key"
        } else {
            "forwarded"
        };
        d.wait_metric(
            Duration::from_secs(5),
            "danxia_cancel_requests_total",
            &[("listener", "pg"), ("result", result)],
            |v| v == 1.0,
        );
    });
    // The session goes on.
    let msgs = s
        .simple_query("select 'still here'")
        .expect("query after cancel");
    assert_eq!(msgs[1].data_row(), vec![Some("still here".into())]);
    let events = d.wait_audit(Duration::from_secs(5), |e| e["sqlstate"] == "57014");
    let cancelled = events
        .iter()
        .find(|e| e["sqlstate"] == "57014")
        .expect("event");
    assert_eq!(cancelled["outcome"], "error", "{cancelled}");
    assert_eq!(cancelled["statement"], "select pg_sleep(30)", "{cancelled}");
    s.terminate();

    // Cancel via libpq (psycopg2's conn.cancel()) works the same way.
    let script = r#"
import sys, threading, time, psycopg2
conn = psycopg2.connect(sys.argv[1])
cur = conn.cursor()
threading.Timer(0.5, conn.cancel).start()
t0 = time.time()
try:
    cur.execute("select pg_sleep(30)")
    sys.exit("pg_sleep(30) was not cancelled")
except psycopg2.errors.QueryCanceled:
    pass
if time.time() - t0 > 5:
    sys.exit("cancel took %.1f s" % (time.time() - t0))
conn.rollback()
cur.execute("select 'ok after cancel'")
print(cur.fetchone()[0])
"#;
    let out = run_ok(python().arg("-c").arg(script).arg(d.pg_dsn(USER, DB)));
    assert_eq!(out.trim(), "ok after cancel");
    d.wait_metric(
        Duration::from_secs(5),
        "danxia_cancel_requests_total",
        &[("listener", "pg"), ("result", "forwarded")],
        |v| v == 2.0,
    );
}
