//! Client commands: the command byte that starts every packet of the
//! command phase, and the few commands besides `COM_QUERY` and
//! `COM_STMT_EXECUTE` whose fields the proxy reads.
//!
//! Owns the layouts of `COM_CHANGE_USER` (a new login inside a connection,
//! which policy must see like a handshake), `COM_STMT_SEND_LONG_DATA` (the
//! parameter bytes that bypass `COM_STMT_EXECUTE`) and the statement-id
//! commands, and the names used for commands in audit records and metrics.
//!
//! Must never: decide what a command may do, or panic on input. Every
//! function takes the whole payload, command byte included.

use super::caps::{CLIENT_CONNECT_ATTRS, CLIENT_PLUGIN_AUTH, CLIENT_SECURE_CONNECTION};
use super::{read_attributes, Reader};
use crate::ProtocolError;

pub const COM_SLEEP: u8 = 0x00;
pub const COM_QUIT: u8 = 0x01;
pub const COM_INIT_DB: u8 = 0x02;
pub const COM_QUERY: u8 = 0x03;
pub const COM_FIELD_LIST: u8 = 0x04;
pub const COM_CREATE_DB: u8 = 0x05;
pub const COM_DROP_DB: u8 = 0x06;
pub const COM_REFRESH: u8 = 0x07;
pub const COM_SHUTDOWN: u8 = 0x08;
pub const COM_STATISTICS: u8 = 0x09;
pub const COM_PROCESS_INFO: u8 = 0x0a;
pub const COM_CONNECT: u8 = 0x0b;
pub const COM_PROCESS_KILL: u8 = 0x0c;
pub const COM_DEBUG: u8 = 0x0d;
pub const COM_PING: u8 = 0x0e;
pub const COM_TIME: u8 = 0x0f;
pub const COM_DELAYED_INSERT: u8 = 0x10;
pub const COM_CHANGE_USER: u8 = 0x11;
pub const COM_BINLOG_DUMP: u8 = 0x12;
pub const COM_TABLE_DUMP: u8 = 0x13;
pub const COM_CONNECT_OUT: u8 = 0x14;
pub const COM_REGISTER_SLAVE: u8 = 0x15;
pub const COM_STMT_PREPARE: u8 = 0x16;
pub const COM_STMT_EXECUTE: u8 = 0x17;
pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
pub const COM_STMT_CLOSE: u8 = 0x19;
pub const COM_STMT_RESET: u8 = 0x1a;
pub const COM_SET_OPTION: u8 = 0x1b;
pub const COM_STMT_FETCH: u8 = 0x1c;
pub const COM_DAEMON: u8 = 0x1d;
pub const COM_BINLOG_DUMP_GTID: u8 = 0x1e;
pub const COM_RESET_CONNECTION: u8 = 0x1f;
/// MySQL 8.0.23+: clone plugin.
pub const COM_CLONE: u8 = 0x20;
/// MariaDB: several commands in one packet (`MARIADB_CLIENT_COM_MULTI`).
pub const COM_MULTI: u8 = 0xfe;
/// MariaDB: array binding (`MARIADB_CLIENT_STMT_BULK_OPERATIONS`).
pub const COM_STMT_BULK_EXECUTE: u8 = 0xfa;

/// `COM_SET_OPTION` value: enable multi-statements.
pub const MYSQL_OPTION_MULTI_STATEMENTS_ON: u16 = 0;
/// `COM_SET_OPTION` value: disable multi-statements.
pub const MYSQL_OPTION_MULTI_STATEMENTS_OFF: u16 = 1;

/// A short, stable, lower-case name for a command byte: a bounded label
/// set for metrics and audit records ("unknown" for anything else, so a
/// client cannot grow the set).
pub fn command_name(cmd: u8) -> &'static str {
    match cmd {
        COM_SLEEP => "sleep",
        COM_QUIT => "quit",
        COM_INIT_DB => "init_db",
        COM_QUERY => "query",
        COM_FIELD_LIST => "field_list",
        COM_CREATE_DB => "create_db",
        COM_DROP_DB => "drop_db",
        COM_REFRESH => "refresh",
        COM_SHUTDOWN => "shutdown",
        COM_STATISTICS => "statistics",
        COM_PROCESS_INFO => "process_info",
        COM_CONNECT => "connect",
        COM_PROCESS_KILL => "process_kill",
        COM_DEBUG => "debug",
        COM_PING => "ping",
        COM_TIME => "time",
        COM_DELAYED_INSERT => "delayed_insert",
        COM_CHANGE_USER => "change_user",
        COM_BINLOG_DUMP => "binlog_dump",
        COM_TABLE_DUMP => "table_dump",
        COM_CONNECT_OUT => "connect_out",
        COM_REGISTER_SLAVE => "register_slave",
        COM_STMT_PREPARE => "stmt_prepare",
        COM_STMT_EXECUTE => "stmt_execute",
        COM_STMT_SEND_LONG_DATA => "stmt_send_long_data",
        COM_STMT_CLOSE => "stmt_close",
        COM_STMT_RESET => "stmt_reset",
        COM_SET_OPTION => "set_option",
        COM_STMT_FETCH => "stmt_fetch",
        COM_DAEMON => "daemon",
        COM_BINLOG_DUMP_GTID => "binlog_dump_gtid",
        COM_RESET_CONNECTION => "reset_connection",
        COM_CLONE => "clone",
        COM_STMT_BULK_EXECUTE => "stmt_bulk_execute",
        COM_MULTI => "multi",
        _ => "unknown",
    }
}

const CHANGE_USER: &str = "COM_CHANGE_USER";
const SEND_LONG_DATA: &str = "COM_STMT_SEND_LONG_DATA";
const STMT: &str = "statement command";
const FETCH: &str = "COM_STMT_FETCH";

/// A decoded `COM_CHANGE_USER`: the fields policy needs to treat it as a
/// new login (user, database, client attributes), owned because they
/// outlive the packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeUser {
    pub user: Vec<u8>,
    /// Opaque to the proxy (a scramble response); never log it.
    pub auth_response: Vec<u8>,
    /// Empty when the client names no database.
    pub database: Vec<u8>,
    /// The new collation id, when sent.
    pub charset: Option<u16>,
    pub auth_plugin: Option<Vec<u8>>,
    pub attributes: Vec<(String, String)>,
}

/// Decodes `COM_CHANGE_USER` as laid out for the connection's capabilities:
/// 0x11, user (NUL-terminated), auth response (1-byte length under
/// `CLIENT_SECURE_CONNECTION`, else NUL-terminated), database
/// (NUL-terminated), then only when more bytes remain: collation (2 bytes),
/// auth plugin (under `CLIENT_PLUGIN_AUTH`), attributes (under
/// `CLIENT_CONNECT_ATTRS`).
///
/// Trailing fields clients omit are tolerated like the server tolerates
/// them: a missing database or plugin NUL, missing optional fields.
pub fn parse_change_user(payload: &[u8], client_caps: u64) -> Result<ChangeUser, ProtocolError> {
    let mut r = Reader::new(payload, CHANGE_USER);
    r.expect(COM_CHANGE_USER)?;
    let user = r.cstr()?.to_vec();
    let auth_response = if client_caps & CLIENT_SECURE_CONNECTION != 0 {
        let len = r.u8()?;
        r.bytes(usize::from(len))?
    } else {
        r.cstr_or_rest()
    }
    .to_vec();
    let mut change = ChangeUser {
        user,
        auth_response,
        database: r.cstr_or_rest().to_vec(),
        ..ChangeUser::default()
    };
    if r.remaining() >= 2 {
        change.charset = Some(r.u16()?);
    }
    if client_caps & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
        change.auth_plugin = Some(r.cstr_or_rest().to_vec());
    }
    if client_caps & CLIENT_CONNECT_ATTRS != 0 && !r.is_empty() {
        change.attributes = read_attributes(&mut r);
    }
    Ok(change)
}

/// Decodes `COM_STMT_SEND_LONG_DATA`: `(statement id, parameter index,
/// data chunk)`. The server appends each chunk to the parameter's value and
/// sends no reply; `COM_STMT_EXECUTE` then carries no value for it.
pub fn parse_send_long_data(payload: &[u8]) -> Result<(u32, u16, &[u8]), ProtocolError> {
    let mut r = Reader::new(payload, SEND_LONG_DATA);
    r.expect(COM_STMT_SEND_LONG_DATA)?;
    Ok((r.u32()?, r.u16()?, r.take_rest()))
}

/// The statement id after the command byte of `COM_STMT_CLOSE`, `_RESET`,
/// `_FETCH`, `_EXECUTE`, `_SEND_LONG_DATA` and `_BULK_EXECUTE` (the command
/// byte itself is not checked, so one function serves them all).
pub fn stmt_id(payload: &[u8]) -> Result<u32, ProtocolError> {
    let mut r = Reader::new(payload, STMT);
    r.u8()?;
    r.u32()
}

/// Decodes `COM_STMT_FETCH`: `(statement id, number of rows)`.
pub fn parse_fetch(payload: &[u8]) -> Result<(u32, u32), ProtocolError> {
    let mut r = Reader::new(payload, FETCH);
    r.expect(COM_STMT_FETCH)?;
    Ok((r.u32()?, r.u32()?))
}

#[cfg(test)]
mod tests {
    use super::super::caps::*;
    use super::*;

    const CAPS: u64 =
        CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS;

    fn change_user_bytes() -> Vec<u8> {
        let mut v = vec![COM_CHANGE_USER];
        v.extend_from_slice(b"bob\0");
        v.push(20);
        v.extend_from_slice(&[0xAA; 20]);
        v.extend_from_slice(b"shop\0");
        v.extend_from_slice(&45u16.to_le_bytes());
        v.extend_from_slice(b"mysql_native_password\0");
        v.extend_from_slice(&[10, 3, b'_', b'o', b's', 5, b'L', b'i', b'n', b'u', b'x']);
        v
    }

    #[test]
    fn change_user_full() {
        let got = parse_change_user(&change_user_bytes(), CAPS).unwrap();
        assert_eq!(
            got,
            ChangeUser {
                user: b"bob".to_vec(),
                auth_response: vec![0xAA; 20],
                database: b"shop".to_vec(),
                charset: Some(45),
                auth_plugin: Some(b"mysql_native_password".to_vec()),
                attributes: vec![("_os".into(), "Linux".into())],
            }
        );
    }

    #[test]
    fn change_user_optional_tails() {
        let full = change_user_bytes();
        // cut after the database: no charset, plugin or attributes
        let cut = full.iter().position(|&b| b == b'p').unwrap() + 2;
        let got = parse_change_user(&full[..cut], CAPS).unwrap();
        assert_eq!(
            (got.database.as_slice(), got.charset, got.auth_plugin),
            (&b"shop"[..], None, None)
        );
        // without the plugin/attrs capabilities, those bytes are ignored
        let got = parse_change_user(&full, CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION).unwrap();
        assert_eq!(
            (got.charset, got.auth_plugin, got.attributes.len()),
            (Some(45), None, 0)
        );
        // a plugin name without its NUL
        let mut v = full[..cut + 2].to_vec();
        v.extend_from_slice(b"caching_sha2_password");
        let got = parse_change_user(&v, CAPS).unwrap();
        assert_eq!(
            got.auth_plugin.as_deref(),
            Some(&b"caching_sha2_password"[..])
        );
        // old-style NUL-terminated auth response
        let v = [&[COM_CHANGE_USER][..], b"u\0pw\0db\0"].concat();
        let got = parse_change_user(&v, CLIENT_PROTOCOL_41).unwrap();
        assert_eq!(
            (got.auth_response.as_slice(), got.database.as_slice()),
            (&b"pw"[..], &b"db"[..])
        );
        // errors: wrong command, missing user NUL, auth response too short
        assert!(parse_change_user(&full[1..], CAPS).is_err());
        assert!(parse_change_user(&[COM_CHANGE_USER, b'b'], CAPS).is_err());
        assert!(parse_change_user(&[COM_CHANGE_USER, b'b', 0, 5, 1], CAPS).is_err());
        assert!(parse_change_user(&[COM_CHANGE_USER, b'b', 0], CAPS).is_err());
    }

    #[test]
    fn statement_commands() {
        let long = [&[COM_STMT_SEND_LONG_DATA, 7, 0, 0, 0, 2, 0][..], b"chunk"].concat();
        assert_eq!(parse_send_long_data(&long), Ok((7, 2, &b"chunk"[..])));
        assert_eq!(parse_send_long_data(&long[..7]), Ok((7, 2, &b""[..])));
        assert!(parse_send_long_data(&long[..6]).is_err());
        assert!(parse_send_long_data(&[COM_QUERY, 7, 0, 0, 0, 2, 0]).is_err());

        assert_eq!(stmt_id(&[COM_STMT_CLOSE, 1, 2, 0, 0]), Ok(0x0201));
        assert_eq!(
            stmt_id(&[COM_STMT_EXECUTE, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0]),
            Ok(u32::MAX)
        );
        assert!(stmt_id(&[COM_STMT_RESET, 1, 2, 0]).is_err());
        assert!(stmt_id(&[]).is_err());

        assert_eq!(
            parse_fetch(&[COM_STMT_FETCH, 3, 0, 0, 0, 100, 0, 0, 0]),
            Ok((3, 100))
        );
        assert!(parse_fetch(&[COM_STMT_FETCH, 3, 0, 0, 0, 100, 0, 0]).is_err());
    }

    #[test]
    fn command_names_are_bounded() {
        assert_eq!(command_name(COM_QUERY), "query");
        assert_eq!(command_name(COM_STMT_EXECUTE), "stmt_execute");
        assert_eq!(command_name(COM_STMT_BULK_EXECUTE), "stmt_bulk_execute");
        assert_eq!(command_name(0x80), "unknown");
        let mut names = std::collections::BTreeSet::new();
        for cmd in 0..=255u8 {
            let name = command_name(cmd);
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            if name != "unknown" {
                assert!(names.insert(name), "duplicate {name}");
            }
        }
    }
}
