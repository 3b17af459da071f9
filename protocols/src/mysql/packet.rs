//! Packet boundaries of the MySQL protocol.
//!
//! Owns the answer to "is a whole logical packet buffered, and is it within
//! the size limit", and the writing of frame headers. A wire frame is a
//! 3-byte little-endian payload length, a 1-byte sequence id and the
//! payload. A logical packet of 16 MiB - 1 bytes or more is split into
//! frames of exactly [`MAX_FRAME`] bytes followed by a shorter one (possibly
//! empty), each with the next sequence id; a frame shorter than
//! [`MAX_FRAME`] always ends the packet.
//!
//! Must never: look into payloads, judge sequence ids beyond the frames of
//! one packet (the session owns the sequence), or buffer more than the
//! configured limit. "Need more bytes" is `Ok(None)`, never an error.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ProtocolError;

/// The largest payload of one frame, and the length that means "another
/// frame of the same packet follows".
pub const MAX_FRAME: usize = 0xFF_FFFF;

/// Payload length (3 bytes) plus sequence id.
pub const HEADER_LEN: usize = 4;

const PACKET: &str = "packet";
const SEQ_OUT_OF_ORDER: &str = "a continuation frame does not carry the next sequence id";

/// The payload length and sequence id of the frame at the start of `buf`,
/// or None when fewer than [`HEADER_LEN`] bytes are buffered.
pub fn frame_header(buf: &[u8]) -> Option<(usize, u8)> {
    let &[a, b, c, seq] = buf.get(..HEADER_LEN)? else {
        return None;
    };
    Some((
        usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16,
        seq,
    ))
}

/// One logical packet, its frames joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sequence id of the first frame.
    pub seq: u8,
    /// The payload of all frames, concatenated.
    pub payload: Bytes,
    /// How many wire frames carried it (1 unless the payload is 16 MiB - 1
    /// bytes or more).
    pub frames: usize,
}

impl Packet {
    /// Sequence id of the last frame: the one the next packet follows.
    pub fn last_seq(&self) -> u8 {
        // `frames` is at least 1 for a packet from `take_packet`; a
        // hand-built 0 is read as 1 rather than wrapping.
        let extra = self.frames.saturating_sub(1) % 256;
        self.seq.wrapping_add(extra as u8)
    }
}

/// Where the frames of the packet at the start of `buf` end, walked from
/// their headers alone: `Ok(Some((total bytes on the wire, payload length,
/// frames)))` when all are buffered.
///
/// The payload length is checked against `max` after each header, so a
/// packet announcing more than `max` is refused before its bytes arrive.
/// Each call re-walks the headers, which is O(frames), not O(bytes).
fn locate(buf: &[u8], max: usize) -> Result<Option<(usize, usize, usize)>, ProtocolError> {
    let mut offset = 0usize;
    let mut payload = 0usize;
    let mut frames = 0usize;
    let mut expected_seq = None;
    loop {
        let Some((len, seq)) = buf.get(offset..).and_then(frame_header) else {
            return Ok(None);
        };
        if expected_seq.is_some_and(|want| want != seq) {
            return Err(ProtocolError::Malformed {
                message: PACKET,
                reason: SEQ_OUT_OF_ORDER,
            });
        }
        payload = payload.saturating_add(len);
        if payload > max {
            return Err(ProtocolError::MessageTooLarge { len: payload, max });
        }
        frames += 1;
        offset = offset.saturating_add(HEADER_LEN + len);
        if offset > buf.len() {
            return Ok(None);
        }
        if len < MAX_FRAME {
            return Ok(Some((offset, payload, frames)));
        }
        expected_seq = Some(seq.wrapping_add(1));
    }
}

/// Removes the logical packet at the start of `buf` once all its frames are
/// buffered, and returns it with the payloads joined; bytes after it stay in
/// `buf` (pipelined packets).
///
/// `Ok(None)`: incomplete, `buf` untouched. `Err(MessageTooLarge)` as soon
/// as the frame headers seen so far announce more than `max` payload bytes,
/// so an oversized packet is refused before it is buffered. `Err(Malformed)`
/// when a continuation frame's sequence id is not the previous one plus 1
/// (the stream is desynchronised; the server would refuse it too).
///
/// A single-frame packet is split off without copying; a multi-frame one is
/// copied once into a buffer of exactly its payload size, which is bounded by
/// `max` and by the bytes already received.
pub fn take_packet(buf: &mut BytesMut, max: usize) -> Result<Option<Packet>, ProtocolError> {
    let Some((total, payload_len, frames)) = locate(buf, max)? else {
        return Ok(None);
    };
    let seq = buf.get(3).copied().unwrap_or_default();
    let wire = buf.split_to(total).freeze();
    let payload = if frames == 1 {
        wire.slice(HEADER_LEN..)
    } else {
        let mut joined = BytesMut::with_capacity(payload_len);
        let mut rest: &[u8] = &wire;
        while let Some((len, _)) = frame_header(rest) {
            let end = (HEADER_LEN + len).min(rest.len());
            joined.put_slice(rest.get(HEADER_LEN..end).unwrap_or_default());
            rest = rest.get(end..).unwrap_or_default();
        }
        joined.freeze()
    };
    Ok(Some(Packet {
        seq,
        payload,
        frames,
    }))
}

fn put_header(out: &mut BytesMut, len: usize, seq: u8) {
    let len = len.min(MAX_FRAME) as u32;
    out.put_slice(&len.to_le_bytes()[..3]);
    out.put_u8(seq);
}

/// Appends `payload` as one logical packet starting at sequence id `seq`,
/// split into frames as the protocol requires (including the empty frame
/// that ends a payload whose length is a multiple of [`MAX_FRAME`], and the
/// single empty frame of an empty payload). Returns the sequence id of the
/// last frame written, which the next packet must follow.
pub fn write_frame(out: &mut BytesMut, seq: u8, payload: &[u8]) -> u8 {
    let mut seq = seq;
    let mut rest = payload;
    out.reserve(payload.len() + HEADER_LEN * (payload.len() / MAX_FRAME + 1));
    loop {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        put_header(out, chunk.len(), seq);
        out.put_slice(chunk);
        if chunk.len() < MAX_FRAME {
            return seq;
        }
        rest = tail;
        seq = seq.wrapping_add(1);
    }
}

/// Reserves a frame header at the end of `out` and returns its offset, so a
/// payload can be written in place and framed afterwards with
/// [`finish_frame`] (no intermediate buffer, no second copy).
pub fn begin_frame(out: &mut BytesMut) -> usize {
    let start = out.len();
    out.put_slice(&[0; HEADER_LEN]);
    start
}

/// Frames the payload written after the header reserved at `start` by
/// [`begin_frame`], with sequence id `seq`, and returns the sequence id of
/// the last frame. A payload of [`MAX_FRAME`] bytes or more is split into
/// frames in place: the buffer grows by one header per extra frame and the
/// bytes are moved back to make room, last chunk first.
///
/// A `start` that is not a reserved header (past the end of `out`) leaves
/// `out` untouched and returns `seq`.
pub fn finish_frame(out: &mut BytesMut, start: usize, seq: u8) -> u8 {
    let body = start.saturating_add(HEADER_LEN);
    let Some(len) = out.len().checked_sub(body) else {
        return seq;
    };
    let extra = len / MAX_FRAME;
    if extra == 0 {
        if let Some(header) = out.get_mut(start..body) {
            let bytes = (len as u32).to_le_bytes();
            header.copy_from_slice(&[bytes[0], bytes[1], bytes[2], seq]);
        }
        return seq;
    }
    out.resize(out.len() + extra * HEADER_LEN, 0);
    let frame = HEADER_LEN + MAX_FRAME;
    // Move each chunk to its place behind its own header, the last one first
    // so that no chunk is overwritten before it moves (destinations are at or
    // after the sources; `copy_within` handles the overlap).
    for i in (0..=extra).rev() {
        let from = body + i * MAX_FRAME;
        let chunk = (len - i * MAX_FRAME).min(MAX_FRAME);
        let to = start + i * frame + HEADER_LEN;
        out.copy_within(from..from + chunk, to);
        let bytes = (chunk as u32).to_le_bytes();
        let header = [bytes[0], bytes[1], bytes[2], seq.wrapping_add(i as u8)];
        if let Some(slot) = out.get_mut(to - HEADER_LEN..to) {
            slot.copy_from_slice(&header);
        }
    }
    seq.wrapping_add(extra as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = (len as u32).to_le_bytes()[..3].to_vec();
        v.push(seq);
        v.extend_from_slice(payload);
        v
    }

    /// Splits `wire` into (len, seq, payload) frames, checking every header.
    fn frames_of(wire: &[u8]) -> Vec<(usize, u8)> {
        let mut rest = wire;
        let mut out = Vec::new();
        while let Some((len, seq)) = frame_header(rest) {
            out.push((len, seq));
            rest = &rest[HEADER_LEN + len..];
        }
        assert!(rest.is_empty(), "dangling bytes");
        out
    }

    #[test]
    fn frame_header_needs_four_bytes() {
        assert_eq!(frame_header(&[]), None);
        assert_eq!(frame_header(&[1, 0, 0]), None);
        assert_eq!(frame_header(&[1, 0, 0, 7]), Some((1, 7)));
        assert_eq!(frame_header(&[0xff, 0xff, 0xff, 0]), Some((MAX_FRAME, 0)));
        assert_eq!(frame_header(&[0x01, 0x02, 0x03, 9, 9]), Some((0x030201, 9)));
    }

    #[test]
    fn write_then_take_round_trips_at_every_boundary() {
        let sizes = [0, 1, 300, MAX_FRAME - 1, MAX_FRAME, MAX_FRAME + 5];
        for size in sizes {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            for seq in [0u8, 3, 255] {
                let mut wire = BytesMut::new();
                let last = write_frame(&mut wire, seq, &payload);
                let frames = frames_of(&wire);
                let want_frames = size / MAX_FRAME + 1;
                assert_eq!(frames.len(), want_frames, "size {size}");
                assert_eq!(last, seq.wrapping_add(want_frames as u8 - 1));
                for (i, &(len, s)) in frames.iter().enumerate() {
                    assert_eq!(s, seq.wrapping_add(i as u8));
                    if i + 1 < frames.len() {
                        assert_eq!(len, MAX_FRAME);
                    } else {
                        assert!(len < MAX_FRAME);
                    }
                }
                // begin/finish produce the same bytes as write_frame
                let mut inplace = BytesMut::from(&b"xy"[..]);
                let start = begin_frame(&mut inplace);
                inplace.extend_from_slice(&payload);
                assert_eq!(finish_frame(&mut inplace, start, seq), last);
                assert_eq!(&inplace[..2], b"xy");
                assert!(inplace[2..] == wire[..], "size {size}");

                wire.extend_from_slice(b"next");
                let packet = take_packet(&mut wire, usize::MAX).unwrap().unwrap();
                assert_eq!((packet.seq, packet.frames), (seq, want_frames));
                assert_eq!(packet.last_seq(), last);
                assert!(packet.payload[..] == payload[..], "size {size}");
                assert_eq!(&wire[..], b"next");
            }
        }
    }

    #[test]
    fn take_packet_waits_for_every_frame() {
        let payload = vec![7u8; MAX_FRAME + 5];
        let mut wire = BytesMut::new();
        write_frame(&mut wire, 1, &payload);
        let full = wire.clone();
        for cut in [
            0,
            3,
            4,
            100,
            HEADER_LEN + MAX_FRAME,
            HEADER_LEN + MAX_FRAME + 3,
        ] {
            let mut partial = BytesMut::from(&full[..cut]);
            assert_eq!(take_packet(&mut partial, usize::MAX), Ok(None), "{cut}");
            assert_eq!(partial.len(), cut, "incomplete input is left alone");
        }
        let mut almost = BytesMut::from(&full[..full.len() - 1]);
        assert_eq!(take_packet(&mut almost, usize::MAX), Ok(None));

        // a small packet, byte by byte
        let one = frame(3, 0, b"abc");
        for cut in 0..one.len() {
            let mut partial = BytesMut::from(&one[..cut]);
            assert_eq!(take_packet(&mut partial, 100), Ok(None));
        }
    }

    #[test]
    fn take_packet_refuses_oversized_packets_from_their_headers() {
        // one frame announcing 11 bytes against a limit of 10: refused with
        // only the header buffered
        let mut buf = BytesMut::from(&frame(11, 0, b"")[..]);
        assert_eq!(
            take_packet(&mut buf, 10),
            Err(ProtocolError::MessageTooLarge { len: 11, max: 10 })
        );
        let mut buf = BytesMut::from(&frame(10, 0, &[0; 10])[..]);
        assert_eq!(
            take_packet(&mut buf, 10).unwrap().unwrap().payload.len(),
            10
        );

        // a first frame of MAX_FRAME against a smaller limit: refused at once
        let mut buf = BytesMut::from(&frame(MAX_FRAME, 0, b"")[..]);
        assert_eq!(
            take_packet(&mut buf, 1 << 20),
            Err(ProtocolError::MessageTooLarge {
                len: MAX_FRAME,
                max: 1 << 20
            })
        );

        // the second frame's header pushes it over
        let mut wire = frame(MAX_FRAME, 0, &vec![0; MAX_FRAME]);
        wire.extend_from_slice(&frame(2, 1, b""));
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            take_packet(&mut buf, MAX_FRAME + 1),
            Err(ProtocolError::MessageTooLarge {
                len: MAX_FRAME + 2,
                max: MAX_FRAME + 1
            })
        );
    }

    #[test]
    fn continuation_frames_must_follow_in_sequence() {
        let mut wire = frame(MAX_FRAME, 4, &vec![0; MAX_FRAME]);
        wire.extend_from_slice(&frame(1, 9, b"x"));
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            take_packet(&mut buf, usize::MAX),
            Err(ProtocolError::Malformed {
                message: PACKET,
                reason: SEQ_OUT_OF_ORDER
            })
        );
        // sequence ids wrap
        let mut wire = frame(MAX_FRAME, 255, &vec![1; MAX_FRAME]);
        wire.extend_from_slice(&frame(0, 0, b""));
        let mut buf = BytesMut::from(&wire[..]);
        let p = take_packet(&mut buf, usize::MAX).unwrap().unwrap();
        assert_eq!((p.seq, p.frames, p.last_seq()), (255, 2, 0));
    }

    #[test]
    fn take_packet_takes_one_packet_at_a_time() {
        let mut wire = frame(3, 0, b"abc");
        wire.extend_from_slice(&frame(0, 1, b""));
        wire.extend_from_slice(&frame(2, 2, b"de"));
        let mut buf = BytesMut::from(&wire[..]);
        let mut got = Vec::new();
        while let Some(p) = take_packet(&mut buf, 100).unwrap() {
            got.push((p.seq, p.payload.to_vec(), p.frames));
        }
        assert_eq!(
            got,
            vec![
                (0, b"abc".to_vec(), 1),
                (1, vec![], 1),
                (2, b"de".to_vec(), 1)
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn finish_frame_with_a_bad_start_changes_nothing() {
        let mut out = BytesMut::from(&b"abc"[..]);
        assert_eq!(finish_frame(&mut out, 10, 4), 4);
        assert_eq!(&out[..], b"abc");
    }

    #[test]
    fn last_seq_of_a_hand_built_packet() {
        let p = |seq, frames| Packet {
            seq,
            payload: Bytes::new(),
            frames,
        };
        assert_eq!(p(5, 0).last_seq(), 5);
        assert_eq!(p(5, 1).last_seq(), 5);
        assert_eq!(p(254, 3).last_seq(), 0);
    }
}
