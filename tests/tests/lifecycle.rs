//! The danxia process as an operator meets it: graceful shutdown on SIGTERM
//! (running statements finish, the audit log is complete and verifiable,
//! exit 0), configuration errors (exit 2 naming the key), `--version` and
//! `--help`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use danxia_e2e::wire::{self, RawSession};
use danxia_e2e::*;

const USER: &str = "postgres";
const DB: &str = "test";

/// Polls PostgreSQL until a backend of application `app` is running a
/// statement containing `needle`.
fn wait_running(app: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let q = format!(
        "select count(*) from pg_stat_activity where application_name = '{app}' \
         and state = 'active' and query like '%{needle}%'"
    );
    loop {
        let out = run_ok(psql_direct(USER, DB).args(["-A", "-t", "-c", &q]));
        if out.trim() != "0" {
            return;
        }
        if Instant::now() > deadline {
            panic!("no running statement {needle:?} of application {app} after 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new connection after SIGTERM is refused: either the listener is closed,
/// or the startup is answered with an error / a close — never left hanging.
fn assert_refused(port: u16) {
    let mut s = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Err(_) => return,
        Ok(s) => s,
    };
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    if s.write_all(&wire::startup(USER, DB, &[])).is_err() {
        return;
    }
    match wire::read_msg(&mut s) {
        Ok(m) if m.tag == b'E' => {}
        Ok(m) => panic!(
            "a new session after SIGTERM got {:?} instead of a refusal",
            m.tag_char()
        ),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            panic!("a connection after SIGTERM was accepted and left hanging")
        }
        Err(_) => {}
    }
}

#[test]
fn sigterm_lets_running_statements_finish() {
    require_postgres();
    let mut d = Danxia::start_with(Options {
        shutdown_grace: Some("20s".into()),
        ..Options::default()
    });
    // An idle authenticated session must not hold the shutdown up.
    let mut idle = RawSession::connect(d.pg_port, USER, DB).expect("idle session");
    let msgs = idle.simple_query("select 1").expect("query");
    assert_eq!(wire::tags(&msgs), "TDCZ");

    let client = d
        .psql(USER, DB)
        .env("PGAPPNAME", "e2e_sigterm")
        .args(["-A", "-t", "-c", "select pg_sleep(2), 'finished'"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    wait_running("e2e_sigterm", "pg_sleep(2)");
    let signalled = Instant::now();
    d.signal(libc::SIGTERM);

    // New connections are refused while draining.
    std::thread::sleep(Duration::from_millis(300));
    assert_refused(d.pg_port);

    let out = client.wait_with_output().expect("psql output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the running statement must complete during the grace period: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "|finished");

    let status = d
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("danxia still running 15 s after SIGTERM:\n{}", d.stderr()));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM; log:\n{}",
        d.stderr()
    );
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "danxia waited {took:?}: it must exit once running statements are done, not wait out the grace period for idle sessions"
    );
    // The idle session was closed.
    assert!(
        wire::wait_closed(&mut idle.stream, Duration::from_secs(2)),
        "idle session still open after exit"
    );

    let events = d.audit_events();
    let sleep = events
        .iter()
        .find(|e| {
            e["kind"] == "statement"
                && e["statement"]
                    .as_str()
                    .is_some_and(|s| s.contains("pg_sleep(2)"))
        })
        .unwrap_or_else(|| panic!("the pg_sleep statement is not in the audit log: {events:?}"));
    assert_eq!(sleep["outcome"], "ok", "{sleep}");
    assert!(
        sleep["duration_us"].as_u64().unwrap_or(0) >= 1_900_000,
        "{sleep}"
    );
    assert_eq!(
        of_kind(&events, "session_end").len(),
        2,
        "both sessions ended in the log: {events:?}"
    );
    let v = d.audit_verify();
    assert_eq!(
        v.status.code(),
        Some(0),
        "audit verify after shutdown:\n{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn sigterm_cuts_statements_that_outlive_the_grace_period() {
    require_postgres();
    let mut d = Danxia::start_with(Options {
        shutdown_grace: Some("1s".into()),
        ..Options::default()
    });
    let mut s = RawSession::connect(d.pg_port, USER, DB).expect("session");
    s.send(&wire::query("select pg_sleep(20)")).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "danxia still running 10 s after SIGTERM with a 1 s grace:\n{}",
            d.stderr()
        )
    });
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(wire::wait_closed(&mut s.stream, Duration::from_secs(2)));
    let events = d.audit_events();
    let ev = events
        .iter()
        .find(|e| e["kind"] == "statement" && e["statement"] == "select pg_sleep(20)")
        .unwrap_or_else(|| panic!("the cut statement is not in the audit log: {events:?}"));
    assert_eq!(ev["outcome"], "aborted", "{ev}");
    let v = d.audit_verify();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
    // The backend does not go on running the cut statement for nobody.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = run_ok(psql_direct(USER, DB).args([
            "-A",
            "-t",
            "-c",
            "select count(*) from pg_stat_activity \
             where query = 'select pg_sleep(20)' and state = 'active'",
        ]));
        if out.trim() == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backend still runs the cut pg_sleep(20) 5 s after danxia exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn config_errors_exit_2_naming_the_key() {
    let audit = std::env::temp_dir().join("danxia-e2e-never-created");
    let base = Options::default();

    // An unknown key in a table.
    let mut o = base.clone();
    o.limits.push(("max_mesage_bytes".into(), "5".into()));
    let (code, stderr, path) =
        run_config(&o.to_toml(free_port(), free_port(), free_port(), &audit));
    assert_eq!(code, Some(2), "unknown key:\n{stderr}");
    assert!(
        stderr.contains("max_mesage_bytes"),
        "stderr must name the unknown key:\n{stderr}"
    );
    assert!(
        stderr.contains(&*path.to_string_lossy()) || stderr.contains("bad.toml"),
        "stderr must name the file:\n{stderr}"
    );

    // An unknown top-level table.
    let mut o = base.clone();
    o.extra_toml = "[polcy]\ndir = \"x\"\n".into();
    let (code, stderr, _) = run_config(&o.to_toml(free_port(), free_port(), free_port(), &audit));
    assert_eq!(code, Some(2), "unknown table:\n{stderr}");
    assert!(stderr.contains("polcy"), "{stderr}");

    // A listen address that is not an address.
    let port = free_port();
    let text = base
        .to_toml(port, free_port(), free_port(), &audit)
        .replace(
            &format!("listen = \"127.0.0.1:{port}\""),
            "listen = \"127.0.0.1:99999\"",
        );
    assert!(text.contains("127.0.0.1:99999"));
    let (code, stderr, _) = run_config(&text);
    assert_eq!(code, Some(2), "bad address:\n{stderr}");
    assert!(
        stderr.contains("listen"),
        "stderr must name the key:\n{stderr}"
    );

    // A value of the wrong kind.
    let mut o = base.clone();
    o.statement_text = Some("everything".into());
    let (code, stderr, _) = run_config(&o.to_toml(free_port(), free_port(), free_port(), &audit));
    assert_eq!(code, Some(2), "bad enum value:\n{stderr}");
    assert!(
        stderr.contains("statement_text") || stderr.contains("everything"),
        "{stderr}"
    );

    // A missing file.
    let out = run(Command::new(bin_path()).args(["run", "--config", "/nonexistent/danxia.toml"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "missing config file:\n{stderr}");
    assert!(stderr.contains("/nonexistent/danxia.toml"), "{stderr}");
    assert!(
        !audit.exists(),
        "a rejected config must not create anything"
    );
}

#[test]
fn version_and_help() {
    let out = run_ok(Command::new(bin_path()).arg("--version"));
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "--version: {out}");
    assert!(out.contains("danxia"), "--version: {out}");
    let help = run_ok(Command::new(bin_path()).arg("--help"));
    assert!(help.contains("run"), "--help lists run:\n{help}");
    assert!(help.contains("audit"), "--help lists audit:\n{help}");
    let help = run_ok(Command::new(bin_path()).args(["audit", "--help"]));
    assert!(
        help.contains("verify"),
        "audit --help lists verify:\n{help}"
    );
    // An unknown subcommand is a usage error, not a start.
    let out = run(Command::new(bin_path()).arg("no-such-command"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
