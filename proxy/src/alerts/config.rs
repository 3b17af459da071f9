//! The `[alerts]` table of `danxia.toml`: which SOC sinks receive alerts
//! (a webhook, syslog, both or none), how large their queues are, and how
//! repeats of one incident are suppressed.
//!
//! Owns parsing, defaults and validation only. Must never open sockets, spawn
//! tasks or resolve host names: a configuration that fails `validate` must
//! leave nothing behind. Must never put a webhook header value or the
//! webhook URL's path (which often carries a token) into an error message or
//! a `Debug` string.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use hyper::Uri;
use serde::Deserialize;

use super::Risk;

/// Largest accepted `queue_capacity`. Each queued alert holds its whole JSON
/// document; a larger queue only postpones the moment alerts are dropped.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;

/// Largest accepted `max_keys`: each remembered key costs its bytes (at most
/// `dedup::MAX_KEY_BYTES`) plus two map entries.
pub const MAX_KEYS_LIMIT: usize = 10_000_000;

/// Largest accepted `webhook.retries`: with the backoff capped at
/// `max_backoff`, more attempts only keep a dead endpoint's queue full longer.
pub const MAX_RETRIES: u32 = 100;

/// RFC 5424 §6.2.5: APP-NAME is at most 48 printable ASCII characters.
pub const MAX_APP_NAME_LEN: usize = 48;

/// RFC 5424 §6.2.4: HOSTNAME is at most 255 printable ASCII characters.
pub const MAX_HOSTNAME_LEN: usize = 255;

const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
const DEFAULT_SUPPRESS: Duration = Duration::from_secs(600);
const DEFAULT_MAX_KEYS: usize = 100_000;
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_WEBHOOK_RETRIES: u32 = 5;
const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
const DEFAULT_APP_NAME: &str = "danxia";

/// Headers the webhook sink sets itself; configuring them would break the
/// request framing or the JSON contract.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
];

/// The validated `[alerts]` table. Every key is optional; without
/// `[alerts.webhook]` and `[alerts.syslog]` alerts are only counted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Alerts waiting per sink before new ones are dropped (and counted in
    /// `danxia_alert_deliveries_total{result="dropped"}`). Default 10000.
    pub queue_capacity: usize,
    /// Alerts with the same key within this time of the last one *sent* are
    /// suppressed and counted; the next one sent carries `"suppressed": N`.
    /// `0s` never suppresses. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub suppress: Duration,
    /// Suppression keys remembered; beyond this the key sent longest ago is
    /// forgotten (its next alert is sent at once). Default 100000.
    pub max_keys: usize,
    /// Alerts below this risk are counted in `danxia_alerts_total` but not
    /// handed to any sink. Default `low` (everything is sent).
    pub min_risk: Risk,
    /// JSON POST to an HTTP endpoint. Default: none.
    pub webhook: Option<WebhookConfig>,
    /// RFC 5424 syslog over UDP or TCP. Default: none.
    pub syslog: Option<SyslogConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            suppress: DEFAULT_SUPPRESS,
            max_keys: DEFAULT_MAX_KEYS,
            min_risk: Risk::Low,
            webhook: None,
            syslog: None,
        }
    }
}

/// `[alerts.webhook]`: one JSON POST per alert, in order, retried with
/// exponential backoff on 5xx, 408, 429, connect errors and timeouts.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://host:port/path` (port defaults to 80). Required. `https` is
    /// not supported yet: TLS comes with the proxy's TLS step; until then
    /// point this at an HTTP relay on loopback.
    pub url: String,
    /// Limit for one attempt: connect, send, and read the response. Default `5s`.
    #[serde(default = "default_webhook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts after the first before the alert is counted as failed. Default 5.
    #[serde(default = "default_webhook_retries")]
    pub retries: u32,
    /// Delay before the first retry; it doubles per retry. Default `500ms`.
    #[serde(default = "default_backoff", with = "humantime_serde")]
    pub backoff: Duration,
    /// Cap of the doubling retry delay. Default `30s`.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Extra request headers, e.g. an authentication token. Default none.
    /// Values are never logged nor shown by `Debug`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("endpoint", &endpoint_of(&self.url))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How syslog messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    /// RFC 5426: one datagram per message, truncated at 8192 bytes.
    #[default]
    Udp,
    /// RFC 6587 octet counting over one persistent connection.
    Tcp,
}

/// Syslog facility (RFC 5424 §6.2.1), the upper part of PRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    #[default]
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    /// The numeric facility code of RFC 5424 table 1.
    pub fn code(self) -> u8 {
        match self {
            Facility::Kern => 0,
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Syslog => 5,
            Facility::Lpr => 6,
            Facility::News => 7,
            Facility::Uucp => 8,
            Facility::Cron => 9,
            Facility::Authpriv => 10,
            Facility::Ftp => 11,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

/// `[alerts.syslog]`: RFC 5424 messages to a collector.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the collector (`[v6addr]:port` for IPv6). Required.
    /// Resolved when the sink (re)connects.
    pub address: String,
    /// `udp` or `tcp`. Default `udp`.
    #[serde(default)]
    pub transport: SyslogTransport,
    /// Default `local4`.
    #[serde(default)]
    pub facility: Facility,
    /// APP-NAME header field, at most 48 printable ASCII characters; empty
    /// sends the NILVALUE `-`. Default `danxia`.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// HOSTNAME header field, at most 255 printable ASCII characters. Empty
    /// (the default) uses this machine's host name.
    #[serde(default)]
    pub hostname: String,
}

fn default_webhook_timeout() -> Duration {
    DEFAULT_WEBHOOK_TIMEOUT
}
fn default_webhook_retries() -> u32 {
    DEFAULT_WEBHOOK_RETRIES
}
fn default_backoff() -> Duration {
    DEFAULT_BACKOFF
}
fn default_max_backoff() -> Duration {
    DEFAULT_MAX_BACKOFF
}
fn default_app_name() -> String {
    DEFAULT_APP_NAME.to_string()
}

/// What the webhook sink needs from a validated URL.
#[derive(Debug, Clone)]
pub(crate) struct WebhookTarget {
    pub uri: Uri,
    /// `host:port`, safe to log (no path, no query).
    pub endpoint: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// `host:port` of a URL for logs and `Debug`, or `"?"`: never the path or
/// query, which may carry a token.
fn endpoint_of(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => match uri.host() {
            Some(host) => format!("{host}:{}", uri.port_u16().unwrap_or(80)),
            None => "?".into(),
        },
        Err(_) => "?".into(),
    }
}

impl WebhookConfig {
    /// Parses the URL and headers the way the sink will use them; the
    /// errors name the key to fix and never echo a header value or the path.
    pub(crate) fn target(&self) -> Result<WebhookTarget, String> {
        let uri: Uri = self.url.parse().map_err(|_| {
            "alerts.webhook.url is not a valid URL; expected http://host:port/path".to_string()
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(s) if s.eq_ignore_ascii_case("https") => {
                return Err(
                    "alerts.webhook.url uses https, which is not supported yet: TLS for \
                            webhooks comes with the TLS step; meanwhile run an http relay on \
                            loopback (e.g. http://127.0.0.1:9000/danxia) that forwards over TLS"
                        .into(),
                )
            }
            Some(s) if s.eq_ignore_ascii_case("http") => {}
            _ => {
                return Err(
                    "alerts.webhook.url must start with http:// (expected http://host:port/path)"
                        .into(),
                )
            }
        }
        let authority = uri.authority().ok_or_else(|| {
            "alerts.webhook.url has no host; expected http://host:port/path".to_string()
        })?;
        if authority.as_str().contains('@') {
            return Err(
                "alerts.webhook.url must not contain user:password@; put credentials \
                        in alerts.webhook.headers (whose values are never logged)"
                    .into(),
            );
        }
        if authority.host().is_empty() {
            return Err("alerts.webhook.url has no host; expected http://host:port/path".into());
        }
        if authority.port_u16() == Some(0) {
            return Err("alerts.webhook.url port must be 1..=65535".into());
        }
        let endpoint = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let hname = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                format!("alerts.webhook.headers: {name:?} is not a valid HTTP header name")
            })?;
            if RESERVED_HEADERS.contains(&hname.as_str()) {
                return Err(format!(
                    "alerts.webhook.headers: {name:?} is set by danxia itself and cannot be configured"
                ));
            }
            let mut hvalue = HeaderValue::from_str(value).map_err(|_| {
                format!(
                    "alerts.webhook.headers: the value of {name:?} is not a valid HTTP header \
                     value (visible ASCII only)"
                )
            })?;
            hvalue.set_sensitive(true);
            headers.push((hname, hvalue));
        }
        Ok(WebhookTarget {
            uri,
            endpoint,
            headers,
        })
    }

    fn validate(&self) -> Result<(), String> {
        self.target()?;
        if self.timeout.is_zero() {
            return Err("alerts.webhook.timeout must be greater than 0 (default \"5s\")".into());
        }
        if self.retries > MAX_RETRIES {
            return Err(format!(
                "alerts.webhook.retries must be at most {MAX_RETRIES} (got {})",
                self.retries
            ));
        }
        if self.max_backoff.is_zero() {
            return Err(
                "alerts.webhook.max_backoff must be greater than 0 (default \"30s\")".into(),
            );
        }
        if self.backoff > self.max_backoff {
            return Err(format!(
                "alerts.webhook.backoff ({:?}) must not exceed alerts.webhook.max_backoff ({:?})",
                self.backoff, self.max_backoff
            ));
        }
        Ok(())
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6). The host is not resolved here.
pub(crate) fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if port == 0 {
        return None;
    }
    if let Some(inner) = host.strip_prefix('[') {
        let v6 = inner.strip_suffix(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        return Some((v6, port));
    }
    if host.is_empty() || host.contains(['[', ']', ':', '/', ' ', '@']) {
        return None;
    }
    Some((host, port))
}

/// RFC 5424 PRINTUSASCII: `%d33-126`.
pub(crate) fn is_print_us_ascii(s: &str) -> bool {
    s.bytes().all(|b| (33..=126).contains(&b))
}

impl SyslogConfig {
    fn validate(&self) -> Result<(), String> {
        if split_host_port(&self.address).is_none() {
            return Err(format!(
                "alerts.syslog.address must be host:port with a port 1..=65535, \
                 [ipv6]:port for IPv6 (got {:?})",
                self.address
            ));
        }
        if self.app_name.len() > MAX_APP_NAME_LEN || !is_print_us_ascii(&self.app_name) {
            return Err(format!(
                "alerts.syslog.app_name must be at most {MAX_APP_NAME_LEN} printable ASCII \
                 characters without spaces (got {:?})",
                self.app_name
            ));
        }
        if self.hostname.len() > MAX_HOSTNAME_LEN || !is_print_us_ascii(&self.hostname) {
            return Err(format!(
                "alerts.syslog.hostname must be empty or at most {MAX_HOSTNAME_LEN} printable \
                 ASCII characters without spaces (got {:?})",
                self.hostname
            ));
        }
        Ok(())
    }
}

impl AlertsConfig {
    /// Checks the values serde cannot: says which key is wrong and what is
    /// expected, so the operator can fix the file without reading code.
    pub fn validate(&self) -> Result<(), String> {
        if self.queue_capacity < 1 {
            return Err("alerts.queue_capacity must be at least 1 (default 10000)".into());
        }
        if self.queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(format!(
                "alerts.queue_capacity must be at most {MAX_QUEUE_CAPACITY} (got {})",
                self.queue_capacity
            ));
        }
        if self.max_keys < 1 {
            return Err("alerts.max_keys must be at least 1 (default 100000)".into());
        }
        if self.max_keys > MAX_KEYS_LIMIT {
            return Err(format!(
                "alerts.max_keys must be at most {MAX_KEYS_LIMIT} (got {})",
                self.max_keys
            ));
        }
        if let Some(w) = &self.webhook {
            w.validate()?;
        }
        if let Some(s) = &self.syslog {
            s.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertsConfig, toml::de::Error> {
        toml::from_str(text)
    }

    fn webhook(url: &str) -> AlertsConfig {
        AlertsConfig {
            webhook: Some(WebhookConfig {
                url: url.into(),
                timeout: DEFAULT_WEBHOOK_TIMEOUT,
                retries: DEFAULT_WEBHOOK_RETRIES,
                backoff: DEFAULT_BACKOFF,
                max_backoff: DEFAULT_MAX_BACKOFF,
                headers: BTreeMap::new(),
            }),
            ..Default::default()
        }
    }

    fn syslog(address: &str) -> AlertsConfig {
        AlertsConfig {
            syslog: Some(SyslogConfig {
                address: address.into(),
                transport: SyslogTransport::Udp,
                facility: Facility::Local4,
                app_name: "danxia".into(),
                hostname: String::new(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn empty_table_gives_defaults() {
        let c = parse("").expect("empty parses");
        assert_eq!(c, AlertsConfig::default());
        assert_eq!(c.queue_capacity, 10_000);
        assert_eq!(c.suppress, Duration::from_secs(600));
        assert_eq!(c.max_keys, 100_000);
        assert_eq!(c.min_risk, Risk::Low);
        assert!(c.webhook.is_none() && c.syslog.is_none());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn full_table_parses() {
        let c = parse(
            r#"queue_capacity = 50
               suppress = "0s"
               max_keys = 7
               min_risk = "high"
               [webhook]
               url = "http://127.0.0.1:9000/danxia"
               timeout = "2s"
               retries = 3
               backoff = "100ms"
               max_backoff = "1s"
               headers = { "X-Token" = "secret-token" }
               [syslog]
               address = "127.0.0.1:514"
               transport = "tcp"
               facility = "local7"
               app_name = "dx"
               hostname = "fw1""#,
        )
        .expect("parses");
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.suppress, Duration::ZERO);
        assert_eq!(c.min_risk, Risk::High);
        let w = c.webhook.as_ref().expect("webhook");
        assert_eq!(w.timeout, Duration::from_secs(2));
        assert_eq!(w.backoff, Duration::from_millis(100));
        assert_eq!(
            w.headers.get("X-Token").map(String::as_str),
            Some("secret-token")
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("secret-token"), "header value leaked: {dbg}");
        assert!(!dbg.contains("/danxia"), "url path leaked: {dbg}");
        let s = c.syslog.as_ref().expect("syslog");
        assert_eq!(s.transport, SyslogTransport::Tcp);
        assert_eq!(s.facility.code(), 23);
    }

    #[test]
    fn webhook_and_syslog_defaults() {
        let c = parse("[webhook]\nurl = \"http://h:1/\"\n[syslog]\naddress = \"h:514\"")
            .expect("parses");
        let w = c.webhook.expect("webhook");
        assert_eq!(w.timeout, Duration::from_secs(5));
        assert_eq!(w.retries, 5);
        assert_eq!(w.backoff, Duration::from_millis(500));
        assert_eq!(w.max_backoff, Duration::from_secs(30));
        assert!(w.headers.is_empty());
        let s = c.syslog.expect("syslog");
        assert_eq!(s.transport, SyslogTransport::Udp);
        assert_eq!(s.facility, Facility::Local4);
        assert_eq!(s.app_name, "danxia");
        assert_eq!(s.hostname, "");
    }

    #[test]
    fn every_facility_spelling_parses() {
        let names = [
            "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
            "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5",
            "local6", "local7",
        ];
        let codes: Vec<u8> = names
            .iter()
            .map(|n| {
                let c = parse(&format!("[syslog]\naddress = \"h:1\"\nfacility = \"{n}\""))
                    .unwrap_or_else(|e| panic!("{n}: {e}"));
                c.syslog.expect("syslog").facility.code()
            })
            .collect();
        let want: Vec<u8> = (0..=11).chain(16..=23).collect();
        assert_eq!(codes, want);
    }

    #[test]
    fn unknown_keys_and_values_are_rejected() {
        for text in [
            "queue_size = 10",
            "min_risk = \"severe\"",
            "suppress = \"soon\"",
            "[webhook]\nurl = \"http://h:1/\"\nmethod = \"PUT\"",
            "[webhook]\ntimeout = \"1s\"",
            "[syslog]\naddress = \"h:1\"\ntransport = \"tls\"",
            "[syslog]\naddress = \"h:1\"\nfacility = \"local8\"",
            "[syslog]\ntransport = \"udp\"",
        ] {
            assert!(parse(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn validate_names_the_key() {
        let mut cases: Vec<(AlertsConfig, &str)> = vec![
            (
                AlertsConfig {
                    queue_capacity: 0,
                    ..Default::default()
                },
                "alerts.queue_capacity must be at least 1",
            ),
            (
                AlertsConfig {
                    queue_capacity: MAX_QUEUE_CAPACITY + 1,
                    ..Default::default()
                },
                "alerts.queue_capacity must be at most",
            ),
            (
                AlertsConfig {
                    max_keys: 0,
                    ..Default::default()
                },
                "alerts.max_keys must be at least 1",
            ),
            (
                webhook("https://soc.example/hook"),
                "alerts.webhook.url uses https",
            ),
            (
                webhook("ftp://h:1/x"),
                "alerts.webhook.url must start with http://",
            ),
            (
                webhook("/just/a/path"),
                "alerts.webhook.url must start with http://",
            ),
            (
                webhook("http://u:p@h:1/x"),
                "alerts.webhook.url must not contain",
            ),
            (webhook("http://h:0/x"), "alerts.webhook.url port"),
            (
                webhook("http://h:1/a b"),
                "alerts.webhook.url is not a valid URL",
            ),
            (
                syslog("localhost"),
                "alerts.syslog.address must be host:port",
            ),
            (
                syslog("localhost:syslog"),
                "alerts.syslog.address must be host:port",
            ),
            (syslog(":514"), "alerts.syslog.address must be host:port"),
            (syslog("h:0"), "alerts.syslog.address must be host:port"),
            (syslog("h:70000"), "alerts.syslog.address must be host:port"),
            (syslog("::1:514"), "alerts.syslog.address must be host:port"),
            (
                syslog("[::1]514"),
                "alerts.syslog.address must be host:port",
            ),
        ];
        let mut c = webhook("http://h:1/x");
        if let Some(w) = c.webhook.as_mut() {
            w.headers.insert("Content-Type".into(), "text/plain".into());
        }
        cases.push((
            c,
            "alerts.webhook.headers: \"Content-Type\" is set by danxia",
        ));
        let mut c = webhook("http://h:1/x");
        if let Some(w) = c.webhook.as_mut() {
            w.headers
                .insert("X-Token".into(), "bad\nvalue-secret".into());
        }
        cases.push((c, "alerts.webhook.headers: the value of \"X-Token\""));
        let mut c = webhook("http://h:1/x");
        if let Some(w) = c.webhook.as_mut() {
            w.backoff = Duration::from_secs(60);
        }
        cases.push((c, "alerts.webhook.backoff"));
        let mut c = webhook("http://h:1/x");
        if let Some(w) = c.webhook.as_mut() {
            w.timeout = Duration::ZERO;
        }
        cases.push((c, "alerts.webhook.timeout must be greater than 0"));
        let mut c = webhook("http://h:1/x");
        if let Some(w) = c.webhook.as_mut() {
            w.retries = MAX_RETRIES + 1;
        }
        cases.push((c, "alerts.webhook.retries must be at most"));
        let mut c = syslog("h:1");
        if let Some(s) = c.syslog.as_mut() {
            s.app_name = "a".repeat(49);
        }
        cases.push((c, "alerts.syslog.app_name"));
        let mut c = syslog("h:1");
        if let Some(s) = c.syslog.as_mut() {
            s.hostname = "my host".into();
        }
        cases.push((c, "alerts.syslog.hostname"));
        for (cfg, want) in cases {
            let err = cfg.validate().expect_err(want);
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
            assert!(!err.contains("secret"), "secret leaked: {err}");
        }
        let https = webhook("https://soc.example/hook")
            .validate()
            .expect_err("https");
        assert!(https.contains("TLS step") && https.contains("relay on loopback"));
    }

    #[test]
    fn good_addresses_and_urls_pass() {
        for a in [
            "127.0.0.1:514",
            "[::1]:6514",
            "syslog.internal:514",
            "h:65535",
        ] {
            assert_eq!(syslog(a).validate(), Ok(()), "{a}");
        }
        for u in [
            "http://127.0.0.1:9000/danxia",
            "http://relay/hook",
            "http://[::1]:8080/a?b=c",
            "HTTP://h:1/",
        ] {
            assert_eq!(webhook(u).validate(), Ok(()), "{u}");
        }
        let t = webhook("http://relay/hook?token=abc")
            .webhook
            .expect("webhook")
            .target()
            .expect("target");
        assert_eq!(t.endpoint, "relay:80");
        assert_eq!(split_host_port("[::1]:514"), Some(("::1", 514)));
        assert_eq!(split_host_port("a.b:1"), Some(("a.b", 1)));
    }
}
