//! Backend faults, through the real danxia with real clients, on the
//! PostgreSQL and the MySQL listener: the backend killed mid-result
//! (`pg_terminate_backend`, MariaDB `KILL`, and a TCP relay cut mid-stream
//! as when the server's host dies), the backend unreachable or silent at
//! connect, the backend going away and coming back while sessions are open,
//! and a client vanishing under a running query. Each test states what the
//! client must see, and asserts the audit records, the metrics and that
//! danxia's memory stays bounded and it keeps serving.
//!
//! The shared servers are never stopped: a "server down / restarted" is a
//! [`Relay`] in front of them that stops accepting and cuts every
//! connection, then listens again (the same thing the proxy sees when a
//! server restarts: connections closed, connects refused, then accepted).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use danxia_e2e::mariadb_server::PrivateMariaDb;
use danxia_e2e::pg_cluster::PgCluster;
use danxia_e2e::relay::{Relay, SilentServer};
use danxia_e2e::wire::{self, RawSession};
use danxia_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);
const USER: &str = "postgres";
const DB: &str = "test";
/// RSS bound for danxia after streaming and losing large results: the
/// results stream (never buffered whole), so growth stays far below this.
const RSS_BOUND_KIB: u64 = 200 * 1024;
/// 5M rows of ~100 bytes: far more than any socket buffer, so the result is
/// still streaming when the backend dies.
const PG_BIG: &str = "select g, repeat('x', 100) from generate_series(1, 5000000) g";
const MY_BIG: &str = "select seq, repeat('x', 100) from seq_1_to_5000000";

fn direct_pg(sql: &str) -> String {
    run_ok(psql_direct(USER, DB).args(["-Atc", sql]))
}

fn direct_my(sql: &str) -> String {
    run_ok(mariadb_direct("root", None, DB).args(["-N", "-e", sql]))
}

fn assert_rss_bounded(d: &Danxia) {
    let (rss, hwm) = (
        vm_rss_kib(d.pid()).unwrap_or(0),
        peak_rss_kib(d.pid()).unwrap_or(0),
    );
    eprintln!("danxia VmRSS {rss} KiB, VmHWM {hwm} KiB");
    assert!(
        rss > 0 && hwm < RSS_BOUND_KIB,
        "danxia memory must stay bounded: VmRSS {rss} KiB, VmHWM {hwm} KiB (bound {RSS_BOUND_KIB} KiB)"
    );
}

/// Sends the big query on a raw session through danxia and reads until at
/// least `rows` DataRows arrived (the result is streaming).
fn pg_start_big_result(port: u16, rows: usize) -> RawSession {
    let mut s = RawSession::connect(port, USER, DB).expect("raw session through danxia");
    s.send(&wire::query(PG_BIG)).expect("send query");
    let mut got = 0;
    while got < rows {
        let m = s.recv().expect("rows stream");
        assert!(
            m.tag == b'T' || m.tag == b'D',
            "unexpected {:?}",
            m.tag as char
        );
        got += usize::from(m.tag == b'D');
    }
    s
}

/// Reads what follows on a session whose backend died mid-result: (the
/// messages after the partial rows, whether the socket ended). A complete
/// looking result (CommandComplete or ReadyForQuery) fails the test.
fn pg_read_after_failure(s: &mut RawSession) -> Vec<wire::Msg> {
    let mut after = Vec::new();
    let _ = s.stream.set_read_timeout(Some(WAIT));
    while let Ok(m) = s.recv() {
        assert!(
            m.tag != b'C' && m.tag != b'Z',
            "a result cut by a backend failure must not look complete: got {:?} after partial rows",
            m.tag as char
        );
        if m.tag != b'D' {
            after.push(m);
        }
    }
    after
}

/// The session's statement and session_end events once both are written.
fn wait_statement_and_end(d: &Danxia, marker: &str) -> (Value, Value) {
    let st = d.wait_audit_count(WAIT, 1, |e| {
        e["kind"] == "statement" && e["statement"].as_str().is_some_and(|t| t.contains(marker))
    });
    let session = st[0]["session"].clone();
    let end = d.wait_audit_count(WAIT, 1, |e| {
        e["kind"] == "session_end" && e["session"] == session
    });
    (st[0].clone(), end[0].clone())
}

#[test]
fn pg_backend_terminated_mid_result_fails_clearly() {
    // Expected: after the partial rows the server's own FATAL 57P01
    // ("terminating connection due to administrator command"), or danxia's
    // FATAL 08006, or (cut inside a row) the connection closed — never
    // anything that looks like a complete result; the statement is audited
    // not ok (error or aborted), the session aborted; danxia_backend_lost_total
    // counts it; danxia serves the next session.
    let d = Danxia::start();
    let mut s = pg_start_big_result(d.pg_port, 2000);
    let killed = direct_pg(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity \
         where query like '%generate_series(1, 5000000)%' and pid <> pg_backend_pid()",
    );
    assert_eq!(killed.trim(), "1", "one backend running the big query");
    let after = pg_read_after_failure(&mut s);
    // The server's FATAL when it gets it out (it cannot while it is blocked
    // inside a DataRow), danxia's 08006 when it is between messages, else a
    // close: never CommandComplete/ReadyForQuery (checked above).
    let codes: Vec<String> = after
        .iter()
        .filter(|m| m.tag == b'E')
        .map(|m| m.fields().get(&'C').cloned().unwrap_or_default())
        .collect();
    eprintln!("after pg_terminate_backend the client read ErrorResponse codes {codes:?}");
    assert!(
        codes.iter().all(|c| c == "57P01" || c == "08006"),
        "{codes:?}"
    );
    let (st, end) = wait_statement_and_end(&d, "generate_series(1, 5000000)");
    assert_ne!(st["outcome"], "ok", "the cut statement is not ok: {st}");
    assert_eq!(end["outcome"], "aborted", "{end}");
    d.wait_metric(
        WAIT,
        "danxia_backend_lost_total",
        &[("listener", "pg")],
        |v| v >= 1.0,
    );
    assert_eq!(
        run_ok(d.psql(USER, DB).args(["-Atc", "select 41 + 1"])).trim(),
        "42"
    );
    assert_rss_bounded(&d);
}

#[test]
fn pg_backend_host_cut_mid_result_never_looks_complete() {
    // A relay between danxia and PostgreSQL is cut mid-stream (no FATAL from
    // the server: its host "died"). Expected: if danxia is between messages
    // it sends FATAL 08006 "danxia: the database server closed the
    // connection unexpectedly" / "lost the connection"; if it is inside a
    // DataRow it can only close (a new message cannot start mid-row): the
    // client sees the connection end, never CommandComplete/ReadyForQuery.
    let relay = Relay::start_to(&format!("127.0.0.1:{DIRECT_PORT}"));
    let d = Danxia::start_with(Options {
        backend: relay.addr(),
        ..Options::default()
    });
    let mut s = pg_start_big_result(d.pg_port, 2000);
    relay.abort();
    let after = pg_read_after_failure(&mut s);
    if let Some(e) = after.iter().find(|m| m.tag == b'E') {
        let f = e.fields();
        assert_eq!(f.get(&'C').map(String::as_str), Some("08006"), "{f:?}");
    }
    let (st, end) = wait_statement_and_end(&d, "generate_series(1, 5000000)");
    assert_eq!(st["outcome"], "aborted", "{st}");
    assert_eq!(end["outcome"], "aborted", "{end}");
    d.wait_metric(
        WAIT,
        "danxia_backend_lost_total",
        &[("listener", "pg")],
        |v| v >= 1.0,
    );
    // The server's backend for the cut connection goes away on its own.
    assert_eq!(
        run_ok(d.psql(USER, DB).args(["-Atc", "select 1"])).trim(),
        "1"
    );
    assert_rss_bounded(&d);
}

/// A PyMySQL session (tests/clients/mysql_session.py) driven step by step.
struct MySession {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    id: u64,
}

impl MySession {
    fn open(port: u16) -> MySession {
        let mut child = python()
            .arg(workspace_root().join("tests/clients/mysql_session.py"))
            .args([&port.to_string(), "root", DB])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with PyMySQL (tests/install-deps.sh)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut s = MySession {
            child,
            stdin,
            stdout,
            id: 0,
        };
        s.id = s.answer()["id"].as_u64().expect("connection id");
        s
    }

    fn answer(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read answer");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("answer {line:?}: {e}"))
    }

    fn send(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("write command");
    }

    fn ask(&mut self, cmd: &str) -> Value {
        self.send(cmd);
        self.answer()
    }
}

impl Drop for MySession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn error_code(v: &Value) -> u64 {
    v["error"][0].as_u64().unwrap_or(0)
}

#[test]
fn mysql_backend_killed_mid_result_fails_clearly() {
    // MariaDB `KILL <id>` while 5M rows stream. Expected: an ERR after the
    // partial rows (the server's 1927 "Connection was killed" when it gets
    // it out, else danxia's 1105 / 08S01 "lost the connection to the
    // database server"), never the result's end; the statement audited as
    // not ok, the session as aborted; danxia_backend_lost_total counts it
    // when the server closed without a word; danxia serves new sessions.
    let d = Danxia::start_with(Options {
        mysql: true,
        ..Options::default()
    });
    let mut s = MySession::open(d.mysql_port);
    assert_eq!(s.ask(&format!("stream 2000 {MY_BIG}"))["rows"], 2000);
    direct_my(&format!("kill {}", s.id));
    let rest = s.ask("rest");
    assert!(
        rest["complete"].is_null(),
        "a killed result must not complete: {rest}"
    );
    let code = error_code(&rest);
    assert!(
        [1927, 1105, 2013].contains(&code),
        "a clear error after the partial rows: {rest}"
    );
    // The next statement fails too (the server is gone under the session).
    let again = s.ask("query select 1");
    assert!(
        again["error"].is_array(),
        "the killed session stays failed: {again}"
    );
    let (st, end) = wait_statement_and_end(&d, "seq_1_to_5000000");
    assert_ne!(st["outcome"], "ok", "{st}");
    assert_eq!(end["outcome"], "aborted", "{end}");
    let mut t = MySession::open(d.mysql_port);
    assert_eq!(
        t.ask("query select 1")["rows"],
        1,
        "new sessions are served"
    );
    assert_rss_bounded(&d);
}

#[test]
fn mysql_backend_host_cut_mid_result_gets_an_error() {
    // The relay is cut mid-result (no word from the server). Expected:
    // danxia's ERR 1105 / 08S01 "danxia: lost the connection to the
    // database server" after the partial rows (not a bare close, which
    // clients report as 2013), the statement audited aborted.
    let relay = Relay::start_to(&format!("127.0.0.1:{MYSQL_DIRECT_PORT}"));
    let d = Danxia::start_with(Options {
        mysql: true,
        mysql_backend: Some(relay.addr()),
        ..Options::default()
    });
    let mut s = MySession::open(d.mysql_port);
    assert_eq!(s.ask(&format!("stream 2000 {MY_BIG}"))["rows"], 2000);
    relay.abort();
    let rest = s.ask("rest");
    assert_eq!(
        error_code(&rest),
        1105,
        "danxia's ERR after the rows: {rest}"
    );
    assert!(
        rest["error"][1]
            .as_str()
            .is_some_and(|m| m.contains("lost the connection")),
        "{rest}"
    );
    let (st, end) = wait_statement_and_end(&d, "seq_1_to_5000000");
    assert_eq!(st["outcome"], "aborted", "{st}");
    assert_eq!(end["outcome"], "aborted", "{end}");
    d.wait_metric(
        WAIT,
        "danxia_backend_lost_total",
        &[("listener", "mysql")],
        |v| v >= 1.0,
    );
    let mut t = MySession::open(d.mysql_port);
    assert_eq!(t.ask("query select 1")["rows"], 1);
    assert_rss_bounded(&d);
}

#[test]
fn mysql_backend_unreachable_fails_clearly() {
    // The PostgreSQL side is pg_basic.rs backend_down_is_not_ready_and_fails_clearly.
    // Expected: ERR 1105 / 08S01 "danxia: cannot connect to the database
    // server of listener \"mysql\"" at once; reason="refused" counted; the
    // failed session audited (session_end, refused).
    let closed = closed_port();
    let d = Danxia::start_healthy_only(Options {
        mysql: true,
        mysql_backend: Some(format!("127.0.0.1:{closed}")),
        ..Options::default()
    });
    let t0 = Instant::now();
    let out = run(d.mariadb("root", None, DB).args(["-e", "select 1"]));
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("1105") && stderr.contains("cannot connect to the database server"),
        "{stderr}"
    );
    assert!(
        took < Duration::from_secs(5),
        "refused at once, took {took:?}"
    );
    d.wait_metric(
        WAIT,
        "danxia_backend_connect_failures_total",
        &[("listener", "mysql"), ("reason", "refused")],
        |v| v >= 1.0,
    );
    d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["listener"] == "mysql" && e["outcome"] == "refused"
    });
    assert_eq!(d.http_get("/readyz").0, 503);
}

#[test]
fn silent_backend_fails_within_backend_connect_timeout() {
    // A server that accepts TCP but never sends its greeting / auth request.
    // Expected on both listeners: the client's clear "cannot connect" error
    // within limits.backend_connect_timeout (1 s here) + margin, long
    // before the 30 s startup timeout; reason="silent" counted; audited.
    let silent = SilentServer::start();
    let addr = format!("127.0.0.1:{}", silent.port);
    let d = Danxia::start_healthy_only(Options {
        backend: addr.clone(),
        mysql: true,
        mysql_backend: Some(addr),
        limits: vec![("backend_connect_timeout".into(), "\"1s\"".into())],
        ..Options::default()
    });
    let margin = Duration::from_secs(4);
    let t0 = Instant::now();
    let out = run(d.psql(USER, DB).args(["-c", "select 1"]));
    let pg_took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FATAL") && stderr.contains("cannot connect"),
        "{stderr}"
    );
    assert!(
        pg_took < Duration::from_secs(1) + margin,
        "psql took {pg_took:?}"
    );
    let t0 = Instant::now();
    let out = run(d.mariadb("root", None, DB).args(["-e", "select 1"]));
    let my_took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to the database server"),
        "{stderr}"
    );
    assert!(
        my_took < Duration::from_secs(1) + margin,
        "mariadb took {my_took:?}"
    );
    eprintln!("silent backend: psql failed after {pg_took:?}, mariadb after {my_took:?}");
    for l in ["pg", "mysql"] {
        d.wait_metric(
            WAIT,
            "danxia_backend_connect_failures_total",
            &[("listener", l), ("reason", "silent")],
            |v| v >= 1.0,
        );
    }
    d.wait_audit_count(WAIT, 2, |e| {
        e["kind"] == "session_end"
            && e["outcome"] == "refused"
            && e["error"]
                .as_str()
                .is_some_and(|t| t.contains("sent no") || t.contains("sent nothing"))
    });
}

/// Waits until `/readyz` answers `code`.
fn wait_readyz(d: &Danxia, code: u16) {
    let deadline = Instant::now() + WAIT;
    while d.http_get("/readyz").0 != code {
        assert!(Instant::now() < deadline, "/readyz never answered {code}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sessions open through danxia when the servers restart.
const OPEN_SESSIONS: usize = 3;

#[test]
fn pg_server_restart_fails_open_sessions_then_recovers() {
    // A private PostgreSQL cluster is stopped (`pg_ctl -m fast`) with 3
    // sessions open through danxia, then started again on the same port.
    // Expected: each session gets the server's FATAL 57P01 ("terminating
    // connection due to administrator command") or danxia's FATAL 08006,
    // read at once with no statement needed, nothing hangs; /readyz 503
    // while the server is down, 200 after; new sessions work; every lost
    // session counted and audited aborted.
    let cluster = PgCluster::start("danxia-faultpg-", &[], "", "");
    let d = Danxia::start_with(Options {
        backend: format!("127.0.0.1:{}", cluster.port),
        ..Options::default()
    });
    let mut open: Vec<RawSession> = (0..OPEN_SESSIONS)
        .map(|_| RawSession::connect(d.pg_port, USER, "postgres").expect("session"))
        .collect();
    for s in &mut open {
        s.simple_query("select 1")
            .expect("works before the restart");
    }
    cluster.stop();
    wait_readyz(&d, 503);
    for s in &mut open {
        let t0 = Instant::now();
        let _ = s.send(&wire::query("select 1"));
        let msgs = pg_read_after_failure(s);
        let e = msgs
            .iter()
            .find(|m| m.tag == b'E')
            .unwrap_or_else(|| panic!("FATAL for the open session: {}", wire::tags(&msgs)));
        let f = e.fields();
        assert_eq!(f.get(&'S').map(String::as_str), Some("FATAL"), "{f:?}");
        assert!(
            matches!(f.get(&'C').map(String::as_str), Some("57P01" | "08006")),
            "{f:?}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no hang: {:?}",
            t0.elapsed()
        );
    }
    let out = run(d.psql(USER, "postgres").args(["-c", "select 1"]));
    assert!(!out.status.success(), "no session while the server is down");
    cluster.pg_ctl(&["start"]);
    wait_readyz(&d, 200);
    assert_eq!(
        run_ok(d.psql(USER, "postgres").args(["-Atc", "select 7"])).trim(),
        "7"
    );
    d.wait_metric(
        WAIT,
        "danxia_backend_lost_total",
        &[("listener", "pg")],
        |v| v >= OPEN_SESSIONS as f64,
    );
    d.wait_metric(
        WAIT,
        "danxia_backend_connect_failures_total",
        &[("listener", "pg"), ("reason", "refused")],
        |v| v >= 1.0,
    );
    d.wait_audit_count(WAIT, OPEN_SESSIONS, |e| {
        e["kind"] == "session_end" && e["outcome"] == "aborted"
    });
    assert_rss_bounded(&d);
}

#[test]
fn mysql_server_restart_fails_open_sessions_then_recovers() {
    // A private MariaDB is shut down (SIGTERM) with 3 sessions open through
    // danxia, then started again on the same port. Expected: each session's
    // next statement fails at once with danxia's ERR 1105 / 08S01 "lost the
    // connection to the database server" (or the server's own shutdown
    // error, 1053, if it got it out; 2013 if the close raced the command),
    // no hang; /readyz 503 then 200; new sessions work; the lost sessions
    // counted and audited aborted.
    let mut server = PrivateMariaDb::start();
    let d = Danxia::start_with(Options {
        mysql: true,
        mysql_backend: Some(format!("127.0.0.1:{}", server.port)),
        ..Options::default()
    });
    let mut open: Vec<MySession> = (0..OPEN_SESSIONS)
        .map(|_| MySession::open(d.mysql_port))
        .collect();
    for s in &mut open {
        assert_eq!(s.ask("query select 1")["rows"], 1);
    }
    server.stop();
    wait_readyz(&d, 503);
    for s in &mut open {
        let t0 = Instant::now();
        let r = s.ask("query select 1");
        assert!(
            [1105, 1053, 1927, 2013].contains(&error_code(&r)),
            "a clear error on the next statement: {r}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no hang: {:?}",
            t0.elapsed()
        );
    }
    server.start_again();
    wait_readyz(&d, 200);
    assert_eq!(
        MySession::open(d.mysql_port).ask("query select 1")["rows"],
        1
    );
    d.wait_metric(
        WAIT,
        "danxia_backend_lost_total",
        &[("listener", "mysql")],
        |v| v >= OPEN_SESSIONS as f64,
    );
    d.wait_audit_count(WAIT, OPEN_SESSIONS, |e| {
        e["kind"] == "session_end" && e["outcome"] == "aborted"
    });
    assert_rss_bounded(&d);
}

/// Polls `query` (a count, straight to the server) until it prints 0;
/// returns how long that took, panicking after `limit`.
fn time_until_gone(limit: Duration, query: impl Fn() -> String) -> Duration {
    let t0 = Instant::now();
    loop {
        if query().trim() == "0" {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "the backend query still runs after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pg_client_vanishing_cancels_its_query() {
    // psql runs pg_sleep(60) through danxia and is killed (SIGKILL).
    // Expected: danxia sends a CancelRequest; the query leaves
    // pg_stat_activity within a few seconds; audited aborted; counted in
    // danxia_orphaned_queries_total{reason="client_gone"}.
    let d = Danxia::start();
    let sql = "select pg_sleep(60) /* faults_backend vanish */";
    let mut child = d
        .psql(USER, DB)
        .args(["-c", sql])
        .stdout(Stdio::null())
        .spawn()
        .expect("psql");
    let running = || {
        direct_pg(
            "select count(*) from pg_stat_activity where state = 'active' \
             and query like '%faults_backend vanish%' and pid <> pg_backend_pid()",
        )
    };
    let deadline = Instant::now() + WAIT;
    while running().trim() != "1" {
        assert!(Instant::now() < deadline, "pg_sleep never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill psql");
    let _ = child.wait();
    let took = time_until_gone(Duration::from_secs(10), running);
    eprintln!("PostgreSQL: pg_sleep(60) gone {took:?} after the client was killed");
    let (st, _) = wait_statement_and_end(&d, "faults_backend vanish");
    assert_eq!(st["outcome"], "aborted", "{st}");
    d.wait_metric(
        WAIT,
        "danxia_orphaned_queries_total",
        &[("listener", "pg"), ("reason", "client_gone")],
        |v| v >= 1.0,
    );
}

fn my_running(marker: &str) -> String {
    direct_my(&format!(
        "select count(*) from information_schema.processlist where info like '%{marker}%' \
         and id <> connection_id()"
    ))
}

/// danxia with a MySQL listener and a PyMySQL session through it running
/// `SELECT SLEEP(60) /* marker */`, once the server shows it running.
fn mysql_sleeping(marker: &str) -> (Danxia, MySession) {
    let d = Danxia::start_with(Options {
        mysql: true,
        ..Options::default()
    });
    let mut s = MySession::open(d.mysql_port);
    s.send(&format!("query select sleep(60) /* {marker} */"));
    let deadline = Instant::now() + WAIT;
    while my_running(marker).trim() != "1" {
        assert!(Instant::now() < deadline, "sleep never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    (d, s)
}

#[test]
fn mysql_client_vanishing_stops_its_query() {
    // A PyMySQL client runs SELECT SLEEP(60) through danxia and is killed.
    // Expected: danxia notices the closed client socket at once (it watches
    // it while the statement runs) and closes the backend connection
    // without COM_QUIT; MariaDB aborts the SLEEP at its next connection
    // check (every 5 s), so the query leaves PROCESSLIST within ~5 s;
    // audited aborted; danxia_orphaned_queries_total{reason="client_gone"}.
    let marker = "faults_backend_my_vanish";
    let (d, s) = mysql_sleeping(marker);
    drop(s); // kills the client process
    let took = time_until_gone(Duration::from_secs(12), || my_running(marker));
    eprintln!("MariaDB: SLEEP(60) gone {took:?} after the client was killed");
    let (st, _) = wait_statement_and_end(&d, marker);
    assert_eq!(st["outcome"], "aborted", "{st}");
    d.wait_metric(
        WAIT,
        "danxia_orphaned_queries_total",
        &[("listener", "mysql"), ("reason", "client_gone")],
        |v| v >= 1.0,
    );
}

#[test]
fn mysql_admin_kill_stops_the_running_query() {
    // DELETE /sessions/{id} on a session running SLEEP(60). Expected: the
    // client gets ERR 1927 "Connection was killed", the query leaves
    // PROCESSLIST within ~5 s, the statement is audited aborted, and
    // danxia_orphaned_queries_total{reason="killed"} counts it.
    let marker = "faults_backend_my_kill";
    let (d, mut s) = mysql_sleeping(marker);
    let (_, body) = d.http_get("/sessions?listener=mysql");
    let list: Value = serde_json::from_str(&body).expect("sessions JSON");
    let id = list[0]["id"].as_str().expect("a live session").to_string();
    let (code, body) = d.http_request("DELETE", &format!("/sessions/{id}"), Some(&d.admin_token()));
    assert_eq!(code, 200, "{body}");
    let answer = s.answer();
    assert_eq!(error_code(&answer), 1927, "{answer}");
    let took = time_until_gone(Duration::from_secs(12), || my_running(marker));
    eprintln!("MariaDB: SLEEP(60) gone {took:?} after the admin kill");
    let (st, end) = wait_statement_and_end(&d, marker);
    assert_eq!(st["outcome"], "aborted", "{st}");
    assert_eq!(end["outcome"], "aborted", "{end}");
    d.wait_metric(
        WAIT,
        "danxia_orphaned_queries_total",
        &[("listener", "mysql"), ("reason", "killed")],
        |v| v >= 1.0,
    );
}
