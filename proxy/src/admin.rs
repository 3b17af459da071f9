//! The admin HTTP endpoint: `/metrics` (Prometheus text), `/healthz`
//! (process alive), `/readyz` (every listener bound and its backend
//! reachable), the policy, live sessions (list, kill), quarantined
//! identities, suspended API callers, recent alerts, and the OpenAPI
//! description of all of it (`docs/admin-openapi.yaml`).
//!
//! Every route but `/healthz` needs the bearer token of
//! `admin.token_file` (see `admin_auth`); `/metrics` too unless
//! `admin.metrics_public`. Errors are RFC 9457 problem documents. Owns no
//! proxy state beyond what it reports; [`ROUTES`] is the one list of what
//! it serves, checked against the OpenAPI description by a unit test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Json;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::admin_auth::{FailureAudit, TokenFile, REALM};
use crate::audit::{AuditEvent, EventKind, Outcome};

/// How long `/readyz` waits for each backend's TCP handshake.
const BACKEND_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// 1 when the last `/readyz` probe reached every backend of the listener,
/// 0 when one did not answer; absent until the first probe.
const METRIC_BACKEND_UP: &str = "danxia_backend_up";

pub struct AdminState {
    pub prometheus: PrometheusHandle,
    /// Set once every listener is bound.
    pub listeners_bound: AtomicBool,
    /// Cleared when shutdown starts, so load balancers stop sending clients.
    pub accepting: AtomicBool,
    /// (listener name, backend host:port)
    pub backends: Vec<(String, String)>,
    /// Readiness includes a working audit log: with audit.on_error =
    /// "block" a failing disk stops traffic, and load balancers should know.
    pub auditor: crate::audit::Auditor,
    pub policy: Arc<crate::policy::PolicyRuntime>,
    pub behaviour: Option<Arc<crate::behaviour::Behaviour>>,
    pub alerts: crate::alerts::Alerts,
    /// The HTTP listeners (API policy, callers, suspensions).
    pub api: std::sync::Mutex<Vec<Arc<crate::http::HttpCtx>>>,
    /// The bearer token every route but `/healthz` needs.
    pub token: Arc<TokenFile>,
    /// `/metrics` without the token (`admin.metrics_public`).
    pub metrics_public: bool,
    /// Which failed logins are audited (the rest are only counted).
    pub failures: FailureAudit,
    /// Live database sessions.
    pub sessions: Arc<crate::sessions::Registry>,
}

/// Every (method, path) the admin endpoint serves: the router is built
/// from this list, and a unit test checks it against the OpenAPI
/// description, so neither can grow without the other.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/policy"),
    ("POST", "/policy/reload"),
    ("GET", "/sessions"),
    ("GET", "/sessions/{id}"),
    ("DELETE", "/sessions/{id}"),
    ("GET", "/alerts"),
    ("GET", "/behaviour/identities"),
    ("GET", "/behaviour/profile"),
    ("GET", "/quarantine"),
    ("POST", "/quarantine"),
    ("POST", "/quarantine/release"),
    ("GET", "/api/callers"),
    ("GET", "/api/suspended"),
    ("POST", "/api/suspend"),
    ("POST", "/api/resume"),
    ("POST", "/api/reload"),
    ("GET", "/openapi.yaml"),
    ("GET", "/openapi.json"),
];

/// The OpenAPI 3.1 description of this endpoint.
pub const OPENAPI_YAML: &str = include_str!("../../docs/admin-openapi.yaml");

/// The handler of one [`ROUTES`] entry.
fn handler(method: &str, path: &str) -> Option<MethodRouter<Arc<AdminState>>> {
    use crate::http::control;
    Some(match (method, path) {
        ("GET", "/metrics") => get(metrics),
        ("GET", "/healthz") => get(|| async { "ok\n" }),
        ("GET", "/readyz") => get(readyz),
        ("GET", "/policy") => get(policy_status),
        ("POST", "/policy/reload") => post(policy_reload),
        ("GET", "/sessions") => get(sessions_list),
        ("GET", "/sessions/{id}") => get(session_get),
        ("DELETE", "/sessions/{id}") => delete(session_kill),
        ("GET", "/alerts") => get(alerts_recent),
        ("GET", "/behaviour/identities") => get(behaviour_identities),
        ("GET", "/behaviour/profile") => get(behaviour_profile),
        ("GET", "/quarantine") => get(quarantine_list),
        ("POST", "/quarantine") => post(quarantine_add),
        ("POST", "/quarantine/release") => post(quarantine_release),
        ("GET", "/api/callers") => get(control::callers),
        ("GET", "/api/suspended") => get(control::suspended),
        ("POST", "/api/suspend") => post(control::suspend),
        ("POST", "/api/resume") => post(control::resume),
        ("POST", "/api/reload") => post(control::reload),
        ("GET", "/openapi.yaml") => get(openapi_yaml),
        ("GET", "/openapi.json") => get(openapi_json),
        _ => return None,
    })
}

pub fn router(state: Arc<AdminState>) -> Router {
    let mut r = Router::new();
    for (method, path) in ROUTES {
        match handler(method, path) {
            Some(h) => r = r.route(path, h),
            None => error!(method, path, "admin route without a handler (a bug)"),
        }
    }
    r.fallback(|| async {
        problem(
            StatusCode::NOT_FOUND,
            "no such admin endpoint: GET /openapi.json lists them".into(),
        )
    })
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        authenticate,
    ))
    .with_state(state)
}

/// Longest a client of the admin endpoint may take to send a request's
/// headers (from the connection's start or the previous response): a slow
/// client (slowloris) is closed after it and counted in
/// `danxia_admin_header_timeouts_total`. Generous, because the admin
/// endpoint's clients (Prometheus, load-balancer probes, operators) are
/// few and known; without a bound each silent connection would be held
/// forever.
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Most admin connections open at once. A scraper, a few probes and an
/// operator's CLI need a handful; a connection over the limit is closed at
/// once (`danxia_admin_connections_rejected_total`), so a flood on this
/// port cannot use up the descriptors that the data listeners need.
pub const ADMIN_MAX_CONNECTIONS: usize = 256;

/// Largest request head (request line and headers) the admin endpoint
/// buffers; a larger one gets 431.
const ADMIN_MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long open admin connections may take to finish at shutdown.
const ADMIN_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed accept (EMFILE, ENFILE, ENOBUFS): retrying at once
/// would spin a core while nothing can be accepted.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves the admin endpoint until `shutdown` resolves, then lets open
/// requests finish (at most [`ADMIN_SHUTDOWN_GRACE`]).
///
/// Its own accept loop rather than `axum::serve`, which has no header
/// timeout and no connection limit (see the constants above).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower_service::Service;

    describe();
    let app = router(state);
    let limit = Arc::new(tokio::sync::Semaphore::new(ADMIN_MAX_CONNECTIONS));
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics::counter!(METRIC_ADMIN_REJECTED).increment(1);
            drop(stream);
            continue;
        };
        let app = app.clone();
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut app = app.clone();
                async move { app.call(req).await }
            });
            // HTTP/1 only (the admin clients speak it): no protocol
            // detection phase, whose first read hyper does not time out.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(ADMIN_HEADER_TIMEOUT)
                .max_buf_size(ADMIN_MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        if e.is_timeout() {
                            metrics::counter!(METRIC_ADMIN_HEADER_TIMEOUTS).increment(1);
                        }
                    }
                }
                _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(ADMIN_SHUTDOWN_GRACE, conn).await;
                }
            }
            drop(permit);
        });
    }
    let _ = closing_tx.send(true);
    // Every permit back = every connection finished.
    let _ = tokio::time::timeout(
        ADMIN_SHUTDOWN_GRACE,
        limit.acquire_many(ADMIN_MAX_CONNECTIONS as u32),
    )
    .await;
    Ok(())
}

const METRIC_ADMIN_HEADER_TIMEOUTS: &str = "danxia_admin_header_timeouts_total";
const METRIC_ADMIN_REJECTED: &str = "danxia_admin_connections_rejected_total";

fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!(
            "danxia_admin_auth_failures_total",
            "Admin API requests refused for want of the right bearer token, by reason (missing, malformed, wrong)."
        );
        metrics::describe_counter!(
            "danxia_admin_sessions_killed_total",
            "Database sessions killed through the admin API, by listener."
        );
        metrics::describe_counter!(
            METRIC_ADMIN_HEADER_TIMEOUTS,
            "Admin connections closed because their request headers did not arrive within the admin header timeout (10 s)."
        );
        metrics::describe_counter!(
            METRIC_ADMIN_REJECTED,
            "Admin connections closed at once because 256 were already open."
        );
        metrics::counter!(METRIC_ADMIN_HEADER_TIMEOUTS).absolute(0);
        metrics::counter!(METRIC_ADMIN_REJECTED).absolute(0);
        for reason in ["missing", "malformed", "wrong"] {
            metrics::counter!("danxia_admin_auth_failures_total", "reason" => reason).absolute(0);
        }
    });
}

/// An RFC 9457 problem document. `ok: false` and `error` (= `detail`)
/// are extension members kept for clients of the earlier error bodies.
pub fn problem(status: StatusCode, detail: String) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "ok": false,
        "error": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The admin API client's address, when the server recorded it.
fn peer_of(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// The audit event of something done through (or refused by) the admin
/// API.
fn admin_event(operation: &'static str, peer: Option<SocketAddr>, detail: String) -> AuditEvent {
    AuditEvent {
        kind: Some(EventKind::Admin),
        listener: Some(Arc::from("admin")),
        protocol: Some("http"),
        client: peer.map(|p| Arc::from(p.to_string())),
        operation: Some(operation),
        detail: Some(detail),
        ..Default::default()
    }
}

/// Lets `/healthz` (and `/metrics` with `admin.metrics_public`) through;
/// everything else needs the bearer token. Refusals are counted, and
/// audited up to a rate (a brute force must not flood the audit log).
async fn authenticate(State(s): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || (path == "/metrics" && s.metrics_public) {
        return next.run(req).await;
    }
    let failure = match s.token.check(req.headers().get(header::AUTHORIZATION)) {
        Ok(()) => return next.run(req).await,
        Err(f) => f,
    };
    metrics::counter!("danxia_admin_auth_failures_total", "reason" => failure.as_str())
        .increment(1);
    let peer = peer_of(&req);
    if let Some(skipped) = s.failures.admit(Instant::now()) {
        let mut detail = format!(
            "admin API request {} {} refused: {} bearer token",
            req.method(),
            path,
            failure.as_str()
        );
        if skipped > 0 {
            detail.push_str(&format!(
                " ({skipped} earlier refusals not audited, see danxia_admin_auth_failures_total)"
            ));
        }
        let mut ev = admin_event("auth_failure", peer, detail);
        ev.outcome = Some(Outcome::Refused);
        let _ = s.auditor.record(ev).await;
    }
    let mut r = problem(StatusCode::UNAUTHORIZED, failure.detail().into());
    let challenge = match failure {
        crate::admin_auth::Failure::Missing => format!("Bearer realm=\"{REALM}\""),
        _ => format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
    };
    if let Ok(v) = header::HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.prometheus.render(),
    )
}

async fn readyz(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    if !s.listeners_bound.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: listeners not bound yet\n".to_string(),
        );
    }
    if !s.accepting.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".to_string(),
        );
    }
    let mut problems = Vec::new();
    if !s.auditor.healthy() {
        problems.push(
            "audit log writes are failing (see danxia_audit_write_failures_total and the log)"
                .to_string(),
        );
    }
    // Per listener: did every one of its backends accept the probe?
    let mut up: Vec<(&str, bool)> = Vec::new();
    for (name, backend) in &s.backends {
        let ok = match tokio::time::timeout(
            BACKEND_PROBE_TIMEOUT,
            tokio::net::TcpStream::connect(backend.as_str()),
        )
        .await
        {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                problems.push(format!(
                    "listener {name}: backend {backend} unreachable: {e}"
                ));
                false
            }
            Err(_) => {
                problems.push(format!("listener {name}: backend {backend} did not answer within {BACKEND_PROBE_TIMEOUT:?}"));
                false
            }
        };
        match up.iter_mut().find(|(n, _)| *n == name.as_str()) {
            Some((_, all)) => *all &= ok,
            None => up.push((name.as_str(), ok)),
        }
    }
    // The probe's result as a metric, so that an alert sees a backend
    // down even while no client tries it (connect failures count only
    // client attempts). Listener names are a bounded label set.
    for (name, ok) in up {
        metrics::gauge!(METRIC_BACKEND_UP, "listener" => name.to_string()).set(if ok {
            1.0
        } else {
            0.0
        });
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", problems.join("\n")),
        )
    }
}

/// What policy is loaded (version, when, from which files), and why the
/// last reload failed if it did.
async fn policy_status(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let status = s.policy.status();
    let loaded_at = crate::sessions::rfc3339_ms(status.loaded_at_unix.saturating_mul(1000));
    let files = status.dir.as_deref().map(policy_files).unwrap_or_default();
    let mut v = serde_json::to_value(&status).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("loaded_at".into(), loaded_at.into());
        o.insert("files".into(), json!(files));
    }
    Json(v)
}

/// The rule files (`*.toml`) of the policy directory, sorted.
fn policy_files(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    files.sort();
    files
}

/// Reloads the policy now. 200 with the new version, or 422 with every
/// diagnostic when the files do not load (the old policy, whose version
/// the answer carries, stays).
async fn policy_reload(State(s): State<Arc<AdminState>>) -> Response {
    match s.policy.reload("admin api").await {
        Ok(version) => Json(json!({ "ok": true, "version": version })).into_response(),
        Err(e) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the policy does not load; version {} stays in force:\n{e}",
                s.policy.status().version
            ),
        ),
    }
}

#[derive(serde::Deserialize)]
struct SessionFilter {
    #[serde(default)]
    listener: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

/// `GET /sessions[?listener=&user=]`: every live database session.
async fn sessions_list(
    State(s): State<Arc<AdminState>>,
    axum::extract::Query(f): axum::extract::Query<SessionFilter>,
) -> impl IntoResponse {
    let list: Vec<crate::sessions::SessionView> = s
        .sessions
        .list()
        .iter()
        .map(|l| l.view())
        .filter(|v| f.listener.as_deref().is_none_or(|x| v.listener == x))
        .filter(|v| {
            f.user
                .as_deref()
                .is_none_or(|x| v.user.as_deref() == Some(x))
        })
        .collect();
    Json(list)
}

fn no_session(id: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        format!("no live session `{id}` (it may have ended; GET /sessions lists them)"),
    )
}

/// `GET /sessions/{id}`.
async fn session_get(State(s): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    match s.sessions.get(&id) {
        Some(l) => Json(l.view()).into_response(),
        None => no_session(&id),
    }
}

/// `DELETE /sessions/{id}`: ends a session. The client gets its
/// protocol's "killed by an administrator" error, a statement still
/// running is cancelled (PostgreSQL: CancelRequest; MySQL: the backend
/// connection is closed), and the kill is audited.
async fn session_kill(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let Some(l) = s.sessions.get(&id) else {
        return no_session(&id);
    };
    let first = l.kill();
    let view = l.view();
    if first {
        metrics::counter!("danxia_admin_sessions_killed_total", "listener" => l.listener.to_string())
            .increment(1);
        let peer = peer_of(&req);
        info!(session = %id, listener = %l.listener, admin_client = ?peer, "session killed through the admin API");
        let mut ev = admin_event(
            "kill_session",
            None,
            format!(
                "session {id} (user {}, client {}, listener {}) killed through the admin API from {}",
                view.user.as_deref().unwrap_or("?"),
                view.client,
                view.listener,
                peer.map_or("?".to_string(), |p| p.to_string())
            ),
        );
        ev.session = Some(l.id.clone());
        ev.listener = Some(l.listener.clone());
        ev.protocol = Some(l.protocol);
        ev.client = Some(Arc::from(view.client.as_str()));
        ev.user = view.user.as_deref().map(Arc::from);
        ev.database = view.database.as_deref().map(Arc::from);
        ev.outcome = Some(Outcome::Ok);
        let _ = s.auditor.record(ev).await;
    }
    Json(json!({ "ok": true, "killed": view, "already_killing": !first })).into_response()
}

#[derive(serde::Deserialize)]
struct AlertsQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// Default number of alerts `GET /alerts` returns.
const DEFAULT_ALERTS: usize = 100;

/// `GET /alerts?limit=N`: the last alerts raised, newest first.
async fn alerts_recent(
    State(s): State<Arc<AdminState>>,
    axum::extract::Query(q): axum::extract::Query<AlertsQuery>,
) -> impl IntoResponse {
    let limit = q
        .limit
        .unwrap_or(DEFAULT_ALERTS)
        .min(crate::alerts::recent::RECENT_ALERTS);
    Json(s.alerts.recent(limit))
}

async fn openapi_yaml() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}

/// The description as JSON, converted once from the YAML.
async fn openapi_json() -> Response {
    static JSON: OnceLock<Result<String, String>> = OnceLock::new();
    let converted = JSON.get_or_init(|| {
        serde_yaml_ng::from_str::<serde_json::Value>(OPENAPI_YAML)
            .map(|v| v.to_string())
            .map_err(|e| e.to_string())
    });
    match converted {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text.clone()).into_response(),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the built-in OpenAPI description does not parse: {e}"),
        ),
    }
}

/// Binds the admin address (fails start-up with a clear error if taken).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[derive(serde::Deserialize)]
struct IdentityQuery {
    identity: String,
    #[serde(default)]
    reason: Option<String>,
}

fn no_behaviour() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "behaviour baselines are disabled ([behaviour] enabled = false)".into(),
    )
}

/// Every identity with a baseline: key, learning or not, statements seen.
async fn behaviour_identities(State(s): State<Arc<AdminState>>) -> Response {
    let Some(b) = &s.behaviour else {
        return no_behaviour();
    };
    let now = b.clock.now();
    let list: Vec<serde_json::Value> = b
        .registry
        .list(now)
        .into_iter()
        .map(|(identity, learning, statements, last_seen)| {
            serde_json::json!({
                "identity": identity,
                "learning": learning,
                "statements": statements,
                "last_seen": b.clock.show(last_seen),
            })
        })
        .collect();
    Json(list).into_response()
}

/// What the baseline has learned of an identity (or of every identity of
/// a user): the summary as data and as the text `danxia baseline show`
/// prints.
async fn behaviour_profile(
    State(s): State<Arc<AdminState>>,
    axum::extract::Query(q): axum::extract::Query<IdentityQuery>,
) -> Response {
    let Some(b) = &s.behaviour else {
        return no_behaviour();
    };
    let now = b.clock.now();
    let offset = b.clock.offset(now);
    let found = b.registry.find(&q.identity);
    if found.is_empty() {
        return problem(
            StatusCode::NOT_FOUND,
            format!("no baseline for `{}` (give user|application|network, or a user name; GET /behaviour/identities lists them)", q.identity),
        );
    }
    let out: Vec<serde_json::Value> = found
        .iter()
        .map(|p| {
            let summary = p.profile.summary(&b.registry.cfg, now, offset);
            serde_json::json!({
                "identity": p.identity,
                "learning": p.profile.is_learning(&b.registry.cfg, now),
                "quarantined": b.gate.quarantined(&p.identity),
                "text": summary.to_string(),
                "summary": summary,
            })
        })
        .collect();
    Json(out).into_response()
}

async fn quarantine_list(State(s): State<Arc<AdminState>>) -> Response {
    let Some(b) = &s.behaviour else {
        return no_behaviour();
    };
    Json(b.gate.list()).into_response()
}

/// Quarantines an identity by hand (the SOC acting on an alert).
async fn quarantine_add(
    State(s): State<Arc<AdminState>>,
    axum::extract::Query(q): axum::extract::Query<IdentityQuery>,
) -> Response {
    let Some(b) = &s.behaviour else {
        return no_behaviour();
    };
    let parts: Vec<&str> = q.identity.split('|').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return problem(
            StatusCode::BAD_REQUEST,
            "identity must be user|application|network, as GET /behaviour/identities lists it"
                .into(),
        );
    }
    let who = crate::behaviour::Who {
        key: Arc::from(q.identity.as_str()),
        user: Arc::from(parts[0]),
        application: Arc::from(parts[1]),
        network: Arc::from(parts[2]),
    };
    let reason = q
        .reason
        .unwrap_or_else(|| "quarantined through the admin API".into());
    let added = b.quarantine(&who, "manual", reason);
    Json(json!({"ok": true, "added": added})).into_response()
}

/// Releases a quarantined identity.
async fn quarantine_release(
    State(s): State<Arc<AdminState>>,
    axum::extract::Query(q): axum::extract::Query<IdentityQuery>,
) -> Response {
    let Some(b) = &s.behaviour else {
        return no_behaviour();
    };
    match b.release(&q.identity) {
        Some(was) => Json(json!({"ok": true, "released": was})).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            format!(
                "`{}` is not quarantined (GET /quarantine lists them)",
                q.identity
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The (METHOD, path) pairs of the OpenAPI description.
    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_yaml_ng::from_str(OPENAPI_YAML).expect("spec parses");
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in ["get", "post", "put", "delete", "patch"] {
                if item.get(method).is_some() {
                    out.insert((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_served() {
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(served.len(), ROUTES.len(), "ROUTES has a duplicate");
        let doc = documented();
        let undocumented: Vec<_> = served.difference(&doc).collect();
        let unserved: Vec<_> = doc.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "served but not in docs/admin-openapi.yaml: {undocumented:?}; documented but not served: {unserved:?}"
        );
    }

    #[test]
    fn every_route_has_a_handler() {
        for (m, p) in ROUTES {
            assert!(handler(m, p).is_some(), "{m} {p} has no handler");
        }
    }

    #[test]
    fn only_healthz_is_open_in_the_description() {
        let doc: serde_json::Value = serde_yaml_ng::from_str(OPENAPI_YAML).expect("spec parses");
        assert_eq!(doc["openapi"], "3.1.0");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                if method == "parameters" {
                    continue;
                }
                let open = op
                    .get("security")
                    .is_some_and(|s| s == &serde_json::json!([]));
                assert_eq!(open, path == "/healthz", "{method} {path}");
                let has_401 = op["responses"].get("401").is_some();
                assert_eq!(has_401, path != "/healthz", "{method} {path} documents 401");
            }
        }
    }

    #[test]
    fn problems_are_rfc9457() {
        let r = problem(StatusCode::NOT_FOUND, "gone".into());
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..])
        );
    }
}
