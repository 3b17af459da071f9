//! Metrics of the HTTP listeners. Route labels are the API policy's route
//! templates (a bounded set the security team writes), never raw paths;
//! rule labels are danxia's rule ids; status is the class (`2xx`, …).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use metrics::{counter, describe_counter, describe_histogram, histogram, Counter, Histogram};

use crate::audit::AuditEvent;

/// Per-route handles, resolved once per (route, method, status class).
#[derive(Clone)]
struct RouteHandles {
    requests: Counter,
    seconds: Histogram,
    records: Counter,
}

/// (route template, method, status class).
type RouteKey = (Arc<str>, &'static str, &'static str);

pub struct HttpMetrics {
    listener: Arc<str>,
    routes: Mutex<HashMap<RouteKey, RouteHandles>>,
}

/// Most distinct route label sets kept (a policy with thousands of routes
/// still gets metrics; beyond this they share the `(other)` label).
const MAX_ROUTE_LABELS: usize = 4096;

fn status_class(s: u16) -> &'static str {
    match s {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

pub fn describe() {
    describe_counter!(
        "danxia_http_requests_total",
        "API requests through http listeners, by route template, method and status class."
    );
    describe_histogram!(
        "danxia_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from request to the end of the response, by route template."
    );
    describe_counter!(
        "danxia_http_records_total",
        "Records returned to API callers (per the route's `records` path), by route template."
    );
    describe_counter!(
        "danxia_http_refusals_total",
        "API requests danxia refused or failed itself, by rule id (api.*)."
    );
    describe_counter!(
        "danxia_http_auth_failures_total",
        "API requests whose caller could not be authenticated, by reason."
    );
    describe_counter!(
        "danxia_http_sensitive_values_total",
        "Personal data values found in API responses, by tag and state: `clear` (sent as is) or `masked` (danxia masked the value)."
    );
}

impl HttpMetrics {
    pub fn new(listener: &str) -> HttpMetrics {
        describe();
        HttpMetrics {
            listener: Arc::from(listener),
            routes: Mutex::new(HashMap::new()),
        }
    }

    fn handles(
        &self,
        route: &Arc<str>,
        method: &'static str,
        status: &'static str,
    ) -> RouteHandles {
        let mut m = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let key =
            if m.len() >= MAX_ROUTE_LABELS && !m.contains_key(&(route.clone(), method, status)) {
                (Arc::from("(other)"), method, status)
            } else {
                (route.clone(), method, status)
            };
        m.entry(key.clone())
            .or_insert_with(|| {
                let l = self.listener.to_string();
                let r = key.0.to_string();
                RouteHandles {
                    requests: counter!("danxia_http_requests_total", "listener" => l.clone(), "route" => r.clone(), "method" => method, "status" => status),
                    seconds: histogram!("danxia_http_request_duration_seconds", "listener" => l.clone(), "route" => r.clone()),
                    records: counter!("danxia_http_records_total", "listener" => l, "route" => r),
                }
            })
            .clone()
    }

    /// One exchange completed.
    pub fn finished(&self, ev: &AuditEvent, records: u64) {
        let route: Arc<str> = ev.route.clone().unwrap_or_else(|| Arc::from("(none)"));
        let h = self.handles(
            &route,
            ev.operation.unwrap_or("OTHER"),
            status_class(ev.status.unwrap_or(0)),
        );
        h.requests.increment(1);
        if let Some(us) = ev.duration_us {
            h.seconds.record(us as f64 / 1e6);
        }
        if records > 0 {
            h.records.increment(records);
        }
    }

    pub fn refused(&self, rule: &str) {
        counter!("danxia_http_refusals_total", "listener" => self.listener.to_string(), "rule" => rule.to_string()).increment(1);
    }

    pub fn auth_failed(&self, reason: &'static str) {
        counter!("danxia_http_auth_failures_total", "listener" => self.listener.to_string(), "reason" => reason).increment(1);
    }

    pub fn sensitive(&self, tag: &'static str, state: &'static str, n: u64) {
        counter!("danxia_http_sensitive_values_total", "listener" => self.listener.to_string(), "tag" => tag, "state" => state).increment(n);
    }
}
