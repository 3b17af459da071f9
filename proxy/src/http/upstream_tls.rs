//! TLS to `https://` upstreams: one pooled hyper client per https upstream,
//! verifying the API's certificate against the upstream's `ca` bundle and
//! its name (`server_name`, default the URL's host), optionally presenting
//! a client certificate. Verification is always on: there is no switch to
//! skip it (an API with a private CA gets that CA in `ca`).
//!
//! Owns: reading the PEM files an upstream names, building its
//! `rustls::ClientConfig` (ring provider, TLS 1.2+, ALPN http/1.1), and
//! telling a TLS failure from other connect errors for the 502 answer.
//! Must never: fall back to plaintext, or to an unverified connection.

use std::path::Path;
use std::sync::Arc;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::config::{HttpSettings, UpstreamConfig};
use super::UpstreamBody;

/// A pooled client for one https upstream.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// Largest PEM file read (CA bundles of public roots are ~200 KiB).
const MAX_PEM_BYTES: u64 = 4 << 20;

/// What an https upstream verifies and presents.
#[derive(Clone)]
pub struct UpstreamTls {
    pub config: Arc<rustls::ClientConfig>,
    /// The name the certificate must carry (and SNI, when a DNS name).
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn read_pem(path: &Path, at: &str, key: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f =
        std::fs::File::open(path).map_err(|e| format!("{at}.{key} = {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{at}.{key} = {}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "{at}.{key} = {}: larger than {MAX_PEM_BYTES} bytes; expected a PEM file",
            path.display()
        ));
    }
    Ok(buf)
}

fn certs(path: &Path, at: &str, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path, at, key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{at}.{key} = {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{at}.{key} = {}: no CERTIFICATE in this PEM file",
            path.display()
        ));
    }
    Ok(certs)
}

/// The TLS settings of upstream `u` (`at` names it in errors); `None` for
/// an http:// upstream. `host` is the URL's host.
pub fn load(u: &UpstreamConfig, host: &str, at: &str) -> Result<Option<UpstreamTls>, String> {
    let https = u.url.to_ascii_lowercase().starts_with("https://");
    if !https {
        for (set, key) in [
            (u.ca.is_some(), "ca"),
            (u.cert.is_some(), "cert"),
            (u.key.is_some(), "key"),
            (u.server_name.is_some(), "server_name"),
        ] {
            if set {
                return Err(format!(
                    "{at}.{key} applies to https:// upstreams only (url = {:?})",
                    u.url
                ));
            }
        }
        return Ok(None);
    }
    let Some(ca) = &u.ca else {
        return Err(format!(
            "{at}: https upstream {:?} without ca: set ca = the PEM bundle of the CA that signs the API's certificate (for a public CA, e.g. /etc/ssl/certs/ca-certificates.crt)",
            u.url
        ));
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs(ca, at, "ca")?);
    if added == 0 {
        return Err(format!(
            "{at}.ca = {}: none of its {ignored} certificates is a usable CA",
            ca.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{at}: {e}"))?
        .with_root_certificates(roots);
    let mut config = match (&u.cert, &u.key) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert, at, "cert")?;
            let pem = read_pem(key, at, "key")?;
            let key_der = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| format!("{at}.key = {}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                format!("{at}.cert / key: {e}; check that the key belongs to the certificate")
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(format!(
            "{at}: set both cert and key (the client certificate presented to the API), or neither"
        ))
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = u.server_name.as_deref().unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| {
        format!("{at}.server_name = {name:?}: {e}; expected a DNS name or an IP address")
    })?;
    Ok(Some(UpstreamTls {
        config: Arc::new(config),
        server_name,
    }))
}

/// A pooled client for an https upstream, with the listener's timeouts.
pub fn client(tls: &UpstreamTls, settings: &HttpSettings) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(settings.connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let connector = HttpsConnector::new(
        http,
        tls.config.clone(),
        true,
        Arc::new(FixedServerNameResolver::new(tls.server_name.clone())),
    );
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .pool_max_idle_per_host(settings.pool_max_idle)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// The TLS failure in an upstream request's error chain, if that is what
/// failed (a certificate the CA did not sign, a wrong name, an expired
/// certificate, no common protocol version…).
pub fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(r) = x.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        // An io::Error's `source()` skips the error it wraps (it returns
        // the wrapped error's source), and connectors wrap tokio-rustls's
        // io::Error in another io::Error: step into the wrapped error.
        cur = match x.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static)),
            None => x.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(Box<dyn std::error::Error + Send + Sync>);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn finds_rustls_errors_through_nested_io_errors() {
        let rustls_err = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // tokio-rustls: io::Error(InvalidData, rustls::Error); the
        // connector wraps that in io::Error::other; hyper-util boxes it.
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_err);
        let e = Outer(Box::new(std::io::Error::other(inner)));
        let why = tls_failure(&e).expect("a TLS failure");
        assert!(why.contains("UnknownIssuer"), "{why}");

        let refused = Outer(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(tls_failure(&refused), None);
    }

    #[test]
    fn https_needs_a_ca_and_http_takes_no_tls_keys() {
        let mut u = UpstreamConfig {
            prefix: "/api/".into(),
            host: None,
            url: "https://api.example:443".into(),
            ca: None,
            cert: None,
            key: None,
            server_name: None,
        };
        let Err(e) = load(&u, "api.example", "listener[0].upstream[0]") else {
            panic!("an https upstream without ca must be refused");
        };
        assert!(e.contains("without ca"), "{e}");
        u.url = "http://api.example:80".into();
        assert!(load(&u, "api.example", "u").expect("plain").is_none());
        u.server_name = Some("x".into());
        let Err(e) = load(&u, "api.example", "u") else {
            panic!("server_name on an http upstream must be refused");
        };
        assert!(e.contains("https:// upstreams only"), "{e}");
    }
}
