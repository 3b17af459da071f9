//! Who a TLS peer is: the negotiated version and the verified client
//! certificate's subject and fingerprint, as policy (`tls_subjects`) and
//! audit (`tls_subject`, `tls`) use them. Only certificates rustls has
//! already verified against `client_ca` reach this code.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::CommonState;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use super::TlsError;

/// A client certificate, verified by the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// Subject distinguished name in RFC 4514 string order (most specific
    /// first, `,` between RDNs): `CN=app1,O=Health`. This is what
    /// PostgreSQL's `ssl_client_dn()` and OpenSSL's `-nameopt RFC2253`
    /// print, so policies can be written from either.
    pub subject: Arc<str>,
    /// SHA-256 of the DER certificate, lowercase hex (what
    /// `openssl x509 -fingerprint -sha256` prints, without the colons).
    pub fingerprint_sha256: String,
    /// Expiry, Unix seconds.
    pub not_after: i64,
}

impl ClientCert {
    /// Reads the subject, fingerprint and expiry of a DER certificate.
    pub fn from_der(der: &CertificateDer<'_>) -> Result<ClientCert, TlsError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| TlsError::Certificate {
            path: "<peer certificate>".into(),
            reason: e.to_string(),
        })?;
        Ok(ClientCert {
            subject: Arc::from(rfc4514(cert.subject())),
            fingerprint_sha256: hex::encode(Sha256::digest(der.as_ref())),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// The peer's leaf certificate, if it sent one.
    pub fn of(conn: &CommonState) -> Option<ClientCert> {
        let leaf = conn.peer_certificates()?.first()?;
        ClientCert::from_der(leaf).ok()
    }
}

/// What a session records about its TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    pub client_cert: Option<ClientCert>,
}

impl TlsInfo {
    /// Reads a completed handshake.
    pub fn of(conn: &CommonState) -> TlsInfo {
        TlsInfo {
            version: version_name(conn.protocol_version()),
            client_cert: ClientCert::of(conn),
        }
    }

    /// The client certificate's subject, if any.
    pub fn subject(&self) -> Option<Arc<str>> {
        self.client_cert.as_ref().map(|c| c.subject.clone())
    }
}

fn version_name(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    }
}

/// Short names RFC 4514 and OpenSSL use for common attribute types.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "serialNumber",
        "2.5.4.4" => "SN",
        "2.5.4.42" => "GN",
        "2.5.4.12" => "title",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// RFC 4514 rendering: RDNs in reverse order of the encoding, `+` between
/// the attributes of a multi-valued RDN, special characters escaped, and
/// values that are not strings as `#` + hex of their DER.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    for (i, rdn) in name
        .iter()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type().to_id_string();
            match short_name(&oid) {
                Some(s) => out.push_str(s),
                None => out.push_str(&oid),
            }
            out.push('=');
            match atv.as_str() {
                Ok(v) => escape_value(&mut out, v),
                Err(_) => {
                    out.push('#');
                    out.push_str(&hex::encode(atv.attr_value().as_bytes()));
                }
            }
        }
    }
    out
}

fn escape_value(out: &mut String, v: &str) {
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if c == '\0' {
            out.push_str("\\00");
            continue;
        }
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}
