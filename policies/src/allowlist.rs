//! The learned allowlist: statement shapes (fingerprints) seen per user and
//! database while a listener was in `learn` mode, which the
//! `not_allowlisted` condition checks. Owns the file format (written by the
//! proxy with [`HEADER`] and [`render`], read by [`parse`]) and the O(1)
//! lookup. Never stores literal values: the statement text kept is the
//! normalised text, with `?` for every literal.
//!
//! An entry with a `statement` matches only that exact normalised text (and
//! its fingerprint): the fingerprint (FNV-1a) is not collision resistant,
//! so a client who controls SQL text could otherwise craft a statement with
//! an allowlisted fingerprint. It must never match such an entry on the
//! fingerprint alone. Entries without a `statement` (written by hand) do
//! match on the fingerprint alone; `docs/policy.md` says why to avoid them.

use std::collections::HashMap;
use std::path::Path;

use danxia_detectors::Fingerprint;
use toml_edit::Item;

use crate::error::{Diagnostic, Diagnostics, Severity};
use crate::glob::Glob;
use crate::lang::{parse_document, Located, Reader, Source};

/// The only allowlist format version.
const VERSION: i64 = 1;
/// Longest normalised statement (characters) the proxy's learner records.
/// An entry must hold the whole text to match, so longer statements are
/// not learned at all (they stay `not_allowlisted`) rather than cut.
pub const MAX_STATEMENT_CHARS: usize = 65536;

const TOP_KEYS: [&str; 2] = ["version", "allow"];
const ENTRY_KEYS: [&str; 4] = ["user", "database", "fingerprint", "statement"];

/// One learned statement shape for a (user, database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// User name glob (`*` for any user).
    pub user: String,
    /// Database name glob (`*` for any database).
    pub database: String,
    /// Fingerprint of `statement` (see [`Fingerprint::of_normalized`]).
    pub fingerprint: Fingerprint,
    /// The whole normalised statement, which a statement must equal to
    /// match. `None` (only written by hand) matches on the fingerprint
    /// alone, which a crafted statement can collide with.
    pub statement: Option<String>,
}

/// The start of a new allowlist file: a comment for reviewers and the
/// format version. Append [`render`]ed entries after it.
pub const HEADER: &str = "\
# danxia learned allowlist.
#
# Each [[allow]] block lets one statement shape run for a user and a
# database under rules that use the `not_allowlisted` condition. The shape
# is the statement with every literal value replaced by `?`: `statement`
# is that text, and a statement matches only when its text is exactly
# `statement` and its fingerprint is `fingerprint`. An entry without
# `statement` matches on the fingerprint alone, which a crafted statement
# can imitate: keep the statement.
# `user` and `database` are patterns (`*` matches anything).
#
# Listeners in `learn` mode append to this file. Review it before moving a
# listener to `enforce`: delete every entry you do not expect.
version = 1
";

/// One `[[allow]]` block (starting with a blank line), valid TOML to
/// append after [`HEADER`] or after other blocks.
/// The statement is written whole: a cut one could never match.
pub fn render(e: &Entry) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut out = format!(
        "\n[[allow]]\nuser = {}\ndatabase = {}\nfingerprint = \"{}\"\n",
        quote(&e.user),
        quote(&e.database),
        e.fingerprint
    );
    if let Some(statement) = &e.statement {
        out.push_str(&format!("statement = {}\n", quote(statement)));
    }
    out
}

/// Reads an allowlist file's text; `path` is for the diagnostics.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Entry>, Diagnostics> {
    let mut diags = Vec::new();
    let entries = parse_into(text, path, &mut diags);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        Err(Diagnostics(diags))
    } else {
        Ok(entries)
    }
}

fn parse_into(text: &str, path: &Path, diags: &mut Vec<Diagnostic>) -> Vec<Entry> {
    let src = Source::new(path, text);
    let mut out = Vec::new();
    let Some(doc) = parse_document(&src, text, diags) else {
        return out;
    };
    let mut r = Reader::new(&src, diags);
    let root = doc.as_table();
    r.unknown_keys(root, &TOP_KEYS);
    r.version(root, VERSION, "allowlist");
    match root.get("allow") {
        None => {}
        Some(Item::ArrayOfTables(tables)) => {
            for t in tables.iter() {
                let before = r.diags.len();
                let header = src.line_of(t.span());
                r.unknown_keys(t, &ENTRY_KEYS);
                let user = r.string(t, "user");
                let database = r.string(t, "database");
                let fingerprint = r.string(t, "fingerprint");
                let statement = r.string(t, "statement");
                for key in ["user", "database", "fingerprint"] {
                    if t.get(key).is_none() {
                        r.error(header, format!("[[allow]] without `{key}`"));
                    }
                }
                let fp = fingerprint.as_ref().and_then(|f| match f.text.parse() {
                    Ok(fp) => Some(fp),
                    Err(_) => {
                        r.error(
                            f.line,
                            format!("bad fingerprint `{}`: expected 16 hex digits", f.text),
                        );
                        None
                    }
                });
                if r.diags.len() > before {
                    continue;
                }
                if let (Some(user), Some(database), Some(fingerprint)) = (user, database, fp) {
                    if let Some(s) = &statement {
                        check_fingerprint(&mut r, s, fingerprint);
                    }
                    out.push(Entry {
                        user: user.text,
                        database: database.text,
                        fingerprint,
                        statement: statement.map(|s| s.text),
                    });
                }
            }
        }
        Some(_) => {
            let line = r.key_line(root, "allow");
            r.error(line, "entries must be written as `[[allow]]` tables");
        }
    }
    out
}

/// Warns about an entry whose statement text does not have its
/// fingerprint. Such an entry can never match (a statement's fingerprint is
/// that of its text), so it fails closed and a warning is enough: the usual
/// cause is a statement cut by an older danxia (which shortened long
/// statements) or a hand edit, and refusing the whole policy for it would
/// stop an upgrade.
fn check_fingerprint(r: &mut Reader<'_>, statement: &Located, fingerprint: Fingerprint) {
    let actual = Fingerprint::of_normalized(&statement.text);
    if actual != fingerprint {
        r.push(
            Severity::Warning,
            statement.line,
            format!(
                "entry never matches: `statement` has fingerprint {actual}, not {fingerprint} \
                 (cut or edited?); learn it again, or delete `statement` to match the \
                 fingerprint alone"
            ),
        );
    }
}

/// An entry's statement text; `None` matches any text.
type Statement = Option<Box<str>>;
/// Statement texts of the entries for one fingerprint and (user, database):
/// almost always one.
type Statements = Vec<Statement>;
/// fingerprint → statements, for one literal (user, database).
type ByFingerprint = HashMap<u64, Statements>;
/// A wildcard entry: user glob, database glob, statement.
type Globbed = (Glob, Glob, Statement);

/// The loaded allowlist, indexed for one hash lookup per statement plus a
/// text comparison.
#[derive(Debug, Default)]
pub(crate) struct Allowlist {
    /// user → database → fingerprint → statements, for entries without
    /// wildcards.
    exact: HashMap<Box<str>, HashMap<Box<str>, ByFingerprint>>,
    /// fingerprint → (user, database globs, statement), for entries with
    /// wildcards.
    globbed: HashMap<u64, Vec<Globbed>>,
    len: usize,
}

/// Whether an entry's statement admits `normalized`.
fn admits(statement: Option<&str>, normalized: &str) -> bool {
    match statement {
        Some(s) => s == normalized,
        None => true,
    }
}

impl Allowlist {
    /// A missing file is an empty allowlist (nothing learned yet).
    pub(crate) fn load(path: &Path, diags: &mut Vec<Diagnostic>) -> Allowlist {
        crate::compile::permission_diag(path, "allowlist", diags);
        match std::fs::read_to_string(path) {
            Ok(text) => Allowlist::from_entries(parse_into(&text, path, diags)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Allowlist::default(),
            Err(e) => {
                diags.push(Diagnostic {
                    severity: Severity::Error,
                    file: Some(path.to_path_buf()),
                    line: None,
                    rule_id: None,
                    message: format!("cannot read the allowlist: {e}"),
                });
                Allowlist::default()
            }
        }
    }

    /// Indexes `entries`, leaving out those whose statement does not have
    /// their fingerprint (a load warning): no real statement could match
    /// one, and leaving it out keeps that true for any request.
    pub(crate) fn from_entries(entries: Vec<Entry>) -> Allowlist {
        let mut a = Allowlist::default();
        for e in entries {
            let consistent = match &e.statement {
                Some(s) => Fingerprint::of_normalized(s) == e.fingerprint,
                None => true,
            };
            if consistent {
                a.add(e);
            }
        }
        a
    }

    fn add(&mut self, e: Entry) {
        self.len += 1;
        let (user, db) = (Glob::new(&e.user), Glob::new(&e.database));
        let statement = e.statement.map(String::into_boxed_str);
        if user.is_literal() && db.is_literal() {
            self.exact
                .entry(e.user.into())
                .or_default()
                .entry(e.database.into())
                .or_default()
                .entry(e.fingerprint.0)
                .or_default()
                .push(statement);
        } else {
            self.globbed
                .entry(e.fingerprint.0)
                .or_default()
                .push((user, db, statement));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether an entry for this user and database has fingerprint `fp`
    /// and, when it has a statement, exactly the text `normalized`.
    pub(crate) fn contains(
        &self,
        user: &str,
        database: &str,
        fp: Fingerprint,
        normalized: &str,
    ) -> bool {
        let exact = self
            .exact
            .get(user)
            .and_then(|dbs| dbs.get(database))
            .and_then(|fps| fps.get(&fp.0))
            .is_some_and(|v| v.iter().any(|s| admits(s.as_deref(), normalized)));
        exact
            || self.globbed.get(&fp.0).is_some_and(|v| {
                v.iter().any(|(u, d, s)| {
                    u.matches(user) && d.matches(database) && admits(s.as_deref(), normalized)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry as the learner writes it: the statement and its fingerprint.
    fn learned(user: &str, db: &str, stmt: &str) -> Entry {
        Entry {
            user: user.into(),
            database: db.into(),
            fingerprint: Fingerprint::of_normalized(stmt),
            statement: Some(stmt.into()),
        }
    }

    /// A hand-written entry: a fingerprint and no statement.
    fn bare(user: &str, db: &str, fp: u64) -> Entry {
        Entry {
            user: user.into(),
            database: db.into(),
            fingerprint: Fingerprint(fp),
            statement: None,
        }
    }

    fn parse_with_diags(text: &str) -> (Vec<Entry>, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let entries = parse_into(text, Path::new("allow.toml"), &mut diags);
        (entries, diags)
    }

    #[test]
    fn render_parse_round_trip() {
        let entries = vec![
            learned("app", "test", "select * from t where id = ?"),
            learned(
                "*",
                "shop",
                "select \"Quoted\" from t where a = '\\' -- \n x",
            ),
            learned("app", "test", ""),
            bare("report_*", "*", u64::MAX),
        ];
        let mut text = HEADER.to_string();
        for e in &entries {
            text.push_str(&render(e));
        }
        let (back, diags) = parse_with_diags(&text);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(back, entries);
    }

    #[test]
    fn long_statements_are_written_whole() {
        let long = "x".repeat(MAX_STATEMENT_CHARS + 10);
        let text = format!("{HEADER}{}", render(&learned("a", "b", &long)));
        let (back, diags) = parse_with_diags(&text);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(back[0].statement.as_deref(), Some(long.as_str()));
    }

    #[test]
    fn statement_must_have_the_entry_fingerprint() {
        // As an older danxia cut it: the text no longer has the fingerprint.
        let full = "select a, b from t where id = ?";
        let cut = Entry {
            statement: Some("select a, b from t…".into()),
            ..learned("app", "test", full)
        };
        let text = format!("{HEADER}{}", render(&cut));
        let (back, diags) = parse_with_diags(&text);
        assert_eq!(diags.len(), 1, "{diags:?}");
        let d = &diags[0];
        assert_eq!(d.severity, Severity::Warning);
        assert!(d.message.contains("entry never matches"), "{d}");
        assert_eq!(d.line, Some(HEADER.lines().count() + 6), "{d}");
        assert!(
            parse(&text, Path::new("allow.toml")).is_ok(),
            "a warning only"
        );
        // It fails closed: neither the full text nor the cut one matches.
        let a = Allowlist::from_entries(back);
        assert_eq!(a.len(), 0, "left out of the index");
        let fp = Fingerprint::of_normalized(full);
        assert!(!a.contains("app", "test", fp, full));
        assert!(!a.contains("app", "test", fp, "select a, b from t…"));
    }

    #[test]
    fn lookup() {
        let s1 = "select * from t where id = ?";
        let s2 = "update t set a = ? where id = ?";
        let s3 = "select * from shop_items";
        let s4 = "select count(*) from reports";
        let a = Allowlist::from_entries(vec![
            learned("app", "test", s1),
            learned("app", "test", s2),
            learned("*", "shop", s3),
            learned("report_*", "*", s4),
            bare("app", "test", 5),
            bare("ops_*", "*", 6),
        ]);
        assert_eq!(a.len(), 6);
        let fp = |s: &str| Fingerprint::of_normalized(s).0;
        // A statement crafted to collide with an entry's fingerprint: same
        // fingerprint, other text.
        let evil = "select * from pg_shadow";
        let cases: &[(&str, &str, u64, &str, bool)] = &[
            ("app", "test", fp(s1), s1, true),
            ("app", "test", fp(s2), s2, true),
            ("app", "test", fp(s3), s3, false),
            ("app", "other", fp(s1), s1, false),
            ("other", "test", fp(s1), s1, false),
            ("anyone", "shop", fp(s3), s3, true),
            ("anyone", "shop2", fp(s3), s3, false),
            ("report_x", "anything", fp(s4), s4, true),
            ("reporter", "anything", fp(s4), s4, false),
            // Collisions never match an entry that has a statement …
            ("app", "test", fp(s1), evil, false),
            ("anyone", "shop", fp(s3), evil, false),
            ("report_x", "anything", fp(s4), evil, false),
            // … but do match one without (the documented risk).
            ("app", "test", 5, evil, true),
            ("ops_1", "db", 6, evil, true),
            ("app", "other", 5, evil, false),
        ];
        for (u, d, fp, text, want) in cases {
            assert_eq!(
                a.contains(u, d, Fingerprint(*fp), text),
                *want,
                "{u} {d} {fp:x} {text}"
            );
        }
    }

    #[test]
    fn several_statements_under_one_fingerprint() {
        // Two entries for one fingerprint (a collision learned twice): each
        // admits its own text. Indexed directly, since real colliding texts
        // are not at hand.
        let mut a = Allowlist::default();
        for e in [
            Entry {
                statement: Some("select ?".into()),
                ..bare("app", "test", 9)
            },
            Entry {
                statement: Some("select ?, ?".into()),
                ..bare("app", "test", 9)
            },
            Entry {
                statement: Some("select 1".into()),
                ..bare("*", "test", 9)
            },
        ] {
            a.add(e);
        }
        for (text, want) in [
            ("select ?", true),
            ("select ?, ?", true),
            ("select 1", true),
            ("select ?, ?, ?", false),
        ] {
            assert_eq!(
                a.contains("app", "test", Fingerprint(9), text),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "version = 1\n[[allow]]\nuser = \"a\"\ndatabase = \"b\"\nfingerprint = \"xyz\"\n",
                5,
                "bad fingerprint `xyz`",
            ),
            (
                "version = 1\n[[allow]]\nuser = \"a\"\nfingerprint = \"0000000000000001\"\n",
                2,
                "[[allow]] without `database`",
            ),
            (
                "version = 1\n[[allow]]\nusr = \"a\"\n",
                3,
                "unknown key `usr`, did you mean `user`?",
            ),
            ("version = 3\n", 1, "unsupported allowlist version 3"),
            (
                "version = 1\nallow = 5\n",
                2,
                "entries must be written as `[[allow]]` tables",
            ),
        ];
        for (text, line, want) in cases {
            let e = parse(text, Path::new("al.toml")).expect_err(want);
            let d = e.0.iter().find(|d| d.message.contains(want));
            let d = d.unwrap_or_else(|| panic!("{want}: {e}"));
            assert_eq!(d.line, Some(*line), "{d}");
        }
    }

    #[test]
    fn missing_file_is_empty() {
        let mut d = Vec::new();
        let a = Allowlist::load(Path::new("/nonexistent/danxia/allow.toml"), &mut d);
        assert!(d.is_empty());
        assert_eq!(a.len(), 0);
    }
}
