//! Who is calling an HTTP API: turns a request's credentials into a
//! [`Caller`] (the policy's `[[caller]]` id plus how it proved it). Owns
//! the API keys file format (`keys`) and JWT checking against a JWKS file
//! (`jwt`). It must never log, store or echo a presented key or token:
//! API keys are kept only as SHA-256 digests, and failures carry a
//! `detail` that is safe to show the client.
//!
//! Order of credentials, first presented wins (a request carrying two that
//! disagree is judged on the first alone, never on "whichever passes"):
//! 1. `Authorization: Bearer <jwt>`, only when a JWKS file is configured
//!    (otherwise the header is not ours to judge and is ignored);
//! 2. the API key header (`api_key_header`, default `x-api-key`);
//! 3. the API key query parameter (`api_key_query`, off by default because
//!    URLs end up in logs).
//!
//! On an HTTPS listener with `client_ca`, a verified client certificate is
//! a credential too ([`mtls`] maps it to a caller). It is judged together
//! with the header credentials, never instead of them: a certificate alone
//! authenticates its caller; a certificate plus an API key or JWT must name
//! the same caller (else `credential_mismatch`, 401), and the request is
//! then audited with the header credential and the certificate's subject.

pub mod jwt;
pub mod keys;
pub mod mtls;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use danxia_protocols::http::request as credentials;
use http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use serde::Deserialize;

pub use keys::{add_key, generate_key, list_keys, revoke_key, KeyEntry};
pub use mtls::{MtlsMapping, PresentedCert};

/// Longest API key accepted (bytes); longer values are refused unhashed,
/// so a client cannot make us hash megabytes per request.
pub const MAX_API_KEY_BYTES: usize = 256;
/// Longest bearer token accepted (bytes).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Largest keys or JWKS file read.
pub const MAX_AUTH_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest JWT leeway accepted by `validate()`: more is a clock problem,
/// not skew.
pub const MAX_JWT_LEEWAY: Duration = Duration::from_secs(600);

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API key; `key_id` is the key file entry's id, never the key.
    ApiKey { key_id: Arc<str> },
    /// A JWT: its `sub` (or the caller claim when there is no `sub`), `iss`
    /// and `exp` (unix seconds).
    Jwt {
        subject: Arc<str>,
        issuer: Option<Arc<str>>,
        expires: u64,
    },
    /// A verified TLS client certificate: its subject (RFC 4514 style) and
    /// the SHA-256 of its DER, lower-case hex.
    ClientCert {
        subject: Arc<str>,
        fingerprint_sha256: Arc<str>,
    },
}

/// Who is calling: the policy's `[[caller]]` id and the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The policy's `[[caller]]` id (API key file's `caller`, or the JWT's
    /// configured claim).
    pub id: Arc<str>,
    pub credential: Credential,
}

impl Caller {
    /// The authentication method, a bounded label for metrics and audit.
    pub fn method(&self) -> &'static str {
        match self.credential {
            Credential::ApiKey { .. } => "api_key",
            Credential::Jwt { .. } => "jwt",
            Credential::ClientCert { .. } => "mtls",
        }
    }
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}
fn default_caller_claim() -> String {
    "sub".into()
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}
fn default_true() -> bool {
    true
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "HS256".into()]
}

/// `[listener.auth]`: where credentials come from and how tokens are
/// checked. Every field has a default, so an empty table is valid apart
/// from needing a keys or JWKS file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Header carrying an API key; `""` disables API keys in headers.
    #[serde(default = "default_api_key_header")]
    pub api_key_header: String,
    /// Query parameter carrying an API key; `""` (default) = off, because
    /// keys in URLs leak into access logs.
    #[serde(default)]
    pub api_key_query: String,
    /// Hashed API keys (see [`keys`]).
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
    /// JWKS (RFC 7517) with the keys JWTs are signed with; without it
    /// bearer tokens are not checked.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Required `aud` (one of the token's audiences), when set.
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// Required `iss`, when set.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// The claim holding the caller id (a string).
    #[serde(default = "default_caller_claim")]
    pub jwt_caller_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub jwt_leeway: Duration,
    /// Signature algorithms accepted (`none` never is).
    #[serde(default = "default_algorithms")]
    pub jwt_algorithms: Vec<String>,
    /// Client certificates (HTTPS listeners with `[listener.tls] client_ca`)
    /// whose subject names a caller explicitly (see [`mtls`]).
    #[serde(default)]
    pub mtls: Vec<MtlsMapping>,
    /// A client certificate whose CN is the id of a `[[caller]]` of the API
    /// policy is that caller (default true).
    #[serde(default = "default_true")]
    pub mtls_cn_caller: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            api_key_header: default_api_key_header(),
            api_key_query: String::new(),
            keys_file: None,
            jwks_file: None,
            jwt_audience: None,
            jwt_issuer: None,
            jwt_caller_claim: default_caller_claim(),
            jwt_leeway: default_leeway(),
            jwt_algorithms: default_algorithms(),
            mtls: Vec::new(),
            mtls_cn_caller: true,
        }
    }
}

impl AuthConfig {
    /// Checks what parsing cannot: names, algorithms, and that some way
    /// to authenticate is configured (client certificates not counted).
    pub fn validate(&self) -> Result<(), String> {
        self.validate_for(false)
    }

    /// [`validate`](Self::validate) for a listener that verifies client
    /// certificates when `client_certs`: certificates alone are then a way
    /// to authenticate.
    pub fn validate_for(&self, client_certs: bool) -> Result<(), String> {
        mtls::MtlsRules::new(&self.mtls, self.mtls_cn_caller)?;
        if !self.mtls.is_empty() && !client_certs {
            return Err(
                "mtls mappings are set but the listener verifies no client certificates: set [listener.tls] client_ca"
                    .into(),
            );
        }
        if !self.api_key_header.is_empty()
            && HeaderName::from_bytes(self.api_key_header.as_bytes()).is_err()
        {
            return Err(format!(
                "api_key_header {:?} is not a valid header name",
                self.api_key_header
            ));
        }
        if self
            .api_key_query
            .bytes()
            .any(|b| matches!(b, b'&' | b'=' | b'#' | b'%' | b'+') || !b.is_ascii_graphic())
        {
            return Err(format!(
                "api_key_query {:?} must be a plain parameter name",
                self.api_key_query
            ));
        }
        if self.keys_file.is_none() && self.jwks_file.is_none() && !client_certs {
            return Err("no way to authenticate callers: set keys_file and/or jwks_file (or client_ca in [listener.tls] for client certificates)".into());
        }
        if self.keys_file.is_some()
            && self.api_key_header.is_empty()
            && self.api_key_query.is_empty()
        {
            return Err(
                "keys_file is set but API keys are accepted nowhere: set api_key_header or api_key_query"
                    .into(),
            );
        }
        if self.jwt_caller_claim.is_empty() {
            return Err("jwt_caller_claim must not be empty".into());
        }
        if self.jwt_leeway > MAX_JWT_LEEWAY {
            return Err(format!(
                "jwt_leeway {:?} is more than {:?}; fix the clocks instead",
                self.jwt_leeway, MAX_JWT_LEEWAY
            ));
        }
        if self.jwks_file.is_some() && self.jwt_algorithms.is_empty() {
            return Err("jwt_algorithms is empty: no token could ever be accepted".into());
        }
        for a in &self.jwt_algorithms {
            jwt::parse_algorithm(a).map_err(|e| format!("jwt_algorithms: {e}"))?;
        }
        if matches!(&self.jwt_audience, Some(a) if a.is_empty()) {
            return Err("jwt_audience is empty; remove it to not check aud".into());
        }
        if matches!(&self.jwt_issuer, Some(i) if i.is_empty()) {
            return Err("jwt_issuer is empty; remove it to not check iss".into());
        }
        Ok(())
    }
}

/// Why a request could not be authenticated. [`AuthReason::as_str`] is a
/// stable snake_case label (metrics, audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthReason {
    /// No credential presented.
    Missing,
    /// An API key not in the keys file or revoked; a JWT `kid` not in the
    /// JWKS, or no key there for the token's algorithm.
    UnknownKey,
    /// An expired API key or token, or a token not valid yet (`nbf`).
    Expired,
    BadSignature,
    BadAudience,
    BadIssuer,
    /// Not a credential's shape (too long, bad encoding, duplicated, no `exp`).
    Malformed,
    /// `alg: none`, an algorithm not in `jwt_algorithms`, or a key of
    /// another type than the algorithm (algorithm confusion).
    UnsupportedAlgorithm,
    /// The token has no string caller claim.
    NoCallerClaim,
    /// A verified client certificate that maps to no caller.
    UnknownCertificate,
    /// A client certificate and an API key / JWT naming different callers.
    CredentialMismatch,
}

impl AuthReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthReason::Missing => "missing",
            AuthReason::UnknownKey => "unknown_key",
            AuthReason::Expired => "expired",
            AuthReason::BadSignature => "bad_signature",
            AuthReason::BadAudience => "bad_audience",
            AuthReason::BadIssuer => "bad_issuer",
            AuthReason::Malformed => "malformed",
            AuthReason::UnsupportedAlgorithm => "unsupported_algorithm",
            AuthReason::NoCallerClaim => "no_caller_claim",
            AuthReason::UnknownCertificate => "unknown_certificate",
            AuthReason::CredentialMismatch => "credential_mismatch",
        }
    }
}

impl std::fmt::Display for AuthReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub reason: AuthReason,
    /// Safe to show the client: never echoes the key or token.
    pub detail: String,
}

impl AuthFailure {
    pub(crate) fn new(reason: AuthReason, detail: impl Into<String>) -> AuthFailure {
        AuthFailure {
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// Keys and JWKS files that cannot be used, and configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth config: {0}")]
    Config(String),
    /// Others could rewrite a keys or JWKS file ([`crate::files::trusted`]).
    #[error("{0}")]
    Permissions(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}; fix the file (`danxia api key list` shows what loads)", location(path, *line))]
    KeysFile {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{path}: {message}; fix the JWKS (RFC 7517 {{\"keys\": [...]}})")]
    Jwks { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}; the keys file was left as it was")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no key with id {id:?} (`danxia api key list` shows the ids)")]
    NoSuchKey { path: PathBuf, id: String },
}

fn location(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", path.display()),
        None => path.display().to_string(),
    }
}

/// Reads a whole auth file, bounded.
pub(crate) fn read_bounded(path: &Path) -> Result<String, AuthError> {
    use std::io::Read;
    let err = |source| AuthError::Read {
        path: path.into(),
        source,
    };
    let f = std::fs::File::open(path).map_err(err)?;
    crate::files::trusted(path, "API auth file").map_err(AuthError::Permissions)?;
    let mut text = String::new();
    f.take(MAX_AUTH_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(err)?;
    if text.len() as u64 > MAX_AUTH_FILE_BYTES {
        return Err(err(std::io::Error::other(format!(
            "larger than {MAX_AUTH_FILE_BYTES} bytes"
        ))));
    }
    Ok(text)
}

/// What the files held at the last (re)load.
struct Loaded {
    keys: keys::KeyTable,
    jwks: Option<jwt::Jwks>,
}

/// Authenticates requests. Built from [`AuthConfig`]; [`reload`](Self::reload)
/// re-reads the keys and JWKS files and swaps them in whole, so a request
/// sees either the old or the new set, never a mix.
pub struct Authenticator {
    header: Option<HeaderName>,
    query: Option<String>,
    keys_file: Option<PathBuf>,
    jwks_file: Option<PathBuf>,
    rules: jwt::JwtRules,
    mtls: mtls::MtlsRules,
    loaded: ArcSwap<Loaded>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("header", &self.header)
            .field("query", &self.query)
            .field("keys_file", &self.keys_file)
            .field("jwks_file", &self.jwks_file)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Validates `cfg` and reads its files. A file that cannot be used is
    /// an error: starting with no keys would refuse every caller silently.
    pub fn load(cfg: &AuthConfig) -> Result<Authenticator, AuthError> {
        Self::load_for(cfg, false)
    }

    /// [`load`](Self::load) for a listener that verifies client
    /// certificates when `client_certs`.
    pub fn load_for(cfg: &AuthConfig, client_certs: bool) -> Result<Authenticator, AuthError> {
        cfg.validate_for(client_certs).map_err(AuthError::Config)?;
        let mtls =
            mtls::MtlsRules::new(&cfg.mtls, cfg.mtls_cn_caller).map_err(AuthError::Config)?;
        let header = if cfg.api_key_header.is_empty() {
            None
        } else {
            Some(
                HeaderName::from_bytes(cfg.api_key_header.as_bytes())
                    .map_err(|e| AuthError::Config(e.to_string()))?,
            )
        };
        let rules = jwt::JwtRules::from_config(cfg).map_err(AuthError::Config)?;
        let a = Authenticator {
            header,
            query: (!cfg.api_key_query.is_empty()).then(|| cfg.api_key_query.clone()),
            keys_file: cfg.keys_file.clone(),
            jwks_file: cfg.jwks_file.clone(),
            rules,
            mtls,
            loaded: ArcSwap::from_pointee(Loaded {
                keys: keys::KeyTable::default(),
                jwks: None,
            }),
        };
        a.reload()?;
        Ok(a)
    }

    /// Re-reads the keys and JWKS files. On any error the previous sets
    /// stay in force and the error is returned.
    pub fn reload(&self) -> Result<(), AuthError> {
        let keys = match &self.keys_file {
            Some(p) => keys::KeyTable::load(p)?,
            None => keys::KeyTable::default(),
        };
        let jwks = match &self.jwks_file {
            Some(p) => Some(jwt::Jwks::load(p)?),
            None => None,
        };
        self.loaded.store(Arc::new(Loaded { keys, jwks }));
        Ok(())
    }

    /// API keys loaded (disabled ones included).
    pub fn key_count(&self) -> usize {
        self.loaded.load().keys.len()
    }

    /// JWKS keys loaded.
    pub fn jwk_count(&self) -> usize {
        self.loaded.load().jwks.as_ref().map_or(0, |j| j.len())
    }

    /// Authenticates one request on a connection that may carry a verified
    /// client certificate (`cert`); `declared(id)` says whether the API
    /// policy has that `[[caller]]`. See the module docs for how the two
    /// kinds of credential combine.
    pub fn authenticate_request(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        now_unix: u64,
        cert: Option<&PresentedCert>,
        declared: &dyn Fn(&str) -> bool,
    ) -> Result<Caller, AuthFailure> {
        let from_headers = self.authenticate(headers, query, now_unix);
        let Some(cert) = cert else {
            return from_headers;
        };
        let by_cert = self.mtls.caller(cert, declared)?;
        match from_headers {
            Err(f) if f.reason == AuthReason::Missing => Ok(by_cert),
            Err(f) => Err(f),
            Ok(c) if c.id == by_cert.id => Ok(c),
            Ok(c) => Err(AuthFailure::new(
                AuthReason::CredentialMismatch,
                format!(
                    "the client certificate is caller {}'s but the {} is caller {}'s",
                    by_cert.id,
                    if c.method() == "jwt" {
                        "token"
                    } else {
                        "API key"
                    },
                    c.id
                ),
            )),
        }
    }

    /// Authenticates one request. `headers`: the request's headers;
    /// `query`: the raw query string; `now_unix`: real time, seconds.
    /// See the module docs for the order of credentials.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        now_unix: u64,
    ) -> Result<Caller, AuthFailure> {
        let loaded = self.loaded.load();
        if let Some(jwks) = &loaded.jwks {
            if let Some(token) = bearer(headers)? {
                return jwt::verify(token, jwks, &self.rules, now_unix);
            }
        }
        if let Some(name) = &self.header {
            let mut values = headers.get_all(name).iter();
            if let Some(v) = values.next() {
                if values.next().is_some() {
                    return Err(AuthFailure::new(
                        AuthReason::Malformed,
                        format!("more than one {name} header"),
                    ));
                }
                let key = v.to_str().map_err(|_| {
                    AuthFailure::new(AuthReason::Malformed, format!("{name} is not ASCII"))
                })?;
                return loaded.keys.check(key.trim().as_bytes(), now_unix);
            }
        }
        if let (Some(param), Some(q)) = (&self.query, query) {
            if let Some(key) = query_param(q, param)? {
                return loaded.keys.check(&key, now_unix);
            }
        }
        Err(AuthFailure::new(
            AuthReason::Missing,
            "no credentials: send an API key or a bearer token",
        ))
    }
}

/// The bearer token of `Authorization`, if that header is a bearer one.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthFailure> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    let Some(token) = credentials::bearer_token(v.as_bytes()).map_err(malformed)? else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthFailure::new(
            AuthReason::Malformed,
            "more than one Authorization header",
        ));
    }
    Ok(Some(token))
}

fn malformed(e: credentials::CredentialError) -> AuthFailure {
    AuthFailure::new(AuthReason::Malformed, e.to_string())
}

/// The percent-decoded value of query parameter `name` in `query`; more
/// than one occurrence is malformed (which one would win is ambiguous).
fn query_param(query: &str, name: &str) -> Result<Option<Vec<u8>>, AuthFailure> {
    credentials::query_param(query, name, 3 * MAX_API_KEY_BYTES).map_err(malformed)
}
