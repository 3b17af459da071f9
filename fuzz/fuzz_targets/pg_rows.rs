//! Fuzzes the result-row codec: RowDescription and DataRow decoding and the
//! DataRow rewriter used for masking.
//!
//! The input is read as a stream of tagged messages, the way the proxy reads
//! a server; 'T' and 'D' bodies go to their decoders, and the raw input also
//! goes to every decoder, so layouts are explored even when the framing bytes
//! are wrong. Checks that accepted bodies re-encode to the same bytes, that a
//! rewrite keeping every cell is byte-identical, and that a masking rewrite
//! decodes back to what was asked. Must never: do anything but call the codec.
#![no_main]

use bytes::BytesMut;
use danxia_protocols::pg::backend::tag;
use danxia_protocols::pg::frame::split_message;
use danxia_protocols::pg::rows::{self, Cell};
use libfuzzer_sys::fuzz_target;

/// Small enough that oversized frames are exercised often.
const MAX_MESSAGE: usize = 64 * 1024;

/// The masking rule under test: non-NULL cells of columns 0, 3, 6, … become
/// a fixed string, columns 1, 4, 7, … become NULL, the rest are kept.
fn mask(column: usize, cell: Option<&[u8]>) -> Option<&[u8]> {
    match column % 3 {
        0 => cell.map(|_| &b"***"[..]),
        1 => None,
        _ => cell,
    }
}

fn row_description(body: &[u8]) {
    if let Ok(fields) = rows::decode_row_description(body) {
        let mut out = BytesMut::new();
        rows::encode_row_description(&mut out, &fields);
        let msg = split_message(&out, usize::MAX).ok().flatten();
        assert_eq!(msg.map(|m| m.body), Some(body), "RowDescription re-encodes");
    }
}

fn data_row(body: &[u8]) {
    let mut kept = BytesMut::new();
    let keep = rows::rewrite_data_row(body, &mut kept, |_, _| Cell::Keep);
    let row = match rows::data_row_values(body) {
        Ok(row) => row,
        Err(e) => {
            assert_eq!(keep, Err(e), "rewriter and decoder disagree");
            assert!(kept.is_empty(), "nothing written on error");
            return;
        }
    };
    assert_eq!(keep.map(|s| s.changed), Ok(0));
    let msg = split_message(&kept, usize::MAX).ok().flatten();
    assert_eq!(msg.map(|m| (m.tag, m.body)), Some((tag::DATA_ROW, body)));

    let mut masked = BytesMut::new();
    let stats = rows::rewrite_data_row(body, &mut masked, |i, v| match mask(i, v) {
        Some(value) => Cell::value(value),
        None => Cell::Null,
    });
    let want: Vec<_> = row.iter().enumerate().map(|(i, v)| mask(i, v)).collect();
    let changed = want
        .iter()
        .zip(row.iter())
        .filter(|(w, v)| **w != *v)
        .count();
    assert_eq!(stats.map(|s| s.changed), Ok(changed));
    let msg = split_message(&masked, usize::MAX).ok().flatten();
    let back = msg.and_then(|m| rows::data_row_values(m.body).ok());
    let got: Option<Vec<_>> = back.map(|r| r.iter().collect());
    assert_eq!(got, Some(want), "masked row decodes back");
}

fuzz_target!(|data: &[u8]| {
    row_description(data);
    data_row(data);
    let mut rest = data;
    while let Ok(Some(msg)) = split_message(rest, MAX_MESSAGE) {
        match msg.tag {
            tag::ROW_DESCRIPTION => row_description(msg.body),
            tag::DATA_ROW => data_row(msg.body),
            _ => {}
        }
        rest = &rest[msg.total_len()..];
    }
});
