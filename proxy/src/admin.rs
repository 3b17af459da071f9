//! The admin HTTP endpoint: `/metrics` (Prometheus text), `/healthz`
//! (process alive) and `/readyz` (every listener bound and its backend
//! reachable). Unauthenticated in this step; it binds to loopback by
//! default. Owns no proxy state beyond what it reports.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

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
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/policy", get(policy_status))
        .route("/policy/reload", post(policy_reload))
        .route("/behaviour/identities", get(behaviour_identities))
        .route("/behaviour/profile", get(behaviour_profile))
        .route("/quarantine", get(quarantine_list).post(quarantine_add))
        .route("/quarantine/release", post(quarantine_release))
        .route("/api/callers", get(crate::http::control::callers))
        .route("/api/suspended", get(crate::http::control::suspended))
        .route("/api/suspend", post(crate::http::control::suspend))
        .route("/api/resume", post(crate::http::control::resume))
        .route("/api/reload", post(crate::http::control::reload))
        .with_state(state)
}

pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
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

/// What policy is loaded, and why the last reload failed if it did.
async fn policy_status(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    Json(s.policy.status())
}

/// Reloads the policy now. 200 with the new version, or 422 with every
/// diagnostic when the files do not load (the old policy stays).
async fn policy_reload(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    match s.policy.reload("admin api").await {
        Ok(version) => (
            StatusCode::OK,
            Json(serde_json::json!({ "ok": true, "version": version })),
        ),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "ok": false, "error": e })),
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

fn no_behaviour() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "ok": false,
            "error": "behaviour baselines are disabled ([behaviour] enabled = false)"
        })),
    )
}

/// Every identity with a baseline: key, learning or not, statements seen.
async fn behaviour_identities(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
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
    (StatusCode::OK, Json(serde_json::json!(list)))
}

/// What the baseline has learned of an identity (or of every identity of
/// a user): the summary as data and as the text `danxia baseline show`
/// prints.
async fn behaviour_profile(
    State(s): State<Arc<AdminState>>,
    axum::extract::Query(q): axum::extract::Query<IdentityQuery>,
) -> impl IntoResponse {
    let Some(b) = &s.behaviour else {
        return no_behaviour();
    };
    let now = b.clock.now();
    let offset = b.clock.offset(now);
    let found = b.registry.find(&q.identity);
    if found.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "ok": false,
                "error": format!("no baseline for `{}` (give user|application|network, or a user name; GET /behaviour/identities lists them)", q.identity)
            })),
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
    (StatusCode::OK, Json(serde_json::json!(out)))
}

async fn quarantine_list(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let Some(b) = &s.behaviour else {
        return no_behaviour();
    };
    (StatusCode::OK, Json(serde_json::json!(b.gate.list())))
}

/// Quarantines an identity by hand (the SOC acting on an alert).
async fn quarantine_add(
    State(s): State<Arc<AdminState>>,
    axum::extract::Query(q): axum::extract::Query<IdentityQuery>,
) -> impl IntoResponse {
    let Some(b) = &s.behaviour else {
        return no_behaviour();
    };
    let parts: Vec<&str> = q.identity.split('|').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                serde_json::json!({"ok": false, "error": "identity must be user|application|network, as GET /behaviour/identities lists it"}),
            ),
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
    (
        StatusCode::OK,
        Json(serde_json::json!({"ok": true, "added": added})),
    )
}

/// Releases a quarantined identity.
async fn quarantine_release(
    State(s): State<Arc<AdminState>>,
    axum::extract::Query(q): axum::extract::Query<IdentityQuery>,
) -> impl IntoResponse {
    let Some(b) = &s.behaviour else {
        return no_behaviour();
    };
    match b.release(&q.identity) {
        Some(was) => (
            StatusCode::OK,
            Json(serde_json::json!({"ok": true, "released": was})),
        ),
        None => (
            StatusCode::NOT_FOUND,
            Json(
                serde_json::json!({"ok": false, "error": format!("`{}` is not quarantined", q.identity)}),
            ),
        ),
    }
}
