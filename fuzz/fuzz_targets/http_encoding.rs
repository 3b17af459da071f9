//! Fuzzes response Content-Encoding: the header value (first line) and
//! the decoder of each coding, fed in slices, with a hard output bound.
//! Invariants: never more than the bound is produced; bytes we encoded
//! decode back to themselves.
#![no_main]

use danxia_protocols::http::encoding::{Coding, Decoder, Encoder};
use libfuzzer_sys::fuzz_target;

/// Output bound: small, so decompression bombs hit it quickly.
const MAX_OUT: u64 = 1 << 20;

fn decode(coding: Coding, body: &[u8], slice: usize) -> Result<Vec<u8>, ()> {
    let mut d = Decoder::new(coding, MAX_OUT);
    let mut out = Vec::new();
    for chunk in body.chunks(slice.max(1)) {
        d.feed(chunk, &mut out).map_err(|_| ())?;
        assert!(d.produced() <= MAX_OUT && out.len() as u64 <= MAX_OUT);
    }
    d.finish(&mut out).map_err(|_| ())?;
    assert!(out.len() as u64 <= MAX_OUT);
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    if let Ok(value) = std::str::from_utf8(line) {
        let _ = Coding::parse(value);
    }
    let slice = usize::from(data.first().copied().unwrap_or(1)) * 7 + 1;
    for coding in [
        Coding::Identity,
        Coding::Gzip,
        Coding::Deflate,
        Coding::Brotli,
    ] {
        let _ = decode(coding, body, slice);
    }
    let coding = [Coding::Gzip, Coding::Deflate, Coding::Brotli][usize::from(slice % 3)];
    let mut e = Encoder::new(coding, 1);
    let mut packed = Vec::new();
    e.feed(body, &mut packed).expect("encode");
    e.finish(&mut packed).expect("encode");
    assert_eq!(
        decode(coding, &packed, slice).as_deref(),
        Ok(body),
        "round trip"
    );
});
