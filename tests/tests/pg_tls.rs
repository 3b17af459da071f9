//! TLS on the PostgreSQL listener, end to end: psql with `sslmode=require`
//! and `verify-full` (by name and by IP), a wrong CA, plaintext refused or
//! allowed by `mode`, client certificates as policy identities (real
//! statements refused with 42501, `tls_subject` in the audit), a missing
//! client certificate refused at the handshake, certificate reload without
//! restart (and a broken replacement kept out), TLS from danxia to the real
//! PostgreSQL (`ssl = on` with Debian's snakeoil certificate) verified with
//! `verify-full`, a wrong server name refused clearly, and the whole
//! psycopg2 suite (COPY, cancel, LISTEN/NOTIFY, a 10 MB value) over TLS on
//! both hops.
//!
//! Certificates are made per test by `danxia_e2e::tls::TestPki` (rcgen);
//! `openssl s_client -starttls postgres` shows which certificate danxia
//! serves.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use danxia_e2e::pg_cluster::PgCluster;
use danxia_e2e::tls::{CertFiles, TestPki};
use danxia_e2e::*;
use serde_json::Value;

const USER: &str = "postgres";
const DB: &str = "test";
const WAIT: Duration = Duration::from_secs(10);
/// Debian's self-signed certificate the local PostgreSQL serves.
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// psql through danxia with extra libpq keywords (`sslmode=…`); `host`
/// may be overridden in `extra`.
fn psql_tls(d: &Danxia, extra: &str) -> Command {
    let mut c = Command::new("psql");
    c.arg("-X")
        .arg("-w")
        .args(["-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-At"])
        .arg(format!(
            "host=127.0.0.1 port={} user={USER} dbname={DB} {extra}",
            d.pg_port
        ))
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGSSLMODE")
        .env_remove("PGSSLROOTCERT")
        .env_remove("PGSSLCERT")
        .env_remove("PGSSLKEY")
        // No ~/.postgresql/postgresql.crt is picked up by accident.
        .env("HOME", "/nonexistent");
    c
}

/// Runs `sql` with psql through danxia; (success, stdout, stderr).
fn try_sql(d: &Danxia, extra: &str, sql: &str) -> (bool, String, String) {
    let out = run(psql_tls(d, extra).arg("-c").arg(sql));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sql_ok(d: &Danxia, extra: &str, sql: &str) -> String {
    let (ok, out, err) = try_sql(d, extra, sql);
    assert!(
        ok,
        "psql [{extra}] {sql:?} failed:\n{err}\ndanxia:\n{}",
        d.stderr()
    );
    out
}

fn verify_full(pki: &TestPki, host: &str) -> String {
    format!(
        "host={host} sslmode=verify-full sslrootcert={}",
        pki.ca_cert.display()
    )
}

fn with_cert(pki: &TestPki, c: &CertFiles) -> String {
    format!(
        "{} sslcert={} sslkey={}",
        verify_full(pki, "localhost"),
        c.cert.display(),
        c.key.display()
    )
}

fn start_tls(tls_body: String, extra_toml: String) -> Danxia {
    Danxia::start_with(Options {
        pg_tls: Some(tls_body),
        extra_toml,
        ..Options::default()
    })
}

fn session_starts(d: &Danxia) -> Vec<Value> {
    d.audit_events()
        .into_iter()
        .filter(|e| e["kind"] == "session_start")
        .collect()
}

#[test]
fn psql_sslmodes_against_a_tls_listener() {
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let other = TestPki::new(dir.path(), "other");
    let server = pki.server("server", "danxia-test");
    let d = start_tls(pki.listener_tls(&server, ""), String::new());

    // Encrypted; the session says so on the way through.
    assert_eq!(sql_ok(&d, "sslmode=require", "select 41 + 1"), "42");
    // Verified by name and by IP address (both in the certificate's SANs).
    assert_eq!(
        sql_ok(&d, &verify_full(&pki, "localhost"), "select 'by name'"),
        "by name"
    );
    assert_eq!(
        sql_ok(&d, &verify_full(&pki, "127.0.0.1"), "select 'by ip'"),
        "by ip"
    );
    // A client trusting another CA refuses danxia's certificate.
    let (ok, _, err) = try_sql(&d, &verify_full(&other, "localhost"), "select 1");
    assert!(!ok, "verify-full against the wrong CA must fail");
    assert!(err.contains("certificate verify failed"), "{err}");
    // Plaintext is refused by the default mode = "required".
    let (ok, _, err) = try_sql(&d, "sslmode=disable", "select 1");
    assert!(!ok);
    // (psql does not print the SQLSTATE of a connection error; the audit
    // record below has it.)
    assert!(
        err.contains("FATAL:  this listener requires TLS: connect with sslmode=require"),
        "{err}"
    );
    // sslmode=prefer (libpq's default) gets TLS.
    assert_eq!(
        sql_ok(&d, "sslmode=prefer", "select 'preferred'"),
        "preferred"
    );

    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["sqlstate"] == "28000"
    });
    let refused: Vec<&Value> = events.iter().filter(|e| e["sqlstate"] == "28000").collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].get("tls").is_none(), "{}", refused[0]);
    assert_eq!(refused[0]["outcome"], "refused", "{}", refused[0]);
    let starts = session_starts(&d);
    assert_eq!(starts.len(), 4, "{starts:?}");
    for s in &starts {
        assert_eq!(s["tls"], "TLSv1.3", "{s}");
        assert!(s.get("tls_subject").is_none(), "no client certificate: {s}");
    }
    let statements: Vec<&Value> = events.iter().filter(|e| e["kind"] == "statement").collect();
    assert!(
        statements.iter().all(|e| e["tls"] == "TLSv1.3"),
        "{statements:?}"
    );

    assert_eq!(
        d.metric(
            "danxia_tls_handshakes_total",
            &[("listener", "pg"), ("result", "ok")]
        ),
        4.0
    );
    assert_eq!(
        d.metric("danxia_tls_handshakes_total", &[("result", "failed")]),
        1.0,
        "the wrong-CA client aborts its handshake"
    );
    assert_eq!(
        d.metric("danxia_tls_plaintext_refused_total", &[("listener", "pg")]),
        1.0
    );
    let expiry = d.metric(
        "danxia_tls_certificate_expiry_timestamp_seconds",
        &[("listener", "pg"), ("cert", "server")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    assert!(expiry > now + 86400.0, "expiry gauge {expiry} vs now {now}");
}

#[test]
fn optional_mode_serves_plaintext_too() {
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let server = pki.server("server", "danxia-test");
    let d = start_tls(
        pki.listener_tls(&server, "mode = \"optional\"\n"),
        String::new(),
    );
    assert_eq!(sql_ok(&d, "sslmode=disable", "select 'plain'"), "plain");
    assert_eq!(sql_ok(&d, "sslmode=require", "select 'tls'"), "tls");
    d.wait_audit_count(WAIT, 2, |e| e["kind"] == "session_start");
    let starts = session_starts(&d);
    let tls: Vec<Option<&str>> = starts.iter().map(|s| s["tls"].as_str()).collect();
    assert_eq!(tls, [None, Some("TLSv1.3")], "{starts:?}");
}

/// Rules keyed on the client certificate's subject.
const CERT_POLICY: &str = r#"
[policy]
default_action = "allow"

[[rule]]
id = "deny-untrusted-apps"
description = "Only the Health organisation's app1 certificate may run statements"
action = "deny"
tls_subjects = ["!CN=app1,O=Health"]
message = "this client certificate may not query"
"#;

#[test]
fn client_certificates_are_policy_identities() {
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let server = pki.server("server", "danxia-test");
    let app1 = pki.client("app1", "app1", Some("Health"));
    let intruder = pki.client("intruder", "intruder", Some("Health"));
    let stranger = TestPki::new(dir.path(), "stranger").client("app1-fake", "app1", Some("Health"));
    let policy = dir.path().join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    std::fs::write(policy.join("certs.toml"), CERT_POLICY).unwrap();
    let d = start_tls(
        format!("{}{}", pki.listener_tls(&server, ""), pki.client_ca_line()),
        format!(
            "[policy]\ndir = {}\nmode = \"enforce\"\nallowlist = {}\n",
            toml_str(&policy.display().to_string()),
            toml_str(&dir.path().join("allowlist.toml").display().to_string())
        ),
    );

    // app1 runs real statements.
    assert_eq!(
        sql_ok(
            &d,
            &with_cert(&pki, &app1),
            "select count(*) from pg_class where relname = 'pg_class'"
        ),
        "1"
    );
    // The intruder's statements are refused by the rule, with 42501.
    let (ok, _, err) = try_sql(&d, &with_cert(&pki, &intruder), "select 1");
    assert!(!ok, "the intruder's statement must be refused");
    assert!(
        err.contains("42501") && err.contains("this client certificate may not query"),
        "{err}"
    );
    // No certificate (client_auth defaults to required with client_ca),
    // and a certificate from another CA: refused at the handshake.
    for (what, extra) in [
        ("no certificate", verify_full(&pki, "localhost")),
        ("certificate of another CA", with_cert(&pki, &stranger)),
    ] {
        let (ok, _, err) = try_sql(&d, &extra, "select 1");
        assert!(!ok, "{what}: must be refused");
        assert!(
            err.contains("SSL") || err.contains("certificate"),
            "{what}: {err}"
        );
    }

    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "statement" && e["verdict"] == "denied"
    });
    let denied: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "statement" && e["verdict"] == "denied")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(
        denied[0]["tls_subject"], "CN=intruder,O=Health",
        "{}",
        denied[0]
    );
    assert_eq!(denied[0]["rule"], "deny-untrusted-apps", "{}", denied[0]);
    assert_eq!(denied[0]["sqlstate"], "42501", "{}", denied[0]);
    let allowed: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "statement" && e["verdict"] == "allowed")
        .collect();
    assert_eq!(allowed.len(), 1, "{allowed:?}");
    assert_eq!(
        allowed[0]["tls_subject"], "CN=app1,O=Health",
        "{}",
        allowed[0]
    );
    let starts = session_starts(&d);
    let subjects: Vec<&str> = starts
        .iter()
        .filter_map(|s| s["tls_subject"].as_str())
        .collect();
    assert_eq!(subjects, ["CN=app1,O=Health", "CN=intruder,O=Health"]);
    // Two handshakes failed (no certificate, unknown issuer); both are
    // audited as protocol errors.
    assert_eq!(
        d.metric("danxia_tls_handshakes_total", &[("result", "failed")]),
        2.0
    );
    let tls_errors = events
        .iter()
        .filter(|e| {
            e["kind"] == "protocol_error"
                && e["error"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("client TLS"))
        })
        .count();
    assert_eq!(tls_errors, 2, "{events:?}");
}

/// The subject of the certificate danxia serves now, as OpenSSL prints it.
fn served_subject(port: u16) -> String {
    let out = run(Command::new("openssl")
        .args(["s_client", "-starttls", "postgres", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(std::process::Stdio::null()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or_else(|| {
            panic!(
                "no subject in openssl s_client output:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .replace(' ', "")
}

fn wait_subject(port: u16, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = served_subject(port);
        if s == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still serving {s}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Replaces `target` by `source`'s files the way certificate managers do:
/// write beside, rename into place, key first.
fn replace_files(source: &CertFiles, target: &CertFiles) {
    for (from, to) in [(&source.key, &target.key), (&source.cert, &target.cert)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
}

#[test]
fn certificates_reload_without_restart() {
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let live = pki.server("live", "first");
    let d = start_tls(pki.listener_tls(&live, ""), String::new());
    let pid = d.pid();
    assert_eq!(served_subject(d.pg_port), "CN=first");

    let second = pki.server("second", "second");
    replace_files(&second, &live);
    wait_subject(d.pg_port, "CN=second");
    assert_eq!(
        sql_ok(&d, &verify_full(&pki, "localhost"), "select 'after reload'"),
        "after reload"
    );
    d.wait_metric(WAIT, "danxia_tls_reloads_total", &[("result", "ok")], |v| {
        v >= 1.0
    });

    // A broken replacement is refused; the second certificate stays.
    std::fs::write(&live.cert, "-----BEGIN CERTIFICATE-----\ntruncated\n").unwrap();
    d.wait_metric(
        WAIT,
        "danxia_tls_reloads_total",
        &[("result", "failed")],
        |v| v >= 1.0,
    );
    assert_eq!(served_subject(d.pg_port), "CN=second");
    assert_eq!(
        sql_ok(
            &d,
            &verify_full(&pki, "localhost"),
            "select 'still serving'"
        ),
        "still serving"
    );
    assert!(
        d.stderr()
            .contains("TLS certificate not reloaded; the previous one stays in force"),
        "{}",
        d.stderr()
    );
    // An expired certificate loads (with a warning) so that it can be seen
    // and replaced; clients refuse it.
    let expired = pki.expired_server("expired");
    replace_files(&expired, &live);
    wait_subject(d.pg_port, "CN=expired");
    let (ok, _, err) = try_sql(&d, &verify_full(&pki, "localhost"), "select 1");
    assert!(!ok && err.contains("certificate"), "{err}");
    assert_eq!(d.pid(), pid, "no restart");
}

/// The CN of the snakeoil certificate (the host name when it was made).
fn snakeoil_cn() -> String {
    let out = run(Command::new("openssl").args([
        "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", SNAKEOIL,
    ]));
    assert!(
        out.status.success(),
        "cannot read {SNAKEOIL} (PostgreSQL's ssl_cert_file): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim()
        .strip_prefix("subject=")
        .and_then(|s| s.split(',').find_map(|p| p.strip_prefix("CN=")))
        .unwrap_or_else(|| panic!("no CN in {s}"))
        .to_string()
}

fn backend_tls(mode: &str, ca: Option<&Path>, server_name: Option<&str>) -> String {
    let mut s = format!("mode = {}\n", toml_str(mode));
    if let Some(ca) = ca {
        s.push_str(&format!("ca = {}\n", toml_str(&ca.display().to_string())));
    }
    if let Some(n) = server_name {
        s.push_str(&format!("server_name = {}\n", toml_str(n)));
    }
    s
}

#[test]
fn backend_tls_verify_full_to_the_real_server() {
    require_postgres();
    let cn = snakeoil_cn();
    let d = Danxia::start_with(Options {
        pg_backend_tls: Some(backend_tls(
            "verify-full",
            Some(Path::new(SNAKEOIL)),
            Some(&cn),
        )),
        ..Options::default()
    });
    // The server side of danxia's connection is encrypted.
    assert_eq!(
        run_ok(d.psql(USER, DB).args([
            "-At",
            "-c",
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
        ]))
        .trim(),
        "t"
    );
    assert_eq!(
        d.metric("danxia_tls_backend_handshakes_total", &[("result", "ok")]),
        1.0
    );

    // A name the certificate does not hold: the client is told, clearly.
    let wrong = Danxia::start_with(Options {
        pg_backend_tls: Some(backend_tls(
            "verify-full",
            Some(Path::new(SNAKEOIL)),
            Some("db.wrong.invalid"),
        )),
        ..Options::default()
    });
    let out = run(wrong.psql(USER, DB).args(["-c", "select 1"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot establish TLS to the database server of listener \"pg\"")
            && err.contains("not valid for name"),
        "{err}"
    );
    assert_eq!(
        wrong.metric(
            "danxia_tls_backend_handshakes_total",
            &[("result", "failed")]
        ),
        1.0
    );
    // verify-ca ignores the name; require checks nothing but encrypts.
    for mode in ["verify-ca", "require"] {
        let d = Danxia::start_with(Options {
            pg_backend_tls: Some(backend_tls(
                mode,
                (mode == "verify-ca").then_some(Path::new(SNAKEOIL)),
                Some("db.wrong.invalid"),
            )),
            ..Options::default()
        });
        assert_eq!(
            run_ok(d.psql(USER, DB).args([
                "-At",
                "-c",
                "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
            ]))
            .trim(),
            "t",
            "{mode}"
        );
    }
}

/// psycopg2's suite (transactions, COPY both ways, cancel, LISTEN/NOTIFY,
/// a 10 MB value, …) with TLS on both hops, the client verifying danxia.
#[test]
fn psycopg2_suite_over_tls_on_both_hops() {
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let server = pki.server("server", "danxia-test");
    let d = Danxia::start_with(Options {
        pg_tls: Some(pki.listener_tls(&server, "")),
        pg_backend_tls: Some(backend_tls(
            "verify-full",
            Some(Path::new(SNAKEOIL)),
            Some(&snakeoil_cn()),
        )),
        ..Options::default()
    });
    let dsn = format!("{} {}", d.pg_dsn(USER, DB), verify_full(&pki, "localhost"));
    let out = run(python()
        .arg(workspace_root().join("tests/clients/psycopg2_suite.py"))
        .arg(&dsn)
        .arg("--direct")
        .arg(format!(
            "host=127.0.0.1 port={DIRECT_PORT} user={USER} dbname={DB}"
        )));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("17 checks, 17 passed, 0 failed"),
        "psycopg2 suite over TLS:\n{stdout}\n{}\ndanxia:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.stderr()
    );
    // The cancel went through (in plaintext to the server, which accepts it).
    assert!(d.metric("danxia_cancel_requests_total", &[("result", "forwarded")]) >= 1.0);
    let starts = session_starts(&d);
    assert!(
        !starts.is_empty() && starts.iter().all(|s| s["tls"] == "TLSv1.3"),
        "{starts:?}"
    );
}

// ---------------------------------------------------------------------------
// SCRAM channel binding through TLS termination, against a private
// PostgreSQL 15 cluster with `ssl = on` and a SCRAM user (the shared server
// trusts everyone). Run as the `postgres` OS user, as in pg_auth.rs.

const SCRAM_USER: &str = "scram_tls_user";
const SCRAM_PASSWORD: &str = "Scram-Tls-Secret-81d0c3";

/// A private cluster serving `cert` (copied, owned by postgres) and asking
/// SCRAM_USER for scram-sha-256.
fn scram_cluster(cert: &CertFiles) -> PgCluster {
    let c = PgCluster::start(
        "danxia-tlspg-",
        &[(&cert.cert, "server.pem"), (&cert.key, "server.key")],
        "ssl = on\nssl_cert_file = '{dir}/server.pem'\nssl_key_file = '{dir}/server.key'",
        &format!("host all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n"),
    );
    run_ok(psql(c.port, "postgres", "postgres").args([
        "-c",
        &format!("create role {SCRAM_USER} login password '{SCRAM_PASSWORD}'"),
    ]));
    c
}

/// psql as SCRAM_USER on `port` with libpq keywords `extra`; (ok, stderr).
fn scram_login(port: u16, extra: &str) -> (bool, String) {
    let out = run(Command::new("psql")
        .args(["-X", "-w", "-At", "-c", "select current_user"])
        .arg(format!(
            "host=127.0.0.1 port={port} user={SCRAM_USER} dbname=postgres {extra}"
        ))
        .env("PGPASSWORD", SCRAM_PASSWORD)
        .env("PGPASSFILE", "/dev/null")
        .env("PGCONNECT_TIMEOUT", "10")
        .env("HOME", "/nonexistent")
        .env_remove("PGSSLMODE")
        .env_remove("PGCHANNELBINDING"));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (
        out.status.success() && stdout == SCRAM_USER,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn scram_channel_binding_through_tls_termination() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let cluster = scram_cluster(&pki.server("pgserver", "pg-cluster"));
    // Directly, the TLS server offers SCRAM-SHA-256-PLUS and binding works.
    let (ok, err) = scram_login(cluster.port, "sslmode=require channel_binding=require");
    assert!(ok, "direct channel binding: {err}");

    let listener = pki.server("server", "danxia-test");
    let both = Danxia::start_with(Options {
        backend: format!("127.0.0.1:{}", cluster.port),
        pg_tls: Some(pki.listener_tls(&listener, "")),
        pg_backend_tls: Some(backend_tls(
            "verify-full",
            Some(&pki.ca_cert),
            Some("localhost"),
        )),
        ..Options::default()
    });
    // TLS on both hops: the default (prefer) would be rejected by the
    // server as a downgrade; danxia says what to do instead.
    let (ok, err) = scram_login(both.pg_port, "sslmode=require");
    assert!(!ok);
    assert!(
        err.contains("SCRAM channel binding cannot pass through danxia's TLS termination; connect with channel_binding=disable"),
        "{err}"
    );
    let (ok, err) = scram_login(both.pg_port, "sslmode=require channel_binding=disable");
    assert!(
        ok,
        "channel_binding=disable through TLS on both hops: {err}"
    );
    // require: libpq itself refuses, as danxia withdrew the -PLUS offer.
    let (ok, err) = scram_login(both.pg_port, "sslmode=require channel_binding=require");
    assert!(!ok && err.contains("channel binding"), "{err}");
    // The password never reaches the audit files or the log.
    let audit: String = both.audit_events().iter().map(|e| e.to_string()).collect();
    assert!(!audit.contains(SCRAM_PASSWORD) && !both.stderr().contains(SCRAM_PASSWORD));

    // TLS to danxia only: the server has no TLS on its side, so the client's
    // "could bind" flag is fine and the default works.
    let client_only = Danxia::start_with(Options {
        backend: format!("127.0.0.1:{}", cluster.port),
        pg_tls: Some(pki.listener_tls(&listener, "")),
        ..Options::default()
    });
    let (ok, err) = scram_login(client_only.pg_port, "sslmode=require");
    assert!(ok, "client-side TLS only, channel_binding=prefer: {err}");
    // TLS to the server only: a plaintext client does not bind (flag n).
    let backend_only = Danxia::start_with(Options {
        backend: format!("127.0.0.1:{}", cluster.port),
        pg_backend_tls: Some(backend_tls(
            "verify-full",
            Some(&pki.ca_cert),
            Some("localhost"),
        )),
        ..Options::default()
    });
    let (ok, err) = scram_login(backend_only.pg_port, "sslmode=disable");
    assert!(ok, "server-side TLS only: {err}");
}

/// PostgreSQL 17's `sslnegotiation=direct` (the installed libpq is 15, so a
/// Python `ssl` client plays it): TLS from the first byte with the ALPN
/// protocol `postgresql`, then the StartupMessage; without ALPN the client
/// is told why it is refused.
const DIRECT_TLS_CLIENT: &str = r#"
import socket, ssl, struct, sys
port, ca, alpn = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "alpn"
ctx = ssl.create_default_context(cafile=ca)
if alpn:
    ctx.set_alpn_protocols(["postgresql"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
params = b"user\0postgres\0database\0test\0\0"
s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
buf = b""
while True:
    try:
        d = s.recv(65536)
    except (ssl.SSLError, OSError) as e:
        d = b""
    if not d:
        break
    buf += d
    if b"Z\0\0\0\x05" in buf:
        break
print("alpn=%s ready=%s" % (s.selected_alpn_protocol(), b"Z\0\0\0\x05" in buf))
print(buf.decode("latin-1"))
"#;

#[test]
fn direct_tls_negotiation() {
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let server = pki.server("server", "danxia-test");
    let d = start_tls(pki.listener_tls(&server, ""), String::new());
    let client = |alpn: &str| {
        run_ok(
            python()
                .arg("-c")
                .arg(DIRECT_TLS_CLIENT)
                .arg(d.pg_port.to_string())
                .arg(&pki.ca_cert)
                .arg(alpn),
        )
    };
    let out = client("alpn");
    assert!(out.starts_with("alpn=postgresql ready=True"), "{out}");
    let out = client("none");
    assert!(
        out.starts_with("alpn=None ready=False")
            && out.contains("direct TLS (sslnegotiation=direct) requires the ALPN protocol"),
        "{out}"
    );
    let events = d.wait_audit(WAIT, |e| e["kind"] == "session_start");
    let start = events
        .iter()
        .find(|e| e["kind"] == "session_start")
        .unwrap();
    assert_eq!(start["tls"], "TLSv1.3", "{start}");
}

/// pgbench's TPC-B-like load (prepared statements, 4 clients) over TLS on
/// both hops: every transaction completes and every statement is audited.
#[test]
fn pgbench_over_tls_on_both_hops() {
    require_postgres();
    const BENCH_DB: &str = "danxia_e2e_pgbench_tls";
    const CLIENTS: usize = 4;
    const TXNS: usize = 200;
    run_ok(psql_direct(USER, DB).args([
        "-c",
        &format!("drop database if exists {BENCH_DB} with (force)"),
    ]));
    run_ok(psql_direct(USER, DB).args(["-c", &format!("create database {BENCH_DB}")]));
    run_ok(
        pgbench()
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                USER,
                "-i",
                "-s",
                "1",
                "-q",
                BENCH_DB,
            ])
            .arg("-p")
            .arg(DIRECT_PORT.to_string()),
    );
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let server = pki.server("server", "danxia-test");
    let d = Danxia::start_with(Options {
        pg_tls: Some(pki.listener_tls(&server, "")),
        pg_backend_tls: Some(backend_tls(
            "verify-full",
            Some(Path::new(SNAKEOIL)),
            Some(&snakeoil_cn()),
        )),
        ..Options::default()
    });
    let out = run(pgbench()
        .args(["-h", "localhost", "-U", USER, "-M", "prepared"])
        .args([
            "-c",
            &CLIENTS.to_string(),
            "-j",
            "2",
            "-t",
            &TXNS.to_string(),
        ])
        .arg("-p")
        .arg(d.pg_port.to_string())
        .arg(BENCH_DB)
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &pki.ca_cert)
        .env("PGAPPNAME", "e2e_tls_bench")
        .env("PGCONNECT_TIMEOUT", "10"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pgbench over TLS:\n{text}");
    let want = CLIENTS * TXNS;
    assert!(
        text.contains(&format!(
            "number of transactions actually processed: {want}/{want}"
        )),
        "{text}"
    );
    // BEGIN, 3 UPDATEs, SELECT, INSERT, END per transaction.
    d.wait_audit_count(Duration::from_secs(20), want * 7, |e| {
        e["kind"] == "statement" && e["tls"] == "TLSv1.3" && e["outcome"] == "ok"
    });
    let _ = run(psql_direct(USER, DB).args([
        "-c",
        &format!("drop database if exists {BENCH_DB} with (force)"),
    ]));
}
