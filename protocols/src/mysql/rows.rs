//! Result rows in the text protocol (`COM_QUERY`) and the binary protocol
//! (`COM_STMT_EXECUTE`), viewed and rewritten.
//!
//! Owns the two row layouts so that the proxy can look at a row's cells
//! without allocating and build a new row with some cells replaced, for
//! dynamic masking. The rewrite contract is the PostgreSQL codec's:
//! [`Cell`] says what to write per cell and [`RewriteStats::changed`] is 0
//! exactly when the output is byte-identical to the input.
//!
//! Must never: buffer more than the one row it is handed, decide which
//! columns to mask, look inside values, or panic on input. Functions take
//! and produce payloads (no frame header): a rewritten row may cross the
//! 16 MiB frame boundary, so the caller frames it with
//! [`crate::mysql::packet::write_frame`], which splits it as needed.
//!
//! # Text and binary rows
//!
//! A text row is a sequence of cells, each 0xFB (NULL) or a length-encoded
//! string; any replacement bytes are a valid cell. A binary row starts with
//! 0x00 and a NULL bitmap, then holds each non-NULL value in its type's
//! binary layout ([`crate::mysql::response::binary_width`]): an INT is 4
//! raw bytes, a DATETIME a length byte and packed fields. Only
//! length-encoded values (strings, decimals, blobs, JSON, …) can take
//! arbitrary replacement bytes; see [`rewrite_binary_row`] for the others.

use bytes::{BufMut, BytesMut};

pub use crate::pg::rows::{Cell, RewriteStats};

use super::response::{binary_width, put_lenenc_bytes, BinaryWidth, LOCAL_INFILE_HEADER};
use super::Reader;
use crate::ProtocolError;

const TEXT_ROW: &str = "text row";
const BINARY_ROW: &str = "binary row";
const UNKNOWN_TYPE: &str = "column type has no binary layout";
/// The byte that starts every binary row.
pub const BINARY_ROW_HEADER: u8 = 0x00;
/// The text-row cell that means SQL NULL.
const NULL_CELL: u8 = LOCAL_INFILE_HEADER;

/// The bytes a reader consumed since `before` was its rest.
fn consumed<'a>(before: &'a [u8], r: &Reader<'a>) -> &'a [u8] {
    before
        .get(..before.len().saturating_sub(r.remaining()))
        .unwrap_or_default()
}

/// One text cell: the value (None for NULL) and its raw encoding.
fn text_cell<'a>(r: &mut Reader<'a>) -> Result<(Option<&'a [u8]>, &'a [u8]), ProtocolError> {
    let before = r.peek_rest();
    let value = if r.peek() == Some(NULL_CELL) {
        r.u8()?;
        None
    } else {
        Some(r.lenenc_bytes()?)
    };
    Ok((value, consumed(before, r)))
}

/// Walks every cell of a text row, calling `each` with (value, raw bytes).
fn walk_text<'a>(
    payload: &'a [u8],
    mut each: impl FnMut(Option<&'a [u8]>, &'a [u8]),
) -> Result<(), ProtocolError> {
    let mut r = Reader::new(payload, TEXT_ROW);
    while !r.is_empty() {
        let (value, raw) = text_cell(&mut r)?;
        each(value, raw);
    }
    Ok(())
}

/// The cells of a text-protocol row, into `out` (cleared first; reuse it
/// across rows to avoid allocating per row). `None` is NULL.
///
/// Err when a cell is truncated or starts with 0xFF. A row has no column
/// count of its own, so bytes that do not form whole cells are an error and
/// the caller compares `out.len()` with the result set's column count. The
/// caller also checks first that the packet is a row (not an ERR, 0xFF, or a
/// terminator, see [`crate::mysql::response::is_terminator`]).
pub fn text_row_values<'a>(
    payload: &'a [u8],
    out: &mut Vec<Option<&'a [u8]>>,
) -> Result<(), ProtocolError> {
    out.clear();
    let result = walk_text(payload, |value, _| out.push(value));
    if result.is_err() {
        out.clear();
    }
    result
}

/// Appends the payload of a text row with these cells.
pub fn put_text_row(out: &mut BytesMut, values: &[Option<&[u8]>]) {
    for value in values {
        match value {
            None => out.put_u8(NULL_CELL),
            Some(v) => put_lenenc_bytes(out, v),
        }
    }
}

/// Builds a new text row from `payload`, asking `f` what to write for each
/// cell, and appends the new payload (no frame header) to `out`.
///
/// `f` gets the column index and the original cell (None is NULL) and is
/// called once per column in order, after the whole row has been
/// validated: on a malformed row it is never called and `out` is untouched.
/// A replacement equal to the original (or `Null` for a NULL) copies the
/// original bytes and does not count as changed.
pub fn rewrite_text_row<'a, 'c, F>(
    payload: &'a [u8],
    out: &mut BytesMut,
    mut f: F,
) -> Result<RewriteStats, ProtocolError>
where
    F: FnMut(usize, Option<&'a [u8]>) -> Cell<'c>,
{
    walk_text(payload, |_, _| {})?;
    out.reserve(payload.len());
    let mut stats = RewriteStats::default();
    let mut index = 0;
    walk_text(payload, |old, raw| {
        let cell = f(index, old);
        index += 1;
        let new = match &cell {
            Cell::Keep => old,
            Cell::Value(v) => Some(v.as_ref()),
            Cell::Null => None,
        };
        if new == old {
            out.put_slice(raw);
        } else {
            stats.changed += 1;
            put_text_row(out, &[new]);
        }
    })?;
    Ok(stats)
}

/// One cell of a binary-protocol row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryCell<'a> {
    /// SQL NULL (the bitmap bit is set; no bytes in the row).
    Null,
    /// The content of a length-encoded value (string, decimal, blob, …).
    Bytes(&'a [u8]),
    /// The raw bytes of a fixed-width value (integers, floats: little
    /// endian) or of a length-prefixed one (dates and times: the packed
    /// fields without their length byte).
    Fixed(&'a [u8]),
}

/// Bytes of the NULL bitmap of a binary row of `n` columns: the bits are
/// offset by 2 (the first two are reserved).
fn bitmap_len(n: usize) -> usize {
    n.saturating_add(9) / 8
}

/// Byte index and mask of column `i` in a binary row's NULL bitmap.
fn null_bit(i: usize) -> (usize, u8) {
    let bit = i.saturating_add(2);
    (bit / 8, 1 << (bit % 8))
}

fn is_null(bitmap: &[u8], i: usize) -> bool {
    let (byte, mask) = null_bit(i);
    bitmap.get(byte).is_some_and(|b| b & mask != 0)
}

/// One non-NULL binary value of type `t`: the cell and its raw encoding.
fn binary_cell<'a>(r: &mut Reader<'a>, t: u8) -> Result<(BinaryCell<'a>, &'a [u8]), ProtocolError> {
    let before = r.peek_rest();
    let cell = match binary_width(t) {
        Some(BinaryWidth::Fixed(n)) => BinaryCell::Fixed(r.bytes(n)?),
        Some(BinaryWidth::LengthPrefixed) => {
            let n = r.u8()?;
            BinaryCell::Fixed(r.bytes(usize::from(n))?)
        }
        Some(BinaryWidth::LenEnc) => BinaryCell::Bytes(r.lenenc_bytes()?),
        None => return Err(r.malformed(UNKNOWN_TYPE)),
    };
    Ok((cell, consumed(before, r)))
}

/// Walks a binary row of `types.len()` columns, calling `each` with
/// (index, cell, raw bytes of the value, empty for NULL); returns the
/// bitmap. Rejects a wrong header, a short bitmap, truncated values, unknown
/// types of non-NULL columns and trailing bytes.
fn walk_binary<'a>(
    payload: &'a [u8],
    types: &[u8],
    mut each: impl FnMut(usize, BinaryCell<'a>, &'a [u8]),
) -> Result<&'a [u8], ProtocolError> {
    let mut r = Reader::new(payload, BINARY_ROW);
    r.expect(BINARY_ROW_HEADER)?;
    let bitmap = r.bytes(bitmap_len(types.len()))?;
    for (i, &t) in types.iter().enumerate() {
        if is_null(bitmap, i) {
            each(i, BinaryCell::Null, &[]);
        } else {
            let (cell, raw) = binary_cell(&mut r, t)?;
            each(i, cell, raw);
        }
    }
    r.finish()?;
    Ok(bitmap)
}

/// The cells of a binary-protocol row, into `out` (cleared first), one per
/// entry of `types` (the column types from the result set's column
/// definitions, see [`crate::mysql::response::column_type_and_charset`]).
pub fn binary_row_values<'a>(
    payload: &'a [u8],
    types: &[u8],
    out: &mut Vec<BinaryCell<'a>>,
) -> Result<(), ProtocolError> {
    out.clear();
    let result = walk_binary(payload, types, |_, cell, _| out.push(cell)).map(|_| ());
    if result.is_err() {
        out.clear();
    }
    result
}

/// Builds a new binary row from `payload`, asking `f` what to write for
/// each cell, and appends the new payload (no frame header) to `out`.
///
/// - [`Cell::Keep`] copies the original value (NULL stays NULL);
/// - [`Cell::Null`] sets the column's NULL bit and omits the value;
/// - [`Cell::Value`] writes a length-encoded string, and is honoured only
///   for columns whose binary layout is length-encoded (strings, decimals,
///   blobs, JSON, …). For a fixed-width or length-prefixed column (integers,
///   floats, dates, times) it is treated as [`Cell::Null`]: the client
///   decodes those columns by type, so arbitrary bytes there would be read
///   as a different number or date, or desynchronise the rest of the row.
///   NULL is the only mask that is valid for every type.
///
/// The NULL bitmap is the original one with the bits of changed cells set
/// or cleared, so reserved and padding bits survive and a rewrite that
/// changes nothing is byte-identical. `f` is called once per column in
/// order after the row has been validated; on error it is never called and
/// `out` is untouched.
pub fn rewrite_binary_row<'a, 'c, F>(
    payload: &'a [u8],
    types: &[u8],
    out: &mut BytesMut,
    mut f: F,
) -> Result<RewriteStats, ProtocolError>
where
    F: FnMut(usize, BinaryCell<'a>) -> Cell<'c>,
{
    let bitmap = walk_binary(payload, types, |_, _, _| {})?;
    out.reserve(payload.len());
    out.put_u8(BINARY_ROW_HEADER);
    let bitmap_at = out.len();
    out.put_slice(bitmap);
    let mut stats = RewriteStats::default();
    walk_binary(payload, types, |i, old, raw| {
        let cell = f(i, old);
        let lenenc = types
            .get(i)
            .and_then(|&t| binary_width(t))
            .is_some_and(|w| w == BinaryWidth::LenEnc);
        let new = match &cell {
            Cell::Keep => old,
            Cell::Value(v) if lenenc => BinaryCell::Bytes(v.as_ref()),
            Cell::Value(_) | Cell::Null => BinaryCell::Null,
        };
        if new == old {
            out.put_slice(raw);
            return;
        }
        stats.changed += 1;
        let (byte, mask) = null_bit(i);
        if let Some(bits) = out.get_mut(bitmap_at + byte) {
            match new {
                BinaryCell::Null => *bits |= mask,
                _ => *bits &= !mask,
            }
        }
        if let BinaryCell::Bytes(v) = new {
            put_lenenc_bytes(out, v);
        }
    })?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::super::response::types::*;
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn text(payload: &[u8]) -> Result<Vec<Option<&[u8]>>, ProtocolError> {
        let mut out = Vec::new();
        text_row_values(payload, &mut out).map(|()| out)
    }

    fn binary<'a>(payload: &'a [u8], types: &[u8]) -> Result<Vec<BinaryCell<'a>>, ProtocolError> {
        let mut out = Vec::new();
        binary_row_values(payload, types, &mut out).map(|()| out)
    }

    fn malformed(message: &'static str, reason: &'static str) -> ProtocolError {
        ProtocolError::Malformed { message, reason }
    }

    /// `select 1, null, 'abc' as x, now(6)` from MariaDB 10.11.
    const CAPTURED_TEXT_ROW: &str =
        "0131fb036162631a323032362d31312d32362030373a31353a33302e383636353333";

    /// A captured binary row (12 columns) and its column types.
    const CAPTURED_BINARY_ROW: &str = "00100001000000036162630000000000000c400be8070102030405060000000801010000000203040700000004312e323504e8070102fbffffff00002040e8070000";
    const CAPTURED_TYPES: [u8; 12] = [
        LONG, VAR_STRING, NULL, DOUBLE, DATETIME, TIME, LONG, NEWDECIMAL, DATE, LONG, FLOAT, LONG,
    ];

    #[test]
    fn captured_text_row() {
        let payload = hex(CAPTURED_TEXT_ROW);
        assert_eq!(
            text(&payload).unwrap(),
            vec![
                Some(&b"1"[..]),
                None,
                Some(b"abc"),
                Some(b"2026-11-26 07:15:30.866533")
            ]
        );
        let mut out = BytesMut::new();
        put_text_row(&mut out, &text(&payload).unwrap());
        assert_eq!(&out[..], &payload[..]);
    }

    #[test]
    fn text_row_errors() {
        assert_eq!(text(b""), Ok(vec![]));
        let truncated = super::super::TRUNCATED;
        let bad = super::super::BAD_LENENC;
        let cases: &[(&[u8], &str)] = &[
            (b"\x03ab", truncated),
            (b"\x01a\x05", truncated),
            (b"\xff", bad),
            (b"\xfc\x01", bad),
        ];
        for &(input, reason) in cases {
            let mut out = vec![Some(&b"stale"[..])];
            let want = malformed(TEXT_ROW, reason);
            assert_eq!(text_row_values(input, &mut out), Err(want), "{input:?}");
            assert!(out.is_empty());
        }
    }

    #[test]
    fn text_rewrite_keep_is_identical_and_masks_decode_back() {
        let payload = hex(CAPTURED_TEXT_ROW);
        let mut out = BytesMut::new();
        let stats = rewrite_text_row(&payload, &mut out, |_, _| Cell::Keep).unwrap();
        assert_eq!((stats.changed, &out[..]), (0, &payload[..]));

        let mut out = BytesMut::from(&b"pre"[..]);
        let mut seen = Vec::new();
        let stats = rewrite_text_row(&payload, &mut out, |i, old| {
            seen.push((i, old));
            match i {
                0 => Cell::value(&b"1"[..]), // same value: not a change
                1 => Cell::Null,             // NULL stays NULL: not a change
                2 => Cell::value(vec![b'*'; 300]),
                _ => Cell::Null,
            }
        })
        .unwrap();
        assert_eq!(seen.len(), 4);
        assert_eq!(stats.changed, 2);
        assert_eq!(&out[..3], b"pre");
        let stars = vec![b'*'; 300];
        assert_eq!(
            text(&out[3..]).unwrap(),
            vec![Some(&b"1"[..]), None, Some(&stars[..]), None]
        );
        // non-canonical length encodings survive a keep, byte for byte
        let odd = b"\xfc\x02\x00ab\xfb";
        let mut out = BytesMut::new();
        let stats = rewrite_text_row(odd, &mut out, |_, v| Cell::Value(v.unwrap_or(b"").into()));
        assert_eq!(stats.map(|s| s.changed), Ok(1));
        assert_eq!(&out[..], b"\xfc\x02\x00ab\x00");
    }

    #[test]
    fn text_rewrite_of_a_malformed_row_does_nothing() {
        let mut out = BytesMut::from(&b"kept"[..]);
        let mut calls = 0;
        let got = rewrite_text_row(b"\x01a\x05xy", &mut out, |_, _| {
            calls += 1;
            Cell::Null
        });
        assert!(got.is_err());
        assert_eq!((&out[..], calls), (&b"kept"[..], 0));
    }

    #[test]
    fn captured_binary_row() {
        let payload = hex(CAPTURED_BINARY_ROW);
        let cells = binary(&payload, &CAPTURED_TYPES).unwrap();
        assert_eq!(
            cells,
            vec![
                BinaryCell::Fixed(&1i32.to_le_bytes()),
                BinaryCell::Bytes(b"abc"),
                BinaryCell::Null,
                BinaryCell::Fixed(&3.5f64.to_le_bytes()),
                BinaryCell::Fixed(&hex("e807010203040506000000")),
                BinaryCell::Fixed(&hex("0101000000020304")),
                BinaryCell::Fixed(&7i32.to_le_bytes()),
                BinaryCell::Bytes(b"1.25"),
                BinaryCell::Fixed(&hex("e8070102")),
                BinaryCell::Fixed(&(-5i32).to_le_bytes()),
                BinaryCell::Fixed(&2.5f32.to_le_bytes()),
                BinaryCell::Fixed(&2024i32.to_le_bytes()),
            ]
        );
        // a row echoed from COM_STMT_EXECUTE parameters, long data included
        let echoed = hex("0010002a00000000000000036162630000000000000c400be807010203040506000000080101000000020304ff096c6f6e672064617461");
        let types = [
            LONGLONG, VAR_STRING, NULL, DOUBLE, DATETIME, TIME, TINY, BLOB,
        ];
        let cells = binary(&echoed, &types).unwrap();
        assert_eq!(cells[6], BinaryCell::Fixed(&[0xff]));
        assert_eq!(cells[7], BinaryCell::Bytes(b"long data"));
    }

    #[test]
    fn binary_row_errors() {
        let payload = hex(CAPTURED_BINARY_ROW);
        // every prefix is refused, and so is a trailing byte
        for cut in 0..payload.len() {
            assert!(binary(&payload[..cut], &CAPTURED_TYPES).is_err(), "{cut}");
        }
        let mut longer = payload.clone();
        longer.push(0);
        assert_eq!(
            binary(&longer, &CAPTURED_TYPES),
            Err(malformed(BINARY_ROW, super::super::TRAILING))
        );
        // an unknown type is refused unless its column is NULL
        assert_eq!(
            binary(&[0, 0, 1], &[100]),
            Err(malformed(BINARY_ROW, UNKNOWN_TYPE))
        );
        assert_eq!(binary(&[0, 0b100], &[100]), Ok(vec![BinaryCell::Null]));
        // wrong header, zero columns
        assert!(binary(&[1, 0], &[]).is_err());
        assert_eq!(binary(&[0, 0], &[]), Ok(vec![]));
        // bitmap sizes: 6 columns fit one byte, 7 need two
        assert_eq!(bitmap_len(6), 1);
        assert_eq!(bitmap_len(7), 2);
        assert_eq!(binary(&[0, 0xFC], &[NULL; 6]).map(|c| c.len()), Ok(6));
        assert!(binary(&[0, 0xFC], &[NULL; 7]).is_err());
    }

    #[test]
    fn binary_rewrite_keep_is_identical() {
        let payload = hex(CAPTURED_BINARY_ROW);
        let mut out = BytesMut::new();
        let stats = rewrite_binary_row(&payload, &CAPTURED_TYPES, &mut out, |_, _| Cell::Keep);
        assert_eq!(stats, Ok(RewriteStats { changed: 0 }));
        assert_eq!(&out[..], &payload[..]);
        // reserved and padding bits of the bitmap are preserved too
        let odd = [0u8, 0b1111_0011, 0x01, b'x'];
        let mut out = BytesMut::new();
        let stats =
            rewrite_binary_row(&odd, &[VAR_STRING, NULL, NULL], &mut out, |_, _| Cell::Keep);
        assert_eq!((stats.map(|s| s.changed), &out[..]), (Ok(0), &odd[..]));
    }

    #[test]
    fn binary_rewrite_masks_and_rebuilds_the_bitmap() {
        let payload = hex(CAPTURED_BINARY_ROW);
        let mut out = BytesMut::from(&b"pre"[..]);
        let mut seen = Vec::new();
        let stats = rewrite_binary_row(&payload, &CAPTURED_TYPES, &mut out, |i, old| {
            seen.push(i);
            match i {
                0 => Cell::value(&b"***"[..]), // LONG: becomes NULL
                1 => Cell::value(&b"a****"[..]),
                2 => Cell::value(&b"was null"[..]), // NULL type column: stays NULL
                3 => Cell::Null,
                7 => match old {
                    BinaryCell::Bytes(v) => Cell::value(v), // same: no change
                    _ => Cell::Keep,
                },
                8 => Cell::Null,
                _ => Cell::Keep,
            }
        })
        .unwrap();
        assert_eq!(seen, (0..12).collect::<Vec<_>>());
        assert_eq!(stats.changed, 4);
        assert_eq!(&out[..3], b"pre");
        let original = binary(&payload, &CAPTURED_TYPES).unwrap();
        let cells = binary(&out[3..], &CAPTURED_TYPES).unwrap();
        for (i, (new, old)) in cells.iter().zip(&original).enumerate() {
            let want = match i {
                0 | 2 | 3 | 8 => BinaryCell::Null,
                1 => BinaryCell::Bytes(b"a****"),
                _ => *old,
            };
            assert_eq!(*new, want, "column {i}");
        }
        // NULL to value clears the bit
        let row = [0u8, 0b0000_1100, 0x01, b'x']; // columns 0 and 1 NULL
        let types = [VAR_STRING, BLOB, VAR_STRING];
        let mut out = BytesMut::new();
        let stats = rewrite_binary_row(&row, &types, &mut out, |i, _| match i {
            0 => Cell::value(&b"now set"[..]),
            _ => Cell::Keep,
        });
        assert_eq!(stats.map(|s| s.changed), Ok(1));
        assert_eq!(
            binary(&out, &types).unwrap(),
            vec![
                BinaryCell::Bytes(b"now set"),
                BinaryCell::Null,
                BinaryCell::Bytes(b"x")
            ]
        );
    }

    #[test]
    fn binary_rewrite_of_a_malformed_row_does_nothing() {
        let mut out = BytesMut::from(&b"kept"[..]);
        let mut calls = 0;
        let got = rewrite_binary_row(&[0, 0, 5, b'a'], &[VAR_STRING], &mut out, |_, _| {
            calls += 1;
            Cell::Null
        });
        assert!(got.is_err());
        assert_eq!((&out[..], calls), (&b"kept"[..], 0));
    }

    #[test]
    fn wide_rows_cross_bitmap_bytes() {
        // 20 columns, every third NULL, the rest 1-byte TINY values
        let types = [TINY; 20];
        let mut row = vec![0u8; 1 + bitmap_len(20)];
        for i in (0..20).step_by(3) {
            let (byte, mask) = null_bit(i);
            row[1 + byte] |= mask;
        }
        for i in 0..20 {
            if i % 3 != 0 {
                row.push(i as u8);
            }
        }
        let cells = binary(&row, &types).unwrap();
        for (i, cell) in cells.iter().enumerate() {
            assert_eq!(matches!(cell, BinaryCell::Null), i % 3 == 0, "{i}");
            if let BinaryCell::Fixed(v) = cell {
                assert_eq!(v, &[i as u8]);
            }
        }
        // null out everything: every value disappears, every bit is set
        let mut out = BytesMut::new();
        rewrite_binary_row(&row, &types, &mut out, |_, _| Cell::Null).unwrap();
        assert_eq!(out.len(), 1 + bitmap_len(20));
        assert!(binary(&out, &types)
            .unwrap()
            .iter()
            .all(|c| *c == BinaryCell::Null));
    }
}
