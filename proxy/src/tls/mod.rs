//! TLS for every listener and backend, on rustls with the `ring` provider
//! (no aws-lc: no cmake or C++ toolchain needed). This module owns
//! certificates, rustls configurations, handshakes, reload and the stream
//! types; it knows no wire protocol. Protocols decide *when* to hand a
//! socket to TLS (PostgreSQL after SSLRequest, MySQL after the SSL request
//! packet, HTTP at once).
//!
//! # API (what listeners and sessions use)
//!
//! Configuration (`config.rs`), deserialized into [`ListenerConfig`](crate::config::ListenerConfig):
//! - [`ListenerTls`] — `[listener.tls]`: `cert`, `key`, `client_ca`
//!   (turns on mTLS), `client_auth` (`required` | `optional`, default
//!   required with `client_ca`; see [`ListenerTls::client_auth`]), `mode`
//!   ([`TlsMode`]: `required` | `optional` plaintext clients), `min_version`
//!   (`"1.2"` | `"1.3"`).
//! - [`BackendTls`] — `[listener.backend_tls]`: `mode`
//!   ([`BackendTlsMode`]: `disable` | `require` | `verify-ca` |
//!   `verify-full`, libpq meanings), `ca` (default the system bundle),
//!   `server_name` (default the backend host), `cert`/`key` (client
//!   certificate for the backend).
//!
//! Both are validated by `Config::validate` (files readable, PEM holding
//! what it should, key matching certificate).
//!
//! Listener side (`server.rs`): [`ServerTls`], one per listener with TLS,
//! in [`ListenerCtx::tls`](crate::listener::ListenerCtx::tls):
//! - `ServerTls::new(listener, &ListenerTls, alpn) -> Result<Arc<ServerTls>, TlsError>`
//!   (`alpn`: e.g. `vec![b"h2".to_vec(), b"http/1.1".to_vec()]`; empty for
//!   PostgreSQL and MySQL);
//! - `settings()` (the [`ListenerTls`]), `acceptor()` (a
//!   `tokio_rustls::TlsAcceptor` on the current config);
//! - `accept(tcp, timeout) -> Result<server::TlsStream<TcpStream>, TlsError>`:
//!   handshake bounded by `timeout`, counted in
//!   `danxia_tls_handshakes_total{listener,result=ok|failed|timeout}`;
//! - `reload_if_changed() -> Result<bool, TlsError>` (file stamps), `reload()`;
//!   an invalid new certificate keeps the old one, logs why and counts
//!   `danxia_tls_reloads_total{listener,result=ok|failed}`;
//! - `spawn_watcher(self: &Arc<Self>, shutdown)`: polls every
//!   [`RELOAD_POLL`] and reloads on SIGHUP, until shutdown (`server.rs` in
//!   the crate root calls it for every listener with TLS).
//!
//! Identity (`identity.rs`): [`TlsInfo::of(&CommonState)`](TlsInfo::of)
//! gives the negotiated `version` (`"TLSv1.3"`) and the verified
//! [`ClientCert`] (`subject` in RFC 4514 order as PostgreSQL's
//! `ssl_client_dn()` prints it, `"CN=app1,O=Health"`, `fingerprint_sha256`
//! hex, `not_after` Unix seconds). Put the subject into
//! `SessionIdentity::tls_subject` (audit) and
//! `Enforcer::set_tls_subject` (policy `tls_subjects`).
//!
//! Backend side (`client.rs`): [`BackendConnector`], in
//! [`ListenerCtx::backend_tls`](crate::listener::ListenerCtx::backend_tls)
//! when `mode != disable`:
//! - `BackendConnector::new(&BackendTls, default_host, alpn)`;
//! - `connect(tcp, listener) / connect_to(tcp, server_name, listener)`
//!   -> `Result<client::TlsStream<TcpStream>, TlsError>`, counted in
//!   `danxia_tls_backend_handshakes_total{listener,result}`.
//!
//! Streams (`stream.rs`): [`ClientStream`] and [`BackendStream`] (`Plain`
//! | `Tls`), both `AsyncRead + AsyncWrite`, with `into_split()` giving
//! [`ReadHalf`]/[`WriteHalf`]: plain sockets split with
//! `TcpStream::into_split` (the hot path is unchanged), TLS ones with
//! `tokio::io::split`.
//!
//! Sessions: `SessionError::ClientTls(TlsError)` (client handshake
//! failed), `SessionError::TlsRequired` (plaintext client, `mode =
//! "required"`; count it with `ServerTls::count_plaintext_refused`) and
//! `SessionError::BackendTls(String)` (no TLS to the backend).
//! `SessionIdentity` has `tls_subject` and `tls` (version), which audit
//! events carry as `tls_subject` and `tls`.
//!
//! Test harness: `danxia_e2e::tls::TestPki` (CA, server/client/expired
//! certificates as PEM files) and `Options::{pg_tls, pg_backend_tls,
//! mysql_tls, mysql_backend_tls}` (bodies of the listener's
//! `[listener.tls]` / `[listener.backend_tls]` tables).
//!
//! Errors: [`TlsError`] says which file, what was expected and what to do.

pub mod client;
pub mod config;
pub mod identity;
pub mod server;
pub mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use client::BackendConnector;
pub use config::{BackendTls, BackendTlsMode, ClientAuth, ListenerTls, MinVersion, TlsMode};
pub use identity::{ClientCert, TlsInfo};
pub use server::ServerTls;
pub use stream::{
    BackendReadHalf, BackendStream, BackendWriteHalf, ClientReadHalf, ClientStream,
    ClientWriteHalf, MaybeTls, ReadHalf, WriteHalf,
};

/// How often certificate files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// The crypto provider every configuration is built with, so that no
/// process-wide default has to be installed.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static P: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> = std::sync::OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Why a certificate, a key or a handshake could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} file {path}: {source}")]
    Read {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the {what} file {path} is not usable PEM: {reason}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("the private key {key} does not belong to the certificate {cert}: use the key the certificate was issued for")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate {path} cannot be parsed: {reason}")]
    Certificate { path: PathBuf, reason: String },
    /// Others could read a key or rewrite a certificate (see
    /// [`crate::files::secret`]).
    #[error("{0}")]
    Permissions(String),
    #[error("{context}: {reason}")]
    Config {
        context: &'static str,
        reason: String,
    },
    #[error("{0:?} is not a DNS name or IP address usable as a TLS server name")]
    ServerName(String),
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
}

/// Describes the TLS metrics (called by `metrics::install`).
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_counter!(
        "danxia_tls_handshakes_total",
        "TLS handshakes with clients, by listener and result (ok, failed, timeout)."
    );
    describe_counter!(
        "danxia_tls_backend_handshakes_total",
        "TLS handshakes with backends, by listener and result (ok, failed, refused: the server does not offer TLS, timeout)."
    );
    describe_counter!(
        "danxia_tls_reloads_total",
        "Certificate reloads, by listener and result (ok; failed: the previous certificate stays in force)."
    );
    describe_gauge!(
        "danxia_tls_certificate_expiry_timestamp_seconds",
        Unit::Seconds,
        "When the listener's certificate expires (Unix time), by listener and cert (server)."
    );
    describe_counter!(
        "danxia_tls_plaintext_refused_total",
        "Clients refused because they did not ask for TLS on a listener with tls.mode = required."
    );
}

/// ALPN protocols a listener offers: HTTP/2 and HTTP/1.1 for `http`,
/// `postgresql` for PostgreSQL (what PostgreSQL 17 clients send; clients
/// that send none are served too), none for MySQL.
pub fn listener_alpn(protocol: crate::config::Protocol) -> Vec<Vec<u8>> {
    match protocol {
        crate::config::Protocol::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        crate::config::Protocol::Postgres => vec![b"postgresql".to_vec()],
        crate::config::Protocol::Mysql => Vec::new(),
    }
}

/// Builds a listener's TLS sides from its configuration: the client side
/// when `[listener.tls]` is present, the backend side when
/// `[listener.backend_tls]` has a mode other than `disable`.
#[allow(clippy::type_complexity)]
pub fn for_listener(
    l: &crate::config::ListenerConfig,
) -> Result<(Option<Arc<ServerTls>>, Option<Arc<BackendConnector>>), TlsError> {
    let server = match &l.tls {
        Some(t) => Some(ServerTls::new(&l.name, t, listener_alpn(l.protocol))?),
        None => None,
    };
    let backend = match &l.backend_tls {
        Some(b) if b.mode != BackendTlsMode::Disable => {
            let host = crate::config::parse_host_port(&l.backend)
                .map(|(h, _)| h)
                .unwrap_or_default();
            let c = BackendConnector::new(b, &host, Vec::new())?;
            for w in &c.warnings {
                tracing::warn!(listener = %l.name, "backend_tls: {w}");
            }
            Some(Arc::new(c))
        }
        _ => None,
    };
    Ok((server, backend))
}

#[cfg(test)]
mod tests;
