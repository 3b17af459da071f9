//! Fuzzes what the HTTP listener parses from a request before policy:
//! the Authorization bearer value, the query string (API key parameter and
//! the pairs conditions see), the JWT header, the Content-Type. One input
//! line each. Invariant: percent-decoding never grows the input.
#![no_main]

use danxia_protocols::http::request::{
    bearer_token, is_json, jwt_header, percent_decode, query_pairs, query_param,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let auth = lines.next().unwrap_or_default();
    if let Ok(Some(token)) = bearer_token(auth) {
        let _ = jwt_header(token);
    }
    let query = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let _ = query_param(&query, "api_key", 300);
    let _ = query_pairs(Some(&query));
    if let Some(out) = percent_decode(query.as_bytes()) {
        assert!(out.len() <= query.len());
    }
    let rest = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let _ = jwt_header(&rest);
    let _ = is_json(Some(&rest));
});
