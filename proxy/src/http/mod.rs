//! The API data-sharing risk monitor: `protocol = "http"` listeners, an
//! inline reverse proxy in front of the HTTP APIs through which
//! departments share data. It authenticates each caller, enforces the
//! caller's authorised scope from the API policy (routes, query
//! parameters, body size, response fields, masks, quiet hours, quotas),
//! inspects response bodies as they stream, audits one event per request
//! and feeds each caller's behaviour baseline. See docs/api.md.

pub mod auth;
pub mod body;
pub mod config;
pub mod control;
pub mod exchange;
pub mod inspect;
pub mod metrics;
pub mod problem;
pub mod rate;
pub mod runtime;
pub mod service;
pub mod state;
pub mod upstream;
pub mod upstream_tls;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderName;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::audit::statement::SessionIdentity;
use crate::listener::ListenerCtx;

use self::config::HttpSettings;
use self::inspect::PipelineConfig;
use self::runtime::ApiRuntime;
use self::upstream::Upstreams;

/// The request body type sent upstream.
pub type UpstreamBody = http_body_util::Limited<hyper::body::Incoming>;

/// Everything an HTTP listener's requests share.
pub struct HttpCtx {
    pub lx: Arc<ListenerCtx>,
    pub policy: Arc<ApiRuntime>,
    pub auth: auth::Authenticator,
    pub state: Arc<state::CallerState>,
    pub upstreams: Upstreams,
    pub client: Client<HttpConnector, UpstreamBody>,
    pub settings: HttpSettings,
    pub pipeline: PipelineConfig,
    pub metrics: metrics::HttpMetrics,
    pub tz: jiff::tz::TimeZone,
    pub rates: rate::RateLimiter,
    credential_headers: Vec<HeaderName>,
    key_query: String,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl HttpCtx {
    pub fn new(
        lx: Arc<ListenerCtx>,
        policy: Arc<ApiRuntime>,
        state: Arc<state::CallerState>,
        tz: jiff::tz::TimeZone,
    ) -> Result<HttpCtx, String> {
        let cfg = &lx.config;
        let auth_cfg = cfg
            .auth
            .clone()
            .ok_or_else(|| format!("listener {}: [listener.auth] is missing", cfg.name))?;
        let client_certs = cfg.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        let auth = auth::Authenticator::load_for(&auth_cfg, client_certs)
            .map_err(|e| format!("listener {}: [listener.auth]: {e}", cfg.name))?;
        let mut upstreams =
            Upstreams::new(&cfg.upstream).map_err(|e| format!("listener {}: {e}", cfg.name))?;
        let settings = cfg.http.clone();
        upstreams.connect(&settings);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(settings.pool_max_idle)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let mut credential_headers = Vec::new();
        if !auth_cfg.api_key_header.is_empty() {
            if let Ok(h) = HeaderName::from_bytes(auth_cfg.api_key_header.as_bytes()) {
                credential_headers.push(h);
            }
        }
        let pipeline = PipelineConfig {
            limits: danxia_protocols::http::json::Limits {
                max_depth: settings.max_depth,
                max_token_bytes: settings.max_token_bytes,
            },
            max_decoded_bytes: settings.max_decoded_bytes,
        };
        Ok(HttpCtx {
            metrics: metrics::HttpMetrics::new(&cfg.name),
            key_query: auth_cfg.api_key_query.clone(),
            lx,
            policy,
            auth,
            state,
            upstreams,
            client,
            settings,
            pipeline,
            tz,
            rates: rate::RateLimiter::default(),
            credential_headers,
        })
    }

    /// Headers that carry danxia's credentials (never forwarded unless
    /// `forward_credentials`).
    pub fn credential_headers(&self) -> &[HeaderName] {
        &self.credential_headers
    }

    /// The query parameter that carries an API key ("" when off).
    pub fn auth_query_param(&self) -> &str {
        &self.key_query
    }

    /// Local offset from UTC at `now` (quiet hours, daily quotas).
    pub fn utc_offset(&self, now: u64) -> i32 {
        jiff::Timestamp::from_second(now as i64)
            .map(|t| self.tz.to_offset(t).seconds())
            .unwrap_or(0)
    }

    /// Local minute of the day at `now`.
    pub fn local_minute_of_day(&self, now: u64) -> u16 {
        let local = now as i64 + i64::from(self.utc_offset(now));
        (local.rem_euclid(86_400) / 60) as u16
    }
}

/// How a caller authenticated, for the audit: never the secret.
pub fn credential_label(c: &auth::Caller) -> String {
    match &c.credential {
        auth::Credential::ApiKey { key_id } => format!("api_key:{key_id}"),
        auth::Credential::Jwt { subject, .. } => format!("jwt:{subject}"),
        auth::Credential::ClientCert { subject, .. } => format!("mtls:{subject}"),
    }
}

/// The caller's quota as the caller-state counters take it (`None` when
/// the policy sets none).
pub fn quota_of(c: &danxia_policies::api::Caller) -> Option<state::Quota> {
    let q = state::Quota {
        requests_per_minute: c.quota.requests_per_minute,
        requests_per_day: c.quota.requests_per_day,
        records_per_minute: c.quota.records_per_minute,
        records_per_day: c.quota.records_per_day,
    };
    (q != state::Quota::default()).then_some(q)
}

/// The time zone of quiet hours and daily quotas: `[api] timezone`, else
/// the behaviour time zone.
pub fn api_timezone(config: &crate::config::Config) -> jiff::tz::TimeZone {
    let name = config
        .api
        .timezone
        .clone()
        .unwrap_or_else(|| config.behaviour.timezone.clone());
    jiff::tz::TimeZone::get(&name).unwrap_or(jiff::tz::TimeZone::UTC)
}

/// Where caller state persists, from `[api]`.
pub fn state_store(api: &config::ApiConfig) -> state::StateStore {
    match api.store {
        config::ApiStoreKind::Memory => state::StateStore::Memory,
        config::ApiStoreKind::Disk => state::StateStore::Disk {
            dir: api.dir.clone(),
        },
        config::ApiStoreKind::Redis => state::StateStore::Redis {
            url: api.redis_url.clone(),
            prefix: api.redis_prefix.clone(),
        },
    }
}

/// Accepts clients until shutdown; each connection is served by hyper
/// (HTTP/1.1 with keep-alive, or HTTP/2 when the client speaks it).
pub async fn serve(listener: TcpListener, hx: Arc<HttpCtx>) {
    let ctx = hx.lx.clone();
    let limit = Arc::new(tokio::sync::Semaphore::new(ctx.limits.max_connections));
    let mut shutdown = ctx.shutdown.clone();
    let upstreams: Vec<&str> = hx.upstreams_urls();
    info!(listener = %ctx.name, addr = %ctx.config.listen, upstreams = ?upstreams, "listening (http)");
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(listener = %ctx.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::pg::session::shutdown_signalled(&mut shutdown) => break,
        };
        ctx.metrics.connections_total.increment(1);
        let _ = stream.set_nodelay(true);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            ctx.metrics.rejected_max_connections.increment(1);
            debug!(listener = %ctx.name, %peer, "refused: max_connections reached");
            drop(stream);
            continue;
        };
        let (guard, id) = ctx.sessions.enter_session();
        let hx = hx.clone();
        tokio::spawn(async move {
            hx.lx.metrics.connections_active.increment(1.0);
            match hx.lx.tls.clone() {
                None => serve_connection(hx.clone(), stream, peer, id, None).await,
                Some(tls) => serve_tls(hx.clone(), tls, stream, peer, id).await,
            }
            hx.lx.metrics.connections_active.decrement(1.0);
            drop(permit);
            drop(guard);
        });
    }
    info!(listener = %ctx.name, "stopped accepting");
}

/// First byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The answer to plain HTTP on a listener that requires HTTPS: a 400
/// problem document, then the connection closes.
fn https_required() -> Vec<u8> {
    let body = serde_json::json!({
        "type": "urn:danxia:rule:api.tls-required",
        "title": "HTTPS required",
        "status": 400,
        "detail": "this listener requires TLS: use https://",
        "rule": "api.tls-required",
    })
    .to_string();
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An HTTPS listener's connection: the TLS handshake (bounded by the
/// header timeout, counted by `ServerTls`), then HTTP/1.1 or h2 by ALPN.
/// A client that speaks plain HTTP gets a 400 that says to use https://
/// (`mode = "required"`) or is served in plaintext (`mode = "optional"`).
async fn serve_tls(
    hx: Arc<HttpCtx>,
    tls: Arc<crate::tls::ServerTls>,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    id: Arc<str>,
) {
    let timeout = hx.settings.header_timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != TLS_HANDSHAKE_RECORD => {
            if tls.settings().mode == crate::tls::TlsMode::Optional {
                return serve_connection(hx, stream, peer, id, None).await;
            }
            tls.count_plaintext_refused();
            debug!(listener = %hx.lx.name, %peer, "plain HTTP on an HTTPS listener: refused");
            let mut stream = stream;
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::io::AsyncWriteExt::write_all(&mut stream, &https_required()),
            )
            .await;
            return;
        }
        Ok(Ok(1)) => {}
        Err(_) => {
            tls.count_handshake("timeout");
            return;
        }
        // Closed or failed before sending anything.
        Ok(_) => return,
    }
    match tls.accept(stream, timeout).await {
        Ok(s) => {
            let info = crate::tls::TlsInfo::of(s.get_ref().1);
            serve_connection(hx, s, peer, id, Some(info)).await
        }
        Err(e) => debug!(listener = %hx.lx.name, %peer, error = %e, "TLS handshake failed"),
    }
}

async fn serve_connection<I>(
    hx: Arc<HttpCtx>,
    stream: I,
    peer: std::net::SocketAddr,
    id: Arc<str>,
    tls: Option<crate::tls::TlsInfo>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let cert = tls
        .as_ref()
        .and_then(|t| t.client_cert.as_ref())
        .map(|c| auth::PresentedCert {
            subject: c.subject.clone(),
            fingerprint_sha256: Arc::from(c.fingerprint_sha256.as_str()),
        });
    let conn = Arc::new(service::Conn {
        peer,
        ident: SessionIdentity {
            session: id,
            listener: hx.lx.name.clone(),
            protocol: "http",
            client: Arc::from(peer.to_string()),
            user: None,
            database: None,
            application: None,
            tls_subject: cert.as_ref().map(|c| c.subject.clone()),
            tls: tls.as_ref().map(|t| t.version),
        },
        who: std::sync::Mutex::new(None),
        tls: tls.is_some(),
        cert,
    });
    // Set by the first request to reach the service: until then the
    // connection is on the header-timeout watchdog below.
    let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let svc = {
        let hx = hx.clone();
        let seen = seen.clone();
        hyper::service::service_fn(move |req| {
            seen.store(true, std::sync::atomic::Ordering::Relaxed);
            service::handle(hx.clone(), conn.clone(), req)
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(hx.settings.header_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024);
    let conn_fut = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn_fut);
    let mut shutdown = hx.lx.shutdown.clone();
    tokio::select! {
        r = conn_fut.as_mut() => {
            if let Err(e) = r {
                if is_header_timeout(e.as_ref()) {
                    hx.lx.metrics.protocol_error(HEADER_TIMEOUT_KIND);
                }
                debug!(listener = %hx.lx.name, %peer, error = %e, "http connection ended with an error");
            }
        }
        _ = first_request_overdue(hx.settings.header_timeout, &seen) => {
            hx.lx.metrics.protocol_error(HEADER_TIMEOUT_KIND);
            debug!(listener = %hx.lx.name, %peer, "no request within header_timeout: closed");
        }
        _ = crate::pg::session::shutdown_signalled(&mut shutdown) => {
            conn_fut.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(hx.lx.limits.shutdown_grace, conn_fut).await;
        }
    }
}

/// `danxia_protocol_errors_total{kind}` of a client whose request headers
/// did not arrive within `header_timeout`.
const HEADER_TIMEOUT_KIND: &str = "header_timeout";

/// True when hyper gave up on a connection because the request headers did
/// not arrive within the header timeout.
fn is_header_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<hyper::Error>()
        .is_some_and(|h| h.is_timeout())
}

/// Resolves once `timeout` has passed without a first request on the
/// connection; never resolves after one.
///
/// hyper's `header_read_timeout` covers an HTTP/1 request head once the
/// protocol is known, but not the auto builder's protocol detection (a
/// client that sends nothing, or a few bytes of the HTTP/2 preface), nor an
/// HTTP/2 connection that never opens a stream: without this, each such
/// client would hold one of `max_connections` for ever.
async fn first_request_overdue(timeout: Duration, seen: &std::sync::atomic::AtomicBool) {
    tokio::time::sleep(timeout).await;
    if seen.load(std::sync::atomic::Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
}

impl HttpCtx {
    fn upstreams_urls(&self) -> Vec<&str> {
        self.upstreams.urls()
    }
}
