//! Streaming HTTP Content-Encoding: decode a response body so it can be
//! scanned, and re-encode the rewritten body for the caller.
//!
//! Owns gzip (RFC 1952, multi-member), deflate (RFC 1950 zlib; raw RFC 1951
//! accepted too, since some servers send it by mistake) and brotli
//! (RFC 7932), all pure Rust (flate2 on miniz_oxide, the `brotli` crate), as
//! sans-IO state machines: bytes in, bytes out, no reader or writer.
//!
//! Must never: let a small compressed body make the proxy allocate without
//! bound (a decompression bomb), panic on garbage, or accept a truncated
//! stream as complete (the caller would scan and forward a silently cut
//! body).
//!
//! # Output bound
//!
//! A [`Decoder`] feeds its inflater at most [`DECODE_SLICE`] input bytes at
//! a time into a fixed [`DECODE_BLOCK`] scratch buffer, and checks the
//! running total against `max_output_total` before appending each block to
//! the caller's buffer. So one [`Decoder::feed`] grows `out` by at most
//! `max_output_total` minus what earlier calls produced, and the decoder's
//! own memory is the scratch block plus the codec's window (32 KiB for
//! deflate; up to 16 MiB for brotli, whose large-window extension is
//! refused), whatever the compression ratio. Exceeding the total is
//! [`CodecError::TooLarge`].
//!
//! An empty body is an empty body under every coding (servers label empty
//! 204/304 replies `gzip` too); a body that starts a stream and stops before
//! its end is [`CodecError::Truncated`].

use std::io::Write;

use brotli::{BrotliDecompressStream, BrotliResult, BrotliState, HeapAlloc, HuffmanCode};
use flate2::{Crc, Decompress, FlushDecompress, Status};

/// Input handed to the inflater per step: small, so the output of a single
/// step stays proportionate (deflate's maximum ratio is about 1:1032).
pub const DECODE_SLICE: usize = 4 * 1024;

/// Output scratch per step; the unit in which output is checked against the
/// limit before it reaches the caller.
pub const DECODE_BLOCK: usize = 32 * 1024;

/// Longest Content-Encoding value quoted back in an error.
const MAX_QUOTED_HEADER: usize = 64;

/// Brotli encoder window (log2): 4 MiB, the encoder default's neighbour,
/// a fair trade of memory per streaming response against ratio.
const BROTLI_LGWIN: u32 = 22;

/// Brotli encoder internal buffer.
const BROTLI_BUFFER: usize = 16 * 1024;

/// What went wrong decoding or encoding a body. Variants carry the coding
/// and numbers, never body bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A Content-Encoding this module does not speak (or several stacked).
    #[error("unsupported Content-Encoding {value:?}")]
    Unsupported { value: String },

    /// The decoded body would exceed the configured total.
    #[error("decoded {coding} body exceeds the limit of {limit} bytes")]
    TooLarge { coding: &'static str, limit: u64 },

    /// The compressed stream is invalid.
    #[error("corrupt {coding} stream: {reason}")]
    Corrupt {
        coding: &'static str,
        reason: String,
    },

    /// The body ended before the compressed stream did.
    #[error("{coding} stream truncated")]
    Truncated { coding: &'static str },

    /// The encoder failed (only possible on internal errors).
    #[error("{coding} encoder failed: {reason}")]
    Encode {
        coding: &'static str,
        reason: String,
    },

    /// `feed`/`flush` after `finish`.
    #[error("{coding} codec used after finish")]
    Finished { coding: &'static str },
}

/// An HTTP content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    /// Parses a Content-Encoding header value: `identity` (or empty),
    /// `gzip`/`x-gzip`, `deflate`, `br`, case-insensitive. Stacked codings
    /// (`gzip, br`) are refused: no real API sends them and supporting them
    /// would multiply the bomb surface.
    pub fn parse(content_encoding_header_value: &str) -> Result<Coding, CodecError> {
        let v = content_encoding_header_value.trim();
        let is = |name: &str| v.eq_ignore_ascii_case(name);
        if v.is_empty() || is("identity") {
            Ok(Coding::Identity)
        } else if is("gzip") || is("x-gzip") {
            Ok(Coding::Gzip)
        } else if is("deflate") {
            Ok(Coding::Deflate)
        } else if is("br") {
            Ok(Coding::Brotli)
        } else {
            let value = v.chars().take(MAX_QUOTED_HEADER).collect();
            Err(CodecError::Unsupported { value })
        }
    }

    /// The header token (`identity`, `gzip`, `deflate`, `br`).
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

type BrotliDecState = BrotliState<HeapAlloc<u8>, HeapAlloc<u32>, HeapAlloc<HuffmanCode>>;

/// Where a gzip member is.
#[derive(Debug)]
enum Gz {
    /// The fixed 10-byte header.
    Header {
        buf: [u8; 10],
        n: usize,
    },
    /// FEXTRA length (2 bytes), then that many bytes to skip.
    ExtraLen {
        buf: [u8; 2],
        n: usize,
    },
    ExtraSkip(usize),
    /// FNAME / FCOMMENT: skip to the NUL.
    Name,
    Comment,
    /// FHCRC: 2 bytes to skip.
    HeaderCrc(usize),
    Body,
    Trailer {
        buf: [u8; 8],
        n: usize,
    },
    /// A member ended; another may follow.
    Done,
}

const GZ_FHCRC: u8 = 0x02;
const GZ_FEXTRA: u8 = 0x04;
const GZ_FNAME: u8 = 0x08;
const GZ_FCOMMENT: u8 = 0x10;
const GZ_RESERVED: u8 = 0xE0;

enum Dec {
    Identity,
    Gzip {
        state: Gz,
        flags: u8,
        inflate: Box<Decompress>,
        crc: Crc,
    },
    Deflate {
        /// The first two bytes, to tell zlib from raw deflate.
        sniff: [u8; 2],
        sniffed: usize,
        inflate: Option<Box<Decompress>>,
        done: bool,
    },
    Brotli {
        state: Box<BrotliDecState>,
        done: bool,
    },
}

/// Streaming decoder for one body; see the module doc for its bound.
pub struct Decoder {
    coding: Coding,
    dec: Dec,
    max_output_total: u64,
    produced: u64,
    /// Any byte fed at all (an empty body is fine under every coding).
    started: bool,
    scratch: Vec<u8>,
    failed: Option<CodecError>,
    finished: bool,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("coding", &self.coding)
            .field("produced", &self.produced)
            .field("max_output_total", &self.max_output_total)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder that fails with [`CodecError::TooLarge`] once the decoded
    /// body exceeds `max_output_total` bytes.
    pub fn new(coding: Coding, max_output_total: u64) -> Decoder {
        let dec = match coding {
            Coding::Identity => Dec::Identity,
            Coding::Gzip => Dec::Gzip {
                state: Gz::Header { buf: [0; 10], n: 0 },
                flags: 0,
                inflate: Box::new(Decompress::new(false)),
                crc: Crc::new(),
            },
            Coding::Deflate => Dec::Deflate {
                sniff: [0; 2],
                sniffed: 0,
                inflate: None,
                done: false,
            },
            Coding::Brotli => {
                let mut state = Box::new(BrotliDecState::new(
                    HeapAlloc::new(0),
                    HeapAlloc::new(0),
                    HeapAlloc::new(HuffmanCode::default()),
                ));
                // The large-window extension (windows up to 1 GiB) is not
                // part of HTTP's `br`; refusing it caps the window at 16 MiB.
                state.large_window = false;
                Dec::Brotli { state, done: false }
            }
        };
        let scratch = if coding == Coding::Identity {
            Vec::new()
        } else {
            vec![0; DECODE_BLOCK]
        };
        Decoder {
            coding,
            dec,
            max_output_total,
            produced: 0,
            started: false,
            scratch,
            failed: None,
            finished: false,
        }
    }

    /// Total decoded bytes so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Decodes all of `input`, appending to `out`. `out` grows by at most
    /// `max_output_total - produced()` bytes, however small `input` is;
    /// past that the call fails with [`CodecError::TooLarge`] (and the
    /// decoder stays failed). Corrupt input fails with
    /// [`CodecError::Corrupt`] as soon as it is seen.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.guard()?;
        if input.is_empty() {
            return Ok(());
        }
        self.started = true;
        let r = self.feed_inner(input, out);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// End of body: errors if the stream stopped before its end. Every
    /// decoded byte was already appended by `feed`, so `_out` receives
    /// nothing today; it is there so a codec that holds output back can be
    /// added without changing callers.
    pub fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.guard()?;
        self.finished = true;
        let coding = self.coding.as_str();
        let complete = !self.started
            || match &self.dec {
                Dec::Identity => true,
                Dec::Gzip { state, .. } => matches!(state, Gz::Done),
                Dec::Deflate { done, .. } | Dec::Brotli { done, .. } => *done,
            };
        if complete {
            Ok(())
        } else {
            let e = CodecError::Truncated { coding };
            self.failed = Some(e.clone());
            Err(e)
        }
    }

    fn guard(&self) -> Result<(), CodecError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.finished {
            return Err(CodecError::Finished {
                coding: self.coding.as_str(),
            });
        }
        Ok(())
    }

    fn feed_inner(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let coding = self.coding.as_str();
        let limit = self.max_output_total;
        let produced = &mut self.produced;
        let scratch = &mut self.scratch[..];
        // Appends one block of output if it fits the total.
        let mut sink = |bytes: &[u8], out: &mut Vec<u8>| -> Result<(), CodecError> {
            let total = *produced + bytes.len() as u64;
            if total > limit {
                return Err(CodecError::TooLarge { coding, limit });
            }
            *produced = total;
            out.extend_from_slice(bytes);
            Ok(())
        };
        match &mut self.dec {
            Dec::Identity => sink(input, out),
            Dec::Gzip {
                state,
                flags,
                inflate,
                crc,
            } => {
                let mut rest = input;
                while !rest.is_empty() {
                    rest = gzip_step(
                        state,
                        flags,
                        inflate,
                        crc,
                        rest,
                        scratch,
                        &mut |b, o| sink(b, o),
                        out,
                    )?;
                }
                Ok(())
            }
            Dec::Deflate {
                sniff,
                sniffed,
                inflate,
                done,
            } => {
                let mut rest = input;
                if inflate.is_none() {
                    let take = (2 - *sniffed).min(rest.len());
                    sniff[*sniffed..*sniffed + take].copy_from_slice(&rest[..take]);
                    *sniffed += take;
                    rest = &rest[take..];
                    if *sniffed < 2 {
                        return Ok(());
                    }
                    let is_zlib = is_zlib_header(sniff[0], sniff[1]);
                    let mut d = Box::new(Decompress::new(is_zlib));
                    let head = *sniff;
                    let mut head_rest: &[u8] = &head;
                    while !head_rest.is_empty() && !*done {
                        let (used, end) = inflate_slices(
                            &mut d,
                            head_rest,
                            scratch,
                            &mut |b, o| sink(b, o),
                            out,
                            "deflate",
                        )?;
                        head_rest = &head_rest[used..];
                        *done = end;
                    }
                    if !head_rest.is_empty() {
                        return Err(trailing("deflate"));
                    }
                    *inflate = Some(d);
                }
                let Some(d) = inflate.as_mut() else {
                    return Ok(());
                };
                while !rest.is_empty() {
                    if *done {
                        return Err(trailing("deflate"));
                    }
                    let (used, end) =
                        inflate_slices(d, rest, scratch, &mut |b, o| sink(b, o), out, "deflate")?;
                    rest = &rest[used..];
                    *done = end;
                }
                Ok(())
            }
            Dec::Brotli { state, done } => {
                for slice in input.chunks(DECODE_SLICE) {
                    if *done {
                        return Err(trailing("br"));
                    }
                    let mut avail_in = slice.len();
                    let mut in_off = 0;
                    loop {
                        let mut avail_out = scratch.len();
                        let mut out_off = 0;
                        let mut total = 0;
                        let r = BrotliDecompressStream(
                            &mut avail_in,
                            &mut in_off,
                            slice,
                            &mut avail_out,
                            &mut out_off,
                            scratch,
                            &mut total,
                            state,
                        );
                        sink(&scratch[..out_off], out)?;
                        match r {
                            BrotliResult::NeedsMoreOutput => continue,
                            BrotliResult::NeedsMoreInput => break,
                            BrotliResult::ResultSuccess => {
                                *done = true;
                                if avail_in != 0 {
                                    return Err(trailing("br"));
                                }
                                break;
                            }
                            BrotliResult::ResultFailure => {
                                return Err(CodecError::Corrupt {
                                    coding: "br",
                                    reason: "invalid brotli data".into(),
                                })
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

fn trailing(coding: &'static str) -> CodecError {
    CodecError::Corrupt {
        coding,
        reason: "data after the end of the stream".into(),
    }
}

/// RFC 1950: CM = 8 (deflate), CINFO ≤ 7, and the header is a multiple of 31.
fn is_zlib_header(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

type Sink<'a> = dyn FnMut(&[u8], &mut Vec<u8>) -> Result<(), CodecError> + 'a;

/// Inflates from `input` in [`DECODE_SLICE`] steps until it is consumed or
/// the stream ends. Returns (bytes consumed, stream ended).
fn inflate_slices(
    d: &mut Decompress,
    input: &[u8],
    scratch: &mut [u8],
    sink: &mut Sink<'_>,
    out: &mut Vec<u8>,
    coding: &'static str,
) -> Result<(usize, bool), CodecError> {
    let mut pos = 0;
    loop {
        let end = input.len().min(pos + DECODE_SLICE);
        let slice = &input[pos..end];
        let (in0, out0) = (d.total_in(), d.total_out());
        let status = d
            .decompress(slice, scratch, FlushDecompress::None)
            .map_err(|e| CodecError::Corrupt {
                coding,
                reason: e.to_string(),
            })?;
        // Both deltas are bounded by the slice and scratch lengths.
        let used = usize::try_from(d.total_in() - in0).unwrap_or(slice.len());
        let made = usize::try_from(d.total_out() - out0).unwrap_or(scratch.len());
        pos += used;
        sink(&scratch[..made.min(scratch.len())], out)?;
        if status == Status::StreamEnd {
            return Ok((pos, true));
        }
        if made == scratch.len() {
            // Output full: more may be pending even with no input left.
            continue;
        }
        if pos == input.len() {
            return Ok((pos, false));
        }
        if used == 0 && made == 0 {
            return Err(CodecError::Corrupt {
                coding,
                reason: "inflater made no progress".into(),
            });
        }
    }
}

/// Advances a gzip member by at least one byte of `input`; returns the rest.
#[allow(clippy::too_many_arguments)]
fn gzip_step<'i>(
    state: &mut Gz,
    flags: &mut u8,
    inflate: &mut Decompress,
    crc: &mut Crc,
    input: &'i [u8],
    scratch: &mut [u8],
    sink: &mut Sink<'_>,
    out: &mut Vec<u8>,
) -> Result<&'i [u8], CodecError> {
    let corrupt = |reason: &str| CodecError::Corrupt {
        coding: "gzip",
        reason: reason.into(),
    };
    match state {
        Gz::Done => {
            // Another member follows (RFC 1952 2.2).
            inflate.reset(false);
            crc.reset();
            *state = Gz::Header { buf: [0; 10], n: 0 };
            Ok(input)
        }
        Gz::Header { buf, n } => {
            let take = (10 - *n).min(input.len());
            buf[*n..*n + take].copy_from_slice(&input[..take]);
            *n += take;
            if *n == 10 {
                if buf[0] != 0x1f || buf[1] != 0x8b {
                    return Err(corrupt("not a gzip member (bad magic)"));
                }
                if buf[2] != 8 {
                    return Err(corrupt("compression method is not deflate"));
                }
                if buf[3] & GZ_RESERVED != 0 {
                    return Err(corrupt("reserved header flags set"));
                }
                *flags = buf[3];
                *state = next_header_field(*flags, 0);
            }
            Ok(&input[take..])
        }
        Gz::ExtraLen { buf, n } => {
            let take = (2 - *n).min(input.len());
            buf[*n..*n + take].copy_from_slice(&input[..take]);
            *n += take;
            if *n == 2 {
                *state = Gz::ExtraSkip(usize::from(u16::from_le_bytes(*buf)));
                if matches!(state, Gz::ExtraSkip(0)) {
                    *state = next_header_field(*flags, GZ_FEXTRA);
                }
            }
            Ok(&input[take..])
        }
        Gz::ExtraSkip(left) => {
            let take = (*left).min(input.len());
            *left -= take;
            if *left == 0 {
                *state = next_header_field(*flags, GZ_FEXTRA);
            }
            Ok(&input[take..])
        }
        Gz::Name | Gz::Comment => {
            let done_flag = if matches!(state, Gz::Name) {
                GZ_FNAME
            } else {
                GZ_FCOMMENT
            };
            match memchr::memchr(0, input) {
                Some(p) => {
                    *state = next_header_field(*flags, done_flag);
                    Ok(&input[p + 1..])
                }
                None => Ok(&[]),
            }
        }
        Gz::HeaderCrc(left) => {
            let take = (*left).min(input.len());
            *left -= take;
            if *left == 0 {
                *state = Gz::Body;
            }
            Ok(&input[take..])
        }
        Gz::Body => {
            let mut crc_sink = |b: &[u8], o: &mut Vec<u8>| {
                crc.update(b);
                sink(b, o)
            };
            let (used, end) = inflate_slices(inflate, input, scratch, &mut crc_sink, out, "gzip")?;
            if end {
                *state = Gz::Trailer { buf: [0; 8], n: 0 };
            } else if used == 0 {
                return Err(corrupt("inflater made no progress"));
            }
            Ok(&input[used..])
        }
        Gz::Trailer { buf, n } => {
            let take = (8 - *n).min(input.len());
            buf[*n..*n + take].copy_from_slice(&input[..take]);
            *n += take;
            if *n == 8 {
                let want_crc = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                let want_len = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
                if want_crc != crc.sum() {
                    return Err(corrupt("CRC32 mismatch"));
                }
                if want_len != crc.amount() {
                    return Err(corrupt("length mismatch"));
                }
                *state = Gz::Done;
            }
            Ok(&input[take..])
        }
    }
}

/// The header field after `after` (0 = the fixed header), in RFC order:
/// FEXTRA, FNAME, FCOMMENT, FHCRC, then the body.
fn next_header_field(flags: u8, after: u8) -> Gz {
    let order = [GZ_FEXTRA, GZ_FNAME, GZ_FCOMMENT, GZ_FHCRC];
    let start = order.iter().position(|&f| f == after).map_or(0, |p| p + 1);
    for &f in &order[start..] {
        if flags & f != 0 {
            return match f {
                GZ_FEXTRA => Gz::ExtraLen { buf: [0; 2], n: 0 },
                GZ_FNAME => Gz::Name,
                GZ_FCOMMENT => Gz::Comment,
                _ => Gz::HeaderCrc(2),
            };
        }
    }
    Gz::Body
}

enum Enc {
    Identity,
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

/// Streaming encoder for one body. Output appears in `out` as the codec
/// produces it; call [`Encoder::flush`] after each chunk of a streamed
/// response so the caller receives it without waiting for more.
pub struct Encoder {
    coding: Coding,
    enc: Option<Enc>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("coding", &self.coding)
            .field("finished", &self.enc.is_none())
            .finish()
    }
}

impl Encoder {
    /// `level`: 0–9 for gzip/deflate (clamped), 0–11 for brotli (clamped);
    /// ignored for identity. 1–5 suit on-the-fly compression.
    pub fn new(coding: Coding, level: u32) -> Encoder {
        let enc = match coding {
            Coding::Identity => Enc::Identity,
            Coding::Gzip => Enc::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.min(9)),
            )),
            Coding::Deflate => Enc::Deflate(flate2::write::ZlibEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.min(9)),
            )),
            Coding::Brotli => Enc::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                level.min(11),
                BROTLI_LGWIN,
            ))),
        };
        Encoder {
            coding,
            enc: Some(enc),
        }
    }

    /// Compresses all of `input`, appending whatever output is ready.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let coding = self.coding.as_str();
        let enc = self.enc.as_mut().ok_or(CodecError::Finished { coding })?;
        let r = match enc {
            Enc::Identity => {
                out.extend_from_slice(input);
                Ok(())
            }
            Enc::Gzip(e) => e.write_all(input),
            Enc::Deflate(e) => e.write_all(input),
            Enc::Brotli(e) => e.write_all(input),
        };
        r.map_err(|e| CodecError::Encode {
            coding,
            reason: e.to_string(),
        })?;
        drain(enc, out);
        Ok(())
    }

    /// Sync flush: everything fed so far becomes decodable from `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let coding = self.coding.as_str();
        let enc = self.enc.as_mut().ok_or(CodecError::Finished { coding })?;
        let r = match enc {
            Enc::Identity => Ok(()),
            Enc::Gzip(e) => e.flush(),
            Enc::Deflate(e) => e.flush(),
            Enc::Brotli(e) => e.flush(),
        };
        r.map_err(|e| CodecError::Encode {
            coding,
            reason: e.to_string(),
        })?;
        drain(enc, out);
        Ok(())
    }

    /// Ends the stream (trailers, final block).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let coding = self.coding.as_str();
        let enc = self.enc.take().ok_or(CodecError::Finished { coding })?;
        let encode_err = |e: std::io::Error| CodecError::Encode {
            coding,
            reason: e.to_string(),
        };
        match enc {
            Enc::Identity => {}
            Enc::Gzip(e) => out.extend_from_slice(&e.finish().map_err(encode_err)?),
            Enc::Deflate(e) => out.extend_from_slice(&e.finish().map_err(encode_err)?),
            Enc::Brotli(e) => out.extend_from_slice(&e.into_inner()),
        }
        Ok(())
    }
}

/// Moves the encoder's buffered output to `out`.
fn drain(enc: &mut Enc, out: &mut Vec<u8>) {
    let buf = match enc {
        Enc::Identity => return,
        Enc::Gzip(e) => e.get_mut(),
        Enc::Deflate(e) => e.get_mut(),
        Enc::Brotli(e) => e.get_mut(),
    };
    out.append(buf);
}
