//! Sans-IO wire codecs for danxia.
//!
//! Owns the byte layouts of the database protocols the proxy speaks: framing
//! (how long is the next message, is it complete, is it too large), decoding
//! of the few messages policy needs, and encoding of the few messages the
//! proxy sends itself (deny replies, probes, test clients).
//!
//! Must never: touch a socket, an async runtime or policy; allocate where it
//! can borrow from the input; or panic on any input, however hostile. The
//! proxy forwards the client's original bytes itself, so decoders only look.
//!
//! PostgreSQL v3 lives in [`pg`], the MySQL/MariaDB client/server protocol
//! 4.1 in [`mysql`]; HTTP response bodies (content codings, streaming JSON
//! rewriting) in [`http`].
// No unsafe code. The unit tests' allocation probe (pg::rows, a counting
// GlobalAlloc wrapper around System) needs `unsafe impl`, so test builds
// deny instead of forbid and that one module allows it.
#![cfg_attr(not(test), forbid(unsafe_code))]
#![cfg_attr(test, deny(unsafe_code))]

mod error;
pub mod http;
pub mod mysql;
pub mod pg;

pub use error::ProtocolError;
