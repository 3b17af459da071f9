//! Writing discovery's findings into the classification file. Owns the
//! merge rules that let `danxia discover` run again and again over a file
//! the team edits by hand: the team's `tags` and `level` always win,
//! discovery only refreshes its own `evidence` and appends columns it has
//! not reported before. Pure: text in, text out, no I/O.
//!
//! It must never lose a hand edit, and never rewrite a file it cannot
//! understand: an existing file is validated with the classification
//! reader first (errors are returned, nothing is written), edited through
//! `toml_edit::DocumentMut` so comments, order and formatting of every
//! untouched part survive byte for byte, and the result is read back and
//! must be valid.
//!
//! Rules, keyed on the exact `table` and `column` strings:
//! - an entry with a finding keeps `tags` and `level`; its `evidence` is
//!   replaced by the new one (`tags = []`, "not sensitive", stays so);
//! - a finding without an entry is appended as a new `[[column]]`, after
//!   the existing ones, sorted by (table, column);
//! - an entry without a finding is left untouched (added by hand, or not
//!   sampled this time); discovery never deletes an entry.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use crate::classification::{Classification, MAX_LEVEL, MIN_LEVEL, VERSION};
use crate::error::{Diagnostic, Diagnostics, Severity};

/// What discovery concluded about one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Normalised, schema-qualified table name, e.g. `public.citizens`.
    pub table: String,
    /// Normalised column name.
    pub column: String,
    /// Classification tags, e.g. `["pii.id_number"]`; never empty.
    pub tags: Vec<String>,
    /// 1 (general) to 4 (core).
    pub level: u8,
    /// Sampled values the detectors recognised (`hits <= sampled`).
    pub hits: u64,
    /// Values sampled.
    pub sampled: u64,
    /// The column-name keyword that matched, if any.
    pub name_match: Option<String>,
}

/// What a merge did, for discover's summary line. Counts entries of the
/// file (`evidence_updated`, `kept_as_edited`, `not_seen`) or findings
/// (`added`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Findings appended as new `[[column]]` entries.
    pub added: usize,
    /// Existing entries whose `evidence` was refreshed.
    pub evidence_updated: usize,
    /// Of those, entries whose `tags` (as a set) or `level` differ from
    /// the finding's, and were kept as the team wrote them.
    pub kept_as_edited: usize,
    /// Existing entries with no finding this run, left untouched.
    pub not_seen: usize,
}

/// The start of a file discovery creates.
const HEADER: &str = "\
# danxia classification file: which columns hold sensitive data (tags such
# as `pii.phone`) and how sensitive they are (level 1 general to 4 core).
# Written by `danxia discover`; running it again merges into this file.
#
# You may edit it. Change the `tags` or `level` of any [[column]] and
# discover keeps your edit: it only refreshes `evidence`, its record of why
# it flagged the column. To mark a false positive, set `tags = []`: the
# column is then classified as not sensitive and is never tagged again.
# Entries you add by hand are kept; discover never deletes an entry.
# See docs/policy.md, \"Classification file\".
";

/// Merges `findings` into the classification file `existing` (`None` or
/// blank: a new file) and returns the new text with what changed.
/// `path_for_errors` only names the file in diagnostics. Fails, returning
/// nothing to write, when `existing` is not a valid classification file or
/// a finding is malformed.
pub fn merge_classification(
    existing: Option<&str>,
    findings: &[Finding],
    path_for_errors: &Path,
) -> Result<(String, MergeReport), Diagnostics> {
    let path = path_for_errors;
    check_findings(findings, path)?;
    let fresh = format!("{HEADER}\nversion = {VERSION}\n");
    let text = match existing {
        Some(t) if !t.trim().is_empty() => {
            validate(path, t)?;
            t
        }
        _ => fresh.as_str(),
    };
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        error(path, format!("TOML syntax error: {}", e.message().trim()))
    })?;

    // One finding per column; a later duplicate wins. Sorted by key.
    let mut by_key: BTreeMap<(&str, &str), &Finding> = BTreeMap::new();
    for f in findings {
        by_key.insert((f.table.as_str(), f.column.as_str()), f);
    }

    let mut report = MergeReport::default();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    if let Some(Item::ArrayOfTables(entries)) = doc.get_mut("column") {
        for t in entries.iter_mut() {
            let (Some(table), Some(column)) = (str_of(t, "table"), str_of(t, "column")) else {
                continue; // validated above: cannot happen
            };
            match by_key.get(&(table.as_str(), column.as_str())) {
                Some(f) => {
                    report.evidence_updated += 1;
                    if differs(t, f) {
                        report.kept_as_edited += 1;
                    }
                    set_evidence(t, evidence(f));
                    seen.insert((table, column));
                }
                None => report.not_seen += 1,
            }
        }
    }

    let new: Vec<&Finding> = by_key
        .iter()
        .filter(|((t, c), _)| !seen.contains(&(t.to_string(), c.to_string())))
        .map(|(_, f)| *f)
        .collect();
    if !new.is_empty() {
        if doc.get("column").is_none() {
            doc.insert("column", Item::ArrayOfTables(ArrayOfTables::new()));
        }
        let Some(entries) = doc.get_mut("column").and_then(Item::as_array_of_tables_mut) else {
            // validated above: `column` is an array of tables
            return Err(error(
                path,
                "columns must be written as `[[column]]` tables",
            ));
        };
        for f in new {
            entries.push(new_entry(f));
            report.added += 1;
        }
    }

    let out = doc.to_string();
    validate(path, &out).map_err(|Diagnostics(ds)| {
        Diagnostics(
            ds.into_iter()
                .map(|d| Diagnostic {
                    line: None,
                    message: format!("the merged file would be invalid: {}", d.message),
                    ..d
                })
                .collect(),
        )
    })?;
    Ok((out, report))
}

fn error(path: &Path, message: impl Into<String>) -> Diagnostics {
    Diagnostics(vec![Diagnostic {
        severity: Severity::Error,
        file: Some(path.to_path_buf()),
        line: None,
        rule_id: None,
        message: message.into(),
    }])
}

/// Errors (and warnings) of `text` as a classification file, if it has
/// any error.
fn validate(path: &Path, text: &str) -> Result<(), Diagnostics> {
    let mut diags = Vec::new();
    Classification::parse(path, text, &mut diags);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return Err(Diagnostics(diags));
    }
    Ok(())
}

/// Rejects findings discovery should never produce, all at once.
fn check_findings(findings: &[Finding], path: &Path) -> Result<(), Diagnostics> {
    let mut problems = Vec::new();
    for f in findings {
        let mut bad = |what: String| {
            problems.push(format!("finding for `{}` `{}`: {what}", f.table, f.column));
        };
        if f.table.is_empty() || f.column.is_empty() {
            bad("empty table or column name".into());
        }
        if f.tags.is_empty() {
            bad("no tags (a finding must say what the column holds)".into());
        }
        if !(MIN_LEVEL..=MAX_LEVEL).contains(&f.level) {
            bad(format!("level {} is out of range 1..4", f.level));
        }
        if f.hits > f.sampled {
            bad(format!("{} hits in {} sampled rows", f.hits, f.sampled));
        }
        if i64::try_from(f.sampled).is_err() {
            bad(format!("sampled count {} is too large", f.sampled));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Diagnostics(
        problems
            .into_iter()
            .flat_map(|m| error(path, m).0)
            .collect(),
    ))
}

fn str_of(t: &Table, key: &str) -> Option<String> {
    t.get(key).and_then(Item::as_str).map(str::to_string)
}

/// The entry's `tags` (as a set) or `level` are not what discovery would
/// write. A missing `level` counts as an edit: discovery always writes one.
fn differs(t: &Table, f: &Finding) -> bool {
    let tags: Option<BTreeSet<&str>> = t
        .get("tags")
        .and_then(Item::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect());
    let want: BTreeSet<&str> = f.tags.iter().map(String::as_str).collect();
    let level = t.get("level").and_then(Item::as_integer);
    tags.as_ref() != Some(&want) || level != Some(i64::from(f.level))
}

fn evidence(f: &Finding) -> InlineTable {
    // Both counts fit: check_findings bounds them by i64::MAX.
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut ev = InlineTable::new();
    ev.insert("hits", count(f.hits).into());
    ev.insert("sampled", count(f.sampled).into());
    if let Some(m) = &f.name_match {
        ev.insert("name_match", m.as_str().into());
    }
    ev
}

/// Replaces the entry's `evidence`, keeping the spacing and any trailing
/// comment of the old value so a re-run changes only the numbers.
fn set_evidence(t: &mut Table, ev: InlineTable) {
    let mut new = Value::InlineTable(ev);
    match t.get_mut("evidence") {
        Some(Item::Value(old)) => {
            *new.decor_mut() = old.decor().clone();
            *old = new;
        }
        // `[column.evidence]` sub-table or dotted keys: now one inline
        // value (re-inserted, so the key loses the header's formatting).
        Some(_) => {
            t.remove("evidence");
            t.insert("evidence", Item::Value(new));
        }
        None => {
            t.insert("evidence", Item::Value(new));
        }
    }
}

fn new_entry(f: &Finding) -> Table {
    let tags: BTreeSet<&str> = f.tags.iter().map(String::as_str).collect();
    let mut t = Table::new();
    t.decor_mut().set_prefix("\n");
    t.insert("table", toml_edit::value(f.table.as_str()));
    t.insert("column", toml_edit::value(f.column.as_str()));
    t.insert("tags", toml_edit::value(Array::from_iter(tags)));
    t.insert("level", toml_edit::value(i64::from(f.level)));
    t.insert("evidence", toml_edit::value(evidence(f)));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use danxia_detectors::StatementFacts;

    fn finding(table: &str, column: &str, tags: &[&str], level: u8, hits: u64) -> Finding {
        Finding {
            table: table.into(),
            column: column.into(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            level,
            hits,
            sampled: 100,
            name_match: None,
        }
    }

    fn merge(existing: Option<&str>, findings: &[Finding]) -> (String, MergeReport) {
        let (out, report) = merge_classification(existing, findings, Path::new("class.toml"))
            .unwrap_or_else(|d| panic!("{d}"));
        let mut diags = Vec::new();
        Classification::parse(Path::new("out.toml"), &out, &mut diags);
        assert!(diags.is_empty(), "output does not parse: {diags:?}\n{out}");
        out.parse::<DocumentMut>().unwrap_or_else(|e| panic!("{e}"));
        (out, report)
    }

    /// Tags and level a statement reading `column` of `table` touches.
    fn touched(text: &str, table: &str, column: &str) -> (Vec<String>, u8) {
        let mut diags = Vec::new();
        let c = Classification::parse(Path::new("c.toml"), text, &mut diags);
        let facts = StatementFacts {
            tables: vec![table.into()],
            columns: vec![column.into()],
            ..Default::default()
        };
        let (tags, level) = c.touched(&facts);
        (tags.iter().map(|t| t.to_string()).collect(), level)
    }

    #[test]
    fn fresh_file() {
        let mut named = finding("public.citizens", "id_number", &["pii.id_number"], 2, 98);
        named.name_match = Some("id_number".into());
        let findings = [
            finding("public.citizens", "phone", &["pii.phone"], 2, 40),
            named,
            finding("app.users", "email", &["pii.email"], 1, 7),
        ];
        for existing in [None, Some(""), Some("  \n")] {
            let (out, report) = merge(existing, &findings);
            assert_eq!(
                report,
                MergeReport {
                    added: 3,
                    ..Default::default()
                }
            );
            assert!(out.starts_with(HEADER), "{out}");
            let body = &out[HEADER.len()..];
            assert_eq!(
                body,
                r#"
version = 1

[[column]]
table = "app.users"
column = "email"
tags = ["pii.email"]
level = 1
evidence = { hits = 7, sampled = 100 }

[[column]]
table = "public.citizens"
column = "id_number"
tags = ["pii.id_number"]
level = 2
evidence = { hits = 98, sampled = 100, name_match = "id_number" }

[[column]]
table = "public.citizens"
column = "phone"
tags = ["pii.phone"]
level = 2
evidence = { hits = 40, sampled = 100 }
"#
            );
        }
        // No findings: a valid file with only the header.
        let (out, _) = merge(None, &[]);
        assert_eq!(out, format!("{HEADER}\nversion = 1\n"));
    }

    const EDITED: &str = r#"# Reviewed by the DPO, 2024-05.
version = 1

[levels]
"pii.*" = 2   # PIPL art. 28

# Citizens register
[[column]]
table = "public.citizens"
column = "id_number"
tags = ["pii.id_number", "gov.register.id"]   # added by hand
level = 4
evidence = { hits = 1, sampled = 10 }  # old run

[[column]]
table   =   "public.citizens"
column = "note"
tags = []        # false positive: free text
evidence = { hits = 3, sampled = 100, name_match = "note" }

[[column]]
table = "hr.staff"
column = "phone"
tags = ["pii.phone"]
# no level: [levels] gives it

[[column]]
table = "public.citizens"
column = "name"
tags = ["pii.name"]
level = 1
"#;

    fn edited_findings() -> Vec<Finding> {
        let mut id = finding("public.citizens", "id_number", &["pii.id_number"], 2, 98);
        id.name_match = Some("id_number".into());
        vec![
            finding("public.citizens", "phone", &["pii.phone"], 2, 50),
            id,
            finding("public.citizens", "note", &["pii.name"], 1, 5),
            finding("public.citizens", "name", &["pii.name"], 1, 90),
            finding(
                "pay.accounts",
                "card",
                &["finance.bank_card", "pii.bank_card"],
                2,
                60,
            ),
        ]
    }

    #[test]
    fn merge_into_hand_edited_file() {
        let (out, report) = merge(Some(EDITED), &edited_findings());
        assert_eq!(
            report,
            MergeReport {
                added: 2,
                evidence_updated: 3,
                kept_as_edited: 2,
                not_seen: 1,
            }
        );
        let want = EDITED
            .replace(
                "evidence = { hits = 1, sampled = 10 }  # old run",
                r#"evidence = { hits = 98, sampled = 100, name_match = "id_number" }  # old run"#,
            )
            .replace(
                r#"evidence = { hits = 3, sampled = 100, name_match = "note" }"#,
                "evidence = { hits = 5, sampled = 100 }",
            )
            .replace(
                "tags = [\"pii.name\"]\nlevel = 1\n",
                "tags = [\"pii.name\"]\nlevel = 1\nevidence = { hits = 90, sampled = 100 }\n",
            )
            + r#"
[[column]]
table = "pay.accounts"
column = "card"
tags = ["finance.bank_card", "pii.bank_card"]
level = 2
evidence = { hits = 60, sampled = 100 }

[[column]]
table = "public.citizens"
column = "phone"
tags = ["pii.phone"]
level = 2
evidence = { hits = 50, sampled = 100 }
"#;
        assert_eq!(out, want);
        // The team's word wins: edited tags and level, and `tags = []`.
        let id = touched(&out, "public.citizens", "id_number");
        assert_eq!(
            id,
            (vec!["gov.register.id".into(), "pii.id_number".into()], 4)
        );
        assert_eq!(touched(&out, "public.citizens", "note"), (vec![], 0));
        assert_eq!(
            touched(&out, "hr.staff", "phone"),
            (vec!["pii.phone".into()], 2)
        );
        assert_eq!(touched(&out, "pay.accounts", "card").1, 2);
    }

    #[test]
    fn idempotent() {
        let findings = edited_findings();
        for existing in [None, Some(EDITED)] {
            let (first, _) = merge(existing, &findings);
            let (second, report) = merge(Some(&first), &findings);
            assert_eq!(second, first);
            assert_eq!(report.added, 0);
            assert_eq!(report.evidence_updated, findings.len());
        }
    }

    #[test]
    fn evidence_as_sub_table_is_replaced() {
        let text = "version = 1\n\n[[column]]\ntable = \"t.a\"\ncolumn = \"c\"\ntags = [\"x\"]\nlevel = 1\n\n[column.evidence]\nhits = 1\nsampled = 2\n";
        let (out, report) = merge(Some(text), &[finding("t.a", "c", &["x"], 1, 9)]);
        assert_eq!(report.evidence_updated, 1);
        assert_eq!(report.kept_as_edited, 0);
        assert!(
            out.contains("evidence = { hits = 9, sampled = 100 }"),
            "{out}"
        );
        assert!(!out.contains("[column.evidence]"), "{out}");
    }

    #[test]
    fn append_to_file_without_columns_or_final_newline() {
        let text = "version = 1\n\n[levels]\n\"pii.*\" = 2";
        let (out, report) = merge(Some(text), &[finding("t.a", "c", &["pii.x"], 2, 1)]);
        assert_eq!(report.added, 1);
        assert!(out.starts_with(text), "{out}");
        let (again, _) = merge(Some(&out), &[finding("t.a", "c", &["pii.x"], 2, 1)]);
        assert_eq!(again, out);
    }

    #[test]
    fn invalid_existing_file_is_refused() {
        let cases: &[(&str, &str)] = &[
            ("version = 2\n", "unsupported classification version 2"),
            ("version = 1\n[[column]\n", "TOML syntax error"),
            (
                "version = 1\n[[column]]\ntable = \"t\"\ncolumn = \"c\"\ntags = [\"bad tag\"]\n",
                "bad tag",
            ),
            ("version = 1\ncolumn = 3\n", "`[[column]]` tables"),
            (
                "# no version\n[[column]]\ntable = \"t\"\ncolumn = \"c\"\ntags = [\"x\"]\n",
                "missing `version = 1`",
            ),
        ];
        let f = [finding("t", "c", &["x"], 1, 1)];
        for (text, want) in cases {
            let err =
                merge_classification(Some(text), &f, Path::new("class.toml")).expect_err(want);
            assert!(err.to_string().contains(want), "{want}: {err}");
            assert!(err.to_string().starts_with("class.toml:"), "{err}");
        }
    }

    #[test]
    fn bad_findings_are_refused() {
        let mut over = finding("t", "c", &["x"], 1, 101);
        over.sampled = 100;
        let cases = [
            (finding("t", "c", &["x"], 0, 1), "level 0"),
            (finding("t", "c", &["x"], 5, 1), "level 5"),
            (finding("t", "c", &[], 1, 1), "no tags"),
            (finding("", "c", &["x"], 1, 1), "empty table"),
            (over, "101 hits in 100"),
            (finding("t", "c", &["bad tag"], 1, 1), "bad tag"),
        ];
        for (f, want) in cases {
            let err = merge_classification(None, &[f], Path::new("class.toml")).expect_err(want);
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn tricky_names_round_trip() {
        let mut id = finding("public.居民", "身份证号", &["pii.id_number"], 2, 3);
        id.name_match = Some("身份证".into());
        let findings = vec![
            id,
            finding("app.o'brien", "say \"hi\"", &["pii.name"], 1, 1),
            finding("app.t", "back\\slash", &["pii.email"], 1, 2),
            finding("app.t", "tab\tand'both\"", &["pii.phone"], 2, 2),
        ];
        let (out, report) = merge(None, &findings);
        assert_eq!(report.added, findings.len());
        let doc: DocumentMut = out.parse().unwrap_or_else(|e| panic!("{e}"));
        let mut got: Vec<(String, String)> = doc["column"]
            .as_array_of_tables()
            .into_iter()
            .flat_map(|a| a.iter())
            .filter_map(|t| Some((str_of(t, "table")?, str_of(t, "column")?)))
            .collect();
        let mut want: Vec<(String, String)> = findings
            .iter()
            .map(|f| (f.table.clone(), f.column.clone()))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert!(out.contains("身份证号") && out.contains("身份证"), "{out}");
        let (again, report) = merge(Some(&out), &findings);
        assert_eq!(again, out);
        assert_eq!((report.added, report.evidence_updated), (0, findings.len()));
        assert_eq!(
            touched(&out, "public.居民", "身份证号"),
            (vec!["pii.id_number".into()], 2)
        );
    }
}
