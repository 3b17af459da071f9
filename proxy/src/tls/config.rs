//! The TLS keys of the configuration: `[listener.tls]` (what danxia shows
//! clients) and `[listener.backend_tls]` (how danxia talks to the backend),
//! and their validation. Validation opens the files it names and says what
//! to fix in each; nothing here builds a rustls config (see `server.rs` and
//! `client.rs`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::TlsError;

/// Whether a listener also accepts clients that do not ask for TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plaintext clients are refused (PostgreSQL: FATAL 28000; MySQL:
    /// ERR 3159 / 1045-like refusal; HTTP listeners only speak TLS).
    #[default]
    Required,
    /// Plaintext clients are served too (and audited without `tls`).
    Optional,
}

/// Whether a client certificate is asked for (only with `client_ca`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A client without a certificate fails the handshake.
    Required,
    /// A certificate is asked for and verified when sent; a client without
    /// one is served with no `tls_subject`.
    Optional,
}

/// Oldest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum MinVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// `[listener.tls]`: TLS between clients and danxia.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM certificate chain (leaf first) shown to clients.
    pub cert: PathBuf,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that client certificates must chain to; setting
    /// it turns on mutual TLS.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `required` (default) or `optional`.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// `required` (default): plaintext clients are refused; `optional`:
    /// they are served too.
    #[serde(default)]
    pub mode: TlsMode,
    /// `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: MinVersion,
}

impl ListenerTls {
    /// The effective client-certificate requirement: `None` without
    /// `client_ca` (no certificate asked for).
    pub fn client_auth(&self) -> Option<ClientAuth> {
        self.client_ca
            .as_ref()
            .map(|_| self.client_auth.unwrap_or(ClientAuth::Required))
    }

    /// Checks the keys and the files (`at` is e.g. `listener[0].tls`):
    /// readable, holding what they should, the key matching the
    /// certificate. Returns warnings (an expired certificate) to log.
    pub fn validate(&self, at: &str) -> Result<Vec<String>, String> {
        if self.client_auth.is_some() && self.client_ca.is_none() {
            return Err(format!(
                "{at}.client_auth needs {at}.client_ca: name the PEM file of the CA that issues client certificates"
            ));
        }
        let loaded = super::server::load_server_files(self).map_err(|e| format!("{at}: {e}"))?;
        Ok(loaded
            .warnings
            .into_iter()
            .map(|w| format!("{at}: {w}"))
            .collect())
    }

    /// Relative paths resolved against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [
            Some(&mut self.cert),
            Some(&mut self.key),
            self.client_ca.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// How danxia connects to a backend; the libpq `sslmode` meanings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendTlsMode {
    /// Plaintext (the default).
    #[default]
    Disable,
    /// Encrypted but NOT authenticated: any certificate is accepted (the
    /// handshake signature is still checked, so the key must match the
    /// certificate shown). Protects against passive eavesdropping only, as
    /// libpq's `sslmode=require` does.
    Require,
    /// The certificate must chain to `ca`; its name is not checked.
    VerifyCa,
    /// The certificate must chain to `ca` and name `server_name`.
    VerifyFull,
}

impl BackendTlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendTlsMode::Disable => "disable",
            BackendTlsMode::Require => "require",
            BackendTlsMode::VerifyCa => "verify-ca",
            BackendTlsMode::VerifyFull => "verify-full",
        }
    }
}

/// Where CA bundles usually are when `ca` is not given (Debian/Ubuntu,
/// then RHEL/Fedora, then Alpine/openSUSE).
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

/// `[listener.backend_tls]`: TLS between danxia and the backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTls {
    /// `disable` (default), `require`, `verify-ca`, `verify-full`.
    #[serde(default)]
    pub mode: BackendTlsMode,
    /// PEM CA certificates the backend's certificate must chain to
    /// (`verify-ca`, `verify-full`); default the system bundle.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Name checked against the certificate (`verify-full`) and sent as
    /// SNI; default the backend's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// PEM client certificate danxia presents to the backend (optional).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl BackendTls {
    /// The CA file used for verification: `ca`, else the first system
    /// bundle that exists.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.ca.clone().or_else(|| {
            SYSTEM_CA_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
    }

    /// Checks the keys and files (`at` is e.g. `listener[0].backend_tls`);
    /// `default_host` is the backend's host (the default server name).
    pub fn validate(&self, at: &str, default_host: &str) -> Result<Vec<String>, String> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(format!(
                "{at}: cert and key go together: set both (danxia's client certificate for the backend) or neither"
            ));
        }
        if let Some(n) = &self.server_name {
            if rustls::pki_types::ServerName::try_from(n.as_str()).is_err() {
                return Err(format!(
                    "{at}.server_name = {n:?}: not a DNS name or IP address"
                ));
            }
        }
        if self.mode == BackendTlsMode::Disable {
            return Ok(Vec::new());
        }
        super::client::BackendConnector::new(self, default_host, Vec::new())
            .map(|c| c.warnings)
            .map_err(|e| format!("{at}: {e}"))
            .map(|w| w.into_iter().map(|w| format!("{at}: {w}")).collect())
    }

    /// Relative paths resolved against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [self.ca.as_mut(), self.cert.as_mut(), self.key.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// Reads every certificate of a PEM file, saying what is wrong if none.
pub(crate) fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    crate::files::trusted(path, what).map_err(TlsError::Permissions)?;
    let bytes = read_file(path, what)?;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what,
            reason: "no \"-----BEGIN CERTIFICATE-----\" block in the file".into(),
        });
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
pub(crate) fn read_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    crate::files::secret(path, "TLS private key").map_err(TlsError::Permissions)?;
    let bytes = read_file(path, "private key")?;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: "private key",
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no \"-----BEGIN PRIVATE KEY-----\" (or RSA / EC PRIVATE KEY) block in the file"
                    .into()
            }
            other => other.to_string(),
        },
    })
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        what,
        source,
    })
}
