//! Pattern matching for rule lists: `*`/`?` globs over single strings
//! ([`Glob`]) and over dotted object names ([`NamePattern`]). Owns the
//! matching rules the docs promise (right-aligned dotted parts, the
//! shorter-name rule) and the coverage test the shadowing check relies on.
//! Must never allocate while matching: this runs per rule per statement.
//!
//! A hand-written matcher rather than `globset`: policy globs only need `*`
//! and `?` (no classes, no path semantics), and a byte loop over a
//! pre-classified pattern (exact / prefix / suffix / general) is both
//! smaller and faster than compiling each pattern to a regex.

use std::fmt;

/// A `*` (any run, including empty) / `?` (one character) pattern. No
/// escapes: object and user names with a literal `*` or `?` are not
/// supported in patterns.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    text: Box<str>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `*` (or `**`…): matches everything.
    Any,
    /// No wildcard.
    Exact,
    /// `abc*`: the text before the star is a prefix.
    Prefix,
    /// `*abc`: the text after the star is a suffix.
    Suffix,
    General,
}

impl Glob {
    pub(crate) fn new(text: &str) -> Glob {
        let wild = |b: u8| b == b'*' || b == b'?';
        let bytes = text.as_bytes();
        let stars = bytes.iter().filter(|&&b| b == b'*').count();
        let kind = if !text.is_empty() && bytes.iter().all(|&b| b == b'*') {
            Kind::Any
        } else if !bytes.iter().any(|&b| wild(b)) {
            Kind::Exact
        } else if stars == 1 && !text.contains('?') && text.ends_with('*') {
            Kind::Prefix
        } else if stars == 1 && !text.contains('?') && text.starts_with('*') {
            Kind::Suffix
        } else {
            Kind::General
        };
        Glob {
            text: text.into(),
            kind,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern has no wildcard: it matches exactly one string.
    pub(crate) fn is_literal(&self) -> bool {
        self.kind == Kind::Exact
    }

    /// The pattern matches every string.
    pub(crate) fn is_any(&self) -> bool {
        self.kind == Kind::Any
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        let t = &*self.text;
        match self.kind {
            Kind::Any => true,
            Kind::Exact => t == s,
            Kind::Prefix => s.starts_with(&t[..t.len() - 1]),
            Kind::Suffix => s.ends_with(&t[1..]),
            Kind::General => wild_match(t.as_bytes(), s.as_bytes()),
        }
    }

    /// Whether every string `other` matches, this matches too (as far as
    /// can be told cheaply: `*`, equal text, or `other` is a literal this
    /// matches). Used by the shadowing check, where a false "yes" would
    /// reject a valid policy, so it errs towards "no".
    pub(crate) fn covers(&self, other: &Glob) -> bool {
        self.is_any()
            || self.text == other.text
            || (other.is_literal() && self.matches(&other.text))
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// Length of the UTF-8 sequence a leading byte starts (1 for a stray
/// continuation byte, which valid `&str` input never has).
fn utf8_len(b: u8) -> usize {
    match b {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Iterative `*`/`?` matching with single-star backtracking: linear in
/// practice, O(pattern × text) worst case, no recursion. `?` consumes one
/// UTF-8 character; literal bytes compare bytewise (valid UTF-8 on both
/// sides keeps that aligned to characters).
fn wild_match(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'?') => {
                pi += 1;
                ti += utf8_len(t[ti]);
            }
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    let next = st + utf8_len(t[st]);
                    star = Some((sp, next));
                    pi = sp + 1;
                    ti = next;
                }
                None => return false,
            },
        }
    }
    while p.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi == p.len() && ti == t.len()
}

/// A dotted object-name pattern (`pg_shadow`, `public.citizens`, `hr.*`,
/// `*.secret_*`): one [`Glob`] per part.
///
/// A name matches when, compared from the right over the shorter of the
/// two, every part matches (so the bare pattern `accounts` covers every
/// schema's `accounts`). When the statement's name has fewer parts than the
/// pattern (an unqualified reference, whose schema depends on the session's
/// search_path), the missing parts are assumed to match only if they are
/// all `*`, or if every compared pattern part is a literal: `public.citizens`
/// matches bare `citizens`, `*.secret_*` matches bare `secret_x`, but
/// `pg_catalog.*` does not match every bare name.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct NamePattern {
    text: Box<str>,
    parts: Box<[Glob]>,
}

impl NamePattern {
    /// Parses `text`: parts split on `.` outside double quotes; unquoted
    /// parts are ASCII lower-cased (as statement names are), quoted ones
    /// kept as written without the quotes.
    pub(crate) fn new(text: &str) -> NamePattern {
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for c in text.chars() {
            match c {
                '"' => quoted = !quoted,
                '.' if !quoted => parts.push(Glob::new(&std::mem::take(&mut cur))),
                c if quoted => cur.push(c),
                c => cur.push(c.to_ascii_lowercase()),
            }
        }
        parts.push(Glob::new(&cur));
        let text = parts.iter().map(Glob::as_str).collect::<Vec<_>>().join(".");
        NamePattern {
            text: text.into(),
            parts: parts.into(),
        }
    }

    /// A column pattern's parts: the optional table qualifier (all parts
    /// but the last) and the column glob (the last part).
    pub(crate) fn split_column(&self) -> (Option<NamePattern>, Glob) {
        match self.parts.split_last() {
            Some((column, [])) => (None, column.clone()),
            Some((column, table)) => {
                let text = table.iter().map(Glob::as_str).collect::<Vec<_>>().join(".");
                let qualifier = NamePattern {
                    text: text.into(),
                    parts: table.into(),
                };
                (Some(qualifier), column.clone())
            }
            None => (None, Glob::new("")),
        }
    }

    /// The normalised pattern text (lower-cased, quotes removed).
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Some part is empty (`a..b`, a trailing dot): a typo, never a name.
    pub(crate) fn has_empty_part(&self) -> bool {
        self.parts.iter().any(|p| p.as_str().is_empty())
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        let mut names = name.rsplit('.');
        for (i, p) in self.parts.iter().rev().enumerate() {
            match names.next() {
                Some(n) if p.matches(n) => {}
                Some(_) => return false,
                None => return self.short_name_ok(i),
            }
        }
        true
    }

    /// [`NamePattern::matches`] on a name already split into its parts
    /// (the evaluator splits each statement name once, not once per rule).
    pub(crate) fn matches_parts(&self, name: &[&str]) -> bool {
        let n = name.len();
        for (i, p) in self.parts.iter().rev().enumerate() {
            if i == n {
                return self.short_name_ok(n);
            }
            if !p.matches(name[n - 1 - i]) {
                return false;
            }
        }
        true
    }

    /// Whether a name with `k` parts (fewer than the pattern's) may match:
    /// the parts beyond it are all `*`, or the compared ones are literal.
    fn short_name_ok(&self, k: usize) -> bool {
        let (extra, compared) = self.parts.split_at(self.parts.len() - k);
        extra.iter().all(Glob::is_any) || compared.iter().all(Glob::is_literal)
    }

    /// Can a `k`-part name match at all (for `k` below the part count)?
    /// Only if the missing parts may be assumed (see the type docs); the
    /// compared parts can always be satisfied by some name.
    fn admits_short(&self, k: usize) -> bool {
        self.short_name_ok(k)
    }

    /// Whether every name `other` matches, this matches too (conservative:
    /// see [`Glob::covers`]).
    pub(crate) fn covers(&self, other: &NamePattern) -> bool {
        if self.text == other.text || self.parts.iter().all(Glob::is_any) {
            return true;
        }
        let (a, b) = (&self.parts, &other.parts);
        if a.len() > b.len() {
            return false;
        }
        // Names with at least as many parts as `other`: right-aligned parts.
        if !a.iter().rev().zip(b.iter().rev()).all(|(x, y)| x.covers(y)) {
            return false;
        }
        // Shorter names `other` admits must be admitted here too.
        (1..a.len()).all(|k| !other.admits_short(k) || self.short_name_ok(k))
    }
}

impl fmt::Debug for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("app", "app", true),
            ("app", "app2", false),
            ("dba_*", "dba_alice", true),
            ("dba_*", "dba_", true),
            ("dba_*", "xdba_", false),
            ("*_ro", "report_ro", true),
            ("*_ro", "report_rw", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("*secret*", "my_secret_t", true),
            ("s*e*", "see", true),
            ("**", "x", true),
            ("", "", true),
            ("", "x", false),
            ("x*", "", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(Glob::new(p).matches(s), *want, "{p} ~ {s}");
        }
    }

    #[test]
    fn names() {
        let cases: &[(&str, &str, bool)] = &[
            ("pg_shadow", "pg_shadow", true),
            ("pg_shadow", "pg_catalog.pg_shadow", true),
            ("public.citizens", "citizens", true),
            ("public.citizens", "public.citizens", true),
            ("public.citizens", "hr.citizens", false),
            ("hr.*", "hr.salaries", true),
            ("hr.*", "db.hr.salaries", true),
            ("hr.*", "salaries", false),
            ("hr.*", "public.salaries", false),
            ("pg_catalog.*", "users", false),
            ("pg_catalog.*", "pg_catalog.pg_class", true),
            ("*.secret_*", "secret_keys", true),
            ("*.secret_*", "vault.secret_keys", true),
            ("*.secret_*", "vault.keys", false),
            ("*", "a.b.c", true),
            ("Public.Citizens", "public.citizens", true),
            ("\"Hr\".t", "Hr.t", true),
            ("\"Hr\".t", "hr.t", false),
            ("db.public.t*", "public.tx", false),
            ("*.*.t*", "tx", true),
            ("dblink*", "public.dblink_exec", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(NamePattern::new(p).matches(n), *want, "{p} ~ {n}");
            let parts: Vec<&str> = n.split('.').collect();
            assert_eq!(
                NamePattern::new(p).matches_parts(&parts),
                *want,
                "{p} ~ {n} (split)"
            );
        }
        assert_eq!(NamePattern::new("A.\"B.c\"").as_str(), "a.B.c");
        assert!(NamePattern::new("a..b").has_empty_part());
    }

    #[test]
    fn coverage() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "hr.x", true),
            ("*.*", "x", true),
            ("t", "t", true),
            ("t", "public.t", true),
            ("t*", "public.t1", true),
            ("public.t", "t", false),
            ("hr.*", "hr.salaries", false),
            ("hr.*", "hr.s*", true),
            ("hr.s*", "hr.*", false),
            ("*.t", "hr.t", true),
            ("hr.t", "hr.t", true),
            ("hr.t", "x.hr.t", true),
            ("x.hr.t", "hr.t", false),
            ("secret_*", "secret_a", true),
            ("secret_a", "secret_*", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                NamePattern::new(a).covers(&NamePattern::new(b)),
                *want,
                "{a} covers {b}"
            );
        }
        assert!(Glob::new("dba_*").covers(&Glob::new("dba_x")));
        assert!(!Glob::new("dba_*").covers(&Glob::new("dba*")));
        assert!(Glob::new("*").covers(&Glob::new("dba*")));
    }
}
