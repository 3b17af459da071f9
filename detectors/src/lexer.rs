//! The single-pass SQL lexer that normalisation, splitting and keyword
//! classification share. It owns the dialect's quoting and comment rules
//! and must never allocate, panic or reject input: every byte sequence
//! yields tokens that cover it exactly, so callers can slice the source by
//! token spans and hand the rest to a real parser.
//!
//! # PostgreSQL
//!
//! `E''` escapes, `standard_conforming_strings`, `U&` strings and
//! identifiers, dollar quoting, nested block comments, `$1` parameters and
//! PostgreSQL's operator-splitting rules.
//!
//! # MySQL / MariaDB
//!
//! Modelled on the server's own lexer (`sql_lex.cc`), because a firewall
//! that reads a statement differently from the server can be walked past:
//!
//! - `` `…` `` identifiers (a doubled backtick is one; no backslash escape);
//!   `"…"` strings, or identifiers under [`LexOptions::ansi_quotes`].
//! - `'…'` / `"…"` strings (also `N'…'`, `_charset'…'`): a doubled quote is
//!   one, and `\` escapes the next byte unless
//!   [`LexOptions::no_backslash_escapes`]. `X'…'`, `B'…'`, `0x…`, `0b…`.
//! - Comments: `#` and `-- ` to the next `\n` only (a `\r` does not end
//!   them); `--` opens a comment only before whitespace, a control
//!   character or the end (`1--1` is `1 - -1`); `/* … */` does not nest.
//! - Executable comments, whose content the server runs as code: `/*! … */`
//!   (every MySQL and MariaDB), `/*!NNNNN … */` (a 5- or 6-digit version:
//!   code only on servers at least that new; MariaDB also skips
//!   50700–99999), and MariaDB's `/*M! … */` / `/*M!NNNNNN … */` (a plain
//!   comment to MySQL). Their markers are [`TokenKind::Whitespace`] and the
//!   content is lexed as code. Whether a versioned or `/*M!` comment is
//!   code depends on the server, which the lexer does not know; reading its
//!   content as code shows everything either reading can run, *unless* a
//!   quote or comment opened inside it reaches past a `*/` (`/*!99999 ' */
//!   union … -- '`): there the two readings disagree about what is code.
//!   Until the lexer has passed the last `*/` either reading could stop at,
//!   [`crate::split_statements`] does not split at a `;`, and a string,
//!   quoted identifier or comment spanning a `*/` is cut to its opener
//!   as a [`TokenKind::Ambiguous`] token, what it would have hidden being
//!   lexed as code. From that cut to the end of input the readings
//!   disagree about where every later literal and comment ends (the newer
//!   server's string closes at the quote the older one opens a string
//!   with), so lexing turns *flat*: every quote and comment opener is an
//!   `Ambiguous` token (decided without scanning, so this stays linear), no
//!   text is hidden, and no `;` splits. Legitimate executable comments
//!   (mysqldump's `/*!40101 SET NAMES utf8mb4 */`) never cut. The facts of
//!   a statement with a cut carry a `parse_error`, and its normalised text
//!   shows each cut opener as a quoted identifier (`` `'` ``) and the
//!   literal text after the cut as code.
//! - `@var` and `@@[session.]var` are one [`TokenKind::Word`]; `?` is a
//!   parameter; identifiers may start with a digit (`1st`) or `$`.
//! - A `;` ends the executable-comment state, as the server restarts its
//!   lexer for each statement of a multi-statement text.
//!
//! Not modelled: the other SQL modes (`PIPES_AS_CONCAT`, where `||`
//! concatenates and TAUTOLOGY over-reports; `HIGH_NOT_PRECEDENCE`;
//! `IGNORE_SPACE`); `\N` (a stray `\` and the word `N`); character sets
//! other than UTF-8 (the caller decodes the connection's `character_set_
//! client` first, so a GBK/SJIS trail byte `0x5c` never reaches the lexer
//! as a backslash); optimizer hints `/*+ … */` (a comment, as the hint
//! scanner also ends them at the first `*/`).

/// The SQL dialect whose lexical rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// PostgreSQL: the complete dialect.
    #[default]
    Postgres,
    /// MySQL and MariaDB: the lexical rules in the module docs, with the
    /// session's `NO_BACKSLASH_ESCAPES` and `ANSI_QUOTES` modes from
    /// [`LexOptions`]; statement facts are best effort where sqlparser's
    /// MySQL dialect stops (see [`crate::facts`]).
    MySql,
}

/// What the lexer must know about the session to read string literals the
/// way the server will. Each dialect reads only its own fields; the others
/// are ignored, so `LexOptions { dialect: Dialect::MySql, ..pg_options }`
/// gets MySQL's defaults for the MySQL fields as long as `pg_options` left
/// them at theirs.
///
/// The MySQL fields are named after the SQL modes and default to `false`
/// (the server's default) in both constructors. `standard_conforming_strings`
/// is deliberately not reused for `NO_BACKSLASH_ESCAPES`: its default is
/// `true`, which would silently turn MySQL's backslash escapes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexOptions {
    pub dialect: Dialect,
    /// PostgreSQL's `standard_conforming_strings` (a ParameterStatus the
    /// proxy tracks). When off, a backslash escapes the next character even
    /// in a plain `'…'` literal, so `'\''` is one literal, not one and a half:
    /// lexing it the other way would let a quote hide the rest of a statement.
    /// Ignored for MySQL.
    pub standard_conforming_strings: bool,
    /// MySQL's `NO_BACKSLASH_ESCAPES` SQL mode. The server reports it in the
    /// status flags of every OK and EOF packet
    /// (`SERVER_STATUS_NO_BACKSLASH_ESCAPES`, `0x0200`), so the proxy can
    /// keep this in step. When set, `\` is an ordinary character in `'…'`
    /// and `"…"`: `'\'` is a whole literal, and `'\'; drop table t; -- '` is
    /// two statements rather than one. Ignored for PostgreSQL.
    pub no_backslash_escapes: bool,
    /// MySQL's `ANSI_QUOTES` SQL mode (also implied by `ANSI`): `"…"` is an
    /// identifier, not a string. No status flag reports it; the proxy must
    /// learn `sql_mode` another way (session tracking of the `sql_mode`
    /// system variable, or reading `@@sql_mode` after a `SET`). Ignored for
    /// PostgreSQL.
    pub ansi_quotes: bool,
}

impl Default for LexOptions {
    fn default() -> Self {
        Self::for_dialect(Dialect::Postgres)
    }
}

impl LexOptions {
    /// Options for `dialect` with its server defaults.
    pub const fn for_dialect(dialect: Dialect) -> Self {
        Self {
            dialect,
            standard_conforming_strings: true,
            no_backslash_escapes: false,
            ansi_quotes: false,
        }
    }

    /// Whether `\` escapes the next byte inside a plain `'…'` literal (and,
    /// in MySQL, a `"…"` one).
    fn backslash_escapes(self) -> bool {
        match self.dialect {
            Dialect::Postgres => !self.standard_conforming_strings,
            Dialect::MySql => !self.no_backslash_escapes,
        }
    }
}

/// What a token is; literals are not decoded, only delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Spaces, tabs, newlines; also MySQL's executable-comment markers
    /// (`/*!`, `/*!50700`, `/*M!`, and the `*/` closing one), whose content
    /// is code.
    Whitespace,
    /// `-- …`, `# …` (MySQL) and `/* … */` (nested in PostgreSQL).
    Comment,
    /// An unquoted identifier or keyword; MySQL `@var` / `@@var`.
    Word,
    /// `"…"`, `U&"…"`, or MySQL's `` `…` `` (and `"…"` under `ANSI_QUOTES`).
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
    /// MySQL: the opener (`'`, `N'`, `"`, `` ` ``, `#`, `--`, `/*`) of a
    /// string, quoted identifier or comment that would span a `*/` where a
    /// version-dependent executable comment may end, or of any such opener
    /// after one (see the module docs). Where it ends depends on the
    /// server's version, so the lexer reads neither way: the rest is lexed
    /// as code, and a statement holding one is not parsed.
    Ambiguous,
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

/// Digits of a MySQL executable comment's version: `50700` (MySQL up to
/// 8.0), `100610` (MariaDB, MySQL 8.1 and later).
const MIN_VERSION_DIGITS: usize = 5;
const MAX_VERSION_DIGITS: usize = 6;

/// Iterator over the tokens of one SQL string.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    opts: LexOptions,
    /// Inside a MySQL executable comment (`/*!`, `/*!NNNNN`, `/*M!`).
    in_exec_comment: bool,
    /// MySQL: the farthest point at which a server that reads a
    /// version-dependent executable comment as a comment resumes reading
    /// code (just past its `*/`). Before it, a token spanning a `*/` is
    /// [`TokenKind::Ambiguous`].
    version_split_until: Option<usize>,
    /// MySQL: a token was cut to [`TokenKind::Ambiguous`]: from here to the
    /// end of input every quote or comment opener is cut too, since the
    /// readings disagree about where each literal and comment ends.
    flat: bool,
    /// Bytes the comment-reading scans of executable comments may still
    /// read (see [`comment_end`]): linear in the input however many
    /// comments it opens.
    scan_budget: usize,
}

/// How many times the input's length the executable-comment scans may
/// read in total before the lexer assumes the worst (every `*/` up to the
/// end may end a comment).
const EXEC_COMMENT_SCAN_FACTOR: usize = 4;

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, opts: LexOptions) -> Self {
        Self {
            src,
            pos: 0,
            opts,
            in_exec_comment: false,
            version_split_until: None,
            flat: false,
            scan_budget: src.len().saturating_mul(EXEC_COMMENT_SCAN_FACTOR),
        }
    }

    /// Whether offset `at` lies where a version-dependent executable
    /// comment may still be open (so a `;` there may be code to one server
    /// and comment text to another).
    pub(crate) fn version_dependent_at(&self, at: usize) -> bool {
        self.flat || self.version_split_until.is_some_and(|until| at < until)
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

    /// PostgreSQL ends a line comment at `\n` or `\r`; MySQL at `\n` only
    /// (and at a NUL byte, where its scanner stops too).
    fn lex_line_comment(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let mysql = self.mysql();
        let mut i = self.pos;
        while i < b.len() && b[i] != b'\n' && (if mysql { b[i] != 0 } else { b[i] != b'\r' }) {
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

    /// MySQL `/*!`, `/*!NNNNN`, `/*M!`, `/*M!NNNNNN`: the marker (a
    /// whitespace token); the content up to `*/` is lexed as code. A
    /// version, or MariaDB's `M`, makes whether it is code depend on the
    /// server: note where the comment readings of it end.
    fn lex_exec_comment_open(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let mariadb = b.get(self.pos + 2) == Some(&b'M');
        let mut i = self.pos + if mariadb { 4 } else { 3 };
        let digits = b
            .get(i..)
            .unwrap_or(&[])
            .iter()
            .take(MAX_VERSION_DIGITS)
            .take_while(|c| c.is_ascii_digit())
            .count();
        let versioned = digits >= MIN_VERSION_DIGITS;
        if versioned {
            i += digits;
        }
        if versioned || mariadb {
            // MySQL reads `/*M!` as a plain comment (no nesting); a server
            // too old for the version skips it allowing one nested `/* */`.
            let ends = [
                comment_end(b, i, false, &mut self.scan_budget),
                comment_end(b, i, true, &mut self.scan_budget),
            ];
            let farthest = ends.into_iter().flatten().max();
            self.version_split_until = self.version_split_until.max(farthest);
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

    /// MySQL `"…"`: a string, or an identifier under `ANSI_QUOTES`.
    fn lex_mysql_double_quote(&mut self) -> Token<'a> {
        if self.opts.ansi_quotes {
            self.lex_quoted(TokenKind::QuotedIdent, self.pos, b'"', false)
        } else {
            let backslash = self.opts.backslash_escapes();
            self.lex_quoted(TokenKind::String, self.pos, b'"', backslash)
        }
    }

    /// MySQL `@@name` (system variable, `@@session.x` continues with a dot)
    /// or `@name` (user variable) as one word; a lone `@` (`'u'@'host'`) is
    /// an operator.
    fn lex_variable(&mut self) -> Token<'a> {
        let b = self.src.as_bytes();
        let mut i = self.pos + 1;
        if b.get(i) == Some(&b'@') {
            i += 1;
        }
        let name = i;
        while i < b.len() && is_ident_cont(b[i], true) {
            i += 1;
        }
        if i == name {
            return self.token(TokenKind::Operator, self.pos + 1, true);
        }
        self.token(TokenKind::Word, i, true)
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

    /// PostgreSQL: `--` always; MySQL: `--` followed by whitespace, a
    /// control character or the end (the server's `my_isspace ||
    /// my_iscntrl`).
    fn starts_line_comment(&self, at: usize) -> bool {
        let b = self.src.as_bytes();
        if b.get(at) != Some(&b'-') || b.get(at + 1) != Some(&b'-') {
            return false;
        }
        self.pg()
            || match b.get(at + 2) {
                None => true,
                Some(&c) => is_space(c) || c < 0x20 || c == 0x7f,
            }
    }

    /// MySQL: a string, quoted identifier or comment that spans a `*/` a
    /// version-dependent executable comment may end at is cut to its
    /// opener, and lexing turns flat (see the module docs); past the last
    /// such `*/`, nothing is cut.
    fn settle_version_split(&mut self, tok: Token<'a>) -> Token<'a> {
        let Some(until) = self.version_split_until else {
            return tok;
        };
        if tok.start >= until {
            self.version_split_until = None;
            return tok;
        }
        let may_hide = matches!(
            tok.kind,
            TokenKind::String | TokenKind::QuotedIdent | TokenKind::Comment
        );
        if may_hide && spans_comment_close(self.src.as_bytes(), tok.start, tok.end(), until) {
            self.flat = true;
            self.pos = tok.start;
            let len = self.hiding_opener_len(tok.start).unwrap_or(1);
            return self.token(TokenKind::Ambiguous, tok.start + len, true);
        }
        tok
    }

    /// The length of the string, quoted identifier or comment opener at
    /// `at` (`'`, `N'`, `` ` ``, `#`, `-- `'s `--`, `/*`), if there is one:
    /// decided without scanning what it opens, so flat lexing stays linear.
    fn hiding_opener_len(&self, at: usize) -> Option<usize> {
        let next = self.byte(at + 1);
        match self.byte(at)? {
            b'\'' | b'"' | b'`' | b'#' => Some(1),
            b'-' if self.starts_line_comment(at) => Some(2),
            b'/' if next == Some(b'*') => Some(2),
            b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if next == Some(b'\'') => Some(2),
            _ => None,
        }
    }

    fn lex_token(&mut self) -> Option<Token<'a>> {
        let b = self.src.as_bytes();
        let c = *b.get(self.pos)?;
        let next = self.byte(self.pos + 1);
        if self.flat {
            if let Some(len) = self.hiding_opener_len(self.pos) {
                return Some(self.token(TokenKind::Ambiguous, self.pos + len, true));
            }
        }
        let tok = match c {
            _ if is_space(c) => self.lex_whitespace(),
            b'-' if self.starts_line_comment(self.pos) => self.lex_line_comment(),
            b'#' if self.mysql() => self.lex_line_comment(),
            b'/' if next == Some(b'*') => {
                let exec = match self.byte(self.pos + 2) {
                    Some(b'!') => true,
                    Some(b'M') => self.byte(self.pos + 3) == Some(b'!'),
                    _ => false,
                };
                if self.mysql() && exec {
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
                let backslash = self.opts.backslash_escapes();
                self.lex_quoted(TokenKind::String, self.pos, b'\'', backslash)
            }
            b'"' if self.mysql() => self.lex_mysql_double_quote(),
            b'"' => self.lex_quoted(TokenKind::QuotedIdent, self.pos, b'"', false),
            b'`' if self.mysql() => self.lex_quoted(TokenKind::QuotedIdent, self.pos, b'`', false),
            b'e' | b'E' if next == Some(b'\'') && self.pg() => {
                self.lex_quoted(TokenKind::String, self.pos + 1, b'\'', true)
            }
            b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if next == Some(b'\'') => {
                let backslash = self.opts.backslash_escapes();
                self.lex_quoted(TokenKind::String, self.pos + 1, b'\'', backslash)
            }
            b'u' | b'U' if next == Some(b'&') && self.pg() => match self.byte(self.pos + 2) {
                Some(b'\'') => self.lex_quoted(TokenKind::String, self.pos + 2, b'\'', false),
                Some(b'"') => self.lex_quoted(TokenKind::QuotedIdent, self.pos + 2, b'"', false),
                _ => self.lex_word(),
            },
            b'$' if self.pg() => self.lex_dollar(),
            b'$' if self.mysql() => self.lex_word(),
            b'@' if self.mysql() => self.lex_variable(),
            b'?' if self.mysql() => self.token(TokenKind::Param, self.pos + 1, true),
            b'0'..=b'9' => self.lex_number(),
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => self.lex_number(),
            b'.' => self.token(TokenKind::Dot, self.pos + 1, true),
            b'(' => self.token(TokenKind::LParen, self.pos + 1, true),
            b')' => self.token(TokenKind::RParen, self.pos + 1, true),
            b'[' => self.token(TokenKind::LBracket, self.pos + 1, true),
            b']' => self.token(TokenKind::RBracket, self.pos + 1, true),
            b',' => self.token(TokenKind::Comma, self.pos + 1, true),
            b';' => {
                // The server lexes each statement of a multi-statement
                // text afresh; only where a version-dependent comment may
                // still be open is the `;` not known to end one.
                if !self.version_dependent_at(self.pos) {
                    self.in_exec_comment = false;
                }
                self.token(TokenKind::Semicolon, self.pos + 1, true)
            }
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

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let tok = self.lex_token()?;
        Some(self.settle_version_split(tok))
    }
}

/// Where a MySQL comment whose content starts at `from` ends (just past
/// its `*/`), as the server's `consume_comment` finds it: with `nest_once`,
/// `/* … */` comments inside (not nested further) are skipped. `None` if it
/// never closes. Each byte read costs one unit of `budget`; when it runs
/// out, the answer is the end of input, which only widens the span the
/// caller treats as version-dependent.
fn comment_end(b: &[u8], from: usize, nest_once: bool, budget: &mut usize) -> Option<usize> {
    let mut nested = false;
    let mut i = from;
    while i < b.len() {
        if *budget == 0 {
            return Some(b.len());
        }
        *budget -= 1;
        if nest_once && !nested && b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            nested = true;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            if !nested {
                return Some(i + 2);
            }
            nested = false;
            i += 2;
        } else {
            i += 1;
        }
    }
    None
}

/// Whether the span `start..end` strictly contains the end of a `*/` that
/// ends at or before `until` (a point where a comment reading resumes).
fn spans_comment_close(b: &[u8], start: usize, end: usize, until: usize) -> bool {
    let last = end.min(until.saturating_add(1)).saturating_sub(2);
    (start.saturating_sub(1)..last).any(|q| b.get(q) == Some(&b'*') && b.get(q + 1) == Some(&b'/'))
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
        standard_conforming_strings: false,
        ..PG
    };
    pub const MY: LexOptions = LexOptions::for_dialect(Dialect::MySql);
    /// MySQL with `sql_mode = NO_BACKSLASH_ESCAPES`.
    pub const MY_NBE: LexOptions = LexOptions {
        no_backslash_escapes: true,
        ..MY
    };
    /// MySQL with `sql_mode = ANSI_QUOTES`.
    pub const MY_ANSI: LexOptions = LexOptions {
        ansi_quotes: true,
        ..MY
    };
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
            // MySQL identifiers may start with `$` (deprecated, accepted).
            ("$$ $a", MY, &[(Word, "$$"), (Word, "$a")]),
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
