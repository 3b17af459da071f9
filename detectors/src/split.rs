//! Splitting a multi-statement string (a simple-protocol Query, or a MySQL
//! COM_QUERY with multi-statements, may carry many) into its statements.
//! It owns only where one statement ends: at a top-level `;` outside
//! quotes, comments, dollar bodies, PostgreSQL `BEGIN ATOMIC … END`
//! function bodies, MySQL compound-statement bodies, and MySQL executable
//! comments whose reading depends on the server's version. It must never
//! drop or reorder text that carries meaning: every significant token of
//! the input lands in exactly one returned slice, because a statement the
//! splitter hid would be a statement the firewall never judged.

use crate::lexer::{is_space, Dialect, LexOptions, Lexer, Token, TokenKind};

/// Splits `sql` at top-level semicolons. Each slice is trimmed of
/// whitespace; slices holding only comments and whitespace are dropped.
/// A slice keeps its comments (they may carry application tags), and the
/// last slice may lack a terminating `;`. A slice that ends in a line
/// comment keeps the line break after it: without it, the statement would
/// look truncated by that comment (see [`crate::fingerprint::normalize`]).
///
/// A `;` does not split:
/// - inside a PostgreSQL `CREATE … BEGIN ATOMIC … END` body;
/// - inside a MySQL compound statement, which the server parses whole:
///   the body of `CREATE [DEFINER = …] PROCEDURE | FUNCTION | TRIGGER |
///   EVENT`, and MariaDB's stand-alone `BEGIN NOT ATOMIC`, `IF`, `CASE`,
///   `LOOP`, `WHILE`, `REPEAT` (also labelled, `l: LOOP`). Blocks nest:
///   `BEGIN`, `CASE`, and `IF` / `LOOP` / `WHILE` / `REPEAT` at the start of
///   a statement open one, `END [IF | CASE | LOOP | WHILE | REPEAT]` closes
///   it;
/// - in MySQL, where a version-dependent executable comment (`/*!NNNNN`,
///   `/*M!`) may still be open: to one server the `;` is code, to another
///   comment text, so the text stays one statement and is judged whole.
pub fn split_statements(sql: &str, opts: LexOptions) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut state = StatementState::new(opts.dialect);
    let mut lexer = Lexer::new(sql, opts);
    while let Some(tok) = lexer.next() {
        let ends = tok.kind == TokenKind::Semicolon
            && state.atomic_depth == 0
            && state.block_depth == 0
            && !lexer.version_dependent_at(tok.start);
        if ends {
            push_trimmed(&mut out, sql, start, tok.start, &state);
            start = tok.end();
            state = StatementState::new(opts.dialect);
        } else {
            state.observe(&tok);
        }
    }
    push_trimmed(&mut out, sql, start, sql.len(), &state);
    out
}

/// Words that name a MySQL stored program, whose body is a compound
/// statement.
const MYSQL_PROGRAMS: &[&str] = &["procedure", "function", "trigger", "event"];
/// Words that name another object after MySQL's `CREATE`: no body follows.
const MYSQL_OTHER_OBJECTS: &[&str] = &[
    "table",
    "view",
    "index",
    "database",
    "schema",
    "user",
    "role",
    "server",
    "tablespace",
    "logfile",
    "resource",
    "spatial",
    "sequence",
    "package",
];
/// Words after which a MySQL compound body starts a statement, so that an
/// `IF`, `LOOP`, `WHILE` or `REPEAT` there opens a block (elsewhere `IF(`
/// and `REPEAT(` are functions and `IF EXISTS` a clause). `THEN` and
/// `ELSE` count only outside CASE expressions; `ROW` ends a trigger header
/// (`FOR EACH ROW IF …`).
const MYSQL_STATEMENT_STARTERS: &[&str] = &["begin", "do", "loop", "repeat", "row"];
/// Block-opening words that need a statement start (CASE opens anywhere).
const MYSQL_BLOCKS: &[&str] = &["if", "loop", "while", "repeat"];
/// Deepest MySQL block nesting whose kinds are remembered; deeper blocks
/// are still counted.
const MAX_TRACKED_BLOCKS: usize = 64;

/// How a MySQL statement's first tokens may still make it compound.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Opening {
    #[default]
    Settled,
    /// `BEGIN` seen: `NOT ATOMIC` must follow (MariaDB).
    Begin,
    /// `BEGIN NOT` seen.
    BeginNot,
    /// A word seen: `:` must follow (a label).
    Label,
}

/// What the splitter tracks inside one statement.
#[derive(Debug, Default)]
struct StatementState {
    dialect: Dialect,
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
    /// MySQL: still between CREATE and the object kind.
    create_header: bool,
    /// MySQL: a compound statement or a stored-program definition, whose
    /// blocks are tracked.
    compound: bool,
    opening: Opening,
    /// MySQL: open compound blocks, CASE expressions included. Semicolons
    /// inside do not end the statement.
    block_depth: u32,
    /// MySQL: whether each open block (innermost last, up to
    /// [`MAX_TRACKED_BLOCKS`]) is a CASE expression, whose THEN and ELSE
    /// are followed by expressions rather than statements.
    case_expr: Vec<bool>,
    /// MySQL: the next token starts a statement inside a compound body.
    statement_start: bool,
    /// MySQL: the previous significant token was END (so IF, CASE, LOOP …
    /// after it closes rather than opens).
    after_end: bool,
    /// MySQL: the previous significant token was CURRENT_USER (whose `()`
    /// in `DEFINER = CURRENT_USER()` does not end a CREATE header).
    after_current_user: bool,
}

impl StatementState {
    fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            ..Self::default()
        }
    }

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
        let first = !self.significant;
        if first {
            self.significant = true;
            self.is_create = tok.is_word("create");
        }
        match self.dialect {
            Dialect::Postgres => self.observe_postgres(tok),
            Dialect::MySql => self.observe_mysql(tok, first),
        }
    }

    /// `CREATE … BEGIN ATOMIC … END`.
    fn observe_postgres(&mut self, tok: &Token<'_>) {
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

    /// Stored-program bodies and MariaDB's stand-alone compound statements.
    fn observe_mysql(&mut self, tok: &Token<'_>, first: bool) {
        if first {
            self.mysql_opening(tok);
        } else {
            self.mysql_continue_opening(tok);
        }
        if self.compound {
            self.mysql_block(tok);
        }
        self.after_current_user = tok.is_word("current_user");
    }

    fn mysql_opening(&mut self, tok: &Token<'_>) {
        if self.is_create {
            self.create_header = true;
        } else if tok.is_word("case") || MYSQL_BLOCKS.iter().any(|w| tok.is_word(w)) {
            self.compound = true;
            self.statement_start = true;
        } else if tok.is_word("begin") {
            self.opening = Opening::Begin;
        } else if tok.kind == TokenKind::Word {
            self.opening = Opening::Label;
        }
    }

    fn mysql_continue_opening(&mut self, tok: &Token<'_>) {
        if self.create_header {
            if MYSQL_PROGRAMS.iter().any(|w| tok.is_word(w)) {
                self.create_header = false;
                self.compound = true;
            } else if MYSQL_OTHER_OBJECTS.iter().any(|w| tok.is_word(w))
                || (tok.kind == TokenKind::LParen && !self.after_current_user)
            {
                self.create_header = false;
            }
        }
        self.opening = match (self.opening, tok) {
            (Opening::Begin, t) if t.is_word("not") => Opening::BeginNot,
            (Opening::BeginNot, t) if t.is_word("atomic") => {
                // BEGIN NOT ATOMIC: the BEGIN opened a block.
                self.compound = true;
                self.open_block(false);
                Opening::Settled
            }
            (Opening::Label, t) if t.kind == TokenKind::Operator && t.text == ":" => {
                self.compound = true;
                Opening::Settled
            }
            _ => Opening::Settled,
        };
    }

    fn mysql_block(&mut self, tok: &Token<'_>) {
        let at_start = std::mem::take(&mut self.statement_start);
        let after_end = std::mem::take(&mut self.after_end);
        if tok.is_word("end") {
            if self.case_expr.len() == self.block_depth as usize {
                self.case_expr.pop();
            }
            self.block_depth = self.block_depth.saturating_sub(1);
            self.after_end = true;
        } else if after_end {
            // END IF, END CASE, END LOOP, END label: the word closes.
        } else if tok.is_word("begin") {
            self.open_block(false);
        } else if tok.is_word("case") {
            self.open_block(!at_start);
        } else if at_start && MYSQL_BLOCKS.iter().any(|w| tok.is_word(w)) {
            self.open_block(false);
        }
        let in_case_expr = self.case_expr.len() == self.block_depth as usize
            && self.case_expr.last() == Some(&true);
        let label = tok.kind == TokenKind::Operator && tok.text == ":";
        self.statement_start = tok.kind == TokenKind::Semicolon
            || label
            || (!after_end && MYSQL_STATEMENT_STARTERS.iter().any(|w| tok.is_word(w)))
            || (!in_case_expr && (tok.is_word("then") || tok.is_word("else")))
            || (tok.kind == TokenKind::RParen && self.block_depth == 0);
    }

    fn open_block(&mut self, case_expr: bool) {
        self.block_depth += 1;
        if self.case_expr.len() < MAX_TRACKED_BLOCKS {
            self.case_expr.push(case_expr);
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
