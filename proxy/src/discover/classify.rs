//! Per-column evidence and the decision that turns it into a finding. Owns
//! the discovery rule ("a column gets a kind's tag when its name says so or
//! when at least `min_ratio` of its sampled values hold that kind") and the
//! spelling of table and column names in the classification file. Pure: no
//! I/O, no clock, no panics; it sees sampled values only to count them and
//! never keeps or logs one.

use std::collections::BTreeMap;

use danxia_detectors::pii::{classify_column, level_for_tag, Counts, Kind, Scanner};
use danxia_policies::Finding;

/// Longest prefix of a sampled value that is scanned. A longer value is
/// almost always a document, not an identifier, and scanning is linear:
/// this bounds the work per value (the SQL side truncates too, see
/// [`MAX_VALUE_CHARS`]).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Characters the sampling query keeps of each value (`left(v, n)`), so
/// that a huge value never crosses the network whole. A character is at
/// least one byte, so this keeps at least [`MAX_VALUE_BYTES`] bytes.
pub const MAX_VALUE_CHARS: usize = MAX_VALUE_BYTES;

/// Level of a tag the detectors do not know (cannot happen for tags this
/// module writes; kept so the rule is total): sensitive personal.
pub const UNKNOWN_TAG_LEVEL: u8 = 2;

/// What discovery has seen of one column: its name's verdict and, per
/// kind, how many sampled values held that kind.
#[derive(Debug, Clone)]
pub struct ColumnEvidence {
    name_match: Option<(Kind, &'static str)>,
    /// Non-NULL values scanned.
    sampled: u64,
    /// Per kind, values in which the scanner found at least one.
    hits: BTreeMap<Kind, u64>,
}

impl ColumnEvidence {
    /// Evidence for a column named `name` (as the catalogue spells it),
    /// before any value is seen.
    pub fn new(name: &str) -> ColumnEvidence {
        ColumnEvidence {
            name_match: classify_column(name),
            sampled: 0,
            hits: BTreeMap::new(),
        }
    }

    /// Counts one non-NULL sampled value: its first [`MAX_VALUE_BYTES`]
    /// are scanned, and each kind found in it (once or many times) counts
    /// the value once.
    pub fn observe(&mut self, scanner: &Scanner, value: &[u8]) {
        let value = value.get(..MAX_VALUE_BYTES).unwrap_or(value);
        let mut counts = Counts::new();
        scanner.scan(value, &mut counts);
        self.sampled = self.sampled.saturating_add(1);
        for (kind, _) in counts.iter() {
            let n = self.hits.entry(kind).or_default();
            *n = n.saturating_add(1);
        }
    }

    /// Non-NULL values seen.
    pub fn sampled(&self) -> u64 {
        self.sampled
    }

    /// Values in which `kind` was found.
    pub fn hits(&self, kind: Kind) -> u64 {
        self.hits.get(&kind).copied().unwrap_or(0)
    }

    /// The kinds this column is tagged with, in [`Kind::ALL`] order: the
    /// kind its name matched, and every kind found in at least one value
    /// and in at least `min_ratio` of the sampled values.
    pub fn kinds(&self, min_ratio: f64) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|&k| {
                let by_name = self.name_match.is_some_and(|(n, _)| n == k);
                let hits = self.hits(k);
                // u64 → f64 is exact below 2^53: far beyond any sample.
                let by_content =
                    hits >= 1 && self.sampled > 0 && hits as f64 / self.sampled as f64 >= min_ratio;
                by_name || by_content
            })
            .collect()
    }

    /// The finding for this column of `table` (both already spelled for
    /// the classification file, see [`file_name`]), or `None` when it gets
    /// no tag.
    pub fn finding(&self, table: String, column: String, min_ratio: f64) -> Option<Finding> {
        let kinds = self.kinds(min_ratio);
        if kinds.is_empty() {
            return None;
        }
        let tags: Vec<String> = kinds.iter().map(|k| k.tag().to_string()).collect();
        let level = tags
            .iter()
            .map(|t| level_for_tag(t).unwrap_or(UNKNOWN_TAG_LEVEL))
            .max()
            .unwrap_or(UNKNOWN_TAG_LEVEL);
        let hits = kinds.iter().map(|&k| self.hits(k)).max().unwrap_or(0);
        Some(Finding {
            table,
            column,
            tags,
            level,
            hits,
            sampled: self.sampled,
            name_match: self.name_match.map(|(_, word)| word.to_string()),
        })
    }
}

/// How a database folds the case of identifiers, which decides how a
/// catalogue name is written in the classification file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameCase {
    /// PostgreSQL: the catalogue holds names already folded (unquoted
    /// identifiers are stored lower-case), and a mixed-case name exists
    /// only because it was created quoted, so it is kept and written
    /// quoted (`"Citizens"`), which is how a statement must name it.
    AsStored,
    /// MySQL/MariaDB: statements name tables in any case and the proxy's
    /// statement facts lower-case unquoted names, so names are lower-cased.
    Lower,
}

/// `parts` (schema and table, or a column alone) joined with `.` as the
/// classification file must spell them to match the proxy's normalised
/// statement names: see [`NameCase`]. A part with a `.` in it, or
/// upper-case letters kept by [`NameCase::AsStored`], is double-quoted
/// (the file's name syntax has no escape for a `"` inside a name).
pub fn file_name(parts: &[&str], case: NameCase) -> String {
    parts
        .iter()
        .map(|p| {
            let p = match case {
                NameCase::AsStored => p.to_string(),
                NameCase::Lower => p.to_ascii_lowercase(),
            };
            if p.contains('.') || p.bytes().any(|b| b.is_ascii_uppercase()) {
                format!("\"{p}\"")
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scanner that does not depend on today's date.
    fn scanner() -> Scanner {
        Scanner::all().with_max_birth_year(2024)
    }

    fn evidence(name: &str, values: &[&str]) -> ColumnEvidence {
        let s = scanner();
        let mut e = ColumnEvidence::new(name);
        for v in values {
            e.observe(&s, v.as_bytes());
        }
        e
    }

    const ID: &str = "11010519491231002X";
    const PHONE: &str = "13812345678";
    const CARD: &str = "6222021234567890128"; // UnionPay, Luhn-valid

    #[test]
    fn decision_table() {
        struct Case {
            name: &'static str,
            values: &'static [&'static str],
            min_ratio: f64,
            tags: &'static [&'static str],
            level: u8,
            hits: u64,
            name_match: Option<&'static str>,
        }
        let cases = [
            // Name alone, no values at all (--sample 0, or an empty table).
            Case {
                name: "xm",
                values: &[],
                min_ratio: 0.5,
                tags: &["pii.name"],
                level: 1,
                hits: 0,
                name_match: Some("xm"),
            },
            // Name and content agree.
            Case {
                name: "sfzh",
                values: &[ID, ID, "n/a"],
                min_ratio: 0.5,
                tags: &["pii.id_number"],
                level: 2,
                hits: 2,
                name_match: Some("sfzh"),
            },
            // Content alone, exactly at the ratio.
            Case {
                name: "c1",
                values: &[CARD, "x"],
                min_ratio: 0.5,
                tags: &["finance.bank_card"],
                level: 2,
                hits: 1,
                name_match: None,
            },
            // Content alone, below the ratio: nothing.
            Case {
                name: "c1",
                values: &[CARD, "x", "y"],
                min_ratio: 0.5,
                tags: &[],
                level: 0,
                hits: 0,
                name_match: None,
            },
            // Name and a different content kind: both tags, highest level,
            // hits of the best-evidenced kind.
            Case {
                name: "xm",
                values: &[PHONE, PHONE, "张三"],
                min_ratio: 0.5,
                tags: &["pii.phone", "pii.name"],
                level: 2,
                hits: 2,
                name_match: Some("xm"),
            },
            // Two kinds in one value count that value for both.
            Case {
                name: "remark",
                values: &["tel 13812345678 id 11010519491231002X"],
                min_ratio: 1.0,
                tags: &["pii.id_number", "pii.phone"],
                level: 2,
                hits: 1,
                name_match: None,
            },
            // Two phones in one value are one hit.
            Case {
                name: "contacts",
                values: &["13812345678, 13912345678"],
                min_ratio: 1.0,
                tags: &["pii.phone"],
                level: 2,
                hits: 1,
                name_match: None,
            },
            // min_ratio 0 still needs one hit.
            Case {
                name: "note",
                values: &["hello", "world"],
                min_ratio: 0.0,
                tags: &[],
                level: 0,
                hits: 0,
                name_match: None,
            },
            Case {
                name: "note",
                values: &["hello", "mail me: a@example.com"],
                min_ratio: 0.0,
                tags: &["pii.email"],
                level: 1,
                hits: 1,
                name_match: None,
            },
        ];
        for c in cases {
            let e = evidence(c.name, c.values);
            assert_eq!(e.sampled(), c.values.len() as u64, "{}", c.name);
            let f = e.finding("s.t".into(), c.name.into(), c.min_ratio);
            let Some(f) = f else {
                assert!(c.tags.is_empty(), "{} {:?}: no finding", c.name, c.values);
                continue;
            };
            let want: Vec<String> = c.tags.iter().map(|t| t.to_string()).collect();
            assert_eq!(f.tags, want, "{} {:?}", c.name, c.values);
            assert_eq!(f.level, c.level, "{}", c.name);
            assert_eq!(f.hits, c.hits, "{}", c.name);
            assert_eq!(f.sampled, c.values.len() as u64, "{}", c.name);
            assert_eq!(f.name_match.as_deref(), c.name_match, "{}", c.name);
            assert_eq!((f.table.as_str(), f.column.as_str()), ("s.t", c.name));
        }
    }

    #[test]
    fn long_values_are_scanned_up_to_the_limit() {
        let s = scanner();
        let mut before = vec![b' '; MAX_VALUE_BYTES - PHONE.len()];
        before.extend_from_slice(PHONE.as_bytes());
        let mut after = vec![b' '; MAX_VALUE_BYTES];
        after.extend_from_slice(PHONE.as_bytes());
        let mut e = ColumnEvidence::new("c");
        e.observe(&s, &before);
        e.observe(&s, &after);
        assert_eq!((e.sampled(), e.hits(Kind::Phone)), (2, 1));
    }

    #[test]
    fn hostile_values_do_not_panic() {
        let s = scanner();
        let mut e = ColumnEvidence::new("");
        for v in [&b""[..], b"\xff\xfe\x00", "手机：".as_bytes(), &[b'9'; 200]] {
            e.observe(&s, v);
        }
        assert_eq!(e.sampled(), 4);
        assert!(e.finding("t".into(), "c".into(), 0.5).is_none());
    }

    #[test]
    fn file_names() {
        let cases: &[(&[&str], NameCase, &str)] = &[
            (
                &["public", "citizens"],
                NameCase::AsStored,
                "public.citizens",
            ),
            (
                &["public", "Citizens"],
                NameCase::AsStored,
                "public.\"Citizens\"",
            ),
            (&["app", "a.b"], NameCase::AsStored, "app.\"a.b\""),
            (&["public", "居民"], NameCase::AsStored, "public.居民"),
            (&["Test", "Users"], NameCase::Lower, "test.users"),
            (&["SFZH"], NameCase::Lower, "sfzh"),
            (&["sfzh"], NameCase::AsStored, "sfzh"),
            (&["Phone"], NameCase::AsStored, "\"Phone\""),
        ];
        for (parts, case, want) in cases {
            assert_eq!(file_name(parts, *case), *want, "{parts:?}");
        }
    }
}
