//! Test certificates for the TLS tests: a CA, server certificates for
//! `localhost` and 127.0.0.1, client certificates with a chosen CN and O,
//! an expired certificate, all written as PEM files into a directory, and
//! the TOML that points a listener at them.
//!
//! Keys are ECDSA P-256 (rcgen's default, generated with ring); key files
//! are written with mode 0600 because libpq refuses a client key that
//! others can read.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};

use crate::toml_str;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A throwaway certificate authority writing into one directory.
pub struct TestPki {
    pub dir: PathBuf,
    /// The CA certificate (PEM): `sslrootcert`, `client_ca`, `ca`.
    pub ca_cert: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    next_serial: std::cell::Cell<u64>,
}

impl TestPki {
    /// A new CA called `name` (its files are `<name>-ca.pem`/`-ca.key`).
    pub fn new(dir: &Path, name: &str) -> TestPki {
        fs::create_dir_all(dir).expect("create the certificate directory");
        let key = KeyPair::generate().expect("generate the CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{name} test CA"));
        dn.push(DnType::OrganizationName, "danxia tests");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let ca_cert = dir.join(format!("{name}-ca.pem"));
        write(&ca_cert, &cert.pem(), false);
        write(
            &dir.join(format!("{name}-ca.key")),
            &key.serialize_pem(),
            true,
        );
        TestPki {
            dir: dir.to_path_buf(),
            ca_cert,
            issuer: Issuer::new(params, key),
            next_serial: std::cell::Cell::new(1000),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1 with the given
    /// CN, in `<file>.pem` / `<file>.key`.
    pub fn server(&self, file: &str, cn: &str) -> CertFiles {
        self.issue(
            file,
            vec!["localhost".into(), "127.0.0.1".into()],
            &[(DnType::CommonName, cn)],
            ExtendedKeyUsagePurpose::ServerAuth,
            None,
        )
    }

    /// A client certificate with subject `CN=<cn>` (and `O=<org>`).
    pub fn client(&self, file: &str, cn: &str, org: Option<&str>) -> CertFiles {
        let mut dn = vec![];
        if let Some(o) = org {
            dn.push((DnType::OrganizationName, o));
        }
        dn.push((DnType::CommonName, cn));
        self.issue(
            file,
            Vec::new(),
            &dn,
            ExtendedKeyUsagePurpose::ClientAuth,
            None,
        )
    }

    /// A server certificate for `localhost` that expired in 2021.
    pub fn expired_server(&self, file: &str) -> CertFiles {
        self.issue(
            file,
            vec!["localhost".into(), "127.0.0.1".into()],
            &[(DnType::CommonName, "expired")],
            ExtendedKeyUsagePurpose::ServerAuth,
            Some((2020, 2021)),
        )
    }

    fn issue(
        &self,
        file: &str,
        sans: Vec<String>,
        dn: &[(DnType, &str)],
        eku: ExtendedKeyUsagePurpose,
        // (first year, expiry year), each from January 1st.
        validity: Option<(i32, i32)>,
    ) -> CertFiles {
        let key = KeyPair::generate().expect("generate a key");
        let mut params = CertificateParams::new(sans).expect("certificate params");
        let mut name = DistinguishedName::new();
        for (t, v) in dn {
            name.push(t.clone(), *v);
        }
        params.distinguished_name = name;
        params.extended_key_usages = vec![eku];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        params.serial_number = Some(SerialNumber::from(serial));
        if let Some((from, to)) = validity {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the certificate");
        let files = CertFiles {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        write(&files.cert, &cert.pem(), false);
        write(&files.key, &key.serialize_pem(), true);
        files
    }

    /// The body of a `[listener.tls]` table serving `server`, plus
    /// `extra` lines (e.g. `mode = "optional"`).
    pub fn listener_tls(&self, server: &CertFiles, extra: &str) -> String {
        format!(
            "cert = {}\nkey = {}\n{extra}",
            toml_str(&server.cert.to_string_lossy()),
            toml_str(&server.key.to_string_lossy())
        )
    }

    /// `client_ca = "<this CA>"` for a `[listener.tls]` body.
    pub fn client_ca_line(&self) -> String {
        format!(
            "client_ca = {}\n",
            toml_str(&self.ca_cert.to_string_lossy())
        )
    }
}

/// Writes a file; keys get mode 0600.
fn write(path: &Path, text: &str, private: bool) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    if private {
        crate::artifacts::register_pem_key(text);
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }
}
