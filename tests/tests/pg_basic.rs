//! psql through danxia behaves exactly like psql straight to PostgreSQL
//! (results, errors, COPY, LISTEN/NOTIFY, notices), and what danxia records
//! about it — audit events, the hash chain, metrics, health endpoints — is
//! right. Every test starts its own danxia in front of the real PostgreSQL.

use std::process::Command;
use std::time::Duration;

use danxia_e2e::*;
use serde_json::Value;

const USER: &str = "postgres";
const DB: &str = "test";
const WAIT: Duration = Duration::from_secs(10);

/// stdout of `psql -A -t` with `args`, straight and through danxia.
fn both(d: &Danxia, args: &[&str]) -> (String, String) {
    let direct = run_ok(psql_direct(USER, DB).args(["-A", "-t"]).args(args));
    let proxied = run_ok(d.psql(USER, DB).args(["-A", "-t"]).args(args));
    (direct, proxied)
}

#[test]
fn query_results_equal_direct() {
    require_postgres();
    let d = Danxia::start();
    let queries: &[&str] = &[
        "select 1",
        "select 1; select 2",
        "select n, n * n, md5(n::text) from generate_series(1, 500) n",
        "select 'a''b'::text, null::int, 1.5::numeric, true, '2024-01-02'::date, E'tab\\there', 'ünïcødé 丹霞'",
        "select current_user, current_database()",
        "select array[1,2,3], '{\"k\": [1, null]}'::jsonb",
        "show server_version",
        "",
    ];
    for q in queries {
        let (direct, proxied) = both(&d, &["-c", q]);
        assert_eq!(direct, proxied, "output differs for {q:?}");
    }
    // A result bigger than any socket buffer is streamed whole.
    let big = "select repeat('x', 1000) || n from generate_series(1, 5000) n";
    let (direct, proxied) = both(&d, &["-c", big]);
    assert_eq!(direct.len(), proxied.len(), "large result length differs");
    assert!(direct == proxied, "large result content differs");
}

#[test]
fn errors_equal_direct() {
    require_postgres();
    let d = Danxia::start();
    for q in [
        "select * from danxia_no_such_table",
        "select 1/0",
        "selec 1",
        "select 1; select * from danxia_no_such_table; select 3",
    ] {
        let args = ["-c", "\\set VERBOSITY verbose", "-c", q];
        let direct = run(psql_direct(USER, DB).args(["-A", "-t"]).args(args));
        let proxied = run(d.psql(USER, DB).args(["-A", "-t"]).args(args));
        assert_eq!(
            direct.status.code(),
            Some(1),
            "direct psql should fail on {q:?}"
        );
        assert_eq!(
            proxied.status.code(),
            direct.status.code(),
            "exit code differs for {q:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&proxied.stderr),
            String::from_utf8_lossy(&direct.stderr),
            "error text differs for {q:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&proxied.stdout),
            String::from_utf8_lossy(&direct.stdout),
            "stdout differs for {q:?}"
        );
    }
}

#[test]
fn copy_round_trip_and_audit() {
    require_postgres();
    let d = Danxia::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.csv");
    // Rows with quotes, commas, newlines, NULLs and non-ASCII, and enough of
    // them (~2.5 MB) that COPY data spans many messages.
    let mut text = String::new();
    let rows = 30_000;
    for i in 0..rows {
        match i % 5 {
            0 => text.push_str(&format!("{i},\"quote \"\" and, comma\"\n")),
            1 => text.push_str(&format!("{i},\"multi\nline\"\n")),
            2 => text.push_str(&format!("{i},\n")),
            3 => text.push_str(&format!("{i},丹霞 {}\n", "y".repeat(i % 200))),
            _ => text.push_str(&format!("{i},plain {i}\n")),
        }
    }
    std::fs::write(&input, &text).expect("write input");
    let out = run_ok(d.psql(USER, DB).env("PGAPPNAME", "e2e_copy").args([
        "-c",
        "create temp table copy_rt(id int, v text)",
        "-c",
        &format!("\\copy copy_rt from '{}' csv", input.display()),
        "-c",
        &format!(
            "\\copy (select * from copy_rt order by id) to '{}' csv",
            output.display()
        ),
        "-c",
        &format!("\\copy copy_rt to '{}.2' csv", output.display()),
    ]));
    assert!(out.contains(&format!("COPY {rows}")), "psql output: {out}");
    let back = std::fs::read_to_string(&output).expect("read output");
    assert_eq!(back.len(), text.len(), "COPY round trip changed the size");
    assert!(back == text, "COPY round trip changed the content");

    let events = d.wait_audit_count(WAIT, 3, |e| {
        e["kind"] == "statement" && (e["operation"] == "copy_in" || e["operation"] == "copy_out")
    });
    let copy_in: Vec<&Value> = events
        .iter()
        .filter(|e| e["operation"] == "copy_in")
        .collect();
    let copy_out: Vec<&Value> = events
        .iter()
        .filter(|e| e["operation"] == "copy_out")
        .collect();
    assert_eq!(copy_in.len(), 1, "copy_in events: {events:?}");
    assert_eq!(copy_out.len(), 2, "copy_out events: {events:?}");
    assert_eq!(copy_in[0]["rows"], rows, "copy_in rows: {}", copy_in[0]);
    assert_eq!(copy_in[0]["outcome"], "ok");
    assert!(
        copy_in[0]["tables"].to_string().contains("copy_rt"),
        "copy_in tables: {}",
        copy_in[0]
    );
    assert!(
        copy_in[0]["bytes_in"].as_u64().unwrap_or(0) >= text.len() as u64,
        "copy_in bytes_in should count the COPY data ({} bytes): {}",
        text.len(),
        copy_in[0]
    );
    for e in &copy_out {
        assert_eq!(e["rows"], rows, "copy_out rows: {e}");
        assert!(
            e["bytes_out"].as_u64().unwrap_or(0) >= text.len() as u64,
            "copy_out bytes_out should count the COPY data: {e}"
        );
    }
    assert!(
        copy_out[1]["tables"].to_string().contains("copy_rt"),
        "COPY t TO tables: {}",
        copy_out[1]
    );
}

#[test]
fn listen_notify_and_notice_pass_through() {
    require_postgres();
    let d = Danxia::start();
    let out = run(d.psql(USER, DB).args([
        "-A",
        "-t",
        "-c",
        "LISTEN danxia_ch",
        "-c",
        "NOTIFY danxia_ch, 'hello from e2e'",
        "-c",
        "select 'after'",
        "-c",
        "DO $$ BEGIN RAISE NOTICE 'hi from plpgsql'; END $$",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql failed: {stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "Asynchronous notification \"danxia_ch\" with payload \"hello from e2e\" received"
        ),
        "notification missing from psql output:\n{stdout}"
    );
    assert!(stdout.contains("after"), "{stdout}");
    assert!(
        stderr.contains("NOTICE:  hi from plpgsql"),
        "notice missing from psql stderr:\n{stderr}"
    );

    // A notification from another session reaches a listener through danxia.
    let listener_out = std::thread::scope(|s| {
        let h = s.spawn(|| {
            run(d.psql(USER, DB).args([
                "-A",
                "-t",
                "-c",
                "LISTEN danxia_ch2",
                "-c",
                "select pg_sleep(1.5)",
                "-c",
                "select 'woke'",
            ]))
        });
        std::thread::sleep(Duration::from_millis(700));
        run_ok(psql_direct(USER, DB).args(["-c", "NOTIFY danxia_ch2, 'cross-session'"]));
        h.join().expect("listener thread")
    });
    let stdout = String::from_utf8_lossy(&listener_out.stdout);
    assert!(
        listener_out.status.success(),
        "listener psql failed: {stdout}"
    );
    assert!(
        stdout.contains("Asynchronous notification \"danxia_ch2\" with payload \"cross-session\""),
        "cross-session notification missing:\n{stdout}"
    );
}

/// The statement events of one session, in order.
fn statements_of(events: &[Value], session: &Value) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "statement" && &e["session"] == session)
        .cloned()
        .collect()
}

#[test]
fn audit_events_per_statement_and_verify() {
    require_postgres();
    let mut d = Danxia::start();
    let script = "\
create temp table audit_t(id int primary key, v text);
insert into audit_t values (1, 'a'), (2, 'b'), (3, 'c');
select * from audit_t where id = 1;
select   *  from audit_t where id = 2;
update audit_t set v = 'z' where id >= 2;
delete from audit_t where id = 3;
select 10; select 20;
select * from danxia_no_such_table;
";
    let out = run_with_stdin(
        d.psql(USER, DB)
            .env("PGAPPNAME", "e2e_audit")
            .args(["-A", "-t", "-f", "-"]),
        script,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "psql -f with ON_ERROR_STOP exits 3 on the error; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let events = d.wait_audit(WAIT, |e| e["kind"] == "session_end");
    let starts = of_kind(&events, "session_start");
    assert_eq!(starts.len(), 1, "one session_start: {events:?}");
    let start = starts[0];
    assert_eq!(start["user"], USER, "{start}");
    assert_eq!(start["database"], DB, "{start}");
    assert_eq!(start["application"], "e2e_audit", "{start}");
    assert_eq!(start["protocol"], "postgres", "{start}");
    assert_eq!(start["listener"], "pg", "{start}");
    assert!(
        start["client"]
            .as_str()
            .unwrap_or("")
            .starts_with("127.0.0.1:"),
        "{start}"
    );
    let session = start["session"].clone();
    assert!(session.is_string(), "session id: {start}");
    let ends = of_kind(&events, "session_end");
    assert_eq!(ends.len(), 1, "{events:?}");
    assert_eq!(ends[0]["session"], session);
    assert_eq!(ends[0]["user"], USER);
    assert_eq!(ends[0]["database"], DB);
    assert_eq!(ends[0]["application"], "e2e_audit");

    let st = statements_of(&events, &session);
    let summary: Vec<String> = st.iter().map(|e| e.to_string()).collect();
    let summary = summary.join("\n");
    assert_eq!(st.len(), 9, "one statement event per statement:\n{summary}");
    let expect = [
        ("ddl", Some("audit_t"), None, "ok"),
        ("insert", Some("audit_t"), Some(3), "ok"),
        ("select", Some("audit_t"), Some(1), "ok"),
        ("select", Some("audit_t"), Some(1), "ok"),
        ("update", Some("audit_t"), Some(2), "ok"),
        ("delete", Some("audit_t"), Some(1), "ok"),
        ("select", None, Some(1), "ok"),
        ("select", None, Some(1), "ok"),
        ("select", Some("danxia_no_such_table"), None, "error"),
    ];
    for (i, (e, (op, table, rows, outcome))) in st.iter().zip(expect.iter()).enumerate() {
        assert_eq!(e["operation"], *op, "event {i} operation:\n{e}");
        assert_eq!(e["outcome"], *outcome, "event {i} outcome:\n{e}");
        assert_eq!(e["protocol_flow"], "simple", "event {i}:\n{e}");
        assert_eq!(e["user"], USER, "event {i}:\n{e}");
        match table {
            Some(t) => assert_eq!(
                e["tables"],
                serde_json::json!([t]),
                "event {i} tables:\n{e}"
            ),
            None => assert!(e.get("tables").is_none(), "event {i} has no tables:\n{e}"),
        }
        if let Some(r) = rows {
            assert_eq!(e["rows"], *r, "event {i} rows:\n{e}");
        }
        let fp = e["fingerprint"].as_str().unwrap_or("");
        assert!(
            fp.len() == 16 && fp.chars().all(|c| c.is_ascii_hexdigit()),
            "event {i} fingerprint:\n{e}"
        );
        assert!(e["duration_us"].is_u64(), "event {i} duration:\n{e}");
    }
    let text2 = st[2]["statement"]
        .as_str()
        .unwrap_or("")
        .trim_end_matches([';', ' ']);
    assert_eq!(
        text2, "select * from audit_t where id = 1",
        "statement text kept in full: {}",
        st[2]
    );
    assert_eq!(
        st[2]["fingerprint"], st[3]["fingerprint"],
        "literal/whitespace changes keep the fingerprint"
    );
    assert_ne!(st[2]["fingerprint"], st[4]["fingerprint"]);
    assert_eq!(
        st[6]["fingerprint"], st[7]["fingerprint"],
        "select 10 / select 20"
    );
    assert_eq!(st[8]["sqlstate"], "42P01", "{}", st[8]);
    assert!(
        st[8]["error"]
            .as_str()
            .unwrap_or("")
            .contains("danxia_no_such_table"),
        "{}",
        st[8]
    );

    // seq is gapless and increasing across the whole chain.
    for w in events.windows(2) {
        assert_eq!(
            w[1]["seq"].as_u64(),
            w[0]["seq"].as_u64().map(|s| s + 1),
            "seq gap: {} -> {}",
            w[0],
            w[1]
        );
        assert_eq!(w[1]["prev"], w[0]["hash"], "prev must be the previous hash");
    }

    let status = d.shutdown();
    assert!(
        status.success(),
        "danxia exit status {status}; log:\n{}",
        d.stderr()
    );
    let v = d.audit_verify();
    let vout =
        String::from_utf8_lossy(&v.stdout).into_owned() + &String::from_utf8_lossy(&v.stderr);
    assert_eq!(
        v.status.code(),
        Some(0),
        "audit verify on an intact chain:\n{vout}"
    );
    assert!(vout.contains("OK"), "{vout}");

    // Alter one byte of one record in a copy of the directory.
    let copy = tempfile::tempdir().expect("tempdir");
    let mut target = None;
    for entry in std::fs::read_dir(&d.audit_dir).expect("read audit dir") {
        let p = entry.expect("entry").path();
        let dst = copy.path().join(p.file_name().expect("file name"));
        std::fs::copy(&p, &dst).expect("copy audit file");
        let text = std::fs::read_to_string(&dst).expect("read copy");
        if let Some(line_no) = text.lines().position(|l| l.contains("where id = 1")) {
            target = Some((dst, line_no + 1));
        }
    }
    let (file, line_no) = target.expect("the audit files hold the select ... id = 1 statement");
    let text = std::fs::read_to_string(&file).expect("read");
    let tampered = text.replacen("where id = 1", "where id = 7", 1);
    assert_eq!(tampered.len(), text.len());
    std::fs::write(&file, tampered).expect("write tampered file");
    let v = audit_verify_dir(copy.path());
    let vout =
        String::from_utf8_lossy(&v.stdout).into_owned() + &String::from_utf8_lossy(&v.stderr);
    assert_eq!(
        v.status.code(),
        Some(1),
        "audit verify on a tampered chain:\n{vout}"
    );
    assert!(vout.contains("TAMPERED"), "{vout}");
    assert!(
        vout.contains(&format!("line {line_no}")),
        "verify must name line {line_no}:\n{vout}"
    );

    // Deleting a record is detected too.
    let text = std::fs::read_to_string(&file).expect("read");
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i + 1 != line_no)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&file, kept.join("\n") + "\n").expect("write");
    let v = audit_verify_dir(copy.path());
    let vout =
        String::from_utf8_lossy(&v.stdout).into_owned() + &String::from_utf8_lossy(&v.stderr);
    assert_eq!(
        v.status.code(),
        Some(1),
        "audit verify with a deleted record:\n{vout}"
    );
    assert!(vout.contains("TAMPERED"), "{vout}");
}

#[test]
fn metrics_count_statements_connections_and_bytes() {
    require_postgres();
    let d = Danxia::start();
    let listener = [("listener", "pg")];
    assert_eq!(d.metric("danxia_statements_total", &listener), 0.0);
    run_ok(d.psql(USER, DB).args([
        "-c",
        "select 1",
        "-c",
        "select 2; select 3",
        "-c",
        "create temp table m(x int)",
    ]));
    let n = d.wait_metric(WAIT, "danxia_statements_total", &listener, |v| v >= 4.0);
    assert_eq!(n, 4.0, "exactly one count per statement");
    assert_eq!(
        d.metric(
            "danxia_statements_total",
            &[
                ("listener", "pg"),
                ("operation", "select"),
                ("outcome", "ok")
            ]
        ),
        3.0
    );
    assert_eq!(
        d.metric(
            "danxia_statements_total",
            &[("listener", "pg"), ("operation", "ddl"), ("outcome", "ok")]
        ),
        1.0
    );

    let _ = run(d
        .psql(USER, DB)
        .args(["-c", "select * from danxia_no_such_table"]));
    d.wait_metric(
        WAIT,
        "danxia_statements_total",
        &[("listener", "pg"), ("outcome", "error")],
        |v| v == 1.0,
    );

    d.wait_metric(WAIT, "danxia_connections_active", &listener, |v| v == 0.0);
    assert_eq!(d.metric("danxia_connections_total", &listener), 2.0);
    for dir in ["in", "out"] {
        let labels = [("listener", "pg"), ("direction", dir)];
        assert!(
            d.metric("danxia_client_bytes_total", &labels) > 0.0,
            "client bytes {dir}"
        );
        assert!(
            d.metric("danxia_backend_bytes_total", &labels) > 0.0,
            "backend bytes {dir}"
        );
    }
    assert!(d.metric("danxia_statement_duration_seconds_count", &listener) >= 5.0);
    assert_eq!(
        d.metric_opt(
            "danxia_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "build_info with the crate version:\n{}",
        d.metrics()
    );
    assert_eq!(d.metric("danxia_audit_healthy", &[]), 1.0);
    // Label values never carry user, address or SQL.
    let text = d.metrics();
    for forbidden in [
        "\"postgres\"",
        "127.0.0.1",
        "select 1",
        "danxia_no_such_table",
        "e2e",
    ] {
        assert!(
            !text.contains(forbidden),
            "metrics mention {forbidden:?}:\n{text}"
        );
    }

    // While a connection is open the gauge says so.
    let mut s = wire::RawSession::connect(d.pg_port, USER, DB).expect("raw session");
    d.wait_metric(WAIT, "danxia_connections_active", &listener, |v| v == 1.0);
    let msgs = s.simple_query("select 1").expect("query");
    assert_eq!(wire::tags(&msgs), "TDCZ");
    s.terminate();
    d.wait_metric(WAIT, "danxia_connections_active", &listener, |v| v == 0.0);
}

#[test]
fn health_endpoints() {
    require_postgres();
    let d = Danxia::start();
    let (code, body) = d.http_get("/healthz");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.trim(), "ok");
    assert_eq!(d.http_get("/readyz").0, 200);
    assert_eq!(
        d.metric_opt("danxia_backend_up", &[("listener", "pg")]),
        Some(1.0),
        "danxia_backend_up after a good /readyz probe"
    );
    let (code, _) = d.http_get("/no-such-endpoint");
    assert_eq!(code, 404);
}

#[test]
fn backend_down_is_not_ready_and_fails_clearly() {
    let closed = closed_port();
    let d = Danxia::start_healthy_only(Options {
        backend: format!("127.0.0.1:{closed}"),
        ..Options::default()
    });
    let (code, body) = d.http_get("/readyz");
    assert_eq!(code, 503, "readyz with the backend down: {body}");
    assert_eq!(d.http_get("/healthz").0, 200);
    // The probe's answer as a metric (DanxiaBackendUnreachable alerts on it).
    assert_eq!(
        d.metric_opt("danxia_backend_up", &[("listener", "pg")]),
        Some(0.0),
        "danxia_backend_up after a failed /readyz probe"
    );

    let out = run(d.psql(USER, DB).args(["-c", "select 1"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "psql exit code on a connection failure; stderr: {stderr}"
    );
    assert!(
        stderr.contains("FATAL"),
        "psql should get a FATAL ErrorResponse, not a bare close:\n{stderr}"
    );
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("backend") || lower.contains("database server"),
        "the message should say the database server is unreachable:\n{stderr}"
    );
    d.wait_metric(
        WAIT,
        "danxia_backend_connect_failures_total",
        &[("listener", "pg")],
        |v| v >= 1.0,
    );
    d.wait_metric(
        WAIT,
        "danxia_connections_active",
        &[("listener", "pg")],
        |v| v == 0.0,
    );
}

#[test]
fn replication_connections_are_refused_clearly_and_audited() {
    let d = Danxia::start();
    // psql with replication=database sends "replication" in the startup
    // packet; danxia cannot inspect the replication protocol, so it refuses.
    let out = run(Command::new("psql").env("PGCONNECT_TIMEOUT", "10").args([
        "-X",
        "-d",
        &format!("{} replication=database", d.pg_dsn(USER, DB)),
        "-c",
        "IDENTIFY_SYSTEM",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "must fail: {stderr}");
    assert!(
        stderr.contains("replication connections are not supported through danxia"),
        "psql must show danxia's reason:\n{stderr}"
    );
    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["outcome"] == "refused"
    });
    let refused = events
        .iter()
        .find(|e| e["kind"] == "session_end" && e["outcome"] == "refused")
        .expect("refusal audited");
    assert_eq!(
        refused["user"], USER,
        "the refusal names who tried: {refused}"
    );
    assert_eq!(refused["database"], DB, "{refused}");
    assert_eq!(refused["sqlstate"], "0A000", "{refused}");
}
