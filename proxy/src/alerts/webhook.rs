//! The webhook sink: each alert's JSON document POSTed to one HTTP endpoint.
//!
//! Owns the HTTP client (hyper-util's legacy client: pooled keep-alive
//! connections) and the retry policy. Deliveries run in order, one at a time:
//! simple, and the SOC sees alerts in the order they were raised. 2xx is
//! delivered; 5xx, 408, 429, connect errors and timeouts are retried with
//! doubling backoff; any other status is a permanent failure.
//!
//! Must never log a header value or the URL's path or query (tokens live
//! there): logs carry the endpoint's `host:port` only. Must never read an
//! unbounded response body.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::config::WebhookConfig;
use super::{backoff_delay, error_chain, AlertError, Outgoing, SinkQueue};

/// Most response-body bytes read (and discarded) so the connection can be
/// reused; a longer body is abandoned with its connection.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// How long an idle keep-alive connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

const USER_AGENT_VALUE: &str = concat!("danxia/", env!("CARGO_PKG_VERSION"));

/// What one attempt came to.
enum Attempt {
    Delivered,
    /// Worth another try (5xx, 408, 429, connect/I/O error, timeout).
    Retry(AlertError),
    /// Another try would get the same answer (other 4xx, 3xx, bad request).
    Permanent(AlertError),
}

pub(crate) struct WebhookSink {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    /// `host:port`, the only part of the URL that is logged.
    endpoint: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    max_backoff: Duration,
}

impl WebhookSink {
    /// Builds the client; no connection is made until the first alert.
    pub fn new(cfg: &WebhookConfig) -> Result<Self, String> {
        let target = cfg.target()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(cfg.timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(WebhookSink {
            client,
            uri: target.uri,
            endpoint: target.endpoint,
            headers: target.headers,
            timeout: cfg.timeout,
            retries: cfg.retries,
            backoff: cfg.backoff,
            max_backoff: cfg.max_backoff,
        })
    }

    /// The sink's task: delivers queued alerts until every `Alerts` handle
    /// is gone and the queue is drained.
    pub async fn run(self, mut queue: SinkQueue) {
        while let Some(out) = queue.next().await {
            self.deliver(&out, &queue).await;
            queue.shared.done();
        }
    }

    async fn deliver(&self, out: &Outgoing, queue: &SinkQueue) {
        let counters = &queue.shared.counters;
        let body = match serde_json::to_vec(&out.body) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                counters.failed();
                tracing::warn!(sink = "webhook", rule = %out.rule, alert_id = %out.alert_id,
                    error = %e, "alert body cannot be serialised; alert dropped");
                return;
            }
        };
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let err = match self.attempt(body.clone()).await {
                Attempt::Delivered => {
                    counters.ok();
                    return;
                }
                Attempt::Permanent(err) => err,
                Attempt::Retry(err) if attempts <= self.retries => {
                    counters.retried();
                    let delay = backoff_delay(self.backoff, self.max_backoff, attempts);
                    tracing::debug!(sink = "webhook", endpoint = %self.endpoint,
                        alert_id = %out.alert_id, attempts, error = %err, ?delay,
                        "alert delivery failed; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Attempt::Retry(err) => err,
            };
            counters.failed();
            tracing::warn!(sink = "webhook", endpoint = %self.endpoint, rule = %out.rule,
                alert_id = %out.alert_id, attempts, error = %err,
                "alert delivery failed; alert dropped");
            return;
        }
    }

    /// One POST, bounded by `timeout` from connect to the end of the
    /// response body.
    async fn attempt(&self, body: Bytes) -> Attempt {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE);
        for (name, value) in &self.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        let request = match builder.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return Attempt::Permanent(AlertError::WebhookRequest(e.to_string())),
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // Drain (bounded) so the connection goes back to the pool; a
            // failure here does not change what the status said.
            let _ = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
                .collect()
                .await;
            Ok::<StatusCode, hyper_util::client::legacy::Error>(status)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Attempt::Retry(AlertError::Timeout(self.timeout)),
            Ok(Err(e)) => Attempt::Retry(AlertError::WebhookRequest(error_chain(&e))),
            Ok(Ok(status)) => classify(status),
        }
    }
}

/// 2xx delivered; 5xx, 408 and 429 retried; anything else permanent.
fn classify(status: StatusCode) -> Attempt {
    let err = AlertError::WebhookStatus {
        status: status.as_u16(),
    };
    if status.is_success() {
        Attempt::Delivered
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Attempt::Retry(err)
    } else {
        Attempt::Permanent(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        let kind = |code: u16| match classify(StatusCode::from_u16(code).expect("status")) {
            Attempt::Delivered => "ok",
            Attempt::Retry(_) => "retry",
            Attempt::Permanent(_) => "permanent",
        };
        for (code, want) in [
            (200, "ok"),
            (202, "ok"),
            (204, "ok"),
            (301, "permanent"),
            (400, "permanent"),
            (401, "permanent"),
            (404, "permanent"),
            (408, "retry"),
            (413, "permanent"),
            (429, "retry"),
            (500, "retry"),
            (502, "retry"),
            (503, "retry"),
            (599, "retry"),
        ] {
            assert_eq!(kind(code), want, "HTTP {code}");
        }
    }
}
