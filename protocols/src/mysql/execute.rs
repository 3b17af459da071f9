//! The parameters of `COM_STMT_EXECUTE`, decoded for audit and policy.
//!
//! Owns the binary parameter layout: statement id, flags, NULL bitmap, the
//! optional type list and each value in its type's binary form, and a
//! compact rendering of the values for audit records. Parameters sent with
//! `COM_STMT_SEND_LONG_DATA` are not in the packet; they show up as
//! [`ParamValue::LongData`] and the caller collects their chunks itself
//! ([`crate::mysql::command::parse_send_long_data`]).
//!
//! Must never: forward, rewrite or judge the values, allocate more than the
//! packet holds, or panic on input. The proxy forwards the original packet.
//!
//! # What the caller tracks per statement
//!
//! - the parameter count, from `COM_STMT_PREPARE_OK`
//!   ([`crate::mysql::response::PrepareOk::num_params`]);
//! - the types last sent: a client sends them once (with the
//!   new-params-bound flag set) and may omit them on later executions of the
//!   same statement, which then reuse them; keep [`Execute::types`] when it is `Some` and pass it
//!   back as `bound_types`;
//! - which parameters got `COM_STMT_SEND_LONG_DATA` since the last execute
//!   or `COM_STMT_RESET`.
//!
//! MariaDB clients may send statement id `0xFFFFFFFF`, meaning "the
//! statement prepared just before" (used to pipeline prepare and execute);
//! it is returned as it is and the caller resolves it.

use std::fmt::Write as _;

use super::command::COM_STMT_EXECUTE;
use super::response::{truncate_str, types};
use super::Reader;
use crate::ProtocolError;

/// The statement id MariaDB uses for "the statement just prepared".
pub const LAST_PREPARED_STMT_ID: u32 = u32::MAX;
/// Flag of a parameter type: the integer is unsigned.
pub const UNSIGNED_PARAM: u8 = 0x80;
/// Longest rendering of one value in [`render_params`], in chars: enough to
/// recognise a value in an audit record without copying large ones into it.
pub const RENDER_VALUE_MAX: usize = 64;

const EXECUTE: &str = "COM_STMT_EXECUTE";
const NO_TYPES: &str = "no parameter types";
const FEW_TYPES: &str = "fewer bound parameter types than parameters";
const UNKNOWN_TYPE: &str = "parameter type has no binary layout";
const BAD_TEMPORAL: &str = "date/time value has an invalid length";

/// One parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Strings, decimals, blobs, JSON, BIT, … as sent (client charset).
    Bytes(Vec<u8>),
    /// Dates and times rendered like MySQL literals, e.g.
    /// `2024-01-02 03:04:05.000006` or `-1 02:03:04`.
    Text(String),
    /// The value was sent with `COM_STMT_SEND_LONG_DATA`.
    LongData,
}

/// A decoded `COM_STMT_EXECUTE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Execute {
    pub stmt_id: u32,
    /// Cursor flags (`CURSOR_TYPE_READ_ONLY` = 1, …).
    pub flags: u8,
    /// Always 1 in practice.
    pub iterations: u32,
    /// `(type, unsigned)` per parameter, when this packet sent them
    /// (new-params-bound flag set); None when it reused earlier ones.
    pub types: Option<Vec<(u8, bool)>>,
    pub params: Vec<ParamValue>,
}

/// Decodes `COM_STMT_EXECUTE` (payload with its 0x17 command byte).
///
/// `num_params` is the statement's parameter count; `bound_types` the types
/// of an earlier execution, used when this one sends none; `long_data[i]`
/// is true for parameters sent with `COM_STMT_SEND_LONG_DATA` (missing
/// entries count as false), which have no value in the packet.
///
/// Layout: statement id (4), flags (1), iteration count (4) and, when there
/// are parameters: NULL bitmap (`(n + 7) / 8` bytes), new-params-bound flag
/// (1), `n` × (type, flags) when that flag is set, then the values of the
/// parameters that are neither NULL nor long data. Bytes after the last
/// value are ignored, as the server ignores them.
///
/// Nothing is sized from the packet: the type list is read only after
/// checking that it fits, and each value is copied from bytes present.
pub fn parse_execute(
    payload: &[u8],
    num_params: usize,
    bound_types: Option<&[(u8, bool)]>,
    long_data: &[bool],
) -> Result<Execute, ProtocolError> {
    let mut r = Reader::new(payload, EXECUTE);
    r.expect(COM_STMT_EXECUTE)?;
    let mut exec = Execute {
        stmt_id: r.u32()?,
        flags: r.u8()?,
        iterations: r.u32()?,
        types: None,
        params: Vec::new(),
    };
    if num_params == 0 {
        return Ok(exec);
    }
    let bitmap = r.bytes(num_params.saturating_add(7) / 8)?;
    if r.u8()? != 0 {
        if num_params.saturating_mul(2) > r.remaining() {
            return Err(r.malformed(super::TRUNCATED));
        }
        let mut sent = Vec::with_capacity(num_params);
        for _ in 0..num_params {
            let t = r.u8()?;
            let flags = r.u8()?;
            sent.push((t, flags & UNSIGNED_PARAM != 0));
        }
        exec.types = Some(sent);
    }
    let types = match (&exec.types, bound_types) {
        (Some(sent), _) => sent.as_slice(),
        (None, Some(bound)) if bound.len() >= num_params => bound,
        (None, Some(_)) => return Err(r.malformed(FEW_TYPES)),
        (None, None) => return Err(r.malformed(NO_TYPES)),
    };
    // NULL and long-data parameters take no bytes, so the count is bounded
    // by the bitmap (8 per byte of the packet), not by the values.
    let mut params = Vec::with_capacity(num_params.min(r.remaining().saturating_add(8)));
    for (i, &(t, unsigned)) in types.iter().take(num_params).enumerate() {
        let null = bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
        params.push(if null {
            ParamValue::Null
        } else if long_data.get(i).copied().unwrap_or(false) {
            ParamValue::LongData
        } else {
            param_value(&mut r, t, unsigned)?
        });
    }
    exec.params = params;
    Ok(exec)
}

/// One non-NULL value of type `t`.
fn param_value(r: &mut Reader<'_>, t: u8, unsigned: bool) -> Result<ParamValue, ProtocolError> {
    let int = |signed: i64, raw: u64| {
        if unsigned {
            ParamValue::UInt(raw)
        } else {
            ParamValue::Int(signed)
        }
    };
    Ok(match t {
        types::NULL => ParamValue::Null,
        types::TINY => {
            let v = r.u8()?;
            int(i64::from(v as i8), u64::from(v))
        }
        types::SHORT | types::YEAR => {
            let v = r.u16()?;
            int(i64::from(v as i16), u64::from(v))
        }
        types::LONG | types::INT24 => {
            let v = r.u32()?;
            int(i64::from(v as i32), u64::from(v))
        }
        types::LONGLONG => {
            let v = r.u64()?;
            int(v as i64, v)
        }
        types::FLOAT => ParamValue::Float(f64::from(f32::from_bits(r.u32()?))),
        types::DOUBLE => ParamValue::Float(f64::from_bits(r.u64()?)),
        types::TIME | types::TIME2 => {
            let len = r.u8()?;
            let packed = r.bytes(usize::from(len))?;
            ParamValue::Text(render_time(packed).ok_or_else(|| r.malformed(BAD_TEMPORAL))?)
        }
        types::DATE
        | types::NEWDATE
        | types::DATETIME
        | types::DATETIME2
        | types::TIMESTAMP
        | types::TIMESTAMP2 => {
            let len = r.u8()?;
            let packed = r.bytes(usize::from(len))?;
            let date_only = matches!(t, types::DATE | types::NEWDATE);
            ParamValue::Text(
                render_datetime(packed, date_only).ok_or_else(|| r.malformed(BAD_TEMPORAL))?,
            )
        }
        _ => match types::binary_width(t) {
            Some(types::BinaryWidth::LenEnc) => ParamValue::Bytes(r.lenenc_bytes()?.to_vec()),
            _ => return Err(r.malformed(UNKNOWN_TYPE)),
        },
    })
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_le_bytes([x, y]),
        _ => 0,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, c, d, e]) => u32::from_le_bytes([a, c, d, e]),
        _ => 0,
    }
}

fn byte_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// A packed DATE/DATETIME/TIMESTAMP (0, 4, 7 or 11 bytes: year (2), month,
/// day, hour, minute, second, microseconds (4)) as a MySQL literal. A DATE
/// that carries no time fields renders without them.
fn render_datetime(b: &[u8], date_only: bool) -> Option<String> {
    if !matches!(b.len(), 0 | 4 | 7 | 11) {
        return None;
    }
    let mut s = format!(
        "{:04}-{:02}-{:02}",
        u16_at(b, 0),
        byte_at(b, 2),
        byte_at(b, 3)
    );
    if !date_only || b.len() >= 7 {
        let _ = write!(
            s,
            " {:02}:{:02}:{:02}",
            byte_at(b, 4),
            byte_at(b, 5),
            byte_at(b, 6)
        );
    }
    if b.len() == 11 {
        let _ = write!(s, ".{:06}", u32_at(b, 7));
    }
    Some(s)
}

/// A packed TIME (0, 8 or 12 bytes: negative flag, days (4), hour, minute,
/// second, microseconds (4)) as a MySQL literal, e.g. `-1 02:03:04`.
fn render_time(b: &[u8]) -> Option<String> {
    if !matches!(b.len(), 0 | 8 | 12) {
        return None;
    }
    let mut s = String::new();
    if byte_at(b, 0) == 1 {
        s.push('-');
    }
    let days = u32_at(b, 1);
    if days != 0 {
        let _ = write!(s, "{days} ");
    }
    let _ = write!(
        s,
        "{:02}:{:02}:{:02}",
        byte_at(b, 5),
        byte_at(b, 6),
        byte_at(b, 7)
    );
    if b.len() == 12 {
        let _ = write!(s, ".{:06}", u32_at(b, 8));
    }
    Some(s)
}

/// Appends `bytes` as a quoted SQL-like string: lossy UTF-8, `'` doubled,
/// `\` doubled, control characters as `\xNN`, cut after
/// [`RENDER_VALUE_MAX`] chars with `…`. Only a bounded prefix of the value
/// is converted, so a 1 GiB blob costs no more than a short string.
fn push_quoted(out: &mut String, bytes: &[u8]) {
    let prefix = bytes.get(..RENDER_VALUE_MAX * 4).unwrap_or(bytes);
    let text = String::from_utf8_lossy(prefix);
    out.push('\'');
    let mut cut = prefix.len() < bytes.len();
    for (i, c) in text.chars().enumerate() {
        if i == RENDER_VALUE_MAX {
            cut = true;
            break;
        }
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() && u32::from(c) <= 0xFF => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    if cut {
        out.push('…');
    }
    out.push('\'');
}

fn push_value(out: &mut String, value: &ParamValue) {
    match value {
        ParamValue::Null => out.push_str("NULL"),
        ParamValue::Int(v) => {
            let _ = write!(out, "{v}");
        }
        ParamValue::UInt(v) => {
            let _ = write!(out, "{v}");
        }
        ParamValue::Float(v) => {
            let _ = write!(out, "{v}");
        }
        // Binary data (not UTF-8) as a hex literal, so the audit keeps
        // every byte instead of replacement characters.
        ParamValue::Bytes(b) if std::str::from_utf8(b).is_err() => {
            out.push_str("x'");
            for byte in b.iter().take(RENDER_VALUE_MAX / 2) {
                let _ = write!(out, "{byte:02x}");
            }
            if b.len() > RENDER_VALUE_MAX / 2 {
                out.push('…');
            }
            out.push('\'');
        }
        ParamValue::Bytes(b) => push_quoted(out, b),
        ParamValue::Text(t) => push_quoted(out, t.as_bytes()),
        ParamValue::LongData => out.push_str("<long data>"),
    }
}

/// A compact rendering of parameter values for audit records, e.g.
/// `[1, 'abc', NULL, 3.5, x'00ff', <long data>]`: strings quoted and
/// escaped (bytes that are not UTF-8 as a hex literal) so the
/// record stays one line and unambiguous, each value cut at
/// [`RENDER_VALUE_MAX`] chars, and the whole at most `max_len` bytes,
/// ending with `…` when cut.
pub fn render_params(params: &[ParamValue], max_len: usize) -> String {
    let mut out = String::from("[");
    for (i, value) in params.iter().enumerate() {
        if out.len() > max_len {
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        push_value(&mut out, value);
    }
    out.push(']');
    if out.len() <= max_len {
        return out;
    }
    const ELLIPSIS: &str = "…";
    if max_len < ELLIPSIS.len() {
        return truncate_str(&out, max_len).to_owned();
    }
    let keep = truncate_str(&out, max_len - ELLIPSIS.len()).len();
    out.truncate(keep);
    out.push_str(ELLIPSIS);
    out
}

#[cfg(test)]
mod tests {
    use super::types::*;
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A `COM_STMT_EXECUTE` that MariaDB 10.11 accepted and echoed back
    /// (see the binary row test in `rows`): 8 parameters of `select ?, …`,
    /// #2 NULL, #7 sent as long data.
    const EXECUTE_8: &str = "1702000000000100000004010800fd00060005000c000b000180fc002a00000000000000036162630000000000000c400be807010203040506000000080101000000020304ff";

    fn captured_types() -> Vec<(u8, bool)> {
        vec![
            (LONGLONG, false),
            (VAR_STRING, false),
            (NULL, false),
            (DOUBLE, false),
            (DATETIME, false),
            (TIME, false),
            (TINY, true),
            (BLOB, false),
        ]
    }

    fn captured_params() -> Vec<ParamValue> {
        vec![
            ParamValue::Int(42),
            ParamValue::Bytes(b"abc".to_vec()),
            ParamValue::Null,
            ParamValue::Float(3.5),
            ParamValue::Text("2024-01-02 03:04:05.000006".into()),
            ParamValue::Text("-1 02:03:04".into()),
            ParamValue::UInt(255),
            ParamValue::LongData,
        ]
    }

    #[test]
    fn captured_execute() {
        let payload = hex(EXECUTE_8);
        let long = [false, false, false, false, false, false, false, true];
        let exec = parse_execute(&payload, 8, None, &long).unwrap();
        assert_eq!(
            exec,
            Execute {
                stmt_id: 2,
                flags: 0,
                iterations: 1,
                types: Some(captured_types()),
                params: captured_params(),
            }
        );
        assert_eq!(
            render_params(&exec.params, 1000),
            "[42, 'abc', NULL, 3.5, '2024-01-02 03:04:05.000006', '-1 02:03:04', 255, <long data>]"
        );
        // without the long-data mark, #7 would need a value: truncated
        assert!(parse_execute(&payload, 8, None, &[]).is_err());
        // every prefix is refused
        for cut in 0..payload.len() {
            assert!(
                parse_execute(&payload[..cut], 8, None, &long).is_err(),
                "{cut}"
            );
        }
    }

    /// Builds an execute packet re-using bound types (flag 0).
    fn rebound(nulls: u8, values: &[u8]) -> Vec<u8> {
        let mut v = vec![COM_STMT_EXECUTE, 9, 0, 0, 0, 1, 1, 0, 0, 0, nulls, 0];
        v.extend_from_slice(values);
        v
    }

    #[test]
    fn bound_types_are_reused() {
        let types = [(LONG, false), (VAR_STRING, false), (SHORT, true)];
        let payload = rebound(0b010, &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        let exec = parse_execute(&payload, 3, Some(&types), &[]).unwrap();
        assert_eq!((exec.stmt_id, exec.flags, exec.types), (9, 1, None));
        assert_eq!(
            exec.params,
            vec![
                ParamValue::Int(-2),
                ParamValue::Null,
                ParamValue::UInt(65535)
            ]
        );
        let err = |reason| ProtocolError::Malformed {
            message: EXECUTE,
            reason,
        };
        assert_eq!(parse_execute(&payload, 3, None, &[]), Err(err(NO_TYPES)));
        assert_eq!(
            parse_execute(&payload, 3, Some(&types[..2]), &[]),
            Err(err(FEW_TYPES))
        );
        // no parameters: nothing after the iteration count is read
        let exec = parse_execute(&payload, 0, None, &[]).unwrap();
        assert_eq!((exec.params.len(), exec.types), (0, None));
        // unknown type
        let payload = rebound(0, &[1]);
        assert_eq!(
            parse_execute(&payload, 1, Some(&[(100, false)]), &[]),
            Err(err(UNKNOWN_TYPE))
        );
        // MariaDB's "last prepared" id is returned as is
        let mut last = rebound(1, &[]);
        last[1..5].copy_from_slice(&LAST_PREPARED_STMT_ID.to_le_bytes());
        assert_eq!(
            parse_execute(&last, 1, Some(&types), &[]).unwrap().stmt_id,
            u32::MAX
        );
    }

    #[test]
    fn every_binary_type_decodes() {
        let cases: &[(u8, bool, &[u8], ParamValue)] = &[
            (TINY, false, &[0xFF], ParamValue::Int(-1)),
            (TINY, true, &[0xFF], ParamValue::UInt(255)),
            (SHORT, false, &[0x00, 0x80], ParamValue::Int(-32768)),
            (YEAR, true, &[0xE8, 0x07], ParamValue::UInt(2024)),
            (
                LONG,
                false,
                &[0xFF, 0xFF, 0xFF, 0x7F],
                ParamValue::Int(i32::MAX.into()),
            ),
            (
                INT24,
                true,
                &[0xFF, 0xFF, 0xFF, 0xFF],
                ParamValue::UInt(u32::MAX.into()),
            ),
            (
                LONGLONG,
                false,
                &[0, 0, 0, 0, 0, 0, 0, 0x80],
                ParamValue::Int(i64::MIN),
            ),
            (LONGLONG, true, &[0xFF; 8], ParamValue::UInt(u64::MAX)),
            (FLOAT, false, &2.5f32.to_le_bytes(), ParamValue::Float(2.5)),
            (
                DOUBLE,
                false,
                &(-0.125f64).to_le_bytes(),
                ParamValue::Float(-0.125),
            ),
            (NULL, false, &[], ParamValue::Null),
            (
                DATE,
                false,
                &[4, 0xE8, 0x07, 1, 2],
                ParamValue::Text("2024-01-02".into()),
            ),
            (DATE, false, &[0], ParamValue::Text("0000-00-00".into())),
            (
                DATETIME,
                false,
                &[0],
                ParamValue::Text("0000-00-00 00:00:00".into()),
            ),
            (
                DATETIME,
                false,
                &[4, 0xE8, 0x07, 1, 2],
                ParamValue::Text("2024-01-02 00:00:00".into()),
            ),
            (
                TIMESTAMP,
                false,
                &[7, 0xE8, 0x07, 12, 31, 23, 59, 58],
                ParamValue::Text("2024-12-31 23:59:58".into()),
            ),
            (TIME, false, &[0], ParamValue::Text("00:00:00".into())),
            (
                TIME,
                false,
                &[8, 0, 0, 0, 0, 0, 1, 2, 3],
                ParamValue::Text("01:02:03".into()),
            ),
            (
                TIME,
                false,
                &[12, 0, 2, 0, 0, 0, 1, 2, 3, 7, 0, 0, 0],
                ParamValue::Text("2 01:02:03.000007".into()),
            ),
            (
                NEWDECIMAL,
                false,
                &[4, b'1', b'.', b'2', b'5'],
                ParamValue::Bytes(b"1.25".to_vec()),
            ),
            (
                STRING,
                false,
                &[0xFC, 0x01, 0x00, b'x'],
                ParamValue::Bytes(b"x".to_vec()),
            ),
            (
                JSON,
                false,
                &[2, b'{', b'}'],
                ParamValue::Bytes(b"{}".to_vec()),
            ),
        ];
        for (t, unsigned, value, want) in cases {
            let mut payload = vec![COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, *t];
            payload.push(if *unsigned { UNSIGNED_PARAM } else { 0 });
            payload.extend_from_slice(value);
            let exec = parse_execute(&payload, 1, None, &[]).unwrap();
            assert_eq!(exec.params, vec![want.clone()], "type {t}");
        }
        // invalid temporal lengths
        for (t, value) in [(DATETIME, &[5u8, 0, 0, 0, 0, 0][..]), (TIME, &[3, 0, 0, 0])] {
            let mut payload = vec![COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, t, 0];
            payload.extend_from_slice(value);
            assert!(parse_execute(&payload, 1, None, &[]).is_err());
        }
    }

    #[test]
    fn forged_counts_allocate_nothing_big() {
        // 65535 parameters claimed, a few bytes sent: refused at the bitmap
        let payload = [COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0xFF];
        assert!(parse_execute(&payload, 65535, None, &[]).is_err());
        // a bitmap that fits but a type list that does not
        let mut payload = vec![COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        payload.extend_from_slice(&[0; 2]);
        payload.push(1);
        payload.extend_from_slice(&[TINY, 0, TINY]);
        assert!(parse_execute(&payload, 16, None, &[]).is_err());
        // all NULL: 16 params from 2 bitmap bytes is fine
        let mut payload = vec![COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0xFF, 0];
        payload.extend_from_slice(b"ignored trailing bytes");
        let exec = parse_execute(&payload, 16, Some(&[(LONG, false); 16]), &[]).unwrap();
        assert_eq!(exec.params, vec![ParamValue::Null; 16]);
    }

    #[test]
    fn render_escapes_and_bounds() {
        let cases: &[(&[ParamValue], usize, &str)] = &[
            (&[], 10, "[]"),
            (&[ParamValue::Bytes(b"it's".to_vec())], 100, "['it''s']"),
            (
                &[ParamValue::Bytes(b"a\\b\n\x00".to_vec())],
                100,
                "['a\\\\b\\x0a\\x00']",
            ),
            (&[ParamValue::Bytes(b"\xff\xfe".to_vec())], 100, "[x'fffe']"),
            (
                &[ParamValue::Bytes("中文".as_bytes().to_vec())],
                100,
                "['中文']",
            ),
            (
                &[
                    ParamValue::Int(-1),
                    ParamValue::UInt(2),
                    ParamValue::Float(0.5),
                ],
                100,
                "[-1, 2, 0.5]",
            ),
            (
                &[ParamValue::Int(12345), ParamValue::Int(67890)],
                10,
                "[12345,…",
            ),
            (
                &[ParamValue::Null, ParamValue::LongData],
                1000,
                "[NULL, <long data>]",
            ),
            (&[ParamValue::Int(1)], 3, "[1]"),
            (&[ParamValue::Int(12)], 3, "…"),
            (&[ParamValue::Int(12)], 2, "[1"),
            (&[ParamValue::Int(12)], 0, ""),
        ];
        for (params, max, want) in cases {
            let got = render_params(params, *max);
            assert_eq!(got, *want, "{params:?} max {max}");
            assert!(got.len() <= *max);
        }
        // one long value is cut at RENDER_VALUE_MAX chars
        let long = render_params(&[ParamValue::Bytes(vec![b'x'; 10_000])], 1000);
        assert_eq!(long, format!("['{}…']", "x".repeat(RENDER_VALUE_MAX)));
        let exact = render_params(&[ParamValue::Bytes(vec![b'y'; RENDER_VALUE_MAX])], 1000);
        assert_eq!(exact, format!("['{}']", "y".repeat(RENDER_VALUE_MAX)));
        // many values: bounded, cut on a char boundary
        let many = vec![ParamValue::Bytes("é".repeat(100).into_bytes()); 1000];
        for max in [50, 51, 52, 53, 4096] {
            let got = render_params(&many, max);
            assert!(got.len() <= max && got.ends_with('…'), "{max}: {got}");
        }
    }

    #[test]
    fn binary_parameters_render_as_hex() {
        let p = [
            ParamValue::Bytes(vec![0x00, 0xff]),
            ParamValue::Bytes(b"ok".to_vec()),
        ];
        assert_eq!(render_params(&p, 100), "[x'00ff', 'ok']");
    }
}
