//! Configuration of `protocol = "http"` listeners (`[[listener.upstream]]`,
//! `[listener.auth]`, `[listener.http]`) and of the proxy-wide `[api]`
//! section (where caller quotas and suspensions persist). Owns their
//! defaults and validation; the listener itself lives in `service.rs`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// One `[[listener.upstream]]`: requests whose path starts with `prefix`
/// (and, when set, whose host is `host`) go to `url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Path prefix, starting with `/`. The longest matching prefix wins.
    pub prefix: String,
    /// Host name the request must carry (`Host` / `:authority`, without
    /// port); any host when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Base URL of the API, `http://host:port` or `https://host:port`.
    pub url: String,
    /// https: PEM bundle of the CA(s) that sign the API's certificate
    /// (required: verification is always on).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// https: client certificate (PEM chain) danxia presents to the API.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// https: the key of `cert` (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// https: the name the API's certificate must carry (and SNI); default
    /// the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// Whether response bodies are inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScanMode {
    /// Count records, find personal data, apply field scope and masks.
    #[default]
    Full,
    /// Forward bodies untouched (callers, routes, query parameters, body
    /// sizes, quotas and suspensions are still enforced; a grant that
    /// restricts fields refuses rather than leak them).
    Off,
}

/// `[listener.http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub scan: ScanMode,
    /// Responses up to this size are read whole and inspected before the
    /// status line goes out, so that a malformed body becomes a clean 502.
    /// Larger ones stream; a failure then aborts the response mid-way
    /// (the client sees a truncated body, never unscanned data).
    pub buffer_bytes: usize,
    /// Largest request body forwarded (413 above).
    pub max_request_body: u64,
    /// Largest JSON string or number held at once to scan or mask.
    pub max_token_bytes: usize,
    /// Deepest JSON nesting accepted in a response.
    pub max_depth: usize,
    /// Largest decompressed response body inspected (gzip bombs).
    pub max_decoded_bytes: u64,
    /// Time for the upstream to answer with a status line.
    #[serde(with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// Time to connect to the upstream.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per upstream.
    pub pool_max_idle: usize,
    /// Time allowed for a client to send its request headers.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Forward the caller's credentials (API key header, `Authorization`)
    /// to the upstream. Off: danxia's credentials stay at danxia.
    pub forward_credentials: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            scan: ScanMode::Full,
            buffer_bytes: 1 << 20,
            max_request_body: 10 << 20,
            max_token_bytes: 1 << 20,
            max_depth: 128,
            max_decoded_bytes: 1 << 30,
            upstream_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            pool_max_idle: 64,
            header_timeout: Duration::from_secs(30),
            forward_credentials: false,
        }
    }
}

impl HttpSettings {
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if self.buffer_bytes > 64 << 20 {
            return Err(format!(
                "{at}.http.buffer_bytes = {}: expected at most 67108864 (64 MiB); larger responses stream",
                self.buffer_bytes
            ));
        }
        if self.max_token_bytes < 1024 {
            return Err(format!(
                "{at}.http.max_token_bytes = {}: expected at least 1024",
                self.max_token_bytes
            ));
        }
        if !(2..=4096).contains(&self.max_depth) {
            return Err(format!(
                "{at}.http.max_depth = {}: expected 2 to 4096",
                self.max_depth
            ));
        }
        if self.upstream_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(format!(
                "{at}.http.upstream_timeout and connect_timeout must be greater than zero"
            ));
        }
        Ok(())
    }
}

/// Where caller quotas and suspensions persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApiStoreKind {
    Memory,
    #[default]
    Disk,
    Redis,
}

/// `[api]`: proxy-wide state of the HTTP listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// "disk" (a snapshot in `dir`), "redis" (shared by several danxia
    /// instances) or "memory".
    pub store: ApiStoreKind,
    pub dir: PathBuf,
    pub redis_url: String,
    pub redis_prefix: String,
    /// How often counters and suspensions are saved / shared. With Redis,
    /// instances may together overshoot a quota by what they admit within
    /// one interval.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// IANA time zone of quiet hours and daily quotas (default: the
    /// behaviour time zone, else UTC).
    pub timezone: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            store: ApiStoreKind::Disk,
            dir: PathBuf::from("var/api"),
            redis_url: "redis://127.0.0.1:6379/".into(),
            redis_prefix: "danxia".into(),
            sync_interval: Duration::from_secs(1),
            timezone: None,
        }
    }
}

impl ApiConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.sync_interval.is_zero() {
            return Err("api.sync_interval must be greater than zero".into());
        }
        if let Some(tz) = &self.timezone {
            jiff::tz::TimeZone::get(tz).map_err(|e| {
                format!("api.timezone = {tz:?}: {e}; expected an IANA name, e.g. \"Asia/Shanghai\"")
            })?;
        }
        Ok(())
    }
}

/// Checks one upstream entry; `at` names it in errors.
pub fn validate_upstream(u: &UpstreamConfig, at: &str) -> Result<http::Uri, String> {
    if !u.prefix.starts_with('/') {
        return Err(format!(
            "{at}.prefix = {:?}: expected a path starting with '/', e.g. \"/api/\"",
            u.prefix
        ));
    }
    let uri: http::Uri = u.url.parse().map_err(|e| {
        format!(
            "{at}.url = {:?}: {e}; expected e.g. \"http://127.0.0.1:8080\"",
            u.url
        )
    })?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
                "{at}.url = {:?}: expected an http:// or https:// URL",
                u.url
            ))
        }
    }
    if uri.authority().is_none() {
        return Err(format!("{at}.url = {:?}: no host:port", u.url));
    }
    if uri.query().is_some() {
        return Err(format!("{at}.url = {:?}: no query string allowed", u.url));
    }
    Ok(uri)
}
