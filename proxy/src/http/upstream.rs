//! Which API a request goes to, and the request as the API receives it:
//! longest-prefix routing by host and path, the upstream URI, and the
//! headers a reverse proxy must drop (hop-by-hop, danxia's own
//! credentials) or add (`X-Forwarded-*`, the authenticated caller).

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};

use super::config::UpstreamConfig;

/// One configured upstream, parsed.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub prefix: String,
    pub host: Option<String>,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path of the base URL without a trailing `/` (often empty).
    pub base_path: String,
    /// For logs and audit: the configured URL.
    pub url: String,
    /// https upstreams: what is verified and presented.
    pub tls: Option<super::upstream_tls::UpstreamTls>,
    /// https upstreams: the pooled client (built by [`Upstreams::connect`]).
    pub https: Option<super::upstream_tls::HttpsClient>,
}

/// All of a listener's upstreams, longest prefix first.
#[derive(Debug, Clone)]
pub struct Upstreams(Vec<Upstream>);

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1),
/// plus `te` and `trailer`, which this proxy does not relay.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Header danxia sets to tell the API who called (authenticated by danxia).
pub const CALLER_HEADER: &str = "x-danxia-caller";

impl Upstreams {
    pub fn new(cfgs: &[UpstreamConfig]) -> Result<Upstreams, String> {
        let mut v = Vec::with_capacity(cfgs.len());
        for (i, c) in cfgs.iter().enumerate() {
            let at = format!("upstream[{i}]");
            let uri = super::config::validate_upstream(c, &at)?;
            let tls = super::upstream_tls::load(c, uri.host().unwrap_or(""), &at)?;
            let parts = uri.into_parts();
            v.push(Upstream {
                prefix: c.prefix.clone(),
                host: c.host.as_ref().map(|h| h.to_ascii_lowercase()),
                scheme: parts.scheme.unwrap_or(Scheme::HTTP),
                authority: parts
                    .authority
                    .ok_or_else(|| format!("upstream[{i}].url has no host"))?,
                base_path: parts
                    .path_and_query
                    .map(|p| p.path().trim_end_matches('/').to_string())
                    .unwrap_or_default(),
                url: c.url.clone(),
                tls,
                https: None,
            });
        }
        // Longest prefix first; a host-specific entry before a wildcard one
        // of the same prefix.
        v.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(b.host.is_some().cmp(&a.host.is_some()))
        });
        Ok(Upstreams(v))
    }

    /// Builds the pooled client of every https upstream.
    pub fn connect(&mut self, settings: &super::config::HttpSettings) {
        for u in &mut self.0 {
            if let Some(t) = &u.tls {
                u.https = Some(super::upstream_tls::client(t, settings));
            }
        }
    }

    /// The configured URLs, for logs.
    pub fn urls(&self) -> Vec<&str> {
        self.0.iter().map(|u| u.url.as_str()).collect()
    }

    /// The upstream for a request's host (without port, any case) and path.
    pub fn pick(&self, host: Option<&str>, path: &str) -> Option<&Upstream> {
        let host = host.map(|h| h.to_ascii_lowercase());
        self.0.iter().find(|u| {
            path.starts_with(&u.prefix)
                && match (&u.host, &host) {
                    (None, _) => true,
                    (Some(want), Some(got)) => want == got,
                    (Some(_), None) => false,
                }
        })
    }
}

impl Upstream {
    /// The URI the API receives: base URL path + the request's path and
    /// query, without the query parameter `drop_param` (danxia's API key,
    /// when callers may send it in the query; "" drops nothing).
    pub fn uri(&self, pq: Option<&PathAndQuery>, drop_param: &str) -> Result<Uri, http::Error> {
        let path = pq.map(|p| p.path()).unwrap_or("/");
        let query = pq.and_then(|p| p.query()).map(|q| {
            if drop_param.is_empty() {
                return q.to_string();
            }
            q.split('&')
                .filter(|p| {
                    let name = p.split('=').next().unwrap_or("");
                    let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                    decoded != drop_param
                })
                .collect::<Vec<_>>()
                .join("&")
        });
        let mut full = String::with_capacity(self.base_path.len() + path.len() + 16);
        full.push_str(&self.base_path);
        full.push_str(path);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            full.push('?');
            full.push_str(&q);
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(full)
            .build()
    }
}

/// The request's host name without port, from `:authority` or `Host`.
pub fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let raw = uri
        .host()
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))?;
    // `Host: name:port` or `[v6]:port`.
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next();
    }
    Some(raw.split(':').next().unwrap_or(raw))
}

/// Rewrites a client request's headers for the upstream, in place.
/// `credential_headers` are removed unless `forward_credentials`; `proto`
/// is the client connection's scheme (`http` or `https`).
pub fn forward_headers(
    h: &mut HeaderMap,
    proto: &'static str,
    peer: SocketAddr,
    caller: &str,
    credential_headers: &[HeaderName],
    forward_credentials: bool,
) {
    drop_hop_by_hop(h);
    if !forward_credentials {
        h.remove(header::AUTHORIZATION);
        for n in credential_headers {
            h.remove(n);
        }
    }
    h.remove(header::HOST);
    // The caller is danxia's to say, never the client's.
    h.remove(CALLER_HEADER);
    if let Ok(v) = HeaderValue::from_str(caller) {
        h.insert(HeaderName::from_static(CALLER_HEADER), v);
    }
    let ip = peer.ip().to_string();
    let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    h.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    );
}

/// Drops hop-by-hop headers from an upstream response.
pub fn response_headers(h: &mut HeaderMap) {
    drop_hop_by_hop(h);
}

/// Removes the hop-by-hop headers, and those `Connection` names as such.
fn drop_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(prefix: &str, host: Option<&str>, url: &str) -> UpstreamConfig {
        UpstreamConfig {
            prefix: prefix.into(),
            host: host.map(Into::into),
            url: url.into(),
            ca: None,
            cert: None,
            key: None,
            server_name: None,
        }
    }

    #[test]
    fn longest_prefix_and_host_win() {
        let u = Upstreams::new(&[
            cfg("/api/", None, "http://127.0.0.1:1"),
            cfg("/api/v2/", None, "http://127.0.0.1:2"),
            cfg(
                "/api/",
                Some("Data.Example.gov"),
                "http://127.0.0.1:3/base/",
            ),
        ])
        .expect("valid");
        let port = |h: Option<&str>, p: &str| u.pick(h, p).map(|x| x.authority.port_u16());
        assert_eq!(port(None, "/api/v2/x"), Some(Some(2)));
        assert_eq!(port(None, "/api/v1/x"), Some(Some(1)));
        assert_eq!(port(Some("data.example.gov"), "/api/v1/x"), Some(Some(3)));
        assert_eq!(port(None, "/other"), None);
        let up = u.pick(Some("data.example.gov"), "/api/x").expect("picked");
        let pq: PathAndQuery = "/api/x?a=1".parse().expect("pq");
        assert_eq!(
            up.uri(Some(&pq), "").expect("uri").to_string(),
            "http://127.0.0.1:3/base/api/x?a=1"
        );
        let pq: PathAndQuery = "/api/x?api_key=dx_1&a=1&api%5Fkey=dx_2"
            .parse()
            .expect("pq");
        assert_eq!(
            up.uri(Some(&pq), "api_key").expect("uri").to_string(),
            "http://127.0.0.1:3/base/api/x?a=1"
        );
        let pq: PathAndQuery = "/api/x?api_key=dx_1".parse().expect("pq");
        assert_eq!(
            up.uri(Some(&pq), "api_key").expect("uri").to_string(),
            "http://127.0.0.1:3/base/api/x"
        );
    }

    #[test]
    fn forwarded_headers_drop_hop_by_hop_and_credentials() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-api-key", HeaderValue::from_static("dx_key"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("x-danxia-caller", HeaderValue::from_static("forged"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        let peer: SocketAddr = "10.1.2.3:5555".parse().expect("addr");
        forward_headers(
            &mut h,
            "https",
            peer,
            "dept-health",
            &[HeaderName::from_static("x-api-key")],
            false,
        );
        assert!(h.get("connection").is_none());
        assert!(h.get("x-secret").is_none());
        assert!(h.get("x-api-key").is_none());
        assert!(h.get("authorization").is_none());
        assert_eq!(h["x-danxia-caller"], "dept-health");
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["accept"], "application/json");
    }

    #[test]
    fn host_without_port() {
        let uri: Uri = "/x".parse().expect("uri");
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("Api.Example:8443"));
        assert_eq!(request_host(&uri, &h), Some("Api.Example"));
        h.insert(header::HOST, HeaderValue::from_static("[::1]:8443"));
        assert_eq!(request_host(&uri, &h), Some("::1"));
    }
}
