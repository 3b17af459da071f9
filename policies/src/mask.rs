//! Masking rules and result limits: the two rule features that act on a
//! statement's *result* rather than on the statement. Owns the `[rule.mask]`
//! and `returned` syntax, their compilation, and what a decision carries
//! to the data path ([`MaskSet`], [`Limit`]).
//!
//! A `mask` rule does not decide: like `alert`, evaluation goes on, so a
//! later `deny` still refuses the statement. Every matching mask rule adds
//! its column and tag masks; for one column the first rule (in file order)
//! that names it wins. A rule with `returned` does not decide either: its
//! other keys select the statements it watches, and its action (`alert` or
//! `deny`) applies once a result has returned that many values of a kind.
//!
//! Which result columns a [`MaskSet`] masks, in order:
//! 1. the column's name matches a `[rule.mask.columns]` pattern (its table
//!    part, if any, must match one of the statement's tables);
//! 2. the classification file gives the column (in one of the statement's
//!    tables) a tag matching a `[rule.mask.tags]` pattern;
//! 3. any other text value the scanner recognises as a kind whose tag
//!    matches a `[rule.mask.tags]` pattern (an alias, an expression, a view
//!    the classification does not know) — content masking, which needs no
//!    name at all.

use std::sync::Arc;

use danxia_detectors::mask::Strategy;
use danxia_detectors::pii::Kind;
use toml_edit::{Item, TableLike};

use crate::compile::ColumnPattern;
use crate::glob::{Glob, NamePattern};
use crate::lang::Reader;

/// Keys of `[rule.mask]`.
const MASK_KEYS: [&str; 3] = ["columns", "tags", "copy"];
/// Most entries in one rule's `columns` or `tags` table.
const MAX_MASK_ENTRIES: usize = 256;

/// What COPY … TO STDOUT of a masked statement does. Only refusal exists:
/// COPY output is not row-structured the way DataRows are (and the wire does
/// not say whether it is text or CSV), so masks cannot be applied to it. The
/// key is there so that a future "mask by content" is an explicit choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMasking {
    Refuse,
}

impl CopyMasking {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyMasking::Refuse => "refuse",
        }
    }
}

/// One masking choice: the strategy, its text, and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskRef {
    pub rule_id: Arc<str>,
    /// The strategy as written (`keep(6,4)`), for audit and explain.
    pub spec: Arc<str>,
    pub strategy: Arc<Strategy>,
}

/// A rule's compiled `[rule.mask]`.
#[derive(Debug, Clone)]
pub(crate) struct RuleMask {
    columns: Vec<(ColumnPattern, MaskRef)>,
    tags: Vec<(Glob, MaskRef)>,
    copy: CopyMasking,
}

/// The masks that apply to one statement's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskSet {
    /// Column-name globs whose table part (if any) matched the statement.
    columns: Vec<(Glob, MaskRef)>,
    tags: Vec<(Glob, MaskRef)>,
    /// Classified columns of the statement's tables and their tags.
    classified: Vec<(Arc<str>, Vec<Arc<str>>)>,
    /// Detectable kinds masked wherever they appear, first rule first.
    content: Vec<(Kind, MaskRef)>,
    pub copy: CopyMasking,
}

impl MaskSet {
    /// The mask for a result column named `name` (as RowDescription gives
    /// it), by name or by classification tag.
    pub fn column(&self, name: &str) -> Option<&MaskRef> {
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        if let Some((_, m)) = self.columns.iter().find(|(g, _)| g.matches(name)) {
            return Some(m);
        }
        let tags = self
            .classified
            .iter()
            .filter(|(c, _)| **c == *name)
            .flat_map(|(_, t)| t.iter());
        for tag in tags {
            if let Some((_, m)) = self.tags.iter().find(|(g, _)| g.matches(tag)) {
                return Some(m);
            }
        }
        None
    }

    /// Kinds masked by content wherever they appear.
    pub fn content(&self) -> &[(Kind, MaskRef)] {
        &self.content
    }

    /// The rules that contributed, for the audit event.
    pub fn rule_ids(&self) -> Vec<Arc<str>> {
        let mut ids: Vec<Arc<str>> = self
            .columns
            .iter()
            .chain(&self.tags)
            .map(|(_, m)| m.rule_id.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// One line per mask, for `danxia explain`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (g, m) in &self.columns {
            out.push(format!(
                "column {} → {} (rule {})",
                g.as_str(),
                m.spec,
                m.rule_id
            ));
        }
        for (g, m) in &self.tags {
            out.push(format!(
                "tag {} → {} (rule {})",
                g.as_str(),
                m.spec,
                m.rule_id
            ));
        }
        for (c, tags) in &self.classified {
            let t: Vec<&str> = tags.iter().map(|t| &**t).collect();
            out.push(format!("classified column {c}: [{}]", t.join(", ")));
        }
        out.push(format!("COPY TO STDOUT: {}", self.copy.as_str()));
        out
    }
}

/// Collects the mask rules that matched one statement.
#[derive(Default)]
pub(crate) struct MaskBuilder<'r> {
    rules: Vec<&'r RuleMask>,
}

impl<'r> MaskBuilder<'r> {
    pub(crate) fn add(&mut self, m: &'r RuleMask) {
        self.rules.push(m);
    }

    /// The statement's mask set (`None` when no mask rule matched).
    /// `tables` are the statement's tables split in parts; `classified`
    /// gives the classified columns of those tables.
    pub(crate) fn build(
        self,
        tables: &[Vec<&str>],
        classified: impl FnOnce() -> Vec<(Arc<str>, Vec<Arc<str>>)>,
    ) -> Option<Arc<MaskSet>> {
        if self.rules.is_empty() {
            return None;
        }
        let mut set = MaskSet {
            columns: Vec::new(),
            tags: Vec::new(),
            classified: Vec::new(),
            content: Vec::new(),
            copy: CopyMasking::Refuse,
        };
        for r in &self.rules {
            for (p, m) in &r.columns {
                let table_ok = match &p.table {
                    None => true,
                    Some(q) => tables.iter().any(|t| q.matches_parts(t)),
                };
                if table_ok {
                    set.columns.push((p.column.clone(), m.clone()));
                }
            }
            set.tags.extend(r.tags.iter().cloned());
        }
        if !set.tags.is_empty() {
            set.classified = classified();
            for kind in Kind::DETECTABLE {
                if let Some((_, m)) = set.tags.iter().find(|(g, _)| g.matches(kind.tag())) {
                    set.content.push((kind, m.clone()));
                }
            }
        }
        Some(Arc::new(set))
    }
}

/// What a `returned` threshold counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counted {
    /// Result rows (`rows`).
    Rows,
    /// Statements the rule matched (`statements`; only over a `window`).
    Statements,
    /// Sensitive values of one kind, in the clear (`"pii.id_number"`).
    Values(Kind),
}

impl Counted {
    /// The name as written in `returned`.
    pub fn name(self) -> &'static str {
        match self {
            Counted::Rows => "rows",
            Counted::Statements => "statements",
            Counted::Values(k) => k.tag(),
        }
    }
}

/// What else happens to the identity when a rule's threshold or anomaly
/// score is reached (effective mode `enforce` only; otherwise the rule
/// only alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FollowUp {
    None,
    /// Slow the identity's later statements down for a while.
    Throttle,
    /// Refuse everything from the identity until a person releases it.
    Quarantine,
}

impl FollowUp {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUp::None => "none",
            FollowUp::Throttle => "throttle",
            FollowUp::Quarantine => "quarantine",
        }
    }
}

/// A `returned` threshold that applies to a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub rule_id: Arc<str>,
    pub counted: Counted,
    /// Reached when the result (or, with `window`, the identity's results
    /// over the window) has returned at least this many.
    pub threshold: u64,
    /// `window`, in seconds: counts add up per identity over fixed windows
    /// of this length instead of per statement.
    pub window: Option<u64>,
    /// With `window`: what the identity had already returned in the current
    /// window when this statement started (set by the proxy; 0 otherwise).
    pub already: u64,
    /// Cut the result (a `deny` or `quarantine` rule in effective mode
    /// `enforce`); otherwise raise an alert.
    pub block: bool,
    pub follow_up: FollowUp,
    pub message: Arc<str>,
}

/// A rule with `anomaly`: acts when the behaviour baseline scores a
/// statement of the identity at least `threshold`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyRule {
    pub rule_id: Arc<str>,
    /// Hundredths of the score (kept integral so decisions stay `Eq`).
    pub threshold_centi: u32,
    /// Refuse (before it runs) or cut (while its result streams) a
    /// statement that reaches the score: `deny` or `quarantine` in
    /// effective mode `enforce`.
    pub block: bool,
    pub follow_up: FollowUp,
    pub message: Arc<str>,
}

impl AnomalyRule {
    pub fn threshold(&self) -> f64 {
        f64::from(self.threshold_centi) / 100.0
    }
}

/// Compiles `[rule.mask]`; `rule_id` names the masks' origin.
pub(crate) fn compile_mask(
    r: &mut Reader<'_>,
    t: &dyn TableLike,
    rule_id: &str,
    mask_key: Option<&Arc<[u8]>>,
) -> Option<RuleMask> {
    let item = t.get("mask")?;
    let line = r.key_line(t, "mask");
    let Some(m) = item.as_table_like() else {
        r.error(
            line,
            "`mask` must be a table: [rule.mask] with `columns` and/or `tags`",
        );
        return None;
    };
    r.unknown_keys(m, &MASK_KEYS);
    let before = r.diags.len();
    let mut out = RuleMask {
        columns: Vec::new(),
        tags: Vec::new(),
        copy: CopyMasking::Refuse,
    };
    let rule_id: Arc<str> = Arc::from(rule_id);
    for which in ["columns", "tags"] {
        let Some(item) = m.get(which) else { continue };
        let Some(entries) = item.as_table_like() else {
            let l = r.key_line(m, which);
            r.error(
                l,
                format!("`mask.{which}` must be a table of NAME = \"STRATEGY\", e.g. id_number = \"keep(6,4)\""),
            );
            continue;
        };
        if entries.len() > MAX_MASK_ENTRIES {
            let l = r.key_line(m, which);
            r.error(
                l,
                format!("`mask.{which}` has more than {MAX_MASK_ENTRIES} entries"),
            );
            continue;
        }
        for (name, v) in entries.iter() {
            let l = r.key_line(entries, name);
            let Some(spec) = v.as_value().and_then(|v| v.as_str()) else {
                r.error(
                    l,
                    format!("mask.{which}.{name} must be a strategy string, e.g. \"keep(3,4)\""),
                );
                continue;
            };
            let strategy = match Strategy::parse(spec, mask_key) {
                Ok(s) => s,
                Err(e) => {
                    r.error(l, format!("mask.{which}.{name}: {e}"));
                    continue;
                }
            };
            let mref = MaskRef {
                rule_id: rule_id.clone(),
                spec: Arc::from(spec.trim()),
                strategy: Arc::new(strategy),
            };
            if which == "columns" {
                let p = NamePattern::new(name);
                if name.trim().is_empty() || p.has_empty_part() {
                    r.error(l, format!("bad column pattern `{name}` in mask.columns"));
                    continue;
                }
                let (table, column) = p.split_column();
                out.columns.push((ColumnPattern { table, column }, mref));
            } else {
                if name.trim().is_empty() {
                    r.error(l, "empty tag pattern in mask.tags");
                    continue;
                }
                out.tags.push((Glob::new(name), mref));
            }
        }
    }
    if let Some(c) = r.string(m, "copy") {
        match c.text.as_str() {
            "refuse" => out.copy = CopyMasking::Refuse,
            other => r.error(
                c.line,
                format!(
                    "mask.copy `{other}`: only \"refuse\" is supported (COPY of masked data cannot be masked)"
                ),
            ),
        }
    }
    if out.columns.is_empty() && out.tags.is_empty() && r.diags.len() == before {
        r.error(
            line,
            "[rule.mask] masks nothing: give `columns` (NAME = \"STRATEGY\") and/or `tags`",
        );
    }
    (r.diags.len() == before).then_some(out)
}

/// Compiles `returned = { rows = 5000, "pii.id_number" = 100, … }`.
pub(crate) fn compile_returned(
    r: &mut Reader<'_>,
    t: &dyn TableLike,
) -> Option<Vec<(Counted, u64)>> {
    let item = t.get("returned")?;
    let line = r.key_line(t, "returned");
    let Some(m) = item.as_table_like() else {
        r.error(
            line,
            "`returned` must be a table of NAME = COUNT, e.g. returned = { \"pii.id_number\" = 100 } or { rows = 5000 }",
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (tag, v) in m.iter() {
        let l = r.key_line(m, tag).or(line);
        let counted = match tag {
            "rows" => Counted::Rows,
            "statements" => Counted::Statements,
            _ => match Kind::from_tag(tag).filter(|k| k.is_detectable()) {
                Some(kind) => Counted::Values(kind),
                None => {
                    let known: Vec<&str> = Kind::DETECTABLE.iter().map(|k| k.tag()).collect();
                    r.error(
                        l,
                        format!(
                            "returned: `{tag}` is not something danxia can count in results (rows, statements with a window, or one of {})",
                            known.join(", ")
                        ),
                    );
                    ok = false;
                    continue;
                }
            },
        };
        match v.as_value().and_then(|v| v.as_integer()) {
            Some(n @ 1..=MAX_RETURNED_COUNT) => out.push((counted, n as u64)),
            _ => {
                r.error(
                    l,
                    format!("returned.{tag} must be a count from 1 to {MAX_RETURNED_COUNT}"),
                );
                ok = false;
            }
        }
    }
    if out.is_empty() && ok {
        r.error(line, "`returned` is empty: give at least one NAME = COUNT");
        ok = false;
    }
    ok.then_some(out)
}

/// Largest count `returned` accepts (a trillion rows is no limit at all).
const MAX_RETURNED_COUNT: i64 = 1_000_000_000_000;

/// Longest `window` (a month: baselines and counters are not kept longer).
const MAX_WINDOW_SECS: u64 = 31 * 86_400;

/// Compiles `window = "1h"` (a count of `s`, `m`, `h` or `d`).
pub(crate) fn compile_window(r: &mut Reader<'_>, t: &dyn TableLike) -> Option<u64> {
    let v = r.string(t, "window")?;
    match parse_duration(&v.text) {
        Some(s) if (1..=MAX_WINDOW_SECS).contains(&s) => Some(s),
        _ => {
            r.error(
                v.line,
                format!(
                    "window `{}`: give a length like \"10m\", \"1h\" or \"1d\" (s, m, h, d; at most 31d)",
                    v.text
                ),
            );
            None
        }
    }
}

/// `"90s"`, `"10m"`, `"2h"`, `"1d"` in seconds.
pub(crate) fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].trim().parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Compiles `anomaly = 6.0`: the score (0 < score <= 50) at which the
/// rule acts.
pub(crate) fn compile_anomaly(r: &mut Reader<'_>, t: &dyn TableLike) -> Option<u32> {
    let item = t.get("anomaly")?;
    let line = r.key_line(t, "anomaly");
    let v = item
        .as_value()
        .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)));
    match v {
        Some(x) if x > 0.0 && x <= 50.0 => Some((x * 100.0).round() as u32),
        _ => {
            r.error(
                line,
                "`anomaly` must be a score above 0 and at most 50 (e.g. 6.0; see docs/behaviour.md for what scores mean)",
            );
            None
        }
    }
}

/// Whether `item` is present (a helper for "this key needs that action").
pub(crate) fn present(t: &dyn TableLike, key: &str) -> bool {
    !matches!(t.get(key), None | Some(Item::None))
}
