//! Tests of the content-coding codecs: round trips in random chunkings,
//! prompt flushes, truncation, decompression bombs and garbage.

use std::io::Write;

use super::encoding::{CodecError, Coding, Decoder, Encoder, DECODE_BLOCK};

const CODINGS: [Coding; 4] = [
    Coding::Identity,
    Coding::Gzip,
    Coding::Deflate,
    Coding::Brotli,
];
const NO_LIMIT: u64 = u64::MAX;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A JSON-ish body (compressible) followed by random bytes (not).
fn sample(rng: &mut XorShift, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while out.len() < len / 2 {
        out.extend_from_slice(
            format!(
                "{{\"id\":{i},\"name\":\"Zhang San\",\"phone\":\"1380013{:04}\"}},",
                i % 9999
            )
            .as_bytes(),
        );
        i += 1;
    }
    while out.len() < len {
        out.push(rng.next() as u8);
    }
    out.truncate(len);
    out
}

/// Splits `data` into random chunks (1 byte to 5000 bytes).
fn chunks<'a>(rng: &mut XorShift, data: &'a [u8], max: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (1 + rng.below(max)).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fn encode(coding: Coding, data: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut enc = Encoder::new(coding, 5);
    let mut out = Vec::new();
    for c in chunks(rng, data, 5000) {
        enc.feed(c, &mut out).expect("encode");
    }
    enc.finish(&mut out).expect("finish");
    out
}

fn decode(
    coding: Coding,
    data: &[u8],
    chunk_max: usize,
    rng: &mut XorShift,
    limit: u64,
) -> Result<Vec<u8>, CodecError> {
    let mut dec = Decoder::new(coding, limit);
    let mut out = Vec::new();
    for c in chunks(rng, data, chunk_max) {
        dec.feed(c, &mut out)?;
    }
    dec.finish(&mut out)?;
    Ok(out)
}

#[test]
fn parse_and_name_codings() {
    for (header, want) in [
        ("", Coding::Identity),
        ("identity", Coding::Identity),
        ("gzip", Coding::Gzip),
        (" GZIP ", Coding::Gzip),
        ("x-gzip", Coding::Gzip),
        ("deflate", Coding::Deflate),
        ("br", Coding::Brotli),
        ("Br", Coding::Brotli),
    ] {
        assert_eq!(Coding::parse(header), Ok(want), "{header:?}");
        assert_eq!(Coding::parse(want.as_str()), Ok(want));
    }
    for bad in ["compress", "zstd", "gzip, br", "gzip;q=1"] {
        assert!(
            matches!(Coding::parse(bad), Err(CodecError::Unsupported { .. })),
            "{bad}"
        );
    }
    let long = "x".repeat(1000);
    match Coding::parse(&long) {
        Err(CodecError::Unsupported { value }) => assert_eq!(value.len(), 64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn round_trips_in_random_chunkings() {
    let mut rng = XorShift(0x5EED_0001);
    for coding in CODINGS {
        for len in [0, 1, 100, 70_000, 300_000] {
            let data = sample(&mut rng, len);
            let encoded = encode(coding, &data, &mut rng);
            for chunk_max in [1, 7, 4096, 100_000] {
                if chunk_max == 1 && encoded.len() > 20_000 {
                    continue; // byte-by-byte on large bodies is slow in debug builds
                }
                let got = decode(coding, &encoded, chunk_max, &mut rng, NO_LIMIT)
                    .unwrap_or_else(|e| panic!("{coding:?} len {len} chunks {chunk_max}: {e}"));
                assert!(
                    got == data,
                    "{coding:?} len {len} chunks {chunk_max}: round trip differs"
                );
            }
        }
    }
}

#[test]
fn flush_makes_everything_so_far_decodable() {
    let mut rng = XorShift(0x5EED_0002);
    for coding in CODINGS {
        let mut enc = Encoder::new(coding, 3);
        let mut dec = Decoder::new(coding, NO_LIMIT);
        let mut sent = Vec::new();
        let mut decoded = Vec::new();
        for _ in 0..20 {
            let len = 1 + rng.below(3000);
            let piece = sample(&mut rng, len);
            let mut wire = Vec::new();
            enc.feed(&piece, &mut wire).expect("feed");
            enc.flush(&mut wire).expect("flush");
            sent.extend_from_slice(&piece);
            dec.feed(&wire, &mut decoded).expect("decode");
            assert!(
                decoded == sent,
                "{coding:?}: flushed output does not decode to everything fed"
            );
        }
        let mut wire = Vec::new();
        enc.finish(&mut wire).expect("finish");
        dec.feed(&wire, &mut decoded).expect("decode tail");
        dec.finish(&mut decoded).expect("complete");
        assert!(decoded == sent);
        assert!(matches!(
            enc.feed(b"x", &mut wire),
            Err(CodecError::Finished { .. })
        ));
    }
}

#[test]
fn truncated_streams_are_errors() {
    let mut rng = XorShift(0x5EED_0003);
    for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli] {
        let data = sample(&mut rng, 20_000);
        let encoded = encode(coding, &data, &mut rng);
        let mut cuts: Vec<usize> = (1..12).collect();
        cuts.extend([encoded.len() / 2, encoded.len() - 4, encoded.len() - 1]);
        for cut in cuts {
            let r = decode(coding, &encoded[..cut], 4096, &mut rng, NO_LIMIT);
            assert!(
                r.is_err(),
                "{coding:?} cut at {cut} of {} accepted",
                encoded.len()
            );
        }
        let mut dec = Decoder::new(coding, NO_LIMIT);
        let mut out = Vec::new();
        dec.feed(&encoded[..encoded.len() - 1], &mut out)
            .expect("a prefix is fine until the end");
        assert_eq!(
            dec.finish(&mut out),
            Err(CodecError::Truncated {
                coding: coding.as_str()
            })
        );
        // An empty body is empty under every coding.
        assert_eq!(decode(coding, b"", 10, &mut rng, NO_LIMIT), Ok(Vec::new()));
    }
}

/// 100 MB of zeros, compressed as a stream (level 1: level 9 takes seconds
/// in debug builds and only makes the bomb denser).
fn zeros_bomb(coding: Coding) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut enc = Encoder::new(coding, 1);
    let mut out = Vec::new();
    for _ in 0..100 {
        enc.feed(&zeros, &mut out).expect("encode");
    }
    enc.finish(&mut out).expect("finish");
    out
}

#[test]
fn decompression_bombs_stop_at_the_limit() {
    const LIMIT: u64 = 10 << 20;
    for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli] {
        let bomb = zeros_bomb(coding);
        assert!(
            bomb.len() < 1_000_000,
            "{coding:?} bomb is {} bytes",
            bomb.len()
        );
        let mut dec = Decoder::new(coding, LIMIT);
        let mut out = Vec::new();
        // One feed of the whole bomb: the growth of `out` stays bounded.
        let r = dec.feed(&bomb, &mut out);
        assert_eq!(
            r,
            Err(CodecError::TooLarge {
                coding: coding.as_str(),
                limit: LIMIT
            })
        );
        assert!(
            out.len() as u64 <= LIMIT,
            "{coding:?}: {} bytes out",
            out.len()
        );
        assert!(
            out.capacity() <= 2 * LIMIT as usize + DECODE_BLOCK,
            "{coding:?}: capacity {}",
            out.capacity()
        );
        assert_eq!(dec.produced(), out.len() as u64);
        // The decoder stays failed.
        assert!(dec.feed(b"", &mut out).is_err());
        assert!(dec.finish(&mut out).is_err());
    }
    // Identity is bounded too.
    let mut dec = Decoder::new(Coding::Identity, 10);
    let mut out = Vec::new();
    dec.feed(b"0123456789", &mut out).expect("at the limit");
    assert!(matches!(
        dec.feed(b"x", &mut out),
        Err(CodecError::TooLarge { .. })
    ));
}

#[test]
fn garbage_and_mutations_never_panic() {
    let mut rng = XorShift(0x5EED_0004);
    for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli] {
        for _ in 0..300 {
            let garbage: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
            let r = decode(coding, &garbage, 50, &mut rng, 1 << 20);
            if !garbage.is_empty() && coding != Coding::Brotli {
                assert!(r.is_err(), "{coding:?} accepted garbage");
            }
        }
        let valid = encode(coding, &sample(&mut rng, 5000), &mut rng);
        for _ in 0..300 {
            let mut m = valid.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(m.len());
                m[at] = rng.next() as u8;
            }
            let _ = decode(coding, &m, 1 + rng.below(700), &mut rng, 1 << 20);
        }
    }
}

#[test]
fn gzip_headers_members_and_raw_deflate() {
    let mut rng = XorShift(0x5EED_0005);
    let data = sample(&mut rng, 10_000);
    // Optional header fields: FEXTRA, FNAME, FCOMMENT (FHCRC via the flag).
    let mut gz = flate2::GzBuilder::new()
        .extra(vec![1, 2, 3, 4])
        .filename("body.json")
        .comment("a comment")
        .write(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).expect("write");
    let with_header = gz.finish().expect("finish");
    for chunk_max in [1, 13, 100_000] {
        let got =
            decode(Coding::Gzip, &with_header, chunk_max, &mut rng, NO_LIMIT).expect("decode");
        assert!(got == data);
    }
    // Two members back to back decode as their concatenation.
    let mut two = encode(Coding::Gzip, b"first,", &mut rng);
    two.extend(encode(Coding::Gzip, b"second", &mut rng));
    assert_eq!(
        decode(Coding::Gzip, &two, 3, &mut rng, NO_LIMIT).as_deref(),
        Ok(&b"first,second"[..])
    );
    // Trailing garbage after a member is refused; so is a bad CRC.
    let mut trailing = encode(Coding::Gzip, b"body", &mut rng);
    trailing.extend_from_slice(b"junk");
    assert!(decode(Coding::Gzip, &trailing, 100, &mut rng, NO_LIMIT).is_err());
    let mut bad_crc = encode(Coding::Gzip, b"body", &mut rng);
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 1;
    assert!(matches!(
        decode(Coding::Gzip, &bad_crc, 100, &mut rng, NO_LIMIT),
        Err(CodecError::Corrupt { .. })
    ));
    // "deflate" sent as raw deflate (no zlib header) is accepted.
    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    raw.write_all(&data).expect("write");
    let raw = raw.finish().expect("finish");
    for chunk_max in [1, 100_000] {
        assert!(
            decode(Coding::Deflate, &raw, chunk_max, &mut rng, NO_LIMIT).expect("raw deflate")
                == data
        );
    }
    let mut trailing = encode(Coding::Deflate, b"body", &mut rng);
    trailing.push(0);
    assert!(decode(Coding::Deflate, &trailing, 100, &mut rng, NO_LIMIT).is_err());
}
