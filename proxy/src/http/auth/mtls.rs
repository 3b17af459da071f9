//! API callers identified by a TLS client certificate (mutual TLS on an
//! HTTPS listener with `client_ca`). Owns the mapping from a verified
//! certificate's subject to the API policy's `[[caller]]` id; the TLS
//! handshake (and so the proof that the client holds the key of a
//! certificate the CA signed) is `crate::tls`'s.
//!
//! Mapping, first match wins:
//! 1. an explicit `[[listener.auth.mtls]] subject = "CN=stats,O=Dept"`,
//!    `caller = "dept-stats"` (subjects compared attribute by attribute,
//!    spaces after separators ignored, attribute names case-insensitive);
//! 2. unless `mtls_cn_caller = false`, the certificate's CN, when the API
//!    policy declares a `[[caller]]` of that id.
//!
//! Anything else is refused (`unknown_certificate`): a certificate the CA
//! signed for some other purpose must not become a caller by accident.
//! Must never: accept a subject it could not parse as a caller id.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{AuthFailure, AuthReason, Caller, Credential};

/// Longest caller id taken from a certificate CN.
pub const MAX_CN_BYTES: usize = 256;

/// One `[[listener.auth.mtls]]`: certificates with this subject are this
/// caller.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsMapping {
    /// The certificate subject, RFC 4514 style, e.g. `"CN=stats,O=Dept"`
    /// (as danxia audits it in `tls_subject`).
    pub subject: String,
    /// The API policy's `[[caller]]` id.
    pub caller: String,
}

/// A verified client certificate, as the HTTP listener hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedCert {
    pub subject: Arc<str>,
    pub fingerprint_sha256: Arc<str>,
}

/// The compiled mapping.
#[derive(Debug, Clone, Default)]
pub(crate) struct MtlsRules {
    by_subject: HashMap<Vec<(String, String)>, Arc<str>>,
    cn_as_caller: bool,
}

impl MtlsRules {
    pub(crate) fn new(mappings: &[MtlsMapping], cn_as_caller: bool) -> Result<MtlsRules, String> {
        let mut by_subject = HashMap::new();
        for (i, m) in mappings.iter().enumerate() {
            let key = normalise(&m.subject).ok_or_else(|| {
                format!(
                    "mtls[{i}].subject = {:?}: expected attribute=value pairs separated by commas, e.g. \"CN=stats,O=Dept\"",
                    m.subject
                )
            })?;
            if m.caller.is_empty() {
                return Err(format!("mtls[{i}].caller is empty"));
            }
            if by_subject
                .insert(key, Arc::from(m.caller.as_str()))
                .is_some()
            {
                return Err(format!(
                    "mtls[{i}].subject = {:?} is mapped twice",
                    m.subject
                ));
            }
        }
        Ok(MtlsRules {
            by_subject,
            cn_as_caller,
        })
    }

    /// The caller `cert` authenticates. `declared(id)`: whether the API
    /// policy has a `[[caller]]` of that id (the CN rule needs one).
    pub(crate) fn caller(
        &self,
        cert: &PresentedCert,
        declared: &dyn Fn(&str) -> bool,
    ) -> Result<Caller, AuthFailure> {
        let credential = Credential::ClientCert {
            subject: cert.subject.clone(),
            fingerprint_sha256: cert.fingerprint_sha256.clone(),
        };
        let parsed = normalise(&cert.subject);
        if let Some(id) = parsed.as_ref().and_then(|k| self.by_subject.get(k)) {
            return Ok(Caller {
                id: id.clone(),
                credential,
            });
        }
        if self.cn_as_caller {
            let cn = parsed
                .as_ref()
                .and_then(|p| p.iter().find(|(k, _)| k == "cn").map(|(_, v)| v.as_str()));
            if let Some(cn) = cn.filter(|c| !c.is_empty() && c.len() <= MAX_CN_BYTES) {
                if declared(cn) {
                    return Ok(Caller {
                        id: Arc::from(cn),
                        credential,
                    });
                }
            }
        }
        Err(AuthFailure::new(
            AuthReason::UnknownCertificate,
            format!(
                "the client certificate {} is not an API caller of this listener",
                truncate_subject(&cert.subject)
            ),
        ))
    }
}

fn truncate_subject(s: &str) -> &str {
    match s.char_indices().nth(MAX_CN_BYTES) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A subject as (lower-case attribute name, value) pairs in order, escapes
/// (`\,`, `\+`, `\\`, …) resolved; multi-valued RDNs (`+`) are flattened.
/// `None` when it is not `name=value` pairs.
pub(crate) fn normalise(subject: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut parts: Vec<String> = Vec::new();
    let mut chars = subject.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push('\\');
                cur.push(chars.next()?);
            }
            ',' | '+' | ';' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (k, v) = split_unescaped_eq(p)?;
        let k = k.trim();
        if k.is_empty() {
            return None;
        }
        out.push((k.to_ascii_lowercase(), unescape(v.trim())));
    }
    (!out.is_empty()).then_some(out)
}

fn split_unescaped_eq(s: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '=' if !escaped => return Some((&s[..i], &s[i + 1..])),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(subject: &str) -> PresentedCert {
        PresentedCert {
            subject: Arc::from(subject),
            fingerprint_sha256: Arc::from("00"),
        }
    }

    #[test]
    fn subjects_normalise() {
        let n = |s: &str| normalise(s).expect(s);
        assert_eq!(n("CN=stats,O=Dept"), n("cn=stats, O=Dept"));
        assert_eq!(
            n(r"CN=a\,b,O=x"),
            vec![("cn".into(), "a,b".into()), ("o".into(), "x".into())]
        );
        assert_ne!(n("CN=stats,O=Dept"), n("O=Dept,CN=stats"));
        assert!(normalise("garbage").is_none());
        assert!(normalise("").is_none());
        assert!(normalise("=x").is_none());
    }

    #[test]
    fn explicit_mapping_then_cn_of_a_declared_caller() {
        let rules = MtlsRules::new(
            &[MtlsMapping {
                subject: "CN=stats-gw, O=Dept of Statistics".into(),
                caller: "dept-stats".into(),
            }],
            true,
        )
        .expect("valid");
        let declared = |id: &str| id == "dept-health" || id == "dept-stats";
        let c = rules
            .caller(&cert("CN=stats-gw,O=Dept of Statistics"), &declared)
            .expect("mapped");
        assert_eq!(&*c.id, "dept-stats");
        assert!(matches!(c.credential, Credential::ClientCert { .. }));
        let c = rules
            .caller(&cert("CN=dept-health,O=Health"), &declared)
            .expect("cn");
        assert_eq!(&*c.id, "dept-health");
        let f = rules
            .caller(&cert("CN=intruder,O=Health"), &declared)
            .expect_err("undeclared");
        assert_eq!(f.reason, AuthReason::UnknownCertificate);
        assert!(f.detail.contains("CN=intruder"), "{}", f.detail);
        let no_cn = MtlsRules::new(&[], false).expect("valid");
        assert!(no_cn.caller(&cert("CN=dept-health"), &declared).is_err());
    }

    #[test]
    fn bad_mappings_are_refused() {
        let m = |s: &str, c: &str| MtlsMapping {
            subject: s.into(),
            caller: c.into(),
        };
        assert!(MtlsRules::new(&[m("nonsense", "x")], true).is_err());
        assert!(MtlsRules::new(&[m("CN=a", "")], true).is_err());
        assert!(MtlsRules::new(&[m("CN=a", "x"), m("cn=a", "y")], true).is_err());
    }
}
