//! Messages the server sends, and the ones the proxy sends in its place.
//!
//! Owns the tags of backend messages, decoders for what the proxy tracks
//! (authentication requests, the backend key, ParameterStatus, transaction
//! status, command tags and row counts, error fields) and encoders for what
//! it synthesises (ErrorResponse/NoticeResponse for denials, ReadyForQuery
//! after discarding a denied batch, BackendKeyData for its own cancel keys).
//!
//! Must never: decide what an error means for policy, or panic on input.
//! Decoders take the body (bytes after the 5-byte header).

use bytes::{BufMut, BytesMut};

use crate::pg::{begin_message, finish_message, put_cstr, Cursor};
use crate::ProtocolError;

/// Tag bytes of backend messages.
pub mod tag {
    pub const AUTHENTICATION: u8 = b'R';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const READY_FOR_QUERY: u8 = b'Z';
    pub const ROW_DESCRIPTION: u8 = b'T';
    pub const DATA_ROW: u8 = b'D';
    pub const COMMAND_COMPLETE: u8 = b'C';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NOTICE_RESPONSE: u8 = b'N';
    pub const COPY_IN_RESPONSE: u8 = b'G';
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
    pub const PARSE_COMPLETE: u8 = b'1';
    pub const BIND_COMPLETE: u8 = b'2';
    pub const CLOSE_COMPLETE: u8 = b'3';
    pub const NO_DATA: u8 = b'n';
    pub const PORTAL_SUSPENDED: u8 = b's';
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    pub const FUNCTION_CALL_RESPONSE: u8 = b'V';
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
}

/// SQLSTATE codes the proxy answers with.
pub mod sqlstate {
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION: &str = "08001";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    /// What PostgreSQL answers when pg_hba.conf has no entry for a
    /// connection (e.g. `hostssl` only and the client is plaintext).
    pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
}

/// The single byte answered to SSLRequest/GSSENCRequest when not supported.
pub const NOT_SUPPORTED: u8 = b'N';

/// Authentication request codes (the first `i32` of an 'R' message).
mod auth_code {
    pub const OK: u32 = 0;
    pub const CLEARTEXT_PASSWORD: u32 = 3;
    pub const MD5_PASSWORD: u32 = 5;
    pub const SASL: u32 = 10;
    pub const SASL_CONTINUE: u32 = 11;
    pub const SASL_FINAL: u32 = 12;
}

/// Bytes of salt in an AuthenticationMD5Password request.
const MD5_SALT_LEN: usize = 4;

/// What the server asks of the client during authentication. The proxy
/// forwards the original bytes; this tells it which phase it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication<'a> {
    Ok,
    CleartextPassword,
    Md5Password {
        salt: [u8; 4],
    },
    /// Mechanisms offered, e.g. `SCRAM-SHA-256`, `SCRAM-SHA-256-PLUS`.
    Sasl {
        mechanisms: Vec<&'a str>,
    },
    /// Carries SASL data, which the proxy forwards untouched.
    SaslContinue,
    SaslFinal,
    /// Kerberos, GSSAPI, SSPI and anything newer: passed through.
    Other(u32),
}

pub fn decode_authentication(body: &[u8]) -> Result<Authentication<'_>, ProtocolError> {
    let mut c = Cursor::new(body, "Authentication");
    let auth = match c.u32()? {
        auth_code::OK => Authentication::Ok,
        auth_code::CLEARTEXT_PASSWORD => Authentication::CleartextPassword,
        auth_code::MD5_PASSWORD => {
            let mut salt = [0u8; MD5_SALT_LEN];
            salt.copy_from_slice(c.bytes(MD5_SALT_LEN)?);
            Authentication::Md5Password { salt }
        }
        auth_code::SASL => {
            let mut mechanisms = Vec::new();
            loop {
                let mechanism = c.cstr()?;
                if mechanism.is_empty() {
                    break;
                }
                mechanisms.push(mechanism);
            }
            Authentication::Sasl { mechanisms }
        }
        auth_code::SASL_CONTINUE => {
            c.take_rest();
            Authentication::SaslContinue
        }
        auth_code::SASL_FINAL => {
            c.take_rest();
            Authentication::SaslFinal
        }
        other => {
            c.take_rest();
            Authentication::Other(other)
        }
    };
    c.finish()?;
    Ok(auth)
}

/// The key a client must present in a CancelRequest (protocol 3.0 layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendKeyData {
    pub process_id: u32,
    pub secret_key: u32,
}

pub fn decode_backend_key_data(body: &[u8]) -> Result<BackendKeyData, ProtocolError> {
    let mut c = Cursor::new(body, "BackendKeyData");
    let key = BackendKeyData {
        process_id: c.u32()?,
        secret_key: c.u32()?,
    };
    c.finish()?;
    Ok(key)
}

pub fn encode_backend_key_data(buf: &mut BytesMut, key: BackendKeyData) {
    let start = begin_message(buf, tag::BACKEND_KEY_DATA);
    buf.put_u32(key.process_id);
    buf.put_u32(key.secret_key);
    finish_message(buf, start);
}

/// ParameterStatus: `(name, value)`, e.g. `("client_encoding", "UTF8")`;
/// the lexer needs `standard_conforming_strings` from here.
pub fn decode_parameter_status(body: &[u8]) -> Result<(&str, &str), ProtocolError> {
    let mut c = Cursor::new(body, "ParameterStatus");
    let name = c.cstr()?;
    let value = c.cstr()?;
    c.finish()?;
    Ok((name, value))
}

/// Transaction state reported by ReadyForQuery; a deny reply must repeat the
/// real one, or the client's idea of its transaction goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionStatus {
    Idle,
    InTransaction,
    Failed,
}

impl TransactionStatus {
    pub fn as_byte(self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InTransaction => b'T',
            TransactionStatus::Failed => b'E',
        }
    }

    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'I' => Some(TransactionStatus::Idle),
            b'T' => Some(TransactionStatus::InTransaction),
            b'E' => Some(TransactionStatus::Failed),
            _ => None,
        }
    }
}

pub fn decode_ready_for_query(body: &[u8]) -> Result<TransactionStatus, ProtocolError> {
    let mut c = Cursor::new(body, "ReadyForQuery");
    let byte = c.u8()?;
    let status = TransactionStatus::from_byte(byte)
        .ok_or_else(|| c.malformed("transaction status is not 'I', 'T' or 'E'"))?;
    c.finish()?;
    Ok(status)
}

pub fn encode_ready_for_query(buf: &mut BytesMut, status: TransactionStatus) {
    let start = begin_message(buf, tag::READY_FOR_QUERY);
    buf.put_u8(status.as_byte());
    finish_message(buf, start);
}

/// Commands whose tag ends in a row count. `CREATE TABLE AS`, `SELECT INTO`
/// and `CREATE MATERIALIZED VIEW` report themselves as `SELECT n`.
const COUNTED_COMMANDS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "SELECT", "MOVE", "FETCH", "COPY", "MERGE",
];

/// CommandComplete: the command tag, e.g. `INSERT 0 5` or `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandComplete<'a> {
    pub tag: &'a str,
}

fn is_count(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit())
}

impl CommandComplete<'_> {
    /// Rows affected/returned: the last word when numeric for INSERT
    /// (`INSERT oid rows`), UPDATE, DELETE, SELECT, MOVE, FETCH, COPY, MERGE;
    /// also `CREATE TABLE AS`/`SELECT INTO`, which report `SELECT n`. None
    /// otherwise, including for tags of an unexpected shape.
    pub fn rows(&self) -> Option<u64> {
        let mut words = self.tag.split(' ');
        let command = words.next()?;
        if !COUNTED_COMMANDS.contains(&command) {
            return None;
        }
        let numbers = if command == "INSERT" { 2 } else { 1 };
        let mut last = None;
        for _ in 0..numbers {
            let word = words.next().filter(|w| is_count(w))?;
            last = Some(word);
        }
        if words.next().is_some() {
            return None;
        }
        last?.parse().ok()
    }

    /// The command word(s) without the counts, e.g. "INSERT", "CREATE TABLE".
    pub fn command(&self) -> &str {
        let mut command = self.tag;
        while let Some((head, last)) = command.rsplit_once(' ') {
            if !is_count(last) {
                break;
            }
            command = head;
        }
        command
    }
}

pub fn decode_command_complete(body: &[u8]) -> Result<CommandComplete<'_>, ProtocolError> {
    let mut c = Cursor::new(body, "CommandComplete");
    let tag = c.cstr()?;
    c.finish()?;
    Ok(CommandComplete { tag })
}

/// Error/notice field codes.
mod field {
    pub const SEVERITY: u8 = b'S';
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    pub const CODE: u8 = b'C';
    pub const MESSAGE: u8 = b'M';
    pub const DETAIL: u8 = b'D';
    pub const HINT: u8 = b'H';
}

const ERROR_FIELDS: &str = "ErrorResponse/NoticeResponse";

/// Fields of ErrorResponse/NoticeResponse. Unknown field codes are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    /// 'S', localized.
    pub severity: Option<&'a str>,
    /// 'V', never localized: use this one for decisions.
    pub severity_nonlocalized: Option<&'a str>,
    /// 'C', the SQLSTATE.
    pub code: Option<&'a str>,
    /// 'M'
    pub message: Option<&'a str>,
    /// 'D'
    pub detail: Option<&'a str>,
    /// 'H'
    pub hint: Option<&'a str>,
}

/// Walks `(code, C string)` pairs up to the terminating zero byte, calling
/// `each` for every field; rejects a missing terminator and trailing bytes.
fn walk_error_fields<'a>(
    body: &'a [u8],
    mut each: impl FnMut(u8, &'a [u8]) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let mut c = Cursor::new(body, ERROR_FIELDS);
    loop {
        let code = c.u8()?;
        if code == 0 {
            return c.finish();
        }
        each(code, c.cstr_bytes()?)?;
    }
}

/// Decodes the fields the proxy uses. The known fields must be UTF-8
/// (InvalidUtf8 otherwise); when the session's client_encoding is not UTF-8,
/// [`find_error_field`] still reaches the SQLSTATE.
pub fn decode_error_fields(body: &[u8]) -> Result<ErrorFields<'_>, ProtocolError> {
    let mut fields = ErrorFields::default();
    walk_error_fields(body, |code, value| {
        let slot = match code {
            field::SEVERITY => &mut fields.severity,
            field::SEVERITY_NONLOCALIZED => &mut fields.severity_nonlocalized,
            field::CODE => &mut fields.code,
            field::MESSAGE => &mut fields.message,
            field::DETAIL => &mut fields.detail,
            field::HINT => &mut fields.hint,
            _ => return Ok(()),
        };
        let text = std::str::from_utf8(value).map_err(|_| ProtocolError::InvalidUtf8 {
            message: ERROR_FIELDS,
        })?;
        *slot = Some(text);
        Ok(())
    })?;
    Ok(fields)
}

/// The raw bytes of one field (the last occurrence), without requiring any
/// field to be UTF-8: the SQLSTATE is ASCII even when the message text is in
/// the session's non-UTF-8 client encoding.
pub fn find_error_field(body: &[u8], code: u8) -> Result<Option<&[u8]>, ProtocolError> {
    let mut found = None;
    walk_error_fields(body, |c, value| {
        if c == code {
            found = Some(value);
        }
        Ok(())
    })?;
    Ok(found)
}

fn encode_fields(buf: &mut BytesMut, message_tag: u8, fields: &[(u8, &str)]) {
    let start = begin_message(buf, message_tag);
    for (code, value) in fields {
        buf.put_u8(*code);
        put_cstr(buf, value);
    }
    buf.put_u8(0);
    finish_message(buf, start);
}

/// ErrorResponse with S, V, C, M fields (and optional D detail). severity is
/// "ERROR" or "FATAL"; the proxy's own messages are not localized, so S and
/// V carry the same word.
pub fn encode_error_response(
    buf: &mut BytesMut,
    severity: &str,
    code: &str,
    message: &str,
    detail: Option<&str>,
) {
    let mut fields = [
        (field::SEVERITY, severity),
        (field::SEVERITY_NONLOCALIZED, severity),
        (field::CODE, code),
        (field::MESSAGE, message),
        (field::DETAIL, ""),
    ];
    let used = match detail {
        Some(detail) => {
            fields[4].1 = detail;
            fields.len()
        }
        None => fields.len() - 1,
    };
    encode_fields(buf, tag::ERROR_RESPONSE, &fields[..used]);
}

/// NoticeResponse with S, V, C, M fields (severity e.g. "WARNING", "NOTICE").
pub fn encode_notice_response(buf: &mut BytesMut, severity: &str, code: &str, message: &str) {
    encode_fields(
        buf,
        tag::NOTICE_RESPONSE,
        &[
            (field::SEVERITY, severity),
            (field::SEVERITY_NONLOCALIZED, severity),
            (field::CODE, code),
            (field::MESSAGE, message),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::frame::split_message;
    use crate::pg::{MISSING_NUL, TRAILING, TRUNCATED};

    fn malformed(message: &'static str, reason: &'static str) -> ProtocolError {
        ProtocolError::Malformed { message, reason }
    }

    fn frame(f: impl FnOnce(&mut BytesMut)) -> (u8, Vec<u8>) {
        let mut buf = BytesMut::new();
        f(&mut buf);
        let msg = split_message(&buf, usize::MAX).unwrap().unwrap();
        assert_eq!(msg.total_len(), buf.len(), "one whole message");
        (msg.tag, msg.body.to_vec())
    }

    fn code(n: u32, rest: &[u8]) -> Vec<u8> {
        let mut v = n.to_be_bytes().to_vec();
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn authentication_table() {
        let name = "Authentication";
        let cases: Vec<(Vec<u8>, Result<Authentication, ProtocolError>)> = vec![
            (code(0, b""), Ok(Authentication::Ok)),
            (code(3, b""), Ok(Authentication::CleartextPassword)),
            (
                code(5, &[1, 2, 3, 4]),
                Ok(Authentication::Md5Password { salt: [1, 2, 3, 4] }),
            ),
            (
                code(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
                Ok(Authentication::Sasl {
                    mechanisms: vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"],
                }),
            ),
            (
                code(10, b"\0"),
                Ok(Authentication::Sasl { mechanisms: vec![] }),
            ),
            (
                code(11, b"r=abc,s=xyz,i=4096"),
                Ok(Authentication::SaslContinue),
            ),
            (code(12, b"v=sig"), Ok(Authentication::SaslFinal)),
            (code(12, b""), Ok(Authentication::SaslFinal)),
            (code(7, b""), Ok(Authentication::Other(7))),
            (code(8, b"gss data"), Ok(Authentication::Other(8))),
            (code(u32::MAX, b""), Ok(Authentication::Other(u32::MAX))),
            (code(0, b"x"), Err(malformed(name, TRAILING))),
            (code(3, b"\0"), Err(malformed(name, TRAILING))),
            (code(5, &[1, 2, 3]), Err(malformed(name, TRUNCATED))),
            (code(5, &[1, 2, 3, 4, 5]), Err(malformed(name, TRAILING))),
            (
                code(10, b"SCRAM-SHA-256\0"),
                Err(malformed(name, MISSING_NUL)),
            ),
            (
                code(10, b"SCRAM-SHA-256"),
                Err(malformed(name, MISSING_NUL)),
            ),
            (code(10, b"\0\0"), Err(malformed(name, TRAILING))),
            (
                code(10, b"\xff\0\0"),
                Err(ProtocolError::InvalidUtf8 { message: name }),
            ),
            (vec![], Err(malformed(name, TRUNCATED))),
            (vec![0, 0, 0], Err(malformed(name, TRUNCATED))),
        ];
        for (input, want) in &cases {
            assert_eq!(&decode_authentication(input), want, "{input:?}");
        }
    }

    #[test]
    fn backend_key_data_table() {
        let name = "BackendKeyData";
        let key = BackendKeyData {
            process_id: 0x0102_0304,
            secret_key: 0xFFFF_FFFF,
        };
        let cases: &[(&[u8], Result<BackendKeyData, ProtocolError>)] = &[
            (&[1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFF], Ok(key)),
            (
                &[1, 2, 3, 4, 0xFF, 0xFF, 0xFF],
                Err(malformed(name, TRUNCATED)),
            ),
            (&[], Err(malformed(name, TRUNCATED))),
            (
                // protocol 3.2 keys are longer; this codec speaks 3.0 keys
                &[1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0],
                Err(malformed(name, TRAILING)),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&decode_backend_key_data(input), want, "{input:?}");
        }
    }

    #[test]
    fn parameter_status_table() {
        let name = "ParameterStatus";
        type Case<'a> = (&'a [u8], Result<(&'a str, &'a str), ProtocolError>);
        let cases: &[Case] = &[
            (b"client_encoding\0UTF8\0", Ok(("client_encoding", "UTF8"))),
            (b"application_name\0\0", Ok(("application_name", ""))),
            (b"client_encoding\0UTF8", Err(malformed(name, MISSING_NUL))),
            (b"client_encoding", Err(malformed(name, MISSING_NUL))),
            (b"a\0b\0c", Err(malformed(name, TRAILING))),
            (
                b"a\0\xfe\0",
                Err(ProtocolError::InvalidUtf8 { message: name }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&decode_parameter_status(input), want, "{input:?}");
        }
    }

    #[test]
    fn ready_for_query_table() {
        let name = "ReadyForQuery";
        let cases: &[(&[u8], Result<TransactionStatus, ProtocolError>)] = &[
            (b"I", Ok(TransactionStatus::Idle)),
            (b"T", Ok(TransactionStatus::InTransaction)),
            (b"E", Ok(TransactionStatus::Failed)),
            (
                b"X",
                Err(malformed(name, "transaction status is not 'I', 'T' or 'E'")),
            ),
            (b"", Err(malformed(name, TRUNCATED))),
            (b"II", Err(malformed(name, TRAILING))),
        ];
        for (input, want) in cases {
            assert_eq!(&decode_ready_for_query(input), want, "{input:?}");
        }
    }

    #[test]
    fn command_complete_rows_and_command() {
        let cases: &[(&str, Option<u64>, &str)] = &[
            ("INSERT 0 5", Some(5), "INSERT"),
            ("INSERT 16384 1", Some(1), "INSERT"),
            ("SELECT 3", Some(3), "SELECT"),
            ("UPDATE 0", Some(0), "UPDATE"),
            ("DELETE 42", Some(42), "DELETE"),
            ("MERGE 2", Some(2), "MERGE"),
            ("FETCH 10", Some(10), "FETCH"),
            ("MOVE 7", Some(7), "MOVE"),
            ("COPY 1000000", Some(1_000_000), "COPY"),
            ("SELECT 18446744073709551615", Some(u64::MAX), "SELECT"),
            ("CREATE TABLE", None, "CREATE TABLE"),
            ("CREATE MATERIALIZED VIEW", None, "CREATE MATERIALIZED VIEW"),
            ("BEGIN", None, "BEGIN"),
            ("COMMIT", None, "COMMIT"),
            ("DISCARD ALL", None, "DISCARD ALL"),
            // shapes PostgreSQL does not send: no count rather than a guess
            ("INSERT 5", None, "INSERT"),
            ("INSERT 0 5 6", None, "INSERT"),
            ("SELECT", None, "SELECT"),
            ("SELECT x", None, "SELECT x"),
            ("SELECT +3", None, "SELECT +3"),
            ("SELECT 3 extra", None, "SELECT 3 extra"),
            ("SELECT 18446744073709551616", None, "SELECT"),
            ("select 3", None, "select"),
            ("ANALYZE 3", None, "ANALYZE"),
            ("", None, ""),
        ];
        for (tag, rows, command) in cases {
            let cc = CommandComplete { tag };
            assert_eq!((cc.rows(), cc.command()), (*rows, *command), "{tag:?}");
        }
    }

    #[test]
    fn command_complete_decode_table() {
        let name = "CommandComplete";
        let cases: &[(&[u8], Result<&str, ProtocolError>)] = &[
            (b"SELECT 1\0", Ok("SELECT 1")),
            (b"SELECT 1", Err(malformed(name, MISSING_NUL))),
            (b"SELECT 1\0\0", Err(malformed(name, TRAILING))),
            (b"\xc0\0", Err(ProtocolError::InvalidUtf8 { message: name })),
        ];
        for (input, want) in cases {
            let got = decode_command_complete(input).map(|cc| cc.tag);
            assert_eq!(&got, want, "{input:?}");
        }
    }

    #[test]
    fn error_fields_table() {
        let full = ErrorFields {
            severity: Some("ERREUR"),
            severity_nonlocalized: Some("ERROR"),
            code: Some("42P01"),
            message: Some("relation missing"),
            detail: Some("d"),
            hint: Some("h"),
        };
        let cases: &[(&[u8], Result<ErrorFields, ProtocolError>)] = &[
            (
                b"SERREUR\0VERROR\0C42P01\0Mrelation missing\0Dd\0Hh\0Fparse.c\0L42\0\0",
                Ok(full),
            ),
            (b"\0", Ok(ErrorFields::default())),
            (
                b"Cfirst\0Csecond\0\0",
                Ok(ErrorFields {
                    code: Some("second"),
                    ..ErrorFields::default()
                }),
            ),
            (
                // unknown fields are skipped even when not UTF-8
                b"Z\xff\0C42501\0\0",
                Ok(ErrorFields {
                    code: Some("42501"),
                    ..ErrorFields::default()
                }),
            ),
            (b"", Err(malformed(ERROR_FIELDS, TRUNCATED))),
            (b"C42501\0", Err(malformed(ERROR_FIELDS, TRUNCATED))),
            (b"C42501", Err(malformed(ERROR_FIELDS, MISSING_NUL))),
            (b"C42501\0\0x", Err(malformed(ERROR_FIELDS, TRAILING))),
            (
                b"M\xd5\xd2\xb2\xbb\xb5\xbd\0\0",
                Err(ProtocolError::InvalidUtf8 {
                    message: ERROR_FIELDS,
                }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&decode_error_fields(input), want, "{input:?}");
        }
    }

    #[test]
    fn find_error_field_ignores_encoding_of_other_fields() {
        // a GBK-encoded message text: not UTF-8, but the SQLSTATE is ASCII
        let body = b"S\xb4\xed\xce\xf3\0VERROR\0C42P01\0M\xd5\xd2\xb2\xbb\xb5\xbd\0\0";
        let cases: &[(u8, Option<&[u8]>)] = &[
            (b'C', Some(b"42P01")),
            (b'V', Some(b"ERROR")),
            (b'M', Some(b"\xd5\xd2\xb2\xbb\xb5\xbd")),
            (b'D', None),
        ];
        for (code, want) in cases {
            assert_eq!(
                find_error_field(body, *code),
                Ok(*want),
                "{}",
                *code as char
            );
        }
        assert!(decode_error_fields(body).is_err());
        assert_eq!(
            find_error_field(b"C42501\0", b'C'),
            Err(malformed(ERROR_FIELDS, TRUNCATED))
        );
    }

    #[test]
    fn every_prefix_of_valid_bodies_is_rejected() {
        type Decode = fn(&[u8]) -> bool;
        let cases: Vec<(Vec<u8>, Decode)> = vec![
            (code(10, b"SCRAM-SHA-256\0\0"), |b| {
                decode_authentication(b).is_ok()
            }),
            (code(5, b"salt"), |b| decode_authentication(b).is_ok()),
            (vec![0, 0, 0, 1, 0, 0, 0, 2], |b| {
                decode_backend_key_data(b).is_ok()
            }),
            (b"a\0b\0".to_vec(), |b| decode_parameter_status(b).is_ok()),
            (b"I".to_vec(), |b| decode_ready_for_query(b).is_ok()),
            (b"SELECT 1\0".to_vec(), |b| {
                decode_command_complete(b).is_ok()
            }),
            (b"C42501\0Mno\0\0".to_vec(), |b| {
                decode_error_fields(b).is_ok()
            }),
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
        let key = BackendKeyData {
            process_id: 4242,
            secret_key: 0xDEAD_BEEF,
        };
        let (t, b) = frame(|buf| encode_backend_key_data(buf, key));
        assert_eq!(
            (t, decode_backend_key_data(&b)),
            (tag::BACKEND_KEY_DATA, Ok(key))
        );

        for status in [
            TransactionStatus::Idle,
            TransactionStatus::InTransaction,
            TransactionStatus::Failed,
        ] {
            let (t, b) = frame(|buf| encode_ready_for_query(buf, status));
            assert_eq!(
                (t, decode_ready_for_query(&b)),
                (tag::READY_FOR_QUERY, Ok(status))
            );
        }

        for detail in [None, Some("rule r1 denies DELETE without WHERE")] {
            let (t, b) = frame(|buf| {
                encode_error_response(
                    buf,
                    "ERROR",
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    "denied by danxia",
                    detail,
                )
            });
            assert_eq!(t, tag::ERROR_RESPONSE);
            assert_eq!(
                decode_error_fields(&b),
                Ok(ErrorFields {
                    severity: Some("ERROR"),
                    severity_nonlocalized: Some("ERROR"),
                    code: Some("42501"),
                    message: Some("denied by danxia"),
                    detail,
                    hint: None,
                })
            );
        }

        let (t, b) = frame(|buf| {
            encode_notice_response(buf, "WARNING", sqlstate::ADMIN_SHUTDOWN, "shutting down")
        });
        assert_eq!(t, tag::NOTICE_RESPONSE);
        assert_eq!(
            decode_error_fields(&b),
            Ok(ErrorFields {
                severity: Some("WARNING"),
                severity_nonlocalized: Some("WARNING"),
                code: Some("57P01"),
                message: Some("shutting down"),
                ..ErrorFields::default()
            })
        );
    }

    #[test]
    fn error_response_cannot_smuggle_fields_through_nul() {
        let (_, b) =
            frame(|buf| encode_error_response(buf, "ERROR", "42501", "denied\0Hinjected", None));
        let fields = decode_error_fields(&b).unwrap();
        assert_eq!((fields.message, fields.hint), (Some("denied"), None));
    }

    #[test]
    fn transaction_status_bytes_round_trip() {
        for byte in 0..=u8::MAX {
            match TransactionStatus::from_byte(byte) {
                Some(status) => assert_eq!(status.as_byte(), byte),
                None => assert!(!b"ITE".contains(&byte)),
            }
        }
    }
}
