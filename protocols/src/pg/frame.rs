//! Message boundaries of the PostgreSQL v3 protocol.
//!
//! Owns the answer to "is a whole message buffered, how long is it, and is it
//! within the size limit": regular messages (1 tag byte + `u32` length that
//! counts itself + body) and untagged startup-phase packets (`u32` length +
//! body).
//!
//! Must never: judge the tag (unknown tags are the proxy's decision, and it
//! must be able to forward them), look into bodies, or buffer anything
//! itself. "Need more bytes" is `Ok(None)`, never an error.

use crate::ProtocolError;

/// Tag byte plus length field.
pub const HEADER_LEN: usize = 5;

/// PostgreSQL's own cap on a startup packet (`MAX_STARTUP_PACKET_LENGTH`);
/// a larger announced length is certainly hostile or garbage.
pub const MAX_STARTUP_PACKET: usize = 10_000;

/// The largest regular frame PostgreSQL reads: its length field may not
/// exceed `PQ_LARGE_MESSAGE_LIMIT` (`MaxAllocSize - 1`). A proxy limit above
/// this would only buffer messages the server refuses anyway.
pub const PG_LARGE_MESSAGE_LIMIT: usize = 1 + 0x3fff_fffe;

/// The smallest startup packet: length field plus protocol/request code.
const MIN_STARTUP_PACKET: u32 = 8;

/// The fixed part of a regular message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub tag: u8,
    /// The wire length field: counts itself and the body, not the tag.
    pub len: u32,
}

impl Header {
    /// Bytes the whole message occupies in the stream, tag included.
    pub fn total_len(&self) -> usize {
        (self.len as usize).saturating_add(1)
    }

    /// Bytes after the header.
    pub fn body_len(&self) -> usize {
        (self.len as usize).saturating_sub(4)
    }
}

/// Reads the header at the start of `buf`.
///
/// `Ok(None)`: fewer than [`HEADER_LEN`] bytes. Err: the length field is
/// below 4, or the whole message would exceed `max_total` bytes — decided
/// from the header alone, so an oversized message is refused before any of
/// its body is buffered. Any tag is accepted.
pub fn parse_header(buf: &[u8], max_total: usize) -> Result<Option<Header>, ProtocolError> {
    let Some(&[tag, a, b, c, d]) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let header = Header {
        tag,
        len: u32::from_be_bytes([a, b, c, d]),
    };
    if header.len < 4 {
        return Err(ProtocolError::LengthTooSmall { len: header.len });
    }
    if header.total_len() > max_total {
        return Err(ProtocolError::MessageTooLarge {
            len: header.total_len(),
            max: max_total,
        });
    }
    Ok(Some(header))
}

/// One whole regular message borrowed from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub tag: u8,
    /// The bytes after the header: what the `decode_*` functions take.
    pub body: &'a [u8],
}

impl Message<'_> {
    /// Bytes the message occupies in the stream, i.e. how far to advance.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }
}

/// [`parse_header`], then the body once it is fully buffered.
///
/// `Ok(None)` until the whole message is in `buf`; bytes after it are left
/// alone (pipelined messages).
pub fn split_message(buf: &[u8], max_total: usize) -> Result<Option<Message<'_>>, ProtocolError> {
    let Some(header) = parse_header(buf, max_total)? else {
        return Ok(None);
    };
    Ok(buf.get(HEADER_LEN..header.total_len()).map(|body| Message {
        tag: header.tag,
        body,
    }))
}

/// Checks a startup-phase packet (no tag: `u32` length counting itself, then
/// the body) at the start of `buf`.
///
/// `Ok(Some(total))` when the whole packet is buffered, `Ok(None)` when more
/// bytes are needed, Err when the length is below 8 or above `max_total`
/// (use [`MAX_STARTUP_PACKET`] unless there is a reason not to).
pub fn check_startup(buf: &[u8], max_total: usize) -> Result<Option<usize>, ProtocolError> {
    let Some(&[a, b, c, d]) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([a, b, c, d]);
    if len < MIN_STARTUP_PACKET {
        return Err(ProtocolError::StartupLengthTooSmall { len });
    }
    let total = len as usize;
    if total > max_total {
        return Err(ProtocolError::MessageTooLarge {
            len: total,
            max: max_total,
        });
    }
    Ok((buf.len() >= total).then_some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input bytes and the expected framing answer.
    type Case<T> = (Vec<u8>, Result<Option<T>, ProtocolError>);

    fn msg(tag: u8, len: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn parse_header_table() {
        let max = 100;
        let cases: &[Case<Header>] = &[
            (vec![], Ok(None)),
            (vec![b'Q', 0, 0, 0], Ok(None)),
            (msg(b'Q', 4, b""), Ok(Some(Header { tag: b'Q', len: 4 }))),
            (
                // unknown tags are accepted: the proxy decides what to do
                msg(0xFE, 9, b"x"),
                Ok(Some(Header { tag: 0xFE, len: 9 })),
            ),
            (
                msg(b'Q', 3, b""),
                Err(ProtocolError::LengthTooSmall { len: 3 }),
            ),
            (
                msg(b'Q', 0, b""),
                Err(ProtocolError::LengthTooSmall { len: 0 }),
            ),
            (
                // exactly at the limit: 1 + 99
                msg(b'Q', 99, b""),
                Ok(Some(Header { tag: b'Q', len: 99 })),
            ),
            (
                msg(b'Q', 100, b""),
                Err(ProtocolError::MessageTooLarge { len: 101, max }),
            ),
            (
                msg(b'Q', u32::MAX, b""),
                Err(ProtocolError::MessageTooLarge {
                    len: u32::MAX as usize + 1,
                    max,
                }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_header(input, max), want, "{input:?}");
        }
    }

    #[test]
    fn header_lengths() {
        let cases = [
            (4, 5, 0),
            (9, 10, 5),
            (u32::MAX, u32::MAX as usize + 1, u32::MAX as usize - 4),
        ];
        for (len, total, body) in cases {
            let h = Header { tag: b'X', len };
            assert_eq!((h.total_len(), h.body_len()), (total, body), "{len}");
        }
    }

    #[test]
    fn split_message_waits_for_whole_body_and_ignores_what_follows() {
        let mut stream = msg(b'Q', 4 + 3, b"ab\0");
        stream.extend_from_slice(&msg(b'S', 4, b""));
        let first_len = 8;
        for cut in 0..first_len {
            assert_eq!(split_message(&stream[..cut], 1000), Ok(None), "cut {cut}");
        }
        let first = split_message(&stream, 1000).unwrap().unwrap();
        assert_eq!((first.tag, first.body), (b'Q', &b"ab\0"[..]));
        assert_eq!(first.total_len(), first_len);
        let second = split_message(&stream[first_len..], 1000).unwrap().unwrap();
        assert_eq!((second.tag, second.body), (b'S', &b""[..]));
    }

    #[test]
    fn prefixes_of_valid_messages_are_incomplete_never_errors() {
        let full = msg(b'P', 4 + 10, b"0123456789");
        for cut in 0..full.len() {
            let prefix = &full[..cut];
            let header = parse_header(prefix, 1000);
            if cut < HEADER_LEN {
                assert_eq!(header, Ok(None), "cut {cut}");
            } else {
                assert_eq!(header, Ok(Some(Header { tag: b'P', len: 14 })), "cut {cut}");
            }
            assert_eq!(split_message(prefix, 1000), Ok(None), "cut {cut}");
        }
    }

    fn startup(len: u32, rest: &[u8]) -> Vec<u8> {
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn check_startup_table() {
        let max = 20;
        let cases: &[Case<usize>] = &[
            (vec![], Ok(None)),
            (vec![0, 0, 0], Ok(None)),
            (startup(8, &[]), Ok(None)),
            (startup(8, &[1, 2, 3, 4]), Ok(Some(8))),
            // bytes after the packet belong to the next message
            (startup(8, &[1, 2, 3, 4, 5, 6]), Ok(Some(8))),
            (
                startup(7, &[1, 2, 3]),
                Err(ProtocolError::StartupLengthTooSmall { len: 7 }),
            ),
            (
                startup(0, &[]),
                Err(ProtocolError::StartupLengthTooSmall { len: 0 }),
            ),
            (startup(20, &[0; 16]), Ok(Some(20))),
            (
                startup(21, &[0; 17]),
                Err(ProtocolError::MessageTooLarge { len: 21, max }),
            ),
            (
                startup(u32::MAX, &[]),
                Err(ProtocolError::MessageTooLarge {
                    len: u32::MAX as usize,
                    max,
                }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&check_startup(input, max), want, "{input:?}");
        }
    }

    #[test]
    fn check_startup_prefixes_are_incomplete() {
        let full = startup(12, &[0, 3, 0, 0, 0, 0, 0, 0]);
        for cut in 0..full.len() {
            assert_eq!(
                check_startup(&full[..cut], MAX_STARTUP_PACKET),
                Ok(None),
                "cut {cut}"
            );
        }
        assert_eq!(check_startup(&full, MAX_STARTUP_PACKET), Ok(Some(12)));
    }
}
