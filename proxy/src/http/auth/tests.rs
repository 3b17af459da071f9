//! Authenticator tests: credential order, API keys end to end, and JWTs
//! signed with the key pairs in `testdata/` (generated with openssl for
//! these tests; `jwks.json` holds their public halves and an HS256 secret).

use std::path::{Path, PathBuf};

use base64::Engine;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;

const RSA_PEM: &[u8] = include_bytes!("testdata/rsa.pem");
const RSA_PUB_PEM: &[u8] = include_bytes!("testdata/rsa.pub.pem");
const EC_PEM: &[u8] = include_bytes!("testdata/ec.pem");
const HS_SECRET: &[u8] = b"danxia-test-hmac-secret-32-bytes!";
const NOW: u64 = 1_795_000_000;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/http/auth/testdata")
        .join(name)
}

struct Fixture {
    _dir: tempfile::TempDir,
    auth: Authenticator,
    key: String,
}

fn fixture(edit: impl FnOnce(&mut AuthConfig)) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("api-keys.toml");
    let (key, _) = add_key(&keys, "dept-health", None).expect("add key");
    let mut cfg = AuthConfig {
        keys_file: Some(keys),
        jwks_file: Some(testdata("jwks.json")),
        jwt_audience: Some("danxia-api".into()),
        jwt_issuer: Some("https://idp.example".into()),
        ..AuthConfig::default()
    };
    edit(&mut cfg);
    let auth = Authenticator::load(&cfg).expect("load");
    Fixture {
        _dir: dir,
        auth,
        key,
    }
}

fn claims() -> serde_json::Value {
    json!({
        "sub": "dept-tax",
        "aud": "danxia-api",
        "iss": "https://idp.example",
        "exp": NOW + 600,
        "nbf": NOW - 10,
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PEM).expect("rsa pem"),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PEM).expect("ec pem"),
        Algorithm::HS256 => EncodingKey::from_secret(HS_SECRET),
        other => panic!("no test key for {other:?}"),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, claims, &key).expect("sign")
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    h
}

fn reason(r: Result<Caller, AuthFailure>) -> AuthReason {
    match r {
        Ok(c) => panic!("accepted as {c:?}"),
        Err(f) => f.reason,
    }
}

#[test]
fn config_defaults_and_validation() {
    let cfg: AuthConfig = toml::from_str("keys_file = \"k.toml\"").expect("parse");
    assert_eq!(cfg.api_key_header, "x-api-key");
    assert_eq!(cfg.api_key_query, "");
    assert_eq!(cfg.jwt_caller_claim, "sub");
    assert_eq!(cfg.jwt_leeway, Duration::from_secs(30));
    assert_eq!(cfg.jwt_algorithms, ["RS256", "ES256", "HS256"]);
    assert!(cfg.validate().is_ok());
    let cfg: AuthConfig =
        toml::from_str("jwks_file = \"j.json\"\njwt_leeway = \"2m\"").expect("parse");
    assert_eq!(cfg.jwt_leeway, Duration::from_secs(120));
    assert!(toml::from_str::<AuthConfig>("colour = 1").is_err());
    let bad = [
        AuthConfig::default(),
        AuthConfig {
            keys_file: Some("k".into()),
            api_key_header: "bad header".into(),
            ..AuthConfig::default()
        },
        AuthConfig {
            keys_file: Some("k".into()),
            api_key_header: String::new(),
            ..AuthConfig::default()
        },
        AuthConfig {
            jwks_file: Some("j".into()),
            jwt_algorithms: vec!["none".into()],
            ..AuthConfig::default()
        },
        AuthConfig {
            jwks_file: Some("j".into()),
            jwt_leeway: Duration::from_secs(3600),
            ..AuthConfig::default()
        },
        AuthConfig {
            keys_file: Some("k".into()),
            api_key_query: "a&b".into(),
            ..AuthConfig::default()
        },
    ];
    for c in bad {
        assert!(c.validate().is_err(), "{c:?}");
    }
}

#[test]
fn api_key_in_header_and_query() {
    let f = fixture(|c| c.api_key_query = "api_key".into());
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_str(&f.key).expect("v"));
    let c = f.auth.authenticate(&h, None, NOW).expect("header key");
    assert_eq!((&*c.id, c.method()), ("dept-health", "api_key"));
    let q = format!("page=1&api_key={}", f.key);
    let c = f
        .auth
        .authenticate(&HeaderMap::new(), Some(&q), NOW)
        .expect("query key");
    assert_eq!(&*c.id, "dept-health");
    let e = f
        .auth
        .authenticate(&HeaderMap::new(), Some("api_key=dx_wrong"), NOW)
        .unwrap_err();
    assert_eq!(e.reason, AuthReason::UnknownKey);
    assert!(!e.detail.contains("dx_wrong"));
    let dup = format!("api_key={0}&api_key={0}", f.key);
    assert_eq!(
        reason(f.auth.authenticate(&HeaderMap::new(), Some(&dup), NOW)),
        AuthReason::Malformed
    );
    assert_eq!(
        reason(
            f.auth
                .authenticate(&HeaderMap::new(), Some("api_key=%zz"), NOW)
        ),
        AuthReason::Malformed
    );
    assert_eq!(
        reason(f.auth.authenticate(&HeaderMap::new(), None, NOW)),
        AuthReason::Missing
    );
    assert_eq!(
        reason(f.auth.authenticate(&HeaderMap::new(), Some("page=1"), NOW)),
        AuthReason::Missing
    );
    let mut two = HeaderMap::new();
    two.append("x-api-key", HeaderValue::from_str(&f.key).expect("v"));
    two.append("x-api-key", HeaderValue::from_static("dx_other"));
    assert_eq!(
        reason(f.auth.authenticate(&two, None, NOW)),
        AuthReason::Malformed
    );
    // Query keys are off by default.
    let off = fixture(|_| {});
    let q = format!("api_key={}", off.key);
    assert_eq!(
        reason(off.auth.authenticate(&HeaderMap::new(), Some(&q), NOW)),
        AuthReason::Missing
    );
}

#[test]
fn first_presented_credential_wins() {
    let f = fixture(|c| c.api_key_query = "api_key".into());
    // A valid bearer token beats an API key of another caller...
    let mut h = bearer(&sign(Algorithm::RS256, Some("rsa-1"), &claims()));
    h.insert("x-api-key", HeaderValue::from_str(&f.key).expect("v"));
    let c = f.auth.authenticate(&h, None, NOW).expect("jwt");
    assert_eq!((&*c.id, c.method()), ("dept-tax", "jwt"));
    // ...and a bad one is not rescued by a valid key.
    let mut h = bearer("not.a.jwt");
    h.insert("x-api-key", HeaderValue::from_str(&f.key).expect("v"));
    assert_eq!(
        reason(f.auth.authenticate(&h, None, NOW)),
        AuthReason::Malformed
    );
    // The header key beats the query key.
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_static("dx_wrong"));
    let q = format!("api_key={}", f.key);
    assert_eq!(
        reason(f.auth.authenticate(&h, Some(&q), NOW)),
        AuthReason::UnknownKey
    );
    // Basic auth is not ours: the API key decides.
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Basic dTpw"),
    );
    h.insert("x-api-key", HeaderValue::from_str(&f.key).expect("v"));
    assert_eq!(
        &*f.auth.authenticate(&h, None, NOW).expect("key").id,
        "dept-health"
    );
    // Without a JWKS, bearer tokens are not judged.
    let nojwt = fixture(|c| c.jwks_file = None);
    let mut h = bearer("whatever");
    h.insert("x-api-key", HeaderValue::from_str(&nojwt.key).expect("v"));
    assert_eq!(
        &*nojwt.auth.authenticate(&h, None, NOW).expect("key").id,
        "dept-health"
    );
}

#[test]
fn jwt_of_each_key_type_is_accepted() {
    let f = fixture(|_| {});
    assert_eq!(f.auth.jwk_count(), 3);
    for (alg, kid) in [
        (Algorithm::RS256, Some("rsa-1")),
        (Algorithm::RS256, None),
        (Algorithm::ES256, Some("ec-1")),
        (Algorithm::ES256, None),
        (Algorithm::HS256, Some("hs-1")),
    ] {
        let c = f
            .auth
            .authenticate(&bearer(&sign(alg, kid, &claims())), None, NOW)
            .unwrap_or_else(|e| panic!("{alg:?} {kid:?}: {e}"));
        assert_eq!(&*c.id, "dept-tax");
        assert_eq!(c.method(), "jwt");
        assert_eq!(
            c.credential,
            Credential::Jwt {
                subject: "dept-tax".into(),
                issuer: Some("https://idp.example".into()),
                expires: NOW + 600,
            }
        );
    }
}

#[test]
fn jwt_claims_are_checked() {
    let f = fixture(|_| {});
    let check = |edit: &dyn Fn(&mut serde_json::Value), now: u64| {
        let mut c = claims();
        edit(&mut c);
        f.auth.authenticate(
            &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &c)),
            None,
            now,
        )
    };
    assert!(check(&|_| {}, NOW).is_ok());
    // Expired, within and beyond the 30 s leeway.
    assert!(check(&|_| {}, NOW + 620).is_ok());
    assert_eq!(reason(check(&|_| {}, NOW + 631)), AuthReason::Expired);
    assert_eq!(
        reason(check(&|c| c["nbf"] = json!(NOW + 100), NOW)),
        AuthReason::Expired
    );
    assert_eq!(
        reason(check(
            &|c| {
                c.as_object_mut().map(|o| o.remove("exp"));
            },
            NOW
        )),
        AuthReason::Malformed
    );
    assert_eq!(
        reason(check(&|c| c["aud"] = json!("someone-else"), NOW)),
        AuthReason::BadAudience
    );
    assert!(check(&|c| c["aud"] = json!(["x", "danxia-api"]), NOW).is_ok());
    assert_eq!(
        reason(check(
            &|c| {
                c.as_object_mut().map(|o| o.remove("aud"));
            },
            NOW
        )),
        AuthReason::BadAudience
    );
    assert_eq!(
        reason(check(&|c| c["iss"] = json!("https://evil.example"), NOW)),
        AuthReason::BadIssuer
    );
    assert_eq!(
        reason(check(
            &|c| {
                c.as_object_mut().map(|o| o.remove("sub"));
            },
            NOW
        )),
        AuthReason::NoCallerClaim
    );
    assert_eq!(
        reason(check(&|c| c["sub"] = json!(42), NOW)),
        AuthReason::NoCallerClaim
    );
    // Another claim as the caller id.
    let g = fixture(|c| c.jwt_caller_claim = "client_id".into());
    let mut c = claims();
    c["client_id"] = json!("dept-social");
    let caller = g
        .auth
        .authenticate(&bearer(&sign(Algorithm::ES256, None, &c)), None, NOW)
        .expect("client_id");
    assert_eq!(&*caller.id, "dept-social");
    assert!(
        matches!(caller.credential, Credential::Jwt { ref subject, .. } if &**subject == "dept-tax")
    );
}

#[test]
fn jwt_forgeries_are_refused() {
    let f = fixture(|_| {});
    let t = sign(Algorithm::RS256, Some("rsa-1"), &claims());
    // Bad signature: claims swapped under the original signature.
    let parts: Vec<&str> = t.split('.').collect();
    let mut forged = claims();
    forged["sub"] = json!("dept-admin");
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&forged).expect("json"));
    let tampered = format!("{}.{}.{}", parts[0], body, parts[2]);
    assert_eq!(
        reason(f.auth.authenticate(&bearer(&tampered), None, NOW)),
        AuthReason::BadSignature
    );
    // Signed with a key the JWKS does not hold.
    let other = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"another secret entirely, 32 byte"),
    )
    .expect("sign");
    assert_eq!(
        reason(f.auth.authenticate(&bearer(&other), None, NOW)),
        AuthReason::BadSignature
    );
    // Unknown kid.
    let t = sign(Algorithm::RS256, Some("rsa-9"), &claims());
    assert_eq!(
        reason(f.auth.authenticate(&bearer(&t), None, NOW)),
        AuthReason::UnknownKey
    );
    // Algorithm confusion: HS256 "signed" with the RSA public key bytes,
    // naming the RSA key and naming none.
    for kid in [Some("rsa-1"), None] {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = kid.map(str::to_string);
        let t = encode(&h, &claims(), &EncodingKey::from_secret(RSA_PUB_PEM)).expect("sign");
        let r = reason(f.auth.authenticate(&bearer(&t), None, NOW));
        assert!(
            matches!(
                r,
                AuthReason::UnsupportedAlgorithm | AuthReason::BadSignature
            ),
            "{kid:?}: {r}"
        );
    }
    // ES256 token naming the RSA key.
    let t = sign(Algorithm::ES256, Some("rsa-1"), &claims());
    assert_eq!(
        reason(f.auth.authenticate(&bearer(&t), None, NOW)),
        AuthReason::UnsupportedAlgorithm
    );
    // alg none, with and without a signature part.
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&v).expect("json"))
    };
    for alg in ["none", "None", "NONE"] {
        let t = format!(
            "{}.{}.",
            b64(json!({"alg": alg, "typ": "JWT"})),
            b64(claims())
        );
        assert_eq!(
            reason(f.auth.authenticate(&bearer(&t), None, NOW)),
            AuthReason::UnsupportedAlgorithm
        );
    }
    // An algorithm not in jwt_algorithms.
    let rs_only = fixture(|c| c.jwt_algorithms = vec!["RS256".into()]);
    let t = sign(Algorithm::HS256, Some("hs-1"), &claims());
    assert_eq!(
        reason(rs_only.auth.authenticate(&bearer(&t), None, NOW)),
        AuthReason::UnsupportedAlgorithm
    );
    // crit headers, garbage and oversize tokens.
    let t = format!(
        "{}.{}.sig",
        b64(json!({"alg": "RS256", "crit": ["exp"]})),
        b64(claims())
    );
    assert_eq!(
        reason(f.auth.authenticate(&bearer(&t), None, NOW)),
        AuthReason::Malformed
    );
    for t in ["a.b", "a.b.c.d", "!!.e30.x", "e30.e30.x"] {
        let r = reason(f.auth.authenticate(&bearer(t), None, NOW));
        assert!(
            matches!(r, AuthReason::Malformed | AuthReason::UnsupportedAlgorithm),
            "{t}: {r}"
        );
    }
    let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        reason(f.auth.authenticate(&bearer(&huge), None, NOW)),
        AuthReason::Malformed
    );
}

#[test]
fn reload_swaps_or_keeps_the_old_sets() {
    let f = fixture(|_| {});
    let path = f._dir.path().join("api-keys.toml");
    let (k2, _) = add_key(&path, "dept-tax", None).expect("add");
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_str(&k2).expect("v"));
    assert_eq!(
        reason(f.auth.authenticate(&h, None, NOW)),
        AuthReason::UnknownKey
    );
    f.auth.reload().expect("reload");
    assert_eq!(f.auth.key_count(), 2);
    assert_eq!(
        &*f.auth.authenticate(&h, None, NOW).expect("new key").id,
        "dept-tax"
    );
    std::fs::write(&path, "[[key]]\nid = \"x\"\n").expect("break");
    let e = f.auth.reload().unwrap_err();
    assert!(e.to_string().contains("api-keys.toml"), "{e}");
    assert_eq!(
        &*f.auth.authenticate(&h, None, NOW).expect("old set kept").id,
        "dept-tax"
    );
}

#[test]
fn bad_jwks_files_are_refused() {
    let p = Path::new("jwks.json");
    assert!(jwt::Jwks::parse(p, "{}").is_err());
    assert!(jwt::Jwks::parse(p, "not json").is_err());
    let bad_rsa = r#"{"keys":[{"kty":"RSA","kid":"a","n":"!!","e":"AQAB"}]}"#;
    assert!(jwt::Jwks::parse(p, bad_rsa).is_err());
    let dup = r#"{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"},{"kty":"oct","kid":"a","k":"c2VjcmV0"}]}"#;
    assert!(jwt::Jwks::parse(p, dup)
        .unwrap_err()
        .to_string()
        .contains("duplicate kid"));
    let skipped = r#"{"keys":[{"kty":"weird"},{"kty":"oct","use":"enc","k":"c2VjcmV0"},{"kty":"oct","k":"c2VjcmV0"}]}"#;
    assert_eq!(jwt::Jwks::parse(p, skipped).expect("parse").len(), 1);
}
