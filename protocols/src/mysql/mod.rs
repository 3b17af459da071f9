//! MySQL / MariaDB client/server protocol 4.1.
//!
//! Owns framing ([`packet`]: 3-byte length + sequence id, logical packets
//! split at 16 MiB), the connection phase ([`handshake`]), the generic
//! server replies and column metadata ([`response`]), result rows in both
//! the text and the binary protocol ([`rows`]), the parameters of
//! `COM_STMT_EXECUTE` ([`execute`]), the other client commands the proxy
//! inspects ([`command`]) and collation ids ([`charset`]), plus the
//! capability and status bits they all depend on ([`caps`], [`status`]).
//!
//! Must never: do I/O, decide policy, or panic on input. Decoders borrow from
//! the payload they are handed; the only copies are the few owned structs a
//! caller keeps for the life of a connection or a statement, and every copy
//! is bounded by the bytes actually received, never by a length field.
//!
//! Unlike the PostgreSQL codec, text here is raw bytes in the connection's
//! character set (which may be GBK or latin1): decoders hand out `&[u8]` and
//! leave conversion to the caller, who knows the charset ([`charset`]).
//! Connection attributes and session-tracking values are the exception: they
//! are informational, so they are converted lossily to `String`.
//!
//! Written by hand rather than on `mysql_common`: a proxy must forward
//! packets it does not understand byte for byte, tolerate the optional
//! trailing fields different clients omit, and never allocate from a length
//! field, none of which a client library needs to care about.
//!
//! # Capabilities this codec does not parse
//!
//! Several capabilities change the layout of packets decoded here; the
//! proxy should clear [`caps::UNSUPPORTED`] from the server greeting (and
//! the client's response) so that neither side uses them. See its doc.

use crate::ProtocolError;

pub mod charset;
pub mod command;
pub mod execute;
pub mod handshake;
pub mod packet;
pub mod response;
pub mod rows;

/// Capability flags (`CLIENT_*`), as a `u64`: bits 0..32 are the standard
/// MySQL flags, bits 32..64 are MariaDB's extended capabilities, which
/// travel in a separate 4-byte field of the greeting and the handshake
/// response and exist only when bit 0 (`CLIENT_LONG_PASSWORD`, which MariaDB
/// calls `CLIENT_MYSQL`) is clear.
pub mod caps {
    pub const CLIENT_LONG_PASSWORD: u64 = 1;
    pub const CLIENT_FOUND_ROWS: u64 = 2;
    pub const CLIENT_LONG_FLAG: u64 = 4;
    pub const CLIENT_CONNECT_WITH_DB: u64 = 8;
    pub const CLIENT_NO_SCHEMA: u64 = 16;
    pub const CLIENT_COMPRESS: u64 = 32;
    pub const CLIENT_ODBC: u64 = 64;
    pub const CLIENT_LOCAL_FILES: u64 = 128;
    pub const CLIENT_IGNORE_SPACE: u64 = 256;
    pub const CLIENT_PROTOCOL_41: u64 = 512;
    pub const CLIENT_INTERACTIVE: u64 = 1024;
    pub const CLIENT_SSL: u64 = 2048;
    pub const CLIENT_TRANSACTIONS: u64 = 8192;
    pub const CLIENT_SECURE_CONNECTION: u64 = 32768;
    pub const CLIENT_MULTI_STATEMENTS: u64 = 1 << 16;
    pub const CLIENT_MULTI_RESULTS: u64 = 1 << 17;
    pub const CLIENT_PS_MULTI_RESULTS: u64 = 1 << 18;
    pub const CLIENT_PLUGIN_AUTH: u64 = 1 << 19;
    pub const CLIENT_CONNECT_ATTRS: u64 = 1 << 20;
    pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u64 = 1 << 21;
    pub const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS: u64 = 1 << 22;
    pub const CLIENT_SESSION_TRACK: u64 = 1 << 23;
    pub const CLIENT_DEPRECATE_EOF: u64 = 1 << 24;
    pub const CLIENT_OPTIONAL_RESULTSET_METADATA: u64 = 1 << 25;
    pub const CLIENT_ZSTD_COMPRESSION: u64 = 1 << 26;
    pub const CLIENT_QUERY_ATTRIBUTES: u64 = 1 << 27;
    pub const CLIENT_SSL_VERIFY_SERVER_CERT: u64 = 1 << 30;
    pub const MARIADB_CLIENT_PROGRESS: u64 = 1 << 32;
    pub const MARIADB_CLIENT_COM_MULTI: u64 = 1 << 33;
    pub const MARIADB_CLIENT_STMT_BULK_OPERATIONS: u64 = 1 << 34;
    pub const MARIADB_CLIENT_EXTENDED_METADATA: u64 = 1 << 35;
    pub const MARIADB_CLIENT_CACHE_METADATA: u64 = 1 << 36;

    /// Capabilities that change packet layouts this codec reads, or hide
    /// packets the proxy needs. A proxy that inspects traffic should clear
    /// them from the greeting it forwards (and from the response, in case a
    /// client sets them anyway) so that neither side turns them on:
    ///
    /// - compression (`CLIENT_COMPRESS`, `CLIENT_ZSTD_COMPRESSION`) wraps
    ///   every packet in another framing layer;
    /// - `CLIENT_QUERY_ATTRIBUTES` puts attributes before the SQL of
    ///   `COM_QUERY` and adds names and a count to `COM_STMT_EXECUTE`;
    /// - `CLIENT_OPTIONAL_RESULTSET_METADATA` and
    ///   `MARIADB_CLIENT_CACHE_METADATA` let the server skip column
    ///   definitions, without which binary rows cannot be decoded and
    ///   columns cannot be masked;
    /// - `MARIADB_CLIENT_EXTENDED_METADATA` inserts a field into every column
    ///   definition ([`crate::mysql::response::parse_column_def_ext`] can
    ///   read it, [`crate::mysql::response::parse_column_def`] cannot);
    /// - `MARIADB_CLIENT_STMT_BULK_OPERATIONS` enables `COM_STMT_BULK_EXECUTE`,
    ///   whose parameter rows are not decoded here;
    /// - `MARIADB_CLIENT_COM_MULTI` packs several commands into one packet;
    /// - `MARIADB_CLIENT_PROGRESS` makes the server interleave 0xFF packets
    ///   with error code 0xFFFF that are not errors.
    pub const UNSUPPORTED: u64 = CLIENT_COMPRESS
        | CLIENT_ZSTD_COMPRESSION
        | CLIENT_QUERY_ATTRIBUTES
        | CLIENT_OPTIONAL_RESULTSET_METADATA
        | MARIADB_CLIENT_CACHE_METADATA
        | MARIADB_CLIENT_EXTENDED_METADATA
        | MARIADB_CLIENT_STMT_BULK_OPERATIONS
        | MARIADB_CLIENT_COM_MULTI
        | MARIADB_CLIENT_PROGRESS;
}

/// Server status flags, carried by OK and EOF packets: the proxy follows
/// transactions and multi-result sequences through them. Every flag is
/// named `SERVER_STATUS_*`; the two MySQL spells differently in C
/// (`SERVER_MORE_RESULTS_EXISTS`, `SERVER_SESSION_STATE_CHANGED`) exist
/// under those names too.
pub mod status {
    pub const SERVER_STATUS_IN_TRANS: u16 = 1;
    pub const SERVER_STATUS_AUTOCOMMIT: u16 = 2;
    /// Another result set (or OK) follows this one in the same response.
    pub const SERVER_STATUS_MORE_RESULTS_EXISTS: u16 = 8;
    /// A cursor was opened by `COM_STMT_EXECUTE`: rows come by
    /// `COM_STMT_FETCH`.
    pub const SERVER_STATUS_CURSOR_EXISTS: u16 = 0x40;
    /// The last `COM_STMT_FETCH` returned the cursor's last row.
    pub const SERVER_STATUS_LAST_ROW_SENT: u16 = 0x80;
    /// `sql_mode` has `NO_BACKSLASH_ESCAPES`: `\` is not an escape in
    /// string literals, which changes how SQL must be tokenised.
    pub const SERVER_STATUS_NO_BACKSLASH_ESCAPES: u16 = 0x200;
    /// The OK packet carries session-state changes (needs
    /// `CLIENT_SESSION_TRACK`).
    pub const SERVER_STATUS_SESSION_STATE_CHANGED: u16 = 0x4000;
    /// MySQL's C name of [`SERVER_STATUS_MORE_RESULTS_EXISTS`].
    pub const SERVER_MORE_RESULTS_EXISTS: u16 = SERVER_STATUS_MORE_RESULTS_EXISTS;
    /// MySQL's C name of [`SERVER_STATUS_SESSION_STATE_CHANGED`].
    pub const SERVER_SESSION_STATE_CHANGED: u16 = SERVER_STATUS_SESSION_STATE_CHANGED;
}

/// Reason given when a field runs past the end of the payload.
pub(crate) const TRUNCATED: &str = "packet ends inside a field";
/// Reason given when a NUL-terminated string has no NUL.
pub(crate) const MISSING_NUL: &str = "string is missing its NUL terminator";
/// Reason given when bytes follow the last field of a strict layout.
pub(crate) const TRAILING: &str = "bytes follow the last field";
/// Reason given when a length-encoded integer starts with 0xFB or 0xFF,
/// or is cut short.
pub(crate) const BAD_LENENC: &str = "length-encoded integer is truncated or starts with 0xFB/0xFF";
/// Reason given when a payload does not start with the expected byte.
pub(crate) const WRONG_HEADER: &str = "payload does not start with the expected header byte";

/// Bounds-checked little-endian reading position over one payload.
///
/// Every read checks the remaining length first, so a hostile length becomes
/// `Malformed` instead of a panic, and every slice borrows from the input.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    message: &'static str,
}

impl<'a> Reader<'a> {
    /// `message` names the packet in errors, e.g. `"OK"`.
    pub(crate) fn new(payload: &'a [u8], message: &'static str) -> Self {
        Self {
            rest: payload,
            message,
        }
    }

    pub(crate) fn malformed(&self, reason: &'static str) -> ProtocolError {
        ProtocolError::Malformed {
            message: self.message,
            reason,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The unread bytes, without consuming them.
    pub(crate) fn peek_rest(&self) -> &'a [u8] {
        self.rest
    }

    /// The next byte, without consuming it.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Consumes and returns everything left.
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
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ProtocolError> {
        self.array().map(u64::from_le_bytes)
    }

    /// Checks the first byte against `header` and consumes it.
    pub(crate) fn expect(&mut self, header: u8) -> Result<(), ProtocolError> {
        if self.u8()? == header {
            Ok(())
        } else {
            Err(self.malformed(WRONG_HEADER))
        }
    }

    /// A NUL-terminated string (terminator consumed, not returned).
    pub(crate) fn cstr(&mut self) -> Result<&'a [u8], ProtocolError> {
        let Some(nul) = self.rest.iter().position(|&b| b == 0) else {
            return Err(self.malformed(MISSING_NUL));
        };
        let (text, tail) = self.rest.split_at(nul);
        self.rest = tail.get(1..).unwrap_or_default();
        Ok(text)
    }

    /// A NUL-terminated string, or everything left when there is no NUL:
    /// several clients and servers omit the terminator of the last string
    /// of a packet (the auth plugin name above all), and the server reads
    /// it the same way.
    pub(crate) fn cstr_or_rest(&mut self) -> &'a [u8] {
        match self.cstr() {
            Ok(text) => text,
            Err(_) => self.take_rest(),
        }
    }

    /// A length-encoded integer; 0xFB (NULL) and 0xFF are errors here.
    pub(crate) fn lenenc_int(&mut self) -> Result<u64, ProtocolError> {
        let (value, used) =
            response::lenenc_int(self.rest).ok_or_else(|| self.malformed(BAD_LENENC))?;
        self.rest = self.rest.get(used..).unwrap_or_default();
        Ok(value)
    }

    /// A length-encoded string: the length is checked against the bytes
    /// present before anything is sliced.
    pub(crate) fn lenenc_bytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let len = self.lenenc_int()?;
        let len = usize::try_from(len).map_err(|_| self.malformed(TRUNCATED))?;
        self.bytes(len)
    }

    /// Rejects trailing bytes.
    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.malformed(TRAILING))
        }
    }
}

/// Decodes connection attributes: length-encoded key/value pairs, bounded by
/// the bytes given (the caller has already cut them to the announced total).
/// Stops at the first malformed pair rather than failing: attributes are
/// informational (client name, version, pid) and a client that mangles them
/// must not be refused for it. The Vec grows with the pairs actually present,
/// each at least 2 bytes, so it is bounded by the input.
pub(crate) fn parse_attributes(mut data: &[u8]) -> Vec<(String, String)> {
    let mut attrs = Vec::new();
    while !data.is_empty() {
        let mut r = Reader::new(data, "connection attributes");
        let (Ok(key), Ok(value)) = (r.lenenc_bytes(), r.lenenc_bytes()) else {
            break;
        };
        attrs.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
        data = r.peek_rest();
    }
    attrs
}

/// Reads the `lenenc` total length of connection attributes and returns the
/// decoded pairs; a total larger than what is left is cut to what is left
/// (lenient, see [`parse_attributes`]).
pub(crate) fn read_attributes(r: &mut Reader<'_>) -> Vec<(String, String)> {
    let Ok(total) = r.lenenc_int() else {
        return Vec::new();
    };
    let total = usize::try_from(total).map_or(r.remaining(), |t| t.min(r.remaining()));
    match r.bytes(total) {
        Ok(data) => parse_attributes(data),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod conversation;
/// Decoder invariants shared by the unit tests and the cargo-fuzz targets
/// (feature `fuzzing`, never enabled by the proxy).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
