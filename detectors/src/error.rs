//! The crate's one error type. Analysis itself never fails (an unparseable
//! statement still gets facts, with the reason in `parse_error`); these
//! variants name why a statement was not parsed, and the one input this
//! crate does reject: a malformed fingerprint. It must never carry raw SQL
//! beyond a short prefix: errors end up in logs.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// sqlparser rejected the statement; the message is its own.
    #[error("sqlparser: {0}")]
    Parse(String),
    /// The statement's structure exceeds the analysed-length limit.
    #[error("statement not parsed: its skeleton is {len} bytes, over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    /// sqlparser panicked; caught so one statement cannot take the proxy down.
    #[error("sqlparser panicked on this statement")]
    ParserPanicked,
    /// sqlparser found a different number of statements than the splitter.
    #[error("sqlparser read {parsed} statements where the splitter found one")]
    StatementCount { parsed: usize },
    /// MySQL: a quote or comment opened inside a versioned (`/*!NNNNN`) or
    /// MariaDB (`/*M!`) executable comment reaches past a `*/` where the
    /// comment may end, so which text is code depends on the server's
    /// version (see [`crate::lexer`]).
    #[error("statement not parsed: a quote or comment crosses the end of a version-dependent executable comment (/*!NNNNN or /*M!), so what runs depends on the server version")]
    VersionDependentComment,
    /// A fingerprint's text form is not 16 hex digits.
    #[error("not a fingerprint (16 hex digits): {text:?}")]
    BadFingerprint { text: String },
}
