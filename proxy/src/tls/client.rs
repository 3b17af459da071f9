//! The backend side of TLS: a rustls `ClientConfig` per `[listener.backend_tls]`
//! mode, with libpq's meanings, and the handshake. `require` encrypts but
//! authenticates nothing (any certificate is accepted, though the handshake
//! signature must still match it); `verify-ca` checks the chain but not the
//! name; `verify-full` checks both.

use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::config::{read_certs, read_key, BackendTls, BackendTlsMode};
use super::{provider, TlsError};

/// Connects to one listener's backend over TLS.
pub struct BackendConnector {
    mode: BackendTlsMode,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    /// Things worth a log line found while loading (expired client cert).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for BackendConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConnector")
            .field("mode", &self.mode)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl BackendConnector {
    /// Builds the configuration for `s.mode` (which must not be `disable`);
    /// `default_host` is the server name when `s.server_name` is unset;
    /// `alpn` the protocols offered (empty: none).
    pub fn new(
        s: &BackendTls,
        default_host: &str,
        alpn: Vec<Vec<u8>>,
    ) -> Result<BackendConnector, TlsError> {
        let name = s.server_name.as_deref().unwrap_or(default_host);
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|_| TlsError::ServerName(name.to_string()))?;
        let p = provider();
        let verifier: Arc<dyn ServerCertVerifier> = match s.mode {
            BackendTlsMode::Disable | BackendTlsMode::Require => Arc::new(AnyCert(p.clone())),
            BackendTlsMode::VerifyCa | BackendTlsMode::VerifyFull => {
                let roots = roots(s)?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), p.clone())
                        .build()
                        .map_err(|e| TlsError::Config {
                            context: "backend certificate verifier",
                            reason: e.to_string(),
                        })?;
                if s.mode == BackendTlsMode::VerifyCa {
                    Arc::new(ChainOnly(webpki))
                } else {
                    webpki
                }
            }
        };
        let builder = ClientConfig::builder_with_provider(p)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config {
                context: "TLS versions",
                reason: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut warnings = Vec::new();
        let mut config = match (&s.cert, &s.key) {
            (Some(cert), Some(key)) => {
                let certs = read_certs(cert, "backend client certificate")?;
                super::server::check_leaf(cert, &certs[0], &mut warnings)?;
                let k = read_key(key)?;
                builder
                    .with_client_auth_cert(certs, k)
                    .map_err(|e| match e {
                        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                            cert: cert.clone(),
                            key: key.clone(),
                        },
                        other => TlsError::Pem {
                            path: key.clone(),
                            what: "private key",
                            reason: format!("not usable with the certificate: {other}"),
                        },
                    })?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn;
        Ok(BackendConnector {
            mode: s.mode,
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
            warnings,
        })
    }

    pub fn mode(&self) -> BackendTlsMode {
        self.mode
    }

    /// The configured (or default) server name.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// Handshake with the configured server name, within `timeout`.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        listener: &str,
        timeout: Duration,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
        self.connect_to(tcp, self.server_name.clone(), listener, timeout)
            .await
    }

    /// Handshake with another server name (HTTP upstreams by host).
    pub async fn connect_to(
        &self,
        tcp: TcpStream,
        name: ServerName<'static>,
        listener: &str,
        timeout: Duration,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
        let r = tokio::time::timeout(timeout, self.connector.connect(name, tcp)).await;
        let (result, out) = match r {
            Ok(Ok(s)) => ("ok", Ok(s)),
            Ok(Err(e)) => ("failed", Err(TlsError::Handshake(e))),
            Err(_) => ("timeout", Err(TlsError::HandshakeTimeout(timeout))),
        };
        count_backend_handshake(listener, result);
        out
    }
}

/// Counts a backend handshake outcome: `ok`, `failed`, `timeout`, or
/// `refused` (the server does not offer TLS).
pub fn count_backend_handshake(listener: &str, result: &'static str) {
    counter!("danxia_tls_backend_handshakes_total", "listener" => listener.to_string(), "result" => result)
        .increment(1);
}

fn roots(s: &BackendTls) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match &s.ca {
        Some(ca) => {
            for c in read_certs(ca, "backend CA")? {
                roots.add(c).map_err(|e| TlsError::Certificate {
                    path: ca.clone(),
                    reason: format!("not usable as a CA certificate: {e}"),
                })?;
            }
        }
        None => {
            let Some(bundle) = s.ca_file() else {
                return Err(TlsError::Config {
                    context: "backend_tls.ca",
                    reason: format!(
                        "not set and no system CA bundle found ({}): name the PEM file of the CA that issued the backend's certificate",
                        super::config::SYSTEM_CA_BUNDLES.join(", ")
                    ),
                });
            };
            let (added, _) = roots.add_parsable_certificates(read_certs(&bundle, "CA bundle")?);
            if added == 0 {
                return Err(TlsError::Pem {
                    path: bundle,
                    what: "CA bundle",
                    reason: "no usable CA certificate".into(),
                });
            }
        }
    }
    Ok(roots)
}

/// `verify-ca`: the chain must be valid; a name mismatch alone is accepted.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name last, after the chain and validity: a
        // name error therefore means everything else passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require`: any certificate, but the handshake must be signed by its key
/// (an active attacker can still present their own certificate: that is
/// what `verify-full` is for).
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
