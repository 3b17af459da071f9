//! The single-pass SQL lexer that normalisation, splitting and keyword
//! classification share. It owns the dialect's quoting and comment rules
//! (PostgreSQL: `E''` escapes, `standard_conforming_strings`, dollar quoting,
//! nested block comments; MySQL: backticks, `#` comments, backslash escapes,
//! `/*! … */` executable comments). It must never allocate, panic or reject
//! input: every byte sequence yields tokens that cover it exactly, so callers
//! can slice the source by token spans and hand the rest to a real parser.

/// The SQL dialect whose lexical rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// PostgreSQL: the complete dialect.
    #[default]
    Postgres,
    /// MySQL / MariaDB: lexing is designed for it (backticks, `#` comments,
    /// backslash escapes, executable comments); analysis is best effort.
    /// `ANSI_QUOTES` and `NO_BACKSLASH_ESCAPES` are not modelled yet.
    MySql,
}

/// What the lexer must know about the session to read string literals the
/// way the server will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexOptions {
    pub dialect: Dialect,
    /// PostgreSQL's `standard_conforming_strings` (a ParameterStatus the
    /// proxy tracks). When off, a backslash escapes the next character even
    /// in a plain `'…'` literal, so `'\''` is one literal, not one and a half:
    /// lexing it the other way would let a quote hide the rest of a statement.
    pub standard_conforming_strings: bool,
}

impl Default for LexOptions {
    fn default() -> Self {
        Self {
            dialect: Dialect::Postgres,
            standard_conforming_strings: true,
        }
    }
}

impl LexOptions {
    /// Options for `dialect` with its server defaults.
    pub const fn for_dialect(dialect: Dialect) -> Self {
        Self {
            dialect,
            standard_conforming_strings: true,
        }
    }
}

/// What a token is; literals are not decoded, only delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Spaces, tabs, newlines; also MySQL's `/*!…` and `*/` executable
    /// comment markers, whose content is code.
    Whitespace,
    /// `-- …`, `# …` (MySQL) and `/* … */` (nested in PostgreSQL).
    Comment,
    /// An unquoted identifier or keyword.
    Word,
    /// `"…"`, `U&"…"`, or MySQL's `` `…` ``.
    QuotedIdent,
    /// Every quoted literal form: `'…'`, `E'…'`, `U&'…'`, `B'…'`, `X'…'`,
    /// `N'…'`, `$tag$…$tag$`, and MySQL's `"…"`.
    String,
    /// Integer, decimal, exponent, hex/octal/binary forms.
    Number,
    /// A bind parameter: `$1` (PostgreSQL), `?` (MySQL).
    Param,
    /// A run of operator characters, split the way PostgreSQL splits them.
    Operator,
    /// `::`
    Cast,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Semicolon,
    /// A byte no rule claims (a lone `$`, a stray backslash).
    Other,
}

impl TokenKind {
    /// Whether the token carries meaning (not whitespace or a comment).
    pub fn is_significant(self) -> bool {
        !matches!(self, TokenKind::Whitespace | TokenKind::Comment)
    }
}

/// One token: its kind and exact source span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
    /// Byte offset of `text` in the lexed string.
    pub start: usize,
    /// False for a string, quoted identifier or comment that runs to the end
    /// of input without its closing delimiter: the server will reject the
    /// statement, and an injection detector may want to know.
    pub terminated: bool,
}

impl Token<'_> {
    /// Byte offset just past the token.
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// Whether this is the unquoted word `kw` (ASCII case-insensitive).
    pub fn is_word(&self, kw: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(kw)
    }
}

/// Iterator over the tokens of one SQL string.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    opts: LexOptions,
    /// Inside a MySQL `/*! … */` executable comment.
    in_exec_comment: bool,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, opts: LexOptions) -> Self {
        Self {
            src,
            pos: 0,
            opts,
            in_exec_comment: false,
        }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    fn pg(&self) -> bool {
        self.opts.dialect == Dialect::Postgres
    }

    fn mysql(&self) -> bool {
        self.opts.dialect == Dialect::MySql
    }

    fn token(&mut self, kind: TokenKind, end: usize, terminated: bool) -> Token<'a> {
        let start = self.pos;
        let end = end.clamp(start + 1, self.src.len());
        self.pos = end;
        Token {
            kind,
            // Every token boundary sits next to an ASCII byte or at the end
            // of input, so this is a char boundary; `get` keeps it panic-free
            // even if that reasoning were ever wrong.
            text: self.src.get(start..end).unwrap_or(""),
            start,
            terminated,
        }
    }

    fn lex_whitespace(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let mut i = self.pos;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        self.token(TokenKind::Whitespace, i, true)
    }

    fn lex_line_comment(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let mut i = self.pos;
        while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
            i += 1;
        }
        self.token(TokenKind::Comment, i, true)
    }

    fn lex_block_comment(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let nested = self.pg();
        let mut depth = 1usize;
        let mut i = self.pos + 2;
        while i < b.len() {
            if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return self.token(TokenKind::Comment, i, true);
                }
            } else if nested && b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                depth += 1;
                i += 2;
            } else {
                i += 1;
            }
        }
        self.token(TokenKind::Comment, b.len(), false)
    }

    /// `/*!` or `/*!50700`: the content up to `*/` is executed by MySQL,
    /// so it is lexed as code rather than hidden as a comment.
    fn lex_exec_comment_open(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let mut i = self.pos + 3;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        self.in_exec_comment = true;
        self.token(TokenKind::Whitespace, i, true)
    }

    /// A quoted run starting at `open` (the opening quote) closed by `quote`,
    /// with the quote doubled to include it and, if `backslash`, `\` escaping
    /// the next byte.
    fn lex_quoted(
        &mut self,
        kind: TokenKind,
        open: usize,
        quote: u8,
        backslash: bool,
    ) -> Token<'a> {
        let b = self.src.as_bytes();
        let mut i = open + 1;
        while i < b.len() {
            let c = b[i];
            if backslash && c == b'\\' {
                i += 2;
            } else if c == quote {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return self.token(kind, i + 1, true);
                }
            } else {
                i += 1;
            }
        }
        self.token(kind, b.len(), false)
    }

    /// `$tag$ … $tag$` (tag possibly empty), or `$1`, or a lone `$`.
    fn lex_dollar(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let start = self.pos;
        if b.get(start + 1).is_some_and(u8::is_ascii_digit) {
            let mut i = start + 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            return self.token(TokenKind::Param, i, true);
        }
        let mut i = start + 1;
        if i < b.len() && is_ident_start(b[i]) {
            i += 1;
            while i < b.len() && (is_ident_start(b[i]) || b[i].is_ascii_digit()) {
                i += 1;
            }
        }
        if b.get(i) != Some(&b'$') {
            return self.token(TokenKind::Other, start + 1, true);
        }
        let body = i + 1;
        let Some(delim) = self.src.get(start..body) else {
            return self.token(TokenKind::Other, start + 1, true);
        };
        match self.src.get(body..).and_then(|rest| rest.find(delim)) {
            Some(off) => self.token(TokenKind::String, body + off + delim.len(), true),
            None => self.token(TokenKind::String, b.len(), false),
        }
    }

    fn lex_number(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let start = self.pos;
        let mut i = start;
        // 0x…, 0o…, 0b… (PostgreSQL 16 and MySQL forms).
        if b[i] == b'0' {
            let radix_digit: Option<fn(&u8) -> bool> = match b.get(i + 1) {
                Some(b'x' | b'X') => Some(u8::is_ascii_hexdigit),
                Some(b'o' | b'O') if self.pg() => Some(|c: &u8| (b'0'..=b'7').contains(c)),
                Some(b'b' | b'B') => Some(|c: &u8| *c == b'0' || *c == b'1'),
                _ => None,
            };
            if let Some(is_digit) = radix_digit {
                if b.get(i + 2).is_some_and(is_digit) {
                    i += 2;
                    while i < b.len() && (is_digit(&b[i]) || b[i] == b'_') {
                        i += 1;
                    }
                    return self.finish_number(i);
                }
            }
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
        // `1.5`, `1.`, `.5` — but not `1..2`, which is two tokens.
        if b.get(i) == Some(&b'.') && b.get(i + 1) != Some(&b'.') {
            i += 1;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if b.get(j).is_some_and(u8::is_ascii_digit) {
                i = j;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
        self.finish_number(i)
    }

    /// MySQL identifiers may start with digits (`1st_table`); PostgreSQL
    /// reads `1abc` as a number followed by a word.
    fn finish_number(&mut self, end: usize) -> Token<'a> {
        let b = self.src.as_bytes();
        let all_digits = b[self.pos..end].iter().all(u8::is_ascii_digit);
        if self.mysql() && all_digits && end < b.len() && is_ident_cont(b[end], true) {
            let mut i = end;
            while i < b.len() && is_ident_cont(b[i], true) {
                i += 1;
            }
            return self.token(TokenKind::Word, i, true);
        }
        self.token(TokenKind::Number, end, true)
    }

    fn lex_word(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let mut i = self.pos + 1;
        while i < b.len() && is_ident_cont(b[i], true) {
            i += 1;
        }
        self.token(TokenKind::Word, i, true)
    }

    fn lex_operator(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let start = self.pos;
        if self.mysql() {
            // MySQL has a fixed operator set: `a--1` is `a - -1`.
            let rest = &b[start..];
            let len = MYSQL_MULTI_CHAR_OPS
                .iter()
                .find(|op| rest.starts_with(op.as_bytes()))
                .map_or(1, |op| op.len());
            return self.token(TokenKind::Operator, start + len, true);
        }
        let mut i = start;
        while i < b.len() && self.is_op_char(b[i]) {
            // A comment start ends the operator, as in PostgreSQL's scanner.
            if i > start && (self.starts_line_comment(i) || starts_block_comment(b, i)) {
                break;
            }
            i += 1;
        }
        // PostgreSQL: a multi-character operator cannot end in `+` or `-`
        // unless it contains one of ~ ! @ # % ^ & | ` ?, so `=-1` is `=`
        // followed by `-1`.
        if self.pg() {
            let run = &b[start..i];
            if !run.iter().any(|c| b"~!@#%^&|`?".contains(c)) {
                while i > start + 1 && matches!(b[i - 1], b'+' | b'-') {
                    i -= 1;
                }
            }
        }
        self.token(TokenKind::Operator, i, true)
    }

    fn is_op_char(&self, c: u8) -> bool {
        match c {
            b'+' | b'-' | b'*' | b'/' | b'<' | b'>' | b'=' | b'~' | b'!' | b'@' | b'%' | b'^'
            | b'&' | b'|' => true,
            b'#' | b'?' | b'`' => self.pg(),
            _ => false,
        }
    }

    /// PostgreSQL: `--` always; MySQL: `--` followed by whitespace or end.
    fn starts_line_comment(&self, at: usize) -> bool {
        let b = self.src.as_bytes();
        if b.get(at) != Some(&b'-') || b.get(at + 1) != Some(&b'-') {
            return false;
        }
        self.pg()
            || match b.get(at + 2) {
                None => true,
                Some(c) => is_space(*c),
            }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let b = self.src.as_bytes();
        let c = *b.get(self.pos)?;
        let next = self.byte(self.pos + 1);
        let tok = match c {
            _ if is_space(c) => self.lex_whitespace(),
            b'-' if self.starts_line_comment(self.pos) => self.lex_line_comment(),
            b'#' if self.mysql() => self.lex_line_comment(),
            b'/' if next == Some(b'*') => {
                if self.mysql() && self.byte(self.pos + 2) == Some(b'!') {
                    self.lex_exec_comment_open()
                } else {
                    self.lex_block_comment()
                }
            }
            b'*' if self.in_exec_comment && next == Some(b'/') => {
                self.in_exec_comment = false;
                self.token(TokenKind::Whitespace, self.pos + 2, true)
            }
            b'\'' => {
                let backslash = self.mysql() || !self.opts.standard_conforming_strings;
                self.lex_quoted(TokenKind::String, self.pos, b'\'', backslash)
            }
            b'"' if self.mysql() => self.lex_quoted(TokenKind::String, self.pos, b'"', true),
            b'"' => self.lex_quoted(TokenKind::QuotedIdent, self.pos, b'"', false),
            b'`' if self.mysql() => self.lex_quoted(TokenKind::QuotedIdent, self.pos, b'`', false),
            b'e' | b'E' if next == Some(b'\'') && self.pg() => {
                self.lex_quoted(TokenKind::String, self.pos + 1, b'\'', true)
            }
            b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if next == Some(b'\'') => {
                let backslash = self.mysql() || !self.opts.standard_conforming_strings;
                self.lex_quoted(TokenKind::String, self.pos + 1, b'\'', backslash)
            }
            b'u' | b'U' if next == Some(b'&') && self.pg() => match self.byte(self.pos + 2) {
                Some(b'\'') => self.lex_quoted(TokenKind::String, self.pos + 2, b'\'', false),
                Some(b'"') => self.lex_quoted(TokenKind::QuotedIdent, self.pos + 2, b'"', false),
                _ => self.lex_word(),
            },
            b'$' if self.pg() => self.lex_dollar(),
            b'?' if self.mysql() => self.token(TokenKind::Param, self.pos + 1, true),
            b'0'..=b'9' => self.lex_number(),
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => self.lex_number(),
            b'.' => self.token(TokenKind::Dot, self.pos + 1, true),
            b'(' => self.token(TokenKind::LParen, self.pos + 1, true),
            b')' => self.token(TokenKind::RParen, self.pos + 1, true),
            b'[' => self.token(TokenKind::LBracket, self.pos + 1, true),
            b']' => self.token(TokenKind::RBracket, self.pos + 1, true),
            b',' => self.token(TokenKind::Comma, self.pos + 1, true),
            b';' => self.token(TokenKind::Semicolon, self.pos + 1, true),
            b':' if next == Some(b':') => self.token(TokenKind::Cast, self.pos + 2, true),
            b':' if next == Some(b'=') => self.token(TokenKind::Operator, self.pos + 2, true),
            b':' => self.token(TokenKind::Operator, self.pos + 1, true),
            _ if self.is_op_char(c) => self.lex_operator(),
            _ if is_ident_start(c) => self.lex_word(),
            _ => self.token(TokenKind::Other, self.pos + 1, true),
        };
        Some(tok)
    }
}

/// MySQL's operators longer than one character, longest first.
const MYSQL_MULTI_CHAR_OPS: &[&str] = &[
    "<=>", "->>", "<=", ">=", "<>", "!=", "<<", ">>", "&&", "||", "->",
];

/// PostgreSQL's whitespace set, plus vertical tab.
pub(crate) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// Letters, `_`, and every non-ASCII byte (PostgreSQL accepts any high-bit
/// character in identifiers; taking whole multi-byte sequences keeps token
/// boundaries on char boundaries).
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_cont(c: u8, dollar: bool) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || (dollar && c == b'$')
}

fn starts_block_comment(b: &[u8], at: usize) -> bool {
    b.get(at) == Some(&b'/') && b.get(at + 1) == Some(&b'*')
}

/// Option sets shared by the crate's table-driven tests.
#[cfg(test)]
pub(crate) mod test_options {
    use super::{Dialect, LexOptions};

    pub const PG: LexOptions = LexOptions::for_dialect(Dialect::Postgres);
    /// PostgreSQL with `standard_conforming_strings = off`.
    pub const PG_OLD: LexOptions = LexOptions {
        dialect: Dialect::Postgres,
        standard_conforming_strings: false,
    };
    pub const MY: LexOptions = LexOptions::for_dialect(Dialect::MySql);
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenKind::*;

    fn kinds(sql: &str, opts: LexOptions) -> Vec<(TokenKind, &str)> {
        Lexer::new(sql, opts)
            .filter(|t| t.kind.is_significant())
            .map(|t| (t.kind, t.text))
            .collect()
    }

    use crate::lexer::test_options::{MY, PG, PG_OLD};

    #[test]
    fn token_table() {
        type Case = (
            &'static str,
            LexOptions,
            &'static [(TokenKind, &'static str)],
        );
        let cases: &[Case] = &[
            ("select 1", PG, &[(Word, "select"), (Number, "1")]),
            ("'it''s'", PG, &[(String, "'it''s'")]),
            (r"E'\''x", PG, &[(String, r"E'\''"), (Word, "x")]),
            (r"e'a\\'", PG, &[(String, r"e'a\\'")]),
            // Standard strings: the backslash is a character, the literal ends at the 2nd quote.
            (r"'\' x", PG, &[(String, r"'\'"), (Word, "x")]),
            // standard_conforming_strings=off: the backslash escapes the quote.
            (r"'\'' x", PG_OLD, &[(String, r"'\''"), (Word, "x")]),
            ("U&'d\\0061t'", PG, &[(String, "U&'d\\0061t'")]),
            ("U&\"d!0061t\"", PG, &[(QuotedIdent, "U&\"d!0061t\"")]),
            (
                "B'1010' X'ff' N'n'",
                PG,
                &[(String, "B'1010'"), (String, "X'ff'"), (String, "N'n'")],
            ),
            (
                "\"Ab\"\"c\".x",
                PG,
                &[(QuotedIdent, "\"Ab\"\"c\""), (Dot, "."), (Word, "x")],
            ),
            ("$$a;b$$", PG, &[(String, "$$a;b$$")]),
            (
                "$fn$ x $ $a$ $fn$;",
                PG,
                &[(String, "$fn$ x $ $a$ $fn$"), (Semicolon, ";")],
            ),
            ("$1 $23", PG, &[(Param, "$1"), (Param, "$23")]),
            ("a$b$c", PG, &[(Word, "a$b$c")]),
            ("$", PG, &[(Other, "$")]),
            (
                "1e5 .5 1.5e-3 0x1F 0o17 0b101 1_000 3.",
                PG,
                &[
                    (Number, "1e5"),
                    (Number, ".5"),
                    (Number, "1.5e-3"),
                    (Number, "0x1F"),
                    (Number, "0o17"),
                    (Number, "0b101"),
                    (Number, "1_000"),
                    (Number, "3."),
                ],
            ),
            ("1..2", PG, &[(Number, "1"), (Dot, "."), (Number, ".2")]),
            (
                "a=-1",
                PG,
                &[(Word, "a"), (Operator, "="), (Operator, "-"), (Number, "1")],
            ),
            ("a@-1", PG, &[(Word, "a"), (Operator, "@-"), (Number, "1")]),
            (
                "a->>'k'",
                PG,
                &[(Word, "a"), (Operator, "->>"), (String, "'k'")],
            ),
            (
                "x::int[]",
                PG,
                &[
                    (Word, "x"),
                    (Cast, "::"),
                    (Word, "int"),
                    (LBracket, "["),
                    (RBracket, "]"),
                ],
            ),
            ("a--c\nb", PG, &[(Word, "a"), (Word, "b")]),
            ("a/* /* */ */b", PG, &[(Word, "a"), (Word, "b")]),
            ("a+/*c*/b", PG, &[(Word, "a"), (Operator, "+"), (Word, "b")]),
            ("über_tab", PG, &[(Word, "über_tab")]),
            (
                "d ? 'k'",
                PG,
                &[(Word, "d"), (Operator, "?"), (String, "'k'")],
            ),
            // MySQL
            (
                "`a``b` \"s\\\"\" #c\nx",
                MY,
                &[(QuotedIdent, "`a``b`"), (String, "\"s\\\"\""), (Word, "x")],
            ),
            (
                "a--1",
                MY,
                &[(Word, "a"), (Operator, "-"), (Operator, "-"), (Number, "1")],
            ),
            ("a-- c\nb", MY, &[(Word, "a"), (Word, "b")]),
            (
                "/*!50000 select */ 1",
                MY,
                &[(Word, "select"), (Number, "1")],
            ),
            ("/* a /* b */ c", MY, &[(Word, "c")]),
            ("? 1abc", MY, &[(Param, "?"), (Word, "1abc")]),
            ("'a\\'b'", MY, &[(String, "'a\\'b'")]),
            ("$$", MY, &[(Other, "$"), (Other, "$")]),
        ];
        for (sql, opts, want) in cases {
            assert_eq!(&kinds(sql, *opts), want, "lexing {sql:?}");
        }
    }

    #[test]
    fn unterminated_runs_to_end() {
        let cases: &[(&str, TokenKind)] = &[
            ("'abc", String),
            ("E'ab\\'", String),
            ("\"abc", QuotedIdent),
            ("$q$ body", String),
            ("/* a /* b */", Comment),
            ("'\\", String),
        ];
        for (sql, kind) in cases {
            let toks: Vec<_> = Lexer::new(sql, PG).collect();
            let last = toks.last().expect("one token at least");
            assert_eq!(last.kind, *kind, "{sql:?}");
            assert!(!last.terminated, "{sql:?}");
            assert_eq!(last.end(), sql.len(), "{sql:?}");
        }
    }

    #[test]
    fn tokens_cover_input_exactly() {
        let inputs = [
            "select 'a', $$b$$, \"c\" from t -- x",
            "E'\\\\' || U&'\\0041' /* é */ über",
            "$a$ unterminated",
            "\u{00e9}'\\",
        ];
        for sql in inputs {
            for opts in [PG, PG_OLD, MY] {
                let mut pos = 0;
                for t in Lexer::new(sql, opts) {
                    assert_eq!(t.start, pos, "{sql:?}");
                    assert!(!t.text.is_empty(), "{sql:?}");
                    pos = t.end();
                }
                assert_eq!(pos, sql.len(), "{sql:?}");
            }
        }
    }
}
