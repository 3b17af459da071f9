//! Pure parsing of what the HTTP listener reads from a request before
//! forwarding it: the `Authorization: Bearer` value, a percent-encoded
//! query parameter (API key in the query string), the JOSE header of a
//! compact JWT, the query string's pairs and the `Content-Type` essence.
//!
//! Lives here rather than in the proxy so the cargo-fuzz targets reach it
//! without building the proxy's runtime (tokio, hyper, rustls).
//!
//! Must never: verify a signature or decide who the caller is (the proxy's
//! `http::auth` does that), allocate more than a bounded multiple of the
//! input, or recurse without a limit (serde_json stops at 128 levels of
//! nesting, see [`jwt_header`]).

use base64::Engine;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

/// Why a credential could not be read. The text never holds the
/// credential itself: every variant is safe to log and to send back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("bearer token is not ASCII")]
    BearerNotAscii,
    #[error("query parameter {0} given more than once")]
    RepeatedParam(String),
    #[error("query parameter {0} is too long")]
    ParamTooLong(String),
    #[error("bad escape in {0}")]
    BadEscape(String),
    #[error("bearer token is not a JWS compact JWT")]
    NotCompactJwt,
    #[error("token header is not base64url")]
    HeaderNotBase64,
    #[error("token header is not a JSON object")]
    HeaderNotObject,
    #[error("token has critical header extensions this server does not support")]
    CriticalExtension,
    #[error("token kid is not a string")]
    KidNotString,
}

/// The token of one `Authorization` header value when it is a bearer one
/// (`Bearer <token>`, scheme case-insensitive, token trimmed); `Ok(None)`
/// for any other scheme.
pub fn bearer_token(value: &[u8]) -> Result<Option<&str>, CredentialError> {
    const SCHEME: &[u8] = b"bearer ";
    let is_bearer =
        value.len() > SCHEME.len() && value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME);
    if !is_bearer {
        return Ok(None);
    }
    let s = std::str::from_utf8(value)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or(CredentialError::BearerNotAscii)?;
    Ok(Some(s[SCHEME.len()..].trim()))
}

/// The percent-decoded value of query parameter `name` in `query` (`+` is
/// a space); more than one occurrence is an error (which one would win is
/// ambiguous), and so is a raw value longer than `max_raw_len` bytes.
pub fn query_param(
    query: &str,
    name: &str,
    max_raw_len: usize,
) -> Result<Option<Vec<u8>>, CredentialError> {
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != name {
            continue;
        }
        if found.is_some() {
            return Err(CredentialError::RepeatedParam(name.to_string()));
        }
        if v.len() > max_raw_len {
            return Err(CredentialError::ParamTooLong(name.to_string()));
        }
        found = Some(
            percent_decode(v.as_bytes())
                .ok_or_else(|| CredentialError::BadEscape(name.to_string()))?,
        );
    }
    Ok(found)
}

/// `application/x-www-form-urlencoded` decoding: `%XX` and `+`; `None` on a
/// truncated or non-hex escape. The output is never longer than the input.
pub fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let digit = |c: u8| (c as char).to_digit(16);
                let (hi, lo) = (digit(hex[0])?, digit(hex[1])?);
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Query parameters as (decoded name, decoded value), leniently: `+` is a
/// space, a bad escape is kept as is, invalid UTF-8 becomes U+FFFD (these
/// feed conditions and audit, never the upstream request).
pub fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return Vec::new() };
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        percent_decode_str(&s).decode_utf8_lossy().into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

/// Whether a `Content-Type` is JSON (`application/json`, `*/*+json`).
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// What the proxy reads from a JWT's (untrusted, unverified) JOSE header
/// to pick the verification key and algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtHeader {
    /// `alg`, empty when absent or not a string.
    pub alg: String,
    /// `kid`, when present.
    pub kid: Option<String>,
}

/// Reads the JOSE header of a compact JWS (`header.payload.signature`).
/// A header with `crit` is refused (no extension is supported). Nesting
/// is bounded by serde_json's recursion limit (128): a deeply nested
/// header is a clean [`CredentialError::HeaderNotObject`].
pub fn jwt_header(token: &str) -> Result<JwtHeader, CredentialError> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CredentialError::NotCompactJwt);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| CredentialError::HeaderNotBase64)?;
    let head: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| CredentialError::HeaderNotObject)?;
    if head.contains_key("crit") {
        return Err(CredentialError::CriticalExtension);
    }
    let alg = head
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kid = match head.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(CredentialError::KidNotString),
    };
    Ok(JwtHeader { alg, kid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn bearer_values() {
        assert_eq!(bearer_token(b"Bearer  abc "), Ok(Some("abc")));
        assert_eq!(bearer_token(b"bEaReR x"), Ok(Some("x")));
        assert_eq!(bearer_token(b"Basic abc"), Ok(None));
        assert_eq!(bearer_token(b"Bearer "), Ok(None));
        assert_eq!(
            bearer_token(b"Bearer \xff"),
            Err(CredentialError::BearerNotAscii)
        );
    }

    #[test]
    fn query_params() {
        assert_eq!(
            query_param("a=1&key=x%41+y&b", "key", 100),
            Ok(Some(b"xA y".to_vec()))
        );
        assert_eq!(query_param("a=1", "key", 100), Ok(None));
        assert!(matches!(
            query_param("key=1&key=2", "key", 100),
            Err(CredentialError::RepeatedParam(_))
        ));
        assert!(matches!(
            query_param("key=%4", "key", 100),
            Err(CredentialError::BadEscape(_))
        ));
        assert!(matches!(
            query_param("key=%+1", "key", 100),
            Err(CredentialError::BadEscape(_))
        ));
        assert!(matches!(
            query_param("key=12345", "key", 4),
            Err(CredentialError::ParamTooLong(_))
        ));
    }

    #[test]
    fn jwt_headers() {
        let t = format!("{}.e30.sig", b64(br#"{"alg":"RS256","kid":"k1"}"#));
        assert_eq!(
            jwt_header(&t),
            Ok(JwtHeader {
                alg: "RS256".into(),
                kid: Some("k1".into())
            })
        );
        let crit = format!("{}.e30.sig", b64(br#"{"alg":"RS256","crit":["x"]}"#));
        assert_eq!(jwt_header(&crit), Err(CredentialError::CriticalExtension));
        let kid = format!("{}.e30.sig", b64(br#"{"alg":"RS256","kid":1}"#));
        assert_eq!(jwt_header(&kid), Err(CredentialError::KidNotString));
        assert_eq!(jwt_header("a.b"), Err(CredentialError::NotCompactJwt));
        assert_eq!(jwt_header("!.b.c"), Err(CredentialError::HeaderNotBase64));
    }

    /// A JWT header of 100 000 nested arrays (what an attacker controls
    /// before any signature is checked) is refused cleanly on a thread with
    /// a 256 KiB stack: serde_json's depth limit, not a stack overflow.
    #[test]
    fn deeply_nested_jwt_header_is_a_clean_error_on_a_small_stack() {
        let depth = 100_000;
        let mut json = br#"{"alg":"#.to_vec();
        json.extend(std::iter::repeat_n(b'[', depth));
        json.extend(std::iter::repeat_n(b']', depth));
        json.push(b'}');
        let token = format!("{}.e30.sig", b64(&json));
        let got = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || jwt_header(&token))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(got, Err(CredentialError::HeaderNotObject));
    }
}
