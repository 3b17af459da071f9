//! The proxy crate's error types. Configuration errors carry the file and
//! say what to change; session errors say which peer misbehaved and how, so
//! that the log line, the metric kind and the client's error agree.

use std::path::PathBuf;

use danxia_protocols::ProtocolError;

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Why a session ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("client protocol error: {0}")]
    ClientProtocol(#[from] ProtocolError),
    #[error("backend protocol error: {0}")]
    BackendProtocol(ProtocolError),
    #[error("client I/O: {0}")]
    ClientIo(std::io::Error),
    #[error("backend I/O: {0}")]
    BackendIo(std::io::Error),
    #[error("cannot connect to backend {addr}: {reason}")]
    BackendConnect { addr: String, reason: String },
    #[error("startup not completed within {0:?}")]
    StartupTimeout(std::time::Duration),
    #[error("client closed the connection during startup")]
    ClientGone,
    #[error("{0}")]
    Refused(String),
    /// A result could not be masked: the session ends rather than let it
    /// through.
    #[error("{0}")]
    Masking(#[from] crate::results::RowError),
    /// The client's TLS handshake failed (bad certificate, no certificate
    /// with `client_auth = "required"`, protocol mismatch, timeout).
    #[error("client TLS: {0}")]
    ClientTls(crate::tls::TlsError),
    /// A plaintext client on a listener with `tls.mode = "required"`.
    #[error("this listener requires TLS")]
    TlsRequired,
    /// TLS to the backend could not be established (the server does not
    /// offer it, or its certificate does not verify).
    #[error("backend TLS: {0}")]
    BackendTls(String),
}

impl SessionError {
    /// The bounded label used in `danxia_protocol_errors_total{kind}`.
    pub fn protocol_kind(&self) -> Option<&'static str> {
        match self {
            SessionError::ClientProtocol(e) | SessionError::BackendProtocol(e) => Some(match e {
                ProtocolError::MessageTooLarge { .. } => "message_too_large",
                ProtocolError::UnsupportedProtocol { .. } => "unsupported_protocol",
                _ => "malformed",
            }),
            SessionError::StartupTimeout(_) => Some("startup_timeout"),
            SessionError::ClientTls(_) => Some("tls_handshake"),
            _ => None,
        }
    }
}
