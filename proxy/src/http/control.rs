//! The SOC's emergency controls over API callers through the admin
//! endpoint: list callers with their usage and state, suspend one (every
//! request then gets 403) and resume it. Each change is an audit event
//! (`kind = "admin"`), so who was stopped, when and why is on the same
//! hash chain as the traffic.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::admin::AdminState;
use crate::audit::{AuditEvent, EventKind};

#[derive(serde::Deserialize)]
pub struct CallerQuery {
    caller: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

fn first(s: &AdminState) -> Option<Arc<super::HttpCtx>> {
    s.api
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .first()
        .cloned()
}

fn no_http() -> Response {
    crate::admin::problem(
        StatusCode::NOT_FOUND,
        "no protocol = \"http\" listener is configured".into(),
    )
}

/// The audit event of an emergency action.
pub fn admin_event(
    listener: &str,
    action: &'static str,
    caller: &str,
    detail: String,
) -> AuditEvent {
    AuditEvent {
        kind: Some(EventKind::Admin),
        listener: Some(Arc::from(listener)),
        protocol: Some("http"),
        caller: Some(Arc::from(caller)),
        user: Some(Arc::from(caller)),
        operation: Some(action),
        detail: Some(detail),
        ..Default::default()
    }
}

/// `GET /api/callers`: every caller of every API policy, with its state
/// and usage in the current windows.
pub async fn callers(State(s): State<Arc<AdminState>>) -> Response {
    let list = s.api.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if list.is_empty() {
        return no_http();
    }
    let now = super::unix_now();
    let mut out = Vec::new();
    for hx in &list {
        let p = hx.policy.current();
        for c in p.callers() {
            let usage = hx.state.usage(&c.id, now, hx.utc_offset(now));
            out.push(json!({
                "listener": &*hx.lx.name,
                "caller": &c.id,
                "name": &c.name,
                "suspended": hx.state.suspended(&c.id),
                "usage": usage,
                "quota": super::quota_of(c),
            }));
        }
    }
    Json(out).into_response()
}

/// `GET /api/suspended`.
pub async fn suspended(State(s): State<Arc<AdminState>>) -> Response {
    let Some(hx) = first(&s) else {
        return no_http();
    };
    Json(hx.state.suspensions()).into_response()
}

/// `POST /api/suspend?caller=ID&reason=...&by=...`.
pub async fn suspend(State(s): State<Arc<AdminState>>, Query(q): Query<CallerQuery>) -> Response {
    let Some(hx) = first(&s) else {
        return no_http();
    };
    let known = s
        .api
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|h| h.policy.current().caller(&q.caller).is_some());
    if !known {
        return crate::admin::problem(
            StatusCode::NOT_FOUND,
            format!(
                "no API policy has a caller `{}` (GET /api/callers lists them)",
                q.caller
            ),
        );
    }
    let reason = q
        .reason
        .unwrap_or_else(|| "suspended through the admin API".into());
    let by = q.by.unwrap_or_else(|| "admin api".into());
    let added = hx.state.suspend(&q.caller, reason.clone(), by.clone());
    let _ = hx
        .lx
        .auditor
        .record(admin_event(
            &hx.lx.name,
            "suspend",
            &q.caller,
            format!("caller suspended by {by}: {reason}"),
        ))
        .await;
    metrics::counter!("danxia_api_suspensions_total", "action" => "suspend").increment(1);
    Json(json!({"ok": true, "added": added})).into_response()
}

/// `POST /api/resume?caller=ID`.
pub async fn resume(State(s): State<Arc<AdminState>>, Query(q): Query<CallerQuery>) -> Response {
    let Some(hx) = first(&s) else {
        return no_http();
    };
    let by = q.by.unwrap_or_else(|| "admin api".into());
    match hx.state.resume(&q.caller) {
        Some(was) => {
            let _ = hx
                .lx
                .auditor
                .record(admin_event(
                    &hx.lx.name,
                    "resume",
                    &q.caller,
                    format!("caller resumed by {by} (suspended for: {})", was.reason),
                ))
                .await;
            metrics::counter!("danxia_api_suspensions_total", "action" => "resume").increment(1);
            Json(json!({"ok": true, "resumed": was})).into_response()
        }
        None => crate::admin::problem(
            StatusCode::NOT_FOUND,
            format!(
                "caller `{}` is not suspended (GET /api/suspended lists them)",
                q.caller
            ),
        ),
    }
}

/// `POST /api/reload`: reloads every HTTP listener's API policy and keys.
pub async fn reload(State(s): State<Arc<AdminState>>) -> Response {
    let list = s.api.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if list.is_empty() {
        return no_http();
    }
    let mut out = Vec::new();
    let mut ok = true;
    for hx in list {
        let keys = hx.auth.reload().err().map(|e| e.to_string());
        let r = hx.policy.reload("admin api").await;
        ok &= r.is_ok() && keys.is_none();
        out.push(json!({
            "listener": &*hx.lx.name,
            "version": r.as_ref().ok(),
            "error": r.err(),
            "keys_error": keys,
        }));
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(json!({"ok": ok, "listeners": out}))).into_response()
}
