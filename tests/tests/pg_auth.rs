//! Authentication passes through danxia unchanged: cleartext `password`,
//! `md5` and `scram-sha-256` (without channel binding) log in with the right
//! password and fail with the server's own error (SQLSTATE 28P01) with a wrong
//! one, for psql, psycopg2 and a raw protocol client
//! (`tests/clients/auth_check.py`). danxia audits `session_start` for the good
//! logins and `auth_failure` for the bad ones, and never writes a password to
//! its audit files, its log or its metrics.
//!
//! The shared PostgreSQL on 5432 trusts everyone, so this test starts a
//! throw-away PostgreSQL 15 cluster of its own with a pg_hba.conf that asks
//! each user for a different method. initdb refuses to run as root, so the
//! cluster runs as the `postgres` OS user (`runuser`), in a temporary
//! directory owned by it; a Drop guard stops it even when the test panics.

use std::fs;
use std::process::Command;
use std::time::Duration;

use danxia_e2e::pg_cluster::PgCluster;
use danxia_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);
const DB: &str = "postgres";

/// (user, pg_hba method, password). The passwords are distinctive so that a
/// grep for them cannot match anything else.
const LOGINS: [(&str, &str, &str); 3] = [
    ("pw_user", "password", "Pw-Secret-7f3a91c2"),
    ("md5_user", "md5", "Md5-Secret-0b8e44d7"),
    ("scram_user", "scram-sha-256", "Scram-Secret-5c1d62a9"),
];

/// Failed logins per user through danxia: auth_check.py makes two (raw
/// protocol and psycopg2), this file one more with psql.
const FAILURES_PER_USER: usize = 3;
/// Successful logins per user through danxia: raw, psycopg2 and psql.
const SESSIONS_PER_USER: usize = 3;

/// The private cluster: each of LOGINS asks its method, every other user
/// (postgres, for set-up) is trusted; connections logged.
fn auth_cluster() -> PgCluster {
    let hba: String = LOGINS
        .iter()
        .map(|(user, method, _)| format!("host all {user} 127.0.0.1/32 {method}\n"))
        .collect();
    PgCluster::start("danxia-authpg-", &[], "log_connections = on", &hba)
}

/// psql as `user` with `password` (no ~/.pgpass, no prompt).
fn psql_login(port: u16, user: &str, password: &str) -> Command {
    let mut c = psql(port, user, DB);
    c.args(["-A", "-t", "-c", "select current_user"])
        .env("PGPASSWORD", password)
        .env("PGPASSFILE", "/dev/null");
    c
}

/// psql's connection error with the port number taken out, so that the
/// direct and the proxied message compare equal.
fn without_port(stderr: &[u8], port: u16) -> String {
    String::from_utf8_lossy(stderr).replace(&format!("port {port} "), "port <P> ")
}

fn show(events: &[&Value]) -> String {
    events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn password_md5_scram_through_danxia() {
    let cluster = auth_cluster();
    let port = cluster.port;
    // Roles; md5_user's password must be stored as md5 for the md5 method
    // to be used (an md5 line with a SCRAM secret falls back to SCRAM).
    let (pw, md5, scram) = (LOGINS[0], LOGINS[1], LOGINS[2]);
    run_ok(psql(port, "postgres", DB).args([
        "-c",
        &format!("create role {} login password '{}'", pw.0, pw.2),
        "-c",
        &format!("create role {} login password '{}'", scram.0, scram.2),
        "-c",
        &format!(
            "set password_encryption = 'md5'; create role {} login password '{}'",
            md5.0, md5.2
        ),
    ]));
    let stored = run_ok(psql(port, "postgres", DB).args([
        "-A",
        "-t",
        "-c",
        "select rolname || ':' || left(rolpassword, 6) from pg_authid where rolname like '%\\_user' order by 1",
    ]));
    assert!(
        stored.contains("md5_user:md5"),
        "md5_user's password is not stored as md5: {stored}"
    );
    assert!(
        stored.contains("scram_user:SCRAM-"),
        "scram_user's password: {stored}"
    );

    let mut d = Danxia::start_with(Options {
        backend: format!("127.0.0.1:{port}"),
        ..Options::default()
    });

    // Raw protocol and psycopg2, each compared with the same login direct.
    let mut check = python();
    check
        .arg(workspace_root().join("tests/clients/auth_check.py"))
        .arg("--direct-port")
        .arg(port.to_string())
        .arg("--proxy-port")
        .arg(d.pg_port.to_string())
        .arg("--db")
        .arg(DB);
    for (user, method, password) in LOGINS {
        check
            .arg("--login")
            .arg(format!("{user}:{method}:{password}"));
    }
    let out = run(&mut check);
    assert!(
        out.status.success(),
        "auth_check.py failed ({}):\n{}\n{}\npostgres log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        cluster.log()
    );

    // psql (default sslmode=prefer: danxia answers the SSLRequest with 'N').
    for (user, _method, password) in LOGINS {
        let good = run_ok(&mut psql_login(d.pg_port, user, password));
        assert_eq!(good.trim(), user, "psql as {user} through danxia");

        let wrong = format!("{password}-wrong");
        let proxied = run(&mut psql_login(d.pg_port, user, &wrong));
        let direct = run(&mut psql_login(port, user, &wrong));
        assert_eq!(
            proxied.status.code(),
            Some(2),
            "psql with a wrong password for {user}"
        );
        let msg = without_port(&proxied.stderr, d.pg_port);
        assert!(
            msg.contains(&format!(
                "FATAL:  password authentication failed for user \"{user}\""
            )),
            "psql error for {user}: {msg}"
        );
        assert_eq!(
            msg,
            without_port(&direct.stderr, port),
            "psql error differs from direct for {user}"
        );
    }

    // The postgres superuser is trusted by pg_hba: no password needed.
    let who = run_ok(
        d.psql("postgres", DB)
            .args(["-A", "-t", "-c", "select current_user"]),
    );
    assert_eq!(who.trim(), "postgres");

    // A password typed into a statement through danxia reaches the server
    // as typed (the role still logs in with it, checked direct so the
    // session counts below stay exact) and the audit shows it redacted.
    for (_, _, password) in LOGINS {
        danxia_e2e::artifacts::register_secret(password);
    }
    run_ok(d.psql("postgres", DB).args([
        "-c",
        &format!("alter role {} with password '{}'", pw.0, pw.2),
    ]));
    assert_eq!(run_ok(&mut psql_login(port, pw.0, pw.2)).trim(), pw.0);
    let is_alter = |e: &Value| {
        e["kind"] == "statement"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.starts_with("alter role"))
    };
    let events = d.wait_audit(WAIT, is_alter);
    let alter = events.iter().find(|e| is_alter(e)).expect("waited for it");
    assert_eq!(
        alter["statement"],
        format!("alter role {} with password '******'", pw.0),
        "the audited statement hides the password: {alter}"
    );

    // Channel binding needs TLS, and danxia does not terminate TLS (yet): a
    // client that requires it refuses to authenticate, with libpq's message.
    let cb = run(psql_login(d.pg_port, scram.0, scram.2).env("PGCHANNELBINDING", "require"));
    let cb_err = String::from_utf8_lossy(&cb.stderr);
    assert_eq!(
        cb.status.code(),
        Some(2),
        "channel_binding=require should fail: {cb_err}"
    );
    assert!(
        cb_err.contains("channel binding required, but SSL not in use"),
        "unexpected error for channel_binding=require: {cb_err}"
    );

    // Audit: auth_failure for each wrong password, session_start for each
    // good one, nothing else for these users' failed attempts.
    let total_failures = FAILURES_PER_USER * LOGINS.len();
    d.wait_audit_count(WAIT, total_failures, |e| e["kind"] == "auth_failure");
    d.wait_audit_count(WAIT, SESSIONS_PER_USER * LOGINS.len(), |e| {
        e["kind"] == "session_start" && e["user"].as_str().is_some_and(|u| u.ends_with("_user"))
    });
    let events = d.audit_events();
    for (user, method, _) in LOGINS {
        let failures: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "auth_failure" && e["user"] == user)
            .collect();
        assert_eq!(
            failures.len(),
            FAILURES_PER_USER,
            "auth_failure events for {user} ({method}):\n{}",
            show(&failures)
        );
        for e in &failures {
            assert_eq!(e["sqlstate"], "28P01", "{e}");
            assert_eq!(e["database"], DB, "{e}");
            assert_eq!(e["protocol"], "postgres", "{e}");
            assert!(
                e["error"]
                    .as_str()
                    .is_some_and(|m| m.contains("password authentication failed")),
                "auth_failure error text: {e}"
            );
        }
        let sessions: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "session_start" && e["user"] == user)
            .collect();
        assert_eq!(
            sessions.len(),
            SESSIONS_PER_USER,
            "session_start events for {user} ({method}):\n{}",
            show(&sessions)
        );
    }
    let failures_metric = d.metric("danxia_auth_failures_total", &[("listener", "pg")]);
    assert_eq!(
        failures_metric,
        total_failures as f64,
        "danxia_auth_failures_total\n{}",
        d.metrics()
    );

    // No password (right or wrong: the wrong ones contain the right ones)
    // anywhere in the audit files, the log or the metrics.
    let metrics = d.metrics();
    let status = d.shutdown();
    assert!(
        status.success(),
        "danxia exited with {status}:\n{}",
        d.stderr()
    );
    let log = d.stderr();
    let mut audit_text = String::new();
    let mut files = 0;
    for entry in fs::read_dir(&d.audit_dir).expect("read audit dir") {
        let path = entry.expect("audit dir entry").path();
        audit_text.push_str(&String::from_utf8_lossy(
            &fs::read(&path).expect("read audit file"),
        ));
        files += 1;
    }
    assert!(files > 0, "no audit files in {}", d.audit_dir.display());
    for (user, _, password) in LOGINS {
        assert!(
            !audit_text.contains(password),
            "{user}'s password appears in the audit files"
        );
        assert!(
            !log.contains(password),
            "{user}'s password appears in danxia's log"
        );
        assert!(
            !metrics.contains(password),
            "{user}'s password appears in /metrics"
        );
    }
    let v = d.audit_verify();
    assert!(
        v.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}
