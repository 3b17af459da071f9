//! The crate's single error type.
//!
//! Owns every way a byte sequence can fail to be a valid protocol message.
//! Must never carry message contents (SQL, passwords): variants hold only
//! static descriptions and numbers, so an error is always safe to log.

/// Why bytes could not be framed or decoded.
///
/// "Need more bytes" is not an error: framing functions answer `Ok(None)` for
/// it, so every variant here is a protocol violation the caller should turn
/// into a disconnect or an `08P01` reply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The length field of a tagged message is below 4 (it counts itself).
    #[error("message length {len} is below the minimum of 4")]
    LengthTooSmall { len: u32 },

    /// The length field of a startup-phase packet is below 8 (length + code).
    #[error("startup packet length {len} is below the minimum of 8")]
    StartupLengthTooSmall { len: u32 },

    /// The announced message is larger than the configured limit; refused
    /// before buffering it so a client cannot make the proxy allocate at will.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { len: usize, max: usize },

    /// The message is structurally wrong: truncated, missing a terminator,
    /// trailing bytes, an impossible count or an unknown code.
    #[error("malformed {message} message: {reason}")]
    Malformed {
        message: &'static str,
        reason: &'static str,
    },

    /// A text field is not UTF-8; the decoders hand out `&str` and never
    /// convert lossily, because a firewall must not analyse different text
    /// from the text the server will execute.
    #[error("{message} message field is not valid UTF-8")]
    InvalidUtf8 { message: &'static str },

    /// A startup packet asked for a protocol this codec does not speak.
    #[error("unsupported protocol version {major}.{minor}")]
    UnsupportedProtocol { major: u16, minor: u16 },
}
