//! The JSON path syntax of API scope files (`fields`, `mask`, `records`):
//! `$` root, `.name` / `["name"]` member, `[*]` any array element, `.*` any
//! member, `..name` (or `..["name"]`, `..*`) a member at any depth below.
//! Owns parsing and the one-step matching relation the field-scope
//! automaton ([`super::fields`]) and the reference matcher in the tests are
//! built from. Never evaluates a path against a document.

use std::fmt;

/// Longest path text accepted (a path is a handful of keys; a megabyte of
/// brackets is a mistake or an attack on `danxia check`).
pub(crate) const MAX_PATH_BYTES: usize = 1024;
/// Most steps in one path.
pub(crate) const MAX_PATH_STEPS: usize = 64;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// `.name` / `["name"]`.
    Key(Box<str>),
    /// `.*`: any member of an object.
    AnyKey,
    /// `[*]`: any element of an array.
    AnyIndex,
    /// `..name` (Some) or `..*` (None): after any number of members and
    /// elements, a member with that name (any member).
    Descend(Option<Box<str>>),
}

/// One segment of a concrete document path, as the rewriter walks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Symbol<'a> {
    Key(&'a str),
    /// A member whose name no step of the paths at hand mentions (the
    /// automaton's "any other key").
    OtherKey,
    Index,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonPath {
    pub(crate) steps: Vec<Step>,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for s in &self.steps {
            match s {
                Step::Key(k) if is_plain(k) => write!(f, ".{k}")?,
                Step::Key(k) => write!(f, "[{}]", quote(k))?,
                Step::AnyKey => f.write_str(".*")?,
                Step::AnyIndex => f.write_str("[*]")?,
                Step::Descend(None) => f.write_str("..*")?,
                Step::Descend(Some(k)) if is_plain(k) => write!(f, "..{k}")?,
                Step::Descend(Some(k)) => write!(f, "..[{}]", quote(k))?,
            }
        }
        Ok(())
    }
}

/// A key that can be written after a dot.
fn is_plain(k: &str) -> bool {
    !k.is_empty()
        && k != "*"
        && !k
            .chars()
            .any(|c| matches!(c, '.' | '[' | ']' | '"' | '\'' | '\\') || c.is_whitespace())
}

fn quote(k: &str) -> String {
    let mut s = String::with_capacity(k.len() + 2);
    s.push('"');
    for c in k.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

const SYNTAX_HINT: &str =
    "expected `$` followed by `.name`, `[\"name\"]`, `[*]`, `.*` or `..name`, e.g. `$.items[*].name`";

impl JsonPath {
    /// Parses `text`; the error says what is wrong and what is expected.
    pub(crate) fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| format!("bad JSON path `{text}`: {why}; {SYNTAX_HINT}");
        if text.len() > MAX_PATH_BYTES {
            return Err(format!(
                "JSON path longer than {MAX_PATH_BYTES} bytes; {SYNTAX_HINT}"
            ));
        }
        let Some(rest) = text.trim().strip_prefix('$') else {
            return Err(bad("it must start with `$`"));
        };
        let mut chars = rest.char_indices().peekable();
        let mut steps = Vec::new();
        let src = rest;
        while let Some((i, c)) = chars.next() {
            let step = match c {
                '.' => {
                    let descend = chars.peek().is_some_and(|&(_, c)| c == '.');
                    if descend {
                        chars.next();
                    }
                    match chars.peek().map(|&(_, c)| c) {
                        Some('*') => {
                            chars.next();
                            if descend {
                                Step::Descend(None)
                            } else {
                                Step::AnyKey
                            }
                        }
                        Some('[') if descend => {
                            chars.next();
                            match bracket(&mut chars).map_err(|w| bad(&w))? {
                                Step::Key(k) => Step::Descend(Some(k)),
                                _ => return Err(bad("`..[*]` is not supported; use `..name`")),
                            }
                        }
                        _ => {
                            let start = i + if descend { 2 } else { 1 };
                            let mut end = start;
                            while let Some(&(j, c)) = chars.peek() {
                                if c == '.' || c == '[' {
                                    break;
                                }
                                if c == ']' || c == '"' || c == '\'' || c.is_whitespace() {
                                    return Err(bad(&format!(
                                        "unexpected `{c}` in a name (quote such names: `[\"a b\"]`)"
                                    )));
                                }
                                end = j + c.len_utf8();
                                chars.next();
                            }
                            if end == start {
                                return Err(bad("a `.` must be followed by a name or `*`"));
                            }
                            let name: Box<str> = src[start..end].into();
                            if descend {
                                Step::Descend(Some(name))
                            } else {
                                Step::Key(name)
                            }
                        }
                    }
                }
                '[' => bracket(&mut chars).map_err(|w| bad(&w))?,
                other => return Err(bad(&format!("unexpected `{other}`"))),
            };
            steps.push(step);
            if steps.len() > MAX_PATH_STEPS {
                return Err(bad(&format!("more than {MAX_PATH_STEPS} steps")));
            }
        }
        Ok(JsonPath { steps })
    }
}

/// After `[`: `*]` or a quoted name and `]`.
fn bracket(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> Result<Step, String> {
    match chars.next() {
        Some((_, '*')) => match chars.next() {
            Some((_, ']')) => Ok(Step::AnyIndex),
            _ => Err("`[*` must be closed with `]`".into()),
        },
        Some((_, q @ ('"' | '\''))) => {
            let mut name = String::new();
            loop {
                match chars.next() {
                    None => return Err("unclosed quoted name".into()),
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => name.push(c),
                        None => return Err("unclosed quoted name".into()),
                    },
                    Some((_, c)) if c == q => break,
                    Some((_, c)) => name.push(c),
                }
            }
            match chars.next() {
                Some((_, ']')) => Ok(Step::Key(name.into())),
                _ => Err("a quoted name must be followed by `]`".into()),
            }
        }
        Some((_, c)) if c.is_ascii_digit() => Err(
            "array indexes are not supported (records are counted, not picked); use `[*]`".into(),
        ),
        _ => Err("`[` must be followed by `*]` or a quoted name".into()),
    }
}

/// What matching step `step` (not yet consumed) against `sym` does: the
/// positions (relative: 0 = stay on this step, 1 = step consumed) reached.
/// Returns (stay, advance).
pub(crate) fn step_on(step: &Step, sym: Symbol<'_>) -> (bool, bool) {
    match (step, sym) {
        (Step::Key(k), Symbol::Key(s)) => (false, **k == *s),
        (Step::AnyKey, Symbol::Key(_) | Symbol::OtherKey) => (false, true),
        (Step::AnyIndex, Symbol::Index) => (false, true),
        (Step::Descend(None), Symbol::Key(_) | Symbol::OtherKey) => (true, true),
        (Step::Descend(Some(k)), Symbol::Key(s)) => (true, **k == *s),
        (Step::Descend(_), Symbol::Index | Symbol::OtherKey) => (true, false),
        _ => (false, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_paths() {
        for (text, printed) in [
            ("$", "$"),
            ("$.items[*].name", "$.items[*].name"),
            ("$[\"a b\"].c", "$[\"a b\"].c"),
            ("$['x.y']", "$[\"x.y\"]"),
            ("$..phone", "$..phone"),
            ("$..[\"手 机\"]", "$..[\"手 机\"]"),
            ("$.*.id", "$.*.id"),
            ("$..*", "$..*"),
            ("$[*][*]", "$[*][*]"),
            ("$.姓名", "$.姓名"),
        ] {
            let p = JsonPath::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(p.to_string(), printed);
            assert_eq!(JsonPath::parse(&p.to_string()).unwrap(), p);
        }
    }

    #[test]
    fn rejects_bad_paths_with_a_hint() {
        for text in [
            "", "items", "$.", "$..", "$[0]", "$[", "$[*", "$[\"a\"", "$.a b", "$.a]", "$x",
            "$..[*]",
        ] {
            let e = JsonPath::parse(text).unwrap_err();
            assert!(e.contains("expected `$`"), "{text}: {e}");
        }
    }
}
