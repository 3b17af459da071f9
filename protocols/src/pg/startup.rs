//! The untagged packets a client sends before the first regular message.
//!
//! Owns SSLRequest, GSSENCRequest, CancelRequest and StartupMessage: telling
//! them apart by their 32-bit code, decoding them borrowed from the input,
//! and encoding the two a proxy needs to send (StartupMessage for probes and
//! tests, CancelRequest to forward a cancel with the backend's key).
//!
//! Must never: frame (that is [`super::frame::check_startup`]), decide which
//! user or database is allowed, or panic on input.

use crate::pg::Cursor;
use crate::ProtocolError;

/// Protocol 3.0 as sent in a StartupMessage (major in the high 16 bits).
pub const PROTOCOL_3_0: u32 = 196608;
/// Request codes use major version 1234, which no real protocol has.
pub const SSL_REQUEST_CODE: u32 = 80877103;
pub const GSSENC_REQUEST_CODE: u32 = 80877104;
pub const CANCEL_REQUEST_CODE: u32 = 80877102;

/// The only protocol major version this codec speaks.
const PROTOCOL_MAJOR: u16 = 3;
/// Highest minor version whose messages this codec knows (3.2 brings
/// longer cancel keys). Any 3.x startup is still accepted: the server
/// answers NegotiateProtocolVersion when it speaks less, exactly as it
/// does for direct clients, so the request is passed on, not refused.
pub const MAX_PROTOCOL_MINOR: u16 = 2;

/// SSLRequest and GSSENCRequest are exactly length + code.
const REQUEST_PACKET_LEN: usize = 8;
/// CancelRequest (protocol 3.0): length, code, process id, secret key.
const CANCEL_PACKET_LEN: usize = 16;

/// One startup-phase packet, borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket<'a> {
    SslRequest,
    GssEncRequest,
    /// Cancel the query running on the backend identified by this key; the
    /// key the client holds is the one the proxy gave it, not necessarily
    /// the backend's own.
    Cancel {
        process_id: u32,
        secret_key: u32,
    },
    /// Protocol major must be 3 (any minor; the server negotiates); params
    /// in wire order; the terminating empty name ends the list.
    Startup {
        protocol: u32,
        params: Vec<(&'a str, &'a str)>,
    },
}

impl StartupPacket<'_> {
    /// The value of startup parameter `name`, if this is a StartupMessage
    /// that carries it. When a name repeats, the last value wins, as it does
    /// in the server, so the firewall sees the identity the server will use.
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            StartupPacket::Startup { params, .. } => params
                .iter()
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v),
            _ => None,
        }
    }
}

/// Decodes a whole startup-phase packet, length field included (as framed
/// by [`super::frame::check_startup`]).
pub fn decode_startup(packet: &[u8]) -> Result<StartupPacket<'_>, ProtocolError> {
    let mut c = Cursor::new(packet, "StartupMessage");
    let len = c.u32()?;
    if usize::try_from(len).ok() != Some(packet.len()) {
        return Err(c.malformed("length field does not match the packet size"));
    }
    let code = c.u32()?;
    let exact = |expected: usize, message: &'static str| {
        if packet.len() == expected {
            Ok(())
        } else {
            Err(ProtocolError::Malformed {
                message,
                reason: "unexpected packet length",
            })
        }
    };
    match code {
        SSL_REQUEST_CODE => {
            exact(REQUEST_PACKET_LEN, "SSLRequest")?;
            Ok(StartupPacket::SslRequest)
        }
        GSSENC_REQUEST_CODE => {
            exact(REQUEST_PACKET_LEN, "GSSENCRequest")?;
            Ok(StartupPacket::GssEncRequest)
        }
        CANCEL_REQUEST_CODE => {
            exact(CANCEL_PACKET_LEN, "CancelRequest")?;
            Ok(StartupPacket::Cancel {
                process_id: c.u32()?,
                secret_key: c.u32()?,
            })
        }
        protocol => {
            let (major, minor) = ((protocol >> 16) as u16, protocol as u16);
            if major != PROTOCOL_MAJOR {
                return Err(ProtocolError::UnsupportedProtocol { major, minor });
            }
            Ok(StartupPacket::Startup {
                protocol,
                params: decode_params(c)?,
            })
        }
    }
}

/// Name/value C-string pairs up to an empty name, which must be the last
/// byte (PostgreSQL: "expected terminator as last byte").
fn decode_params(mut c: Cursor<'_>) -> Result<Vec<(&str, &str)>, ProtocolError> {
    let mut params = Vec::new();
    loop {
        let name = c.cstr()?;
        if name.is_empty() {
            c.finish()?;
            return Ok(params);
        }
        let value = c.cstr()?;
        params.push((name, value));
    }
}

/// A CancelRequest carrying `process_id` and `secret_key`.
pub fn encode_cancel(process_id: u32, secret_key: u32) -> [u8; 16] {
    let mut out = [0u8; CANCEL_PACKET_LEN];
    let fields = [
        CANCEL_PACKET_LEN as u32,
        CANCEL_REQUEST_CODE,
        process_id,
        secret_key,
    ];
    for (chunk, field) in out.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&field.to_be_bytes());
    }
    out
}

/// Build a StartupMessage for protocol 3.0 (used by tests and by the proxy's
/// readiness probe). Names and values are cut at an interior NUL.
pub fn encode_startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
    for (name, value) in params {
        crate::pg::put_cstr(&mut out, name);
        crate::pg::put_cstr(&mut out, value);
    }
    out.push(0);
    let len = u32::try_from(out.len()).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u32, rest: &[u8]) -> Vec<u8> {
        let mut v = ((rest.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    fn malformed(message: &'static str, reason: &'static str) -> ProtocolError {
        ProtocolError::Malformed { message, reason }
    }

    #[test]
    fn decode_table() {
        let mut cancel_body = 1234u32.to_be_bytes().to_vec();
        cancel_body.extend_from_slice(&5678u32.to_be_bytes());
        let mut wrong_len = packet(PROTOCOL_3_0, b"\0");
        wrong_len[3] += 1;
        let cases: Vec<(Vec<u8>, Result<StartupPacket<'static>, ProtocolError>)> = vec![
            (packet(SSL_REQUEST_CODE, b""), Ok(StartupPacket::SslRequest)),
            (
                packet(GSSENC_REQUEST_CODE, b""),
                Ok(StartupPacket::GssEncRequest),
            ),
            (
                packet(CANCEL_REQUEST_CODE, &cancel_body),
                Ok(StartupPacket::Cancel {
                    process_id: 1234,
                    secret_key: 5678,
                }),
            ),
            (
                packet(PROTOCOL_3_0, b"user\0alice\0database\0db\0\0"),
                Ok(StartupPacket::Startup {
                    protocol: PROTOCOL_3_0,
                    params: vec![("user", "alice"), ("database", "db")],
                }),
            ),
            (
                packet(PROTOCOL_3_0, b"\0"),
                Ok(StartupPacket::Startup {
                    protocol: PROTOCOL_3_0,
                    params: vec![],
                }),
            ),
            (
                packet(PROTOCOL_3_0 + 2, b"user\0\0\0"),
                Ok(StartupPacket::Startup {
                    protocol: PROTOCOL_3_0 + 2,
                    params: vec![("user", "")],
                }),
            ),
            (
                // Newer minors are the server's to negotiate down.
                packet(PROTOCOL_3_0 + 9, b"\0"),
                Ok(StartupPacket::Startup {
                    protocol: PROTOCOL_3_0 + 9,
                    params: vec![],
                }),
            ),
            (
                packet(2 << 16, b"\0"),
                Err(ProtocolError::UnsupportedProtocol { major: 2, minor: 0 }),
            ),
            (
                // an unknown request code of the 1234 family
                packet(80877199, b""),
                Err(ProtocolError::UnsupportedProtocol {
                    major: 1234,
                    minor: 5775,
                }),
            ),
            (
                packet(SSL_REQUEST_CODE, b"x"),
                Err(malformed("SSLRequest", "unexpected packet length")),
            ),
            (
                packet(GSSENC_REQUEST_CODE, b"xxxx"),
                Err(malformed("GSSENCRequest", "unexpected packet length")),
            ),
            (
                packet(CANCEL_REQUEST_CODE, &[0; 7]),
                Err(malformed("CancelRequest", "unexpected packet length")),
            ),
            (
                // protocol 3.2 cancel keys may be longer; 3.0 keys are 4 bytes
                packet(CANCEL_REQUEST_CODE, &[0; 12]),
                Err(malformed("CancelRequest", "unexpected packet length")),
            ),
            (
                packet(PROTOCOL_3_0, b""),
                Err(malformed("StartupMessage", crate::pg::MISSING_NUL)),
            ),
            (
                packet(PROTOCOL_3_0, b"user\0alice\0"),
                Err(malformed("StartupMessage", crate::pg::MISSING_NUL)),
            ),
            (
                packet(PROTOCOL_3_0, b"user\0\0"),
                Err(malformed("StartupMessage", crate::pg::MISSING_NUL)),
            ),
            (
                packet(PROTOCOL_3_0, b"user"),
                Err(malformed("StartupMessage", crate::pg::MISSING_NUL)),
            ),
            (
                packet(PROTOCOL_3_0, b"\0junk"),
                Err(malformed("StartupMessage", crate::pg::TRAILING)),
            ),
            (
                packet(PROTOCOL_3_0, b"user\0\xff\xfe\0\0"),
                Err(ProtocolError::InvalidUtf8 {
                    message: "StartupMessage",
                }),
            ),
            (
                wrong_len,
                Err(malformed(
                    "StartupMessage",
                    "length field does not match the packet size",
                )),
            ),
            (
                vec![],
                Err(malformed("StartupMessage", crate::pg::TRUNCATED)),
            ),
            (
                vec![0, 0, 0, 4],
                Err(malformed("StartupMessage", crate::pg::TRUNCATED)),
            ),
        ];
        for (input, want) in &cases {
            assert_eq!(&decode_startup(input), want, "{input:?}");
        }
    }

    #[test]
    fn every_prefix_of_a_valid_packet_is_rejected() {
        let full = encode_startup(&[("user", "u"), ("application_name", "psql")]);
        assert!(decode_startup(&full).is_ok());
        for cut in 0..full.len() {
            assert!(decode_startup(&full[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn startup_round_trip() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("user", "alice")],
            &[
                ("user", "alice"),
                ("database", "prod"),
                ("options", "-c a=b"),
            ],
            &[("user", "李"), ("application_name", "")],
        ];
        for params in cases {
            let bytes = encode_startup(params);
            assert_eq!(
                crate::pg::frame::check_startup(&bytes, crate::pg::frame::MAX_STARTUP_PACKET),
                Ok(Some(bytes.len()))
            );
            assert_eq!(
                decode_startup(&bytes),
                Ok(StartupPacket::Startup {
                    protocol: PROTOCOL_3_0,
                    params: params.to_vec(),
                })
            );
        }
    }

    #[test]
    fn cancel_round_trip() {
        for (pid, key) in [(0, 0), (1, u32::MAX), (u32::MAX, 42)] {
            let bytes = encode_cancel(pid, key);
            assert_eq!(
                decode_startup(&bytes),
                Ok(StartupPacket::Cancel {
                    process_id: pid,
                    secret_key: key,
                })
            );
        }
    }

    #[test]
    fn param_lookup_last_value_wins() {
        let bytes = encode_startup(&[("user", "a"), ("database", "d"), ("user", "b")]);
        let packet = decode_startup(&bytes).unwrap();
        let cases = [
            ("user", Some("b")),
            ("database", Some("d")),
            ("options", None),
        ];
        for (name, want) in cases {
            assert_eq!(packet.param(name), want, "{name}");
        }
        assert_eq!(StartupPacket::SslRequest.param("user"), None);
    }
}
