//! The classification file: which columns hold which kinds of data (tags
//! such as `pii.phone`) and how sensitive they are (levels 1–4). Owns its
//! format, validation, and the question "which tags and level does this
//! statement touch?". Conservative by design: the statement's facts do not
//! say which table each column came from, so a column counts as touched
//! when any of the statement's tables has a classified column of that
//! name, and every classified column counts under `SELECT *`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use danxia_detectors::StatementFacts;
use toml_edit::{Item, TableLike, Value};

use crate::error::Diagnostic;
use crate::glob::{Glob, NamePattern};
use crate::lang::{parse_document, Reader, Source};

/// The only classification format version.
pub(crate) const VERSION: i64 = 1;
/// Levels: 1 general, 2 sensitive personal, 3 important, 4 core.
pub(crate) const MIN_LEVEL: u8 = 1;
pub(crate) const MAX_LEVEL: u8 = 4;

const TOP_KEYS: [&str; 3] = ["version", "levels", "column"];
const COLUMN_KEYS: [&str; 5] = ["table", "column", "tags", "level", "evidence"];

#[derive(Debug, Clone)]
struct ColumnEntry {
    table: NamePattern,
    column: Arc<str>,
    tags: Vec<Arc<str>>,
    level: u8,
}

/// A loaded classification, indexed by the last part of each table name.
#[derive(Debug, Default)]
pub(crate) struct Classification {
    entries: Vec<ColumnEntry>,
    by_table: HashMap<String, Vec<usize>>,
    /// Entries whose table's last part is a glob: checked for every table.
    wild: Vec<usize>,
}

impl Classification {
    pub(crate) fn load(path: &Path, diags: &mut Vec<Diagnostic>) -> Classification {
        crate::compile::permission_diag(path, "classification file", diags);
        match std::fs::read_to_string(path) {
            Ok(text) => Classification::parse(path, &text, diags),
            Err(e) => {
                diags.push(Diagnostic {
                    severity: crate::Severity::Error,
                    file: Some(path.to_path_buf()),
                    line: None,
                    rule_id: None,
                    message: format!("cannot read the classification file: {e}"),
                });
                Classification::default()
            }
        }
    }

    pub(crate) fn parse(path: &Path, text: &str, diags: &mut Vec<Diagnostic>) -> Classification {
        let src = Source::new(path, text);
        let mut out = Classification::default();
        let Some(doc) = parse_document(&src, text, diags) else {
            return out;
        };
        let mut r = Reader::new(&src, diags);
        let root = doc.as_table();
        r.unknown_keys(root, &TOP_KEYS);
        r.version(root, VERSION, "classification");
        let mut defaults: Vec<(Glob, u8)> = Vec::new();
        if let Some(item) = root.get("levels") {
            match item.as_table_like() {
                Some(t) => {
                    for (tag, _) in t.iter() {
                        if let Some(level) = read_level(&mut r, t, tag) {
                            defaults.push((Glob::new(tag), level));
                        }
                    }
                }
                None => {
                    let line = r.key_line(root, "levels");
                    r.error(line, "`levels` must be a table: write `[levels]`");
                }
            }
        }
        match root.get("column") {
            None => {}
            Some(Item::ArrayOfTables(tables)) => {
                for t in tables.iter() {
                    if let Some(e) = read_column(&mut r, t, &defaults) {
                        out.push(e);
                    }
                }
            }
            Some(_) => {
                let line = r.key_line(root, "column");
                r.error(line, "columns must be written as `[[column]]` tables");
            }
        }
        out
    }

    fn push(&mut self, e: ColumnEntry) {
        let i = self.entries.len();
        let last = e.table.as_str().rsplit('.').next().unwrap_or_default();
        if Glob::new(last).is_literal() {
            self.by_table.entry(last.to_string()).or_default().push(i);
        } else {
            self.wild.push(i);
        }
        self.entries.push(e);
    }

    /// Tags (sorted, deduplicated) and the highest level the statement
    /// touches; level 0 when it touches no classified column.
    pub(crate) fn touched(&self, facts: &StatementFacts) -> (Vec<Arc<str>>, u8) {
        let mut tags: Vec<Arc<str>> = Vec::new();
        let mut level = 0;
        if self.entries.is_empty() {
            return (tags, level);
        }
        for table in &facts.tables {
            let last = table.rsplit('.').next().unwrap_or_default();
            let exact = self.by_table.get(last).map(Vec::as_slice).unwrap_or(&[]);
            for &i in exact.iter().chain(&self.wild) {
                let e = &self.entries[i];
                let read = facts.select_star || facts.columns.iter().any(|c| **c == *e.column);
                if read && e.table.matches(table) {
                    tags.extend(e.tags.iter().cloned());
                    level = level.max(e.level);
                }
            }
        }
        tags.sort_unstable();
        tags.dedup();
        (tags, level)
    }
}

impl Classification {
    /// Classified columns of `tables` with their tags (for masking result
    /// columns by tag), deduplicated by column.
    pub(crate) fn columns_of(&self, tables: &[String]) -> Vec<(Arc<str>, Vec<Arc<str>>)> {
        let mut out: Vec<(Arc<str>, Vec<Arc<str>>)> = Vec::new();
        for table in tables {
            let last = table.rsplit('.').next().unwrap_or_default();
            let exact = self.by_table.get(last).map(Vec::as_slice).unwrap_or(&[]);
            for &i in exact.iter().chain(&self.wild) {
                let e = &self.entries[i];
                if e.tags.is_empty() || !e.table.matches(table) {
                    continue;
                }
                match out.iter_mut().find(|(c, _)| *c == e.column) {
                    Some((_, tags)) => {
                        tags.extend(e.tags.iter().cloned());
                        tags.sort_unstable();
                        tags.dedup();
                    }
                    None => out.push((e.column.clone(), e.tags.clone())),
                }
            }
        }
        out
    }

    /// Classified columns of the statement's tables (for `SELECT *`, which
    /// reads them without naming them), sorted and deduplicated.
    pub(crate) fn star_columns(&self, facts: &StatementFacts) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = Vec::new();
        for table in &facts.tables {
            let last = table.rsplit('.').next().unwrap_or_default();
            let exact = self.by_table.get(last).map(Vec::as_slice).unwrap_or(&[]);
            for &i in exact.iter().chain(&self.wild) {
                let e = &self.entries[i];
                if e.table.matches(table) {
                    out.push(e.column.clone());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn read_level(r: &mut Reader<'_>, t: &dyn TableLike, key: &str) -> Option<u8> {
    let (v, line) = r.integer(t, key)?;
    match u8::try_from(v) {
        Ok(l @ MIN_LEVEL..=MAX_LEVEL) => Some(l),
        _ => {
            r.error(
                line,
                format!("level {v} is out of range: levels are 1 (general) to 4 (core)"),
            );
            None
        }
    }
}

fn valid_tag(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn read_column(
    r: &mut Reader<'_>,
    t: &toml_edit::Table,
    defaults: &[(Glob, u8)],
) -> Option<ColumnEntry> {
    let before = r.diags.len();
    let header = r.src.line_of(t.span());
    r.unknown_keys(t, &COLUMN_KEYS);
    let table = r.string(t, "table");
    let column = r.string(t, "column");
    for (key, v) in [("table", &table), ("column", &column)] {
        match v {
            None if t.get(key).is_none() => r.error(header, format!("[[column]] without `{key}`")),
            Some(v) if v.text.is_empty() || NamePattern::new(&v.text).has_empty_part() => {
                r.error(v.line, format!("bad {key} name `{}`", v.text))
            }
            _ => {}
        }
    }
    // `tags = []` marks a column as classified "not sensitive" (how a false
    // positive of discovery is suppressed): valid, and it touches nothing.
    let not_sensitive = t
        .get("tags")
        .and_then(Item::as_array)
        .is_some_and(|a| a.is_empty());
    let tags = if not_sensitive {
        Some(Vec::new())
    } else {
        r.string_list(t, "tags")
    };
    if tags.is_none() && t.get("tags").is_none() {
        r.error(header, "[[column]] without `tags`");
    }
    for tag in tags.iter().flatten() {
        if !valid_tag(&tag.text) {
            r.error(
                tag.line,
                format!(
                    "bad tag `{}`: use letters, digits, `.`, `_` and `-`",
                    tag.text
                ),
            );
        }
    }
    let level = if t.get("level").is_some() {
        read_level(r, t, "level")
    } else {
        None
    };
    if let Some(ev) = t.get("evidence") {
        read_evidence(r, t, ev);
    }
    if r.diags.len() > before || not_sensitive {
        return None;
    }
    let tags: Vec<Arc<str>> = tags?.iter().map(|t| Arc::from(t.text.as_str())).collect();
    let level = level.unwrap_or_else(|| {
        defaults
            .iter()
            .filter(|(g, _)| tags.iter().any(|t| g.matches(t)))
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(MIN_LEVEL)
    });
    Some(ColumnEntry {
        table: NamePattern::new(&table?.text),
        column: Arc::from(NamePattern::new(&column?.text).as_str()),
        tags,
        level,
    })
}

/// `evidence` is discovery's record of why it tagged a column: any keys,
/// but `hits`/`sampled` must be counts with hits ≤ sampled, and
/// `name_match` a string.
fn read_evidence(r: &mut Reader<'_>, parent: &toml_edit::Table, item: &Item) {
    let line = r.key_line(parent, "evidence");
    let Some(t) = item.as_table_like() else {
        r.error(
            line,
            "`evidence` must be a table, e.g. { hits = 98, sampled = 100 }",
        );
        return;
    };
    let count = |r: &mut Reader<'_>, key: &str| -> Option<i64> {
        let v = t.get(key)?;
        match v.as_value().and_then(Value::as_integer) {
            Some(n) if n >= 0 => Some(n),
            _ => {
                r.error(
                    line,
                    format!("evidence `{key}` must be a count (a non-negative integer)"),
                );
                None
            }
        }
    };
    let hits = count(r, "hits");
    let sampled = count(r, "sampled");
    if let (Some(h), Some(s)) = (hits, sampled) {
        if h > s {
            r.error(
                line,
                format!("evidence says {h} hits in {s} sampled rows: hits cannot exceed sampled"),
            );
        }
    }
    if let Some(v) = t.get("name_match") {
        if v.as_value().and_then(Value::as_str).is_none() {
            r.error(line, "evidence `name_match` must be a string");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Classification, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let c = Classification::parse(Path::new("class.toml"), text, &mut d);
        (c, d)
    }

    const SAMPLE: &str = r#"
version = 1
[levels]
"pii.*" = 3
"finance.*" = 4

[[column]]
table = "public.citizens"
column = "id_number"
tags = ["pii.id_number"]
evidence = { hits = 98, sampled = 100, name_match = "id_number" }

[[column]]
table = "citizens"
column = "Phone"
tags = ["pii.phone"]
level = 2

[[column]]
table = "pay.cards"
column = "pan"
tags = ["finance.bank_card"]

[[column]]
table = "misc"
column = "note"
tags = ["general.note"]
"#;

    #[test]
    fn touched_tags_and_levels() {
        let (c, d) = load(SAMPLE);
        assert!(d.is_empty(), "{d:?}");
        let facts = |tables: &[&str], cols: &[&str], star: bool| StatementFacts {
            tables: tables.iter().map(|s| s.to_string()).collect(),
            columns: cols.iter().map(|s| s.to_string()).collect(),
            select_star: star,
            ..Default::default()
        };
        type Case<'a> = (&'a [&'a str], &'a [&'a str], bool, &'a [&'a str], u8);
        let cases: &[Case] = &[
            (&["citizens"], &["id_number"], false, &["pii.id_number"], 3),
            (&["public.citizens"], &["phone"], false, &["pii.phone"], 2),
            (&["hr.citizens"], &["id_number"], false, &[], 0),
            (&["hr.citizens"], &["phone"], false, &["pii.phone"], 2),
            (&["citizens"], &["name"], false, &[], 0),
            (&["citizens"], &[], true, &["pii.id_number", "pii.phone"], 3),
            (&["cards"], &["pan"], false, &["finance.bank_card"], 4),
            (&["misc"], &["note"], false, &["general.note"], 1),
            (&["other"], &["pan", "id_number"], true, &[], 0),
        ];
        for (tables, cols, star, tags, level) in cases {
            let (got, l) = c.touched(&facts(tables, cols, *star));
            let got: Vec<&str> = got.iter().map(|t| &**t).collect();
            assert_eq!(
                (got.as_slice(), l),
                (*tags, *level),
                "{tables:?} {cols:?} {star}"
            );
        }
    }

    #[test]
    fn empty_tags_mean_not_sensitive() {
        let text = "version = 1\n[[column]]\ntable = \"t\"\ncolumn = \"c\"\ntags = []\nlevel = 2\n";
        let (c, d) = load(text);
        assert!(d.is_empty(), "{d:?}");
        let facts = StatementFacts {
            tables: vec!["t".into()],
            columns: vec!["c".into()],
            select_star: true,
            ..Default::default()
        };
        assert_eq!(c.touched(&facts), (Vec::new(), 0));
        assert!(c.star_columns(&facts).is_empty());
    }

    #[test]
    fn errors() {
        let cases: &[(&str, usize, &str)] = &[
            ("version = 2\n", 1, "unsupported classification version 2"),
            ("[[column]]\ntable = \"t\"\ncolumn = \"c\"\ntags = [\"x\"]\n", 1, "missing `version = 1`"),
            ("version = 1\n[[column]]\ntable = \"t\"\ntags = [\"x\"]\n", 2, "[[column]] without `column`"),
            ("version = 1\n[[column]]\ntable = \"t\"\ncolumn = \"c\"\ntags = [\"x\"]\nlevel = 5\n", 6, "level 5 is out of range"),
            ("version = 1\n[[column]]\ntable = \"t\"\ncolumn = \"c\"\ntags = [\"x\"]\nevidence = { hits = 5, sampled = 3 }\n", 6, "hits cannot exceed sampled"),
            ("version = 1\n[[column]]\ntable = \"t\"\ncolumn = \"c\"\ntgas = [\"x\"]\n", 5, "unknown key `tgas`, did you mean `tags`?"),
            ("version = 1\n[levels]\n\"pii.*\" = 0\n", 3, "level 0 is out of range"),
            ("version = 1\n[[column]]\ntable = \"t\"\ncolumn = \"c\"\ntags = [\"bad tag\"]\n", 5, "bad tag `bad tag`"),
            ("version = 1\n[[column]\n", 2, "TOML syntax error"),
        ];
        for (text, line, want) in cases {
            let (_, d) = load(text);
            let hit = d.iter().find(|d| d.message.contains(want));
            let hit = hit.unwrap_or_else(|| panic!("{want}: got {d:?}"));
            assert_eq!(hit.line, Some(*line), "{want}: {hit}");
            assert!(hit.to_string().starts_with("class.toml:"), "{hit}");
        }
    }
}
