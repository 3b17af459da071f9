//! PostgreSQL wire protocol through danxia, byte by byte: a hand-written
//! frontend (the harness's `wire` module, independent of the proxy's own
//! codec) checks startup negotiation, limits on malformed and oversized
//! messages, pipelined extended-protocol batches, half-open connections and
//! the startup timeout.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use danxia_e2e::wire::{self, Msg, RawSession};
use danxia_e2e::*;

const USER: &str = "postgres";
const DB: &str = "test";
const WAIT: Duration = Duration::from_secs(10);

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to danxia");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Asserts a session answers `select 1` correctly.
fn assert_answers(s: &mut RawSession) {
    let msgs = s.simple_query("select 41 + 1").expect("simple query");
    assert_eq!(wire::tags(&msgs), "TDCZ", "{msgs:?}");
    assert_eq!(msgs[1].data_row(), vec![Some("42".to_string())]);
    assert_eq!(msgs[2].command_tag(), "SELECT 1");
}

/// Reads the next message and asserts it is a FATAL ErrorResponse with
/// SQLSTATE `code`; returns its fields.
fn expect_fatal(s: &mut TcpStream, code: &str) -> std::collections::BTreeMap<char, String> {
    let m: Msg = wire::read_msg(s)
        .unwrap_or_else(|e| panic!("expected a FATAL {code} ErrorResponse, read failed: {e}"));
    assert_eq!(m.tag_char(), 'E', "expected ErrorResponse, got {m:?}");
    let f = m.fields();
    assert_eq!(f.get(&'S').map(String::as_str), Some("FATAL"), "{f:?}");
    assert_eq!(f.get(&'C').map(String::as_str), Some(code), "{f:?}");
    f
}

#[test]
fn ssl_and_gssenc_requests_are_refused_then_startup_works() {
    require_postgres();
    let d = Danxia::start();
    for (name, req) in [
        ("SSLRequest", wire::ssl_request()),
        ("GSSENCRequest", wire::gssenc_request()),
    ] {
        let mut s = connect(d.pg_port);
        s.write_all(&req).expect("send request");
        let b = wire::read_byte(&mut s).unwrap_or_else(|e| panic!("{name}: no answer: {e}"));
        assert_eq!(b, b'N', "{name} answer");
        let mut sess = RawSession::startup_on(s, USER, DB, &[])
            .unwrap_or_else(|e| panic!("startup after {name}: {e}"));
        assert_answers(&mut sess);
        sess.terminate();
    }
    // libpq's own negotiation (sslmode=prefer tries SSL first) works too.
    let out = run_ok(Command::new("psql").env("PGCONNECT_TIMEOUT", "10").args([
        "-X",
        "-A",
        "-t",
        "-c",
        "select 'negotiated'",
        &format!(
            "host=127.0.0.1 port={} user={USER} dbname={DB} sslmode=prefer gssencmode=prefer",
            d.pg_port
        ),
    ]));
    assert_eq!(out.trim(), "negotiated");
    let out = run(Command::new("psql").env("PGCONNECT_TIMEOUT", "10").args([
        "-X",
        "-c",
        "select 1",
        &format!(
            "host=127.0.0.1 port={} user={USER} dbname={DB} sslmode=require",
            d.pg_port
        ),
    ]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "sslmode=require must fail against a proxy without TLS"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SSL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn oversized_message_is_fatal_and_other_sessions_continue() {
    require_postgres();
    let limit: u64 = 1 << 20;
    let d = Danxia::start_with(Options {
        max_message_bytes: Some(limit),
        ..Options::default()
    });
    let mut other = RawSession::connect(d.pg_port, USER, DB).expect("concurrent session");
    assert_answers(&mut other);

    let mut victim = RawSession::connect(d.pg_port, USER, DB).expect("victim session");
    // A 2 MiB Query, written from another thread: danxia may stop reading
    // after the header, so the write may block or fail; that is fine.
    let sql = format!("select '{}'", "x".repeat(2 << 20));
    let msg = wire::query(&sql);
    let mut w = victim.stream.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&msg);
    });
    let f = expect_fatal(&mut victim.stream, "08P01");
    let text = f.get(&'M').cloned().unwrap_or_default();
    assert!(
        text.contains(&limit.to_string()),
        "message should name the limit {limit}: {text:?}"
    );
    assert!(
        wire::wait_closed(&mut victim.stream, Duration::from_secs(5)),
        "session not closed after FATAL"
    );
    let _ = victim.stream.shutdown(Shutdown::Both);
    writer.join().expect("writer thread");

    assert_answers(&mut other);
    d.wait_metric(
        WAIT,
        "danxia_protocol_errors_total",
        &[("listener", "pg"), ("kind", "message_too_large")],
        |v| v == 1.0,
    );
    let events = d.wait_audit(WAIT, |e| e["kind"] == "protocol_error");
    let pe = of_kind(&events, "protocol_error");
    assert_eq!(pe.len(), 1, "{pe:?}");
    assert_eq!(pe[0]["user"], USER, "{}", pe[0]);
    assert!(
        pe[0]["detail"].is_string() || pe[0]["error"].is_string(),
        "protocol_error says what: {}",
        pe[0]
    );
    // The oversized text must not have been copied into the audit log.
    assert!(
        pe[0].to_string().len() < 64 * 1024,
        "protocol_error event is huge"
    );
    other.terminate();
    d.wait_metric(
        WAIT,
        "danxia_connections_active",
        &[("listener", "pg")],
        |v| v == 0.0,
    );
}

#[test]
fn malformed_length_is_fatal() {
    require_postgres();
    let d = Danxia::start();
    let mut other = RawSession::connect(d.pg_port, USER, DB).expect("concurrent session");

    let mut s = RawSession::connect(d.pg_port, USER, DB).expect("session");
    // 'Q' with length 3: shorter than the length field itself.
    s.send(&[b'Q', 0, 0, 0, 3]).expect("send");
    let f = expect_fatal(&mut s.stream, "08P01");
    assert!(!f.get(&'M').map(String::is_empty).unwrap_or(true), "{f:?}");
    assert!(
        wire::wait_closed(&mut s.stream, Duration::from_secs(5)),
        "session not closed"
    );

    // A startup packet with a bogus length is refused too: PostgreSQL
    // itself just closes, so either a 08P01 ErrorResponse or a close is
    // right, but never a hang; it is counted either way (below).
    let mut s2 = connect(d.pg_port);
    s2.write_all(&[0, 0, 0, 3, 0, 3, 0, 0]).expect("send");
    match wire::read_msg(&mut s2) {
        Ok(m) => {
            assert_eq!(m.tag_char(), 'E', "{m:?}");
            assert_eq!(m.sqlstate().as_deref(), Some("08P01"), "{m:?}");
        }
        Err(e) => assert!(
            e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut,
            "a bad startup length left the connection hanging"
        ),
    }
    assert!(wire::wait_closed(&mut s2, Duration::from_secs(5)));

    assert_answers(&mut other);
    let n = d.wait_metric(
        WAIT,
        "danxia_protocol_errors_total",
        &[("listener", "pg"), ("kind", "malformed")],
        |v| v >= 2.0,
    );
    assert_eq!(n, 2.0);
    other.terminate();
}

#[test]
fn unsupported_protocol_version_gets_an_error_not_a_hang() {
    require_postgres();
    // PostgreSQL's own answers first, then danxia's must be the same kind.
    check_protocol_versions(DIRECT_PORT);
    let d = Danxia::start();
    check_protocol_versions(d.pg_port);
    d.wait_metric(
        WAIT,
        "danxia_protocol_errors_total",
        &[("listener", "pg"), ("kind", "unsupported_protocol")],
        |v| v == 2.0,
    );
}

/// An unknown major version (4.0) gets a FATAL ErrorResponse and a close,
/// quickly; 2.0 gets an error too (PostgreSQL answers in the old 2.0 framing,
/// so only the leading 'E' is checked); protocol 3.x with a newer minor
/// version is negotiated down (NegotiateProtocolVersion) and then works.
fn check_protocol_versions(port: u16) {
    let mut s = connect(port);
    s.write_all(&wire::startup_with_version(4 << 16, USER, DB, &[]))
        .expect("send");
    let started = Instant::now();
    let m = wire::read_msg(&mut s)
        .unwrap_or_else(|e| panic!("port {port}, version 4.0: no ErrorResponse: {e}"));
    assert_eq!(m.tag_char(), 'E', "port {port}: {m:?}");
    let f = m.fields();
    assert_eq!(
        f.get(&'S').map(String::as_str),
        Some("FATAL"),
        "port {port}: {f:?}"
    );
    assert!(
        f.get(&'M').is_some_and(|m| m.contains("protocol")),
        "port {port}: {f:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(wire::wait_closed(&mut s, Duration::from_secs(5)));

    let mut s = connect(port);
    s.write_all(&wire::startup_with_version(2 << 16, USER, DB, &[]))
        .expect("send");
    let b = wire::read_byte(&mut s)
        .unwrap_or_else(|e| panic!("port {port}, version 2.0: no error: {e}"));
    assert_eq!(b, b'E', "port {port}, version 2.0");
    assert!(wire::wait_closed(&mut s, Duration::from_secs(5)));

    let mut s = connect(port);
    assert!(
        startup_reaches_ready(&mut s, (3 << 16) | 9),
        "port {port}: a 3.9 startup should be negotiated to 3.0 and succeed"
    );
}

/// Performs a startup with `version` on `s`; true once ReadyForQuery came.
fn startup_reaches_ready(s: &mut TcpStream, version: i32) -> bool {
    s.write_all(&wire::startup_with_version(version, USER, DB, &[]))
        .expect("send");
    loop {
        match wire::read_msg(s) {
            Ok(m) if m.tag == b'Z' => return true,
            Ok(m) if m.tag == b'E' => panic!("startup {version:#x} failed: {:?}", m.fields()),
            Ok(_) => continue,
            Err(e) => panic!("startup {version:#x}: {e}"),
        }
    }
}

/// Pipelined extended-protocol batches on a new session to `port`, checking
/// every reply in order.
fn run_extended_batches(port: u16) {
    let mut s = RawSession::connect(port, USER, DB).expect("session");
    // Two Sync-terminated batches in one write: a named statement and the
    // unnamed one.
    let mut batch = Vec::new();
    batch.extend(wire::parse("s1", "select $1::int + 1 as n"));
    batch.extend(wire::bind("", "s1", &[Some("41")]));
    batch.extend(wire::describe(b'P', ""));
    batch.extend(wire::execute("", 0));
    batch.extend(wire::sync());
    batch.extend(wire::parse(
        "",
        "select $1::text as t, n from generate_series(1, 3) n",
    ));
    batch.extend(wire::bind("", "", &[Some("hi")]));
    batch.extend(wire::execute("", 0));
    batch.extend(wire::sync());
    s.send(&batch).expect("send batch");
    let mut msgs = s.read_until_ready().expect("first batch");
    msgs.extend(s.read_until_ready().expect("second batch"));
    assert_eq!(wire::tags(&msgs), "12TDCZ12DDDCZ", "{msgs:?}");
    assert_eq!(msgs[3].data_row(), vec![Some("42".into())]);
    assert_eq!(msgs[4].command_tag(), "SELECT 1");
    assert_eq!(
        msgs[8].data_row(),
        vec![Some("hi".into()), Some("1".into())]
    );
    assert_eq!(msgs[11].command_tag(), "SELECT 3");
    assert_eq!(msgs[5].body, b"I", "idle after the first Sync");

    // Re-executing the named statement (Bind without Parse), a portal with a
    // row limit (PortalSuspended), and an error inside a batch: the rest of
    // the batch is skipped until Sync, as PostgreSQL does.
    let mut batch = Vec::new();
    batch.extend(wire::bind("p", "s1", &[Some("1")]));
    batch.extend(wire::execute("p", 0));
    batch.extend(wire::sync());
    batch.extend(wire::parse("", "select n from generate_series(1, 5) n"));
    batch.extend(wire::bind("lim", "", &[]));
    batch.extend(wire::execute("lim", 2));
    batch.extend(wire::execute("lim", 0));
    batch.extend(wire::sync());
    batch.extend(wire::parse(
        "",
        "select 10 / n from generate_series(0, 1) n",
    ));
    batch.extend(wire::bind("", "", &[]));
    batch.extend(wire::execute("", 0));
    batch.extend(wire::parse("", "select 'skipped'"));
    batch.extend(wire::bind("", "", &[]));
    batch.extend(wire::execute("", 0));
    batch.extend(wire::sync());
    s.send(&batch).expect("send batch 2");
    let a = s.read_until_ready().expect("batch a");
    assert_eq!(wire::tags(&a), "2DCZ", "{a:?}");
    assert_eq!(a[1].data_row(), vec![Some("2".into())]);
    let b = s.read_until_ready().expect("batch b");
    assert_eq!(wire::tags(&b), "12DDsDDDCZ", "{b:?}");
    let c = s.read_until_ready().expect("batch c");
    assert_eq!(wire::tags(&c), "12EZ", "{c:?}");
    assert_eq!(c[2].sqlstate().as_deref(), Some("22012"));
    assert_answers(&mut s);
    s.terminate();
}

#[test]
fn extended_protocol_pipelined_batches() {
    require_postgres();
    // The same exchange straight to PostgreSQL first: proves the
    // expectations below are PostgreSQL's own behaviour.
    run_extended_batches(DIRECT_PORT);
    let d = Danxia::start();
    run_extended_batches(d.pg_port);
    // One statement event per Execute, flow "extended", in order.
    let events = d.wait_audit(WAIT, |e| e["kind"] == "session_end");
    let st: Vec<&serde_json::Value> = of_kind(&events, "statement");
    let desc: Vec<String> = st.iter().map(|e| e.to_string()).collect();
    let desc = desc.join("\n");
    // 2 + 1 + 2 (two Executes on "lim") + 1 (division by zero) + 1 skipped
    // after the error (audited as requested but not executed) + 1 simple.
    assert_eq!(st.len(), 8, "statement events:\n{desc}");
    for e in &st[..7] {
        assert_eq!(e["protocol_flow"], "extended", "{e}");
        assert_eq!(e["operation"], "select", "{e}");
    }
    assert_eq!(st[7]["protocol_flow"], "simple");
    assert_eq!(st[0]["statement"], "select $1::int + 1 as n");
    assert_eq!(st[0]["rows"], 1);
    assert_eq!(st[1]["rows"], 3);
    assert_eq!(
        st[2]["statement"], "select $1::int + 1 as n",
        "named statement remembered"
    );
    assert_eq!(st[0]["fingerprint"], st[2]["fingerprint"]);
    assert_eq!(st[3]["rows"], 2, "first Execute of the row-limited portal");
    assert_eq!(st[4]["rows"], 3, "second Execute of the row-limited portal");
    assert_eq!(st[5]["outcome"], "error");
    assert_eq!(st[5]["sqlstate"], "22012");
    assert_eq!(st[6]["statement"], "select 'skipped'");
    assert_eq!(
        st[6]["outcome"], "aborted",
        "skipped after the error: {}",
        st[6]
    );
    // The client's Parse/Bind/Execute bytes are attributed to the statement
    // they carry, as the Query bytes are in the simple flow.
    for i in [0, 1, 2, 3, 5] {
        assert!(
            st[i]["bytes_in"].as_u64().unwrap_or(0) > 0,
            "bytes_in of extended statement {i}: {}",
            st[i]
        );
    }
    assert!(st[7]["bytes_in"].as_u64().unwrap_or(0) > 0, "{}", st[7]);
    let ok = d.metric(
        "danxia_statements_total",
        &[("listener", "pg"), ("outcome", "ok")],
    );
    assert_eq!(ok, 6.0);
}

#[test]
fn half_open_connections_do_not_leak() {
    require_postgres();
    let mut d = Danxia::start_with(Options {
        limits: vec![("startup_timeout".into(), "\"1s\"".into())],
        ..Options::default()
    });
    // Connect and close at once; connect, send half a startup, close; connect
    // and reset.
    for i in 0..20 {
        let mut s = connect(d.pg_port);
        match i % 3 {
            0 => {}
            1 => {
                let st = wire::startup(USER, DB, &[]);
                s.write_all(&st[..st.len() / 2]).expect("half startup");
            }
            _ => {
                s.write_all(&wire::ssl_request()).expect("ssl");
                let _ = wire::read_byte(&mut s);
            }
        }
        drop(s);
    }
    d.wait_metric(
        WAIT,
        "danxia_connections_active",
        &[("listener", "pg")],
        |v| v == 0.0,
    );
    assert!(d.try_wait().is_none(), "danxia died: {}", d.stderr());
    assert_eq!(d.http_get("/readyz").0, 200);
    let mut s = RawSession::connect(d.pg_port, USER, DB).expect("session after half-open ones");
    assert_answers(&mut s);
    // Nothing was authenticated, so there are no session events for them.
    s.terminate();
    // The half-open connections leave session_end events of their own
    // (outcome "refused"), so wait for the real session's clean end.
    let events = d.wait_audit(WAIT, |e| e["kind"] == "session_end" && e["outcome"] == "ok");
    assert_eq!(of_kind(&events, "session_start").len(), 1, "{events:?}");
}

#[test]
fn startup_timeout_closes_silent_clients() {
    require_postgres();
    let d = Danxia::start_with(Options {
        limits: vec![("startup_timeout".into(), "\"1s\"".into())],
        ..Options::default()
    });
    // Silent from the start, and silent after an SSLRequest.
    let mut a = connect(d.pg_port);
    let mut b = connect(d.pg_port);
    b.write_all(&wire::ssl_request()).expect("ssl");
    assert_eq!(wire::read_byte(&mut b).expect("ssl answer"), b'N');
    let started = Instant::now();
    assert!(
        wire::wait_closed(&mut a, Duration::from_secs(4)),
        "silent client not closed"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700),
        "closed too early: {took:?}"
    );
    assert!(
        took <= Duration::from_millis(2500),
        "closed too late: {took:?}"
    );
    assert!(
        wire::wait_closed(&mut b, Duration::from_secs(3)),
        "silent client after SSLRequest not closed"
    );
    d.wait_metric(
        WAIT,
        "danxia_protocol_errors_total",
        &[("listener", "pg"), ("kind", "startup_timeout")],
        |v| v == 2.0,
    );
    d.wait_metric(
        WAIT,
        "danxia_connections_active",
        &[("listener", "pg")],
        |v| v == 0.0,
    );
    // The timeout covers startup only: an idle authenticated session stays.
    let mut s = RawSession::connect(d.pg_port, USER, DB).expect("session");
    std::thread::sleep(Duration::from_millis(1800));
    assert_answers(&mut s);
    s.terminate();
}
