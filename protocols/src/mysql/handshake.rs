//! The connection phase: the server's greeting (`HandshakeV10`) and the
//! client's `HandshakeResponse41` (or the `SSLRequest` that precedes it).
//!
//! Owns the capability negotiation the proxy takes part in: it reads what
//! each side offers, clears in place the capabilities it cannot follow
//! (compression, query attributes, …, see
//! [`crate::mysql::caps::UNSUPPORTED`]) before forwarding, and reads the
//! login (user, database, client attributes) that policy decides on.
//!
//! Must never: authenticate, keep or log the scramble or the auth response,
//! or panic on input. The `strip_*` functions change only capability bits
//! and fail rather than touch a packet they cannot lay out.
//!
//! # MariaDB extended capabilities
//!
//! MariaDB servers clear bit 0 of the capabilities (`CLIENT_LONG_PASSWORD`,
//! which MariaDB renamed `CLIENT_MYSQL`) and use 4 of the reserved bytes of
//! the greeting for extended capabilities; MariaDB clients answer the same
//! way in bytes 28..32 of their response. Both are exposed here as bits
//! 32..64 of a `u64`. A MySQL peer sets bit 0 and leaves those bytes zero.

use super::caps::{
    CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_LONG_PASSWORD, CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
};
use super::{read_attributes, Reader};
use crate::ProtocolError;

/// The only greeting version this codec reads (MySQL 3.21.0 and later).
pub const PROTOCOL_VERSION: u8 = 10;

/// Size of an `SSLRequest`, and of the fixed part of a handshake response.
pub const SSL_REQUEST_LEN: usize = 32;

const GREETING: &str = "greeting";
const RESPONSE: &str = "handshake response";
const NOT_V10: &str = "protocol version is not 10";
const SERVER_ERROR: &str = "server sent an error instead of a greeting";
const NOT_41: &str = "client does not speak protocol 4.1";

/// The scramble's first part, plus its filler byte.
const SCRAMBLE_1_LEN: usize = 8 + 1;
/// Minimum length of the scramble's second part (`max(13, len - 8)`).
const SCRAMBLE_2_MIN: usize = 13;
/// From the lower capabilities to the MariaDB extended ones: lower caps (2),
/// charset (1), status (2), upper caps (2), auth data length (1), reserved
/// (6).
const EXT_CAPS_FROM_LOWER: usize = 2 + 1 + 2 + 2 + 1 + 6;
/// Offset of the MariaDB extended capabilities in a handshake response.
const RESPONSE_EXT_CAPS: usize = 28;

/// A decoded server greeting (`HandshakeV10`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Greeting<'a> {
    pub protocol_version: u8,
    /// E.g. `8.0.36` or, from MariaDB, `5.5.5-10.11.6-MariaDB` (the `5.5.5-`
    /// prefix keeps old replication clients working).
    pub server_version: &'a [u8],
    pub connection_id: u32,
    /// Lower and upper 16 bits, plus MariaDB's extended capabilities at
    /// bits 32..64 when [`Greeting::mariadb`].
    pub capabilities: u64,
    /// The server's default collation id (low byte only).
    pub charset: u8,
    pub status: u16,
    /// Default auth plugin, e.g. `mysql_native_password`; empty when the
    /// server does not send one.
    pub auth_plugin: &'a [u8],
    /// Bit 0 of the capabilities is clear: a MariaDB server, whose extended
    /// capabilities were read.
    pub mariadb: bool,
}

/// Where the fields after the server version start: the offset of the
/// lower capability bytes.
fn lower_caps_offset(payload: &[u8]) -> Result<usize, ProtocolError> {
    let mut r = Reader::new(payload, GREETING);
    match r.u8()? {
        PROTOCOL_VERSION => {}
        0xFF => return Err(r.malformed(SERVER_ERROR)),
        _ => return Err(r.malformed(NOT_V10)),
    }
    r.cstr()?;
    r.bytes(4 + SCRAMBLE_1_LEN)?;
    Ok(payload.len() - r.remaining())
}

/// Decodes a greeting. Only protocol version 10 is accepted; a payload that
/// starts with 0xFF is the server refusing the connection (too many
/// connections, host blocked), which the caller normally checks first and
/// forwards as it is.
///
/// Old servers end the greeting after the lower capabilities, and some omit
/// the plugin name's NUL: both are tolerated (charset, status and plugin are
/// then 0 or empty).
pub fn parse_greeting(payload: &[u8]) -> Result<Greeting<'_>, ProtocolError> {
    let mut r = Reader::new(payload, GREETING);
    let protocol_version = r.u8()?;
    match protocol_version {
        PROTOCOL_VERSION => {}
        0xFF => return Err(r.malformed(SERVER_ERROR)),
        _ => return Err(r.malformed(NOT_V10)),
    }
    let mut g = Greeting {
        protocol_version,
        server_version: r.cstr()?,
        connection_id: r.u32()?,
        ..Greeting::default()
    };
    r.bytes(SCRAMBLE_1_LEN)?;
    g.capabilities = u64::from(r.u16()?);
    g.mariadb = g.capabilities & CLIENT_LONG_PASSWORD == 0;
    if r.is_empty() {
        return Ok(g);
    }
    g.charset = r.u8()?;
    g.status = r.u16()?;
    g.capabilities |= u64::from(r.u16()?) << 16;
    let auth_data_len = usize::from(r.u8()?);
    r.bytes(6)?;
    let ext = r.u32()?;
    if g.mariadb {
        g.capabilities |= u64::from(ext) << 32;
    }
    if g.capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let len = auth_data_len.saturating_sub(8).max(SCRAMBLE_2_MIN);
        // Lenient: a greeting cut inside the scramble has no plugin name.
        if r.bytes(len).is_err() {
            return Ok(g);
        }
    }
    if g.capabilities & CLIENT_PLUGIN_AUTH != 0 {
        g.auth_plugin = r.cstr_or_rest();
    }
    Ok(g)
}

/// Clears the `strip` capability bits in a greeting, in place: lower and
/// upper 16 bits and, for a MariaDB greeting, the extended capabilities.
///
/// Bit 0 is never cleared, whatever `strip` says: it tells MySQL from
/// MariaDB, and clearing it would make a client read a MySQL server's
/// reserved bytes as extended capabilities. A greeting too short to hold a
/// field that has bits to clear is refused (and left unchanged).
pub fn strip_greeting_capabilities(payload: &mut [u8], strip: u64) -> Result<(), ProtocolError> {
    let strip = strip & !CLIENT_LONG_PASSWORD;
    let lower = lower_caps_offset(payload)?;
    let truncated = ProtocolError::Malformed {
        message: GREETING,
        reason: super::TRUNCATED,
    };
    let Some(&[lo0, lo1]) = payload.get(lower..lower + 2) else {
        return Err(truncated);
    };
    let mariadb = lo0 & 1 == 0;
    let has_tail = payload.len() > lower + 2;
    let upper = lower + 2 + 1 + 2;
    let ext = lower + EXT_CAPS_FROM_LOWER;
    // Check every field before changing any, so an error leaves no trace.
    if has_tail && payload.len() < ext + 4 {
        return Err(truncated);
    }
    let caps = u16::from_le_bytes([lo0, lo1]) & !(strip as u16);
    if let Some(field) = payload.get_mut(lower..lower + 2) {
        field.copy_from_slice(&caps.to_le_bytes());
    }
    if !has_tail {
        return Ok(());
    }
    if let Some(field) = payload.get_mut(upper..upper + 2) {
        let mut le = [0u8; 2];
        le.copy_from_slice(field);
        let caps = u16::from_le_bytes(le) & !((strip >> 16) as u16);
        field.copy_from_slice(&caps.to_le_bytes());
    }
    if mariadb {
        clear_u32(payload, ext, (strip >> 32) as u32);
    }
    Ok(())
}

/// Sets the lower-16 capability bits `offer` in a greeting, in place: how a
/// TLS-terminating proxy advertises `CLIENT_SSL` that the server behind it
/// does not offer. Only bits 0..16 may be set (the upper and extended ones
/// are absent from a short greeting); bit 0 is never touched.
pub fn offer_greeting_capabilities(payload: &mut [u8], offer: u16) -> Result<(), ProtocolError> {
    let offer = offer & !(CLIENT_LONG_PASSWORD as u16);
    let lower = lower_caps_offset(payload)?;
    let Some(field) = payload.get_mut(lower..lower + 2) else {
        return Err(ProtocolError::Malformed {
            message: GREETING,
            reason: super::TRUNCATED,
        });
    };
    let caps = u16::from_le_bytes([field[0], field[1]]) | offer;
    field.copy_from_slice(&caps.to_le_bytes());
    Ok(())
}

/// Sets the lower-32 capability bits `set` in a handshake response or
/// SSLRequest, in place (bit 0 is never touched). Used to add `CLIENT_SSL`
/// to the response a proxy forwards over a TLS link to the server when the
/// client itself connected in plaintext; never set a bit that changes the
/// packet's layout.
pub fn set_response_capabilities(payload: &mut [u8], set: u32) -> Result<(), ProtocolError> {
    let set = set & !(CLIENT_LONG_PASSWORD as u32);
    let Some(field) = payload.get_mut(..4) else {
        return Err(ProtocolError::Malformed {
            message: RESPONSE,
            reason: super::TRUNCATED,
        });
    };
    let mut le = [0u8; 4];
    le.copy_from_slice(field);
    field.copy_from_slice(&(u32::from_le_bytes(le) | set).to_le_bytes());
    Ok(())
}

/// Clears `bits` in the little-endian `u32` at `at`, if it is there.
fn clear_u32(payload: &mut [u8], at: usize, bits: u32) {
    if let Some(field) = payload.get_mut(at..at + 4) {
        let mut le = [0u8; 4];
        le.copy_from_slice(field);
        let value = u32::from_le_bytes(le) & !bits;
        field.copy_from_slice(&value.to_le_bytes());
    }
}

/// A decoded `HandshakeResponse41`, or an `SSLRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The lower 32 bits, plus MariaDB's extended capabilities at bits
    /// 32..64 when the client is MariaDB-style (bit 0 clear).
    pub capabilities: u64,
    pub max_packet: u32,
    /// The client's collation id (low byte).
    pub charset: u8,
    pub user: Vec<u8>,
    /// Opaque to the proxy (a scramble response or a cleartext password,
    /// depending on the plugin); never log it.
    pub auth_response: Vec<u8>,
    pub database: Option<Vec<u8>>,
    pub auth_plugin: Option<Vec<u8>>,
    pub attributes: Vec<(String, String)>,
    /// The packet was the 32-byte `SSLRequest`: the client now expects a TLS
    /// handshake, and the full response follows over TLS. Only the fixed
    /// fields are set.
    pub ssl_request: bool,
}

/// Decodes a `HandshakeResponse41` or `SSLRequest`.
///
/// Layout: capabilities (4), max packet (4), collation (1), 19 filler bytes
/// and MariaDB's extended capabilities (4, zero from MySQL clients), user
/// (NUL-terminated), auth response (`lenenc` under
/// `CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA`, else 1-byte length under
/// `CLIENT_SECURE_CONNECTION`, else NUL-terminated), database under
/// `CLIENT_CONNECT_WITH_DB`, plugin under `CLIENT_PLUGIN_AUTH`, then
/// connection attributes under `CLIENT_CONNECT_ATTRS` (a `lenenc` total
/// length and `lenenc` key/value pairs).
///
/// Optional trailing fields may be missing even when their capability is
/// set (several connectors do that), and so may the last NUL: the server
/// accepts that, so the proxy must too. Protocol 4.1 is required: the
/// pre-4.1 layout is not read.
pub fn parse_handshake_response(payload: &[u8]) -> Result<HandshakeResponse, ProtocolError> {
    let mut r = Reader::new(payload, RESPONSE);
    let lower = r.u32()?;
    if u64::from(lower) & CLIENT_PROTOCOL_41 == 0 {
        return Err(r.malformed(NOT_41));
    }
    let max_packet = r.u32()?;
    let charset = r.u8()?;
    r.bytes(19)?;
    let ext = r.u32()?;
    let mut caps = u64::from(lower);
    if caps & CLIENT_LONG_PASSWORD == 0 {
        caps |= u64::from(ext) << 32;
    }
    let mut resp = HandshakeResponse {
        capabilities: caps,
        max_packet,
        charset,
        ..HandshakeResponse::default()
    };
    if r.is_empty() && caps & CLIENT_SSL != 0 {
        resp.ssl_request = true;
        return Ok(resp);
    }
    resp.user = r.cstr_or_rest().to_vec();
    if r.is_empty() {
        return Ok(resp);
    }
    let auth = if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        r.lenenc_bytes()?
    } else if caps & CLIENT_SECURE_CONNECTION != 0 {
        let len = r.u8()?;
        r.bytes(usize::from(len))?
    } else {
        r.cstr_or_rest()
    };
    resp.auth_response = auth.to_vec();
    if caps & CLIENT_CONNECT_WITH_DB != 0 && !r.is_empty() {
        resp.database = Some(r.cstr_or_rest().to_vec());
    }
    if caps & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
        resp.auth_plugin = Some(r.cstr_or_rest().to_vec());
    }
    if caps & CLIENT_CONNECT_ATTRS != 0 && !r.is_empty() {
        resp.attributes = read_attributes(&mut r);
    }
    Ok(resp)
}

/// Clears the `strip` capability bits in a handshake response or SSLRequest,
/// in place: the lower 32 bits and, for a MariaDB-style client with the
/// full 32-byte fixed part, the extended capabilities at bytes 28..32.
///
/// Bit 0 is never cleared (see [`strip_greeting_capabilities`]). Note that
/// clearing a bit that changes the layout of the rest of the packet
/// (`CLIENT_CONNECT_WITH_DB`, `CLIENT_PLUGIN_AUTH`, …) would make the
/// server misread it: strip those from the greeting instead, so the client
/// never sets them.
pub fn strip_response_capabilities(payload: &mut [u8], strip: u64) -> Result<(), ProtocolError> {
    let strip = strip & !CLIENT_LONG_PASSWORD;
    let Some(field) = payload.get(..4) else {
        return Err(ProtocolError::Malformed {
            message: RESPONSE,
            reason: super::TRUNCATED,
        });
    };
    let mariadb = field.first().is_some_and(|b| b & 1 == 0);
    clear_u32(payload, 0, strip as u32);
    if mariadb {
        clear_u32(payload, RESPONSE_EXT_CAPS, (strip >> 32) as u32);
    }
    Ok(())
}

/// First byte of an `AuthSwitchRequest`: during authentication the server
/// asks the client to restart with another plugin. (The same byte ends
/// result sets in the command phase: never read authentication packets
/// with [`crate::mysql::response::is_terminator`].)
pub const AUTH_SWITCH_HEADER: u8 = 0xFE;
/// First byte of `AuthMoreData`: plugin-specific data during
/// authentication, e.g. `caching_sha2_password`'s 0x03 (fast auth
/// succeeded) and 0x04 (full authentication needed), or a public key.
pub const AUTH_MORE_DATA_HEADER: u8 = 0x01;

const AUTH_SWITCH: &str = "AuthSwitchRequest";

/// A decoded `AuthSwitchRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthSwitch<'a> {
    /// The plugin the client must use now, e.g. `mysql_clear_password`
    /// (which sends the password in clear text: policy may refuse it on a
    /// connection without TLS).
    pub plugin: &'a [u8],
    /// The plugin's data (a new scramble); never log it.
    pub data: &'a [u8],
}

/// Decodes an `AuthSwitchRequest`: 0xFE, plugin name (NUL-terminated), then
/// the plugin data (MySQL appends a NUL to it, which is kept). A bare 0xFE
/// is the pre-4.1 "use the old password" request: plugin
/// `mysql_old_password`, no data.
pub fn parse_auth_switch(payload: &[u8]) -> Result<AuthSwitch<'_>, ProtocolError> {
    let mut r = Reader::new(payload, AUTH_SWITCH);
    r.expect(AUTH_SWITCH_HEADER)?;
    if r.is_empty() {
        return Ok(AuthSwitch {
            plugin: b"mysql_old_password",
            data: b"",
        });
    }
    Ok(AuthSwitch {
        plugin: r.cstr_or_rest(),
        data: r.take_rest(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::caps::*;
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The greeting of MariaDB 10.11.19 (Debian 12), frame header removed.
    const MARIADB_GREETING: &str = "0a352e352e352d31302e31312e31392d4d6172696144422d302b64656231327531000900000049397e33224d3f3100fef72d0200ff81150000000000001d000000793126675557343c724a5a63006d7973716c5f6e61746976655f70617373776f726400";

    /// `mariadb -h127.0.0.1 -uroot` (Connector/C 3.3.20) answering it,
    /// no password, with its connection attributes.
    const MARIADB_RESPONSE: &str = "84a2bf000000100021000000000000000000000000000000000000001d000000726f6f7400006d7973716c5f6e61746976655f70617373776f7264007e035f6f73054c696e75780c5f636c69656e745f6e616d650a6c69626d617269616462045f70696404353535300f5f636c69656e745f76657273696f6e06332e332e3230095f706c6174666f726d067838365f36340c70726f6772616d5f6e616d65056d7973716c0c5f7365727665725f686f7374093132372e302e302e31";

    #[test]
    fn captured_mariadb_greeting() {
        let payload = hex(MARIADB_GREETING);
        let g = parse_greeting(&payload).unwrap();
        assert_eq!(g.protocol_version, 10);
        assert_eq!(g.server_version, b"5.5.5-10.11.19-MariaDB-0+deb12u1");
        assert_eq!(g.connection_id, 9);
        assert!(g.mariadb);
        assert_eq!(g.capabilities & 0xFFFF_FFFF, 0x81FF_F7FE);
        assert_eq!(g.capabilities >> 32, 0x1D);
        assert!(g.capabilities & CLIENT_PROTOCOL_41 != 0);
        assert!(g.capabilities & CLIENT_DEPRECATE_EOF != 0);
        assert!(g.capabilities & MARIADB_CLIENT_STMT_BULK_OPERATIONS != 0);
        assert!(g.capabilities & MARIADB_CLIENT_CACHE_METADATA != 0);
        assert!(g.capabilities & MARIADB_CLIENT_COM_MULTI == 0);
        assert_eq!((g.charset, g.status), (45, 2));
        assert_eq!(g.auth_plugin, b"mysql_native_password");
    }

    #[test]
    fn greeting_variants() {
        let payload = hex(MARIADB_GREETING);
        // a MySQL greeting: bit 0 set, reserved bytes are not capabilities
        let mut mysql = payload.clone();
        let lower = lower_caps_offset(&mysql).unwrap();
        mysql[lower] |= 1;
        let g = parse_greeting(&mysql).unwrap();
        assert!(!g.mariadb);
        assert_eq!(g.capabilities >> 32, 0);
        // old servers stop after the lower capabilities
        let g = parse_greeting(&payload[..lower + 2]).unwrap();
        assert_eq!(
            (g.capabilities, g.charset, g.auth_plugin),
            (0xF7FE, 0, &b""[..])
        );
        // plugin name without NUL, and a greeting cut inside the scramble
        let g = parse_greeting(&payload[..payload.len() - 1]).unwrap();
        assert_eq!(g.auth_plugin, b"mysql_native_password");
        let g = parse_greeting(&payload[..lower + EXT_CAPS_FROM_LOWER + 4 + 5]).unwrap();
        assert_eq!((g.capabilities >> 32, g.auth_plugin), (0x1D, &b""[..]));
        // errors
        for cut in [
            0,
            1,
            10,
            lower - 1,
            lower + 1,
            lower + 5,
            lower + EXT_CAPS_FROM_LOWER + 3,
        ] {
            assert!(parse_greeting(&payload[..cut]).is_err(), "{cut}");
        }
        let err = parse_greeting(&[0xFF, 0x10, 0x04, b'T']).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::Malformed {
                message: GREETING,
                reason: SERVER_ERROR
            }
        );
        let mut v9 = payload.clone();
        v9[0] = 9;
        assert!(parse_greeting(&v9).is_err());
    }

    #[test]
    fn strip_greeting() {
        let original = hex(MARIADB_GREETING);
        let mut payload = original.clone();
        let strip = UNSUPPORTED | CLIENT_SSL | CLIENT_LONG_PASSWORD;
        strip_greeting_capabilities(&mut payload, strip).unwrap();
        let before = parse_greeting(&original).unwrap();
        let after = parse_greeting(&payload).unwrap();
        assert_eq!(after.capabilities, before.capabilities & !strip);
        assert!(after.mariadb, "bit 0 is never cleared");
        assert_eq!(after.capabilities >> 32, 0);
        // nothing else moved
        let diff: Vec<usize> = (0..payload.len())
            .filter(|&i| payload[i] != original[i])
            .collect();
        assert!(diff.len() <= 8, "{diff:?}");
        assert_eq!(
            Greeting {
                capabilities: before.capabilities,
                ..after
            },
            before
        );
        // MySQL greeting: the reserved bytes are left alone
        let mut mysql = original.clone();
        let lower = lower_caps_offset(&mysql).unwrap();
        mysql[lower] |= 1;
        let reserved = mysql[lower + EXT_CAPS_FROM_LOWER..][..4].to_vec();
        strip_greeting_capabilities(&mut mysql, u64::MAX).unwrap();
        assert_eq!(&mysql[lower + EXT_CAPS_FROM_LOWER..][..4], &reserved[..]);
        assert_eq!(parse_greeting(&mysql).unwrap().capabilities, 1);
        // truncated greetings are refused untouched; a short old one is fine
        let mut short = original[..lower + 2].to_vec();
        strip_greeting_capabilities(&mut short, CLIENT_SSL).unwrap();
        assert_eq!(parse_greeting(&short).unwrap().capabilities & CLIENT_SSL, 0);
        for cut in [0, 5, lower + 1, lower + 3, lower + EXT_CAPS_FROM_LOWER + 3] {
            let mut bad = original[..cut].to_vec();
            assert!(
                strip_greeting_capabilities(&mut bad, CLIENT_SSL).is_err(),
                "{cut}"
            );
            assert_eq!(&bad[..], &original[..cut]);
        }
    }

    #[test]
    fn offer_ssl_in_greeting_and_response() {
        let original = hex(MARIADB_GREETING);
        let mut payload = original.clone();
        strip_greeting_capabilities(&mut payload, CLIENT_SSL).unwrap();
        assert_eq!(
            parse_greeting(&payload).unwrap().capabilities & CLIENT_SSL,
            0
        );
        offer_greeting_capabilities(&mut payload, CLIENT_SSL as u16).unwrap();
        let g = parse_greeting(&payload).unwrap();
        assert_ne!(g.capabilities & CLIENT_SSL, 0);
        assert!(g.mariadb, "bit 0 untouched");
        assert!(offer_greeting_capabilities(&mut original[..3].to_vec(), 1).is_err());

        let mut resp = hex(MARIADB_RESPONSE);
        strip_response_capabilities(&mut resp, CLIENT_SSL).unwrap();
        let before = parse_handshake_response(&resp).unwrap();
        set_response_capabilities(&mut resp, CLIENT_SSL as u32).unwrap();
        let after = parse_handshake_response(&resp).unwrap();
        assert_eq!(after.capabilities, before.capabilities | CLIENT_SSL);
        assert_eq!(after.user, before.user);
        assert!(!after.ssl_request, "a full response stays one");
        assert!(set_response_capabilities(&mut [0u8; 3], 1).is_err());
    }

    #[test]
    fn captured_mariadb_response() {
        let payload = hex(MARIADB_RESPONSE);
        let resp = parse_handshake_response(&payload).unwrap();
        assert_eq!(resp.capabilities & 0xFFFF_FFFF, 0x00BF_A284);
        assert_eq!(resp.capabilities >> 32, 0x1D);
        assert_eq!((resp.max_packet, resp.charset), (1 << 20, 33));
        assert_eq!(resp.user, b"root");
        assert_eq!(resp.auth_response, b"");
        assert_eq!(resp.database, None);
        assert_eq!(
            resp.auth_plugin.as_deref(),
            Some(&b"mysql_native_password"[..])
        );
        assert!(!resp.ssl_request);
        let attrs: Vec<(&str, &str)> = resp
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            attrs,
            vec![
                ("_os", "Linux"),
                ("_client_name", "libmariadb"),
                ("_pid", "5550"),
                ("_client_version", "3.3.20"),
                ("_platform", "x86_64"),
                ("program_name", "mysql"),
                ("_server_host", "127.0.0.1"),
            ]
        );
    }

    fn response(caps: u32, ext: u32, rest: &[u8]) -> Vec<u8> {
        let mut v = caps.to_le_bytes().to_vec();
        v.extend_from_slice(&(1u32 << 24).to_le_bytes());
        v.push(45);
        v.extend_from_slice(&[0; 19]);
        v.extend_from_slice(&ext.to_le_bytes());
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn response_variants() {
        let base = (CLIENT_PROTOCOL_41 | CLIENT_LONG_PASSWORD) as u32;
        // SSLRequest
        let ssl = response(base | CLIENT_SSL as u32, 0, b"");
        let resp = parse_handshake_response(&ssl).unwrap();
        assert!(resp.ssl_request);
        assert_eq!((resp.user.len(), resp.charset), (0, 45));
        // a MySQL client: the ext bytes are ignored
        let resp = parse_handshake_response(&response(base, 0xFFFF, b"u\0")).unwrap();
        assert_eq!(resp.capabilities, u64::from(base));
        assert_eq!(resp.user, b"u");
        // every auth response encoding
        let lenenc = (CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_SECURE_CONNECTION) as u32;
        let cases: &[(u32, &[u8])] = &[
            (lenenc, b"u\0\xfc\x02\x00pw"),
            (CLIENT_SECURE_CONNECTION as u32, b"u\0\x02pw"),
            (0, b"u\0pw\0"),
            (0, b"u\0pw"),
        ];
        for &(flags, rest) in cases {
            let resp = parse_handshake_response(&response(base | flags, 0, rest)).unwrap();
            assert_eq!(resp.auth_response, b"pw", "{rest:?}");
        }
        // database, plugin and attributes
        let flags = (CLIENT_SECURE_CONNECTION
            | CLIENT_CONNECT_WITH_DB
            | CLIENT_PLUGIN_AUTH
            | CLIENT_CONNECT_ATTRS) as u32;
        let full = response(
            base | flags,
            0,
            b"u\0\x00shop\0caching_sha2_password\0\x06\x01a\x01b\x01c",
        );
        let resp = parse_handshake_response(&full).unwrap();
        assert_eq!(resp.database.as_deref(), Some(&b"shop"[..]));
        assert_eq!(
            resp.auth_plugin.as_deref(),
            Some(&b"caching_sha2_password"[..])
        );
        // a key without its value is dropped
        assert_eq!(resp.attributes, vec![("a".to_string(), "b".to_string())]);
        // every prefix after the fixed part parses or fails cleanly, and
        // what it yields is a prefix of the full answer
        for cut in SSL_REQUEST_LEN..full.len() {
            if let Ok(r) = parse_handshake_response(&full[..cut]) {
                assert!(r.user.is_empty() || r.user == b"u", "{cut}");
            }
        }
        // errors
        assert!(parse_handshake_response(&response(0, 0, b"u\0")).is_err());
        assert_eq!(
            parse_handshake_response(&[0, 0, 0, 0]).unwrap_err(),
            ProtocolError::Malformed {
                message: RESPONSE,
                reason: NOT_41
            }
        );
        assert!(parse_handshake_response(&full[..31]).is_err());
        let short_auth = response(base | CLIENT_SECURE_CONNECTION as u32, 0, b"u\0\x09pw");
        assert!(parse_handshake_response(&short_auth).is_err());
    }

    #[test]
    fn auth_switch() {
        let payload = [&[0xFE][..], b"mysql_clear_password\0"].concat();
        let sw = parse_auth_switch(&payload).unwrap();
        assert_eq!(
            (sw.plugin, sw.data),
            (&b"mysql_clear_password"[..], &b""[..])
        );
        let payload = [
            &[0xFE][..],
            b"mysql_native_password\0abcdefghij0123456789\0",
        ]
        .concat();
        let sw = parse_auth_switch(&payload).unwrap();
        assert_eq!(sw.plugin, b"mysql_native_password");
        assert_eq!(sw.data, b"abcdefghij0123456789\0");
        assert_eq!(
            parse_auth_switch(&[0xFE]).unwrap().plugin,
            b"mysql_old_password"
        );
        assert!(parse_auth_switch(&[0x01, 0x03]).is_err());
        assert!(parse_auth_switch(&[]).is_err());
    }

    #[test]
    fn strip_response() {
        let original = hex(MARIADB_RESPONSE);
        let mut payload = original.clone();
        let strip = CLIENT_SSL
            | CLIENT_LONG_PASSWORD
            | MARIADB_CLIENT_STMT_BULK_OPERATIONS
            | MARIADB_CLIENT_CACHE_METADATA;
        strip_response_capabilities(&mut payload, strip).unwrap();
        let before = parse_handshake_response(&original).unwrap();
        let after = parse_handshake_response(&payload).unwrap();
        assert_eq!(after.capabilities, before.capabilities & !strip);
        assert_eq!(
            HandshakeResponse {
                capabilities: before.capabilities,
                ..after
            },
            before
        );
        // MySQL client: bytes 28..32 untouched
        let mut mysql = response(
            (CLIENT_PROTOCOL_41 | CLIENT_LONG_PASSWORD | CLIENT_SSL) as u32,
            7,
            b"",
        );
        strip_response_capabilities(&mut mysql, u64::MAX).unwrap();
        assert_eq!(&mysql[..4], &1u32.to_le_bytes());
        assert_eq!(&mysql[28..32], &7u32.to_le_bytes());
        // short packets: only what is there
        let mut short = vec![0xFF, 0xFF, 0xFF, 0xFF, 1];
        strip_response_capabilities(&mut short, CLIENT_SSL).unwrap();
        assert_eq!(short, [0xFF, 0xF7, 0xFF, 0xFF, 1]);
        assert!(strip_response_capabilities(&mut [0; 3], 1).is_err());
    }
}
