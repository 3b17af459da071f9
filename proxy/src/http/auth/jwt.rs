//! Bearer JWTs checked against a JWKS file (RFC 7517 `{"keys": [...]}`):
//! RSA (RS*/PS*), EC P-256/P-384 (ES256/ES384), oct (HS*) and Ed25519
//! (EdDSA) keys. Owns key selection and the claim checks; the signature
//! maths is `jsonwebtoken`'s (pure-Rust `rust_crypto` backend).
//!
//! Defences, because the token's header is attacker-controlled:
//! - `alg` must be in `jwt_algorithms` (`none` never parses);
//! - a key is only used with algorithms of its own type, and of its own
//!   `alg` when the JWK names one (an HS256 token "signed" with an RSA
//!   public key is refused before any HMAC is computed);
//! - a `kid` names exactly one key; without one, the keys of the token's
//!   algorithm are tried in file order;
//! - tokens with `crit` headers are refused (no extension is understood);
//! - `exp` is required and checked against the caller's clock, as is `nbf`.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use danxia_protocols::http::request as credentials;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{
    read_bounded, AuthConfig, AuthError, AuthFailure, AuthReason, Caller, Credential,
    MAX_TOKEN_BYTES,
};

/// Longest caller id taken from a claim.
pub const MAX_CALLER_ID_BYTES: usize = 256;
/// Most keys read from a JWKS file.
pub const MAX_JWKS_KEYS: usize = 256;

/// An algorithm name from the config.
pub(crate) fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    Algorithm::from_str(name).map_err(|_| {
        format!("unknown algorithm {name:?} (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, HS256, HS384, HS512, EdDSA)")
    })
}

/// The checks the config asks for.
#[derive(Debug, Clone)]
pub(crate) struct JwtRules {
    algorithms: Vec<Algorithm>,
    audience: Option<String>,
    issuer: Option<String>,
    caller_claim: String,
    leeway: u64,
}

impl JwtRules {
    pub(crate) fn from_config(cfg: &AuthConfig) -> Result<JwtRules, String> {
        Ok(JwtRules {
            algorithms: cfg
                .jwt_algorithms
                .iter()
                .map(|a| parse_algorithm(a))
                .collect::<Result<_, _>>()?,
            audience: cfg.jwt_audience.clone(),
            issuer: cfg.jwt_issuer.clone(),
            caller_claim: cfg.jwt_caller_claim.clone(),
            leeway: cfg.jwt_leeway.as_secs(),
        })
    }
}

/// One usable key.
struct Key {
    kid: Option<String>,
    /// The JWK's own `alg`, if it names one.
    alg: Option<Algorithm>,
    curve: Option<EllipticCurve>,
    key: DecodingKey,
}

impl Key {
    /// Whether this key may verify `alg` (same type, same curve, and the
    /// key's own `alg` if it has one).
    fn fits(&self, alg: Algorithm) -> bool {
        if self.key.family() != alg.family() {
            return false;
        }
        if matches!(self.alg, Some(a) if a != alg) {
            return false;
        }
        match alg {
            Algorithm::ES256 => self.curve == Some(EllipticCurve::P256),
            Algorithm::ES384 => self.curve == Some(EllipticCurve::P384),
            Algorithm::EdDSA => self.curve == Some(EllipticCurve::Ed25519),
            _ => true,
        }
    }
}

/// The keys of a JWKS file.
pub(crate) struct Jwks {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<Option<&str>> = self.keys.iter().map(|k| k.kid.as_deref()).collect();
        f.debug_struct("Jwks").field("kids", &kids).finish()
    }
}

impl Jwks {
    pub(crate) fn load(path: &Path) -> Result<Jwks, AuthError> {
        let text = read_bounded(path)?;
        Jwks::parse(path, &text)
    }

    /// Parses a JWKS. Keys for encryption (`use: enc`) or of types this
    /// build cannot verify are skipped with a warning (identity providers
    /// publish those too); a malformed key of a usable type is an error.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Jwks, AuthError> {
        let bad = |message: String| AuthError::Jwks {
            path: path.into(),
            message,
        };
        let doc: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let Some(list) = doc.get("keys").and_then(Value::as_array) else {
            return Err(bad("no \"keys\" array".into()));
        };
        if list.len() > MAX_JWKS_KEYS {
            return Err(bad(format!("more than {MAX_JWKS_KEYS} keys")));
        }
        let mut keys = Vec::with_capacity(list.len());
        let mut kids = HashSet::new();
        for (i, v) in list.iter().enumerate() {
            let kty = v.get("kty").and_then(Value::as_str).unwrap_or("");
            if !matches!(kty, "RSA" | "EC" | "oct" | "OKP") {
                tracing::warn!(path = %path.display(), index = i, kty, "jwks: skipping a key of an unsupported type");
                continue;
            }
            let jwk: Jwk = serde_json::from_value(v.clone())
                .map_err(|e| bad(format!("key {i} ({kty}): {e}")))?;
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let alg = match v.get("alg").and_then(Value::as_str) {
                None => None,
                Some(a) => match Algorithm::from_str(a) {
                    Ok(a) => Some(a),
                    Err(_) => {
                        tracing::warn!(path = %path.display(), index = i, alg = a, "jwks: skipping a key for an unsupported algorithm");
                        continue;
                    }
                },
            };
            let curve = match &jwk.algorithm {
                AlgorithmParameters::EllipticCurve(p) => Some(p.curve.clone()),
                AlgorithmParameters::OctetKeyPair(p) => Some(p.curve.clone()),
                _ => None,
            };
            let key =
                DecodingKey::from_jwk(&jwk).map_err(|e| bad(format!("key {i} ({kty}): {e}")))?;
            let kid = jwk.common.key_id.clone();
            if let Some(k) = &kid {
                if !kids.insert(k.clone()) {
                    return Err(bad(format!("duplicate kid {k:?}")));
                }
            }
            keys.push(Key {
                kid,
                alg,
                curve,
                key,
            });
        }
        Ok(Jwks { keys })
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

fn fail(reason: AuthReason, detail: impl Into<String>) -> AuthFailure {
    AuthFailure::new(reason, detail)
}

/// The parts of the (untrusted) header decided on before verifying.
struct Head {
    alg: Algorithm,
    kid: Option<String>,
}

fn read_head(token: &str, rules: &JwtRules) -> Result<Head, AuthFailure> {
    let head =
        credentials::jwt_header(token).map_err(|e| fail(AuthReason::Malformed, e.to_string()))?;
    let alg_name = head.alg.as_str();
    let alg = Algorithm::from_str(alg_name)
        .ok()
        .filter(|a| rules.algorithms.contains(a))
        .ok_or_else(|| {
            fail(
                AuthReason::UnsupportedAlgorithm,
                format!(
                    "token algorithm {:?} is not accepted",
                    truncate(alg_name, 16)
                ),
            )
        })?;
    let kid = head.kid;
    Ok(Head { alg, kid })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn map_error(e: &jsonwebtoken::errors::Error) -> AuthFailure {
    match e.kind() {
        ErrorKind::InvalidSignature => {
            fail(AuthReason::BadSignature, "token signature does not verify")
        }
        ErrorKind::InvalidAudience => {
            fail(AuthReason::BadAudience, "token audience is not accepted")
        }
        ErrorKind::InvalidIssuer => fail(AuthReason::BadIssuer, "token issuer is not accepted"),
        ErrorKind::ExpiredSignature => fail(AuthReason::Expired, "token expired"),
        ErrorKind::ImmatureSignature => fail(AuthReason::Expired, "token not valid yet"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => fail(
            AuthReason::UnsupportedAlgorithm,
            "token algorithm does not fit the key",
        ),
        ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
            "aud" => fail(AuthReason::BadAudience, "token has no audience"),
            "iss" => fail(AuthReason::BadIssuer, "token has no issuer"),
            _ => fail(AuthReason::Malformed, format!("token has no {c} claim")),
        },
        _ => fail(AuthReason::Malformed, "token is not a valid JWT"),
    }
}

/// Verifies `token` and returns the caller it names.
pub(crate) fn verify(
    token: &str,
    jwks: &Jwks,
    rules: &JwtRules,
    now: u64,
) -> Result<Caller, AuthFailure> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(fail(AuthReason::Malformed, "bearer token too long"));
    }
    let head = read_head(token, rules)?;
    let candidates: Vec<&Key> = match &head.kid {
        Some(kid) => {
            let k = jwks
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                .ok_or_else(|| fail(AuthReason::UnknownKey, "no key with the token's kid"))?;
            if !k.fits(head.alg) {
                return Err(fail(
                    AuthReason::UnsupportedAlgorithm,
                    "the token's algorithm does not fit its key",
                ));
            }
            vec![k]
        }
        None => jwks.keys.iter().filter(|k| k.fits(head.alg)).collect(),
    };
    if candidates.is_empty() {
        return Err(fail(
            AuthReason::UnknownKey,
            "no key for the token's algorithm",
        ));
    }
    let mut v = Validation::new(head.alg);
    // Time is checked below against the caller's clock (tests inject it).
    v.validate_exp = false;
    v.validate_nbf = false;
    v.leeway = rules.leeway;
    let mut required: Vec<&str> = Vec::new();
    match &rules.audience {
        Some(a) => {
            v.set_audience(&[a]);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    if let Some(i) = &rules.issuer {
        v.set_issuer(&[i]);
        required.push("iss");
    }
    v.set_required_spec_claims(&required);

    let mut last = fail(AuthReason::BadSignature, "token signature does not verify");
    let mut claims = None;
    for k in candidates {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &v) {
            Ok(d) => {
                claims = Some(d.claims);
                break;
            }
            // Another key may have signed it.
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => last = map_error(&e),
            // The signature verified; a claim is wrong.
            Err(e) => return Err(map_error(&e)),
        }
    }
    let Some(claims) = claims else {
        return Err(last);
    };
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .filter(|e| e.is_finite() && *e >= 0.0)
        .ok_or_else(|| fail(AuthReason::Malformed, "token has no numeric exp claim"))?;
    let exp = exp as u64;
    if exp.saturating_add(rules.leeway) <= now {
        return Err(fail(AuthReason::Expired, "token expired"));
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf
            .as_f64()
            .filter(|n| n.is_finite())
            .ok_or_else(|| fail(AuthReason::Malformed, "token nbf is not a number"))?;
        if nbf > now.saturating_add(rules.leeway) as f64 {
            return Err(fail(AuthReason::Expired, "token not valid yet"));
        }
    }
    let id = match claims.get(&rules.caller_claim) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_CALLER_ID_BYTES => s.as_str(),
        _ => {
            return Err(fail(
                AuthReason::NoCallerClaim,
                format!("token has no string {:?} claim", rules.caller_claim),
            ))
        }
    };
    let id: Arc<str> = Arc::from(id);
    let subject = match claims.get("sub") {
        Some(Value::String(s)) if s.len() <= MAX_CALLER_ID_BYTES => Arc::from(s.as_str()),
        _ => id.clone(),
    };
    let issuer = match claims.get("iss") {
        Some(Value::String(s)) if s.len() <= MAX_CALLER_ID_BYTES => Some(Arc::from(s.as_str())),
        _ => None,
    };
    Ok(Caller {
        id,
        credential: Credential::Jwt {
            subject,
            issuer,
            expires: exp,
        },
    })
}
