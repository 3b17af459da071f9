//! PostgreSQL frontend/backend protocol v3.
//!
//! Owns framing ([`frame`]), the untagged startup phase ([`startup`]), the
//! client messages the proxy inspects ([`frontend`]), the server messages
//! it inspects or synthesises ([`backend`]) and the result rows it may
//! rewrite ([`rows`]), plus the bounds-checked reader and length-patching
//! writer they share.
//!
//! Must never: do I/O, decide policy, or panic on input.
//!
//! Written by hand rather than on `pgwire`: pgwire rejects message types it
//! does not know (the proxy must forward them) and converts text lossily (the
//! firewall must see exactly the bytes the server will parse). Here framing
//! accepts any tag and text is either valid UTF-8 or an error.

use bytes::{BufMut, BytesMut};

use crate::ProtocolError;

pub mod backend;
pub mod frame;
pub mod frontend;
pub mod rows;
pub mod startup;

/// Reason given when a field runs past the end of the message.
pub(crate) const TRUNCATED: &str = "message ends inside a field";
/// Reason given when a C string has no NUL before the end of the message.
pub(crate) const MISSING_NUL: &str = "string is missing its NUL terminator";
/// Reason given when bytes follow the last field (PostgreSQL's `pq_getmsgend`).
pub(crate) const TRAILING: &str = "bytes follow the last field";
/// Reason given when a value length is negative but not the NULL marker.
pub(crate) const NEGATIVE_LENGTH: &str = "value length is negative but not -1 (NULL)";

/// Bounds-checked reading position over one message body.
///
/// Every read checks the remaining length first, so a hostile length or
/// count becomes `Malformed` instead of a panic or an over-read, and every
/// slice it returns borrows from the input.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
    message: &'static str,
}

impl<'a> Cursor<'a> {
    /// `message` names the message in errors, e.g. `"Bind"`.
    pub(crate) fn new(body: &'a [u8], message: &'static str) -> Self {
        Self {
            rest: body,
            message,
        }
    }

    pub(crate) fn malformed(&self, reason: &'static str) -> ProtocolError {
        ProtocolError::Malformed {
            message: self.message,
            reason,
        }
    }

    pub(crate) fn invalid_utf8(&self) -> ProtocolError {
        ProtocolError::InvalidUtf8 {
            message: self.message,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The unread bytes, without consuming them.
    pub(crate) fn peek_rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Consume and return everything left (e.g. SASL data).
    pub(crate) fn take_rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.rest.len() {
            return Err(self.malformed(TRUNCATED));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ProtocolError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, ProtocolError> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ProtocolError> {
        self.array().map(i32::from_be_bytes)
    }

    /// A 16-bit element count. PostgreSQL reads these with
    /// `pq_getmsgint(msg, 2)`, i.e. unsigned: a Bind may carry up to 65535
    /// parameters, so reading them as `i16` would reject valid messages.
    pub(crate) fn count(&mut self) -> Result<usize, ProtocolError> {
        self.u16().map(usize::from)
    }

    /// A NUL-terminated string as raw bytes (terminator consumed, not returned).
    pub(crate) fn cstr_bytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let Some(nul) = self.rest.iter().position(|&b| b == 0) else {
            return Err(self.malformed(MISSING_NUL));
        };
        let (text, tail) = self.rest.split_at(nul);
        self.rest = tail.get(1..).unwrap_or_default();
        Ok(text)
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self) -> Result<&'a str, ProtocolError> {
        let raw = self.cstr_bytes()?;
        std::str::from_utf8(raw).map_err(|_| self.invalid_utf8())
    }

    /// A parameter or argument value: `i32` length, `-1` for NULL, then bytes.
    pub(crate) fn value(&mut self) -> Result<Option<&'a [u8]>, ProtocolError> {
        let len = self.i32()?;
        match usize::try_from(len) {
            Ok(n) => self.bytes(n).map(Some),
            Err(_) if len == -1 => Ok(None),
            Err(_) => Err(self.malformed(NEGATIVE_LENGTH)),
        }
    }

    /// Rejects trailing bytes, as PostgreSQL's `pq_getmsgend` does.
    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.malformed(TRAILING))
        }
    }
}

/// Vec capacity for `count` items of at least `min_item` bytes each: never
/// more than the remaining bytes could hold, so a forged count of 65535
/// cannot make a 10-byte message allocate a large Vec.
pub(crate) fn capacity_for(count: usize, remaining: usize, min_item: usize) -> usize {
    count.min(remaining / min_item.max(1))
}

/// Starts a tagged message; returns where it starts for [`finish_message`].
pub(crate) fn begin_message(buf: &mut BytesMut, tag: u8) -> usize {
    let start = buf.len();
    buf.put_u8(tag);
    buf.put_u32(0);
    start
}

/// Patches the length field of the message begun at `start`.
///
/// A body over 4 GiB cannot be represented; the length saturates and the
/// peer refuses the frame as too large, which is the only honest outcome.
pub(crate) fn finish_message(buf: &mut BytesMut, start: usize) {
    let len = buf.len().saturating_sub(start + 1);
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    if let Some(field) = buf.get_mut(start + 1..start + frame::HEADER_LEN) {
        field.copy_from_slice(&len.to_be_bytes());
    }
}

/// Writes `s` as a C string. A Rust string may contain NUL, a C string
/// cannot: the value is cut at the first NUL so that it can never smuggle an
/// extra field into the message.
pub(crate) fn put_cstr(buf: &mut impl BufMut, s: &str) {
    put_cstr_bytes(buf, s.as_bytes());
}

/// [`put_cstr`] for raw bytes (e.g. a column name in the client encoding),
/// cut at the first NUL for the same reason.
pub(crate) fn put_cstr_bytes(buf: &mut impl BufMut, bytes: &[u8]) {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    buf.put_slice(&bytes[..end]);
    buf.put_u8(0);
}

/// Property-style tests: thousands of pseudo-random and mutated inputs fed to
/// every decoder. Besides "no panic" they check invariants that tie decoders
/// to encoders and framing to its limits.
#[cfg(test)]
mod tests {
    use super::backend::{self, TransactionStatus};
    use super::frame::{self, HEADER_LEN};
    use super::frontend::{self, Target};
    use super::rows::{self, Cell, Field, RewriteStats};
    use super::startup::{self, StartupPacket, PROTOCOL_3_0};
    use super::*;

    /// Enough iterations to hit every branch of these small decoders many
    /// times while keeping `cargo test` fast.
    const CASES: usize = 20_000;
    const MAX_RANDOM_LEN: usize = 48;

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Bytes biased towards the values that matter to these formats:
        /// NUL terminators, 0xFF (negative lengths), small counts and tags.
        fn byte(&mut self) -> u8 {
            match self.below(8) {
                0 | 1 => 0,
                2 => 0xFF,
                3 => self.below(4) as u8,
                4 => b"SPIETQC"[self.below(7)],
                _ => self.next() as u8,
            }
        }
    }

    fn seeds() -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        let mut buf = BytesMut::new();
        frontend::encode_query(&mut buf, "select 1");
        frontend::encode_parse(&mut buf, "s1", "select $1", &[23, 25]);
        frontend::encode_bind(&mut buf, "p", "s1", &[Some(b"42"), None]);
        frontend::encode_execute(&mut buf, "p", 10);
        frontend::encode_describe(&mut buf, Target::Portal, "p");
        frontend::encode_close(&mut buf, Target::Statement, "s1");
        backend::encode_error_response(&mut buf, "ERROR", "42501", "denied", Some("d"));
        backend::encode_ready_for_query(&mut buf, TransactionStatus::Idle);
        let field = |name, type_oid, format| Field {
            name,
            table_oid: 16_384,
            column: 1,
            type_oid,
            type_size: -1,
            type_modifier: -1,
            format,
        };
        rows::encode_row_description(&mut buf, &[field(b"id", 23, 0), field(b"email", 25, 1)]);
        rows::encode_row_description(&mut buf, &[field(b"", 25, 0)]);
        rows::encode_data_row(&mut buf, &[Some(b"42"), None, Some(b"a@b.c")]);
        rows::encode_data_row(&mut buf, &[None]);
        let mut rest: &[u8] = &buf;
        while let Ok(Some(msg)) = frame::split_message(rest, usize::MAX) {
            seeds.push(msg.body.to_vec());
            rest = &rest[msg.total_len()..];
        }
        seeds.push(startup::encode_startup(&[("user", "u"), ("database", "d")]));
        seeds.push(startup::encode_cancel(7, 9).to_vec());
        seeds
    }

    fn input(rng: &mut XorShift, seeds: &[Vec<u8>]) -> Vec<u8> {
        if rng.below(2) == 0 {
            let len = rng.below(MAX_RANDOM_LEN);
            return (0..len).map(|_| rng.byte()).collect();
        }
        let mut v = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(3) {
            match rng.below(3) {
                0 if !v.is_empty() => {
                    let i = rng.below(v.len());
                    v[i] = rng.byte();
                }
                1 if !v.is_empty() => v.truncate(rng.below(v.len())),
                _ => {
                    let i = rng.below(v.len() + 1);
                    v.insert(i, rng.byte());
                }
            }
        }
        v
    }

    fn framed(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    /// How often each decoder accepted an input: the invariants below only
    /// mean something if the generator actually reaches the success paths.
    type Hits = std::collections::BTreeMap<&'static str, usize>;

    fn hit(hits: &mut Hits, name: &'static str) {
        *hits.entry(name).or_default() += 1;
    }

    fn check_frontend(b: &[u8], hits: &mut Hits) {
        if let Ok(sql) = frontend::decode_query(b) {
            hit(hits, "query");
            let mut out = BytesMut::new();
            frontend::encode_query(&mut out, sql);
            assert_eq!(&out[..], framed(frontend::tag::QUERY, b));
        }
        if let Ok(p) = frontend::decode_parse(b) {
            hit(hits, "parse");
            let mut out = BytesMut::new();
            frontend::encode_parse(&mut out, p.name, p.query, &p.param_types);
            assert_eq!(&out[..], framed(frontend::tag::PARSE, b));
        }
        let names = frontend::decode_bind_names(b);
        match frontend::decode_bind(b) {
            Ok(bind) => {
                hit(hits, "bind");
                assert_eq!(names, Ok((bind.portal, bind.statement)));
                if bind.param_formats.is_empty() && bind.result_formats.is_empty() {
                    let mut out = BytesMut::new();
                    frontend::encode_bind(&mut out, bind.portal, bind.statement, &bind.params);
                    assert_eq!(&out[..], framed(frontend::tag::BIND, b));
                }
            }
            Err(e) => assert_eq!(names, Err(e)),
        }
        if let Ok(e) = frontend::decode_execute(b) {
            hit(hits, "execute");
            let mut out = BytesMut::new();
            frontend::encode_execute(&mut out, e.portal, e.max_rows);
            assert_eq!(&out[..], framed(frontend::tag::EXECUTE, b));
        }
        if let Ok(c) = frontend::decode_close(b) {
            hit(hits, "close");
            let mut out = BytesMut::new();
            frontend::encode_close(&mut out, c.target, c.name);
            assert_eq!(&out[..], framed(frontend::tag::CLOSE, b));
        }
        assert_eq!(
            frontend::decode_describe(b).is_ok(),
            frontend::decode_close(b).is_ok()
        );
        if frontend::decode_function_call(b).is_ok() {
            hit(hits, "function_call");
        }
        if let Ok(reason) = frontend::decode_copy_fail(b) {
            assert_eq!(frontend::decode_query(b), Ok(reason));
        }
    }

    fn check_backend(b: &[u8], hits: &mut Hits) {
        if backend::decode_authentication(b).is_ok() {
            hit(hits, "authentication");
        }
        if let Ok(key) = backend::decode_backend_key_data(b) {
            hit(hits, "backend_key_data");
            let mut out = BytesMut::new();
            backend::encode_backend_key_data(&mut out, key);
            assert_eq!(&out[..], framed(backend::tag::BACKEND_KEY_DATA, b));
        }
        if backend::decode_parameter_status(b).is_ok() {
            hit(hits, "parameter_status");
        }
        if let Ok(status) = backend::decode_ready_for_query(b) {
            hit(hits, "ready_for_query");
            let mut out = BytesMut::new();
            backend::encode_ready_for_query(&mut out, status);
            assert_eq!(&out[..], framed(backend::tag::READY_FOR_QUERY, b));
        }
        if let Ok(cc) = backend::decode_command_complete(b) {
            assert!(cc.tag.starts_with(cc.command()));
            if let Some(rows) = cc.rows() {
                assert!(cc.tag.ends_with(&rows.to_string()));
            }
        }
        if let Ok(fields) = backend::decode_error_fields(b) {
            hit(hits, "error_fields");
            assert_eq!(
                backend::find_error_field(b, b'C'),
                Ok(fields.code.map(str::as_bytes))
            );
        }
    }

    /// Result rows: a decoded body re-encodes to the same bytes, a rewrite
    /// that keeps everything is byte-identical, a rewrite that replaces
    /// decodes back to the replacements, and a body that does not decode is
    /// refused by the rewriter with the same error and nothing written.
    fn check_rows(b: &[u8], hits: &mut Hits) {
        if let Ok(fields) = rows::decode_row_description(b) {
            hit(hits, "row_description");
            let mut out = BytesMut::new();
            rows::encode_row_description(&mut out, &fields);
            assert_eq!(&out[..], framed(backend::tag::ROW_DESCRIPTION, b));
        }
        let mut out = BytesMut::new();
        let kept = rows::rewrite_data_row(b, &mut out, |_, _| Cell::Keep);
        match rows::data_row_values(b) {
            Ok(row) => {
                hit(hits, "data_row");
                let values: Vec<Option<&[u8]>> = row.iter().collect();
                assert_eq!(values.len(), row.len());
                assert_eq!(kept, Ok(RewriteStats { changed: 0 }));
                assert_eq!(&out[..], framed(backend::tag::DATA_ROW, b));
                let mut encoded = BytesMut::new();
                rows::encode_data_row(&mut encoded, &values);
                assert_eq!(encoded, out);

                // mask columns 0, 2, 3, 5, …: non-NULL becomes "***", NULL stays
                fn masked(i: usize, v: Option<&[u8]>) -> Option<&[u8]> {
                    match v {
                        Some(_) if i % 3 != 1 => Some(b"***"),
                        other => other,
                    }
                }
                let mut out = BytesMut::new();
                let stats = rows::rewrite_data_row(b, &mut out, |i, v| match masked(i, v) {
                    Some(m) => Cell::value(m),
                    None => Cell::Null,
                });
                let want: Vec<_> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| masked(i, *v))
                    .collect();
                let changed = want.iter().zip(&values).filter(|(w, v)| w != v).count();
                assert_eq!(stats, Ok(RewriteStats { changed }));
                let msg = frame::split_message(&out, usize::MAX).unwrap().unwrap();
                assert_eq!(
                    (msg.tag, msg.total_len()),
                    (backend::tag::DATA_ROW, out.len())
                );
                let back = rows::data_row_values(msg.body).unwrap();
                assert_eq!(back.iter().collect::<Vec<_>>(), want);
            }
            Err(e) => {
                assert_eq!(kept, Err(e));
                assert!(out.is_empty());
            }
        }
    }

    fn check_framing(b: &[u8], hits: &mut Hits) {
        let max = HEADER_LEN + 16;
        match frame::parse_header(b, max) {
            Ok(Some(h)) => {
                hit(hits, "parse_header");
                assert!(h.len >= 4 && h.total_len() <= max);
                assert_eq!(h.total_len(), HEADER_LEN + h.body_len());
            }
            Ok(None) => assert!(b.len() < HEADER_LEN),
            Err(_) => assert!(b.len() >= HEADER_LEN),
        }
        if let Ok(Some(total)) = frame::check_startup(b, frame::MAX_STARTUP_PACKET) {
            assert!((8..=b.len()).contains(&total));
            if let Ok(StartupPacket::Startup { protocol, params }) =
                startup::decode_startup(&b[..total])
            {
                hit(hits, "startup");
                if protocol == PROTOCOL_3_0 {
                    assert_eq!(startup::encode_startup(&params), &b[..total]);
                }
            }
        }
        if let Ok(StartupPacket::Cancel { .. }) = startup::decode_startup(b) {
            hit(hits, "cancel");
        }
    }

    #[test]
    fn random_and_mutated_inputs_never_panic_and_keep_invariants() {
        let seeds = seeds();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut hits = Hits::new();
        for _ in 0..CASES {
            let b = input(&mut rng, &seeds);
            check_frontend(&b, &mut hits);
            check_backend(&b, &mut hits);
            check_rows(&b, &mut hits);
            check_framing(&b, &mut hits);
        }
        for name in [
            "query",
            "parse",
            "bind",
            "execute",
            "close",
            "function_call",
            "authentication",
            "backend_key_data",
            "parameter_status",
            "ready_for_query",
            "error_fields",
            "row_description",
            "data_row",
            "parse_header",
            "startup",
            "cancel",
        ] {
            let count = hits.get(name).copied().unwrap_or(0);
            assert!(count > 0, "{name} never accepted: {hits:?}");
        }
    }

    #[test]
    fn put_cstr_cuts_at_interior_nul() {
        let cases: &[(&str, &[u8])] = &[
            ("abc", b"abc\0"),
            ("", b"\0"),
            ("a\0b", b"a\0"),
            ("\0", b"\0"),
        ];
        for (input, want) in cases {
            let mut buf = BytesMut::new();
            put_cstr(&mut buf, input);
            assert_eq!(&buf[..], *want, "{input:?}");
        }
    }

    #[test]
    fn capacity_is_capped_by_remaining_bytes() {
        let cases = [
            (65535, 10, 4, 2),
            (3, 100, 4, 3),
            (0, 100, 4, 0),
            (5, 5, 0, 5),
        ];
        for (count, remaining, min_item, want) in cases {
            assert_eq!(capacity_for(count, remaining, min_item), want);
        }
    }
}
