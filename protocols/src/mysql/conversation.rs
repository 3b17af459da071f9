//! A whole captured conversation replayed through the codec: the server
//! side of `mariadb -h127.0.0.1 -uroot -e "select 1, null, 'abc' as x,
//! now(6); use mysql; select @@autocommit"` against MariaDB 10.11, framed
//! from arbitrary TCP-sized chunks and followed the way the proxy follows a
//! session. It pins down how the pieces fit: the negotiated capabilities,
//! MariaDB's metadata-follows byte and extended metadata (this client
//! agrees both), classic EOF terminators, a NULL-only row that looks like a
//! LOCAL INFILE request, and session tracking.

use bytes::BytesMut;

use super::caps::*;
use super::handshake::{parse_greeting, parse_handshake_response};
use super::packet::take_packet;
use super::response::{self, SessionChange};
use super::rows::text_row_values;
use super::status::*;

const SERVER: &[&str] = &[
    "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b64656231327531000900000049397e33224d3f3100fef72d0200ff81150000000000001d000000793126675557343c724a5a63006d7973716c5f6e61746976655f70617373776f726400",
    "0700000200000002000000",
    "020000010401",
    "1800000203646566000000013100000c3f0001000000038100000000",
    "1b00000303646566000000044e554c4c00000c3f0000000000068000000000",
    "1800000403646566000000017800000c210009000000fd0100270000",
    "1d00000503646566000000066e6f7728362900000c3f001a0000000c8100060000",
    "05000006fe00000200",
    "220000070131fb036162631a323032362d31312d32362030373a31353a33302e383636353333",
    "05000008fe00000200",
    "020000010101",
    "21000002036465660000000a4441544142415345282900000c2100c0000000fd0000270000",
    "05000003fe00000200",
    "01000004fb",
    "05000005fe00000200",
    "110000010000000240000000080106056d7973716c",
    "020000010101",
    "23000002036465660000000c40406175746f636f6d6d697400000c3f0001000000088000000000",
    "05000003fe00000200",
    "020000040131",
    "05000005fe00000200",
];

const CLIENT_RESPONSE: &str = "84a2bf000000100021000000000000000000000000000000000000001d000000726f6f7400006d7973716c5f6e61746976655f70617373776f7264007e035f6f73054c696e75780c5f636c69656e745f6e616d650a6c69626d617269616462045f70696404353535300f5f636c69656e745f76657273696f6e06332e332e3230095f706c6174666f726d067838365f36340c70726f6772616d5f6e616d65056d7973716c0c5f7365727665725f686f7374093132372e302e302e31";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// One result set as the proxy sees it: column names and types, rows.
type ResultSet = (Vec<(String, u8)>, Vec<Vec<Option<String>>>);

#[test]
fn captured_session_replays_through_the_codec() {
    let wire: Vec<u8> = SERVER.iter().flat_map(|s| hex(s)).collect();
    // Frame from chunks of 7 bytes, as a socket might deliver them.
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    for chunk in wire.chunks(7) {
        buf.extend_from_slice(chunk);
        while let Some(p) = take_packet(&mut buf, 1 << 20).unwrap() {
            packets.push(p);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(packets.len(), SERVER.len());

    let greeting = parse_greeting(&packets[0].payload).unwrap();
    let client = parse_handshake_response(&hex(CLIENT_RESPONSE)).unwrap();
    let caps = greeting.capabilities & client.capabilities;
    assert!(caps & MARIADB_CLIENT_EXTENDED_METADATA != 0);
    assert!(caps & MARIADB_CLIENT_CACHE_METADATA != 0);
    assert!(caps & CLIENT_DEPRECATE_EOF == 0);
    assert!(caps & CLIENT_SESSION_TRACK != 0);
    assert_eq!(packets[1].seq, 2);
    let ok = response::parse_ok(&packets[1].payload, caps).unwrap();
    assert_eq!(ok.status, SERVER_STATUS_AUTOCOMMIT);

    let mut rest = &packets[2..];
    let mut results: Vec<ResultSet> = Vec::new();
    let mut changes = Vec::new();
    while let Some((first, tail)) = rest.split_first() {
        rest = tail;
        assert_eq!(first.seq, 1, "every response starts at sequence 1");
        let payload = &first.payload[..];
        if payload.first() == Some(&response::OK_HEADER) {
            let ok = response::parse_ok(payload, caps).unwrap();
            changes.extend(response::session_track(ok.session_state));
            continue;
        }
        // Under MARIADB_CLIENT_CACHE_METADATA the count is followed by a
        // metadata-follows byte (1 here: the definitions are sent).
        assert_eq!(payload.get(1), Some(&1));
        let count = response::parse_column_count(payload).unwrap() as usize;
        let mut columns = Vec::new();
        for def in &rest[..count] {
            let def = response::parse_column_def_ext(&def.payload, caps).unwrap();
            let name = String::from_utf8(def.name.to_vec()).unwrap();
            columns.push((name, def.column_type));
        }
        rest = &rest[count..];
        assert!(
            response::is_terminator(&rest[0].payload),
            "EOF after definitions"
        );
        rest = &rest[1..];
        let mut rows = Vec::new();
        loop {
            let (packet, tail) = rest.split_first().unwrap();
            rest = tail;
            if response::is_terminator(&packet.payload) {
                let status = response::terminator_status(&packet.payload, caps);
                assert_eq!(status & SERVER_STATUS_MORE_RESULTS_EXISTS, 0);
                break;
            }
            let mut cells = Vec::new();
            text_row_values(&packet.payload, &mut cells).unwrap();
            assert_eq!(cells.len(), count);
            rows.push(
                cells
                    .iter()
                    .map(|c| c.map(|v| String::from_utf8(v.to_vec()).unwrap()))
                    .collect(),
            );
        }
        results.push((columns, rows));
    }

    let s = |v: &str| Some(v.to_string());
    assert_eq!(results.len(), 3);
    let (columns, rows) = &results[0];
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["1", "NULL", "x", "now(6)"]);
    assert_eq!(
        columns.iter().map(|c| c.1).collect::<Vec<_>>(),
        [
            response::types::LONG,
            response::types::NULL,
            response::types::VAR_STRING,
            response::types::DATETIME
        ]
    );
    assert_eq!(
        rows,
        &[vec![
            s("1"),
            None,
            s("abc"),
            s("2026-11-26 07:15:30.866533")
        ]]
    );
    // SELECT DATABASE() before USE: a single NULL cell, whose payload (0xFB)
    // is also what a LOCAL INFILE request starts with. Only the first packet
    // of a response can be that request.
    assert_eq!(results[1].1, [vec![None]]);
    assert_eq!(results[2].1, [vec![s("1")]]);
    assert_eq!(changes, [SessionChange::Schema("mysql".into())]);
}
