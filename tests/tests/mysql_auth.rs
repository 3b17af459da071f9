//! Authentication through danxia's `mysql` listener: the exchange is
//! relayed packet by packet, so every plugin the client and server agree on
//! works without danxia knowing a password. Checked here with the plugins a
//! MariaDB 10.11 server has: `mysql_native_password` (an account with a
//! password) and MariaDB's `ed25519` (installed idempotently from the
//! server's own plugin directory), each with the right and a wrong
//! password, the wrong one answered exactly as the server answers it and
//! audited as an `auth_failure` with the server's error number.

use std::time::Duration;

use danxia_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// Creates `user`@`%`/`localhost` authenticated by `via` (an `IDENTIFIED …`
/// clause), allowed to read `test`.
fn ensure_user(user: &str, via: &str) {
    for host in ["%", "localhost", "127.0.0.1"] {
        mariadb_exec(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'{host}' {via}; \
             GRANT SELECT ON test.* TO '{user}'@'{host}'"
        ));
    }
}

fn login(port: u16, user: &str, password: &str) -> std::process::Output {
    run(mariadb(port, user, Some(password), "test")
        .arg("-e")
        .arg("select current_user()"))
}

fn check_plugin(d: &Danxia, user: &str, password: &str) {
    let direct = login(MYSQL_DIRECT_PORT, user, password);
    assert!(
        direct.status.success(),
        "direct login of {user}: {direct:?}"
    );
    let through = login(d.mysql_port, user, password);
    assert!(
        through.status.success(),
        "{user} through danxia: {through:?}\n{}",
        d.stderr()
    );
    assert_eq!(
        String::from_utf8_lossy(&through.stdout),
        String::from_utf8_lossy(&direct.stdout),
        "the session is the same account"
    );
    d.wait_audit(WAIT, |e| {
        e["kind"] == "session_start" && e["user"] == user && e["protocol"] == "mysql"
    });

    let direct_bad = login(MYSQL_DIRECT_PORT, user, "wrong-password");
    let through_bad = login(d.mysql_port, user, "wrong-password");
    assert!(!through_bad.status.success(), "a wrong password must fail");
    let msg = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        msg(&direct_bad).contains("ERROR 1045") && msg(&through_bad).contains("ERROR 1045"),
        "the server's own refusal reaches the client:\ndirect: {}\nthrough: {}",
        msg(&direct_bad),
        msg(&through_bad)
    );
    let events = d.wait_audit(WAIT, |e| e["kind"] == "auth_failure" && e["user"] == user);
    let failure: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "auth_failure" && e["user"] == user)
        .collect();
    assert_eq!(failure.len(), 1, "{failure:?}");
    assert_eq!(failure[0]["error_code"], 1045, "{}", failure[0]);
    assert_eq!(failure[0]["sqlstate"], "28000", "{}", failure[0]);
}

#[test]
fn mysql_native_password_and_ed25519_logins_relay_and_failures_are_audited() {
    require_mariadb();
    ensure_user(
        "dx_native",
        "IDENTIFIED VIA mysql_native_password USING PASSWORD('native-pw')",
    );
    // The plugin ships with the server package; installing it twice is an
    // error the test does not care about.
    let _ = run(mariadb_direct("root", None, "test")
        .arg("-e")
        .arg("INSTALL SONAME 'auth_ed25519'"));
    ensure_user("dx_ed", "IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw')");
    let d = Danxia::start_with(Options {
        mysql: true,
        ..Options::default_pack()
    });
    check_plugin(&d, "dx_native", "native-pw");
    check_plugin(&d, "dx_ed", "ed-pw");
    let failures = d.metric("danxia_auth_failures_total", &[("listener", "mysql")]);
    assert_eq!(failures, 2.0, "one per wrong password");

    // A password in a statement sent through danxia is hidden in the audit
    // (the statement itself reaches the server: the login still works).
    danxia_e2e::artifacts::register_secret("native-pw");
    run_ok(
        d.mariadb("root", None, "test")
            .arg("-e")
            .arg("SET PASSWORD FOR 'dx_native'@'%' = PASSWORD('native-pw')"),
    );
    let is_set = |e: &serde_json::Value| {
        e["kind"] == "statement"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.starts_with("SET PASSWORD"))
    };
    let events = d.wait_audit(WAIT, is_set);
    let set = events.iter().find(|e| is_set(e)).expect("waited for it");
    assert_eq!(
        set["statement"], "SET PASSWORD FOR 'dx_native'@'%' = PASSWORD('******')",
        "{set}"
    );
    assert!(login(d.mysql_port, "dx_native", "native-pw")
        .status
        .success());
    assert!(d.audit_verify().status.success());
}
