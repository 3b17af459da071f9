//! MySQL's side of result inspection (the engine is `crate::results`):
//! result columns from ColumnDefinition packets, the text- and
//! binary-protocol row codecs, and which column types may hold text.

use std::sync::Arc;

use bytes::BytesMut;
use danxia_protocols::mysql::response::{self, types, ColumnDef};
use danxia_protocols::mysql::rows::{self as myrows, BinaryCell, Cell, RewriteStats};
use danxia_protocols::ProtocolError;

use crate::analysis::Statement;
use crate::results::{ColumnUse, Inspector, RowCodec, Unknown};

/// One result column as the data path needs it.
#[derive(Debug, Clone)]
pub struct Col {
    /// Name as the server sent it (lossy UTF-8); empty unless masks need it.
    pub name: Box<str>,
    pub column_type: u8,
    pub charset: u16,
}

impl Col {
    /// `with_name`: decode the name (only masks need it).
    pub fn from_def(def: &ColumnDef, with_name: bool) -> Col {
        Col {
            name: if with_name {
                String::from_utf8_lossy(&def.name).into()
            } else {
                Box::default()
            },
            column_type: def.column_type,
            charset: def.charset,
        }
    }

    /// Values may hold a number or text the scanner knows. Small integers,
    /// floats, dates and times cannot; BIGINT and DECIMAL can (a phone or
    /// card number stored as a number). In the binary protocol only
    /// length-encoded values are text (a binary BIGINT is 8 raw bytes).
    fn scan(&self, binary: bool) -> bool {
        match self.column_type {
            types::LONGLONG => !binary,
            types::DECIMAL | types::NEWDECIMAL => true,
            t => types::is_string_type(t),
        }
    }

    /// A masked text may replace the value: string types only (a number
    /// column masked to `138****5678` would break the client's parsing, an
    /// ENUM or SET one its mapping to the allowed values).
    fn textual(&self) -> bool {
        let t = self.column_type;
        types::is_string_type(t) && t != types::ENUM && t != types::SET
    }
}

/// A result's columns: the types the binary codec needs, the uses the
/// engine needs.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub cols: Vec<Col>,
    pub types: Vec<u8>,
}

impl Columns {
    pub fn push(&mut self, c: Col) {
        self.types.push(c.column_type);
        self.cols.push(c);
    }
}

/// Text-protocol rows (COM_QUERY results).
pub struct TextRows;

impl RowCodec for TextRows {
    fn values<'a>(
        &self,
        row: &'a [u8],
        mut f: impl FnMut(usize, &'a [u8]),
    ) -> Result<(), ProtocolError> {
        let mut v = Vec::new();
        myrows::text_row_values(row, &mut v)?;
        for (i, c) in v.into_iter().enumerate() {
            if let Some(c) = c {
                f(i, c);
            }
        }
        Ok(())
    }

    fn rewrite<'a, 'c>(
        &self,
        row: &'a [u8],
        out: &mut BytesMut,
        f: impl FnMut(usize, Option<&'a [u8]>) -> Cell<'c>,
    ) -> Result<RewriteStats, ProtocolError> {
        myrows::rewrite_text_row(row, out, f)
    }
}

/// Binary-protocol rows (COM_STMT_EXECUTE / FETCH results): the codec
/// needs each column's type to find the values.
pub struct BinaryRows<'t>(pub &'t [u8]);

impl RowCodec for BinaryRows<'_> {
    fn values<'a>(
        &self,
        row: &'a [u8],
        mut f: impl FnMut(usize, &'a [u8]),
    ) -> Result<(), ProtocolError> {
        let mut v = Vec::new();
        myrows::binary_row_values(row, self.0, &mut v)?;
        for (i, c) in v.into_iter().enumerate() {
            match c {
                BinaryCell::Null => {}
                BinaryCell::Bytes(b) | BinaryCell::Fixed(b) => f(i, b),
            }
        }
        Ok(())
    }

    fn rewrite<'a, 'c>(
        &self,
        row: &'a [u8],
        out: &mut BytesMut,
        mut f: impl FnMut(usize, Option<&'a [u8]>) -> Cell<'c>,
    ) -> Result<RewriteStats, ProtocolError> {
        myrows::rewrite_binary_row(row, self.0, out, |i, c| match c {
            BinaryCell::Null => f(i, None),
            BinaryCell::Bytes(b) | BinaryCell::Fixed(b) => f(i, Some(b)),
        })
    }
}

/// Starts the plan for a result of `stmt` with `cols`.
pub fn begin(inspector: &mut Inspector, stmt: Option<&Statement>, cols: &Columns, binary: bool) {
    let uses = cols.cols.iter().map(|c| ColumnUse {
        name: &c.name,
        scan: c.scan(binary),
        textual: c.textual(),
    });
    inspector.begin(stmt, Some(uses), Unknown::All(false));
}

/// Whether a column definition packet's fields can be read cheaply: the
/// shape of a result whose statement is not masked needs no names.
pub fn parse_col(payload: &[u8], with_name: bool) -> Result<Col, ProtocolError> {
    if with_name {
        response::parse_column_def(payload).map(|d| Col::from_def(&d, true))
    } else {
        let (column_type, charset, _flags) = response::column_type_and_charset(payload)?;
        Ok(Col {
            name: Box::default(),
            column_type,
            charset,
        })
    }
}

/// Shared, immutable columns of a prepared statement's result.
pub type SharedColumns = Arc<Columns>;

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: u8, charset: u16) -> Col {
        Col {
            name: Box::default(),
            column_type: t,
            charset,
        }
    }

    #[test]
    fn which_columns_are_scanned_and_masked_as_text() {
        assert!(col(types::VAR_STRING, 45).scan(false));
        assert!(col(types::VAR_STRING, 45).textual());
        assert!(
            col(types::LONGLONG, 63).scan(false),
            "a BIGINT may hold a phone number"
        );
        assert!(
            !col(types::LONGLONG, 63).scan(true),
            "binary BIGINT is not text"
        );
        assert!(!col(types::LONGLONG, 63).textual());
        assert!(!col(types::LONG, 63).scan(false));
        assert!(!col(types::DATETIME, 63).scan(false));
        assert!(
            col(types::NEWDECIMAL, 63).scan(true),
            "decimals are strings in both protocols"
        );
        assert!(col(types::BLOB, 63).textual());
        assert!(col(types::JSON, 45).scan(false));
    }
}
