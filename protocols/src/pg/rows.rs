//! Result rows: RowDescription ('T') and DataRow ('D'), decoded and rewritten.
//!
//! Owns the layout of the two messages that carry query results, so that the
//! proxy can learn the shape of a result (column names, type OIDs, formats)
//! and rewrite cells of a row on the fly for dynamic masking: decode a
//! RowDescription, view a DataRow's cells without allocating, and build a new
//! DataRow from an old one with some cells replaced.
//!
//! Must never: buffer more than the one message it is handed (rows stream
//! through; a result set is never collected), decide which columns are
//! sensitive or how to mask them (policy passes that in as a closure), look
//! inside cell values, or panic on input. Decoders take the body (bytes after
//! the 5-byte header); [`rewrite_data_row`] writes a whole framed message.
//!
//! # Text and binary cells
//!
//! This codec is format-agnostic: a cell is bytes in, bytes out. Each column
//! is sent in text (format code 0) or binary (format code 1), and a masked
//! column in binary format would need type-aware rewriting (a binary `int4`
//! is exactly 4 bytes, a binary `text` has no terminator, a `numeric` has an
//! internal layout): writing `***` into it makes the client fail or, worse,
//! misread. The caller decides per column, from [`Field::format`], before
//! choosing a [`Cell`]: the proxy either refuses binary format for masked
//! columns or masks by type.
//!
//! One catch for that decision: in a RowDescription that answers Describe of
//! a *statement* (extended protocol), PostgreSQL always sends format 0,
//! because the formats are only chosen later by Bind. The format the DataRows
//! of a portal really use is the Bind's result format codes (see
//! [`crate::pg::frontend::Bind::result_formats`]); `Field::format` is exact in
//! the RowDescription that answers Describe of a portal or a simple Query.

use std::borrow::Cow;
use std::iter::FusedIterator;

use bytes::{BufMut, BytesMut};

use crate::pg::backend::tag;
use crate::pg::frame::HEADER_LEN;
use crate::pg::{begin_message, finish_message, put_cstr_bytes, Cursor};
use crate::ProtocolError;

/// PostgreSQL's `MaxTupleAttributeNumber` (`access/htup_details.h`): no
/// tuple, and so no result row, has more columns ("target lists can have at
/// most 1664 entries"). A larger count in either message is garbage or
/// hostile, and is refused before anything is sized from it.
pub const MAX_COLUMNS: usize = 1664;

/// The largest message [`rewrite_data_row`] produces, tag included. Clients
/// read the length field as a signed 32-bit integer (libpq's `pqGetInt`), so
/// a larger message would read as a negative length and break the stream.
pub const MAX_DATA_ROW: usize = i32::MAX as usize;

/// Format code of a text column.
pub const FORMAT_TEXT: i16 = 0;
/// Format code of a binary column: see the module docs before masking one.
pub const FORMAT_BINARY: i16 = 1;

const ROW_DESCRIPTION: &str = "RowDescription";
const DATA_ROW: &str = "DataRow";

/// Bytes of a field after its name: table OID (4), column number (2), type
/// OID (4), type size (2), type modifier (4), format code (2).
const FIELD_FIXED_LEN: usize = 18;
/// The smallest field: an empty name (just its NUL) and the fixed part.
const MIN_FIELD_LEN: usize = 1 + FIELD_FIXED_LEN;
/// The smallest cell: the length of a NULL or an empty value.
const CELL_LEN_LEN: usize = 4;
/// The column count at the start of both messages.
const COUNT_LEN: usize = 2;
/// The cell length that means SQL NULL.
const NULL_LEN: i32 = -1;

pub(crate) const NEGATIVE_COUNT: &str = "column count is negative";
pub(crate) const TOO_MANY_COLUMNS: &str =
    "column count exceeds 1664 (PostgreSQL's MaxTupleAttributeNumber)";
pub(crate) const COUNT_EXCEEDS_BODY: &str = "column count is more than the message body can hold";
pub(crate) const BAD_FORMAT: &str = "format code is neither 0 (text) nor 1 (binary)";

/// Reads the `i16` column count that starts both messages and checks it
/// against [`MAX_COLUMNS`] and against what the rest of the body can hold
/// (`min_item` bytes per column), so nothing is ever sized from a forged
/// count: a 2-byte body claiming 1664 columns is refused here.
fn column_count(c: &mut Cursor<'_>, min_item: usize) -> Result<usize, ProtocolError> {
    let raw = c.i16()?;
    let count = usize::try_from(raw).map_err(|_| c.malformed(NEGATIVE_COUNT))?;
    if count > MAX_COLUMNS {
        return Err(c.malformed(TOO_MANY_COLUMNS));
    }
    if count > c.remaining() / min_item {
        return Err(c.malformed(COUNT_EXCEEDS_BODY));
    }
    Ok(count)
}

/// One column of a RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Column name or alias as raw bytes in the session's client encoding
    /// (which need not be UTF-8); never converted.
    pub name: &'a [u8],
    /// OID of the source table, 0 when the column is not a plain table column.
    pub table_oid: u32,
    /// Attribute number in that table, 0 when not a plain table column.
    pub column: i16,
    /// OID of the column's data type.
    pub type_oid: u32,
    /// `pg_type.typlen`: negative for variable-length types.
    pub type_size: i16,
    /// `pg_attribute.atttypmod`, type-specific (e.g. varchar length + 4).
    pub type_modifier: i32,
    /// [`FORMAT_TEXT`] or [`FORMAT_BINARY`]: what the caller consults before
    /// rewriting this column's cells (see the module docs for the catch).
    pub format: i16,
}

impl Field<'_> {
    /// Format code 1: cells are in the type's binary send format.
    pub fn is_binary(&self) -> bool {
        self.format == FORMAT_BINARY
    }
}

/// Decodes a RowDescription. The count must be 0..=[`MAX_COLUMNS`] and fit
/// the body (every field takes at least 19 bytes), names must be
/// NUL-terminated, formats 0 or 1, and no bytes may follow the last field.
/// The Vec is sized from the validated count, so it never holds more than
/// the body could describe.
pub fn decode_row_description(body: &[u8]) -> Result<Vec<Field<'_>>, ProtocolError> {
    let mut c = Cursor::new(body, ROW_DESCRIPTION);
    let count = column_count(&mut c, MIN_FIELD_LEN)?;
    let mut fields = Vec::with_capacity(count);
    for _ in 0..count {
        let field = Field {
            name: c.cstr_bytes()?,
            table_oid: c.u32()?,
            column: c.i16()?,
            type_oid: c.u32()?,
            type_size: c.i16()?,
            type_modifier: c.i32()?,
            format: c.i16()?,
        };
        if !matches!(field.format, FORMAT_TEXT | FORMAT_BINARY) {
            return Err(c.malformed(BAD_FORMAT));
        }
        fields.push(field);
    }
    c.finish()?;
    Ok(fields)
}

/// Writes a RowDescription. Fields are written as given (an invalid format
/// code included, so tests can build hostile messages); a name is cut at its
/// first NUL and at most [`MAX_COLUMNS`] fields are written, so that the
/// message is always one [`decode_row_description`] can read back.
pub fn encode_row_description(out: &mut BytesMut, fields: &[Field<'_>]) {
    let fields = &fields[..fields.len().min(MAX_COLUMNS)];
    let start = begin_message(out, tag::ROW_DESCRIPTION);
    out.put_u16(fields.len() as u16);
    for field in fields {
        put_cstr_bytes(out, field.name);
        out.put_u32(field.table_oid);
        out.put_i16(field.column);
        out.put_u32(field.type_oid);
        out.put_i16(field.type_size);
        out.put_i32(field.type_modifier);
        out.put_i16(field.format);
    }
    finish_message(out, start);
}

/// The cells of a DataRow, validated in full by [`data_row_values`].
///
/// Validation happens once, up front, in one pass over the cell lengths, so
/// iteration cannot fail and yields plain `Option<&[u8]>` (None is SQL
/// NULL). Nothing is allocated: the view borrows the message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRowValues<'a> {
    len: usize,
    /// The bytes after the column count: exactly `len` cells, nothing more.
    cells: &'a [u8],
}

impl<'a> DataRowValues<'a> {
    /// Number of columns.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The cells in column order; `None` is SQL NULL.
    pub fn iter(&self) -> DataRowIter<'a> {
        DataRowIter {
            left: self.len,
            rest: self.cells,
        }
    }
}

impl<'a> IntoIterator for DataRowValues<'a> {
    type Item = Option<&'a [u8]>;
    type IntoIter = DataRowIter<'a>;

    fn into_iter(self) -> DataRowIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &DataRowValues<'a> {
    type Item = Option<&'a [u8]>;
    type IntoIter = DataRowIter<'a>;

    fn into_iter(self) -> DataRowIter<'a> {
        self.iter()
    }
}

/// Iterator over the cells of a validated DataRow.
#[derive(Debug, Clone)]
pub struct DataRowIter<'a> {
    left: usize,
    rest: &'a [u8],
}

impl<'a> Iterator for DataRowIter<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let mut c = Cursor::new(self.rest, DATA_ROW);
        match c.value() {
            Ok(cell) => {
                self.left -= 1;
                self.rest = c.peek_rest();
                Some(cell)
            }
            // Cannot happen: `data_row_values` walked these very bytes. Ending
            // the iteration keeps even a broken invariant panic-free.
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for DataRowIter<'_> {}
impl FusedIterator for DataRowIter<'_> {}

/// Validates a DataRow body and returns a view of its cells. The count must
/// be 0..=[`MAX_COLUMNS`] and fit the body (4 bytes per cell at least); a
/// length of -1 is NULL, any other negative length is Malformed; every value
/// must fit; no bytes may follow the last cell.
pub fn data_row_values(body: &[u8]) -> Result<DataRowValues<'_>, ProtocolError> {
    let mut c = Cursor::new(body, DATA_ROW);
    let len = column_count(&mut c, CELL_LEN_LEN)?;
    let cells = c.peek_rest();
    for _ in 0..len {
        c.value()?;
    }
    c.finish()?;
    Ok(DataRowValues { len, cells })
}

/// Appends one cell. A value over 2 GiB cannot be represented; it is sent
/// empty rather than with a length that would desynchronise the stream
/// ([`rewrite_data_row`] refuses such rows before getting here).
fn put_cell(out: &mut BytesMut, cell: Option<&[u8]>) {
    match cell {
        None => out.put_i32(NULL_LEN),
        Some(value) => match i32::try_from(value.len()) {
            Ok(len) => {
                out.put_i32(len);
                out.put_slice(value);
            }
            Err(_) => out.put_i32(0),
        },
    }
}

/// Writes a DataRow. At most [`MAX_COLUMNS`] cells are written, so the
/// message is always one [`data_row_values`] can read back.
pub fn encode_data_row(out: &mut BytesMut, values: &[Option<&[u8]>]) {
    let values = &values[..values.len().min(MAX_COLUMNS)];
    let start = begin_message(out, tag::DATA_ROW);
    out.put_u16(values.len() as u16);
    for value in values {
        put_cell(out, *value);
    }
    finish_message(out, start);
}

/// What [`rewrite_data_row`] writes for one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell<'c> {
    /// The original cell, byte for byte (NULL stays NULL).
    Keep,
    /// A replacement value: borrowed (a constant mask, a slice of the
    /// original cell) or owned (computed per cell, e.g. a partial mask);
    /// either way it is copied once, into the output.
    Value(Cow<'c, [u8]>),
    /// SQL NULL.
    Null,
}

impl<'c> Cell<'c> {
    /// `Cell::value(b"***")`, `Cell::value(&cell[..2])`, `Cell::value(vec)`.
    pub fn value(bytes: impl Into<Cow<'c, [u8]>>) -> Self {
        Cell::Value(bytes.into())
    }
}

/// What a rewrite did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewriteStats {
    /// Cells whose output differs from the input: a [`Cell::Value`] equal to
    /// the original, or [`Cell::Null`] for a NULL, does not count. When this
    /// is 0 the output is byte-identical to the input message, and the
    /// caller may forward the original bytes instead.
    pub changed: usize,
}

/// Builds a new DataRow from `body` (the original's body), asking `f` what to
/// write for each cell, and appends the whole framed message (tag, length,
/// count, cells) to `out`. The column count never changes; the length is
/// recomputed.
///
/// `f` gets the column index and the original cell (`None` is NULL) and is
/// called exactly once per column, in order — unless the body is malformed,
/// in which case it is checked first and `f` is never called.
///
/// On any error `out` is left as it was. Errors: the body is malformed, or
/// the new message would exceed [`MAX_DATA_ROW`] bytes
/// (`MessageTooLarge { len, max }` with its exact size); `out` never grows
/// past that limit.
pub fn rewrite_data_row<'a, 'c, F>(
    body: &'a [u8],
    out: &mut BytesMut,
    f: F,
) -> Result<RewriteStats, ProtocolError>
where
    F: FnMut(usize, Option<&'a [u8]>) -> Cell<'c>,
{
    rewrite_with_limit(body, out, MAX_DATA_ROW, f)
}

/// [`rewrite_data_row`] with the size limit as a parameter, so tests can
/// reach it without 2 GiB values.
fn rewrite_with_limit<'a, 'c, F>(
    body: &'a [u8],
    out: &mut BytesMut,
    limit: usize,
    mut f: F,
) -> Result<RewriteStats, ProtocolError>
where
    F: FnMut(usize, Option<&'a [u8]>) -> Cell<'c>,
{
    let row = data_row_values(body)?;
    let rollback = out.len();
    let mut total = HEADER_LEN + COUNT_LEN;
    let mut fits = total <= limit;
    if fits {
        // The usual rewrite is about as long as the original.
        out.reserve((HEADER_LEN + body.len()).min(limit));
    }
    let start = begin_message(out, tag::DATA_ROW);
    out.put_u16(row.len() as u16);
    let mut stats = RewriteStats::default();
    for (index, old) in row.iter().enumerate() {
        let cell = f(index, old);
        let new = match &cell {
            Cell::Keep => old,
            Cell::Value(value) => Some(value.as_ref()),
            Cell::Null => None,
        };
        if !matches!(cell, Cell::Keep) && new != old {
            stats.changed += 1;
        }
        total = total
            .saturating_add(CELL_LEN_LEN)
            .saturating_add(new.map_or(0, <[u8]>::len));
        fits = fits && total <= limit;
        if fits {
            put_cell(out, new);
        }
    }
    if !fits {
        out.truncate(rollback);
        return Err(ProtocolError::MessageTooLarge {
            len: total,
            max: limit,
        });
    }
    finish_message(out, start);
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::frame::split_message;
    use crate::pg::{MISSING_NUL, NEGATIVE_LENGTH, TRAILING, TRUNCATED};

    fn malformed(message: &'static str, reason: &'static str) -> ProtocolError {
        ProtocolError::Malformed { message, reason }
    }

    /// The single message in `buf`: its tag and body.
    fn only_message(buf: &[u8]) -> (u8, &[u8]) {
        let msg = split_message(buf, usize::MAX).unwrap().unwrap();
        assert_eq!(msg.total_len(), buf.len(), "one whole message");
        (msg.tag, msg.body)
    }

    fn framed(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn field(name: &[u8], type_oid: u32, format: i16) -> Field<'_> {
        Field {
            name,
            table_oid: 16_384,
            column: 2,
            type_oid,
            type_size: -1,
            type_modifier: -1,
            format,
        }
    }

    /// Body bytes of one field, written by hand (not by the encoder under test).
    fn field_bytes(name: &[u8], format: i16) -> Vec<u8> {
        let mut v = name.to_vec();
        v.push(0);
        v.extend_from_slice(&16_384u32.to_be_bytes());
        v.extend_from_slice(&2i16.to_be_bytes());
        v.extend_from_slice(&25u32.to_be_bytes());
        v.extend_from_slice(&(-1i16).to_be_bytes());
        v.extend_from_slice(&(-1i32).to_be_bytes());
        v.extend_from_slice(&format.to_be_bytes());
        v
    }

    fn count(n: i16, rest: &[u8]) -> Vec<u8> {
        let mut v = n.to_be_bytes().to_vec();
        v.extend_from_slice(rest);
        v
    }

    /// A DataRow body written by hand: `None` is NULL.
    fn row_bytes(cells: &[Option<&[u8]>]) -> Vec<u8> {
        let mut v = (cells.len() as i16).to_be_bytes().to_vec();
        for cell in cells {
            match cell {
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(value) => {
                    v.extend_from_slice(&(value.len() as i32).to_be_bytes());
                    v.extend_from_slice(value);
                }
            }
        }
        v
    }

    fn cell_len(len: i32, rest: &[u8]) -> Vec<u8> {
        let mut v = count(1, &len.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    fn decode_row(body: &[u8]) -> Result<Vec<Option<&[u8]>>, ProtocolError> {
        data_row_values(body).map(|row| row.iter().collect())
    }

    #[test]
    fn row_description_table() {
        let name = ROW_DESCRIPTION;
        let one = count(1, &field_bytes(b"id", 0));
        let two = [count(2, &field_bytes(b"id", 0)), field_bytes(b"", 1)].concat();
        let gbk = count(1, &field_bytes(b"\xd0\xd5\xc3\xfb", 0));
        let id = field(b"id", 25, 0);
        type Case<'a> = (Vec<u8>, Result<Vec<Field<'a>>, ProtocolError>);
        let cases: Vec<Case> = vec![
            (count(0, b""), Ok(vec![])),
            (one.clone(), Ok(vec![id])),
            (two, Ok(vec![id, field(b"", 25, 1)])),
            // names are raw bytes in the client encoding, not UTF-8
            (gbk, Ok(vec![field(b"\xd0\xd5\xc3\xfb", 25, 0)])),
            (vec![], Err(malformed(name, TRUNCATED))),
            (vec![0], Err(malformed(name, TRUNCATED))),
            (count(-1, b""), Err(malformed(name, NEGATIVE_COUNT))),
            (count(i16::MIN, b""), Err(malformed(name, NEGATIVE_COUNT))),
            (
                count(1665, &[0; 1665 * 19]),
                Err(malformed(name, TOO_MANY_COLUMNS)),
            ),
            (count(i16::MAX, b""), Err(malformed(name, TOO_MANY_COLUMNS))),
            (count(1, b""), Err(malformed(name, COUNT_EXCEEDS_BODY))),
            (count(1, &[0; 18]), Err(malformed(name, COUNT_EXCEEDS_BODY))),
            (
                count(2, &field_bytes(b"id", 0)),
                Err(malformed(name, COUNT_EXCEEDS_BODY)),
            ),
            (
                count(1664, &field_bytes(b"id", 0)),
                Err(malformed(name, COUNT_EXCEEDS_BODY)),
            ),
            (count(1, &[b'x'; 19]), Err(malformed(name, MISSING_NUL))),
            // long name, fixed part cut short: passes the count check, then truncated
            (
                count(1, &[&[b'x'; 18][..], &[0], &[0; 10]].concat()),
                Err(malformed(name, TRUNCATED)),
            ),
            (
                count(1, &field_bytes(b"id", 2)),
                Err(malformed(name, BAD_FORMAT)),
            ),
            (
                count(1, &field_bytes(b"id", -1)),
                Err(malformed(name, BAD_FORMAT)),
            ),
            (
                [one.as_slice(), &[0]].concat(),
                Err(malformed(name, TRAILING)),
            ),
            (count(0, b"\0"), Err(malformed(name, TRAILING))),
        ];
        for (input, want) in &cases {
            assert_eq!(&decode_row_description(input), want, "{input:?}");
        }
    }

    #[test]
    fn data_row_table() {
        let name = DATA_ROW;
        type Case = (Vec<u8>, Result<Vec<Option<&'static [u8]>>, ProtocolError>);
        let cases: Vec<Case> = vec![
            (count(0, b""), Ok(vec![])),
            (row_bytes(&[None]), Ok(vec![None])),
            (row_bytes(&[Some(b"")]), Ok(vec![Some(b"")])),
            (
                row_bytes(&[Some(b"42"), None, Some(b"alice@example.com"), Some(b"")]),
                Ok(vec![
                    Some(b"42"),
                    None,
                    Some(b"alice@example.com"),
                    Some(b""),
                ]),
            ),
            (row_bytes(&[Some(b"\0\xff\0")]), Ok(vec![Some(b"\0\xff\0")])),
            (vec![], Err(malformed(name, TRUNCATED))),
            (vec![0], Err(malformed(name, TRUNCATED))),
            (count(-1, b""), Err(malformed(name, NEGATIVE_COUNT))),
            (
                count(1665, &[0xFF; 1665 * 4]),
                Err(malformed(name, TOO_MANY_COLUMNS)),
            ),
            (count(i16::MAX, b""), Err(malformed(name, TOO_MANY_COLUMNS))),
            (count(1, b""), Err(malformed(name, COUNT_EXCEEDS_BODY))),
            (
                count(3, &[0xFF; 8]),
                Err(malformed(name, COUNT_EXCEEDS_BODY)),
            ),
            (
                count(1664, &[0xFF; 4]),
                Err(malformed(name, COUNT_EXCEEDS_BODY)),
            ),
            (cell_len(-2, b""), Err(malformed(name, NEGATIVE_LENGTH))),
            (
                cell_len(i32::MIN, b""),
                Err(malformed(name, NEGATIVE_LENGTH)),
            ),
            (cell_len(10, b"abc"), Err(malformed(name, TRUNCATED))),
            (cell_len(i32::MAX, b"abc"), Err(malformed(name, TRUNCATED))),
            (cell_len(2, b"abc"), Err(malformed(name, TRAILING))),
            (cell_len(-1, b"\0"), Err(malformed(name, TRAILING))),
            (count(0, b"\0\0\0\0"), Err(malformed(name, TRAILING))),
            // count says 1, body holds 2 cells
            (
                [
                    count(1, &(-1i32).to_be_bytes()),
                    (-1i32).to_be_bytes().to_vec(),
                ]
                .concat(),
                Err(malformed(name, TRAILING)),
            ),
        ];
        for (input, want) in &cases {
            assert_eq!(&decode_row(input), want, "{input:?}");
            if let Ok(row) = data_row_values(input) {
                assert_eq!(row.len(), want.as_ref().unwrap().len());
                assert_eq!(row.is_empty(), row.iter().next().is_none());
                assert_eq!(row.iter().len(), row.len());
            }
        }
    }

    #[test]
    fn max_columns_is_accepted_and_one_more_is_not() {
        let nulls = vec![None; MAX_COLUMNS];
        let row = data_row_values(&row_bytes(&nulls)).map(|r| r.len());
        assert_eq!(row, Ok(MAX_COLUMNS));
        let over = vec![None; MAX_COLUMNS + 1];
        assert_eq!(
            data_row_values(&row_bytes(&over)),
            Err(malformed(DATA_ROW, TOO_MANY_COLUMNS))
        );

        let one = field_bytes(b"c", 0);
        let body = count(MAX_COLUMNS as i16, &one.repeat(MAX_COLUMNS));
        let fields = decode_row_description(&body).unwrap();
        assert_eq!(fields.len(), MAX_COLUMNS);
        assert_eq!(fields.capacity(), MAX_COLUMNS);
        let body = count(MAX_COLUMNS as i16 + 1, &one.repeat(MAX_COLUMNS + 1));
        assert_eq!(
            decode_row_description(&body),
            Err(malformed(ROW_DESCRIPTION, TOO_MANY_COLUMNS))
        );
    }

    #[test]
    fn huge_declared_count_with_tiny_body_allocates_nothing_big() {
        let cases: &[&[u8]] = &[
            &[0x06, 0x80],             // 1664 columns, no bytes
            &[0x06, 0x80, 0, 0, 0, 0], // 1664 columns, one NULL's worth
            &[0x7F, 0xFF, 0, 0],       // 32767 columns
            &[
                0x06, 0x80, b'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ];
        for body in cases {
            let (_, largest) = alloc_probe::largest_during(|| {
                let _ = decode_row_description(body);
                let _ = data_row_values(body);
                let mut out = BytesMut::new();
                let _ = rewrite_data_row(body, &mut out, |_, _| Cell::Null);
            });
            assert!(largest < 256, "{body:?} allocated {largest} bytes");
        }
        // and a valid row description is sized exactly by its count
        let body = count(2, &[field_bytes(b"a", 0), field_bytes(b"b", 1)].concat());
        assert_eq!(decode_row_description(&body).unwrap().capacity(), 2);
    }

    #[test]
    fn every_prefix_of_valid_bodies_is_rejected() {
        let descriptions = [
            count(0, b""),
            count(
                2,
                &[field_bytes(b"id", 0), field_bytes(b"email", 1)].concat(),
            ),
        ];
        for full in &descriptions {
            assert!(decode_row_description(full).is_ok(), "{full:?}");
            for cut in 0..full.len() {
                let prefix = &full[..cut];
                assert!(decode_row_description(prefix).is_err(), "{prefix:?}");
            }
        }
        let rows = [
            row_bytes(&[]),
            row_bytes(&[Some(b"42"), None, Some(b""), Some(b"alice")]),
        ];
        for full in &rows {
            assert!(data_row_values(full).is_ok(), "{full:?}");
            for cut in 0..full.len() {
                let prefix = &full[..cut];
                assert!(data_row_values(prefix).is_err(), "{prefix:?}");
                let mut out = BytesMut::from(&b"kept"[..]);
                let mut calls = 0;
                let got = rewrite_data_row(prefix, &mut out, |_, _| {
                    calls += 1;
                    Cell::Null
                });
                assert_eq!(
                    got,
                    data_row_values(prefix).map(|_| RewriteStats::default())
                );
                assert_eq!((&out[..], calls), (&b"kept"[..], 0), "{prefix:?}");
            }
        }
    }

    #[test]
    fn encoders_round_trip() {
        let descriptions: &[&[Field]] = &[
            &[],
            &[field(b"id", 23, 0)],
            &[
                field(b"id", 23, 1),
                field(b"", 25, 0),
                field(b"\xd0\xd5\xc3\xfb", 1043, 0),
                Field {
                    name: b"?column?",
                    table_oid: 0,
                    column: 0,
                    type_oid: u32::MAX,
                    type_size: i16::MIN,
                    type_modifier: i32::MIN,
                    format: 1,
                },
            ],
        ];
        for fields in descriptions {
            let mut buf = BytesMut::new();
            encode_row_description(&mut buf, fields);
            let (t, body) = only_message(&buf);
            assert_eq!(t, tag::ROW_DESCRIPTION);
            assert_eq!(decode_row_description(body).as_deref(), Ok(*fields));
        }
        let rows: &[&[Option<&[u8]>]] = &[
            &[],
            &[None],
            &[Some(b"")],
            &[Some(b"1"), None, Some(b"\0\x01\xff"), Some(&[b'x'; 300])],
        ];
        for values in rows {
            let mut buf = BytesMut::new();
            encode_data_row(&mut buf, values);
            let (t, body) = only_message(&buf);
            assert_eq!(t, tag::DATA_ROW);
            assert_eq!(body, row_bytes(values));
            assert_eq!(decode_row(body).as_deref(), Ok(*values));
        }
    }

    #[test]
    fn encoders_stay_decodable() {
        // a name cannot smuggle a NUL into the field layout
        let mut buf = BytesMut::new();
        encode_row_description(&mut buf, &[field(b"a\0b", 25, 0)]);
        let fields = decode_row_description(only_message(&buf).1).unwrap();
        assert_eq!(fields, vec![field(b"a", 25, 0)]);
        // more columns than PostgreSQL allows are cut at the limit
        let mut buf = BytesMut::new();
        encode_data_row(&mut buf, &vec![None; MAX_COLUMNS + 5]);
        assert_eq!(
            decode_row(only_message(&buf).1).map(|r| r.len()),
            Ok(MAX_COLUMNS)
        );
        let mut buf = BytesMut::new();
        encode_row_description(&mut buf, &vec![field(b"c", 25, 0); MAX_COLUMNS + 1]);
        let fields = decode_row_description(only_message(&buf).1).unwrap();
        assert_eq!(fields.len(), MAX_COLUMNS);
    }

    #[test]
    fn rewrite_keep_everything_is_byte_identical() {
        let rows: &[&[Option<&[u8]>]] = &[
            &[],
            &[None],
            &[Some(b"42"), None, Some(b""), Some(b"alice@example.com")],
        ];
        for values in rows {
            let body = row_bytes(values);
            let mut out = BytesMut::new();
            let stats = rewrite_data_row(&body, &mut out, |_, _| Cell::Keep);
            assert_eq!(stats, Ok(RewriteStats { changed: 0 }));
            assert_eq!(&out[..], framed(tag::DATA_ROW, &body), "{values:?}");
        }
    }

    #[test]
    fn rewrite_replaces_cells_and_keeps_the_rest_byte_identical() {
        let original: &[Option<&[u8]>] = &[
            Some(b"7"),
            Some(b"alice@example.com"),
            Some(b"13800138000"),
            Some(b"secret"),
            None,
            Some(b"\x00\x01binary-ish\xff"),
            None,
        ];
        let body = row_bytes(original);
        type Case = (&'static str, Cell<'static>, Option<&'static [u8]>, usize);
        let mask = |column: usize| -> Option<Case> {
            Some(match column {
                1 => (
                    "longer",
                    Cell::value(b"*****************@example.com"),
                    Some(b"*****************@example.com"),
                    1,
                ),
                2 => ("shorter", Cell::value(b"138****"), Some(b"138****"), 1),
                3 => ("null", Cell::Null, None, 1),
                4 => ("null stays null", Cell::Null, None, 0),
                6 => ("null to value", Cell::value(b""), Some(b""), 1),
                _ => return None,
            })
        };
        let mut out = BytesMut::from(&b"prefix"[..]);
        let mut seen = Vec::new();
        let stats = rewrite_data_row(&body, &mut out, |column, old| {
            seen.push((column, old));
            mask(column).map_or(Cell::Keep, |(_, cell, _, _)| cell)
        })
        .unwrap();
        assert_eq!(
            seen,
            original.iter().copied().enumerate().collect::<Vec<_>>()
        );
        let want_changed: usize = (0..original.len()).filter_map(mask).map(|c| c.3).sum();
        assert_eq!(stats.changed, want_changed);

        assert_eq!(&out[..6], b"prefix");
        let (t, new_body) = only_message(&out[6..]);
        assert_eq!(t, tag::DATA_ROW);
        let got = decode_row(new_body).unwrap();
        assert_eq!(got.len(), original.len());
        for (column, (new, old)) in got.iter().zip(original).enumerate() {
            match mask(column) {
                Some((what, _, want, _)) => assert_eq!(new, &want, "{what}"),
                // kept cells: the very same bytes
                None => assert_eq!(new, old, "column {column}"),
            }
        }
    }

    #[test]
    fn rewrite_counts_only_real_changes_and_takes_owned_values() {
        let body = row_bytes(&[Some(b"same"), None, Some(b"card 4111111111111111")]);
        let mut out = BytesMut::new();
        let stats = rewrite_data_row(&body, &mut out, |column, old| match (column, old) {
            (0, Some(v)) => Cell::value(v),
            (1, None) => Cell::Null,
            // a partial mask computed per cell: keep the last 4 bytes
            (2, Some(v)) => {
                let keep = v.len().saturating_sub(4);
                let mut masked = vec![b'*'; keep];
                masked.extend_from_slice(&v[keep..]);
                Cell::value(masked)
            }
            _ => Cell::Keep,
        });
        assert_eq!(stats, Ok(RewriteStats { changed: 1 }));
        let got = decode_row(only_message(&out).1).unwrap();
        assert_eq!(
            got,
            vec![Some(&b"same"[..]), None, Some(b"*****************1111")]
        );
    }

    #[test]
    fn rewrite_of_zero_columns_is_an_empty_row() {
        let mut calls = 0;
        let mut out = BytesMut::new();
        let stats = rewrite_data_row(&count(0, b""), &mut out, |_, _| {
            calls += 1;
            Cell::Null
        });
        assert_eq!((stats, calls), (Ok(RewriteStats::default()), 0));
        assert_eq!(&out[..], b"D\0\0\0\x06\0\0");
    }

    #[test]
    fn rewrite_refuses_messages_over_the_limit_and_leaves_out_alone() {
        let body = row_bytes(&[Some(b"ab"), None, Some(b"cd")]);
        // D + len + count + (4+2) + 4 + (4+2) = 23 bytes when kept
        let cases: &[(usize, usize, Result<usize, usize>)] = &[
            // (limit, replacement length for column 0, Ok(total) / Err(len))
            (23, 2, Ok(23)),
            (22, 2, Err(23)),
            (100, 79, Ok(100)),
            (100, 80, Err(101)),
            (6, 2, Err(23)),
            (0, 0, Err(21)),
        ];
        for &(limit, replacement, want) in cases {
            let mask = vec![b'*'; replacement];
            let mut out = BytesMut::from(&b"kept"[..]);
            let mut calls = Vec::new();
            let got = rewrite_with_limit(&body, &mut out, limit, |column, _| {
                calls.push(column);
                match column {
                    0 => Cell::value(&mask[..]),
                    _ => Cell::Keep,
                }
            });
            assert_eq!(calls, [0, 1, 2], "f runs once per column, even on error");
            match want {
                Ok(total) => {
                    assert_eq!(got.map(|s| s.changed), Ok(1));
                    assert_eq!(out.len(), 4 + total);
                    let new_body = only_message(&out[4..]).1;
                    assert_eq!(decode_row(new_body).unwrap()[0], Some(&mask[..]));
                }
                Err(len) => {
                    assert_eq!(got, Err(ProtocolError::MessageTooLarge { len, max: limit }));
                    assert_eq!(&out[..], b"kept", "limit {limit}");
                }
            }
        }
    }

    #[test]
    fn iterator_is_exact_fused_and_reusable() {
        let body = row_bytes(&[Some(b"a"), None, Some(b"bc")]);
        let row = data_row_values(&body).unwrap();
        let mut it = row.iter();
        assert_eq!(it.len(), 3);
        assert_eq!(it.next(), Some(Some(&b"a"[..])));
        assert_eq!(it.size_hint(), (2, Some(2)));
        assert_eq!(it.next(), Some(None));
        assert_eq!(it.next(), Some(Some(&b"bc"[..])));
        assert_eq!((it.next(), it.next(), it.len()), (None, None, 0));
        // the view is Copy and iterates again from the start
        let again: Vec<_> = row.into_iter().collect();
        assert_eq!(again.len(), 3);
        assert_eq!((&row).into_iter().nth(2), Some(Some(&b"bc"[..])));
    }

    /// Measures the largest single allocation made by the current thread,
    /// so a test can prove that a forged count sizes nothing. Delegates to
    /// the system allocator; the thread-local is const-initialised and has
    /// no destructor, so touching it never allocates or recurses.
    // The only unsafe code in the crate, test builds only (see lib.rs).
    #[allow(unsafe_code)]
    mod alloc_probe {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static LARGEST: Cell<usize> = const { Cell::new(0) };
        }

        fn note(size: usize) {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }

        pub(super) fn largest_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
            LARGEST.with(|largest| largest.set(0));
            let result = f();
            (result, LARGEST.with(Cell::get))
        }

        struct Probe;

        // SAFETY: every call is forwarded unchanged to `System`, which upholds
        // the `GlobalAlloc` contract; `note` only records a size.
        unsafe impl GlobalAlloc for Probe {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                note(layout.size());
                System.alloc(layout)
            }

            unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
                note(layout.size());
                System.alloc_zeroed(layout)
            }

            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                note(new_size);
                System.realloc(ptr, layout, new_size)
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                System.dealloc(ptr, layout)
            }
        }

        #[global_allocator]
        static PROBE: Probe = Probe;
    }
}
