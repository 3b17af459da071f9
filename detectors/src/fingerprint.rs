//! Statement normalisation and its 64-bit fingerprint: the key the proxy
//! caches facts and decisions by, and the shape a learned allowlist stores.
//! It owns the canonical text form (one lexer pass, no allocation besides the
//! output) and its parseable twin, the skeleton that `facts` hands to
//! sqlparser. It must never look at literal values beyond delimiting them:
//! two statements that differ only in literals, spacing, comments, keyword
//! case or batch size must share a fingerprint, and nothing else may.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::lexer::{LexOptions, Lexer, Token, TokenKind};

/// Stable 64-bit fingerprint of a normalised statement.
///
/// Hashed by hand with FNV-1a 64: `std`'s `DefaultHasher` is explicitly not
/// stable across Rust releases, and fingerprints outlive the binary (audit
/// logs, learned allowlists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Fingerprint(pub u64);

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Hex digits in a fingerprint's text form.
const FINGERPRINT_HEX_LEN: usize = 16;

impl Fingerprint {
    /// FNV-1a 64 of `normalized`'s bytes.
    pub fn of_normalized(normalized: &str) -> Self {
        let mut h = FNV_OFFSET_BASIS;
        for &b in normalized.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        Fingerprint(h)
    }
}

impl fmt::Display for Fingerprint {
    /// 16 lowercase hex digits, the form audit logs and allowlists store.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::BadFingerprint {
            text: s.chars().take(64).collect(),
        };
        if s.len() != FINGERPRINT_HEX_LEN || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u64::from_str_radix(s, 16)
            .map(Fingerprint)
            .map_err(|_| bad())
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Normalised statement text.
///
/// Comments are removed (`--`, `#` in MySQL, nested `/* */`; MySQL's
/// executable `/*! */`, `/*!NNNNN */` and `/*M! */` comments lose their
/// markers and keep their content as code, because the server runs it; a
/// [`TokenKind::Ambiguous`] opener is written as a quoted identifier,
/// `` `'` ``, so the text still reads back as the same tokens).
/// Tokens are re-joined with canonical spacing, so `a=1` and `a = 1`
/// normalise alike: one space between tokens except after `(`, `[`, `.`,
/// `::` and before `)`, `]`, `,`, `.`, `::`, `;`, and before a `(` that
/// follows a non-keyword (a call: `count(*)`). Keywords and unquoted
/// identifiers are lower-cased (ASCII only, as PostgreSQL folds them);
/// quoted identifiers are kept verbatim with their quotes. Every literal
/// becomes `?`: numbers (`1e5`, `.5`, `0x1f`), every string form, dollar
/// bodies, and `$1` parameters; adjacent string literals (PostgreSQL's
/// continuation) become one `?`; a unary `-` or `+` before a number is part
/// of the literal. A parenthesised list of only literals (also `null`,
/// `true`, `false`) after `IN` or `VALUES`, and a bracketed one after
/// `ARRAY`, becomes `(?+)` / `[?+]`, and consecutive `VALUES` rows that
/// each collapse become one, so batch size does not change the fingerprint.
/// Repeated and trailing semicolons are dropped.
///
/// One comment leaves a trace: when the text ends inside a comment that
/// runs to the end of input after a token of the current statement — a
/// `--` (or MySQL `#`) comment with no line break after it, or an
/// unterminated `/*` — the normalised text ends in
/// [`TRUNCATION_MARKER`] (` --`). That is the shape of the classic
/// `name = 'admin'--` injection, which swallows the rest of the
/// application's statement, and facts are computed from the normalised
/// text alone, so it must show there. `select 1 -- c` normalises to
/// `select ? --`; `select 1 -- c\n`, `select 1 /* c */` and
/// `select 1; -- c` to `select ?`.
pub fn normalize(sql: &str, opts: LexOptions) -> String {
    let mut n = Normalizer::new(sql.len().min(MAX_PREALLOC), Output::Normalized);
    for tok in Lexer::new(sql, opts) {
        n.push(tok);
    }
    n.finish()
}

/// The normalised statement with each `?` replaced by a literal sqlparser
/// accepts there, chosen from the preceding token only (so the skeleton is
/// a function of the normalised text): `0` after a word that takes a number
/// (`FETCH 0`, `LIMIT 0`, `INCREMENT BY 0`, see [`wants_number`]), `''`
/// after any other word (`DATE ''`, `INTERVAL ''`, `AS ''`, `FROM ''`) and
/// everywhere in `ENUM (…)` / `NOTIFY` statements, `0` elsewhere
/// (`varchar(0)`, `a = 0`); a collapsed list is `(0)`.
///
/// Parsing this instead of the raw text makes facts a function of the
/// fingerprint (literal values, which the fingerprint ignores, can no
/// longer change what sqlparser accepts), bounds parse cost by the
/// statement's structure (a 10 MB bytea literal or a 100 000-row VALUES
/// costs nothing extra), keeps literal values out of parse errors, and
/// spares sqlparser string-escape rules it does not model
/// (`standard_conforming_strings = off`). It must stay token-for-token
/// parallel to [`normalize`], except that it never carries the
/// [`TRUNCATION_MARKER`] (the skeleton must parse).
pub(crate) fn skeleton(sql: &str, opts: LexOptions) -> String {
    let mut n = Normalizer::new(sql.len().min(MAX_PREALLOC), Output::Skeleton);
    for tok in Lexer::new(sql, opts) {
        n.push(tok);
    }
    n.finish()
}

/// A digest of the values a statement carries: its literals (numbers and
/// quoted strings, in order), or `None` when it has none. Two executions of
/// one shape with the same values have the same digest; behaviour baselines
/// count distinct digests per fingerprint to see a key space being walked
/// (`where id = 1`, `where id = 2`, …). Not for security: FNV-1a, like
/// fingerprints.
pub fn literal_digest(sql: &str, opts: LexOptions) -> Option<u64> {
    let mut d = ValueDigest::default();
    for tok in Lexer::new(sql, opts) {
        if matches!(tok.kind, TokenKind::Number | TokenKind::String) {
            d.push(tok.text.as_bytes());
        }
    }
    d.finish()
}

/// The same digest over bound parameter values (`None` for a NULL), so a
/// statement walked with bind parameters counts like one walked with
/// literals.
#[derive(Debug, Clone, Copy)]
pub struct ValueDigest {
    h: u64,
    any: bool,
}

impl Default for ValueDigest {
    fn default() -> Self {
        ValueDigest {
            h: FNV_OFFSET_BASIS,
            any: false,
        }
    }
}

impl ValueDigest {
    /// Adds one value.
    pub fn push(&mut self, value: &[u8]) {
        self.any = true;
        for &b in value {
            self.h ^= u64::from(b);
            self.h = self.h.wrapping_mul(FNV_PRIME);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        self.h ^= 0xff;
        self.h = self.h.wrapping_mul(FNV_PRIME);
    }

    /// The digest, or `None` when no value was added.
    pub fn finish(&self) -> Option<u64> {
        self.any.then_some(self.h)
    }
}

/// Appended to the normalised text of a statement that ends in a comment
/// running to the end of input (see [`normalize`]). No statement can
/// otherwise end in `--`, which always opens a comment there.
pub const TRUNCATION_MARKER: &str = " --";

/// Initial output capacity cap: the input length is the right capacity for
/// typical statements but overestimates badly when literals are large.
const MAX_PREALLOC: usize = 4096;

/// What the normaliser writes for literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// `?` and `(?+)`: the fingerprinted text.
    Normalized,
    /// A parseable stand-in: see [`skeleton`].
    Skeleton,
}

/// Fingerprint and normalised text of `sql`, in one pass.
pub fn fingerprint(sql: &str, opts: LexOptions) -> (Fingerprint, String) {
    let normalized = normalize(sql, opts);
    (Fingerprint::of_normalized(&normalized), normalized)
}

/// [`fingerprint`] and [`literal_digest`] in one lexer pass: the proxy
/// needs both for every statement when behaviour baselines are on.
pub fn fingerprint_with_values(sql: &str, opts: LexOptions) -> (Fingerprint, String, Option<u64>) {
    let mut n = Normalizer::new(sql.len().min(MAX_PREALLOC), Output::Normalized);
    let mut d = ValueDigest::default();
    for tok in Lexer::new(sql, opts) {
        if matches!(tok.kind, TokenKind::Number | TokenKind::String) {
            d.push(tok.text.as_bytes());
        }
        n.push(tok);
    }
    let normalized = n.finish();
    (
        Fingerprint::of_normalized(&normalized),
        normalized,
        d.finish(),
    )
}

/// Which literal list a word introduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListIntro {
    None,
    In,
    Values,
    Array,
}

/// What the normaliser must remember about a word it emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WordClass {
    /// A following `(` is not a call: separate it (`in (`, `exists (`).
    space_before_paren: bool,
    /// A following `-`/`+` is unary (`where -1`, `and -1`).
    unary_after: bool,
    list: ListIntro,
    /// `null`, `true`, `false`: may stand in a collapsible literal list.
    literal_like: bool,
    /// sqlparser wants a number literal after it (skeleton only).
    number_after: bool,
}

/// Words longer than this are never keywords the normaliser cares about.
const MAX_KEYWORD_LEN: usize = 12;

fn classify_word(text: &str) -> WordClass {
    let mut class = WordClass {
        space_before_paren: false,
        unary_after: false,
        list: ListIntro::None,
        literal_like: false,
        number_after: false,
    };
    if text.len() > MAX_KEYWORD_LEN {
        return class;
    }
    let mut buf = [0u8; MAX_KEYWORD_LEN];
    let lower = &mut buf[..text.len()];
    lower.copy_from_slice(text.as_bytes());
    lower.make_ascii_lowercase();
    let (paren, unary) = match &*lower {
        b"in" => {
            class.list = ListIntro::In;
            (true, true)
        }
        b"values" => {
            class.list = ListIntro::Values;
            (true, true)
        }
        b"array" => {
            class.list = ListIntro::Array;
            (false, true)
        }
        b"null" | b"true" | b"false" => {
            class.literal_like = true;
            (false, false)
        }
        b"and" | b"or" | b"not" | b"select" | b"where" | b"when" | b"then" | b"else"
        | b"between" | b"like" | b"ilike" | b"is" | b"on" | b"having" | b"case" | b"returning"
        | b"set" | b"exists" | b"distinct" | b"by" | b"return" => (true, true),
        b"limit" | b"offset" | b"default" | b"any" | b"some" | b"all" => (false, true),
        b"as" | b"from" | b"join" | b"using" | b"over" | b"filter" | b"within" | b"with"
        | b"union" | b"intersect" | b"except" | b"lateral" | b"conflict" | b"key" | b"unique"
        | b"check" | b"into" | b"do" | b"explain" | b"vacuum" | b"copy" => (true, false),
        _ => (false, false),
    };
    class.space_before_paren = paren;
    class.unary_after = unary;
    class
}

/// Words after which sqlparser accepts only a number literal (FETCH 10,
/// LIMIT 10, INCREMENT BY 1, START WITH 1, CACHE 20, COST 100, …); after
/// any other word the skeleton writes a string (typed literals such as
/// `DATE ''`, `AS ''` bodies, `FROM ''` in COPY).
fn wants_number(word: &str) -> bool {
    const WORDS: &[&str] = &[
        "fetch",
        "move",
        "forward",
        "backward",
        "absolute",
        "relative",
        "first",
        "next",
        "prior",
        "last",
        "limit",
        "offset",
        "rows",
        "cost",
        "increment",
        "by",
        "minvalue",
        "maxvalue",
        "start",
        "with",
        "cache",
        "modulus",
        "remainder",
        "restart",
        "bucket",
        "of",
        "top",
        "auto_increment",
        "all",
        // MySQL: KILL [CONNECTION | QUERY] id
        "kill",
        "connection",
        "query",
    ];
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(word))
}

/// The class of the last token written, which decides spacing, whether a
/// sign is unary, and whether a list can collapse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prev {
    Start,
    Word(WordClass),
    QuotedIdent,
    Literal { string: bool },
    Operator,
    Cast,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Semicolon,
    Other,
}

impl Prev {
    fn unary_context(self) -> bool {
        match self {
            Prev::Start
            | Prev::Operator
            | Prev::LParen
            | Prev::LBracket
            | Prev::Comma
            | Prev::Semicolon => true,
            Prev::Word(w) => w.unary_after,
            _ => false,
        }
    }
}

fn needs_space(prev: Prev, cur: Prev) -> bool {
    match (prev, cur) {
        (Prev::Start | Prev::LParen | Prev::LBracket | Prev::Dot | Prev::Cast, _) => false,
        (
            _,
            Prev::RParen | Prev::RBracket | Prev::Comma | Prev::Dot | Prev::Cast | Prev::Semicolon,
        ) => false,
        (Prev::Word(w), Prev::LParen) => w.space_before_paren,
        (Prev::QuotedIdent, Prev::LParen) => false,
        (Prev::Word(_) | Prev::QuotedIdent | Prev::RParen | Prev::RBracket, Prev::LBracket) => {
            false
        }
        _ => true,
    }
}

/// A parenthesised or bracketed list that may still collapse to `(?+)`.
#[derive(Debug, Clone, Copy)]
struct LiteralList {
    /// Output offset of the opening bracket.
    open_at: usize,
    close: TokenKind,
    /// A `VALUES` row (so the next row may merge into it).
    values_row: bool,
    /// A row after an already collapsed `VALUES` row: on success, drop it.
    continues_row: bool,
    items: u32,
    expecting_item: bool,
}

struct Normalizer {
    out: String,
    output: Output,
    prev: Prev,
    /// A `-`/`+` in unary position, held back until we know whether a
    /// number follows (then it is part of the literal).
    pending_sign: Option<&'static str>,
    /// A `;` seen; written only if something follows.
    pending_semicolon: bool,
    list: Option<LiteralList>,
    /// Output length just after the last collapsed `VALUES` row.
    values_end: Option<usize>,
    /// Skeleton only: the statement takes string literals in lists too
    /// (`ENUM ('a', 'b')`, `NOTIFY chan, 'payload'`).
    string_lists: bool,
    /// The last token was a comment that runs to the end of the input if
    /// nothing follows it: a line comment (its line break, if any, is the
    /// next token) or an unterminated block comment.
    open_comment: bool,
}

impl Normalizer {
    fn new(cap: usize, output: Output) -> Self {
        Self {
            out: String::with_capacity(cap),
            output,
            prev: Prev::Start,
            pending_sign: None,
            pending_semicolon: false,
            list: None,
            values_end: None,
            string_lists: false,
            open_comment: false,
        }
    }

    fn push(&mut self, tok: Token<'_>) {
        self.open_comment = tok.kind == TokenKind::Comment
            && (!tok.terminated || tok.text.starts_with("--") || tok.text.starts_with('#'));
        match tok.kind {
            TokenKind::Whitespace | TokenKind::Comment => return,
            TokenKind::Semicolon => {
                self.flush_sign();
                self.list = None;
                self.string_lists = false;
                self.pending_semicolon = true;
                return;
            }
            _ => {}
        }
        if self.pending_semicolon {
            self.pending_semicolon = false;
            if !self.out.is_empty() {
                self.emit(";", Prev::Semicolon, false);
            }
        }
        if tok.kind == TokenKind::Number && self.pending_sign.take().is_some() {
            self.literal(false);
            return;
        }
        self.flush_sign();
        match tok.kind {
            TokenKind::Operator if self.prev.unary_context() && is_sign(tok.text).is_some() => {
                self.pending_sign = is_sign(tok.text);
            }
            TokenKind::Number | TokenKind::Param => self.literal(false),
            TokenKind::String => {
                // 'a' 'b' is one literal in PostgreSQL (and MySQL).
                if self.prev != (Prev::Literal { string: true }) {
                    self.literal(true);
                }
            }
            TokenKind::Word => {
                let mut class = classify_word(tok.text);
                if self.output == Output::Skeleton {
                    class.number_after = wants_number(tok.text);
                    self.string_lists |= tok.text.eq_ignore_ascii_case("enum")
                        || tok.text.eq_ignore_ascii_case("notify");
                }
                self.emit(tok.text, Prev::Word(class), true)
            }
            TokenKind::QuotedIdent => self.emit(tok.text, Prev::QuotedIdent, false),
            TokenKind::Operator => self.emit(tok.text, Prev::Operator, false),
            TokenKind::Cast => self.emit(tok.text, Prev::Cast, false),
            TokenKind::LParen => self.emit(tok.text, Prev::LParen, false),
            TokenKind::RParen => self.emit(tok.text, Prev::RParen, false),
            TokenKind::LBracket => self.emit(tok.text, Prev::LBracket, false),
            TokenKind::RBracket => self.emit(tok.text, Prev::RBracket, false),
            TokenKind::Comma => self.emit(tok.text, Prev::Comma, false),
            TokenKind::Dot => self.emit(tok.text, Prev::Dot, false),
            TokenKind::Other => self.emit(tok.text, Prev::Other, false),
            TokenKind::Ambiguous => {
                // As a backtick-quoted identifier (`'`, `--`): a bare quote
                // would pair with a later one and read back as a different
                // token, and the normalised text must determine the tokens.
                let quoted = format!("`{}`", tok.text.replace('`', "``"));
                self.emit(&quoted, Prev::QuotedIdent, false)
            }
            TokenKind::Whitespace | TokenKind::Comment | TokenKind::Semicolon => {}
        }
    }

    fn literal(&mut self, string: bool) {
        let text = match (self.output, self.prev) {
            (Output::Normalized, _) => "?",
            (Output::Skeleton, Prev::Word(w)) if !w.number_after => "''",
            (Output::Skeleton, _) if self.string_lists => "''",
            (Output::Skeleton, _) => "0",
        };
        self.emit(text, Prev::Literal { string }, false);
    }

    fn flush_sign(&mut self) {
        if let Some(sign) = self.pending_sign.take() {
            self.emit(sign, Prev::Operator, false);
        }
    }

    fn emit(&mut self, text: &str, class: Prev, lowercase: bool) {
        if self.track_list(class) {
            return;
        }
        if needs_space(self.prev, class) {
            self.out.push(' ');
        }
        let at = self.out.len();
        self.out.push_str(text);
        if lowercase {
            if let Some(s) = self.out.get_mut(at..) {
                s.make_ascii_lowercase();
            }
        }
        if matches!(class, Prev::LParen | Prev::LBracket) {
            self.open_list(class, at);
        }
        self.prev = class;
    }

    /// Starts a literal list at an opening bracket written at `at`, if the
    /// context makes it one (`in (`, `values (`, `array[`, or a row right
    /// after a collapsed `VALUES` row).
    fn open_list(&mut self, class: Prev, at: usize) {
        let continues_row =
            self.prev == Prev::Comma && self.values_end.is_some_and(|end| at == end + 2);
        let (close, values_row) = match (class, self.prev) {
            (Prev::LParen, Prev::Word(w)) if w.list == ListIntro::In => (TokenKind::RParen, false),
            (Prev::LParen, Prev::Word(w)) if w.list == ListIntro::Values => {
                (TokenKind::RParen, true)
            }
            (Prev::LParen, _) if continues_row => (TokenKind::RParen, true),
            (Prev::LBracket, Prev::Word(w)) if w.list == ListIntro::Array => {
                (TokenKind::RBracket, false)
            }
            _ => {
                self.list = None;
                return;
            }
        };
        self.list = Some(LiteralList {
            open_at: at,
            close,
            values_row,
            continues_row,
            items: 0,
            expecting_item: true,
        });
    }

    /// Feeds `class` to the open literal list. Returns true when the token
    /// closed a list that collapsed (so it must not be written).
    fn track_list(&mut self, class: Prev) -> bool {
        let Some(mut list) = self.list.take() else {
            return false;
        };
        let item = match class {
            Prev::Literal { .. } => true,
            Prev::Word(w) => w.literal_like,
            _ => false,
        };
        let closes = matches!(
            (class, list.close),
            (Prev::RParen, TokenKind::RParen) | (Prev::RBracket, TokenKind::RBracket)
        );
        if item && list.expecting_item {
            list.items += 1;
            list.expecting_item = false;
            self.list = Some(list);
        } else if class == Prev::Comma && !list.expecting_item {
            list.expecting_item = true;
            self.list = Some(list);
        } else if closes && !list.expecting_item && list.items > 0 {
            match (list.continues_row, self.values_end) {
                (true, Some(end)) => self.out.truncate(end),
                _ => {
                    self.out.truncate(list.open_at);
                    let bracket = list.close == TokenKind::RBracket;
                    self.out.push_str(match (self.output, bracket) {
                        (Output::Normalized, true) => "[?+]",
                        (Output::Normalized, false) => "(?+)",
                        (Output::Skeleton, true) => "[0]",
                        (Output::Skeleton, false) => "(0)",
                    });
                    if list.values_row {
                        self.values_end = Some(self.out.len());
                    }
                }
            }
            self.prev = class;
            return true;
        }
        false
    }

    fn finish(mut self) -> String {
        self.flush_sign();
        // After `;` the comment belongs to no statement.
        let truncated = self.open_comment && !self.pending_semicolon && !self.out.is_empty();
        if truncated && self.output == Output::Normalized {
            self.out.push_str(TRUNCATION_MARKER);
        }
        self.out
    }
}

fn is_sign(op: &str) -> Option<&'static str> {
    match op {
        "-" => Some("-"),
        "+" => Some("+"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lexer::test_options::{MY, PG, PG_OLD};

    #[test]
    fn normal_forms() {
        let cases: &[(&str, LexOptions, &str)] = &[
            (
                "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
                PG,
                "select abalance from pgbench_accounts where aid = ?",
            ),
            (
                "UPDATE pgbench_accounts SET abalance = abalance + -4037 WHERE aid = 77;",
                PG,
                "update pgbench_accounts set abalance = abalance + ? where aid = ?",
            ),
            (
                "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 77, -4037, CURRENT_TIMESTAMP);",
                PG,
                "insert into pgbench_history(tid, bid, aid, delta, mtime) values (?, ?, ?, ?, current_timestamp)",
            ),
            ("select * from t where id in (1, 2, 3)", PG, "select * from t where id in (?+)"),
            ("select * from t where id IN ($1,$2)", PG, "select * from t where id in (?+)"),
            ("insert into t values (1,'a'),(2,'b'),(3,null)", PG, "insert into t values (?+)"),
            (
                "insert into t values (1, now()), (2, now())",
                PG,
                "insert into t values (?, now()), (?, now())",
            ),
            ("insert into t values (1), (default)", PG, "insert into t values (?+), (default)"),
            ("select * from t where id = any(array[1,2,3])", PG, "select * from t where id = any(array[?+])"),
            ("select * from t where x in (select y from u)", PG, "select * from t where x in (select y from u)"),
            ("select f(1, 2), count(*)", PG, "select f(?, ?), count(*)"),
            ("SELECT \"Foo\".\"Bar\", Baz FROM \"S\".T", PG, "select \"Foo\".\"Bar\", baz from \"S\".t"),
            ("select 'a'\n'b'", PG, "select ?"),
            ("select E'\\'', U&'\\0041', B'101', X'FF', $$x$$, $t$y$t$", PG, "select ?, ?, ?, ?, ?, ?"),
            ("select 1e5, .5, 0x1F, 1.5E-3, -2, +3", PG, "select ?, ?, ?, ?, ?, ?"),
            ("select a-1, a - -1, -a", PG, "select a - ?, a - ?, - a"),
            ("select x::int, a[1], t.*", PG, "select x::int, a[?], t.*"),
            ("select 1;;  select 2 ;", PG, "select ?; select ?"),
            ("  ; ; ", PG, ""),
            ("-- only a comment", PG, ""),
            ("select /* a /* nested */ b */ 1 -- tail", PG, "select ? --"),
            ("select /* a /* nested */ b */ 1 -- tail\n", PG, "select ?"),
            ("select 'x' -- ; drop table t", PG, "select ? --"),
            ("select data ? 'k' from t", PG, "select data ? ? from t"),
            ("select 'it''s'", PG, "select ?"),
            ("select '\\' as x", PG, "select ? as x"),
            ("select '\\'' as x", PG_OLD, "select ? as x"),
            ("select 'unterminated", PG, "select ?"),
            ("select 1 /* unterminated", PG, "select ? --"),
            ("select Ünïcode, \"Ünïcode\" from Täble", PG, "select Ünïcode, \"Ünïcode\" from täble"),
            // MySQL
            ("SELECT `Col` FROM t WHERE a = \"x\" # c", MY, "select `Col` from t where a = ? --"),
            ("select /*!40101 sleep(5) */ 1", MY, "select sleep(?) ?"),
            ("select * from t where a = ? and b in (?, ?)", MY, "select * from t where a = ? and b in (?+)"),
        ];
        for (sql, opts, want) in cases {
            assert_eq!(normalize(sql, *opts), *want, "normalising {sql:?}");
        }
    }

    #[test]
    fn truncation_marker() {
        // (input, options, normalised): the marker appears only when a
        // comment runs to the end of input after a token of the statement.
        let cases: &[(&str, LexOptions, &str)] = &[
            (
                "select * from users where name = 'admin'--",
                PG,
                "select * from users where name = ? --",
            ),
            (
                "select * from users where name = '' or '1'='1' --'",
                PG,
                "select * from users where name = ? or ? = ? --",
            ),
            ("select 1 -- c", PG, "select ? --"),
            ("select 1 --", PG, "select ? --"),
            ("select 1 -- c\n", PG, "select ?"),
            ("select 1 -- c\r", PG, "select ?"),
            ("select 1 -- c\n  ", PG, "select ?"),
            ("select 1 -- a\n-- b", PG, "select ? --"),
            ("select 1 /* c */", PG, "select ?"),
            ("select 1 /* c */ -- d", PG, "select ? --"),
            ("select 1 -- c\n/* d */", PG, "select ?"),
            ("select 1 /* unterminated", PG, "select ? --"),
            ("select 1 /* a /* b */", PG, "select ? --"),
            ("select 1; -- note", PG, "select ?"),
            ("select 1; /* open", PG, "select ?"),
            ("select 1; select 2 -- c", PG, "select ?; select ? --"),
            ("select -- c", PG, "select --"),
            ("-- only a comment", PG, ""),
            ("/* only a comment", PG, ""),
            (
                "select a from t where a = 1 or 1 -- ",
                MY,
                "select a from t where a = ? or ? --",
            ),
            ("select a from t # c", MY, "select a from t --"),
            ("select a from t # c\n", MY, "select a from t"),
            // MySQL: `--` without a following space is not a comment.
            ("select 1 --1", MY, "select ? - ?"),
        ];
        for (sql, opts, want) in cases {
            assert_eq!(normalize(sql, *opts), *want, "normalising {sql:?}");
            let skeleton = skeleton(sql, *opts);
            assert!(
                !skeleton.ends_with(TRUNCATION_MARKER),
                "{sql:?} -> {skeleton:?}"
            );
        }
    }

    #[test]
    fn same_fingerprint() {
        let groups: &[&[&str]] = &[
            &[
                "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
                "select abalance from pgbench_accounts where aid=1",
                "select   abalance\n\tfrom pgbench_accounts -- c\n where aid = $1",
                "/* app */ SeLeCt abalance FROM pgbench_accounts WHERE aid = -7",
            ],
            &[
                "select * from t where id in (1)",
                "select * from t where id in (1, 2, 3, 4, 5, 6, 7, 8)",
                "select * from t where id in ('a', 'b')",
                "select * from t where id in ($1, $2, $3)",
            ],
            &[
                "insert into t (a, b) values (1, 'x')",
                "insert into t (a, b) values (1, 'x'), (2, 'y'), (3, 'z')",
                "INSERT INTO t(a,b) VALUES ($1,$2),($3,$4)",
            ],
            &[
                "select 'a'",
                "select $$a$$",
                "select E'a\\n'",
                "select 1.5e3",
            ],
            &[
                "update t set a = 1 where b = 'x'",
                "update t set a=-1 where b=E'y'",
            ],
        ];
        for group in groups {
            let first = fingerprint(group[0], PG);
            for sql in &group[1..] {
                assert_eq!(fingerprint(sql, PG), first, "{sql:?} vs {:?}", group[0]);
            }
        }
    }

    #[test]
    fn different_fingerprint() {
        let pairs: &[(&str, &str)] = &[
            ("select a from t", "select a from u"),
            ("select a from t", "select b from t"),
            ("select a from t where x = 1", "select a from t where x > 1"),
            (
                "select a from t where x = 1",
                "select a from t where x = 1 or 1 = 1",
            ),
            ("select a from \"T\"", "select a from t"),
            ("select a from \"T\"", "select a from \"t\""),
            ("select a from t", "select a from s.t"),
            ("select f(1)", "select g(1)"),
            ("select f(1, 2)", "select f(1)"),
            ("delete from t", "delete from t where a = 1"),
            ("select 1", "select 1; select 1"),
            ("select a - 1", "select a + 1"),
            ("select 'a'", "select a"),
        ];
        for (a, b) in pairs {
            assert_ne!(fingerprint(a, PG).0, fingerprint(b, PG).0, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        let cases: &[(&str, u64)] = &[
            ("", 0xcbf29ce484222325),
            ("a", 0xaf63dc4c8601ec8c),
            ("foobar", 0x85944171f73967e8),
        ];
        for (text, want) in cases {
            assert_eq!(
                Fingerprint::of_normalized(text),
                Fingerprint(*want),
                "{text:?}"
            );
        }
    }

    #[test]
    fn display_and_parse_round_trip() {
        for v in [0u64, 1, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            let fp = Fingerprint(v);
            let text = fp.to_string();
            assert_eq!(text.len(), FINGERPRINT_HEX_LEN);
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            assert_eq!(text.parse::<Fingerprint>().ok(), Some(fp));
        }
        for bad in [
            "",
            "123",
            "0123456789abcdeg",
            "0123456789abcdef0",
            "+123456789abcdef",
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn skeleton_forms() {
        let cases: &[(&str, &str)] = &[
            (
                "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
                "select abalance from pgbench_accounts where aid = 0",
            ),
            (
                "insert into t (a, b) values (1, 'x'), (2, 'y')",
                "insert into t(a, b) values (0)",
            ),
            (
                "select * from t where d > date '2020-01-01' - interval '1 day'",
                "select * from t where d > date '' - interval ''",
            ),
            (
                "create table t (a varchar(255), b numeric(10, 2) default 0)",
                "create table t(a varchar(0), b numeric(0, 0) default '')",
            ),
            (
                "create function f() returns int as $$ select 1 $$ language sql",
                "create function f() returns int as '' language sql",
            ),
            ("copy t from '/etc/passwd'", "copy t from ''"),
            (
                "select data ? 'k', $1, -5, array[1, 2]",
                "select data ? 0, 0, 0, array[0]",
            ),
            ("select E'topsecret\\'' || 'x'", "select '' || 0"),
            ("fetch 10 from c", "fetch 0 from c"),
            (
                "create type mood as enum ('sad', 'ok'); select a = 1",
                "create type mood as enum('', ''); select a = 0",
            ),
            ("notify chan, 'payload'", "notify chan, ''"),
            (
                "alter sequence s increment by 5 restart with 1 cache 20",
                "alter sequence s increment by 0 restart with 0 cache 0",
            ),
            (
                "select * from t limit 10 offset 5",
                "select * from t limit 0 offset 0",
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(skeleton(sql, PG), *want, "{sql}");
        }
        // Token-for-token parallel to the normalised text.
        for sql in [
            "select 'a', 1, $1 from t where x in (1, 2)",
            "values (1), (2)",
            "select -1",
        ] {
            let n = normalize(sql, PG);
            let s = skeleton(sql, PG);
            let back = s
                .replace("(0)", "(?+)")
                .replace("''", "?")
                .replace('0', "?");
            assert_eq!(back, n, "{sql}");
        }
    }

    #[test]
    fn literal_digests_follow_values_not_shape() {
        let o = LexOptions::default();
        let a = literal_digest("select * from t where id = 1", o);
        assert!(a.is_some());
        assert_eq!(a, literal_digest("SELECT *  FROM t WHERE id=1 -- c", o));
        assert_ne!(a, literal_digest("select * from t where id = 2", o));
        assert_eq!(literal_digest("select * from t", o), None);
        assert_ne!(
            literal_digest("select 'ab', 'c'", o),
            literal_digest("select 'a', 'bc'", o)
        );
        let sql = "select * from t where name = 'x' and id = 7";
        let (fp, n, v) = fingerprint_with_values(sql, o);
        assert_eq!((fp, n), fingerprint(sql, o));
        assert_eq!(v, literal_digest(sql, o));
        let mut d = ValueDigest::default();
        assert_eq!(d.finish(), None);
        d.push(b"1");
        assert_eq!(d.finish(), literal_digest("select 1", o));
    }
}
