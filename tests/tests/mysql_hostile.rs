//! Hostile bytes on the `mysql` listener: each gets a bounded, clear answer
//! (an ERR packet the client can show), an audit record and a metric, and
//! the proxy goes on serving everyone else. Raw sockets, so the test does
//! not depend on the codec under test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use danxia_e2e::*;

const WAIT: Duration = Duration::from_secs(15);

/// Reads one MySQL packet: (sequence id, payload).
fn read_packet(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).expect("packet header");
    let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).expect("packet payload");
    (h[3], p)
}

fn write_packet(s: &mut TcpStream, seq: u8, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut out = len.to_le_bytes()[..3].to_vec();
    out.push(seq);
    out.extend_from_slice(payload);
    s.write_all(&out).expect("write");
}

fn connect(d: &Danxia) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", d.mysql_port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

/// The ERR packet's error number and message.
fn err(p: &[u8]) -> (u16, String) {
    assert_eq!(p.first(), Some(&0xFF), "an ERR packet: {p:?}");
    (
        u16::from_le_bytes([p[1], p[2]]),
        String::from_utf8_lossy(&p[3..]).into_owned(),
    )
}

fn still_serves(d: &Danxia) {
    let out = run_ok(
        d.mariadb("root", None, "test")
            .arg("-e")
            .arg("select 41 + 1"),
    );
    assert!(out.contains("42"), "{out}");
}

#[test]
fn mysql_garbage_handshake_response_is_refused_clearly() {
    require_mariadb();
    let d = Danxia::start_with(Options {
        mysql: true,
        ..Options::default()
    });
    let mut s = connect(&d);
    let (seq, greeting) = read_packet(&mut s);
    assert_eq!(seq, 0);
    assert_eq!(greeting[0], 10, "protocol 10 greeting");
    // A "handshake response" of random bytes, without CLIENT_PROTOCOL_41.
    write_packet(&mut s, 1, &[0x00, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef]);
    let (seq, p) = read_packet(&mut s);
    assert_eq!(seq, 2, "the answer to the response");
    let (code, msg) = err(&p);
    assert_eq!(code, 1105, "{msg}");
    assert!(msg.contains("danxia") && msg.contains("4.1"), "{msg}");
    d.wait_audit(WAIT, |e| {
        e["kind"] == "protocol_error" && e["listener"] == "mysql" && e["outcome"] == "refused"
    });
    assert_eq!(
        d.metric(
            "danxia_protocol_errors_total",
            &[("listener", "mysql"), ("kind", "malformed")]
        ),
        1.0
    );
    still_serves(&d);
}

#[test]
fn mysql_oversized_command_is_answered_and_ends_only_that_session() {
    require_mariadb();
    let d = Danxia::start_with(Options {
        mysql: true,
        max_message_bytes: Some(1 << 20),
        ..Options::default()
    });
    // A real client logs in, then sends a 2 MiB query past the 1 MiB limit.
    let script = format!(
        "import pymysql\n\
         c = pymysql.connect(host='127.0.0.1', port={}, user='root', database='test', max_allowed_packet=64<<20)\n\
         cur = c.cursor()\n\
         try:\n\
         \x20   cur.execute('select ' + repr('x' * (2 << 20)))\n\
         \x20   print('NO ERROR')\n\
         except pymysql.err.MySQLError as e:\n\
         \x20   print('ERR', e.args[0], e.args[1] if len(e.args) > 1 else '')\n",
        d.mysql_port
    );
    let out = run(python().arg("-c").arg(&script));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ERR 1153") && stdout.contains("limits.max_message_bytes"),
        "the client is told which limit: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_audit(WAIT, |e| {
        e["kind"] == "protocol_error" && e["listener"] == "mysql"
    });
    assert_eq!(
        d.metric(
            "danxia_protocol_errors_total",
            &[("listener", "mysql"), ("kind", "message_too_large")]
        ),
        1.0
    );
    still_serves(&d);
}

#[test]
fn mysql_client_that_vanishes_mid_handshake_is_audited_and_harmless() {
    require_mariadb();
    let d = Danxia::start_with(Options {
        mysql: true,
        ..Options::default()
    });
    for _ in 0..20 {
        let mut s = connect(&d);
        let _ = read_packet(&mut s);
        // Half a packet, then gone.
        s.write_all(&[0x40, 0x00, 0x00, 0x01, 0x85]).expect("write");
        drop(s);
    }
    still_serves(&d);
    d.wait_metric(
        WAIT,
        "danxia_connections_active",
        &[("listener", "mysql")],
        |v| v == 0.0,
    );
    assert!(d.audit_verify().status.success());
}
