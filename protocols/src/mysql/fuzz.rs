//! Property-style tests: pseudo-random and mutated inputs fed to every
//! decoder of the MySQL codec. Besides "no panic" they check invariants
//! that tie decoders to encoders, rewrites to views and framing to its
//! limits, and that the generator really reaches each decoder's success
//! path (a fuzz loop that only ever hits errors proves little).
//!
//! The `check_*` functions are also the cargo-fuzz targets' bodies
//! (`fuzz/fuzz_targets/mysql_*.rs`, feature `fuzzing`): one set of
//! invariants for both the unit test's generator and libFuzzer. Test-only
//! code: it asserts and unwraps, it is never built into the proxy.

use bytes::BytesMut;

use super::caps;
#[cfg(test)]
use super::charset;
use super::command;
use super::execute;
#[cfg(test)]
use super::execute::ParamValue;
use super::handshake;
use super::packet::{self, HEADER_LEN};
use super::response::{self, types};
use super::rows::{self, BinaryCell, Cell, RewriteStats};

/// Enough iterations to hit every branch of these small decoders many times
/// while keeping `cargo test` fast.
#[cfg(test)]
const CASES: usize = 30_000;
#[cfg(test)]
const MAX_RANDOM_LEN: usize = 40;

/// Small deterministic generator; the fuzz targets seed it from the input.
pub struct XorShift(pub u64);

impl XorShift {
    // Not an Iterator: an endless generator, `next` reads as in rand.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Bytes biased towards what matters here: NUL terminators, the
    /// length-encoding prefixes (0xFB..=0xFF), small lengths and headers.
    pub fn byte(&mut self) -> u8 {
        match self.below(8) {
            0 | 1 => 0,
            2 => 0xFB + self.below(5) as u8,
            3 => self.below(4) as u8,
            _ => self.next() as u8,
        }
    }
}

#[cfg(test)]
fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Real packets captured from MariaDB 10.11 and the mariadb client, plus a
/// few built with the encoders.
#[cfg(test)]
fn seeds() -> Vec<Vec<u8>> {
    let captured = [
        // greeting, handshake response
        "0a352e352e352d31302e31312e31392d4d6172696144422d302b64656231327531000900000049397e33224d3f3100fef72d0200ff81150000000000001d000000793126675557343c724a5a63006d7973716c5f6e61746976655f70617373776f726400",
        "84a2bf000000100021000000000000000000000000000000000000001d000000726f6f7400006d7973716c5f6e61746976655f70617373776f7264007e035f6f73054c696e75780c5f636c69656e745f6e616d650a6c69626d617269616462045f70696404353535300f5f636c69656e745f76657273696f6e06332e332e3230095f706c6174666f726d067838365f36340c70726f6772616d5f6e616d65056d7973716c0c5f7365727665725f686f7374093132372e302e302e31",
        // OKs, EOFs
        "00000002000000",
        "0000000240000000080106056d7973716c",
        "fe00000200",
        "fe000002000000",
        // column definitions, text row
        "03646566000000017800000c210009000000fd0100270000",
        "03646566000000066e6f7728362900000c3f001a0000000c8100060000",
        "0131fb036162631a323032362d31312d32362030373a31353a33302e383636353333",
        // prepare OK, binary rows, execute
        "00010000000c000000000000",
        "00100001000000036162630000000000000c400be8070102030405060000000801010000000203040700000004312e323504e8070102fbffffff00002040e8070000",
        "0010002a00000000000000036162630000000000000c400be807010203040506000000080101000000020304ff096c6f6e672064617461",
        "1702000000000100000004010800fd00060005000c000b000180fc002a00000000000000036162630000000000000c400be807010203040506000000080101000000020304ff",
        // commands
        "11626f6200020a0b73686f7000002d006d7973716c5f6e61746976655f70617373776f7264000a035f6f73054c696e7578",
        "180700000002006368756e6b",
        "1c0300000064000000",
        "0373656c6563742031",
    ];
    let mut seeds: Vec<Vec<u8>> = captured.iter().map(|s| hex(s)).collect();
    let mut buf = BytesMut::new();
    response::encode_err(&mut buf, 1, 1045, "28000", "Access denied");
    seeds.push(buf.split_off(HEADER_LEN).to_vec());
    let mut buf = BytesMut::new();
    let all = caps::CLIENT_PROTOCOL_41 | caps::CLIENT_SESSION_TRACK | caps::CLIENT_DEPRECATE_EOF;
    response::encode_eof_or_ok_terminator(&mut buf, 1, all, 2, 0);
    seeds.push(buf.split_off(HEADER_LEN).to_vec());
    seeds.push(b"\xfb/etc/passwd".to_vec());
    seeds.push(b"\x00\x02\x0aautocommit\x03OFF\x01\x05\x04shop".to_vec());
    seeds
}

#[cfg(test)]
fn input(rng: &mut XorShift, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(3) == 0 {
        let len = rng.below(MAX_RANDOM_LEN);
        return (0..len).map(|_| rng.byte()).collect();
    }
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(3) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.byte();
            }
            1 if !v.is_empty() => v.truncate(rng.below(v.len())),
            2 if !v.is_empty() => {
                // a small change keeps most of the structure
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.byte());
            }
        }
    }
    v
}

/// Which decoders accepted an input, by name.
pub type Hits = std::collections::BTreeMap<&'static str, usize>;

pub fn hit(hits: &mut Hits, name: &'static str) {
    *hits.entry(name).or_default() += 1;
}

/// Capability sets the decoders are run under.
const CAPS: [u64; 4] = [
    caps::CLIENT_PROTOCOL_41,
    caps::CLIENT_PROTOCOL_41 | caps::CLIENT_SESSION_TRACK | caps::CLIENT_SECURE_CONNECTION,
    caps::CLIENT_PROTOCOL_41
        | caps::CLIENT_SECURE_CONNECTION
        | caps::CLIENT_PLUGIN_AUTH
        | caps::CLIENT_CONNECT_ATTRS
        | caps::MARIADB_CLIENT_EXTENDED_METADATA,
    caps::CLIENT_TRANSACTIONS,
];

pub fn check_framing(b: &[u8], rng: &mut XorShift, hits: &mut Hits) {
    let max = rng.below(64);
    let mut buf = BytesMut::from(b);
    match packet::take_packet(&mut buf, max) {
        Ok(Some(p)) => {
            hit(hits, "take_packet");
            assert!(p.payload.len() <= max);
            assert_eq!(p.frames, 1, "small inputs hold one frame");
            assert_eq!(b.len() - buf.len(), HEADER_LEN + p.payload.len());
            assert_eq!(&b[HEADER_LEN..HEADER_LEN + p.payload.len()], &p.payload[..]);
            // writing it back gives the same bytes
            let mut out = BytesMut::new();
            packet::write_frame(&mut out, p.seq, &p.payload);
            assert_eq!(&out[..], &b[..out.len()]);
        }
        Ok(None) => assert_eq!(&buf[..], b, "incomplete input is untouched"),
        Err(_) => assert_eq!(&buf[..], b, "refused input is untouched"),
    }
}

pub fn check_handshake(b: &[u8], hits: &mut Hits) {
    if let Ok(g) = handshake::parse_greeting(b) {
        hit(hits, "greeting");
        let mut copy = b.to_vec();
        let strip = caps::UNSUPPORTED | caps::CLIENT_SSL;
        if handshake::strip_greeting_capabilities(&mut copy, strip).is_ok() {
            let after = handshake::parse_greeting(&copy).expect("a stripped greeting parses");
            assert_eq!(after.capabilities, g.capabilities & !strip);
            assert_eq!(after.server_version, g.server_version);
        }
    } else {
        let mut copy = b.to_vec();
        let _ = handshake::strip_greeting_capabilities(&mut copy, u64::MAX);
    }
    if handshake::parse_auth_switch(b).is_ok() {
        hit(hits, "auth_switch");
    }
    if let Ok(resp) = handshake::parse_handshake_response(b) {
        hit(hits, "handshake_response");
        assert!(resp.capabilities & caps::CLIENT_PROTOCOL_41 != 0);
        if resp.ssl_request {
            hit(hits, "ssl_request");
        }
        let mut copy = b.to_vec();
        let strip = caps::UNSUPPORTED | caps::CLIENT_SSL;
        handshake::strip_response_capabilities(&mut copy, strip).unwrap();
        if let Ok(after) = handshake::parse_handshake_response(&copy) {
            assert_eq!(after.capabilities, resp.capabilities & !strip);
        }
    } else {
        let mut copy = b.to_vec();
        let _ = handshake::strip_response_capabilities(&mut copy, u64::MAX);
    }
}

pub fn check_responses(b: &[u8], hits: &mut Hits) {
    for caps in CAPS {
        if let Ok(ok) = response::parse_ok(b, caps) {
            hit(hits, "ok");
            let _ = response::session_track(ok.session_state);
        }
        let _ = response::terminator_status(b, caps);
        match (
            response::parse_column_def_ext(b, caps),
            response::column_type_and_charset_ext(b, caps),
        ) {
            (Ok(def), Ok(cheap)) => {
                hit(hits, "column_def");
                assert_eq!(cheap, (def.column_type, def.charset, def.flags));
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("column_def {a:?} vs {b:?}"),
        }
    }
    if response::is_terminator(b) {
        hit(hits, "terminator");
        assert_eq!(b.first(), Some(&response::EOF_HEADER));
    }
    let _ = response::parse_eof(b);
    if let Ok(err) = response::parse_err(b) {
        hit(hits, "err");
        assert!(err.message.len() < b.len());
    }
    if response::parse_prepare_ok(b).is_ok() {
        hit(hits, "prepare_ok");
    }
    let _ = response::local_infile_name(b);
    if !response::session_track(b).is_empty() {
        hit(hits, "session_track");
    }
    let _ = response::parse_column_count(b);
    if let Some((v, used)) = response::lenenc_int(b) {
        assert!(used <= b.len());
        let mut out = BytesMut::new();
        response::put_lenenc_int(&mut out, v);
        assert_eq!(response::lenenc_int(&out), Some((v, out.len())));
    }
    if let Some((s, used)) = response::lenenc_bytes(b) {
        assert!(used <= b.len() && s.len() < used);
    }
}

pub fn check_text_row(b: &[u8], hits: &mut Hits) {
    let mut values = Vec::new();
    let mut out = BytesMut::new();
    let kept = rows::rewrite_text_row(b, &mut out, |_, _| Cell::Keep);
    match rows::text_row_values(b, &mut values) {
        Ok(()) => {
            hit(hits, "text_row");
            assert_eq!(kept, Ok(RewriteStats { changed: 0 }));
            assert_eq!(&out[..], b);
            fn mask(i: usize, v: Option<&[u8]>) -> Option<&[u8]> {
                match v {
                    Some(_) if i.is_multiple_of(2) => Some(b"***"),
                    other => other,
                }
            }
            let mut out = BytesMut::new();
            let stats = rows::rewrite_text_row(b, &mut out, |i, v| match mask(i, v) {
                Some(m) => Cell::value(m),
                None => Cell::Null,
            })
            .unwrap();
            let want: Vec<_> = values
                .iter()
                .enumerate()
                .map(|(i, v)| mask(i, *v))
                .collect();
            let changed = want.iter().zip(&values).filter(|(w, v)| w != v).count();
            assert_eq!(stats.changed, changed);
            let mut back = Vec::new();
            rows::text_row_values(&out, &mut back).unwrap();
            assert_eq!(back, want);
        }
        Err(e) => {
            assert_eq!(kept, Err(e));
            assert!(out.is_empty() && values.is_empty());
        }
    }
}

pub fn check_binary_row(b: &[u8], rng: &mut XorShift, hits: &mut Hits) {
    const KINDS: [u8; 9] = [
        types::TINY,
        types::LONG,
        types::LONGLONG,
        types::VAR_STRING,
        types::DATETIME,
        types::NEWDECIMAL,
        types::NULL,
        types::BLOB,
        200, // no binary layout
    ];
    let n = rng.below(10);
    let column_types: Vec<u8> = (0..n)
        .map(|_| {
            // the type without a layout only now and then
            let choices = if rng.below(4) == 0 {
                KINDS.len()
            } else {
                KINDS.len() - 1
            };
            KINDS[rng.below(choices)]
        })
        .collect();
    let mut cells = Vec::new();
    let mut out = BytesMut::new();
    let kept = rows::rewrite_binary_row(b, &column_types, &mut out, |_, _| Cell::Keep);
    match rows::binary_row_values(b, &column_types, &mut cells) {
        Ok(()) => {
            hit(hits, "binary_row");
            assert_eq!(cells.len(), n);
            assert_eq!(kept, Ok(RewriteStats { changed: 0 }));
            assert_eq!(&out[..], b);
            let mut out = BytesMut::new();
            let stats = rows::rewrite_binary_row(b, &column_types, &mut out, |i, _| {
                if i % 2 == 0 {
                    Cell::value(&b"xx"[..])
                } else {
                    Cell::Keep
                }
            })
            .unwrap();
            let mut back = Vec::new();
            rows::binary_row_values(&out, &column_types, &mut back).unwrap();
            let mut changed = 0;
            for (i, (new, old)) in back.iter().zip(&cells).enumerate() {
                let lenenc =
                    types::binary_width(column_types[i]) == Some(types::BinaryWidth::LenEnc);
                let want = match i % 2 {
                    0 if lenenc => BinaryCell::Bytes(b"xx"),
                    0 => BinaryCell::Null,
                    _ => *old,
                };
                changed += usize::from(want != *old);
                assert_eq!(*new, want, "column {i}");
            }
            assert_eq!(stats.changed, changed);
        }
        Err(e) => {
            assert_eq!(kept, Err(e));
            assert!(out.is_empty() && cells.is_empty());
        }
    }
}

pub fn check_commands(b: &[u8], rng: &mut XorShift, hits: &mut Hits) {
    for caps in CAPS {
        if let Ok(cu) = command::parse_change_user(b, caps) {
            hit(hits, "change_user");
            assert!(cu.user.len() < b.len());
        }
    }
    if let Ok((_, _, data)) = command::parse_send_long_data(b) {
        hit(hits, "send_long_data");
        assert_eq!(data.len() + 7, b.len());
    }
    if command::stmt_id(b).is_ok() {
        hit(hits, "stmt_id");
    }
    if command::parse_fetch(b).is_ok() {
        hit(hits, "fetch");
    }
    let _ = command::command_name(b.first().copied().unwrap_or(0));

    const KINDS: [(u8, bool); 8] = [
        (types::LONGLONG, false),
        (types::VAR_STRING, false),
        (types::NULL, false),
        (types::DOUBLE, false),
        (types::DATETIME, false),
        (types::TIME, false),
        (types::TINY, true),
        (types::BLOB, false),
    ];
    let n = rng.below(10);
    let bound: Vec<(u8, bool)> = (0..n).map(|_| KINDS[rng.below(KINDS.len())]).collect();
    let long: Vec<bool> = (0..rng.below(10)).map(|_| rng.below(4) == 0).collect();
    let bound_arg = (rng.below(2) == 0).then_some(bound.as_slice());
    if let Ok(exec) = execute::parse_execute(b, n, bound_arg, &long) {
        hit(hits, "execute");
        if n > 0 {
            hit(hits, "execute_params");
            assert_eq!(exec.params.len(), n);
        }
        let rendered = execute::render_params(&exec.params, 80);
        assert!(rendered.len() <= 80);
    }
}

#[test]
fn random_and_mutated_inputs_never_panic_and_keep_invariants() {
    let seeds = seeds();
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut hits = Hits::new();
    for _ in 0..CASES {
        let b = input(&mut rng, &seeds);
        check_framing(&b, &mut rng, &mut hits);
        check_handshake(&b, &mut hits);
        check_responses(&b, &mut hits);
        check_text_row(&b, &mut hits);
        check_binary_row(&b, &mut rng, &mut hits);
        check_commands(&b, &mut rng, &mut hits);
    }
    for name in [
        "take_packet",
        "greeting",
        "handshake_response",
        "auth_switch",
        "ok",
        "column_def",
        "terminator",
        "err",
        "prepare_ok",
        "session_track",
        "text_row",
        "binary_row",
        "change_user",
        "send_long_data",
        "stmt_id",
        "fetch",
        "execute",
        "execute_params",
    ] {
        let count = hits.get(name).copied().unwrap_or(0);
        assert!(count > 0, "{name} never accepted: {hits:?}");
    }
}

#[test]
fn render_params_is_bounded_for_random_values() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2_000 {
        let params: Vec<ParamValue> = (0..rng.below(20))
            .map(|_| match rng.below(7) {
                0 => ParamValue::Null,
                1 => ParamValue::Int(rng.next() as i64),
                2 => ParamValue::UInt(rng.next()),
                3 => ParamValue::Float(f64::from_bits(rng.next())),
                4 => ParamValue::Bytes((0..rng.below(300)).map(|_| rng.next() as u8).collect()),
                5 => ParamValue::Text("2024-01-02 03:04:05".into()),
                _ => ParamValue::LongData,
            })
            .collect();
        let max = rng.below(200);
        let out = execute::render_params(&params, max);
        assert!(out.len() <= max, "{max}: {out}");
        assert!(!out.contains('\n') && !out.contains('\0'));
    }
}

#[test]
fn every_collation_id_is_safe() {
    let known = (0..=u16::MAX)
        .filter(|&id| charset::charset_of_collation(id).is_some())
        .count();
    assert!((900..2000).contains(&known), "{known}");
}
