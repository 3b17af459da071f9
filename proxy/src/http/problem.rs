//! RFC 9457 problem details: every answer danxia itself gives an API
//! caller (refusals, upstream failures) is `application/problem+json` with
//! the rule that decided, so a caller's developer can tell danxia's
//! refusal from the API's own errors.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// A problem as danxia sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:danxia:rule:<rule id>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request's id in the audit log (`session`-`seq` style).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// danxia's rule id (an extension member, RFC 9457 §3.2).
    pub rule: String,
}

impl Problem {
    pub fn new(status: StatusCode, rule: &str, title: &str, detail: String) -> Problem {
        Problem {
            kind: format!("urn:danxia:rule:{rule}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            instance: None,
            rule: rule.to_string(),
        }
    }

    /// The response, with `extra` headers (e.g. `WWW-Authenticate`,
    /// `Retry-After`).
    pub fn response(&self, extra: &[(header::HeaderName, String)]) -> Response<Bytes> {
        let body = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        let mut r = Response::new(Bytes::from(body));
        *r.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in extra {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name.clone(), v);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_is_rfc9457_json_with_the_rule() {
        let p = Problem::new(
            StatusCode::FORBIDDEN,
            "api.route-not-granted",
            "Route not granted",
            "caller dept-stats may not call persons.get".into(),
        );
        let r = p.response(&[]);
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let v: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(v["type"], "urn:danxia:rule:api.route-not-granted");
        assert_eq!(v["status"], 403);
        assert_eq!(v["rule"], "api.route-not-granted");
        assert!(v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("persons.get")));
    }
}
