//! Messages a client sends once the session is established.
//!
//! Owns the tags of frontend messages, decoders for those policy must see
//! (simple Query, the extended-protocol Parse/Bind/Execute/Describe/Close,
//! FunctionCall, CopyFail) and encoders for the ones tests and the proxy's
//! probe send. Decoders take the body (the bytes after the 5-byte header)
//! and validate the whole layout the way PostgreSQL does, trailing bytes
//! included, so the firewall never accepts a message the server would read
//! differently.
//!
//! Must never: allocate where it can borrow (every string borrows the
//! input), trust a count before checking the bytes exist, or panic.

use bytes::{BufMut, BytesMut};

use crate::pg::{begin_message, capacity_for, finish_message, put_cstr, Cursor};
use crate::ProtocolError;

/// Tag bytes of frontend messages.
pub mod tag {
    pub const QUERY: u8 = b'Q';
    pub const PARSE: u8 = b'P';
    pub const BIND: u8 = b'B';
    pub const EXECUTE: u8 = b'E';
    pub const DESCRIBE: u8 = b'D';
    pub const CLOSE: u8 = b'C';
    pub const SYNC: u8 = b'S';
    pub const FLUSH: u8 = b'H';
    pub const TERMINATE: u8 = b'X';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
    pub const FUNCTION_CALL: u8 = b'F';
    /// Also SASLInitialResponse, SASLResponse and GSSResponse: which one is
    /// meant depends on the authentication request that preceded it.
    pub const PASSWORD: u8 = b'p';
}

/// Wire size of one OID in Parse.
const OID_LEN: usize = 4;
/// Wire size of one format code.
const FORMAT_LEN: usize = 2;
/// Smallest wire size of one parameter value (its length field, for NULL).
const MIN_VALUE_LEN: usize = 4;

/// Simple Query: the SQL text, which may hold several statements.
pub fn decode_query(body: &[u8]) -> Result<&str, ProtocolError> {
    let mut c = Cursor::new(body, "Query");
    let sql = c.cstr()?;
    c.finish()?;
    Ok(sql)
}

/// Parse: creates a prepared statement; this is where the extended protocol
/// shows its SQL, so this is where the firewall decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse<'a> {
    /// Empty for the unnamed statement.
    pub name: &'a str,
    pub query: &'a str,
    /// Parameter type OIDs the client fixed; 0 means "let the server infer".
    pub param_types: Vec<u32>,
}

pub fn decode_parse(body: &[u8]) -> Result<Parse<'_>, ProtocolError> {
    let mut c = Cursor::new(body, "Parse");
    let name = c.cstr()?;
    let query = c.cstr()?;
    let count = c.count()?;
    let mut param_types = Vec::with_capacity(capacity_for(count, c.remaining(), OID_LEN));
    for _ in 0..count {
        param_types.push(c.u32()?);
    }
    c.finish()?;
    Ok(Parse {
        name,
        query,
        param_types,
    })
}

/// Bind: binds parameter values to a prepared statement, creating a portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
    /// Empty (all text), one (applies to all) or one per parameter.
    pub param_formats: Vec<i16>,
    /// `None` is SQL NULL.
    pub params: Vec<Option<&'a [u8]>>,
    /// Same convention as `param_formats`, for result columns.
    pub result_formats: Vec<i16>,
}

impl Bind<'_> {
    /// The format code (0 text, 1 binary) that applies to parameter `index`,
    /// resolving the "none / one for all / one each" convention.
    pub fn param_format(&self, index: usize) -> Option<i16> {
        if index >= self.params.len() {
            return None;
        }
        match self.param_formats.as_slice() {
            [] => Some(0),
            [all] => Some(*all),
            each => each.get(index).copied(),
        }
    }
}

/// Where each part of a Bind lies, found by one validating walk that
/// allocates nothing; [`decode_bind`] and [`decode_bind_names`] share it so
/// they accept exactly the same messages.
struct BindLayout<'a> {
    portal: &'a str,
    statement: &'a str,
    formats: &'a [u8],
    param_count: usize,
    params: &'a [u8],
    results: &'a [u8],
}

fn walk_bind(body: &[u8]) -> Result<BindLayout<'_>, ProtocolError> {
    let mut c = Cursor::new(body, "Bind");
    let portal = c.cstr()?;
    let statement = c.cstr()?;
    let format_count = c.count()?;
    let formats = c.bytes(format_count * FORMAT_LEN)?;
    let param_count = c.count()?;
    if format_count > 1 && format_count != param_count {
        return Err(c.malformed("parameter format count is neither 0, 1 nor the parameter count"));
    }
    let params_start = c.peek_rest();
    for _ in 0..param_count {
        c.value()?;
    }
    let params = &params_start[..params_start.len() - c.remaining()];
    let result_count = c.count()?;
    let results = c.bytes(result_count * FORMAT_LEN)?;
    c.finish()?;
    Ok(BindLayout {
        portal,
        statement,
        formats,
        param_count,
        params,
        results,
    })
}

fn formats(raw: &[u8]) -> Vec<i16> {
    raw.chunks_exact(FORMAT_LEN)
        .map(|p| i16::from_be_bytes([p[0], p[1]]))
        .collect()
}

/// Full Bind decode. A parameter length of -1 is NULL; any other negative
/// length is Malformed.
pub fn decode_bind(body: &[u8]) -> Result<Bind<'_>, ProtocolError> {
    let layout = walk_bind(body)?;
    let mut c = Cursor::new(layout.params, "Bind");
    let mut params = Vec::with_capacity(capacity_for(
        layout.param_count,
        layout.params.len(),
        MIN_VALUE_LEN,
    ));
    for _ in 0..layout.param_count {
        params.push(c.value()?);
    }
    Ok(Bind {
        portal: layout.portal,
        statement: layout.statement,
        param_formats: formats(layout.formats),
        params,
        result_formats: formats(layout.results),
    })
}

/// A Bind's portal and statement names as raw bytes (they are in the
/// client encoding, which need not be UTF-8) and its result-format codes
/// (see [`Bind::result_formats`] for the convention), without decoding the
/// parameters. Checks the framing it walks; the server validates the rest.
pub fn decode_bind_results(body: &[u8]) -> Result<BindResults<'_>, ProtocolError> {
    let mut c = Cursor::new(body, "Bind");
    let portal = c.cstr_bytes()?;
    let statement = c.cstr_bytes()?;
    let format_count = c.count()?;
    c.bytes(format_count * FORMAT_LEN)?;
    let param_count = c.count()?;
    let params_start = c.peek_rest();
    for _ in 0..param_count {
        c.value()?;
    }
    let params = &params_start[..params_start.len() - c.remaining()];
    let result_count = c.count()?;
    let results = c.bytes(result_count * FORMAT_LEN)?;
    c.finish()?;
    Ok(BindResults {
        portal,
        statement,
        result_formats: formats(results),
        params,
        param_count,
    })
}

/// What [`decode_bind_results`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindResults<'a> {
    pub portal: &'a [u8],
    pub statement: &'a [u8],
    /// Same convention as [`Bind::result_formats`].
    pub result_formats: Vec<i16>,
    /// The parameter values as sent (each with its length), undecoded.
    pub params: &'a [u8],
    pub param_count: usize,
}

/// Cheap variant for the hot path: only the portal and statement names, no
/// Vec allocation. Validates the whole message like [`decode_bind`].
pub fn decode_bind_names(body: &[u8]) -> Result<(&str, &str), ProtocolError> {
    walk_bind(body).map(|l| (l.portal, l.statement))
}

/// Execute: runs a portal, optionally row-limited (0 = no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute<'a> {
    pub portal: &'a str,
    pub max_rows: i32,
}

pub fn decode_execute(body: &[u8]) -> Result<Execute<'_>, ProtocolError> {
    let mut c = Cursor::new(body, "Execute");
    let portal = c.cstr()?;
    let max_rows = c.i32()?;
    c.finish()?;
    Ok(Execute { portal, max_rows })
}

/// What a Close or Describe names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Statement,
    Portal,
}

impl Target {
    pub fn as_byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }
}

/// Close (and Describe, which has the same layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close<'a> {
    pub target: Target,
    pub name: &'a str,
}

fn decode_target<'a>(body: &'a [u8], message: &'static str) -> Result<Close<'a>, ProtocolError> {
    let mut c = Cursor::new(body, message);
    let target = match c.u8()? {
        b'S' => Target::Statement,
        b'P' => Target::Portal,
        _ => return Err(c.malformed("target is neither 'S' nor 'P'")),
    };
    let name = c.cstr()?;
    c.finish()?;
    Ok(Close { target, name })
}

pub fn decode_close(body: &[u8]) -> Result<Close<'_>, ProtocolError> {
    decode_target(body, "Close")
}

pub fn decode_describe(body: &[u8]) -> Result<Close<'_>, ProtocolError> {
    decode_target(body, "Describe")
}

/// FunctionCall (legacy fast-path): returns the function OID, which is all
/// policy can judge; the arguments are validated but not returned.
pub fn decode_function_call(body: &[u8]) -> Result<u32, ProtocolError> {
    let mut c = Cursor::new(body, "FunctionCall");
    let oid = c.u32()?;
    let format_count = c.count()?;
    c.bytes(format_count * FORMAT_LEN)?;
    let arg_count = c.count()?;
    if format_count > 1 && format_count != arg_count {
        return Err(c.malformed("argument format count is neither 0, 1 nor the argument count"));
    }
    for _ in 0..arg_count {
        c.value()?;
    }
    c.i16()?;
    c.finish()?;
    Ok(oid)
}

/// CopyFail: the client's reason for aborting COPY FROM STDIN.
pub fn decode_copy_fail(body: &[u8]) -> Result<&str, ProtocolError> {
    let mut c = Cursor::new(body, "CopyFail");
    let reason = c.cstr()?;
    c.finish()?;
    Ok(reason)
}

/// Counts above `u16::MAX` cannot be sent; extra items are dropped so the
/// written count always matches the items written.
fn wire_count<T>(items: &[T]) -> &[T] {
    &items[..items.len().min(usize::from(u16::MAX))]
}

pub fn encode_query(buf: &mut BytesMut, sql: &str) {
    let start = begin_message(buf, tag::QUERY);
    put_cstr(buf, sql);
    finish_message(buf, start);
}

pub fn encode_parse(buf: &mut BytesMut, name: &str, query: &str, param_types: &[u32]) {
    let start = begin_message(buf, tag::PARSE);
    put_cstr(buf, name);
    put_cstr(buf, query);
    let types = wire_count(param_types);
    buf.put_u16(types.len() as u16);
    for oid in types {
        buf.put_u32(*oid);
    }
    finish_message(buf, start);
}

/// Bind with all parameters and results in text format (no format codes).
pub fn encode_bind(buf: &mut BytesMut, portal: &str, statement: &str, params: &[Option<&[u8]>]) {
    let start = begin_message(buf, tag::BIND);
    put_cstr(buf, portal);
    put_cstr(buf, statement);
    buf.put_u16(0);
    let params = wire_count(params);
    buf.put_u16(params.len() as u16);
    for param in params {
        match param {
            None => buf.put_i32(-1),
            Some(value) => {
                // A value over 2 GiB cannot be represented; it is sent empty
                // rather than with a length that would desynchronise the stream.
                let value = if i32::try_from(value.len()).is_ok() {
                    *value
                } else {
                    &[]
                };
                buf.put_i32(value.len() as i32);
                buf.put_slice(value);
            }
        }
    }
    buf.put_u16(0);
    finish_message(buf, start);
}

pub fn encode_execute(buf: &mut BytesMut, portal: &str, max_rows: i32) {
    let start = begin_message(buf, tag::EXECUTE);
    put_cstr(buf, portal);
    buf.put_i32(max_rows);
    finish_message(buf, start);
}

fn encode_target(buf: &mut BytesMut, message_tag: u8, target: Target, name: &str) {
    let start = begin_message(buf, message_tag);
    buf.put_u8(target.as_byte());
    put_cstr(buf, name);
    finish_message(buf, start);
}

pub fn encode_describe(buf: &mut BytesMut, target: Target, name: &str) {
    encode_target(buf, tag::DESCRIBE, target, name);
}

pub fn encode_close(buf: &mut BytesMut, target: Target, name: &str) {
    encode_target(buf, tag::CLOSE, target, name);
}

fn encode_empty(buf: &mut BytesMut, message_tag: u8) {
    let start = begin_message(buf, message_tag);
    finish_message(buf, start);
}

pub fn encode_sync(buf: &mut BytesMut) {
    encode_empty(buf, tag::SYNC);
}

pub fn encode_flush(buf: &mut BytesMut) {
    encode_empty(buf, tag::FLUSH);
}

pub fn encode_terminate(buf: &mut BytesMut) {
    encode_empty(buf, tag::TERMINATE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::frame::split_message;
    use crate::pg::{MISSING_NUL, TRAILING, TRUNCATED};

    fn malformed(message: &'static str, reason: &'static str) -> ProtocolError {
        ProtocolError::Malformed { message, reason }
    }

    /// Encodes with `f`, checks the frame, returns (tag, body).
    fn frame(f: impl FnOnce(&mut BytesMut)) -> (u8, Vec<u8>) {
        let mut buf = BytesMut::new();
        f(&mut buf);
        let msg = split_message(&buf, usize::MAX).unwrap().unwrap();
        assert_eq!(msg.total_len(), buf.len(), "one whole message");
        (msg.tag, msg.body.to_vec())
    }

    /// Builds a body from parts: strings get a NUL, numbers are big-endian.
    enum P<'a> {
        S(&'a [u8]),
        U16(u16),
        I16(i16),
        I32(i32),
        Raw(&'a [u8]),
    }

    fn body(parts: &[P]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            match p {
                P::S(s) => {
                    v.extend_from_slice(s);
                    v.push(0);
                }
                P::U16(n) => v.extend_from_slice(&n.to_be_bytes()),
                P::I16(n) => v.extend_from_slice(&n.to_be_bytes()),
                P::I32(n) => v.extend_from_slice(&n.to_be_bytes()),
                P::Raw(b) => v.extend_from_slice(b),
            }
        }
        v
    }

    #[test]
    fn query_table() {
        let cases: &[(&[u8], Result<&str, ProtocolError>)] = &[
            (b"select 1\0", Ok("select 1")),
            (b"\0", Ok("")),
            (b"", Err(malformed("Query", MISSING_NUL))),
            (b"select 1", Err(malformed("Query", MISSING_NUL))),
            (b"select 1\0x", Err(malformed("Query", TRAILING))),
            (b"select 1\0\0", Err(malformed("Query", TRAILING))),
            (
                b"select '\xff'\0",
                Err(ProtocolError::InvalidUtf8 { message: "Query" }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&decode_query(input), want, "{input:?}");
        }
    }

    #[test]
    fn copy_fail_table() {
        let cases: &[(&[u8], Result<&str, ProtocolError>)] = &[
            (b"aborted\0", Ok("aborted")),
            (b"aborted", Err(malformed("CopyFail", MISSING_NUL))),
            (b"a\0b", Err(malformed("CopyFail", TRAILING))),
            (
                b"\xc3\0",
                Err(ProtocolError::InvalidUtf8 {
                    message: "CopyFail",
                }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&decode_copy_fail(input), want, "{input:?}");
        }
    }

    #[test]
    fn parse_table() {
        let ok = |name, query, param_types: Vec<u32>| {
            Ok(Parse {
                name,
                query,
                param_types,
            })
        };
        let cases: Vec<(Vec<u8>, Result<Parse, ProtocolError>)> = vec![
            (
                body(&[P::S(b"s1"), P::S(b"select $1"), P::U16(1), P::I32(23)]),
                ok("s1", "select $1", vec![23]),
            ),
            (
                body(&[P::S(b""), P::S(b"begin"), P::U16(0)]),
                ok("", "begin", vec![]),
            ),
            (
                // counts are unsigned on the wire: 0xFFFF is 65535, not -1,
                // and there are not that many OIDs
                body(&[P::S(b""), P::S(b"q"), P::I16(-1)]),
                Err(malformed("Parse", TRUNCATED)),
            ),
            (
                body(&[P::S(b""), P::S(b"q"), P::U16(3), P::I32(23), P::I32(25)]),
                Err(malformed("Parse", TRUNCATED)),
            ),
            (
                body(&[P::S(b""), P::S(b"q"), P::U16(0), P::Raw(b"x")]),
                Err(malformed("Parse", TRAILING)),
            ),
            (
                body(&[P::S(b""), P::S(b"q")]),
                Err(malformed("Parse", TRUNCATED)),
            ),
            (body(&[P::S(b"")]), Err(malformed("Parse", MISSING_NUL))),
            (
                body(&[P::S(b""), P::S(b"\xff"), P::U16(0)]),
                Err(ProtocolError::InvalidUtf8 { message: "Parse" }),
            ),
        ];
        for (input, want) in &cases {
            assert_eq!(&decode_parse(input), want, "{input:?}");
        }
    }

    #[test]
    fn parse_huge_count_does_not_preallocate() {
        let input = body(&[P::S(b""), P::S(b"q"), P::U16(u16::MAX), P::I32(1)]);
        assert_eq!(decode_parse(&input), Err(malformed("Parse", TRUNCATED)));
        assert_eq!(capacity_for(usize::from(u16::MAX), 4, OID_LEN), 1);
    }

    #[test]
    fn bind_table() {
        let cases: Vec<(Vec<u8>, Result<Bind, ProtocolError>)> = vec![
            (
                body(&[
                    P::S(b"p"),
                    P::S(b"s"),
                    P::U16(1),
                    P::I16(1),
                    P::U16(3),
                    P::I32(2),
                    P::Raw(b"42"),
                    P::I32(-1),
                    P::I32(0),
                    P::U16(2),
                    P::I16(0),
                    P::I16(1),
                ]),
                Ok(Bind {
                    portal: "p",
                    statement: "s",
                    param_formats: vec![1],
                    params: vec![Some(b"42"), None, Some(b"")],
                    result_formats: vec![0, 1],
                }),
            ),
            (
                body(&[P::S(b""), P::S(b""), P::U16(0), P::U16(0), P::U16(0)]),
                Ok(Bind {
                    portal: "",
                    statement: "",
                    param_formats: vec![],
                    params: vec![],
                    result_formats: vec![],
                }),
            ),
            (
                body(&[
                    P::S(b""),
                    P::S(b""),
                    P::U16(0),
                    P::U16(1),
                    P::I32(-2),
                    P::U16(0),
                ]),
                Err(malformed(
                    "Bind",
                    "value length is negative but not -1 (NULL)",
                )),
            ),
            (
                body(&[
                    P::S(b""),
                    P::S(b""),
                    P::U16(0),
                    P::U16(1),
                    P::I32(i32::MIN),
                    P::U16(0),
                ]),
                Err(malformed(
                    "Bind",
                    "value length is negative but not -1 (NULL)",
                )),
            ),
            (
                body(&[
                    P::S(b""),
                    P::S(b""),
                    P::U16(0),
                    P::U16(1),
                    P::I32(5),
                    P::Raw(b"ab"),
                ]),
                Err(malformed("Bind", TRUNCATED)),
            ),
            (
                body(&[P::S(b""), P::S(b""), P::U16(0), P::U16(1), P::I32(i32::MAX)]),
                Err(malformed("Bind", TRUNCATED)),
            ),
            (
                body(&[P::S(b""), P::S(b""), P::U16(u16::MAX)]),
                Err(malformed("Bind", TRUNCATED)),
            ),
            (
                body(&[
                    P::S(b""),
                    P::S(b""),
                    P::U16(0),
                    P::U16(u16::MAX),
                    P::I32(-1),
                ]),
                Err(malformed("Bind", TRUNCATED)),
            ),
            (
                body(&[
                    P::S(b""),
                    P::S(b""),
                    P::U16(2),
                    P::I16(0),
                    P::I16(0),
                    P::U16(1),
                    P::I32(-1),
                    P::U16(0),
                ]),
                Err(malformed(
                    "Bind",
                    "parameter format count is neither 0, 1 nor the parameter count",
                )),
            ),
            (
                body(&[
                    P::S(b""),
                    P::S(b""),
                    P::U16(0),
                    P::U16(0),
                    P::U16(0),
                    P::Raw(b"!"),
                ]),
                Err(malformed("Bind", TRAILING)),
            ),
            (
                body(&[P::S(b""), P::S(b""), P::U16(0), P::U16(0)]),
                Err(malformed("Bind", TRUNCATED)),
            ),
            (
                body(&[P::Raw(b"portal")]),
                Err(malformed("Bind", MISSING_NUL)),
            ),
            (
                body(&[
                    P::S(b"\xe2\x82"),
                    P::S(b""),
                    P::U16(0),
                    P::U16(0),
                    P::U16(0),
                ]),
                Err(ProtocolError::InvalidUtf8 { message: "Bind" }),
            ),
        ];
        for (input, want) in &cases {
            let got = decode_bind(input);
            assert_eq!(&got, want, "{input:?}");
            let names = decode_bind_names(input);
            match want {
                Ok(b) => assert_eq!(names, Ok((b.portal, b.statement))),
                Err(e) => assert_eq!(names.as_ref(), Err(e)),
            }
        }
    }

    #[test]
    fn bind_param_format_resolution() {
        let bind = |param_formats: Vec<i16>| Bind {
            portal: "",
            statement: "",
            param_formats,
            params: vec![None, None],
            result_formats: vec![],
        };
        let cases = [
            (vec![], 0, Some(0)),
            (vec![1], 1, Some(1)),
            (vec![0, 1], 1, Some(1)),
            (vec![1, 0], 0, Some(1)),
            (vec![1], 2, None),
        ];
        for (formats, index, want) in cases {
            assert_eq!(
                bind(formats.clone()).param_format(index),
                want,
                "{formats:?} {index}"
            );
        }
    }

    #[test]
    fn execute_table() {
        let cases: Vec<(Vec<u8>, Result<Execute, ProtocolError>)> = vec![
            (
                body(&[P::S(b"p"), P::I32(0)]),
                Ok(Execute {
                    portal: "p",
                    max_rows: 0,
                }),
            ),
            (
                body(&[P::S(b""), P::I32(-5)]),
                Ok(Execute {
                    portal: "",
                    max_rows: -5,
                }),
            ),
            (
                body(&[P::S(b"p"), P::I16(0)]),
                Err(malformed("Execute", TRUNCATED)),
            ),
            (
                body(&[P::S(b"p"), P::I32(0), P::Raw(b"\0")]),
                Err(malformed("Execute", TRAILING)),
            ),
            (
                body(&[P::Raw(b"p")]),
                Err(malformed("Execute", MISSING_NUL)),
            ),
        ];
        for (input, want) in &cases {
            assert_eq!(&decode_execute(input), want, "{input:?}");
        }
    }

    #[test]
    fn close_and_describe_table() {
        type Case<'a> = (&'a [u8], Result<(Target, &'a str), &'static str>);
        let cases: &[Case] = &[
            (b"Ss1\0", Ok((Target::Statement, "s1"))),
            (b"P\0", Ok((Target::Portal, ""))),
            (b"Xs1\0", Err("target is neither 'S' nor 'P'")),
            (b"s\0", Err("target is neither 'S' nor 'P'")),
            (b"", Err(TRUNCATED)),
            (b"S", Err(MISSING_NUL)),
            (b"Ss1", Err(MISSING_NUL)),
            (b"Ss1\0\0", Err(TRAILING)),
        ];
        for (input, want) in cases {
            for (decode, name) in [
                (
                    decode_close as fn(&[u8]) -> Result<Close<'_>, ProtocolError>,
                    "Close",
                ),
                (decode_describe, "Describe"),
            ] {
                let want = want
                    .map(|(target, n)| Close { target, name: n })
                    .map_err(|reason| malformed(name, reason));
                assert_eq!(decode(input), want, "{name} {input:?}");
            }
        }
        assert_eq!(
            decode_close(b"S\xff\0"),
            Err(ProtocolError::InvalidUtf8 { message: "Close" })
        );
    }

    #[test]
    fn function_call_table() {
        let cases: Vec<(Vec<u8>, Result<u32, ProtocolError>)> = vec![
            (
                body(&[
                    P::I32(1598),
                    P::U16(1),
                    P::I16(1),
                    P::U16(2),
                    P::I32(1),
                    P::Raw(b"x"),
                    P::I32(-1),
                    P::I16(0),
                ]),
                Ok(1598),
            ),
            (body(&[P::I32(7), P::U16(0), P::U16(0), P::I16(1)]), Ok(7)),
            (
                body(&[P::I32(7), P::U16(0), P::U16(0)]),
                Err(malformed("FunctionCall", TRUNCATED)),
            ),
            (
                body(&[P::I32(7), P::U16(0), P::U16(0), P::I16(1), P::Raw(b"z")]),
                Err(malformed("FunctionCall", TRAILING)),
            ),
            (
                body(&[P::I32(7), P::U16(0), P::U16(1), P::I32(-3), P::I16(0)]),
                Err(malformed(
                    "FunctionCall",
                    "value length is negative but not -1 (NULL)",
                )),
            ),
            (
                body(&[
                    P::I32(7),
                    P::U16(2),
                    P::I16(0),
                    P::I16(0),
                    P::U16(0),
                    P::I16(0),
                ]),
                Err(malformed(
                    "FunctionCall",
                    "argument format count is neither 0, 1 nor the argument count",
                )),
            ),
            (
                body(&[P::Raw(&[0, 0, 1])]),
                Err(malformed("FunctionCall", TRUNCATED)),
            ),
        ];
        for (input, want) in &cases {
            assert_eq!(&decode_function_call(input), want, "{input:?}");
        }
    }

    #[test]
    fn every_prefix_of_valid_bodies_is_rejected() {
        type Decode = fn(&[u8]) -> bool;
        let cases: Vec<(Vec<u8>, Decode)> = vec![
            (b"select 1\0".to_vec(), |b| decode_query(b).is_ok()),
            (
                body(&[P::S(b"s"), P::S(b"q"), P::U16(1), P::I32(23)]),
                |b| decode_parse(b).is_ok(),
            ),
            (
                body(&[
                    P::S(b"p"),
                    P::S(b"s"),
                    P::U16(0),
                    P::U16(1),
                    P::I32(1),
                    P::Raw(b"1"),
                    P::U16(0),
                ]),
                |b| decode_bind(b).is_ok() || decode_bind_names(b).is_ok(),
            ),
            (body(&[P::S(b"p"), P::I32(0)]), |b| {
                decode_execute(b).is_ok()
            }),
            (b"Sname\0".to_vec(), |b| {
                decode_close(b).is_ok() || decode_describe(b).is_ok()
            }),
            (body(&[P::I32(1), P::U16(0), P::U16(0), P::I16(0)]), |b| {
                decode_function_call(b).is_ok()
            }),
            (b"why\0".to_vec(), |b| decode_copy_fail(b).is_ok()),
        ];
        for (full, accepts) in &cases {
            assert!(accepts(full), "full {full:?}");
            for cut in 0..full.len() {
                assert!(!accepts(&full[..cut]), "prefix {:?}", &full[..cut]);
            }
        }
    }

    #[test]
    fn encoders_round_trip() {
        let (t, b) = frame(|buf| encode_query(buf, "select 'ä'"));
        assert_eq!((t, decode_query(&b)), (tag::QUERY, Ok("select 'ä'")));

        let (t, b) = frame(|buf| encode_parse(buf, "s1", "select $1, $2", &[23, 0]));
        assert_eq!(t, tag::PARSE);
        assert_eq!(
            decode_parse(&b),
            Ok(Parse {
                name: "s1",
                query: "select $1, $2",
                param_types: vec![23, 0],
            })
        );

        let params: &[Option<&[u8]>] = &[Some(b"1"), None, Some(b"")];
        let (t, b) = frame(|buf| encode_bind(buf, "p1", "s1", params));
        assert_eq!(t, tag::BIND);
        assert_eq!(
            decode_bind(&b),
            Ok(Bind {
                portal: "p1",
                statement: "s1",
                param_formats: vec![],
                params: params.to_vec(),
                result_formats: vec![],
            })
        );
        assert_eq!(decode_bind_names(&b), Ok(("p1", "s1")));

        let (t, b) = frame(|buf| encode_execute(buf, "p1", 100));
        assert_eq!(t, tag::EXECUTE);
        assert_eq!(
            decode_execute(&b),
            Ok(Execute {
                portal: "p1",
                max_rows: 100
            })
        );

        for target in [Target::Statement, Target::Portal] {
            let (t, b) = frame(|buf| encode_close(buf, target, "n"));
            assert_eq!(
                (t, decode_close(&b)),
                (tag::CLOSE, Ok(Close { target, name: "n" }))
            );
            let (t, b) = frame(|buf| encode_describe(buf, target, "n"));
            assert_eq!(
                (t, decode_describe(&b)),
                (tag::DESCRIBE, Ok(Close { target, name: "n" }))
            );
        }

        for (encode, want) in [
            (encode_sync as fn(&mut BytesMut), tag::SYNC),
            (encode_flush, tag::FLUSH),
            (encode_terminate, tag::TERMINATE),
        ] {
            assert_eq!(frame(encode), (want, vec![]));
        }
    }

    #[test]
    fn encoders_append_without_disturbing_earlier_messages() {
        let mut buf = BytesMut::new();
        encode_parse(&mut buf, "", "select 1", &[]);
        encode_bind(&mut buf, "", "", &[]);
        encode_execute(&mut buf, "", 0);
        encode_sync(&mut buf);
        let mut rest: &[u8] = &buf;
        let mut tags = Vec::new();
        while let Some(msg) = split_message(rest, usize::MAX).unwrap() {
            tags.push(msg.tag);
            rest = &rest[msg.total_len()..];
        }
        assert!(rest.is_empty());
        assert_eq!(tags, [tag::PARSE, tag::BIND, tag::EXECUTE, tag::SYNC]);
    }
}
