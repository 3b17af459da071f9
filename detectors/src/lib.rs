//! Pure SQL analysis for danxia: what a statement is, what it touches, and
//! the fingerprint its facts and decisions are cached by. No I/O, no global
//! state, and no panics on any input: everything here runs on text an
//! attacker chose.
//!
//! Two speeds, by design. [`normalize`] / [`fingerprint`] and
//! [`split_statements`] are one pass of a hand-written lexer (well under a
//! microsecond for a typical statement) and run on every statement; the
//! proxy caches [`StatementFacts`] by fingerprint, so [`analyze`] — which
//! adds a sqlparser parse, 8–30 µs — runs once per statement shape.
//!
//! The facts of a statement are a function of its normalised text alone
//! (literal values never change them), which is what makes that cache sound.
#![forbid(unsafe_code)]

pub mod baseline;
pub mod credentials;
pub mod error;
pub mod facts;
pub mod fingerprint;
pub mod lexer;
pub mod mask;
#[cfg(test)]
mod mysql_dialect_tests;
pub mod pii;
mod shape;
pub mod signals;
pub mod split;

pub use credentials::{redact_credentials, REDACTED_LITERAL};
pub use error::Error;
pub use facts::{
    analyze, name_matches, Operation, StatementFacts, MAX_ANALYZED_LEN, PARSER_RECURSION_LIMIT,
    PARSE_STACK_RED_ZONE, PARSE_STACK_SIZE,
};
pub use fingerprint::{
    fingerprint, fingerprint_with_values, literal_digest, normalize, Fingerprint, ValueDigest,
    TRUNCATION_MARKER,
};
pub use lexer::{Dialect, LexOptions, Lexer, Token, TokenKind};
pub use pii::{classify_column, default_level, Counts, Kind, Scanner};
pub use signals::Signals;
pub use split::split_statements;

#[cfg(test)]
mod tests {
    //! Properties that span the modules, over pseudo-random input.
    use super::*;

    /// xorshift64*: deterministic, so a failure reproduces from its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    /// Fragments chosen to open and close every lexical context at random.
    const FRAGMENTS: &[&str] = &[
        "select",
        "from",
        "t",
        "where",
        "a",
        "=",
        "1",
        "-",
        "+",
        "'",
        "''",
        "\"",
        "`",
        "$",
        "$$",
        "$t$",
        "$1",
        "E'",
        "U&'",
        "U&\"",
        "X'",
        "/*",
        "*/",
        "--",
        "#",
        "\n",
        " ",
        "  ",
        ";",
        "(",
        ")",
        "[",
        "]",
        ",",
        ".",
        "::",
        "\\",
        "in",
        "values",
        "with",
        "as",
        "begin",
        "atomic",
        "end",
        "case",
        "create",
        "function",
        "explain",
        "analyze",
        "copy",
        "to",
        "é",
        "表",
        "?",
        "1e5",
        ".5",
        "0x",
        "/*!",
        "insert",
        "into",
        "delete",
        "update",
        "set",
        "table",
        "do",
        // MySQL: versioned and MariaDB executable comments, variables,
        // compound statements, file access.
        "/*!50000",
        "/*M!",
        "/*!99999 '",
        "@@",
        "@",
        "\\'",
        "if",
        "loop",
        "then",
        "end if",
        "procedure",
        "not atomic",
        "l:",
        "outfile",
        "lock in share mode",
        "\r",
        "--\u{1}",
    ];
    const OPTIONS: [LexOptions; 4] = [
        LexOptions::for_dialect(Dialect::Postgres),
        LexOptions {
            standard_conforming_strings: false,
            ..LexOptions::for_dialect(Dialect::Postgres)
        },
        LexOptions::for_dialect(Dialect::MySql),
        LexOptions {
            no_backslash_escapes: true,
            ansi_quotes: true,
            ..LexOptions::for_dialect(Dialect::MySql)
        },
    ];

    fn random_sql(rng: &mut Rng) -> String {
        let len = (rng.next() % 40) as usize;
        (0..len).map(|_| rng.pick(FRAGMENTS)).collect()
    }

    #[test]
    fn no_panic_and_invariants_on_random_input() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3_000 {
            let sql = random_sql(&mut rng);
            for opts in OPTIONS {
                let (fp, normalized) = fingerprint(&sql, opts);
                assert_eq!(fp, Fingerprint::of_normalized(&normalized));
                assert_eq!(normalized, normalize(&sql, opts));
                // Quoted identifiers keep their spaces; nothing else may.
                if !sql.contains(['"', '`']) {
                    assert_eq!(normalized.trim(), normalized, "{sql:?}");
                    assert!(!normalized.contains("  "), "{sql:?} -> {normalized:?}");
                    assert!(!normalized.ends_with(';'), "{sql:?} -> {normalized:?}");
                }

                // Split slices are in-order, non-overlapping pieces of the input.
                let base = sql.as_ptr() as usize;
                let mut pos = 0;
                for s in split_statements(&sql, opts) {
                    let off = s.as_ptr() as usize - base;
                    assert!(off >= pos && off + s.len() <= sql.len(), "{sql:?}");
                    assert!(!s.is_empty());
                    pos = off + s.len();
                }

                // analyze (sqlparser included) on a third of the cases: it is
                // the slow path.
                if case % 3 == 0 {
                    let facts = analyze(&sql, opts);
                    assert!(!facts.is_empty());
                    let stmts = split_statements(&sql, opts).len();
                    assert_eq!(facts.len(), stmts.max(1), "{sql:?}");
                    for f in &facts {
                        // The truncation signal is read off the marker.
                        assert_eq!(
                            f.normalized.ends_with(TRUNCATION_MARKER),
                            f.signals.contains(Signals::COMMENT_TRUNCATION),
                            "{sql:?}"
                        );
                        assert!(f.columns.windows(2).all(|w| w[0] < w[1]), "{sql:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn no_panic_on_random_bytes() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for _ in 0..2_000 {
            let len = (rng.next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| (rng.next() % 128) as u8).collect();
            let sql = String::from_utf8_lossy(&bytes);
            for opts in OPTIONS {
                let _ = analyze(&sql, opts);
                let _ = split_statements(&sql, opts);
            }
        }
    }
}
