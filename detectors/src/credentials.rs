//! Credentials written as SQL literals: `CREATE ROLE … PASSWORD 'x'`,
//! `ALTER USER … IDENTIFIED BY 'x'`, `SET PASSWORD = PASSWORD('x')`,
//! `CREATE USER MAPPING … OPTIONS (password 'x')`. The audit log and the
//! alerts keep statement text for months and ship it to a SOC, so a
//! password typed into a statement must not travel with it: this module
//! finds those literals and rewrites only them. It owns nothing else and
//! must never change what the server receives (the proxy forwards the
//! original text; only the audited copy is redacted).
//!
//! Lexer-based rather than parser-based because the audit needs it for
//! every statement, including ones sqlparser cannot parse (MariaDB's
//! `IDENTIFIED VIA ed25519 USING PASSWORD('x')`), and a cheap byte scan
//! skips statements that mention neither keyword.
//!
//! Rules (a literal is a [`TokenKind::String`] token):
//! - `PASSWORD` followed by a literal, optionally after `(` and/or `=`:
//!   PostgreSQL's `[ENCRYPTED] PASSWORD 'x'`, MySQL's `PASSWORD('x')`,
//!   `IDENTIFIED BY PASSWORD '*hash'`, an `OPTIONS (password 'x')` item,
//!   and `WHERE password = 'x'` (a credential too).
//! - In an `IDENTIFIED …` clause, a literal right after `BY`, `AS` or
//!   `USING` (MySQL/MariaDB authentication plugins' secrets and hashes);
//!   plugin names after `WITH`/`VIA` are kept.
//! - `SET PASSWORD [FOR user] = 'x'`: the literal after the `=`.

use std::borrow::Cow;

use crate::lexer::{LexOptions, Lexer, Token, TokenKind};

/// What replaces a redacted literal: still a valid literal, so the audited
/// text reads as SQL, and the same length whatever the secret was.
pub const REDACTED_LITERAL: &str = "'******'";

/// Significant tokens an `IDENTIFIED` clause is searched for secrets:
/// `IDENTIFIED WITH plugin BY 'x'` is 4, `IDENTIFIED VIA a USING 'x' OR b
/// USING 'y'` is 8; a bound keeps the scan linear.
const IDENTIFIED_CLAUSE_TOKENS: usize = 16;

/// The text of `sql` with every credential literal replaced by
/// [`REDACTED_LITERAL`], or `None` when it has none (the common case, found
/// without lexing).
pub fn redact_credentials(sql: &str, opts: LexOptions) -> Option<String> {
    if !mentions(sql.as_bytes(), b"password") && !mentions(sql.as_bytes(), b"identified") {
        return None;
    }
    let tokens: Vec<Token<'_>> = Lexer::new(sql, opts)
        .filter(|t| t.kind.is_significant())
        .collect();
    let mut secret = vec![false; tokens.len()];
    let mut set_password = false;
    for (i, t) in tokens.iter().enumerate() {
        if t.kind == TokenKind::Semicolon {
            set_password = false;
            continue;
        }
        if t.is_word("password") {
            let at_start = i == 1 || (i >= 2 && tokens[i - 2].kind == TokenKind::Semicolon);
            if at_start && tokens[i - 1].is_word("set") {
                set_password = true;
            }
            if let Some(j) = literal_after(&tokens, i + 1, &["(", "="]) {
                secret[j] = true;
            }
        } else if t.is_word("identified") {
            let end = (i + 1 + IDENTIFIED_CLAUSE_TOKENS).min(tokens.len());
            for k in i + 1..end {
                let tk = &tokens[k];
                if matches!(tk.kind, TokenKind::Comma | TokenKind::Semicolon) {
                    break;
                }
                if (tk.is_word("by") || tk.is_word("as") || tk.is_word("using"))
                    && tokens
                        .get(k + 1)
                        .is_some_and(|n| n.kind == TokenKind::String)
                {
                    secret[k + 1] = true;
                }
            }
        } else if set_password && t.kind == TokenKind::Operator && t.text == "=" {
            if let Some(j) = literal_after(&tokens, i + 1, &[]) {
                secret[j] = true;
            }
        }
    }
    if !secret.contains(&true) {
        return None;
    }
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for (t, _) in tokens.iter().zip(&secret).filter(|(_, s)| **s) {
        out.push_str(&sql[copied..t.start]);
        out.push_str(REDACTED_LITERAL);
        copied = t.end();
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

/// [`redact_credentials`] as a `Cow`: borrowed when there is nothing to hide.
pub fn redacted(sql: &str, opts: LexOptions) -> Cow<'_, str> {
    match redact_credentials(sql, opts) {
        Some(s) => Cow::Owned(s),
        None => Cow::Borrowed(sql),
    }
}

/// The index of a literal at `from`, after skipping at most one of each
/// punctuation text in `skip` (in order).
fn literal_after(tokens: &[Token<'_>], mut from: usize, skip: &[&str]) -> Option<usize> {
    for p in skip {
        if tokens.get(from).is_some_and(|t| t.text == *p) {
            from += 1;
        }
    }
    tokens
        .get(from)
        .filter(|t| t.kind == TokenKind::String)
        .map(|_| from)
}

/// Whether `hay` contains `needle` (lower-case ASCII), ignoring ASCII case.
fn mentions(hay: &[u8], needle: &[u8]) -> bool {
    let (first, rest) = match needle.split_first() {
        Some(x) => x,
        None => return true,
    };
    memchr::memchr2_iter(*first, first.to_ascii_uppercase(), hay).any(|i| {
        hay.get(i + 1..i + 1 + rest.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(rest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::Dialect;

    fn pg(sql: &str) -> String {
        redacted(sql, LexOptions::for_dialect(Dialect::Postgres)).into_owned()
    }

    fn my(sql: &str) -> String {
        redacted(sql, LexOptions::for_dialect(Dialect::MySql)).into_owned()
    }

    #[test]
    fn postgres_role_passwords_are_redacted() {
        for (sql, want) in [
            (
                "CREATE ROLE pw_user LOGIN PASSWORD 'Pw-Secret-7f3a91c2'",
                "CREATE ROLE pw_user LOGIN PASSWORD '******'",
            ),
            (
                "alter user bob with encrypted password 'SCRAM-SHA-256$4096:abc'",
                "alter user bob with encrypted password '******'",
            ),
            (
                "ALTER ROLE x PASSWORD E'it\\'s'",
                "ALTER ROLE x PASSWORD '******'",
            ),
            (
                "alter role x password $$dollar$$ valid until 'infinity'",
                "alter role x password '******' valid until 'infinity'",
            ),
            (
                "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password 'fdw-secret')",
                "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password '******')",
            ),
            (
                "select 1; create role a password 'one'; create role b password 'two'",
                "select 1; create role a password '******'; create role b password '******'",
            ),
        ] {
            assert_eq!(pg(sql), want, "{sql}");
        }
    }

    #[test]
    fn mysql_and_mariadb_credentials_are_redacted() {
        for (sql, want) in [
            (
                "CREATE USER 'dx'@'%' IDENTIFIED BY 'native-pw'",
                "CREATE USER 'dx'@'%' IDENTIFIED BY '******'",
            ),
            (
                "create user dx_ed identified via ed25519 using password('ed-pw')",
                "create user dx_ed identified via ed25519 using password('******')",
            ),
            (
                "ALTER USER 'a'@'h' IDENTIFIED WITH 'mysql_native_password' AS '*0123ABCD'",
                "ALTER USER 'a'@'h' IDENTIFIED WITH 'mysql_native_password' AS '******'",
            ),
            (
                "CREATE USER a IDENTIFIED BY PASSWORD '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9'",
                "CREATE USER a IDENTIFIED BY PASSWORD '******'",
            ),
            (
                "SET PASSWORD FOR 'bob'@'%' = PASSWORD(\"secret\")",
                "SET PASSWORD FOR 'bob'@'%' = PASSWORD('******')",
            ),
            (
                "set password for bob = '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9'",
                "set password for bob = '******'",
            ),
            (
                "GRANT SELECT ON t.* TO 'u'@'%' IDENTIFIED BY 'grant-pw', 'v'@'%' IDENTIFIED BY 'other'",
                "GRANT SELECT ON t.* TO 'u'@'%' IDENTIFIED BY '******', 'v'@'%' IDENTIFIED BY '******'",
            ),
            (
                "create user x identified via ed25519 using 'hash1' or mysql_native_password using 'hash2'",
                "create user x identified via ed25519 using '******' or mysql_native_password using '******'",
            ),
        ] {
            assert_eq!(my(sql), want, "{sql}");
        }
    }

    #[test]
    fn statements_without_credentials_are_borrowed_unchanged() {
        for sql in [
            "select * from t where id = 'x'",
            "select password from users",
            "insert into users (name, password) values ('a', 'b')",
            "alter role x password null",
            "create user bob identified by random password",
            "select 'identified by' as s",
            "SET PASSWORD",
            "",
        ] {
            let opts = LexOptions::for_dialect(Dialect::MySql);
            assert!(
                matches!(redacted(sql, opts), Cow::Borrowed(_)),
                "{sql} is left alone"
            );
            let opts = LexOptions::for_dialect(Dialect::Postgres);
            assert!(matches!(redacted(sql, opts), Cow::Borrowed(_)), "{sql}");
        }
    }

    #[test]
    fn a_comparison_with_a_password_column_hides_the_value() {
        assert_eq!(
            pg("select id from users where password = 'hunter2'"),
            "select id from users where password = '******'"
        );
    }

    #[test]
    fn comments_and_quoting_do_not_confuse_it() {
        // The keyword inside a comment or a string is not a keyword.
        assert_eq!(
            pg("select '/* password */' , 'x' -- password 'y'"),
            "select '/* password */' , 'x' -- password 'y'"
        );
        assert_eq!(
            pg("alter role x /* note */ password /* c */ 'pw'"),
            "alter role x /* note */ password /* c */ '******'"
        );
        // Unterminated: still hidden (the server will reject it anyway).
        assert_eq!(
            pg("alter role x password 'unterminated"),
            "alter role x password '******'"
        );
    }

    #[test]
    fn mentions_ignores_case_and_handles_edges() {
        assert!(mentions(b"xPaSsWoRd", b"password"));
        assert!(!mentions(b"passwor", b"password"));
        assert!(!mentions(b"", b"password"));
        assert!(mentions(b"IDENTIFIED", b"identified"));
    }
}
