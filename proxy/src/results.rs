//! What leaves in results, whatever the protocol: counts the sensitive
//! values each statement returns (within the configured scan budget), masks
//! what the policy says to mask, and enforces `returned` limits. One engine
//! for PostgreSQL and MySQL: a protocol supplies a result's columns (name,
//! whether its values may hold text worth scanning, whether a masked text
//! may replace them) and a [`RowCodec`] that reads and rewrites its rows;
//! everything else (budget, masks, limits, the per-statement [`Summary`])
//! is decided here. Knows nothing of sockets.
//!
//! Counts are of the values that left danxia in the clear: a masked cell is
//! counted in `masked`, not as the kind it held.

use std::sync::Arc;

use bytes::BytesMut;
use danxia_detectors::mask::{Masked, Strategy};
use danxia_detectors::pii::{Counts, Kind, Scanner};
use danxia_policies::{Counted, Limit, MaskRef, MaskSet};
use danxia_protocols::pg::rows::{Cell, RewriteStats};
use danxia_protocols::ProtocolError;

use crate::analysis::Statement;
use crate::config::{DataConfig, ScanMode};

/// How a protocol reads and rewrites one result row. Cells are handed out
/// as their value bytes (`None` for NULL); `Cell::Value` written back into
/// a cell that cannot take text is the codec's to turn into NULL.
pub trait RowCodec {
    /// Calls `f` with every non-NULL cell.
    fn values<'a>(
        &self,
        row: &'a [u8],
        f: impl FnMut(usize, &'a [u8]),
    ) -> Result<(), ProtocolError>;

    /// Appends the row with each cell replaced by `f`'s answer to `out`.
    fn rewrite<'a, 'c>(
        &self,
        row: &'a [u8],
        out: &mut BytesMut,
        f: impl FnMut(usize, Option<&'a [u8]>) -> Cell<'c>,
    ) -> Result<RewriteStats, ProtocolError>;
}

/// What the data path needs to know of one result column.
#[derive(Debug, Clone, Copy)]
pub struct ColumnUse<'n> {
    /// The name masks match (empty when masks are not in play).
    pub name: &'n str,
    /// Its values may hold a value the scanner knows.
    pub scan: bool,
    /// A masked text may replace its values (else a mask makes it NULL).
    pub textual: bool,
}

/// Columns of a result whose description was not seen: whether each is
/// text (scanned, maskable as text) or not.
#[derive(Debug, Clone)]
pub enum Unknown {
    /// Every column text (or every column not).
    All(bool),
    /// Per column; a column past the list is not text.
    Each(Arc<[bool]>),
}

impl Unknown {
    fn textual(&self, i: usize) -> bool {
        match self {
            Unknown::All(t) => *t,
            Unknown::Each(v) => v.get(i).copied().unwrap_or(false),
        }
    }
}

/// The result a statement is returning now.
struct Plan {
    masks: Option<Arc<MaskSet>>,
    /// Per column: its mask, when masked by name or classification tag.
    col_masks: Vec<Option<MaskRef>>,
    /// Per column: values may hold text worth scanning.
    scan_col: Vec<bool>,
    /// Per column: text the content masks may rewrite.
    textual: Vec<bool>,
    /// The columns were described (else `unknown` says what they are).
    known: bool,
    unknown: Unknown,
    /// Some column may hold text worth scanning (else rows stream unless
    /// masks or limits need them).
    any_scan: bool,
    /// The result is raw text lines (PostgreSQL COPY TO STDOUT), not rows.
    raw: bool,
    /// Kinds masked by content, with a scanner for just those.
    content: Option<(Scanner, Vec<(Kind, MaskRef)>)>,
    /// The statement's decision, for its `returned` limits (an Arc clone,
    /// not a copy of the list, per result).
    decision: Option<Arc<danxia_policies::Decision>>,
    rows: u64,
}

impl Plan {
    fn limits(&self) -> &[Limit] {
        self.decision
            .as_deref()
            .map_or(&[], |d| d.limits.as_slice())
    }

    /// Limits that could trip: values count only in scannable columns;
    /// rows always count.
    fn watched(&self) -> bool {
        self.limits().iter().any(|l| match l.counted {
            Counted::Rows => true,
            Counted::Values(_) => self.any_scan,
            Counted::Statements => false,
        })
    }

    fn needs_every_row(&self) -> bool {
        self.masks.is_some() || self.watched()
    }

    /// Column `i` holds text the masks and the scanner may read.
    fn textual(&self, i: usize) -> bool {
        if self.known {
            return self.textual.get(i).copied().unwrap_or(false);
        }
        self.unknown.textual(i)
    }

    fn scan_col(&self, i: usize) -> bool {
        if self.known {
            self.scan_col.get(i).copied().unwrap_or(false)
        } else {
            self.unknown.textual(i)
        }
    }
}

/// What one statement's result came to, for its audit event.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Sensitive values returned in the clear, by kind (scanned rows only).
    pub counts: Counts,
    pub scanned_rows: u64,
    /// Rows the statement's results returned so far (every row, scanned or
    /// not), for `returned.rows` limits and the behaviour baseline.
    pub rows: u64,
    /// Cells rewritten by a mask.
    pub masked: u64,
    /// Rows too large to inspect, streamed unscanned.
    pub unscanned_rows: u64,
    /// The deny limit that cut the result, if one did.
    pub cut: Option<Limit>,
    /// Alert limits the result reached.
    pub reached: Vec<Limit>,
    /// The mask rules that applied.
    pub mask_rules: Vec<Arc<str>>,
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.scanned_rows == 0
            && self.masked == 0
            && self.unscanned_rows == 0
            && self.cut.is_none()
            && self.reached.is_empty()
            && self.mask_rules.is_empty()
    }
}

/// What the relay does with a row after [`Inspector::on_row`].
#[derive(Debug, PartialEq, Eq)]
pub enum RowAction {
    /// Forward the original bytes.
    Forward,
    /// The rewritten row was appended to `out`; send it instead.
    Replaced,
    /// Withhold it: a limit cut the result.
    Drop,
}

/// Why a row cannot be handled (the session must end: fail closed).
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("a result row of {len} bytes must be masked but exceeds data.max_inspected_row_bytes ({max})")]
    TooLargeToMask { len: usize, max: usize },
    #[error("a result row to be masked is malformed: {0}")]
    Malformed(danxia_protocols::ProtocolError),
}

/// Per-session result inspection, one result at a time.
pub struct Inspector {
    scan: ScanMode,
    sample_every: u64,
    first_rows: u64,
    max_row: usize,
    scanner: Arc<Scanner>,
    plan: Option<Plan>,
    summary: Summary,
    /// The last plan's per-column vectors, kept for the next one.
    spare: (Vec<Option<MaskRef>>, Vec<bool>, Vec<bool>),
}

impl Inspector {
    pub fn new(cfg: &DataConfig, scanner: Arc<Scanner>) -> Self {
        Inspector {
            scan: cfg.scan,
            sample_every: u64::from(cfg.sample_every.max(1)),
            first_rows: u64::from(cfg.first_rows),
            max_row: cfg.max_inspected_row_bytes as usize,
            scanner,
            plan: None,
            summary: Summary::default(),
            spare: Default::default(),
        }
    }

    /// Whether the masks of `stmt` need column names (else the protocol
    /// need not decode them).
    pub fn needs_names(stmt: Option<&Statement>) -> bool {
        stmt.is_some_and(Statement::masked)
    }

    /// The plan for a result of `stmt`: `columns` when described, else
    /// `unknown` says which columns are text.
    pub fn begin<'n>(
        &mut self,
        stmt: Option<&Statement>,
        columns: Option<impl Iterator<Item = ColumnUse<'n>>>,
        unknown: Unknown,
    ) {
        let decision = stmt.and_then(|s| s.judgement.as_ref()).map(|j| &j.decision);
        let masks = decision.and_then(|d| d.masks.clone());
        let decision = decision.filter(|d| !d.limits.is_empty()).cloned();
        // Reuse the last plan's vectors: one result per statement, so this
        // runs at statement rate.
        let (mut col_masks, mut scan_col, mut textual) = std::mem::take(&mut self.spare);
        col_masks.clear();
        scan_col.clear();
        textual.clear();
        let known = columns.is_some();
        if let Some(cols) = columns {
            for c in cols {
                col_masks.push(masks.as_ref().and_then(|m| m.column(c.name).cloned()));
                scan_col.push(c.scan);
                textual.push(c.textual);
            }
        }
        let any_scan = !known || scan_col.iter().any(|s| *s);
        let content = masks.as_ref().and_then(|m| {
            let kinds: Vec<Kind> = m.content().iter().map(|(k, _)| *k).collect();
            (!kinds.is_empty()).then(|| (Scanner::new(&kinds), m.content().to_vec()))
        });
        if let Some(m) = &masks {
            for id in m.rule_ids() {
                if !self.summary.mask_rules.contains(&id) {
                    self.summary.mask_rules.push(id);
                }
            }
        }
        self.plan = Some(Plan {
            masks,
            col_masks,
            scan_col,
            textual,
            known,
            unknown,
            any_scan,
            raw: false,
            content,
            decision,
            rows: 0,
        });
    }

    /// A result of raw text lines (PostgreSQL `COPY … TO STDOUT`), counted
    /// line by line when `text`; masks never reach here (such a COPY is
    /// refused when masked).
    pub fn begin_raw(&mut self, stmt: Option<&Statement>, text: bool) {
        self.begin(
            stmt,
            None::<std::iter::Empty<ColumnUse<'_>>>,
            Unknown::All(text),
        );
        if let Some(p) = &mut self.plan {
            p.raw = true;
            p.any_scan = text;
        }
    }

    /// Whether the next raw line must be held whole and passed to
    /// [`Inspector::on_raw`].
    pub fn wants_raw(&self, len: usize) -> bool {
        match &self.plan {
            Some(p) if p.raw && p.any_scan => len <= self.max_row && self.wants(p),
            _ => false,
        }
    }

    /// One whole raw line.
    pub fn on_raw(&mut self, body: &[u8]) -> RowAction {
        let Some(p) = &mut self.plan else {
            return RowAction::Forward;
        };
        let row = p.rows;
        p.rows += 1;
        if self.summary.cut.is_some() {
            return RowAction::Drop;
        }
        self.summary.rows += 1;
        if p.watched() || self.in_budget(row) {
            let mut counts = Counts::new();
            self.scanner.scan(body, &mut counts);
            self.summary.scanned_rows += 1;
            self.summary.counts.merge(&counts);
        }
        self.check_limits(RowAction::Forward, &mut BytesMut::new())
    }

    /// Whether rows are being planned (a plan exists for the current result).
    pub fn has_plan(&self) -> bool {
        self.plan.is_some()
    }

    /// Whether the next row (of `len` bytes in all) must be held whole and
    /// passed to [`Inspector::on_row`]. Does not advance anything: the relay
    /// may ask again for the same row while it is still arriving.
    pub fn wants_row(&self, len: usize) -> Result<bool, RowError> {
        let Some(p) = &self.plan else {
            return Ok(self.scan != ScanMode::Off);
        };
        let want = self.wants(p);
        if want && len > self.max_row {
            if p.masks.is_some() {
                return Err(RowError::TooLargeToMask {
                    len,
                    max: self.max_row,
                });
            }
            return Ok(false);
        }
        Ok(want)
    }

    /// A row the relay streams without inspecting.
    pub fn on_streamed_row(&mut self, len: usize) {
        if let Some(p) = &self.plan {
            if len > self.max_row && self.wants(p) {
                self.summary.unscanned_rows += 1;
            }
        }
        if let Some(p) = &mut self.plan {
            p.rows += 1;
        }
        self.summary.rows += 1;
    }

    /// Whether `p`'s next row is one to inspect (masks and limits need every
    /// row; counting needs the rows in the budget).
    fn wants(&self, p: &Plan) -> bool {
        p.needs_every_row() || (p.any_scan && self.in_budget(p.rows))
    }

    fn in_budget(&self, row: u64) -> bool {
        match self.scan {
            ScanMode::Off => false,
            ScanMode::All => true,
            ScanMode::Sample => row.is_multiple_of(self.sample_every),
            ScanMode::First => row < self.first_rows,
        }
    }

    /// A whole row: counts, masks, limits. A replacement is appended to
    /// `out`.
    pub fn on_row<C: RowCodec>(
        &mut self,
        codec: &C,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<RowAction, RowError> {
        let Some(row_index) = self.plan.as_ref().map(|p| p.rows) else {
            return Ok(RowAction::Forward);
        };
        let in_budget = self.in_budget(row_index);
        let Some(p) = &mut self.plan else {
            return Ok(RowAction::Forward);
        };
        p.rows += 1;
        if self.summary.cut.is_some() {
            return Ok(RowAction::Drop);
        }
        self.summary.rows += 1;
        let scan = p.any_scan && (p.watched() || in_budget);
        let scanner = &*self.scanner;
        let mut counts = Counts::new();
        let mut masked = 0u64;
        let action = if p.masks.is_some() {
            let before = out.len();
            let plan = &*p;
            let stats = codec
                .rewrite(body, out, |i, cell| {
                    let Some(v) = cell else { return Cell::Keep };
                    let textual = plan.textual(i);
                    if let Some(Some(m)) = plan.col_masks.get(i) {
                        masked += 1;
                        return mask_cell(&m.strategy, v, textual);
                    }
                    if textual {
                        if let Some((content, kinds)) = &plan.content {
                            let mut hit = Counts::new();
                            content.scan(v, &mut hit);
                            if let Some((_, m)) = kinds.iter().find(|(k, _)| hit.get(*k) > 0) {
                                masked += 1;
                                return mask_cell(&m.strategy, v, true);
                            }
                        }
                    }
                    if scan && plan.scan_col(i) {
                        scanner.scan(v, &mut counts);
                    }
                    Cell::Keep
                })
                .map_err(RowError::Malformed)?;
            if stats.changed == 0 {
                out.truncate(before);
                RowAction::Forward
            } else {
                RowAction::Replaced
            }
        } else {
            if scan {
                let plan = &*p;
                let read = codec.values(body, |i, v| {
                    if plan.scan_col(i) {
                        scanner.scan(v, &mut counts);
                    }
                });
                if read.is_err() {
                    // Not ours to judge: the client will see the server's
                    // bytes as they are.
                    return Ok(RowAction::Forward);
                }
            }
            RowAction::Forward
        };
        if scan {
            self.summary.scanned_rows += 1;
            self.summary.counts.merge(&counts);
        }
        self.summary.masked += masked;
        Ok(self.check_limits(action, out))
    }

    /// Applies the result's limits to what has left so far (this row
    /// included): a deny limit reached turns `action` into a drop.
    fn check_limits(&mut self, action: RowAction, out: &mut BytesMut) -> RowAction {
        let Some(p) = &self.plan else {
            return action;
        };
        for l in p.limits() {
            let count = match l.counted {
                Counted::Rows => self.summary.rows,
                Counted::Values(kind) => u64::from(self.summary.counts.get(kind)),
                Counted::Statements => continue,
            };
            if count.saturating_add(l.already) < l.threshold {
                continue;
            }
            if l.block {
                self.summary.cut = Some(l.clone());
                if action == RowAction::Replaced {
                    // The rewrite was appended: take it back.
                    out.clear();
                }
                return RowAction::Drop;
            }
            if !self.summary.reached.iter().any(|r| r.rule_id == l.rule_id) {
                self.summary.reached.push(l.clone());
            }
        }
        action
    }

    /// The current result ended: the plan ends (the next result starts a
    /// new one) but the summary keeps adding up until [`Inspector::finish`].
    pub fn end_result(&mut self) {
        if let Some(p) = self.plan.take() {
            self.spare = (p.col_masks, p.scan_col, p.textual);
        }
    }

    /// The current statement completed (or failed): its summary.
    pub fn finish(&mut self) -> Summary {
        self.end_result();
        std::mem::take(&mut self.summary)
    }

    /// Whether the current result has been cut by a limit.
    pub fn cut(&self) -> Option<&Limit> {
        self.summary.cut.as_ref()
    }
}

/// The masked cell. `textual`: the cell's bytes are its text, so a masked
/// text can replace them; any other cell can only become NULL, the one
/// value valid in every type.
fn mask_cell<'c>(s: &Strategy, v: &[u8], textual: bool) -> Cell<'c> {
    if !textual {
        return Cell::Null;
    }
    match s.apply(v) {
        Masked::Value(b) => Cell::value(b),
        Masked::Null => Cell::Null,
    }
}
