//! TLS core tests with rcgen-made certificates: configuration validation,
//! reload that keeps the old certificate on a bad file, the backend
//! verification modes and client-certificate identities, over real
//! loopback sockets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

/// Issues a certificate; returns (cert PEM, key PEM).
fn leaf(ca: &Ca, sans: &[&str], dn: &[(DnType, &str)], expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let mut name = DistinguishedName::new();
    for (t, v) in dn {
        name.push(t.clone(), *v);
    }
    p.distinguished_name = name;
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes a test file 0600: danxia refuses private keys other users can
/// read (crate::files::secret), and the tests use some files as keys.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn listener_tls(dir: &Path, ca: &Ca, cn: &str) -> ListenerTls {
    let (c, k) = leaf(
        ca,
        &["localhost", "127.0.0.1"],
        &[(DnType::CommonName, cn)],
        false,
    );
    ListenerTls {
        cert: write(dir, "server.pem", &c),
        key: write(dir, "server.key", &k),
        client_ca: None,
        client_auth: None,
        mode: TlsMode::Required,
        min_version: MinVersion::Tls12,
    }
}

#[test]
fn validation_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let a = ca("a");
    let good = listener_tls(dir.path(), &a, "server");
    assert!(good.validate("listener[0].tls").unwrap().is_empty());

    let missing = ListenerTls {
        cert: dir.path().join("nope.pem"),
        ..good.clone()
    };
    let e = missing.validate("listener[0].tls").unwrap_err();
    assert!(
        e.contains("listener[0].tls") && e.contains("nope.pem"),
        "{e}"
    );

    let not_pem = ListenerTls {
        cert: write(dir.path(), "garbage.pem", "hello\n"),
        ..good.clone()
    };
    let e = not_pem.validate("t").unwrap_err();
    assert!(e.contains("BEGIN CERTIFICATE"), "{e}");

    let no_key = ListenerTls {
        key: write(dir.path(), "nokey.pem", &a.pem),
        ..good.clone()
    };
    let e = no_key.validate("t").unwrap_err();
    assert!(e.contains("PRIVATE KEY"), "{e}");

    let (_, other_key) = leaf(&a, &["x"], &[], false);
    let mismatch = ListenerTls {
        key: write(dir.path(), "other.key", &other_key),
        ..good.clone()
    };
    let e = mismatch.validate("t").unwrap_err();
    assert!(e.contains("does not belong"), "{e}");

    let auth_without_ca = ListenerTls {
        client_auth: Some(ClientAuth::Optional),
        ..good.clone()
    };
    assert!(auth_without_ca
        .validate("t")
        .unwrap_err()
        .contains("client_ca"));

    let (c, k) = leaf(&a, &["localhost"], &[], true);
    let expired = ListenerTls {
        cert: write(dir.path(), "expired.pem", &c),
        key: write(dir.path(), "expired.key", &k),
        ..good.clone()
    };
    let w = expired.validate("t").unwrap();
    assert!(w.len() == 1 && w[0].contains("expired"), "{w:?}");

    let with_ca = ListenerTls {
        client_ca: Some(write(dir.path(), "ca.pem", &a.pem)),
        ..good
    };
    assert_eq!(with_ca.client_auth(), Some(ClientAuth::Required));
}

#[test]
fn config_keys_parse_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let a = ca("a");
    let t = listener_tls(dir.path(), &a, "server");
    let ca_file = write(dir.path(), "ca.pem", &a.pem);
    let text = format!(
        "[[listener]]\nname = \"pg\"\nprotocol = \"postgres\"\nlisten = \"127.0.0.1:1\"\nbackend = \"db.example:5432\"\n[listener.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\nclient_auth = \"optional\"\nmode = \"optional\"\nmin_version = \"1.3\"\n[listener.backend_tls]\nmode = \"verify-full\"\nca = {:?}\n",
        t.cert, t.key, ca_file, ca_file
    );
    let c = crate::config::Config::parse(&text, Path::new("t.toml")).unwrap();
    let l = &c.listeners[0];
    let tls = l.tls.as_ref().unwrap();
    assert_eq!(tls.mode, TlsMode::Optional);
    assert_eq!(tls.min_version, MinVersion::Tls13);
    assert_eq!(tls.client_auth(), Some(ClientAuth::Optional));
    assert_eq!(
        l.backend_tls.as_ref().unwrap().mode,
        BackendTlsMode::VerifyFull
    );
    let (_, b) = for_listener(l).unwrap();
    assert_eq!(
        b.unwrap().server_name(),
        &rustls::pki_types::ServerName::try_from("db.example").unwrap()
    );

    let bad_mode = text.replace("verify-full", "verify");
    let e = crate::config::Config::parse(&bad_mode, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("verify-full"), "{e}");
    let half_client = text.replace(
        "[listener.backend_tls]\n",
        &format!("[listener.backend_tls]\ncert = {:?}\n", t.cert),
    );
    let e = crate::config::Config::parse(&half_client, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("backend_tls") && e.contains("cert and key"),
        "{e}"
    );
}

/// A TLS echo server with `tls` on a loopback port; each connection
/// answers with the client certificate's subject (or `-`), then echoes.
async fn serve(tls: Arc<ServerTls>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(mut s) = tls.accept(s, Duration::from_secs(5)).await else {
                    return;
                };
                let info = TlsInfo::of(s.get_ref().1);
                let who = info.subject().map_or("-".to_string(), |s| s.to_string());
                let _ = s.write_all(format!("{who}\n").as_bytes()).await;
                let _ = s.flush().await;
                let mut b = [0u8; 64];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                    let _ = s.flush().await;
                }
            });
        }
    });
    port
}

/// Connects with `b` and reads the first line.
async fn hello(port: u16, b: &BackendTls) -> Result<String, String> {
    let c = BackendConnector::new(b, "localhost", Vec::new()).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut s = c
        .connect(tcp, "test", Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b).await {
            Ok(1) if b[0] != b'\n' => line.push(b[0]),
            Ok(1) => break,
            Ok(_) => return Err(format!("closed after {line:?}")),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[tokio::test]
async fn backend_verification_modes() {
    let dir = tempfile::tempdir().unwrap();
    let a = ca("a");
    let other = ca("other");
    let server = ServerTls::new("t", &listener_tls(dir.path(), &a, "server"), Vec::new()).unwrap();
    let port = serve(server).await;
    let a_pem = write(dir.path(), "a.pem", &a.pem);
    let other_pem = write(dir.path(), "other.pem", &other.pem);
    let mode = |mode, ca: &PathBuf, name: &str| BackendTls {
        mode,
        ca: Some(ca.clone()),
        server_name: Some(name.into()),
        cert: None,
        key: None,
    };
    use BackendTlsMode::*;
    // require: any certificate.
    assert_eq!(
        hello(port, &mode(Require, &other_pem, "x.invalid"))
            .await
            .unwrap(),
        "-"
    );
    // verify-ca: chain checked, name not.
    assert_eq!(
        hello(port, &mode(VerifyCa, &a_pem, "x.invalid"))
            .await
            .unwrap(),
        "-"
    );
    let e = hello(port, &mode(VerifyCa, &other_pem, "localhost"))
        .await
        .unwrap_err();
    assert!(
        e.contains("UnknownIssuer") || e.contains("unknown issuer"),
        "{e}"
    );
    // verify-full: both.
    assert_eq!(
        hello(port, &mode(VerifyFull, &a_pem, "localhost"))
            .await
            .unwrap(),
        "-"
    );
    assert_eq!(
        hello(port, &mode(VerifyFull, &a_pem, "127.0.0.1"))
            .await
            .unwrap(),
        "-"
    );
    let e = hello(port, &mode(VerifyFull, &a_pem, "x.invalid"))
        .await
        .unwrap_err();
    assert!(e.to_lowercase().contains("name"), "{e}");
    assert!(hello(port, &mode(VerifyFull, &other_pem, "localhost"))
        .await
        .is_err());
}

#[tokio::test]
async fn client_certificates_give_an_identity() {
    let dir = tempfile::tempdir().unwrap();
    let a = ca("a");
    let stranger = ca("stranger");
    let mut t = listener_tls(dir.path(), &a, "server");
    t.client_ca = Some(write(dir.path(), "a.pem", &a.pem));
    let required = serve(ServerTls::new("t", &t, Vec::new()).unwrap()).await;
    t.client_auth = Some(ClientAuth::Optional);
    let optional = serve(ServerTls::new("t", &t, Vec::new()).unwrap()).await;

    let (c, k) = leaf(
        &a,
        &[],
        &[
            (DnType::OrganizationName, "Health"),
            (DnType::CommonName, "app1"),
        ],
        false,
    );
    let (sc, sk) = leaf(&stranger, &[], &[(DnType::CommonName, "app1")], false);
    let client = |cert: Option<(&str, &str)>| {
        let (cert, key) = match cert {
            Some((c, k)) => (
                Some(write(dir.path(), "c.pem", c)),
                Some(write(dir.path(), "c.key", k)),
            ),
            None => (None, None),
        };
        BackendTls {
            mode: BackendTlsMode::VerifyFull,
            ca: Some(dir.path().join("a.pem")),
            server_name: Some("localhost".into()),
            cert,
            key,
        }
    };
    assert_eq!(
        hello(required, &client(Some((&c, &k)))).await.unwrap(),
        "CN=app1,O=Health"
    );
    assert!(hello(required, &client(None)).await.is_err());
    assert!(hello(required, &client(Some((&sc, &sk)))).await.is_err());
    assert_eq!(hello(optional, &client(None)).await.unwrap(), "-");
    assert_eq!(
        hello(optional, &client(Some((&c, &k)))).await.unwrap(),
        "CN=app1,O=Health"
    );
}

#[tokio::test]
async fn reload_takes_new_files_and_keeps_the_old_on_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let a = ca("a");
    let t = listener_tls(dir.path(), &a, "first");
    let server = ServerTls::new("t", &t, Vec::new()).unwrap();
    assert!(!server.reload_if_changed().unwrap(), "nothing changed yet");
    let port = serve(server.clone()).await;
    let verify = BackendTls {
        mode: BackendTlsMode::VerifyFull,
        ca: Some(write(dir.path(), "a.pem", &a.pem)),
        server_name: Some("localhost".into()),
        cert: None,
        key: None,
    };
    assert_eq!(peer_cn(port).await, "CN=first");
    assert!(hello(port, &verify).await.is_ok());

    // A new certificate (atomic rename, as cert managers do).
    let (c, k) = leaf(&a, &["localhost"], &[(DnType::CommonName, "second")], false);
    write(dir.path(), "new.pem", &c);
    write(dir.path(), "new.key", &k);
    std::fs::rename(dir.path().join("new.key"), &t.key).unwrap();
    std::fs::rename(dir.path().join("new.pem"), &t.cert).unwrap();
    assert!(server.reload_if_changed().unwrap());
    assert_eq!(peer_cn(port).await, "CN=second");

    // A broken replacement: the old certificate stays.
    std::fs::write(&t.cert, "-----BEGIN CERTIFICATE-----\nnope\n").unwrap();
    assert!(server.reload_if_changed().is_err());
    assert_eq!(peer_cn(port).await, "CN=second");
    assert!(hello(port, &verify).await.is_ok());
    // Reported once, not at every poll.
    assert!(!server.reload_if_changed().unwrap());
}

/// The subject of the certificate the server on `port` shows.
async fn peer_cn(port: u16) -> String {
    let c = BackendConnector::new(
        &BackendTls {
            mode: BackendTlsMode::Require,
            ..Default::default()
        },
        "localhost",
        Vec::new(),
    )
    .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let s = c.connect(tcp, "t", Duration::from_secs(5)).await.unwrap();
    let certs = s.get_ref().1.peer_certificates().unwrap();
    ClientCert::from_der(&certs[0]).unwrap().subject.to_string()
}

#[test]
fn subjects_render_as_rfc4514() {
    let a = ca("a");
    let (c, _) = leaf(
        &a,
        &[],
        &[
            (DnType::CountryName, "CN"),
            (DnType::OrganizationName, "Health, Inc"),
            (DnType::CommonName, "#app+1"),
        ],
        false,
    );
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(c.as_bytes()).unwrap();
    let cc = ClientCert::from_der(&der).unwrap();
    assert_eq!(&*cc.subject, "CN=\\#app\\+1,O=Health\\, Inc,C=CN");
    assert_eq!(cc.fingerprint_sha256.len(), 64);
}
