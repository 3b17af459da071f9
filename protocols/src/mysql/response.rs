//! Server replies: OK, ERR, EOF, column definitions, `COM_STMT_PREPARE`'s
//! answer, `LOCAL INFILE` requests and session-state tracking, plus the
//! length-encoded integers and strings every one of them is built from.
//!
//! Owns the layouts the proxy needs to follow a command's response to its
//! end (status flags, "more results" and the terminators of result sets),
//! to learn the shape of result sets (column types and charsets, for masking
//! and for binary rows), and the few replies the proxy writes itself (a
//! denial is an ERR, a swallowed command an OK).
//!
//! Must never: judge what a reply means for policy, or panic on input.
//! Decoders take the payload (after the 4-byte frame header); encoders write
//! whole framed packets, since the proxy sends them as they are.

use bytes::{BufMut, BytesMut};

use super::caps::{
    CLIENT_DEPRECATE_EOF, CLIENT_PROTOCOL_41, CLIENT_SESSION_TRACK, CLIENT_TRANSACTIONS,
};
use super::packet::{begin_frame, finish_frame, MAX_FRAME};
use super::status::SERVER_SESSION_STATE_CHANGED;
use super::Reader;
use crate::ProtocolError;

pub use types::{binary_width, is_string_type, BinaryWidth};

/// First byte of an OK packet.
pub const OK_HEADER: u8 = 0x00;
/// First byte of an EOF packet, and of the OK packet that ends a result set
/// when `CLIENT_DEPRECATE_EOF` is on.
pub const EOF_HEADER: u8 = 0xFE;
/// First byte of an ERR packet.
pub const ERR_HEADER: u8 = 0xFF;
/// First byte of a `LOCAL INFILE` request (and the NULL cell of a text row).
pub const LOCAL_INFILE_HEADER: u8 = 0xFB;

/// The error code MariaDB uses for progress reports (`MARIADB_CLIENT_PROGRESS`):
/// a 0xFF packet with this code is not an error and does not end a command.
pub const PROGRESS_REPORT_CODE: u16 = 0xFFFF;

/// The longest ERR message [`encode_err`] writes. Clients copy the message
/// into a fixed buffer (512 bytes in libmysqlclient) and cut the rest, so
/// anything longer only costs bandwidth; the bound also keeps a reply built
/// from attacker-influenced text (a rule name, a quoted value) small.
pub const MAX_ERR_MESSAGE: usize = 64 * 1024;

const OK: &str = "OK";
const ERR: &str = "ERR";
const COLUMN_DEF: &str = "column definition";
const PREPARE_OK: &str = "COM_STMT_PREPARE OK";
const COLUMN_COUNT: &str = "result set header";

/// Reads a length-encoded integer: `(value, bytes consumed)`.
///
/// None for 0xFB (the NULL marker of text rows, which the caller checks
/// first where NULL is possible), 0xFF (an ERR header, never a length) and
/// input too short for the announced width.
pub fn lenenc_int(buf: &[u8]) -> Option<(u64, usize)> {
    let (&first, rest) = buf.split_first()?;
    let width = match first {
        0..=0xFA => return Some((u64::from(first), 1)),
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        0xFB | 0xFF => return None,
    };
    let bytes = rest.get(..width)?;
    let mut le = [0u8; 8];
    le.get_mut(..width)?.copy_from_slice(bytes);
    Some((u64::from_le_bytes(le), 1 + width))
}

/// Writes `v` as a length-encoded integer, in its shortest form (what
/// servers send, so that a rewritten packet matches an original one).
pub fn put_lenenc_int(out: &mut BytesMut, v: u64) {
    let le = v.to_le_bytes();
    match v {
        0..=0xFA => out.put_u8(v as u8),
        0xFB..=0xFFFF => {
            out.put_u8(0xFC);
            out.put_slice(&le[..2]);
        }
        0x1_0000..=0xFF_FFFF => {
            out.put_u8(0xFD);
            out.put_slice(&le[..3]);
        }
        _ => {
            out.put_u8(0xFE);
            out.put_slice(&le);
        }
    }
}

/// Reads a length-encoded string: `(bytes, bytes consumed)`, None when the
/// length is invalid or runs past the input. The length is checked against
/// the input before slicing, so it never drives an allocation.
pub fn lenenc_bytes(buf: &[u8]) -> Option<(&[u8], usize)> {
    let (len, used) = lenenc_int(buf)?;
    let len = usize::try_from(len).ok()?;
    let end = used.checked_add(len)?;
    Some((buf.get(used..end)?, end))
}

/// Writes a length-encoded string.
pub fn put_lenenc_bytes(out: &mut BytesMut, bytes: &[u8]) {
    put_lenenc_int(out, bytes.len() as u64);
    out.put_slice(bytes);
}

/// A decoded OK packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OkInfo<'a> {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    /// `SERVER_*` flags (see [`crate::mysql::status`]).
    pub status: u16,
    pub warnings: u16,
    /// Human-readable info ("Rows matched: 1  Changed: 1"), raw bytes.
    pub info: &'a [u8],
    /// Session-state changes, for [`session_track`]; empty unless
    /// `CLIENT_SESSION_TRACK` and `SERVER_SESSION_STATE_CHANGED`.
    pub session_state: &'a [u8],
}

/// Decodes an OK packet (header 0x00, or 0xFE for the OK that ends a result
/// set under `CLIENT_DEPRECATE_EOF`) as negotiated by `caps`.
///
/// Strict up to the status and warnings, lenient after them: servers and
/// proxies differ in whether they send an empty info string, and the
/// counters and status are what matter, so a truncated info or session-state
/// field yields empty slices instead of an error.
pub fn parse_ok(payload: &[u8], caps: u64) -> Result<OkInfo<'_>, ProtocolError> {
    let mut r = Reader::new(payload, OK);
    let header = r.u8()?;
    if header != OK_HEADER && header != EOF_HEADER {
        return Err(r.malformed(super::WRONG_HEADER));
    }
    let mut ok = OkInfo {
        affected_rows: r.lenenc_int()?,
        last_insert_id: r.lenenc_int()?,
        ..OkInfo::default()
    };
    if caps & CLIENT_PROTOCOL_41 != 0 {
        ok.status = r.u16()?;
        ok.warnings = r.u16()?;
    } else if caps & CLIENT_TRANSACTIONS != 0 {
        ok.status = r.u16()?;
    }
    if caps & CLIENT_SESSION_TRACK == 0 {
        ok.info = r.take_rest();
        return Ok(ok);
    }
    if r.is_empty() {
        return Ok(ok);
    }
    let Ok(info) = r.lenenc_bytes() else {
        return Ok(ok);
    };
    ok.info = info;
    if ok.status & SERVER_SESSION_STATE_CHANGED != 0 {
        ok.session_state = r.lenenc_bytes().unwrap_or_default();
    }
    Ok(ok)
}

/// True for a packet that ends a result set or a list of column definitions:
/// a classic EOF, or the 0xFE-headed OK that replaces it under
/// `CLIENT_DEPRECATE_EOF`.
///
/// The length test is what tells it from a row: a text row whose first
/// cell's length is encoded with the 0xFE prefix is at least 2^24 + 9
/// bytes, so any 0xFE-headed payload shorter than [`MAX_FRAME`] is a
/// terminator.
pub fn is_terminator(payload: &[u8]) -> bool {
    payload.first() == Some(&EOF_HEADER) && payload.len() < MAX_FRAME
}

/// `(warnings, status)` of a classic 5-byte EOF packet; `(0, 0)` for a
/// shorter one (the pre-4.1 EOF is the single byte 0xFE).
pub fn parse_eof(payload: &[u8]) -> (u16, u16) {
    match payload {
        [EOF_HEADER, w0, w1, s0, s1, ..] => (
            u16::from_le_bytes([*w0, *w1]),
            u16::from_le_bytes([*s0, *s1]),
        ),
        _ => (0, 0),
    }
}

/// The status flags of a terminator ([`is_terminator`]): read as a classic
/// EOF when at most 5 bytes long, else as an OK packet; 0 when it cannot be
/// decoded.
pub fn terminator_status(payload: &[u8], caps: u64) -> u16 {
    if payload.len() <= 5 {
        parse_eof(payload).1
    } else {
        parse_ok(payload, caps).map_or(0, |ok| ok.status)
    }
}

/// A decoded ERR packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrInfo<'a> {
    pub code: u16,
    /// The 5-byte SQLSTATE, absent in errors sent before protocol 4.1 is
    /// agreed (during the handshake) and from some old servers.
    pub sqlstate: Option<&'a [u8]>,
    /// The message in the connection's charset.
    pub message: &'a [u8],
}

/// Decodes an ERR packet: 0xFF, error code, optional `#` + SQLSTATE, message.
pub fn parse_err(payload: &[u8]) -> Result<ErrInfo<'_>, ProtocolError> {
    let mut r = Reader::new(payload, ERR);
    r.expect(ERR_HEADER)?;
    let code = r.u16()?;
    let sqlstate = match r.peek_rest() {
        [b'#', state @ ..] if state.len() >= 5 => {
            r.bytes(1)?;
            Some(r.bytes(5)?)
        }
        _ => None,
    };
    Ok(ErrInfo {
        code,
        sqlstate,
        message: r.take_rest(),
    })
}

/// True for a MariaDB progress report: a 0xFF packet with code 0xFFFF that
/// the server interleaves with a long command's response when the client
/// asked for `MARIADB_CLIENT_PROGRESS`. It is not an error and does not end
/// the command.
pub fn is_progress_report(payload: &[u8]) -> bool {
    matches!(payload, [ERR_HEADER, 0xFF, 0xFF, ..])
}

/// Writes a whole framed ERR packet. The SQLSTATE is forced to 5 ASCII
/// alphanumerics (cut, padded with `0`, other bytes replaced by `0`) because
/// clients read exactly 5 bytes after `#`, and the message is cut at
/// [`MAX_ERR_MESSAGE`] bytes on a char boundary.
pub fn encode_err(out: &mut BytesMut, seq: u8, code: u16, sqlstate: &str, message: &str) {
    let mut state = [b'0'; 5];
    for (slot, b) in state.iter_mut().zip(sqlstate.bytes()) {
        if b.is_ascii_alphanumeric() {
            *slot = b;
        }
    }
    let start = begin_frame(out);
    out.put_u8(ERR_HEADER);
    out.put_u16_le(code);
    out.put_u8(b'#');
    out.put_slice(&state);
    out.put_slice(truncate_str(message, MAX_ERR_MESSAGE).as_bytes());
    finish_frame(out, start, seq);
}

/// `s` cut to at most `max` bytes, on a char boundary.
pub(crate) fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Writes the status/warnings (as negotiated) and, under
/// `CLIENT_SESSION_TRACK`, an empty info string. The session-state flag is
/// cleared: these packets carry no session state, and a set flag would make
/// the client look for it.
fn put_ok_tail(out: &mut BytesMut, caps: u64, status: u16, warnings: u16) {
    let status = status & !SERVER_SESSION_STATE_CHANGED;
    if caps & CLIENT_PROTOCOL_41 != 0 {
        out.put_u16_le(status);
        out.put_u16_le(warnings);
    } else if caps & CLIENT_TRANSACTIONS != 0 {
        out.put_u16_le(status);
    }
    if caps & CLIENT_SESSION_TRACK != 0 {
        put_lenenc_int(out, 0);
    }
}

/// Writes a whole framed OK packet (header 0x00), laid out for `caps`.
pub fn encode_ok(
    out: &mut BytesMut,
    seq: u8,
    caps: u64,
    affected_rows: u64,
    last_insert_id: u64,
    status: u16,
    warnings: u16,
) {
    let start = begin_frame(out);
    out.put_u8(OK_HEADER);
    put_lenenc_int(out, affected_rows);
    put_lenenc_int(out, last_insert_id);
    put_ok_tail(out, caps, status, warnings);
    finish_frame(out, start, seq);
}

/// Writes the whole framed packet that ends a result set or a list of
/// column definitions: a classic EOF (0xFE, warnings, status), or under
/// `CLIENT_DEPRECATE_EOF` a 0xFE-headed OK packet (which is what clients
/// then expect at the end of the rows).
pub fn encode_eof_or_ok_terminator(
    out: &mut BytesMut,
    seq: u8,
    caps: u64,
    status: u16,
    warnings: u16,
) {
    let start = begin_frame(out);
    out.put_u8(EOF_HEADER);
    if caps & CLIENT_DEPRECATE_EOF != 0 {
        put_lenenc_int(out, 0);
        put_lenenc_int(out, 0);
        put_ok_tail(out, caps, status, warnings);
    } else {
        out.put_u16_le(warnings);
        out.put_u16_le(status & !SERVER_SESSION_STATE_CHANGED);
    }
    finish_frame(out, start, seq);
}

/// The column count that starts a result set (a length-encoded integer).
///
/// Trailing bytes are ignored: MySQL adds a metadata-follows byte under
/// `CLIENT_OPTIONAL_RESULTSET_METADATA` and MariaDB one under
/// `MARIADB_CLIENT_CACHE_METADATA` (see [`crate::mysql::caps::UNSUPPORTED`]).
/// The count comes from the server; the caller should still bound it before
/// sizing anything from it.
pub fn parse_column_count(payload: &[u8]) -> Result<u64, ProtocolError> {
    Reader::new(payload, COLUMN_COUNT).lenenc_int()
}

/// One column of a result set (`ColumnDefinition41`), names owned because
/// the caller keeps them for the rows that follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnDef {
    pub schema: Box<[u8]>,
    /// Table alias as written in the query.
    pub table: Box<[u8]>,
    /// The real table, empty for computed columns.
    pub org_table: Box<[u8]>,
    /// Column alias as written in the query.
    pub name: Box<[u8]>,
    /// The real column, empty for computed columns.
    pub org_name: Box<[u8]>,
    /// Collation id of the values (see [`crate::mysql::charset`]); 63 is
    /// `binary`.
    pub charset: u16,
    /// Maximum display length.
    pub length: u32,
    /// One of [`types`].
    pub column_type: u8,
    pub flags: u16,
    pub decimals: u8,
}

/// Column definition flag: the integer column is unsigned.
pub const UNSIGNED_FLAG: u16 = 0x20;
/// Column definition flag: binary string/collation.
pub const BINARY_FLAG: u16 = 0x80;

/// The fixed-length part after the names: `lenenc` 0x0C then charset (2),
/// length (4), type (1), flags (2), decimals (1), filler (2).
const FIXED_LEN: u64 = 0x0C;

/// Reads the fixed-length fields after the names, starting at their
/// `lenenc` length. The length must be at least 0x0C; the filler and
/// anything after it (the default values of `COM_FIELD_LIST`) are ignored.
fn fixed_fields(r: &mut Reader<'_>) -> Result<(u16, u32, u8, u16, u8), ProtocolError> {
    if r.lenenc_int()? < FIXED_LEN {
        return Err(r.malformed("fixed-length fields are shorter than 12 bytes"));
    }
    Ok((r.u16()?, r.u32()?, r.u8()?, r.u16()?, r.u8()?))
}

fn column_def(payload: &[u8], extended: bool) -> Result<ColumnDef, ProtocolError> {
    let mut r = Reader::new(payload, COLUMN_DEF);
    let _catalog = r.lenenc_bytes()?;
    let schema = r.lenenc_bytes()?;
    let table = r.lenenc_bytes()?;
    let org_table = r.lenenc_bytes()?;
    let name = r.lenenc_bytes()?;
    let org_name = r.lenenc_bytes()?;
    if extended {
        let _extended_info = r.lenenc_bytes()?;
    }
    let (charset, length, column_type, flags, decimals) = fixed_fields(&mut r)?;
    Ok(ColumnDef {
        schema: schema.into(),
        table: table.into(),
        org_table: org_table.into(),
        name: name.into(),
        org_name: org_name.into(),
        charset,
        length,
        column_type,
        flags,
        decimals,
    })
}

/// Decodes a `ColumnDefinition41` packet: `lenenc` catalog (`def`), schema,
/// table, org_table, name, org_name, then the fixed-length fields.
///
/// For a connection where `MARIADB_CLIENT_EXTENDED_METADATA` was agreed,
/// use [`parse_column_def_ext`]: the layout differs and nothing in the
/// packet itself says which one it is.
pub fn parse_column_def(payload: &[u8]) -> Result<ColumnDef, ProtocolError> {
    column_def(payload, false)
}

/// [`parse_column_def`] for the capabilities of the connection: under
/// `MARIADB_CLIENT_EXTENDED_METADATA` a `lenenc` block of extended type
/// info (e.g. `json`, `point`) sits between org_name and the fixed fields.
pub fn parse_column_def_ext(payload: &[u8], caps: u64) -> Result<ColumnDef, ProtocolError> {
    column_def(
        payload,
        caps & super::caps::MARIADB_CLIENT_EXTENDED_METADATA != 0,
    )
}

fn type_and_charset(payload: &[u8], extended: bool) -> Result<(u8, u16, u16), ProtocolError> {
    let mut r = Reader::new(payload, COLUMN_DEF);
    for _ in 0..6 + usize::from(extended) {
        r.lenenc_bytes()?;
    }
    let (charset, _, column_type, flags, _) = fixed_fields(&mut r)?;
    Ok((column_type, charset, flags))
}

/// `(column type, collation id, flags)` of a column definition without
/// copying its names: what binary rows and masking need per column.
pub fn column_type_and_charset(payload: &[u8]) -> Result<(u8, u16, u16), ProtocolError> {
    type_and_charset(payload, false)
}

/// [`column_type_and_charset`] for the capabilities of the connection (see
/// [`parse_column_def_ext`]).
pub fn column_type_and_charset_ext(
    payload: &[u8],
    caps: u64,
) -> Result<(u8, u16, u16), ProtocolError> {
    type_and_charset(
        payload,
        caps & super::caps::MARIADB_CLIENT_EXTENDED_METADATA != 0,
    )
}

/// Appends the payload of a `ColumnDefinition41` (catalog `def`, no
/// extended metadata): for the proxy's own result sets and for tests.
pub fn put_column_def(out: &mut BytesMut, def: &ColumnDef) {
    put_lenenc_bytes(out, b"def");
    for name in [
        &def.schema,
        &def.table,
        &def.org_table,
        &def.name,
        &def.org_name,
    ] {
        put_lenenc_bytes(out, name);
    }
    put_lenenc_int(out, FIXED_LEN);
    out.put_u16_le(def.charset);
    out.put_u32_le(def.length);
    out.put_u8(def.column_type);
    out.put_u16_le(def.flags);
    out.put_u8(def.decimals);
    out.put_u16_le(0);
}

/// The first packet of a successful `COM_STMT_PREPARE` response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrepareOk {
    pub stmt_id: u32,
    /// Column definitions that follow the parameter definitions.
    pub num_columns: u16,
    /// Parameter definitions that follow this packet; also the parameter
    /// count [`crate::mysql::execute::parse_execute`] needs.
    pub num_params: u16,
    pub warnings: u16,
}

/// Decodes `COM_STMT_PREPARE_OK`: 0x00, statement id, columns, params, a
/// filler byte and the warning count, which old servers omit (0 then).
/// Anything after it (MySQL's metadata-follows byte) is ignored.
pub fn parse_prepare_ok(payload: &[u8]) -> Result<PrepareOk, ProtocolError> {
    let mut r = Reader::new(payload, PREPARE_OK);
    r.expect(OK_HEADER)?;
    let mut ok = PrepareOk {
        stmt_id: r.u32()?,
        num_columns: r.u16()?,
        num_params: r.u16()?,
        warnings: 0,
    };
    if r.u8().is_ok() {
        ok.warnings = r.u16().unwrap_or_default();
    }
    Ok(ok)
}

/// The file name of a `LOCAL INFILE` request (a 0xFB-headed reply to a
/// `LOAD DATA LOCAL` query): the server asks the client to send that file's
/// contents. None for any other packet.
pub fn local_infile_name(payload: &[u8]) -> Option<&[u8]> {
    match payload.split_first() {
        Some((&LOCAL_INFILE_HEADER, name)) => Some(name),
        _ => None,
    }
}

/// One entry of the session-state information of an OK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChange {
    /// `SESSION_TRACK_SYSTEM_VARIABLES`: a tracked variable's new value
    /// (e.g. `character_set_client`, `autocommit`).
    SystemVariable { name: String, value: String },
    /// `SESSION_TRACK_SCHEMA`: the default database changed (`USE db`).
    Schema(String),
    /// Another type (state change, GTIDs, transaction state, …), not
    /// decoded.
    Other(u8),
}

/// `SESSION_TRACK_SYSTEM_VARIABLES`.
pub const SESSION_TRACK_SYSTEM_VARIABLES: u8 = 0;
/// `SESSION_TRACK_SCHEMA`.
pub const SESSION_TRACK_SCHEMA: u8 = 1;

/// Decodes [`OkInfo::session_state`]: a sequence of (type byte, `lenenc`
/// data). Names and values are converted lossily (they are for the
/// proxy's bookkeeping, not for analysis); decoding stops at the first
/// malformed entry and returns what came before. The Vec grows with the
/// entries present (each at least 2 bytes), so it is bounded by the input.
pub fn session_track(state: &[u8]) -> Vec<SessionChange> {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut changes = Vec::new();
    let mut r = Reader::new(state, OK);
    while !r.is_empty() {
        let (Ok(kind), Ok(data)) = (r.u8(), r.lenenc_bytes()) else {
            break;
        };
        let mut d = Reader::new(data, OK);
        match kind {
            SESSION_TRACK_SYSTEM_VARIABLES => {
                // One pair per entry in practice; read all that are there.
                while !d.is_empty() {
                    let (Ok(name), Ok(value)) = (d.lenenc_bytes(), d.lenenc_bytes()) else {
                        return changes;
                    };
                    changes.push(SessionChange::SystemVariable {
                        name: lossy(name),
                        value: lossy(value),
                    });
                }
            }
            SESSION_TRACK_SCHEMA => match d.lenenc_bytes() {
                Ok(name) => changes.push(SessionChange::Schema(lossy(name))),
                Err(_) => break,
            },
            other => changes.push(SessionChange::Other(other)),
        }
    }
    changes
}

/// Column type codes (`enum_field_types`) and how each is laid out in the
/// binary protocol.
pub mod types {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    /// Internal to the server; never sent, read like DATE if it is.
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    /// Internal to the server (binlog); read like TIMESTAMP if sent.
    pub const TIMESTAMP2: u8 = 17;
    /// Internal to the server (binlog); read like DATETIME if sent.
    pub const DATETIME2: u8 = 18;
    /// Internal to the server (binlog); read like TIME if sent.
    pub const TIME2: u8 = 19;
    /// MySQL 9's VECTOR, sent like a blob.
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;

    /// Types whose values are character or byte strings: the ones a text
    /// mask can replace without breaking the client's decoding of the
    /// column (binary strings and blobs included; the collation id tells
    /// them apart).
    pub fn is_string_type(t: u8) -> bool {
        matches!(
            t,
            VARCHAR
                | VAR_STRING
                | STRING
                | ENUM
                | SET
                | TINY_BLOB
                | MEDIUM_BLOB
                | LONG_BLOB
                | BLOB
                | JSON
        )
    }

    /// How a value of a type is laid out in a binary-protocol row or in
    /// `COM_STMT_EXECUTE`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum BinaryWidth {
        /// Exactly this many bytes (integers, floats; 0 for NULL).
        Fixed(usize),
        /// A 1-byte length then that many bytes: DATE, DATETIME, TIMESTAMP,
        /// TIME (0 bytes for a zero value, up to 11 or 12).
        LengthPrefixed,
        /// A length-encoded string: strings, decimals, blobs, JSON, ENUM,
        /// SET, BIT, GEOMETRY.
        LenEnc,
    }

    /// The binary layout of type `t`, None for a code the protocol does not
    /// define (the row cannot be walked past such a column).
    pub fn binary_width(t: u8) -> Option<BinaryWidth> {
        Some(match t {
            NULL => BinaryWidth::Fixed(0),
            TINY => BinaryWidth::Fixed(1),
            SHORT | YEAR => BinaryWidth::Fixed(2),
            LONG | INT24 | FLOAT => BinaryWidth::Fixed(4),
            LONGLONG | DOUBLE => BinaryWidth::Fixed(8),
            DATE | DATETIME | TIMESTAMP | TIME | NEWDATE | TIMESTAMP2 | DATETIME2 | TIME2 => {
                BinaryWidth::LengthPrefixed
            }
            DECIMAL | NEWDECIMAL | VARCHAR | BIT | VECTOR | JSON | ENUM | SET | TINY_BLOB
            | MEDIUM_BLOB | LONG_BLOB | BLOB | VAR_STRING | STRING | GEOMETRY => {
                BinaryWidth::LenEnc
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::caps::*;
    use super::super::packet::take_packet;
    use super::super::status::*;
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Takes the single packet in `wire` and checks nothing is left.
    fn only_packet(wire: &BytesMut) -> (u8, Vec<u8>) {
        let mut buf = wire.clone();
        let p = take_packet(&mut buf, usize::MAX).unwrap().unwrap();
        assert!(buf.is_empty());
        (p.seq, p.payload.to_vec())
    }

    const CAPS: u64 = CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS;

    #[test]
    fn lenenc_int_table() {
        type Case = (&'static [u8], Option<(u64, usize)>);
        let cases: &[Case] = &[
            (&[], None),
            (&[0], Some((0, 1))),
            (&[0xFA], Some((250, 1))),
            (&[0xFB], None),
            (&[0xFF], None),
            (&[0xFC], None),
            (&[0xFC, 0xFB], None),
            (&[0xFC, 0xFB, 0x00], Some((251, 3))),
            (&[0xFD, 1, 2, 3, 9], Some((0x030201, 4))),
            (&[0xFE, 1, 2, 3, 4, 5, 6, 7], None),
            (
                &[0xFE, 1, 2, 3, 4, 5, 6, 7, 8],
                Some((0x0807060504030201, 9)),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(lenenc_int(input), *want, "{input:?}");
        }
    }

    #[test]
    fn lenenc_round_trips_in_shortest_form() {
        let cases: &[(u64, usize)] = &[
            (0, 1),
            (250, 1),
            (251, 3),
            (0xFFFF, 3),
            (0x1_0000, 4),
            (0xFF_FFFF, 4),
            (0x100_0000, 9),
            (u64::MAX, 9),
        ];
        for &(v, width) in cases {
            let mut out = BytesMut::new();
            put_lenenc_int(&mut out, v);
            assert_eq!(out.len(), width, "{v}");
            assert_eq!(lenenc_int(&out), Some((v, width)));
        }
        for s in [&b""[..], b"abc", &[0xFB; 251], &[1; 70_000]] {
            let mut out = BytesMut::new();
            put_lenenc_bytes(&mut out, s);
            out.put_slice(b"tail");
            let (got, used) = lenenc_bytes(&out).unwrap();
            assert_eq!((got, used), (s, out.len() - 4));
        }
        // lengths past the input, or past usize
        assert_eq!(lenenc_bytes(&[3, b'a', b'b']), None);
        assert_eq!(
            lenenc_bytes(&[0xFE, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(lenenc_bytes(&[0xFB]), None);
    }

    #[test]
    fn ok_packets_from_mariadb() {
        // after the handshake: status AUTOCOMMIT, no info
        let payload = hex("0000000200000000");
        let ok = parse_ok(&payload, CAPS | CLIENT_SESSION_TRACK).unwrap();
        assert_eq!(ok.status, SERVER_STATUS_AUTOCOMMIT);
        // the handshake OK as captured (7 bytes, no info at all)
        let payload = hex("00000002000000");
        let ok = parse_ok(&payload, CAPS | CLIENT_SESSION_TRACK).unwrap();
        assert_eq!(
            (ok.status, ok.info, ok.session_state),
            (2, &b""[..], &b""[..])
        );
        // COM_INIT_DB "mysql": schema change tracked
        let payload = hex("0000000240000000080106056d7973716c");
        let ok = parse_ok(&payload, CAPS | CLIENT_SESSION_TRACK).unwrap();
        assert_eq!(
            ok.status,
            SERVER_STATUS_AUTOCOMMIT | SERVER_SESSION_STATE_CHANGED
        );
        assert_eq!(ok.info, b"");
        assert_eq!(
            session_track(ok.session_state),
            vec![SessionChange::Schema("mysql".into())]
        );
        // without session tracking, the rest is info
        let payload = [&[0, 1, 5, 2, 0, 1, 0][..], b"Rows matched: 1"].concat();
        let ok = parse_ok(&payload, CAPS).unwrap();
        assert_eq!(
            ok,
            OkInfo {
                affected_rows: 1,
                last_insert_id: 5,
                status: 2,
                warnings: 1,
                info: b"Rows matched: 1",
                session_state: b"",
            }
        );
    }

    #[test]
    fn ok_is_strict_before_status_and_lenient_after() {
        let caps = CAPS | CLIENT_SESSION_TRACK;
        for bad in [
            &[][..],
            &[0x01],
            &[0xFF, 0, 0],
            &[0],
            &[0, 0],
            &[0, 0, 0, 2],
            &[0, 0, 0, 2, 0, 0],
        ] {
            assert!(parse_ok(bad, caps).is_err(), "{bad:?}");
        }
        // info announces 9 bytes but 2 are there
        let ok = parse_ok(&[0, 0, 0, 0, 0x40, 0, 0, 9, b'a', b'b'], caps).unwrap();
        assert_eq!((ok.info, ok.session_state), (&b""[..], &b""[..]));
        // session state truncated
        let ok = parse_ok(&[0, 0, 0, 0, 0x40, 0, 0, 1, b'i', 5, 1], caps).unwrap();
        assert_eq!((ok.info, ok.session_state), (&b"i"[..], &b""[..]));
        // a 0xFE-headed OK is an OK
        assert!(parse_ok(&[0xFE, 0, 0, 2, 0, 0, 0], caps).is_ok());
        // pre-4.1 layouts
        assert_eq!(
            parse_ok(&[0, 1, 0, 2, 0], CLIENT_TRANSACTIONS)
                .unwrap()
                .status,
            2
        );
        assert_eq!(parse_ok(&[0, 1, 0, b'x'], 0).unwrap().info, b"x");
    }

    #[test]
    fn terminators() {
        let eof = hex("fe00000200");
        let ok = hex("fe000002000000");
        assert!(is_terminator(&eof) && is_terminator(&ok));
        assert!(!is_terminator(&hex("0131fb")) && !is_terminator(&[]));
        assert!(!is_terminator(&vec![0xFE; MAX_FRAME]));
        assert!(is_terminator(&vec![0xFE; MAX_FRAME - 1]));
        assert_eq!(parse_eof(&eof), (0, 2));
        assert_eq!(parse_eof(&[0xFE, 1, 0, 0x08, 0]), (1, 8));
        assert_eq!(parse_eof(&[0xFE]), (0, 0));
        assert_eq!(terminator_status(&eof, CAPS), 2);
        assert_eq!(terminator_status(&ok, CAPS | CLIENT_DEPRECATE_EOF), 2);
        assert_eq!(terminator_status(&[0xFE, 0, 0, 0x0A, 0, 0, 0], CAPS), 0x0A);
        assert_eq!(
            terminator_status(&[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], CAPS),
            0
        );
    }

    #[test]
    fn err_parse_and_round_trip() {
        let real = [&[0xFF, 0x15, 0x04, b'#'][..], b"28000Access denied"].concat();
        let err = parse_err(&real).unwrap();
        assert_eq!(
            err,
            ErrInfo {
                code: 1045,
                sqlstate: Some(b"28000"),
                message: b"Access denied"
            }
        );
        // no SQLSTATE (handshake phase)
        let err = parse_err(&[0xFF, 0x10, 0x04, b'T', b'o', b'o']).unwrap();
        assert_eq!(
            (err.code, err.sqlstate, err.message),
            (1040, None, &b"Too"[..])
        );
        // '#' without 5 bytes after it is message text
        let err = parse_err(&[0xFF, 1, 0, b'#', b'1']).unwrap();
        assert_eq!((err.sqlstate, err.message), (None, &b"#1"[..]));
        assert!(parse_err(&[0xFF, 1]).is_err());
        assert!(parse_err(&[0x00, 1, 0]).is_err());
        assert!(is_progress_report(&[0xFF, 0xFF, 0xFF, 1]));
        assert!(!is_progress_report(&real));

        let cases: &[(&str, &str, &[u8])] = &[
            ("42000", "denied by policy", b"42000"),
            ("HY", "x", b"HY000"),
            ("4200012", "", b"42000"),
            ("4é", "", b"40000"),
        ];
        for &(state, message, want_state) in cases {
            let mut out = BytesMut::new();
            encode_err(&mut out, 3, 1142, state, message);
            let (seq, payload) = only_packet(&out);
            assert_eq!(seq, 3);
            let err = parse_err(&payload).unwrap();
            assert_eq!(err.code, 1142);
            assert_eq!(err.message, message.as_bytes());
            assert_eq!(err.sqlstate, Some(want_state), "{state:?}");
        }
        // long messages are cut on a char boundary
        let long = "é".repeat(MAX_ERR_MESSAGE);
        let mut out = BytesMut::new();
        encode_err(&mut out, 1, 1, "HY000", &long);
        let (_, payload) = only_packet(&out);
        let message = parse_err(&payload).unwrap().message;
        assert_eq!(message.len(), MAX_ERR_MESSAGE);
        assert!(std::str::from_utf8(message).is_ok());
        assert_eq!(truncate_str("aé", 2), "a");
    }

    #[test]
    fn ok_and_terminator_encoders_round_trip() {
        let variants = [
            CAPS,
            CAPS | CLIENT_SESSION_TRACK,
            CAPS | CLIENT_DEPRECATE_EOF,
            CAPS | CLIENT_DEPRECATE_EOF | CLIENT_SESSION_TRACK,
        ];
        for caps in variants {
            let mut out = BytesMut::new();
            encode_ok(&mut out, 1, caps, 300, 1 << 40, 0x4003, 7);
            let (seq, payload) = only_packet(&out);
            assert_eq!((seq, payload[0]), (1, OK_HEADER));
            let ok = parse_ok(&payload, caps).unwrap();
            assert_eq!(
                (ok.affected_rows, ok.last_insert_id, ok.status, ok.warnings),
                (300, 1 << 40, 3, 7),
                "session-state flag cleared"
            );

            let mut out = BytesMut::new();
            encode_eof_or_ok_terminator(&mut out, 9, caps, SERVER_MORE_RESULTS_EXISTS | 2, 4);
            let (seq, payload) = only_packet(&out);
            assert_eq!(seq, 9);
            assert!(is_terminator(&payload));
            assert_eq!(
                terminator_status(&payload, caps),
                SERVER_MORE_RESULTS_EXISTS | 2
            );
            if caps & CLIENT_DEPRECATE_EOF != 0 {
                assert!(payload.len() > 5);
                assert_eq!(parse_ok(&payload, caps).unwrap().warnings, 4);
            } else {
                assert_eq!(payload, [0xFE, 4, 0, 10, 0]);
            }
        }
    }

    #[test]
    fn column_definitions_from_mariadb() {
        // a binary result set's column `b` ('abc'), plain layout
        let payload = hex("036465660000000162000c2d000c000000fd0100270000");
        let def = parse_column_def(&payload).unwrap();
        assert_eq!(&*def.name, b"b");
        assert_eq!(
            (
                def.charset,
                def.length,
                def.column_type,
                def.flags,
                def.decimals
            ),
            (45, 12, types::VAR_STRING, 1, 0x27)
        );
        assert_eq!(
            column_type_and_charset(&payload),
            Ok((types::VAR_STRING, 45, 1))
        );
        assert_eq!(parse_column_def_ext(&payload, CAPS), Ok(def.clone()));
        let mut again = BytesMut::new();
        put_column_def(&mut again, &def);
        assert_eq!(&again[..], &payload[..]);
        // every prefix is refused
        for cut in 0..payload.len() - 2 {
            assert!(parse_column_def(&payload[..cut]).is_err(), "{cut}");
            assert!(column_type_and_charset(&payload[..cut]).is_err(), "{cut}");
        }

        // The mariadb CLI agrees MARIADB_CLIENT_EXTENDED_METADATA: its
        // column definitions carry an (here empty) extended-info string
        // after org_name. `select 1, null, 'abc' as x, now(6)`, columns x
        // and now(6):
        let ext = CAPS | MARIADB_CLIENT_EXTENDED_METADATA;
        let x = hex("03646566000000017800000c210009000000fd0100270000");
        let def = parse_column_def_ext(&x, ext).unwrap();
        assert_eq!(
            (
                &*def.name,
                def.charset,
                def.length,
                def.column_type,
                def.flags
            ),
            (&b"x"[..], 33, 9, types::VAR_STRING, 1)
        );
        assert_eq!(
            column_type_and_charset_ext(&x, ext),
            Ok((types::VAR_STRING, 33, 1))
        );
        assert!(
            parse_column_def(&x).is_err(),
            "the plain layout misreads it"
        );
        let now = hex("03646566000000066e6f7728362900000c3f001a0000000c8100060000");
        let def = parse_column_def_ext(&now, ext).unwrap();
        assert_eq!(
            (&*def.name, def.column_type, def.decimals),
            (&b"now(6)"[..], types::DATETIME, 6)
        );
    }

    #[test]
    fn column_definition_round_trip_and_extended_metadata() {
        let def = ColumnDef {
            schema: b"shop".as_slice().into(),
            table: b"u".as_slice().into(),
            org_table: b"users".as_slice().into(),
            name: b"mail".as_slice().into(),
            org_name: b"email".as_slice().into(),
            charset: 45,
            length: 1020,
            column_type: types::VAR_STRING,
            flags: 0x1001,
            decimals: 0,
        };
        let mut out = BytesMut::new();
        put_column_def(&mut out, &def);
        assert_eq!(parse_column_def(&out), Ok(def.clone()));
        assert_eq!(parse_column_def_ext(&out, CAPS), Ok(def.clone()));

        // the same with MariaDB's extended metadata (format "json")
        let mut ext = BytesMut::new();
        for name in [
            &b"def"[..],
            b"shop",
            b"u",
            b"users",
            b"mail",
            b"email",
            b"\x01\x04json",
        ] {
            put_lenenc_bytes(&mut ext, name);
        }
        ext.put_slice(&out[out.len() - 13..]);
        let caps = CAPS | MARIADB_CLIENT_EXTENDED_METADATA;
        assert_eq!(parse_column_def_ext(&ext, caps), Ok(def));
        assert_eq!(
            column_type_and_charset_ext(&ext, caps),
            Ok((types::VAR_STRING, 45, 0x1001))
        );
        assert!(parse_column_def(&ext).is_err());
        // a short fixed block is refused
        let mut short = BytesMut::new();
        for _ in 0..6 {
            put_lenenc_bytes(&mut short, b"");
        }
        short.put_slice(&[0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(parse_column_def(&short).is_err());
        assert_eq!(parse_column_count(&[0x0C]), Ok(12));
        assert_eq!(parse_column_count(&[0xFC, 0x2C, 0x01, 1]), Ok(300));
        assert!(parse_column_count(&[0xFB]).is_err());
    }

    #[test]
    fn prepare_ok_and_local_infile() {
        // captured: stmt 1, 12 columns, 0 params
        let ok = parse_prepare_ok(&hex("00010000000c000000000000")).unwrap();
        assert_eq!(
            ok,
            PrepareOk {
                stmt_id: 1,
                num_columns: 12,
                num_params: 0,
                warnings: 0
            }
        );
        let ok = parse_prepare_ok(&hex("000200000008000800000300")).unwrap();
        assert_eq!(
            (ok.stmt_id, ok.num_columns, ok.num_params, ok.warnings),
            (2, 8, 8, 3)
        );
        // short packets without the filler/warnings
        assert_eq!(
            parse_prepare_ok(&hex("000200000008000800"))
                .unwrap()
                .num_params,
            8
        );
        assert_eq!(
            parse_prepare_ok(&hex("00020000000800080000"))
                .unwrap()
                .warnings,
            0
        );
        assert!(parse_prepare_ok(&hex("0002000000080008")).is_err());
        assert!(parse_prepare_ok(&hex("ff0200000008000800")).is_err());

        assert_eq!(
            local_infile_name(b"\xfb/etc/passwd"),
            Some(&b"/etc/passwd"[..])
        );
        assert_eq!(local_infile_name(b"\xfb"), Some(&b""[..]));
        assert_eq!(local_infile_name(b"\x00"), None);
        assert_eq!(local_infile_name(b""), None);
    }

    #[test]
    fn session_track_table() {
        let mut state = BytesMut::new();
        // system variable autocommit=OFF
        state.put_u8(0);
        let mut var = BytesMut::new();
        put_lenenc_bytes(&mut var, b"autocommit");
        put_lenenc_bytes(&mut var, b"OFF");
        put_lenenc_bytes(&mut state, &var);
        // schema
        state.put_u8(1);
        put_lenenc_bytes(&mut state, b"\x04shop");
        // state change flag
        state.put_u8(2);
        put_lenenc_bytes(&mut state, b"\x011");
        let want = vec![
            SessionChange::SystemVariable {
                name: "autocommit".into(),
                value: "OFF".into(),
            },
            SessionChange::Schema("shop".into()),
            SessionChange::Other(2),
        ];
        assert_eq!(session_track(&state), want);
        // truncations keep what came before
        for cut in 0..state.len() {
            let got = session_track(&state[..cut]);
            assert!(want.starts_with(&got), "{cut}: {got:?}");
        }
        assert_eq!(
            session_track(b"\x01\x02\x05a"),
            vec![],
            "schema name longer than its entry"
        );
        assert_eq!(session_track(b"\x00\x02\x01\xff"), vec![]);
        let lossy = session_track(b"\x01\x02\x01\xff");
        assert_eq!(lossy, vec![SessionChange::Schema("\u{fffd}".into())]);
    }

    #[test]
    fn binary_widths() {
        use types::*;
        let cases = [
            (NULL, Some(BinaryWidth::Fixed(0))),
            (TINY, Some(BinaryWidth::Fixed(1))),
            (SHORT, Some(BinaryWidth::Fixed(2))),
            (YEAR, Some(BinaryWidth::Fixed(2))),
            (LONG, Some(BinaryWidth::Fixed(4))),
            (INT24, Some(BinaryWidth::Fixed(4))),
            (FLOAT, Some(BinaryWidth::Fixed(4))),
            (LONGLONG, Some(BinaryWidth::Fixed(8))),
            (DOUBLE, Some(BinaryWidth::Fixed(8))),
            (DATE, Some(BinaryWidth::LengthPrefixed)),
            (DATETIME, Some(BinaryWidth::LengthPrefixed)),
            (TIMESTAMP, Some(BinaryWidth::LengthPrefixed)),
            (TIME, Some(BinaryWidth::LengthPrefixed)),
            (NEWDECIMAL, Some(BinaryWidth::LenEnc)),
            (DECIMAL, Some(BinaryWidth::LenEnc)),
            (VAR_STRING, Some(BinaryWidth::LenEnc)),
            (BLOB, Some(BinaryWidth::LenEnc)),
            (JSON, Some(BinaryWidth::LenEnc)),
            (BIT, Some(BinaryWidth::LenEnc)),
            (GEOMETRY, Some(BinaryWidth::LenEnc)),
            (20, None),
            (100, None),
            (244, None),
        ];
        for (t, want) in cases {
            assert_eq!(binary_width(t), want, "type {t}");
        }
        assert!(is_string_type(VAR_STRING) && is_string_type(JSON) && is_string_type(MEDIUM_BLOB));
        assert!(!is_string_type(LONG) && !is_string_type(NEWDECIMAL) && !is_string_type(DATE));
    }
}
