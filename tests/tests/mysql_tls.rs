//! TLS on the MySQL listener, end to end with the real `mariadb` CLI,
//! PyMySQL and MariaDB 10.11 (which itself has TLS off):
//!
//! - client side: the greeting offers `CLIENT_SSL`; `mariadb --ssl
//!   --ssl-ca --ssl-verify-server-cert` verifies danxia's certificate and
//!   its own status (`\s`) says the link is encrypted; a
//!   mysql_native_password login with a password works through TLS; a
//!   plaintext client on a `mode = "required"` listener gets ERROR 3159
//!   before authentication (audited, counted); a wrong CA fails on the
//!   client;
//! - client certificates: the subject reaches the policy (`tls_subjects`)
//!   and the audit (`tls_subject`); `client_auth = "required"` refuses a
//!   client without one at the handshake;
//! - backend side (tested by chaining, as MariaDB offers no TLS here):
//!   danxia B's `backend_tls = verify-full` to danxia A's TLS listener in
//!   front of MariaDB, with real statements, plaintext and TLS clients on
//!   B; a wrong CA, and a server that offers no TLS, fail clearly.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use danxia_e2e::tls::{CertFiles, TestPki};
use danxia_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// The `mariadb` CLI to 127.0.0.1:`port` as `user` with TLS options
/// `tls` (no option files, batch output, 10 s connect timeout).
fn mariadb_tls(port: u16, user: &str, password: Option<&str>, tls: &[String]) -> Command {
    let mut c = Command::new("mariadb");
    c.arg("--no-defaults")
        .arg("-h127.0.0.1")
        .arg(format!("-P{port}"))
        .arg("--protocol=TCP")
        .arg(format!("-u{user}"))
        .arg("--connect-timeout=10")
        .arg("--batch")
        .args(tls);
    if let Some(pw) = password {
        c.arg(format!("--password={pw}"));
    }
    c.arg("test")
        .env_remove("MYSQL_PWD")
        .env_remove("MYSQL_HOST")
        .env_remove("MYSQL_TCP_PORT");
    c
}

/// `--ssl --ssl-ca=CA --ssl-verify-server-cert`, plus a client certificate.
fn verified(ca: &Path, client: Option<&CertFiles>) -> Vec<String> {
    let mut v = vec![
        "--ssl".to_string(),
        format!("--ssl-ca={}", ca.display()),
        "--ssl-verify-server-cert".to_string(),
    ];
    if let Some(c) = client {
        v.push(format!("--ssl-cert={}", c.cert.display()));
        v.push(format!("--ssl-key={}", c.key.display()));
    }
    v
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The cipher line of the CLI's `\s` status ("Cipher in use is …"), which
/// describes the client's own link (danxia's TLS), unlike the server's
/// `Ssl_cipher` status variable (danxia's link to MariaDB).
fn cli_cipher(port: u16, user: &str, password: Option<&str>, tls: &[String]) -> String {
    let out = run(mariadb_tls(port, user, password, tls).arg("-e").arg("\\s"));
    assert!(out.status.success(), "\\s over TLS: {}", text(&out));
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    status
        .lines()
        .find(|l| l.starts_with("SSL:"))
        .unwrap_or_else(|| panic!("no SSL line in \\s:\n{status}"))
        .to_string()
}

/// The first `n` session_start events of `user` on `listener`, waiting for
/// the audit writer to have written them all.
fn session_starts(d: &Danxia, listener: &str, user: &str, n: usize) -> Vec<Value> {
    d.wait_audit_count(WAIT, n, |e| {
        e["kind"] == "session_start" && e["listener"] == listener && e["user"] == user
    })
}

#[test]
fn mariadb_cli_over_verified_tls_and_plaintext_refused() {
    require_mariadb();
    for host in ["%", "localhost", "127.0.0.1"] {
        mariadb_exec(&format!(
            "CREATE USER IF NOT EXISTS 'dx_tls_native'@'{host}' \
             IDENTIFIED VIA mysql_native_password USING PASSWORD('tls-native-pw'); \
             GRANT SELECT ON test.* TO 'dx_tls_native'@'{host}'"
        ));
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(tmp.path(), "my");
    let server = pki.server("server", "danxia-mysql");
    let other = TestPki::new(&tmp.path().join("other"), "other");
    let d = Danxia::start_with(Options {
        mysql: true,
        mysql_tls: Some(pki.listener_tls(&server, "")),
        ..Options::default_pack()
    });
    let tls = verified(&pki.ca_cert, None);

    // The client's own view of its link: encrypted, certificate verified.
    let cipher = cli_cipher(d.mysql_port, "root", None, &tls);
    assert!(
        cipher.contains("Cipher in use is") && !cipher.contains("Not in use"),
        "{cipher}"
    );
    let out = run_ok(
        mariadb_tls(d.mysql_port, "root", None, &tls)
            .arg("-N")
            .arg("-e")
            .arg("select 40 + 2, current_user()"),
    );
    assert!(out.trim().starts_with("42\troot@"), "{out}");
    let start = session_starts(&d, "mysql", "root", 1);
    assert!(
        start
            .iter()
            .all(|e| e["tls"].as_str().is_some_and(|v| v.starts_with("TLSv1."))),
        "session_start events carry the TLS version: {start:?}"
    );

    // A password login (mysql_native_password) through TLS, right and wrong.
    let out = run_ok(
        mariadb_tls(d.mysql_port, "dx_tls_native", Some("tls-native-pw"), &tls)
            .arg("-N")
            .arg("-e")
            .arg("select current_user()"),
    );
    assert!(out.starts_with("dx_tls_native@"), "{out}");
    let bad = run(
        mariadb_tls(d.mysql_port, "dx_tls_native", Some("wrong"), &tls)
            .arg("-e")
            .arg("select 1"),
    );
    assert!(
        !bad.status.success() && text(&bad).contains("ERROR 1045"),
        "the server's refusal through TLS: {}",
        text(&bad)
    );

    // PyMySQL with a verified TLS link.
    let py = format!(
        "import pymysql, ssl\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         c = pymysql.connect(host='localhost', port={port}, user='root', database='test', ssl=ctx)\n\
         cur = c.cursor(); cur.execute('select 6 * 7'); print(cur.fetchone()[0])\n\
         print(type(c._sock).__name__)\n",
        ca = pki.ca_cert.display().to_string(),
        port = d.mysql_port
    );
    let out = run_ok(python().arg("-c").arg(&py));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["42", "SSLSocket"],
        "{out}"
    );

    // A CA that did not sign danxia's certificate: the client refuses.
    let wrong = run(
        mariadb_tls(d.mysql_port, "root", None, &verified(&other.ca_cert, None))
            .arg("-e")
            .arg("select 1"),
    );
    assert!(
        !wrong.status.success(),
        "wrong CA accepted: {}",
        text(&wrong)
    );
    assert!(
        text(&wrong).contains("ERROR 2026"),
        "a TLS error on the client: {}",
        text(&wrong)
    );

    // Plaintext on a listener that requires TLS: refused before auth.
    let plain = run(
        mariadb_tls(d.mysql_port, "root", None, &["--skip-ssl".to_string()])
            .arg("-e")
            .arg("select 1"),
    );
    let msg = text(&plain);
    assert!(!plain.status.success(), "plaintext accepted: {msg}");
    assert!(
        msg.contains("ERROR 3159") && msg.contains("requires TLS") && msg.contains("--ssl"),
        "a refusal that says what to do: {msg}"
    );
    let refused = d.wait_audit(WAIT, |e| {
        e["listener"] == "mysql" && e["error_code"] == 3159 && e["outcome"] == "refused"
    });
    assert!(
        refused
            .iter()
            .any(|e| e["listener"] == "mysql" && e["error_code"] == 3159),
        "{refused:?}"
    );
    assert_eq!(
        d.metric(
            "danxia_tls_plaintext_refused_total",
            &[("listener", "mysql")]
        ),
        1.0
    );
    assert!(
        d.metric(
            "danxia_tls_handshakes_total",
            &[("listener", "mysql"), ("result", "ok")]
        ) >= 4.0
    );
    assert!(d.audit_verify().status.success());
}

/// A policy that refuses every statement of clients whose certificate
/// says `CN=blocked-app`.
const CERT_POLICY: &str = r#"
[policy]
default_action = "allow"

[[rule]]
id = "deny-blocked-cert"
description = "The blocked application's certificate may not query"
action = "deny"
tls_subjects = ["CN=blocked-app,*"]
"#;

#[test]
fn client_certificate_subject_is_policy_identity() {
    require_mariadb();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(tmp.path(), "my");
    let server = pki.server("server", "danxia-mysql");
    let allowed = pki.client("allowed", "reporting-app", Some("Health"));
    let blocked = pki.client("blocked", "blocked-app", Some("Health"));
    let policy = tmp.path().join("policy");
    std::fs::create_dir(&policy).expect("policy dir");
    std::fs::write(policy.join("10-certs.toml"), CERT_POLICY).expect("policy");
    let d = Danxia::start_with(Options {
        mysql: true,
        mysql_tls: Some(pki.listener_tls(&server, &pki.client_ca_line())),
        extra_toml: format!(
            "[policy]\ndir = {}\nmode = \"enforce\"\nallowlist = {}\n",
            toml_str(&policy.display().to_string()),
            toml_str(&tmp.path().join("allowlist.toml").display().to_string()),
        ),
        ..Options::default()
    });
    let sql = "select 'cert-policy', 1";
    let ok = run(mariadb_tls(
        d.mysql_port,
        "root",
        None,
        &verified(&pki.ca_cert, Some(&allowed)),
    )
    .arg("-N")
    .arg("-e")
    .arg(sql));
    assert!(ok.status.success(), "allowed certificate: {}", text(&ok));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "cert-policy\t1");
    let denied = run(mariadb_tls(
        d.mysql_port,
        "root",
        None,
        &verified(&pki.ca_cert, Some(&blocked)),
    )
    .arg("-N")
    .arg("-e")
    .arg(sql));
    let msg = text(&denied);
    assert!(!denied.status.success(), "blocked certificate ran: {msg}");
    assert!(
        msg.contains("ERROR 1142") && msg.contains("deny-blocked-cert"),
        "{msg}"
    );
    let events = d.wait_audit_count(WAIT, 2, |e| {
        e["kind"] == "statement" && e["listener"] == "mysql" && e["statement"] == sql
    });
    let of = |cn: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| {
                e["kind"] == "statement"
                    && e["statement"] == sql
                    && e["tls_subject"] == format!("CN={cn},O=Health")
            })
            .collect()
    };
    let a = of("reporting-app");
    let b = of("blocked-app");
    assert_eq!(a.len(), 1, "{events:?}");
    assert_eq!(b.len(), 1, "{events:?}");
    assert_eq!(a[0]["verdict"], "allowed", "{}", a[0]);
    assert_eq!(b[0]["verdict"], "denied", "{}", b[0]);
    assert_eq!(b[0]["rule"], "deny-blocked-cert", "{}", b[0]);

    // client_auth defaults to required with client_ca: no certificate, no
    // session (the handshake itself fails).
    let none = run(
        mariadb_tls(d.mysql_port, "root", None, &verified(&pki.ca_cert, None))
            .arg("-e")
            .arg("select 1"),
    );
    assert!(
        !none.status.success(),
        "no certificate accepted: {}",
        text(&none)
    );
    d.wait_metric(
        WAIT,
        "danxia_tls_handshakes_total",
        &[("listener", "mysql"), ("result", "failed")],
        |v| v >= 1.0,
    );
}

/// danxia A: a TLS MySQL listener in front of MariaDB.
fn front(pki: &TestPki, server: &CertFiles) -> Danxia {
    Danxia::start_with(Options {
        mysql: true,
        mysql_tls: Some(pki.listener_tls(server, "mode = \"optional\"\n")),
        ..Options::default()
    })
}

/// danxia B: a MySQL listener `chain` whose backend is `backend_port`
/// over TLS with `backend_tls`, and, with `tls`, TLS towards its clients.
fn chained(backend_port: u16, backend_tls: &str, tls: Option<String>) -> (Danxia, u16) {
    let port = free_port();
    let mut t = format!(
        "[[listener]]\nname = \"chain\"\nprotocol = \"mysql\"\nlisten = \"127.0.0.1:{port}\"\n\
         backend = \"127.0.0.1:{backend_port}\"\n[listener.backend_tls]\n{backend_tls}\n"
    );
    if let Some(tls) = tls {
        t.push_str(&format!("[listener.tls]\n{tls}\n"));
    }
    let d = Danxia::start_healthy_only(Options {
        extra_toml: t,
        ..Options::default()
    });
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "listener chain never accepted:\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (d, port)
}

#[test]
fn backend_tls_verify_full_through_a_chain() {
    require_mariadb();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(tmp.path(), "my");
    let server = pki.server("server", "danxia-a");
    let other = TestPki::new(&tmp.path().join("other"), "other");
    let a = front(&pki, &server);
    let ca = toml_str(&pki.ca_cert.display().to_string());
    let (b, port) = chained(
        a.mysql_port,
        &format!("mode = \"verify-full\"\nca = {ca}\nserver_name = \"localhost\""),
        Some(pki.listener_tls(&pki.server("server-b", "danxia-b"), "mode = \"optional\"\n")),
    );
    let table = format!("danxia_my_tls_chain_{}", std::process::id());
    let script = format!(
        "drop table if exists {table};\n\
         create table {table} (id int primary key, note varchar(40));\n\
         insert into {table} values (1, 'через TLS'), (2, '经过 TLS');\n\
         update {table} set note = concat(note, '!') where id = 2;\n\
         select id, note from {table} order by id;\n"
    );
    // A plaintext client on B: B → A over TLS (sequence ids shifted by one
    // on the backend link only).
    let out = run_with_stdin(
        mariadb_tls(port, "root", None, &["--skip-ssl".to_string()]).arg("-N"),
        &script,
    );
    assert!(
        out.status.success(),
        "through the chain: {}\n{}",
        text(&out),
        b.stderr()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\tчерез TLS\n2\t经过 TLS!\n"
    );
    // A TLS client on B too (both links through an SSLRequest).
    let cipher = cli_cipher(port, "root", None, &verified(&pki.ca_cert, None));
    assert!(cipher.contains("Cipher in use is"), "{cipher}");
    let out = run_ok(
        mariadb_tls(port, "root", None, &verified(&pki.ca_cert, None))
            .arg("-N")
            .arg("-e")
            .arg(format!("select count(*) from {table}")),
    );
    assert_eq!(out.trim(), "2");
    // A saw B's sessions over TLS: B's backend link is encrypted.
    let starts = session_starts(&a, "mysql", "root", 3);
    assert!(starts.len() >= 3, "{starts:?}");
    assert!(
        starts
            .iter()
            .all(|e| e["tls"].as_str().is_some_and(|v| v.starts_with("TLSv1."))),
        "{starts:?}"
    );
    assert!(
        b.metric(
            "danxia_tls_backend_handshakes_total",
            &[("listener", "chain"), ("result", "ok")]
        ) >= 3.0
    );
    mariadb_exec(&format!("drop table {table}"));

    // A CA that did not sign A's certificate: B refuses to go on.
    let other_ca = toml_str(&other.ca_cert.display().to_string());
    let (c, port) = chained(
        a.mysql_port,
        &format!("mode = \"verify-full\"\nca = {other_ca}"),
        None,
    );
    let out = run(mariadb_tls(port, "root", None, &["--skip-ssl".to_string()])
        .arg("-e")
        .arg("select 1"));
    let msg = text(&out);
    assert!(!out.status.success(), "wrong CA accepted: {msg}");
    assert!(
        msg.contains("no TLS connection to the database server") && msg.contains("certificate"),
        "{msg}"
    );
    assert_eq!(
        c.metric(
            "danxia_tls_backend_handshakes_total",
            &[("listener", "chain"), ("result", "failed")]
        ),
        1.0
    );

    // MariaDB itself offers no TLS here: `require` fails clearly.
    let (m, port) = chained(MYSQL_DIRECT_PORT, "mode = \"require\"", None);
    let out = run(mariadb_tls(port, "root", None, &["--skip-ssl".to_string()])
        .arg("-e")
        .arg("select 1"));
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("does not offer TLS"), "{msg}");
    assert!(
        m.metric(
            "danxia_tls_backend_handshakes_total",
            &[("listener", "chain"), ("result", "refused")]
        ) >= 1.0
    );
}
