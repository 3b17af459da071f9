//! The configuration file (`danxia.toml`): its types, defaults, loading and
//! validation. Everything the proxy can be told lives here as one validated
//! value; nothing here opens sockets or files other than the config itself.
//!
//! Errors name the file, the key and what was expected, because the person
//! reading them is a DBA at a terminal who needs to know what to change.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use danxia_policies::{LoadOptions, Mode};
use serde::Deserialize;

use crate::audit::AuditSettings;
use crate::error::ConfigError;

/// Default largest client message accepted. PostgreSQL itself allows up to
/// 1 GiB, but a statement larger than this is almost always an attack or a
/// mistake, and the proxy must hold a message whole to analyse it.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest accepted `limits.max_message_bytes`: below this ordinary startup
/// and query messages would be refused.
pub const MIN_MAX_MESSAGE_BYTES: u64 = 16 * 1024;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub audit: AuditSettings,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// The firewall policy; absent means no rules (every statement allowed
    /// and audited).
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// What the proxy looks for in results (sensitive-data scanning).
    #[serde(default)]
    pub data: DataConfig,
    /// Behaviour baselines, anomaly scores, quarantine and throttling.
    #[serde(default)]
    pub behaviour: crate::behaviour::BehaviourConfig,
    /// Where alerts go (webhook, syslog) besides the audit log and metrics.
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
    /// State of the HTTP listeners (quotas, suspensions).
    #[serde(default)]
    pub api: crate::http::config::ApiConfig,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
}

/// The admin/metrics HTTP endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// File holding the bearer token every admin request but `/healthz`
    /// must send. Created with a fresh random token (mode 0600) when
    /// missing; refused when group or others can read it; re-read when it
    /// changes, so a rotated token works without a restart.
    #[serde(default = "default_admin_token_file")]
    pub token_file: PathBuf,
    /// Serve `/metrics` without the token, for a Prometheus that cannot
    /// send one. Metrics carry no secrets but do show traffic volumes.
    #[serde(default)]
    pub metrics_public: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token_file: default_admin_token_file(),
            metrics_public: false,
        }
    }
}

fn default_admin_token_file() -> PathBuf {
    PathBuf::from("var/admin.token")
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9898))
}

/// Limits and timeouts that protect the proxy from hostile or broken peers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest client message (Query, Parse, Bind, …) in bytes.
    pub max_message_bytes: u64,
    /// Time allowed for a client to finish startup and authentication.
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// Time allowed to open the TCP connection to the backend.
    #[serde(with = "humantime_serde")]
    pub backend_connect_timeout: Duration,
    /// On SIGTERM/SIGINT, how long running statements may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Largest number of client connections per listener; more are refused
    /// with SQLSTATE 53300 and counted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            startup_timeout: Duration::from_secs(30),
            backend_connect_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// How the proxy's own threads are laid out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Threads running sessions. 1 runs every session on one thread (the
    /// PgBouncer model: no cross-thread wake-ups, the lowest latency on
    /// small machines); N > 1 spreads sessions over N threads; 0 picks one
    /// thread per CPU. The audit writer always has a thread of its own.
    pub worker_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { worker_threads: 1 }
    }
}

/// The `[policy]` table: where the policy files are and how strictly
/// listeners apply them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory of rule files (`*.toml`), e.g. a shipped pack.
    pub dir: PathBuf,
    /// Mode of every listener that does not set its own.
    #[serde(default)]
    pub mode: Mode,
    /// Classification file (columns → tags and levels), optional.
    #[serde(default)]
    pub classification: Option<PathBuf>,
    /// The learned allowlist: `learn` mode appends to it, the
    /// `not_allowlisted` condition reads it.
    #[serde(default = "default_allowlist")]
    pub allowlist: PathBuf,
    /// How often the policy files are checked for changes (0 = never; SIGHUP
    /// and `POST /policy/reload` still reload).
    #[serde(default = "default_reload_interval", with = "humantime_serde")]
    pub reload_interval: Duration,
    /// File holding the deployment's secret key for `hash` masks (at least
    /// 16 bytes; a trailing newline is ignored). Kept out of the policy
    /// files so that security staff who edit rules never see it.
    #[serde(default)]
    pub masking_key_file: Option<PathBuf>,
    /// The key read from `masking_key_file` by [`Config::load`].
    #[serde(skip)]
    pub mask_key: Option<std::sync::Arc<[u8]>>,
}

/// Shortest accepted masking key.
pub const MIN_MASKING_KEY_BYTES: usize = 16;

/// How much of each result is scanned for sensitive values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanMode {
    /// No counting (masking, which needs the values, still happens).
    Off,
    /// Every row of every result.
    All,
    /// One row in `sample_every`.
    Sample,
    /// The first `first_rows` rows of each result.
    First,
}

/// The `[data]` table: sensitive-data scanning of results.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The per-statement scan budget.
    pub scan: ScanMode,
    /// With `scan = "sample"`: scan one row in this many.
    pub sample_every: u32,
    /// With `scan = "first"`: rows scanned at the start of each result.
    pub first_rows: u32,
    /// Largest DataRow inspected whole, in bytes. A larger row is streamed
    /// unscanned (and counted); one that must be masked ends the session.
    pub max_inspected_row_bytes: u32,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            scan: ScanMode::All,
            sample_every: 10,
            first_rows: 1000,
            max_inspected_row_bytes: 16 * 1024 * 1024,
        }
    }
}

fn default_allowlist() -> PathBuf {
    PathBuf::from("var/allowlist.toml")
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(2)
}

impl PolicyConfig {
    /// Where the policy crate finds the files.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            dir: self.dir.clone(),
            classification: self.classification.clone(),
            allowlist: Some(self.allowlist.clone()),
            mask_key: self.mask_key.clone(),
        }
    }
}

/// The wire protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Postgres,
    /// MySQL and MariaDB (client/server protocol 4.1).
    Mysql,
    /// HTTP/1.1 and HTTP/2 in front of data-sharing APIs.
    Http,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Http => "http",
        }
    }
}

/// One `[[listener]]`: an address clients connect to, in front of one backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Short name used in metrics labels and audit events.
    pub name: String,
    pub protocol: Protocol,
    pub listen: SocketAddr,
    /// `host:port` of the database server; a host name is resolved at each
    /// connect so that DNS changes are followed. Database listeners only.
    #[serde(default)]
    pub backend: String,
    /// This listener's policy mode (`learn`, `monitor`, `enforce`);
    /// default `policy.mode`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// MySQL listeners only: the error number a policy refusal answers
    /// with (default 1142, ER_TABLEACCESS_DENIED_ERROR, which clients and
    /// ORMs already treat as "not allowed").
    #[serde(default)]
    pub deny_error_code: Option<u16>,
    /// HTTP listeners: the API scope policy directory.
    #[serde(default)]
    pub api_policy: Option<PathBuf>,
    /// HTTP listeners: where requests go, by path prefix and host.
    #[serde(default)]
    pub upstream: Vec<crate::http::config::UpstreamConfig>,
    /// HTTP listeners: how callers prove who they are.
    #[serde(default)]
    pub auth: Option<crate::http::auth::AuthConfig>,
    /// HTTP listeners: body handling and limits.
    #[serde(default)]
    pub http: crate::http::config::HttpSettings,
    /// TLS towards clients (`[listener.tls]`, see docs/tls.md).
    #[serde(default)]
    pub tls: Option<crate::tls::ListenerTls>,
    /// TLS towards the backend (`[listener.backend_tls]`); database
    /// listeners only.
    #[serde(default)]
    pub backend_tls: Option<crate::tls::BackendTls>,
}

impl ListenerConfig {
    /// The MySQL error number of a policy refusal.
    pub fn mysql_deny_code(&self) -> u16 {
        self.deny_error_code.unwrap_or(1142)
    }
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        crate::files::trusted(path, "configuration file").map_err(|message| {
            ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            }
        })?;
        let mut config = Self::parse(&text, path)?;
        if let Some(p) = &mut config.policy {
            if let Some(file) = &p.masking_key_file {
                let key = read_masking_key(file).map_err(|message| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message,
                })?;
                p.mask_key = Some(key);
            }
        }
        Ok(config)
    }

    /// Parses and validates configuration text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges, uniqueness, cross-field rules.
    fn validate(&self) -> Result<(), String> {
        if self.listeners.is_empty() {
            return Err(
                "no [[listener]] defined: add at least one, e.g.\n\n[[listener]]\nname = \"pg\"\nprotocol = \"postgres\"\nlisten = \"127.0.0.1:6543\"\nbackend = \"127.0.0.1:5432\""
                    .into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        let mut addrs = std::collections::HashSet::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let at = format!("listener[{i}]");
            if l.deny_error_code.is_some() && l.protocol != Protocol::Mysql {
                return Err(format!(
                    "{at}.deny_error_code applies to protocol = \"mysql\" listeners only (PostgreSQL refusals use the policy's deny_sqlstate)"
                ));
            }
            if l.deny_error_code
                .is_some_and(|c| !(1000..=65534).contains(&c))
            {
                return Err(format!(
                    "{at}.deny_error_code must be a MySQL error number between 1000 and 65534"
                ));
            }
            if l.name.is_empty()
                || l.name.len() > 64
                || !l
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "{at}.name = {:?}: expected 1-64 characters of A-Z, a-z, 0-9, '-' or '_' (it is used as a metrics label)",
                    l.name
                ));
            }
            if !names.insert(l.name.as_str()) {
                return Err(format!("{at}.name = {:?}: duplicate listener name", l.name));
            }
            if !addrs.insert(l.listen) {
                return Err(format!(
                    "{at}.listen = \"{}\": another listener already uses this address",
                    l.listen
                ));
            }
            if l.listen == self.admin.listen {
                return Err(format!(
                    "{at}.listen = \"{}\": the same address as admin.listen",
                    l.listen
                ));
            }
            if let Some(t) = &l.tls {
                t.validate(&format!("{at}.tls"))?;
            }
            if l.protocol == Protocol::Http {
                validate_http_listener(l, &at)?;
                continue;
            }
            for (set, key) in [
                (l.api_policy.is_some(), "api_policy"),
                (!l.upstream.is_empty(), "upstream"),
                (l.auth.is_some(), "auth"),
            ] {
                if set {
                    return Err(format!(
                        "{at}.{key} applies to protocol = \"http\" listeners only"
                    ));
                }
            }
            let (host, _) = parse_host_port(&l.backend).map_err(|why| {
                format!(
                    "{at}.backend = {:?}: {why}; expected \"host:port\", e.g. \"127.0.0.1:5432\"",
                    l.backend
                )
            })?;
            if let Some(t) = &l.backend_tls {
                t.validate(&format!("{at}.backend_tls"), &host)?;
            }
        }
        if self.limits.max_message_bytes < MIN_MAX_MESSAGE_BYTES {
            return Err(format!(
                "limits.max_message_bytes = {}: expected at least {MIN_MAX_MESSAGE_BYTES}",
                self.limits.max_message_bytes
            ));
        }
        if self.limits.max_message_bytes > 1 << 30 {
            return Err(format!(
                "limits.max_message_bytes = {}: expected at most 1073741824 (PostgreSQL's own limit)",
                self.limits.max_message_bytes
            ));
        }
        if self.limits.max_connections == 0 {
            return Err("limits.max_connections = 0: expected at least 1".into());
        }
        if self.limits.startup_timeout.is_zero() {
            return Err("limits.startup_timeout must be greater than zero".into());
        }
        if self.limits.backend_connect_timeout.is_zero() {
            return Err("limits.backend_connect_timeout must be greater than zero".into());
        }
        if self.runtime.worker_threads > 1024 {
            return Err(format!(
                "runtime.worker_threads = {}: expected 0 (one per CPU) to 1024",
                self.runtime.worker_threads
            ));
        }
        if self.admin.token_file.as_os_str().is_empty() {
            return Err("admin.token_file is empty: name the file holding the admin API token, e.g. \"var/admin.token\"".into());
        }
        if let Some(p) = &self.policy {
            if p.dir.as_os_str().is_empty() {
                return Err("policy.dir is empty: name a directory of policy files, e.g. \"policies/packs/default\"".into());
            }
        }
        if self.data.sample_every == 0 {
            return Err("data.sample_every = 0: expected at least 1 (1 scans every row)".into());
        }
        if self.data.max_inspected_row_bytes < 1024 {
            return Err(format!(
                "data.max_inspected_row_bytes = {}: expected at least 1024",
                self.data.max_inspected_row_bytes
            ));
        }
        self.audit.validate()?;
        self.behaviour.validate()?;
        self.alerts.validate()?;
        self.api.validate()?;
        Ok(())
    }

    /// Relative paths (audit directory, policy files) resolved against
    /// `base`, the directory danxia was started in.
    pub fn resolve_paths(&mut self, base: &Path) {
        if self.audit.dir.is_relative() {
            self.audit.dir = base.join(&self.audit.dir);
        }
        if let Some(archive) = self.audit.archive_dir.as_mut().filter(|a| a.is_relative()) {
            *archive = base.join(&*archive);
        }
        if self.behaviour.dir.is_relative() {
            self.behaviour.dir = base.join(&self.behaviour.dir);
        }
        if self.api.dir.is_relative() {
            self.api.dir = base.join(&self.api.dir);
        }
        if self.admin.token_file.is_relative() {
            self.admin.token_file = base.join(&self.admin.token_file);
        }
        for l in &mut self.listeners {
            if let Some(t) = &mut l.tls {
                t.resolve_paths(base);
            }
            if let Some(t) = &mut l.backend_tls {
                t.resolve_paths(base);
            }
            let auth = l.auth.as_mut();
            let (keys, jwks) = match auth {
                Some(a) => (a.keys_file.as_mut(), a.jwks_file.as_mut()),
                None => (None, None),
            };
            for path in [l.api_policy.as_mut(), keys, jwks].into_iter().flatten() {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
            for u in &mut l.upstream {
                for path in [u.ca.as_mut(), u.cert.as_mut(), u.key.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    if path.is_relative() {
                        *path = base.join(&*path);
                    }
                }
            }
        }
        if let Some(p) = &mut self.policy {
            for path in [
                Some(&mut p.dir),
                p.classification.as_mut(),
                Some(&mut p.allowlist),
            ]
            .into_iter()
            .flatten()
            {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
    }

    /// The mode a listener applies the policy in.
    pub fn listener_mode(&self, l: &ListenerConfig) -> Mode {
        l.mode
            .or(self.policy.as_ref().map(|p| p.mode))
            .unwrap_or_default()
    }
}

/// Checks what an HTTP listener needs: an API policy, upstreams, auth.
fn validate_http_listener(l: &ListenerConfig, at: &str) -> Result<(), String> {
    if !l.backend.is_empty() {
        return Err(format!(
            "{at}.backend applies to database listeners; an http listener names its APIs in [[listener.upstream]] (prefix, url)"
        ));
    }
    if l.deny_error_code.is_some() {
        return Err(format!(
            "{at}.deny_error_code applies to mysql listeners only"
        ));
    }
    if l.backend_tls.is_some() {
        return Err(format!(
            "{at}.backend_tls applies to database listeners; an http listener's upstreams say their scheme in their url"
        ));
    }
    if l.api_policy.is_none() {
        return Err(format!(
            "{at}.api_policy is missing: name the API scope policy directory, e.g. api_policy = \"policies/packs/api-example\" (see docs/api-policy.md)"
        ));
    }
    if l.upstream.is_empty() {
        return Err(format!(
            "{at} has no [[listener.upstream]]: add one, e.g.\n\n[[listener.upstream]]\nprefix = \"/api/\"\nurl = \"http://127.0.0.1:8080\""
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (j, u) in l.upstream.iter().enumerate() {
        let uat = format!("{at}.upstream[{j}]");
        crate::http::config::validate_upstream(u, &uat)?;
        if !seen.insert((u.host.clone(), u.prefix.clone())) {
            return Err(format!(
                "{uat}: another upstream already has prefix {:?} for the same host",
                u.prefix
            ));
        }
    }
    match &l.auth {
        None => {
            return Err(format!(
                "{at}.auth is missing: every API caller must authenticate, e.g.\n\n[listener.auth]\napi_key_header = \"x-api-key\"\nkeys_file = \"var/api-keys.toml\""
            ))
        }
        Some(a) => {
            let client_certs = l.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
            a.validate_for(client_certs)
                .map_err(|e| format!("{at}.auth: {e}"))?
        }
    }
    l.http.validate(at)
}

/// Reads the masking key file (relative paths from the working directory).
fn read_masking_key(file: &Path) -> Result<std::sync::Arc<[u8]>, String> {
    crate::files::secret(file, "policy.masking_key_file")?;
    let bytes = std::fs::read(file).map_err(|e| {
        format!(
            "policy.masking_key_file = {:?}: cannot read it: {e}",
            file.display().to_string()
        )
    })?;
    let mut key: &[u8] = &bytes;
    while let [rest @ .., b'\n' | b'\r'] = key {
        key = rest;
    }
    if key.len() < MIN_MASKING_KEY_BYTES {
        return Err(format!(
            "policy.masking_key_file = {:?}: the key is {} bytes, expected at least {MIN_MASKING_KEY_BYTES} (e.g. `head -c 32 /dev/urandom | base64 > FILE`)",
            file.display().to_string(),
            key.len()
        ));
    }
    Ok(std::sync::Arc::from(key))
}

/// Splits `host:port` (IPv6 in brackets) without resolving it.
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| "missing ':port'".to_string())?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err("port 0 is not a valid backend port".into());
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("missing host".into());
    }
    Ok((host.to_string(), port))
}

/// Turns a toml/serde error into one line naming the key and line, plus the
/// offending source line, so the reader sees what to fix.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut msg = e.message().trim().to_string();
    if let Some(span) = e.span() {
        let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
        let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
        msg = format!("line {line_no}: {msg}\n    {line}");
    }
    msg
}

/// The config path used when none is given: `danxia.toml` in the working
/// directory (what `cargo run --release` at the repository root expects).
pub fn default_path() -> PathBuf {
    PathBuf::from("danxia.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    const MINIMAL: &str = r#"
[[listener]]
name = "pg"
protocol = "postgres"
listen = "127.0.0.1:6543"
backend = "127.0.0.1:5432"
"#;

    #[test]
    fn shipped_config_is_valid() {
        let text = include_str!("../../danxia.toml");
        let c = parse(text).expect("shipped danxia.toml must be valid");
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[0].listen.port(), 6543);
        assert_eq!(c.listeners[0].protocol, Protocol::Postgres);
        assert_eq!(c.listeners[1].listen.port(), 3307);
        assert_eq!(c.listeners[1].protocol, Protocol::Mysql);
        assert_eq!(c.listeners[1].backend, "127.0.0.1:3306");
        assert_eq!(c.listeners[1].mysql_deny_code(), 1142);
        assert_eq!(c.admin.listen.port(), 9898);
    }

    /// The shipped file's commented `api` listener, uncommented, is valid.
    #[test]
    fn shipped_http_example_is_valid_once_uncommented() {
        let text = include_str!("../../danxia.toml");
        let start = text
            .find("# [[listener]]\n# name = \"api\"")
            .expect("api example");
        let end = start + text[start..].find("\n\n# Quotas").expect("end of example");
        let block: String = text[start..end]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .map(|l| if l.starts_with('#') { "" } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!("{}{block}{}", &text[..start], &text[end..]);
        let c = parse(&text).expect("the uncommented http example must be valid");
        let api = c
            .listeners
            .iter()
            .find(|l| l.protocol == Protocol::Http)
            .expect("http listener");
        assert_eq!(api.listen.port(), 8443);
        assert_eq!(api.upstream.len(), 1);
        assert_eq!(
            api.auth.as_ref().and_then(|a| a.keys_file.clone()),
            Some(PathBuf::from("var/api-keys.toml"))
        );
    }

    #[test]
    fn http_listener_needs_policy_upstream_and_auth() {
        let base = "[[listener]]\nname = \"api\"\nprotocol = \"http\"\nlisten = \"127.0.0.1:1\"\n";
        let e = parse(base).unwrap_err();
        assert!(e.contains("api_policy"), "{e}");
        let with_policy = format!("{base}api_policy = \"p\"\n");
        let e = parse(&with_policy).unwrap_err();
        assert!(e.contains("listener.upstream"), "{e}");
        let with_up = format!("{with_policy}[[listener.upstream]]\nprefix = \"/api/\"\nurl = \"http://127.0.0.1:2\"\n");
        let e = parse(&with_up).unwrap_err();
        assert!(e.contains("auth"), "{e}");
        let ok = format!("{with_up}[listener.auth]\nkeys_file = \"k.toml\"\n");
        parse(&ok).expect("complete http listener");
        let bad_url = ok.replace("http://127.0.0.1:2", "ftp://x");
        assert!(parse(&bad_url).unwrap_err().contains("http://"));
        // https upstreams parse; their ca is read (and required) when the
        // listener starts: http::upstream_tls::load.
        let https = ok.replace("http://127.0.0.1:2", "https://x:1");
        parse(&https).expect("https upstream");
        let with_backend = ok.replace(
            "protocol = \"http\"",
            "protocol = \"http\"\nbackend = \"x:1\"",
        );
        assert!(parse(&with_backend).unwrap_err().contains("backend"));
        let pg_with_upstream = "[[listener]]\nname = \"pg\"\nprotocol = \"postgres\"\nlisten = \"127.0.0.1:1\"\nbackend = \"x:1\"\n[[listener.upstream]]\nprefix = \"/\"\nurl = \"http://x:1\"\n";
        assert!(parse(pg_with_upstream).unwrap_err().contains("http"));
    }

    #[test]
    fn deny_error_code_is_for_mysql_listeners_only() {
        let pg = "[[listener]]\nname = \"a\"\nprotocol = \"postgres\"\nlisten = \"127.0.0.1:1\"\nbackend = \"x:1\"\ndeny_error_code = 1142\n";
        let e = parse(pg).unwrap_err().to_string();
        assert!(e.contains("deny_error_code"), "{e}");
        let my = pg.replace("postgres", "mysql");
        assert_eq!(
            parse(&my).expect("valid").listeners[0].mysql_deny_code(),
            1142
        );
        let bad = my.replace("1142", "7");
        assert!(parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("1000 and 65534"));
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.limits.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(c.admin.listen, default_admin_listen());
        assert_eq!(c.admin.token_file, PathBuf::from("var/admin.token"));
        assert!(!c.admin.metrics_public);
        let mut c = c;
        c.resolve_paths(Path::new("/srv/danxia"));
        assert_eq!(
            c.admin.token_file,
            PathBuf::from("/srv/danxia/var/admin.token")
        );
    }

    #[test]
    fn errors_name_the_key_and_what_is_expected() {
        let cases: &[(&str, &str)] = &[
            ("[admin]\nlisten = \"nope\"\n", "line 2"),
            ("[admin]\nlisen = \"127.0.0.1:1\"\n", "lisen"),
            (
                "[limits]\nmax_message_bytes = 10\n",
                "limits.max_message_bytes",
            ),
            ("[limits]\nshutdown_grace = \"soon\"\n", "line 2"),
            ("", "no [[listener]]"),
        ];
        for (extra, want) in cases {
            let text = if extra.is_empty() {
                String::new()
            } else {
                format!("{extra}{MINIMAL}")
            };
            let err = parse(&text).expect_err(extra);
            assert!(err.contains(want), "{extra:?}: {err:?} lacks {want:?}");
            assert!(err.contains("t.toml"), "{err:?} must name the file");
        }
    }

    #[test]
    fn listener_validation() {
        let bad_backend = MINIMAL.replace("127.0.0.1:5432", "localhost");
        assert!(parse(&bad_backend)
            .unwrap_err()
            .contains("listener[0].backend"));
        let dup = format!("{MINIMAL}{}", MINIMAL.replace("6543", "6544"));
        assert!(parse(&dup).unwrap_err().contains("duplicate listener name"));
        let bad_name = MINIMAL.replace("name = \"pg\"", "name = \"p g\"");
        assert!(parse(&bad_name).unwrap_err().contains("listener[0].name"));
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            parse_host_port("db.example:5432").unwrap(),
            ("db.example".into(), 5432)
        );
        assert_eq!(parse_host_port("[::1]:5432").unwrap(), ("::1".into(), 5432));
        assert!(parse_host_port("db").is_err());
        assert!(parse_host_port("db:0").is_err());
        assert!(parse_host_port(":5432").is_err());
    }
}
