//! PostgreSQL's side of result inspection (the engine is
//! `crate::results`): result shapes from RowDescriptions, by prepared
//! statement and portal, the DataRow codec, and which type OIDs may hold
//! text. The relay asks [`Results::wants_row`] before holding a DataRow
//! whole, and [`Results::on_row`] rewrites it.
//!
//! Where the column names come from: a simple Query's RowDescription comes
//! right before its rows. An Execute gets none: its shape is the last
//! RowDescription of a Describe of its portal (whose formats are right) or
//! of its statement (whose formats are all text: the Bind's result formats
//! apply). When masking needs names and the client described neither, the
//! client side injects a Describe of the portal (see `session.rs`) and
//! the answer is swallowed here.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use danxia_detectors::pii::Scanner;
use danxia_policies::Limit;
use danxia_protocols::pg::rows::{self, Cell, RewriteStats};
use danxia_protocols::ProtocolError;

use crate::analysis::Statement;
use crate::config::DataConfig;
use crate::results::{ColumnUse, Inspector, RowCodec, Unknown};
pub use crate::results::{RowAction, RowError, Summary};

/// Prepared statements and portals whose shapes a session remembers; past
/// this the oldest are forgotten (a masked Execute then injects a Describe).
const MAX_SHAPES: usize = 10_000;

/// One result column as the data path needs it.
#[derive(Debug, Clone)]
struct Col {
    /// Name as the server sent it (lossy UTF-8).
    name: Box<str>,
    type_oid: u32,
    binary: bool,
}

/// A result's columns.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    cols: Vec<Col>,
}

impl Shape {
    /// Names are needed only to match column masks: without `names` they
    /// are left empty (no allocation per column per statement).
    fn decode(body: &[u8], names: bool) -> Option<Shape> {
        let fields = rows::decode_row_description(body).ok()?;
        Some(Shape {
            cols: fields
                .iter()
                .map(|f| Col {
                    name: if names {
                        String::from_utf8_lossy(f.name).into()
                    } else {
                        Box::default()
                    },
                    type_oid: f.type_oid,
                    binary: f.is_binary(),
                })
                .collect(),
        })
    }
}

/// What an Execute's rows need to be understood: sent by the client side.
#[derive(Debug, Clone, Default)]
pub struct ExecuteShape {
    pub portal: Box<[u8]>,
    pub statement: Box<[u8]>,
    /// The Bind's result format codes.
    pub formats: Arc<[i16]>,
    /// The portal was described after its Bind (else the statement's
    /// shape applies).
    pub portal_described: bool,
    /// The statement was described since its Parse (else the backend
    /// side's shape for its name may be an older statement's).
    pub statement_described: bool,
}

/// DataRow bodies.
struct DataRows;

impl RowCodec for DataRows {
    fn values<'a>(
        &self,
        row: &'a [u8],
        mut f: impl FnMut(usize, &'a [u8]),
    ) -> Result<(), ProtocolError> {
        for (i, v) in rows::data_row_values(row)?.iter().enumerate() {
            if let Some(v) = v {
                f(i, v);
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
        rows::rewrite_data_row(row, out, f)
    }
}

/// Per-session result inspection for PostgreSQL.
pub struct Results {
    inspector: Inspector,
    statements: HashMap<Box<[u8]>, Arc<Shape>>,
    portals: HashMap<Box<[u8]>, Arc<Shape>>,
}

impl Results {
    pub fn new(cfg: &DataConfig, scanner: Arc<Scanner>) -> Self {
        Results {
            inspector: Inspector::new(cfg, scanner),
            statements: HashMap::new(),
            portals: HashMap::new(),
        }
    }

    /// A Describe was answered: RowDescription `body`, or NoData (`None`).
    pub fn described(&mut self, portal: bool, name: &[u8], body: Option<&[u8]>) {
        let map = if portal {
            &mut self.portals
        } else {
            &mut self.statements
        };
        match body.and_then(|b| Shape::decode(b, true)) {
            Some(shape) => {
                if map.len() >= MAX_SHAPES && !map.contains_key(name) {
                    map.clear();
                }
                map.insert(name.into(), Arc::new(shape));
            }
            None => {
                map.remove(name);
            }
        }
    }

    /// A statement was closed or re-parsed: its shape is gone.
    pub fn forget(&mut self, portal: bool, name: &[u8]) {
        if portal {
            self.portals.remove(name);
        } else {
            self.statements.remove(name);
        }
    }

    /// A simple Query's RowDescription: the next rows are `stmt`'s.
    pub fn begin_simple(&mut self, stmt: Option<&Statement>, body: &[u8]) {
        let shape = Shape::decode(body, Inspector::needs_names(stmt));
        self.begin(stmt, shape.as_ref(), None, &[]);
    }

    /// The first row of an Execute's result (or of a result whose
    /// RowDescription was not seen): the plan from what is known.
    pub fn begin_execute(&mut self, stmt: Option<&Statement>, exec: Option<&ExecuteShape>) {
        let Some(e) = exec else {
            self.begin(stmt, None, None, &[]);
            return;
        };
        let portal = if e.portal_described {
            self.portals.get(&e.portal).cloned()
        } else {
            None
        };
        match portal {
            // A portal's own description has the right formats.
            Some(s) => self.begin(stmt, Some(&s), None, &e.formats),
            None => {
                let s = if e.statement_described {
                    self.statements.get(&e.statement).cloned()
                } else {
                    None
                };
                // A statement's description says text: the Bind's formats
                // apply.
                self.begin(stmt, s.as_deref(), Some(&e.formats), &e.formats)
            }
        }
    }

    /// The plan for a result of `stmt` with columns `shape`; `formats`
    /// (a Bind's result formats) override the shape's when given, and say
    /// which columns are text when the shape is unknown.
    fn begin(
        &mut self,
        stmt: Option<&Statement>,
        shape: Option<&Shape>,
        override_formats: Option<&[i16]>,
        formats: &[i16],
    ) {
        let columns = shape.map(|s| {
            s.cols.iter().enumerate().map(move |(i, c)| {
                let binary = match override_formats {
                    None => c.binary,
                    Some(f) => format_is_binary(f, i),
                };
                ColumnUse {
                    name: &c.name,
                    scan: scannable(c.type_oid, binary),
                    textual: textual_in_place(c.type_oid, binary),
                }
            })
        });
        let unknown = match formats {
            [] => Unknown::All(true),
            [all] => Unknown::All(*all != rows::FORMAT_BINARY),
            each => Unknown::Each(each.iter().map(|f| *f != rows::FORMAT_BINARY).collect()),
        };
        self.inspector.begin(stmt, columns, unknown);
    }

    /// A CopyOutResponse (`body`): the CopyData that follows is `stmt`'s
    /// result, counted line by line (text and CSV formats; binary COPY is
    /// not scanned). COPY of masked data never gets here: it is refused.
    pub fn begin_copy(&mut self, stmt: Option<&Statement>, body: &[u8]) {
        let binary = body.first().is_some_and(|f| *f != 0);
        self.inspector.begin_raw(stmt, !binary);
    }

    /// Whether the next CopyData from the server must be held whole and
    /// passed to [`Results::on_copy_data`].
    pub fn wants_copy_data(&self, len: usize) -> bool {
        self.inspector.wants_raw(len)
    }

    /// One whole CopyData (a row, as PostgreSQL sends COPY TO STDOUT).
    pub fn on_copy_data(&mut self, body: &[u8]) -> RowAction {
        self.inspector.on_raw(body)
    }

    /// Whether rows are being planned (a plan exists for the current result).
    pub fn has_plan(&self) -> bool {
        self.inspector.has_plan()
    }

    /// Whether the next DataRow (of `len` bytes in all) must be held whole
    /// and passed to [`Results::on_row`].
    pub fn wants_row(&self, len: usize) -> Result<bool, RowError> {
        self.inspector.wants_row(len)
    }

    /// A DataRow the relay streams without inspecting.
    pub fn on_streamed_row(&mut self, len: usize) {
        self.inspector.on_streamed_row(len)
    }

    /// A whole DataRow `body`: counts, masks, limits. A replacement is
    /// appended to `out`.
    pub fn on_row(&mut self, body: &[u8], out: &mut BytesMut) -> Result<RowAction, RowError> {
        self.inspector.on_row(&DataRows, body, out)
    }

    /// The current statement completed (or failed): its summary.
    pub fn finish(&mut self) -> Summary {
        self.inspector.finish()
    }

    /// Whether the current result has been cut by a limit.
    pub fn cut(&self) -> Option<&Limit> {
        self.inspector.cut()
    }
}

/// Whether column `i` is binary under a Bind's result-format codes (none:
/// all text; one: all; else one per column — a missing one is taken as
/// binary, the case where text handling would be wrong).
fn format_is_binary(formats: &[i16], i: usize) -> bool {
    match formats {
        [] => false,
        [all] => *all == rows::FORMAT_BINARY,
        each => each.get(i).is_none_or(|f| *f == rows::FORMAT_BINARY),
    }
}

/// Type OIDs whose text form cannot hold a value the scanner knows (their
/// text is a number too short, a boolean, a date, …): skipped when scanning.
const NEVER_SENSITIVE_TEXT: [u32; 14] = [
    16,   // bool
    17,   // bytea
    21,   // int2
    23,   // int4
    26,   // oid
    700,  // float4
    701,  // float8
    1082, // date
    1083, // time
    1114, // timestamp
    1184, // timestamptz
    1186, // interval
    1266, // timetz
    2950, // uuid
];

/// Types whose binary send format is their text (in the client encoding).
const TEXT_TYPES: [u32; 7] = [
    25,   // text
    1043, // varchar
    1042, // bpchar
    19,   // name
    705,  // unknown
    114,  // json
    142,  // xml
];

fn scannable(type_oid: u32, binary: bool) -> bool {
    if binary {
        TEXT_TYPES.contains(&type_oid)
    } else {
        !NEVER_SENSITIVE_TEXT.contains(&type_oid)
    }
}

/// Whether a masked text may replace the cell: text-format cells of text
/// types, and binary cells of text types (same bytes). A number or date
/// column masked to `138****5678` would break the client's parsing.
fn textual_in_place(type_oid: u32, _binary: bool) -> bool {
    TEXT_TYPES.contains(&type_oid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Analyzer, Judgement};
    use crate::config::ScanMode;
    use danxia_detectors::pii::Kind;
    use danxia_detectors::LexOptions;
    use danxia_policies::{Identity, LoadOptions, Mode, Policy, Request};
    use danxia_protocols::pg::rows::Field;

    const ID: &str = "11010519491231002X";
    const PHONE: &str = "13812345678";

    /// `sql` decided by a policy made of `rules` for user `u`.
    fn judged(rules: &str, sql: &str) -> Statement {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("10.toml"), rules).expect("write");
        let policy = Policy::load(&LoadOptions {
            dir: dir.path().to_path_buf(),
            mask_key: Some(Arc::from(&b"0123456789abcdef"[..])),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let mut stmt = Analyzer::new()
            .statements(sql, LexOptions::default())
            .remove(0);
        let identity = Identity::new(
            Arc::from("pg"),
            Arc::from("u"),
            Arc::from("db"),
            Arc::from(""),
            None,
        );
        let d = policy.evaluate(&Request {
            identity: &identity,
            facts: &stmt.facts,
            stacked: false,
            mode: Mode::Enforce,
            now: std::time::SystemTime::now(),
        });
        stmt.judgement = Some(Judgement {
            decision: Arc::new(d),
            policy_version: 1,
        });
        stmt
    }

    fn row_description(cols: &[(&str, u32, i16)]) -> BytesMut {
        let fields: Vec<Field<'_>> = cols
            .iter()
            .map(|(name, oid, format)| Field {
                name: name.as_bytes(),
                table_oid: 0,
                column: 0,
                type_oid: *oid,
                type_size: -1,
                type_modifier: -1,
                format: *format,
            })
            .collect();
        let mut out = BytesMut::new();
        rows::encode_row_description(&mut out, &fields);
        out.split_off(5)
    }

    fn data_row(values: &[Option<&[u8]>]) -> BytesMut {
        let mut out = BytesMut::new();
        rows::encode_data_row(&mut out, values);
        out.split_off(5)
    }

    fn cells(msg: &[u8]) -> Vec<Option<Vec<u8>>> {
        rows::data_row_values(&msg[5..])
            .expect("row")
            .iter()
            .map(|c| c.map(<[u8]>::to_vec))
            .collect()
    }

    fn results(scan: ScanMode, every: u32) -> Results {
        let cfg = DataConfig {
            scan,
            sample_every: every,
            ..DataConfig::default()
        };
        Results::new(&cfg, Arc::new(Scanner::all().with_max_birth_year(2026)))
    }

    const MASK: &str = r#"
[[rule]]
id = "m"
description = "mask"
action = "mask"
users = ["u"]
[rule.mask.columns]
phone = "keep(3,4)"
n = "keep(0,4)"
[rule.mask.tags]
"pii.id_number" = "keep(6,4)"
"#;

    #[test]
    fn counts_follow_the_scan_budget() {
        let stmt = judged("", "select id_number from t");
        let mut r = results(ScanMode::Sample, 2);
        r.begin_simple(Some(&stmt), &row_description(&[("id_number", 25, 0)]));
        let mut out = BytesMut::new();
        for _ in 0..5 {
            let row = data_row(&[Some(ID.as_bytes())]);
            if r.wants_row(row.len() + 5).unwrap() {
                assert_eq!(r.on_row(&row, &mut out).unwrap(), RowAction::Forward);
            } else {
                r.on_streamed_row(row.len() + 5);
            }
        }
        let s = r.finish();
        assert_eq!(s.scanned_rows, 3, "rows 0, 2 and 4");
        assert_eq!(s.counts.get(Kind::IdNumber), 3);
        assert!(out.is_empty(), "nothing rewritten");
    }

    #[test]
    fn masks_by_name_and_content_and_keeps_other_cells() {
        let stmt = judged(MASK, "select phone, x, n, note from t");
        let mut r = results(ScanMode::All, 1);
        // phone text; x text holding an id number (content); n an int8
        // masked by name (→ NULL); note untouched.
        r.begin_simple(
            Some(&stmt),
            &row_description(&[
                ("phone", 1043, 0),
                ("x", 25, 0),
                ("n", 20, 0),
                ("note", 25, 0),
            ]),
        );
        let row = data_row(&[
            Some(PHONE.as_bytes()),
            Some(ID.as_bytes()),
            Some(b"6222021234567890"),
            Some("备注 12".as_bytes()),
        ]);
        let mut out = BytesMut::new();
        assert_eq!(r.on_row(&row, &mut out).unwrap(), RowAction::Replaced);
        assert_eq!(
            cells(&out),
            vec![
                Some(b"138****5678".to_vec()),
                Some(b"110105********002X".to_vec()),
                None,
                Some("备注 12".as_bytes().to_vec()),
            ]
        );
        // A row with nothing to mask is forwarded as it is.
        let plain = data_row(&[None, Some(b"hello"), None, None]);
        let mut out2 = BytesMut::new();
        assert_eq!(r.on_row(&plain, &mut out2).unwrap(), RowAction::Forward);
        assert!(out2.is_empty());
        let s = r.finish();
        assert_eq!(s.masked, 3);
        assert_eq!(
            s.counts.total(),
            0,
            "masked values are not counted as returned"
        );
        assert_eq!(s.mask_rules, vec![Arc::from("m")]);
    }

    #[test]
    fn binary_text_cells_are_masked_in_place() {
        let stmt = judged(MASK, "select phone from t");
        let mut r = results(ScanMode::All, 1);
        r.begin_simple(Some(&stmt), &row_description(&[("phone", 25, 1)]));
        let mut out = BytesMut::new();
        let row = data_row(&[Some(PHONE.as_bytes())]);
        assert_eq!(r.on_row(&row, &mut out).unwrap(), RowAction::Replaced);
        assert_eq!(cells(&out), vec![Some(b"138****5678".to_vec())]);
    }

    #[test]
    fn a_deny_limit_cuts_at_the_row_that_reaches_it() {
        let rules = r#"
[[rule]]
id = "cut"
description = "cut"
action = "deny"
returned = { "pii.phone" = 2 }
"#;
        let stmt = judged(rules, "select phone from t");
        // Limits count every row whatever the budget.
        let mut r = results(ScanMode::Off, 1);
        r.begin_simple(Some(&stmt), &row_description(&[("phone", 25, 0)]));
        let row = data_row(&[Some(PHONE.as_bytes())]);
        let mut out = BytesMut::new();
        assert!(r.wants_row(row.len()).unwrap());
        assert_eq!(r.on_row(&row, &mut out).unwrap(), RowAction::Forward);
        assert_eq!(r.on_row(&row, &mut out).unwrap(), RowAction::Drop);
        assert_eq!(r.on_row(&row, &mut out).unwrap(), RowAction::Drop);
        assert_eq!(r.cut().map(|l| &*l.rule_id), Some("cut"));
        let s = r.finish();
        assert_eq!(s.counts.get(Kind::Phone), 2);
        assert!(r.cut().is_none(), "the next result starts afresh");
    }

    #[test]
    fn a_row_too_large_to_mask_is_an_error_and_too_large_to_scan_streams() {
        let stmt = judged(MASK, "select phone from t");
        let mut r = results(ScanMode::All, 1);
        r.begin_simple(Some(&stmt), &row_description(&[("phone", 25, 0)]));
        assert!(matches!(
            r.wants_row(64 * 1024 * 1024),
            Err(RowError::TooLargeToMask { .. })
        ));
        let plain = judged("", "select phone from t");
        r.finish();
        r.begin_simple(Some(&plain), &row_description(&[("phone", 25, 0)]));
        assert!(!r.wants_row(64 * 1024 * 1024).unwrap());
        r.on_streamed_row(64 * 1024 * 1024);
        assert_eq!(r.finish().unscanned_rows, 1);
    }

    #[test]
    fn execute_shapes_come_from_describes_and_bind_formats() {
        let stmt = judged(MASK, "select phone from t");
        let mut r = results(ScanMode::All, 1);
        r.described(false, b"s1", Some(&row_description(&[("phone", 25, 0)])));
        let exec = ExecuteShape {
            portal: Box::from(&b"p"[..]),
            statement: Box::from(&b"s1"[..]),
            formats: Arc::from([1i16]),
            portal_described: false,
            statement_described: true,
        };
        r.begin_execute(Some(&stmt), Some(&exec));
        let mut out = BytesMut::new();
        let row = data_row(&[Some(PHONE.as_bytes())]);
        assert_eq!(r.on_row(&row, &mut out).unwrap(), RowAction::Replaced);
        assert_eq!(cells(&out), vec![Some(b"138****5678".to_vec())]);
        r.finish();
        // A statement re-parsed without a new Describe: the old shape is not
        // trusted, the column is unnamed, only content masks apply.
        let stale = ExecuteShape {
            statement_described: false,
            ..exec
        };
        r.begin_execute(Some(&stmt), Some(&stale));
        let mut out = BytesMut::new();
        assert_eq!(r.on_row(&row, &mut out).unwrap(), RowAction::Forward);
    }

    #[test]
    fn binary_formats_follow_bind_convention() {
        assert!(!format_is_binary(&[], 3));
        assert!(format_is_binary(&[1], 3));
        assert!(!format_is_binary(&[0, 1], 0));
        assert!(format_is_binary(&[0, 1], 1));
        assert!(format_is_binary(&[0, 1], 2), "missing code: not text");
    }

    #[test]
    fn scanning_skips_types_that_cannot_hold_pii() {
        assert!(scannable(25, false));
        assert!(
            scannable(20, false),
            "an int8 may hold a phone or card number"
        );
        assert!(!scannable(23, false));
        assert!(!scannable(20, true), "binary int8 is not text");
        assert!(scannable(1043, true));
    }
}
