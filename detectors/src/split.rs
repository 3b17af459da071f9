//! Splitting a multi-statement string (a simple-protocol Query may carry
//! many) into its statements. It owns only where one statement ends: at a
//! top-level `;` outside quotes, comments, dollar bodies and
//! `BEGIN ATOMIC … END` function bodies. It must never drop or reorder
//! text that carries meaning: every significant token of the input lands in
//! exactly one returned slice, because a statement the splitter hid would
//! be a statement the firewall never judged.

use crate::lexer::{is_space, LexOptions, Lexer, Token, TokenKind};

/// Splits `sql` at top-level semicolons. Each slice is trimmed of
/// whitespace; slices holding only comments and whitespace are dropped.
/// A slice keeps its comments (they may carry application tags), and the
/// last slice may lack a terminating `;`. A slice that ends in a line
/// comment keeps the line break after it: without it, the statement would
/// look truncated by that comment (see [`crate::fingerprint::normalize`]).
pub fn split_statements(sql: &str, opts: LexOptions) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut state = StatementState::default();
    for tok in Lexer::new(sql, opts) {
        if tok.kind == TokenKind::Semicolon && state.atomic_depth == 0 {
            push_trimmed(&mut out, sql, start, tok.start, &state);
            start = tok.end();
            state = StatementState::default();
        } else {
            state.observe(&tok);
        }
    }
    push_trimmed(&mut out, sql, start, sql.len(), &state);
    out
}

/// What the splitter tracks inside one statement.
#[derive(Debug, Default)]
struct StatementState {
    /// Any token besides whitespace and comments seen.
    significant: bool,
    /// The statement began with CREATE (only those can hold BEGIN ATOMIC).
    is_create: bool,
    /// The previous significant token was the word BEGIN.
    after_begin: bool,
    /// Open `BEGIN ATOMIC` bodies plus `CASE` expressions inside them, each
    /// closed by `END`. Semicolons inside do not end the statement.
    atomic_depth: u32,
    /// Where the last non-whitespace token ends, if it is a line comment.
    line_comment_end: Option<usize>,
}

impl StatementState {
    fn observe(&mut self, tok: &Token<'_>) {
        match tok.kind {
            TokenKind::Whitespace => {}
            TokenKind::Comment if tok.text.starts_with("--") || tok.text.starts_with('#') => {
                self.line_comment_end = Some(tok.end());
            }
            _ => self.line_comment_end = None,
        }
        if !tok.kind.is_significant() {
            return;
        }
        if !self.significant {
            self.significant = true;
            self.is_create = tok.is_word("create");
        }
        if self.is_create {
            let opens = (self.after_begin && tok.is_word("atomic"))
                || (self.atomic_depth > 0 && tok.is_word("case"));
            if opens {
                self.atomic_depth += 1;
            } else if self.atomic_depth > 0 && tok.is_word("end") {
                self.atomic_depth -= 1;
            }
            self.after_begin = tok.is_word("begin");
        }
    }
}

fn push_trimmed<'a>(
    out: &mut Vec<&'a str>,
    sql: &'a str,
    start: usize,
    end: usize,
    state: &StatementState,
) {
    if !state.significant {
        return;
    }
    let Some(s) = sql.get(start..end) else {
        return;
    };
    let s = s.trim_matches(|c: char| c.is_ascii() && is_space(c as u8));
    if s.is_empty() {
        return;
    }
    let at = s.as_ptr() as usize - sql.as_ptr() as usize;
    let mut stop = at + s.len();
    // Keep the line break that ends a trailing line comment.
    if state.line_comment_end == Some(stop)
        && stop < end
        && matches!(sql.as_bytes().get(stop), Some(b'\n' | b'\r'))
    {
        stop += 1;
    }
    if let Some(s) = sql.get(at..stop) {
        out.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lexer::test_options::{MY, PG, PG_OLD};

    #[test]
    fn split_table() {
        let cases: &[(&str, LexOptions, &[&str])] = &[
            ("select 1", PG, &["select 1"]),
            ("select 1;", PG, &["select 1"]),
            ("  select 1 ;\n select 2;  ", PG, &["select 1", "select 2"]),
            (";;select 1;;;select 2;;", PG, &["select 1", "select 2"]),
            ("", PG, &[]),
            (" ; ;\n", PG, &[]),
            ("-- c1\n; /* c2 */ ;", PG, &[]),
            ("/* tag */ select 1; -- trailing", PG, &["/* tag */ select 1"]),
            ("select ';'; select 2", PG, &["select ';'", "select 2"]),
            ("select 'a'';b'; select 2", PG, &["select 'a'';b'", "select 2"]),
            ("select E'\\';'; select 2", PG, &["select E'\\';'", "select 2"]),
            // Standard strings: '\' is complete, so the ; after it splits.
            ("select '\\'; select 2", PG, &["select '\\'", "select 2"]),
            // standard_conforming_strings=off: \' escapes, the literal continues.
            ("select '\\'; select 2'", PG_OLD, &["select '\\'; select 2'"]),
            ("select \"a;b\" from t; select 2", PG, &["select \"a;b\" from t", "select 2"]),
            ("select 1 -- ; not a split\n; select 2", PG, &["select 1 -- ; not a split\n", "select 2"]),
            ("select 1 -- c\r\n", PG, &["select 1 -- c\r"]),
            ("select 1 -- c", PG, &["select 1 -- c"]),
            ("select 1 -- c\n  /* d */ ", PG, &["select 1 -- c\n  /* d */"]),
            ("select /* ; /* ; */ ; */ 1; select 2", PG, &["select /* ; /* ; */ ; */ 1", "select 2"]),
            (
                "do $$ begin perform 1; end $$; select 2",
                PG,
                &["do $$ begin perform 1; end $$", "select 2"],
            ),
            (
                "create function f() returns int as $body$ select 1; $x$ ; $body$ language sql; select 2",
                PG,
                &["create function f() returns int as $body$ select 1; $x$ ; $body$ language sql", "select 2"],
            ),
            (
                "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END; SELECT 3; END; SELECT 4",
                PG,
                &[
                    "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END; SELECT 3; END",
                    "SELECT 4",
                ],
            ),
            (
                "create procedure p() begin atomic insert into t values (1); end; call p()",
                PG,
                &["create procedure p() begin atomic insert into t values (1); end", "call p()"],
            ),
            // BEGIN outside CREATE is a transaction start.
            ("begin; select 1; end;", PG, &["begin", "select 1", "end"]),
            ("select 'unterminated; select 2", PG, &["select 'unterminated; select 2"]),
            ("select 1 /* unterminated; select 2", PG, &["select 1 /* unterminated; select 2"]),
            ("select $$unterminated; select 2", PG, &["select $$unterminated; select 2"]),
            // MySQL
            ("select 1 # ; c\n; select 2", MY, &["select 1 # ; c\n", "select 2"]),
            ("select 'a\\';b'; select `x;y`", MY, &["select 'a\\';b'", "select `x;y`"]),
            ("select \"a;b\"; select 2", MY, &["select \"a;b\"", "select 2"]),
        ];
        for (sql, opts, want) in cases {
            assert_eq!(&split_statements(sql, *opts), want, "splitting {sql:?}");
        }
    }

    #[test]
    fn slices_borrow_the_input() {
        let sql = "select 1; select 2";
        for s in split_statements(sql, PG) {
            let off = s.as_ptr() as usize - sql.as_ptr() as usize;
            assert_eq!(&sql[off..off + s.len()], s);
        }
    }
}
