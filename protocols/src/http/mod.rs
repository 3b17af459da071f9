//! HTTP body helpers for the API proxy.
//!
//! Owns the two byte-level transformations a response body goes through on
//! its way from a department's API to a caller: Content-Encoding
//! ([`encoding`]: gzip, deflate, brotli, decoded and re-encoded as a
//! stream with a hard output bound) and JSON ([`json`]: a streaming
//! scanner/rewriter that walks the document with a policy visitor and
//! removes or replaces fields in bounded memory).
//!
//! It also reads the what the listener reads from a request ([`request`]: bearer
//! token, query-string API key, JWT header, query pairs, content type), pure so they can be fuzzed.
//!
//! Must never: touch a socket or an async runtime, decide policy (the
//! visitor does), buffer a whole body, or panic on any input.

pub mod encoding;
pub mod json;
pub mod request;

#[cfg(test)]
mod encoding_tests;
#[cfg(test)]
mod json_prop;
