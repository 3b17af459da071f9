//! One API request, decided and forwarded: authenticate the caller, check
//! suspension, route, scope (route, query parameters, body size, quiet
//! hours), quota; forward to the upstream; inspect the response under the
//! caller's grant. Every path through here ends in exactly one audited
//! exchange. Owns the order of those checks and the status codes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::audit::statement::SessionIdentity;
use crate::audit::{EventKind, Outcome};

use super::body::{BoxError, InspectedBody};
use super::config::ScanMode;
use super::exchange::{record_all, CallerLimits, Exchange, Observed};
use super::inspect::{is_json, InspectError, Pipeline};
use super::problem::Problem;
use super::upstream::{forward_headers, request_host, response_headers};
use super::HttpCtx;
use danxia_detectors::ValueDigest;
use danxia_policies::api::Authorisation;
use danxia_protocols::http::encoding::Coding;

pub type RespBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Longest request target kept in the audit event.
const MAX_AUDITED_TARGET: usize = 4096;

/// One client connection's constant facts.
pub struct Conn {
    pub peer: SocketAddr,
    pub ident: SessionIdentity,
    /// The behaviour identity of the connection's last caller (one
    /// connection nearly always carries one caller: built once, not per
    /// request).
    pub who: std::sync::Mutex<Option<Arc<crate::behaviour::who::Who>>>,
    /// The connection is HTTPS.
    pub tls: bool,
    /// The verified client certificate of an HTTPS connection (mTLS).
    pub cert: Option<super::auth::PresentedCert>,
}

impl Conn {
    fn who(
        &self,
        b: &crate::behaviour::Behaviour,
        caller: &str,
    ) -> Arc<crate::behaviour::who::Who> {
        let mut w = self.who.lock().unwrap_or_else(|p| p.into_inner());
        match &*w {
            Some(x) if &*x.user == caller => x.clone(),
            _ => {
                let x = Arc::new(b.who(caller, "api", Some(self.peer.ip())));
                *w = Some(x.clone());
                x
            }
        }
    }
}

fn full(b: Bytes) -> RespBody {
    Full::new(b).map_err(|e| match e {}).boxed_unsync()
}

fn operation(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

pub use danxia_protocols::http::request::query_pairs;

/// The request target as audited: path and query, without the API key if
/// it came in the query string.
fn audited_target(path: &str, query: Option<&str>, key_param: &str) -> String {
    let mut t = String::from(path);
    if let Some(q) = query {
        let kept: Vec<&str> = q
            .split('&')
            .map(|p| {
                let name = p.split('=').next().unwrap_or("");
                if !key_param.is_empty() && name == key_param {
                    "<api key>"
                } else {
                    p
                }
            })
            .collect();
        t.push('?');
        t.push_str(&kept.join("&"));
    }
    if t.len() > MAX_AUDITED_TARGET {
        let mut cut = MAX_AUDITED_TARGET;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
        t.push('…');
    }
    t
}

/// The baseline's fingerprint of a request: a stable digest (the same
/// across restarts and builds) of method and route id.
fn fingerprint(method: &str, route: &str) -> u64 {
    let mut d = ValueDigest::default();
    d.push(method.as_bytes());
    d.push(route.as_bytes());
    d.finish().unwrap_or(0)
}

/// Digest of the values that pick records: path parameters and query
/// values (sorted by name), `None` when there are none.
fn value_digest(params: &[(&str, String)], query: &[(String, String)]) -> Option<u64> {
    let mut d = ValueDigest::default();
    for (k, v) in params {
        d.push(k.as_bytes());
        d.push(v.as_bytes());
    }
    let mut q: Vec<&(String, String)> = query.iter().collect();
    q.sort();
    for (k, v) in q {
        d.push(k.as_bytes());
        d.push(v.as_bytes());
    }
    d.finish()
}

/// hyper's service entry: never fails (every failure is an HTTP answer).
pub async fn handle(
    hx: Arc<HttpCtx>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let started = Instant::now();
    let mut ev = conn.ident.event(EventKind::Request);
    let method = req.method().clone();
    ev.operation = Some(operation(&method));
    ev.protocol_flow = Some(match req.version() {
        http::Version::HTTP_2 => "h2",
        http::Version::HTTP_10 => "http/1.0",
        _ => "http/1.1",
    });
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    ev.statement = Some(audited_target(
        &path,
        query.as_deref(),
        hx.auth_query_param(),
    ));
    let x = Exchange {
        hx: hx.clone(),
        ident: conn.ident.clone(),
        ev,
        started,
        caller: None,
        limits: CallerLimits::default(),
        observed: None,
        done: false,
    };
    Ok(decide_and_forward(hx, conn, req, x, method, path, query).await)
}

/// Refuses with a problem document, audited.
async fn refuse(
    mut x: Exchange,
    status: StatusCode,
    rule: &str,
    title: &str,
    detail: String,
    extra: &[(header::HeaderName, String)],
) -> Response<RespBody> {
    x.ev.status = Some(status.as_u16());
    x.ev.rule = Some(Arc::from(rule));
    x.ev.verdict = Some("denied");
    x.ev.error = Some(detail.clone());
    x.hx.metrics.refused(rule);
    let p = Problem::new(status, rule, title, detail);
    let r = p.response(extra);
    let len = r.body().len() as u64;
    let events = x.complete(Outcome::Refused, None, len);
    record_all(&x.hx.lx.auditor, events).await;
    r.map(full)
}

#[allow(clippy::too_many_arguments)]
async fn decide_and_forward(
    hx: Arc<HttpCtx>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
    mut x: Exchange,
    method: Method,
    path: String,
    query: Option<String>,
) -> Response<RespBody> {
    let now = super::unix_now();
    let policy = hx.policy.current();
    // 1. Who is calling.
    let declared = |id: &str| policy.caller(id).is_some();
    let caller = match hx.auth.authenticate_request(
        req.headers(),
        query.as_deref(),
        now,
        conn.cert.as_ref(),
        &declared,
    ) {
        Ok(c) => c,
        Err(f) => {
            hx.metrics.auth_failed(f.reason.as_str());
            let rule = format!("api.auth.{}", f.reason.as_str());
            return refuse(
                x,
                StatusCode::UNAUTHORIZED,
                &rule,
                "Authentication required",
                f.detail,
                &[(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"danxia\", ApiKey realm=\"danxia\"".into(),
                )],
            )
            .await;
        }
    };
    x.caller = Some(caller.id.clone());
    x.ev.caller = Some(caller.id.clone());
    x.ev.user = Some(caller.id.clone());
    x.ev.application = Some(Arc::from(caller.method()));
    x.ev.credential = Some(super::credential_label(&caller));
    x.ev.policy_version = Some(policy.version());
    // The behaviour identity: caller × "api" × client network.
    if let Some(b) = &hx.lx.behaviour {
        let who = conn.who(b, &caller.id);
        x.observed = Some(Observed {
            who,
            fingerprint: fingerprint(method.as_str(), "(unrouted)"),
            route: "(unrouted)".into(),
            key_digest: None,
        });
    }
    // 2. Emergency stop.
    if let Some(s) = hx.state.suspended(&caller.id) {
        return refuse(
            x,
            StatusCode::FORBIDDEN,
            "api.suspended",
            "Caller suspended",
            format!(
                "caller {} is suspended ({}); a security officer must resume it",
                caller.id, s.reason
            ),
            &[],
        )
        .await;
    }
    // 3. Which route.
    let Some(m) = policy.route(method.as_str(), &path) else {
        if policy.settings().unknown_route == danxia_policies::api::UnknownRoute::Allow {
            x.ev.rule = Some(Arc::from("api.route-unknown"));
            return forward(hx, conn, req, x, None, None).await;
        }
        return refuse(
            x,
            StatusCode::NOT_FOUND,
            "api.route-unknown",
            "No such route",
            format!("{method} {path} matches no route of the API policy"),
            &[],
        )
        .await;
    };
    let route_tpl: Arc<str> = m.route.path.clone();
    x.ev.route = Some(route_tpl.clone());
    x.ev.route_id = Some(Arc::from(&*m.route.id));
    x.ev.tables = vec![route_tpl.to_string()];
    let pairs = query_pairs(query.as_deref());
    let key_param = hx.auth_query_param();
    let names: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| key_param.is_empty() || *k != key_param)
        .collect();
    if let Some(o) = &mut x.observed {
        o.fingerprint = fingerprint(method.as_str(), &m.route.id);
        o.route = route_tpl.to_string();
        let values: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| key_param.is_empty() || k != key_param)
            .cloned()
            .collect();
        o.key_digest = value_digest(&m.params, &values);
    }
    // 4. Scope.
    let body_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let minute = hx.local_minute_of_day(now);
    let c = policy.caller(&caller.id);
    let caller_max_body = c.map(|c| c.max_body);
    if let Some(c) = c {
        x.limits = CallerLimits {
            quota: super::quota_of(c),
            rate: c.quota.requests_per_second,
            anomaly: c.anomaly,
            block_anomaly: c.block_anomaly,
        };
    }
    let grant = match policy.authorise(&caller.id, &m, &names, body_len, minute) {
        Authorisation::Allowed { grant, night } => {
            if night {
                let id: Arc<str> = Arc::from("api.night");
                x.ev.alerts.push(id);
            }
            grant
        }
        Authorisation::Refused {
            status,
            rule,
            title,
            detail,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            return refuse(x, status, rule, title, detail, &[]).await;
        }
    };
    x.ev.rule = Some(Arc::from(&*grant.id));
    x.ev.verdict = Some("allowed");
    // 5. Rate limit, then quotas.
    if let Some(per_second) = x.limits.rate {
        if let Err(wait) = hx.rates.take(&caller.id, per_second, Instant::now()) {
            let detail = format!(
                "caller {} exceeds its rate of {per_second} requests per second",
                caller.id
            );
            return refuse(
                x,
                StatusCode::TOO_MANY_REQUESTS,
                "api.rate",
                "Rate limit exceeded",
                detail,
                &[(header::RETRY_AFTER, wait.to_string())],
            )
            .await;
        }
    }
    if let Some(q) = &x.limits.quota {
        if let Err(e) = hx.state.admit(&caller.id, q, now, hx.utc_offset(now)) {
            let rule = format!("api.quota.{}", e.which);
            let retry = e.retry_after_secs.to_string();
            let detail = format!(
                "caller {} used {} of {} {}; retry in {} s",
                caller.id, e.used, e.limit, e.which, e.retry_after_secs
            );
            return refuse(
                x,
                StatusCode::TOO_MANY_REQUESTS,
                &rule,
                "Quota exceeded",
                detail,
                &[(header::RETRY_AFTER, retry)],
            )
            .await;
        }
    }
    let max_body = caller_max_body
        .unwrap_or(hx.settings.max_request_body)
        .min(hx.settings.max_request_body);
    forward(hx, conn, req, x, Some(grant), Some(max_body)).await
}

/// Sends the request upstream and the inspected response back.
async fn forward(
    hx: Arc<HttpCtx>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
    mut x: Exchange,
    grant: Option<Arc<danxia_policies::api::Grant>>,
    max_body: Option<u64>,
) -> Response<RespBody> {
    let host = request_host(req.uri(), req.headers()).map(str::to_string);
    let Some(up) = hx.upstreams.pick(host.as_deref(), req.uri().path()) else {
        return refuse(
            x,
            StatusCode::NOT_FOUND,
            "api.no-upstream",
            "No upstream",
            format!(
                "no [[listener.upstream]] of listener {} serves {}",
                hx.lx.name,
                req.uri().path()
            ),
            &[],
        )
        .await;
    };
    x.ev.upstream = Some(Arc::from(up.url.as_str()));
    let drop_param = if hx.settings.forward_credentials {
        ""
    } else {
        hx.auth_query_param()
    };
    let uri = match up.uri(req.uri().path_and_query(), drop_param) {
        Ok(u) => u,
        Err(e) => {
            return refuse(
                x,
                StatusCode::BAD_REQUEST,
                "api.bad-target",
                "Bad request target",
                e.to_string(),
                &[],
            )
            .await
        }
    };
    let limit = max_body.unwrap_or(hx.settings.max_request_body);
    let (mut parts, body) = req.into_parts();
    if let Some(len) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        x.ev.bytes_in = Some(len);
        if len > limit {
            return refuse(
                x,
                StatusCode::PAYLOAD_TOO_LARGE,
                "api.body-too-large",
                "Request body too large",
                format!("the request body has {len} bytes; at most {limit} are accepted"),
                &[],
            )
            .await;
        }
    }
    let caller = x.caller.clone().unwrap_or_else(|| Arc::from("-"));
    forward_headers(
        &mut parts.headers,
        if conn.tls { "https" } else { "http" },
        conn.peer,
        &caller,
        hx.credential_headers(),
        hx.settings.forward_credentials,
    );
    if hx.settings.scan == ScanMode::Full {
        // Only codings danxia can read.
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static(
                match parts
                    .headers
                    .get(header::ACCEPT_ENCODING)
                    .and_then(|v| v.to_str().ok())
                {
                    Some(a) if a.contains("br") && a.contains("gzip") => "gzip, br",
                    Some(a) if a.contains("gzip") => "gzip",
                    Some(a) if a.contains("br") => "br",
                    Some(a) if a.contains("deflate") => "deflate",
                    _ => "identity",
                },
            ),
        );
    }
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let up_req = Request::from_parts(parts, Limited::new(body, limit as usize));
    let pending = match &up.https {
        Some(c) => c.request(up_req),
        None => hx.client.request(up_req),
    };
    let sent = tokio::time::timeout(hx.settings.upstream_timeout, pending).await;
    let resp = match sent {
        Err(_) => {
            return refuse(
                x,
                StatusCode::GATEWAY_TIMEOUT,
                "api.upstream-timeout",
                "Upstream timeout",
                format!(
                    "the API did not answer within {:?}",
                    hx.settings.upstream_timeout
                ),
                &[],
            )
            .await
        }
        Ok(Err(e)) => {
            if is_body_limit(&e) {
                return refuse(
                    x,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "api.body-too-large",
                    "Request body too large",
                    format!("the request body exceeded {limit} bytes"),
                    &[],
                )
                .await;
            }
            if let Some(why) = super::upstream_tls::tls_failure(&e) {
                return refuse(
                    x,
                    StatusCode::BAD_GATEWAY,
                    "api.upstream-tls",
                    "Upstream TLS failure",
                    format!(
                        "TLS with the API at {} failed: {why}; check the upstream's ca and server_name",
                        up.url
                    ),
                    &[],
                )
                .await;
            }
            return refuse(
                x,
                StatusCode::BAD_GATEWAY,
                "api.upstream-unavailable",
                "Upstream unavailable",
                format!(
                    "the API at {} could not be reached: {}",
                    up.url,
                    error_chain(&e)
                ),
                &[],
            )
            .await;
        }
        Ok(Ok(r)) => r,
    };
    respond(hx, x, grant, resp).await
}

fn is_body_limit(e: &hyper_util::client::legacy::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        src = s.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// The upstream answered: inspect (buffered when small, streamed when
/// large) and answer the caller.
async fn respond(
    hx: Arc<HttpCtx>,
    mut x: Exchange,
    grant: Option<Arc<danxia_policies::api::Grant>>,
    resp: Response<Incoming>,
) -> Response<RespBody> {
    let (mut parts, mut body) = resp.into_parts();
    response_headers(&mut parts.headers);
    x.ev.status = Some(parts.status.as_u16());
    let restricts = grant.as_ref().is_some_and(|g| g.restricts());
    let json = is_json(
        parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let coding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(Coding::parse)
        .unwrap_or(Ok(Coding::Identity));
    let bodyless = parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
        || x.ev.operation == Some("HEAD");
    let inspect = hx.settings.scan == ScanMode::Full && json && !bodyless;
    if !inspect {
        if restricts && !bodyless {
            let why = if hx.settings.scan == ScanMode::Off {
                "this listener does not scan bodies (http.scan = \"off\")".to_string()
            } else {
                format!(
                    "the response is {}, not JSON",
                    parts
                        .headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("untyped")
                )
            };
            return refuse(
                x,
                StatusCode::BAD_GATEWAY,
                "api.uninspectable",
                "Response cannot be scoped",
                format!("the caller's grant limits fields, but {why}; nothing was sent"),
                &[],
            )
            .await;
        }
        let idle = hx.settings.upstream_timeout;
        let b = InspectedBody::new(body, None, Bytes::new(), x, idle);
        return Response::from_parts(parts, b.boxed_unsync());
    }
    let coding = match coding {
        Ok(c) => c,
        Err(e) => {
            if restricts {
                return refuse(
                    x,
                    StatusCode::BAD_GATEWAY,
                    "api.upstream-bad-encoding",
                    "Response cannot be scoped",
                    format!("the API's Content-Encoding cannot be read: {e}"),
                    &[],
                )
                .await;
            }
            let idle = hx.settings.upstream_timeout;
            let b = InspectedBody::new(body, None, Bytes::new(), x, idle);
            return Response::from_parts(parts, b.boxed_unsync());
        }
    };
    let mut p = Pipeline::new(&hx.pipeline, grant, hx.lx.scanner.clone(), coding);
    // Buffering phase: read up to buffer_bytes; decide before the status
    // line when the whole body fits.
    let mut out: Vec<Bytes> = Vec::new();
    let mut read = 0usize;
    let failed = |e: InspectError| e;
    loop {
        let frame = tokio::time::timeout(hx.settings.upstream_timeout, body.frame()).await;
        let frame = match frame {
            Err(_) => {
                return refuse(
                    x,
                    StatusCode::GATEWAY_TIMEOUT,
                    "api.upstream-timeout",
                    "Upstream timeout",
                    "the API stopped sending its response".into(),
                    &[],
                )
                .await
            }
            Ok(f) => f,
        };
        match frame {
            None => {
                let tail = match p.finish().map_err(failed) {
                    Ok(t) => t,
                    Err(e) => return bad_upstream(x, e).await,
                };
                out.push(tail);
                let total: usize = out.iter().map(Bytes::len).sum();
                let mut buf = Vec::with_capacity(total);
                for b in &out {
                    buf.extend_from_slice(b);
                }
                if p.output() == super::inspect::Output::Rewritten {
                    parts.headers.remove(header::ETAG);
                    parts.headers.remove("content-md5");
                }
                parts.headers.remove(header::TRANSFER_ENCODING);
                if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
                    parts.headers.insert(header::CONTENT_LENGTH, v);
                }
                let events = x.complete(Outcome::Ok, Some(p.findings()), total as u64);
                record_all(&hx.lx.auditor, events).await;
                return Response::from_parts(parts, full(Bytes::from(buf)));
            }
            Some(Err(e)) => {
                return refuse(
                    x,
                    StatusCode::BAD_GATEWAY,
                    "api.upstream-aborted",
                    "Upstream failed",
                    format!("the API's response ended abnormally: {e}"),
                    &[],
                )
                .await
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                read += data.len();
                match p.feed(data) {
                    Ok(b) if !b.is_empty() => out.push(b),
                    Ok(_) => {}
                    Err(e) => return bad_upstream(x, e).await,
                }
                if read > hx.settings.buffer_bytes {
                    break;
                }
            }
        }
    }
    // Too large to hold: stream the rest through the pipeline.
    if p.output() == super::inspect::Output::Rewritten {
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::ETAG);
        parts.headers.remove("content-md5");
    }
    let mut head = Vec::with_capacity(out.iter().map(Bytes::len).sum());
    for b in &out {
        head.extend_from_slice(b);
    }
    let idle = hx.settings.upstream_timeout;
    let b = InspectedBody::new(body, Some(p), Bytes::from(head), x, idle);
    Response::from_parts(parts, b.boxed_unsync())
}

async fn bad_upstream(x: Exchange, e: InspectError) -> Response<RespBody> {
    let rule = e.rule();
    refuse(
        x,
        StatusCode::BAD_GATEWAY,
        rule,
        "Bad response from the API",
        format!("{e}; nothing of it was sent"),
        &[],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode() {
        let p = query_pairs(Some("a=1&b=x%20y&c&d=e+f"));
        assert_eq!(
            p,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "".into()),
                ("d".into(), "e f".into())
            ]
        );
    }

    #[test]
    fn audited_target_hides_the_key() {
        assert_eq!(
            audited_target("/p", Some("api_key=secret&page=2"), "api_key"),
            "/p?<api key>&page=2"
        );
        assert_eq!(audited_target("/p", None, "api_key"), "/p");
    }

    #[test]
    fn digests_are_order_independent_for_query() {
        let a = value_digest(&[], &[("a".into(), "1".into()), ("b".into(), "2".into())]);
        let b = value_digest(&[], &[("b".into(), "2".into()), ("a".into(), "1".into())]);
        assert_eq!(a, b);
        assert_ne!(a, value_digest(&[], &[("a".into(), "2".into())]));
        assert_eq!(value_digest(&[], &[]), None);
        assert_ne!(
            fingerprint("GET", "persons.get"),
            fingerprint("POST", "persons.get")
        );
    }
}
