//! Reading policy TOML with positions: every value a policy file holds is
//! read through [`Reader`], which knows the file and turns each problem into
//! a [`Diagnostic`] with a line number, so `danxia check` can say where to
//! look. Owns the generic checks (types, unknown keys with a suggestion,
//! empty lists); what the keys mean is [`crate::compile`]'s business.
//!
//! The files are parsed with `toml_edit`'s span-keeping document rather
//! than serde: serde stops at the first unknown key, and a security officer
//! editing a policy wants every mistake in one run.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::error::{Diagnostic, Severity};

/// One file's text, with what is needed to turn byte offsets into lines.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    line_starts: Vec<usize>,
}

impl Source {
    pub(crate) fn new(path: &Path, text: &str) -> Source {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            path: path.to_path_buf(),
            line_starts,
        }
    }

    /// 1-based line of a byte offset.
    pub(crate) fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    pub(crate) fn line_of(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| self.line(s.start))
    }
}

/// Stack that must remain for toml_edit to parse on the caller's stack;
/// below it the parse gets a segment of [`TOML_PARSE_STACK_SIZE`]. toml_edit
/// stops nesting at 80 levels, but nested inline tables cost several KiB of
/// stack per level: 100 000 `{a = ` overflowed a 256 KiB thread and passed
/// on 512 KiB (release; debug frames are larger).
const TOML_PARSE_RED_ZONE: usize = if cfg!(debug_assertions) {
    4 << 20
} else {
    1 << 20
};
/// Size of the stack segment a parse gets when the caller's is short.
const TOML_PARSE_STACK_SIZE: usize = if cfg!(debug_assertions) {
    8 << 20
} else {
    2 << 20
};

/// Parses `text`, or reports the syntax error (with its line) into `diags`.
/// Runs on a larger stack when the caller's is short (see
/// [`TOML_PARSE_RED_ZONE`]), so a hostile nesting is a syntax error on any
/// thread.
pub(crate) fn parse_document(
    src: &Source,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<ImDocument<String>> {
    let parsed = stacker::maybe_grow(TOML_PARSE_RED_ZONE, TOML_PARSE_STACK_SIZE, || {
        ImDocument::parse(text.to_string())
    });
    match parsed {
        Ok(doc) => Some(doc),
        Err(e) => {
            let message = e.message().trim().to_string();
            diags.push(Diagnostic {
                severity: Severity::Error,
                file: Some(src.path.clone()),
                line: src.line_of(e.span()),
                rule_id: None,
                message: format!("TOML syntax error: {message}"),
            });
            None
        }
    }
}

/// The closest of `known` to `word`, when close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), k))
        .filter(|(d, k)| *d <= (k.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// `", did you mean `x`?"` or nothing.
pub(crate) fn suggestion<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, known)
        .map(|k| format!(", did you mean `{k}`?"))
        .unwrap_or_default()
}

/// "unknown {what} `{word}`" with the likeliest meant word, or else the
/// whole list of valid ones.
pub(crate) fn unknown(what: &str, word: &str, known: &[&str]) -> String {
    match did_you_mean(word, known.iter().copied()) {
        Some(k) => format!("unknown {what} `{word}`, did you mean `{k}`?"),
        None => format!("unknown {what} `{word}` (use one of: {})", known.join(", ")),
    }
}

/// A string with the line it was written on.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) text: String,
    pub(crate) line: Option<usize>,
}

/// Reads values from one file, reporting problems against it and (while
/// inside a rule) that rule's id.
pub(crate) struct Reader<'a> {
    pub(crate) src: &'a Source,
    pub(crate) diags: &'a mut Vec<Diagnostic>,
    pub(crate) rule: Option<String>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(src: &'a Source, diags: &'a mut Vec<Diagnostic>) -> Reader<'a> {
        Reader {
            src,
            diags,
            rule: None,
        }
    }

    pub(crate) fn push(&mut self, severity: Severity, line: Option<usize>, message: String) {
        self.diags.push(Diagnostic {
            severity,
            file: Some(self.src.path.clone()),
            line,
            rule_id: self.rule.clone(),
            message,
        });
    }

    pub(crate) fn error(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.push(Severity::Error, line, message.into());
    }

    /// Line of `key` in `table` (the key itself, else its value).
    pub(crate) fn key_line(&self, table: &dyn TableLike, key: &str) -> Option<usize> {
        let span = table
            .key(key)
            .and_then(|k| k.span())
            .or_else(|| table.get(key).and_then(Item::span));
        self.src.line_of(span)
    }

    /// Reports every key of `table` not in `known`, with a suggestion.
    pub(crate) fn unknown_keys(&mut self, table: &dyn TableLike, known: &[&str]) {
        for (key, _) in table.iter() {
            if !known.contains(&key) {
                let line = self.key_line(table, key);
                let hint = suggestion(key, known.iter().copied());
                self.error(line, format!("unknown key `{key}`{hint}"));
            }
        }
    }

    fn type_error(&mut self, table: &dyn TableLike, key: &str, want: &str, item: &Item) {
        let got = match item {
            Item::Value(v) => v.type_name(),
            Item::Table(_) => "table",
            Item::ArrayOfTables(_) => "array of tables",
            Item::None => "nothing",
        };
        let line = self.key_line(table, key);
        self.error(line, format!("`{key}` must be {want}, not {got}"));
    }

    pub(crate) fn string(&mut self, table: &dyn TableLike, key: &str) -> Option<Located> {
        let item = table.get(key)?;
        match item.as_value().and_then(Value::as_str) {
            Some(s) => Some(Located {
                text: s.to_string(),
                line: self.key_line(table, key),
            }),
            None => {
                self.type_error(table, key, "a string", item);
                None
            }
        }
    }

    pub(crate) fn integer(
        &mut self,
        table: &dyn TableLike,
        key: &str,
    ) -> Option<(i64, Option<usize>)> {
        let item = table.get(key)?;
        match item.as_value().and_then(Value::as_integer) {
            Some(i) => Some((i, self.key_line(table, key))),
            None => {
                self.type_error(table, key, "an integer", item);
                None
            }
        }
    }

    /// The data file's `version = N` key, which must equal `expected`;
    /// `file_kind` names the file in the message ("allowlist").
    pub(crate) fn version(&mut self, root: &dyn TableLike, expected: i64, file_kind: &str) {
        match self.integer(root, "version") {
            Some((v, _)) if v == expected => {}
            Some((v, line)) => self.error(
                line,
                format!(
                    "unsupported {file_kind} version {v} (this danxia reads version {expected})"
                ),
            ),
            None if root.get("version").is_none() => {
                self.error(Some(1), format!("missing `version = {expected}`"))
            }
            None => {}
        }
    }

    /// A non-empty list of strings, each with its own line.
    pub(crate) fn string_list(&mut self, table: &dyn TableLike, key: &str) -> Option<Vec<Located>> {
        let item = table.get(key)?;
        let line = self.key_line(table, key);
        let Some(array) = item.as_value().and_then(Value::as_array) else {
            self.type_error(table, key, "a list of strings", item);
            return None;
        };
        if array.is_empty() {
            self.error(
                line,
                format!("`{key}` is an empty list, which matches nothing; remove the key to match anything"),
            );
            return None;
        }
        let mut out = Vec::with_capacity(array.len());
        for v in array.iter() {
            match v.as_str() {
                Some(s) => out.push(Located {
                    text: s.to_string(),
                    line: self.src.line_of(v.span()).or(line),
                }),
                None => {
                    let what = v.type_name();
                    let vline = self.src.line_of(v.span()).or(line);
                    self.error(
                        vline,
                        format!("`{key}` must be a list of strings, but holds a {what}"),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_offsets() {
        let text = "a = 1\nb = 2\n\nc = 3";
        let src = Source::new(Path::new("x.toml"), text);
        assert_eq!(src.line(0), 1);
        assert_eq!(src.line(5), 1);
        assert_eq!(src.line(6), 2);
        assert_eq!(src.line(12), 3);
        assert_eq!(src.line(13), 4);
        assert_eq!(src.line(text.len()), 4);
    }

    #[test]
    fn suggestions() {
        let known = ["tables", "functions", "users"];
        assert_eq!(did_you_mean("tabels", known), Some("tables"));
        assert_eq!(did_you_mean("user", known), Some("users"));
        assert_eq!(did_you_mean("fnctions", known), Some("functions"));
        assert_eq!(did_you_mean("colour", known), None);
    }
}
