//! The admin API end to end, against the real binary: bearer-token
//! authentication on every route but `/healthz` (missing, malformed and
//! wrong tokens refused, counted and audited; a rotated token works without
//! a restart; an unsafe token file stops start-up), live sessions of psql
//! and the mariadb client listed and killed (the client gets its protocol's
//! error, the backend query is gone from the server), recent alerts,
//! quarantine and suspended callers through the API, and every answer of
//! every documented operation validated against docs/admin-openapi.yaml.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use danxia_e2e::*;
use serde_json::{json, Value};

const DB: &str = "test";
const WAIT: Duration = Duration::from_secs(15);
const SCHEMA: &str = "dxadm";
const USER_Q: &str = "dx_adm_q";

const POLICY: &str = r#"
[policy]
default_action = "allow"

[[rule]]
id = "watch-secret"
description = "Reading the secret table raises an alert"
action = "alert"
tables = ["dxadm.secret"]

[[rule]]
id = "honeypot"
description = "Whoever reads the honeypot table is quarantined"
action = "quarantine"
tables = ["dxadm.honey"]
"#;

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn get_json(d: &Danxia, path: &str) -> Value {
    let (code, body) = d.http_get(path);
    assert_eq!(code, 200, "GET {path}: {body}");
    json_of(&body)
}

/// `danxia ARGS --config <the instance's config>` from the instance dir.
fn cli(d: &Danxia, args: &[&str]) -> std::process::Output {
    run(Command::new(bin_path())
        .args(args)
        .arg("--config")
        .arg(&d.config_path)
        .current_dir(d.dir()))
}

fn setup_tables() {
    require_postgres();
    let sql = format!(
        "select pg_advisory_xact_lock(48151625);\n\
         do $$ begin create role {USER_Q} login; exception when duplicate_object then null; end $$;\n\
         drop schema if exists {SCHEMA} cascade; create schema {SCHEMA};\n\
         create table {SCHEMA}.secret (id int); insert into {SCHEMA}.secret values (1);\n\
         create table {SCHEMA}.honey (id int); insert into {SCHEMA}.honey values (1);\n\
         grant usage on schema {SCHEMA} to {USER_Q}; grant select on all tables in schema {SCHEMA} to {USER_Q};\n"
    );
    let out = run(psql_direct("postgres", DB)
        .arg("-1")
        .arg("-q")
        .arg("-c")
        .arg(sql));
    assert!(
        out.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// danxia with the policy above, baselines in memory, a MySQL listener and
/// an HTTP listener (the shipped API pack) in front of the test upstream.
struct Full {
    d: Danxia,
    _up: Upstream,
    _tmp: tempfile::TempDir,
}

fn full() -> Full {
    setup_tables();
    require_mariadb();
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = tmp.path().join("policy");
    std::fs::create_dir_all(&policy).expect("policy dir");
    std::fs::write(policy.join("10.toml"), POLICY).expect("policy");
    let keys = tmp.path().join("keys.toml");
    let out = run(Command::new(bin_path())
        .args(["api", "key", "add", "dept-health", "--keys"])
        .arg(&keys));
    assert!(
        out.status.success(),
        "api key add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let up = Upstream::start(7);
    let s = |p: &Path| toml_str(&p.display().to_string());
    let extra_toml = format!(
        "[policy]\ndir = {}\nallowlist = \"allowlist.toml\"\n\n\
         [behaviour]\nenabled = true\nstore = \"memory\"\n\n\
         [[listener]]\nname = \"api\"\nprotocol = \"http\"\nlisten = \"127.0.0.1:{}\"\n\
         api_policy = {}\n\
         [[listener.upstream]]\nprefix = \"/api/\"\nurl = \"{}\"\n\
         [listener.auth]\napi_key_header = \"x-api-key\"\nkeys_file = {}\n\n\
         [api]\nstore = \"memory\"\n",
        s(&policy),
        free_port(),
        s(&workspace_root().join("policies/packs/api-example")),
        up.url(),
        s(&keys),
    );
    let d = Danxia::start_with(Options {
        extra_toml,
        mysql: true,
        ..Options::default()
    });
    Full {
        d,
        _up: up,
        _tmp: tmp,
    }
}

/// Every (METHOD, path template) of the served description.
fn operations(d: &Danxia) -> Vec<(String, String)> {
    let spec = get_json(d, "/openapi.json");
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                ops.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    assert!(ops.len() >= 20, "{ops:?}");
    ops
}

fn assert_unauthorized(d: &Danxia, method: &str, path: &str, token: Option<&str>) {
    let (code, headers, body) = d.http_request_full(method, path, token);
    assert_eq!(code, 401, "{method} {path} with {token:?}: {body}");
    assert!(
        headers
            .get("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer realm=\"danxia-admin\"")),
        "{method} {path}: {headers:?}"
    );
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/problem+json"),
        "{method} {path}"
    );
    let p = json_of(&body);
    assert_eq!(p["status"], 401, "{body}");
    assert!(p["title"].is_string() && p["detail"].is_string(), "{body}");
    if let Some(t) = token {
        assert!(!body.contains(t), "the answer must not echo the token");
    }
}

#[test]
fn every_route_but_healthz_needs_the_token_and_a_rotated_token_works() {
    let d = Danxia::start();
    let ops = operations(&d);
    for (method, template) in &ops {
        let path = template.replace("{id}", "no-such-session");
        if template == "/healthz" {
            let (code, body) = d.http_get_unauthenticated(&path);
            assert_eq!((code, body.as_str()), (200, "ok\n"));
            continue;
        }
        assert_unauthorized(&d, method, &path, None);
    }
    // Not a Bearer header, and a wrong token, on a sample of routes.
    let malformed = d.http_request_full("GET", "/sessions", None);
    assert_eq!(malformed.0, 401);
    let wrong = "0".repeat(64);
    for (method, path) in [
        ("GET", "/metrics"),
        ("DELETE", "/sessions/x"),
        ("POST", "/policy/reload"),
    ] {
        assert_unauthorized(&d, method, path, Some(&wrong));
    }
    let (code, _, _) = try_http_auth_header(d.admin_port, "Basic YWRtaW46YWRtaW4=");
    assert_eq!(code, 401);
    // Counted by reason; the right token opens everything.
    let m = d.metrics();
    let missing = metric_sum(
        &m,
        "danxia_admin_auth_failures_total",
        &[("reason", "missing")],
    );
    let wrong_n = metric_sum(
        &m,
        "danxia_admin_auth_failures_total",
        &[("reason", "wrong")],
    );
    let malformed_n = metric_sum(
        &m,
        "danxia_admin_auth_failures_total",
        &[("reason", "malformed")],
    );
    assert_eq!(missing, Some((ops.len() - 1 + 1) as f64), "{m}");
    assert_eq!(wrong_n, Some(3.0));
    assert_eq!(malformed_n, Some(1.0));
    assert_eq!(d.http_get("/sessions").0, 200);
    // Audited (rate-limited: the first ten a minute).
    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "admin" && e["operation"] == "auth_failure"
    });
    let audited = events
        .iter()
        .filter(|e| e["kind"] == "admin" && e["operation"] == "auth_failure")
        .count();
    assert!(
        (1..=10).contains(&audited),
        "audited failures are rate-limited: {audited}"
    );
    assert!(!events
        .iter()
        .any(|e| e.to_string().contains(&d.admin_token())));

    // Rotation: a new file (written aside, renamed over) replaces the token.
    let old = d.admin_token();
    let path = d.admin_token_path();
    let tmp = d.dir().join("admin.token.new");
    let new = write_admin_token(&tmp);
    std::fs::rename(&tmp, &path).expect("rotate");
    assert_eq!(d.http_get("/policy").0, 200, "the new token works at once");
    assert_unauthorized(&d, "GET", "/policy", Some(&old));
    assert_eq!(d.http_request("GET", "/policy", Some(&new)).0, 200);
    // The CLI reads the file too.
    let o = cli(&d, &["sessions", "list"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // And refuses clearly with another token file.
    let other = d.dir().join("other.token");
    write_admin_token(&other);
    let o = cli(
        &d,
        &[
            "--token-file",
            &other.display().to_string(),
            "sessions",
            "list",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A raw request with an arbitrary Authorization header.
fn try_http_auth_header(port: u16, auth: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /sessions HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (code, head.to_string(), body.to_string())
}

/// `danxia run` with a config whose `admin.token_file` is `token`:
/// (exit code, stderr), or `None` when it is still running after a while.
fn start_with_token_file(dir: &Path, token: &Path) -> Child {
    let config = dir.join("danxia.toml");
    let text = Options::default()
        .to_toml(free_port(), free_port(), free_port(), &dir.join("audit"))
        .replacen(
            "[admin]\n",
            &format!(
                "[admin]\ntoken_file = {}\n",
                toml_str(&token.display().to_string())
            ),
            1,
        );
    std::fs::write(&config, text).expect("config");
    Command::new(bin_path())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn danxia")
}

fn exit_and_stderr(mut c: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(st) = c.try_wait().expect("wait") {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut c.stderr.take().expect("stderr"), &mut err)
                .expect("read stderr");
            return (st.code(), err);
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("danxia kept running with an unusable token file");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unsafe_or_short_token_file_stops_startup_and_a_missing_one_is_created() {
    require_postgres();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef0123456789abcdef\n").expect("write");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, err) = exit_and_stderr(start_with_token_file(dir.path(), &token));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", token.display())),
        "the error says what to do: {err}"
    );
    assert!(
        !err.contains("0123456789abcdef0123"),
        "no token in the log: {err}"
    );

    std::fs::write(&token, "short\n").expect("write");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, err) = exit_and_stderr(start_with_token_file(dir.path(), &token));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("at least 32"), "{err}");

    // Missing: created, 0600, 64 hex digits; its path is logged, never the token.
    let created = dir.path().join("var/admin.token");
    let mut child = start_with_token_file(dir.path(), &created);
    let deadline = Instant::now() + WAIT;
    while !created.exists() {
        if let Some(st) = child.try_wait().expect("wait") {
            panic!("danxia exited with {st} instead of creating the token file");
        }
        assert!(Instant::now() < deadline, "token file never created");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mode = std::fs::metadata(&created)
        .expect("meta")
        .permissions()
        .mode();
    let text = std::fs::read_to_string(&created).expect("read");
    terminate(&mut child);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert_eq!(mode & 0o777, 0o600);
    let t = text.trim();
    assert!(
        t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()),
        "{t:?}"
    );
    assert!(
        err.contains(&created.display().to_string()),
        "path logged: {err}"
    );
    assert!(!err.contains(t), "the token is never logged");
}

/// SIGTERM (a clean shutdown, so stderr is complete) and wait.
fn terminate(c: &mut Child) {
    let _ = Command::new("kill").arg(c.id().to_string()).status();
    let deadline = Instant::now() + WAIT;
    while c.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = c.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.wait();
}

/// Polls `GET /sessions?…` until `pred` holds for one session; returns it.
fn wait_session(d: &Danxia, query: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = get_json(d, &format!("/sessions{query}"));
        if let Some(s) = list.as_array().into_iter().flatten().find(|s| pred(s)) {
            return s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no matching session in {list}\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_exit(c: &mut Child, what: &str) -> (Option<i32>, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(st) = c.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).expect("stderr");
            }
            return (st.code(), err);
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("{what} still running {WAIT:?} after the kill");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_psql_session_is_listed_and_killed_and_its_query_cancelled() {
    let d = Danxia::start();
    let app = "e2e_admin_kill";
    let mut client = d
        .psql("postgres", DB)
        .env("PGAPPNAME", app)
        .args([
            "-c",
            "select 1",
            "-c",
            "select 2",
            "-c",
            "select pg_sleep(30)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    let s = wait_session(&d, "", |s| s["application"] == app && s["statements"] == 2);
    assert_eq!(s["listener"], "pg");
    assert_eq!(s["protocol"], "postgres");
    assert_eq!(s["user"], "postgres");
    assert_eq!(s["database"], DB);
    assert_eq!(s["state"], "established");
    assert!(s["tls_subject"].is_null());
    assert!(s["client"]
        .as_str()
        .is_some_and(|c| c.starts_with("127.0.0.1:")));
    assert!(s["started"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(s["last_statement"].is_string());
    let id = s["id"].as_str().expect("id").to_string();
    // Filters, one session, the CLI.
    let by = get_json(&d, "/sessions?listener=pg&user=postgres");
    assert!(by
        .as_array()
        .expect("list")
        .iter()
        .any(|x| x["id"] == id.as_str()));
    assert_eq!(get_json(&d, "/sessions?user=nobody-at-all"), json!([]));
    assert_eq!(get_json(&d, "/sessions?listener=mysql"), json!([]));
    assert_eq!(get_json(&d, &format!("/sessions/{id}"))["id"], id.as_str());
    let o = cli(&d, &["sessions", "list", "--user", "postgres"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains(&id), "{out}");
    // The backend runs the sleep.
    let running = |sql_app: &str| -> u32 {
        run_ok(psql_direct("postgres", DB).args(["-A", "-t", "-c"]).arg(format!(
            "select count(*) from pg_stat_activity where application_name = '{sql_app}' and query like 'select pg_sleep%' and state = 'active'"
        )))
        .trim()
        .parse()
        .expect("count")
    };
    assert_eq!(running(app), 1);

    let killed_at = Instant::now();
    let (code, body) = d.http_request("DELETE", &format!("/sessions/{id}"), Some(&d.admin_token()));
    assert_eq!(code, 200, "{body}");
    let v = json_of(&body);
    assert_eq!(v["ok"], true);
    assert_eq!(v["killed"]["id"], id.as_str());
    let (code, err) = wait_exit(&mut client, "psql");
    assert_ne!(code, Some(0));
    assert!(
        err.contains("terminating connection due to administrator command"),
        "psql says why: {err}"
    );
    // Cancelled on the server within moments, not after 30 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(app) != 0 {
        assert!(
            Instant::now() < deadline,
            "pg_sleep still running 5 s after the kill"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    // Audited with who and which session; counted; gone from the list.
    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "admin" && e["operation"] == "kill_session" && e["session"] == id.as_str()
    });
    let ev = events
        .iter()
        .find(|e| e["kind"] == "admin" && e["operation"] == "kill_session")
        .expect("kill event");
    assert_eq!(ev["listener"], "pg");
    assert_eq!(ev["user"], "postgres");
    assert!(
        ev["detail"]
            .as_str()
            .is_some_and(|t| t.contains("admin API")),
        "{ev}"
    );
    let end = d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["session"] == id.as_str()
    });
    let end = end
        .iter()
        .find(|e| e["kind"] == "session_end" && e["session"] == id.as_str())
        .expect("session end");
    assert_eq!(end["outcome"], "aborted");
    assert!(
        end["detail"]
            .as_str()
            .is_some_and(|t| t.contains("administrator")),
        "{end}"
    );
    assert_eq!(
        d.metric("danxia_admin_sessions_killed_total", &[("listener", "pg")]),
        1.0
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = d.http_get(&format!("/sessions/{id}"));
        if code == 404 {
            assert_eq!(json_of(&body)["status"], 404);
            break;
        }
        assert!(Instant::now() < deadline, "session still listed: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _) = d.http_request("DELETE", &format!("/sessions/{id}"), Some(&d.admin_token()));
    assert_eq!(code, 404);
    // The proxy goes on serving.
    let out = run_ok(
        d.psql("postgres", DB)
            .args(["-A", "-t", "-c", "select 41 + 1"]),
    );
    assert_eq!(out.trim(), "42");
}

#[test]
fn a_mariadb_session_is_listed_and_killed_through_the_cli() {
    require_mariadb();
    let d = Danxia::start_with(Options {
        mysql: true,
        ..Options::default()
    });
    let marker = format!("dx_admin_kill_{}", std::process::id());
    let mut client = d
        .mariadb("root", None, DB)
        .arg("-e")
        .arg(format!("select 1; select 2; select sleep(30) as {marker}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mariadb");
    let s = wait_session(&d, "?listener=mysql", |s| {
        s["user"] == "root" && s["statements"] == 2
    });
    assert_eq!(s["protocol"], "mysql");
    assert_eq!(s["database"], DB);
    let id = s["id"].as_str().expect("id").to_string();
    let running = || -> u32 {
        mariadb_exec(&format!(
            "select count(*) from information_schema.processlist where info like 'select sleep(30) as {marker}%' and id <> connection_id()"
        ))
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("count")
    };
    let deadline = Instant::now() + WAIT;
    while running() != 1 {
        assert!(Instant::now() < deadline, "the sleep never ran on MariaDB");
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = cli(&d, &["sessions", "kill", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("killed"));
    let (code, err) = wait_exit(&mut client, "mariadb");
    assert_ne!(code, Some(0));
    assert!(
        err.contains("Connection was killed by the danxia administrator") && err.contains("1927"),
        "the client says why: {err}"
    );
    // MariaDB notices the closed connection at its next check (SLEEP()
    // looks every 5 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while running() != 0 {
        assert!(
            Instant::now() < deadline,
            "the sleep still runs 10 s after the kill"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    d.wait_audit(WAIT, |e| {
        e["kind"] == "admin" && e["operation"] == "kill_session" && e["session"] == id.as_str()
    });
    assert_eq!(
        d.metric(
            "danxia_admin_sessions_killed_total",
            &[("listener", "mysql")]
        ),
        1.0
    );
}

/// One recorded answer for the OpenAPI check.
fn record(
    d: &Danxia,
    out: &mut Vec<Value>,
    method: &str,
    template: &str,
    path: &str,
) -> (u16, String) {
    let (code, headers, body) = d.http_request_full(method, path, Some(&d.admin_token()));
    out.push(json!({
        "method": method,
        "path": template,
        "status": code,
        "content_type": headers.get("content-type"),
        "headers": headers,
        "body": body,
    }));
    (code, body)
}

#[test]
fn alerts_quarantine_suspensions_and_openapi_conformance() {
    let f = full();
    let d = &f.d;
    // An alert, newest first.
    let o = run(d
        .psql("postgres", DB)
        .args(["-c", "select * from dxadm.secret"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deadline = Instant::now() + WAIT;
    let alerts = loop {
        let a = get_json(d, "/alerts?limit=5");
        if a.as_array().is_some_and(|l| !l.is_empty()) {
            break a;
        }
        assert!(Instant::now() < deadline, "no alert listed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let a = &alerts[0];
    assert_eq!(a["rule"], "watch-secret");
    assert!(
        a["title"].as_str().is_some_and(|t| t.contains("postgres")),
        "{a}"
    );
    assert_eq!(a["alert"]["who"]["user"], "postgres");
    assert_eq!(a["alert"]["where"]["listener"], "pg");
    assert_eq!(a["delivery"], "disabled", "no sink is configured");
    let o = cli(d, &["alerts", "recent", "--limit", "3"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("watch-secret"));

    // Quarantine through a rule, listed and released through the API.
    // (Refused or not, the rule quarantines the identity.)
    run(d.psql(USER_Q, DB).args(["-c", "select * from dxadm.honey"]));
    let deadline = Instant::now() + WAIT;
    let identity = loop {
        let q = get_json(d, "/quarantine");
        if let Some(x) = q.as_array().and_then(|l| {
            l.iter().find(|x| {
                x["identity"]
                    .as_str()
                    .is_some_and(|i| i.starts_with(USER_Q))
            })
        }) {
            assert_eq!(x["rule"], "honeypot");
            break x["identity"].as_str().expect("identity").to_string();
        }
        assert!(Instant::now() < deadline, "not quarantined: {q}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Suspended callers.
    let (code, body) = d.http_post("/api/suspend?caller=dept-health&reason=e2e");
    assert_eq!(code, 200, "{body}");
    let sus = get_json(d, "/api/suspended");
    assert_eq!(sus[0]["caller"], "dept-health");

    // A live session for /sessions.
    let mut sleeper = d
        .psql("postgres", DB)
        .env("PGAPPNAME", "e2e_admin_openapi")
        .args(["-c", "select pg_sleep(20)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn psql");
    let live = wait_session(d, "", |s| s["application"] == "e2e_admin_openapi");
    let live_id = live["id"].as_str().expect("id").to_string();

    // Every documented operation, called in an order that makes each
    // succeed (plus the documented 404s and 401s).
    let enc = |s: &str| s.replace('|', "%7C").replace('/', "%2F");
    let enc_identity = enc(&identity);
    let known = get_json(d, "/behaviour/identities");
    let baseline = enc(known[0]["identity"]
        .as_str()
        .expect("an identity with a baseline"));
    let calls: Vec<(&str, &str, String)> = vec![
        ("GET", "/metrics", "/metrics".into()),
        ("GET", "/healthz", "/healthz".into()),
        ("GET", "/readyz", "/readyz".into()),
        ("GET", "/policy", "/policy".into()),
        ("POST", "/policy/reload", "/policy/reload".into()),
        ("GET", "/sessions", "/sessions".into()),
        ("GET", "/sessions/{id}", format!("/sessions/{live_id}")),
        ("GET", "/sessions/{id}", "/sessions/none".into()),
        ("GET", "/alerts", "/alerts?limit=10".into()),
        (
            "GET",
            "/behaviour/identities",
            "/behaviour/identities".into(),
        ),
        (
            "GET",
            "/behaviour/profile",
            format!("/behaviour/profile?identity={baseline}"),
        ),
        (
            "GET",
            "/behaviour/profile",
            "/behaviour/profile?identity=nobody".into(),
        ),
        ("GET", "/quarantine", "/quarantine".into()),
        (
            "POST",
            "/quarantine",
            "/quarantine?identity=dx_manual%7Cpsql%7C127.0.0.0%2F24&reason=e2e".into(),
        ),
        (
            "POST",
            "/quarantine",
            "/quarantine?identity=not-an-identity".into(),
        ),
        (
            "POST",
            "/quarantine/release",
            format!("/quarantine/release?identity={enc_identity}"),
        ),
        (
            "POST",
            "/quarantine/release",
            format!("/quarantine/release?identity={enc_identity}"),
        ),
        ("GET", "/api/callers", "/api/callers".into()),
        ("GET", "/api/suspended", "/api/suspended".into()),
        (
            "POST",
            "/api/suspend",
            "/api/suspend?caller=dept-stats&reason=e2e".into(),
        ),
        (
            "POST",
            "/api/suspend",
            "/api/suspend?caller=no-such-caller".into(),
        ),
        (
            "POST",
            "/api/resume",
            "/api/resume?caller=dept-health".into(),
        ),
        (
            "POST",
            "/api/resume",
            "/api/resume?caller=dept-health".into(),
        ),
        ("POST", "/api/reload", "/api/reload".into()),
        ("GET", "/openapi.yaml", "/openapi.yaml".into()),
        ("GET", "/openapi.json", "/openapi.json".into()),
        ("DELETE", "/sessions/{id}", format!("/sessions/{live_id}")),
        ("DELETE", "/sessions/{id}", "/sessions/none".into()),
    ];
    let ops = operations(d);
    for (m, p) in &ops {
        assert!(
            calls.iter().any(|(cm, cp, _)| cm == m && cp == p),
            "{m} {p} is documented but the conformance test does not call it"
        );
    }
    let mut out = Vec::new();
    let mut statuses = Vec::new();
    for (m, template, path) in &calls {
        let (code, body) = record(d, &mut out, m, template, path);
        statuses.push((format!("{m} {path}"), code, body));
    }
    // Unauthenticated answers are documented too.
    for (m, template) in &ops {
        if template == "/healthz" {
            continue;
        }
        let path = template.replace("{id}", "x");
        let (code, headers, body) = d.http_request_full(m, &path, None);
        out.push(json!({"method": m, "path": template, "status": code,
            "content_type": headers.get("content-type"), "headers": headers, "body": body}));
    }
    let expect = [
        ("GET /sessions/none", 404),
        ("DELETE /sessions/none", 404),
        ("GET /behaviour/profile?identity=nobody", 404),
        ("POST /quarantine?identity=not-an-identity", 400),
        ("POST /api/suspend?caller=no-such-caller", 404),
    ];
    for (what, code, body) in &statuses {
        let want = expect
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, c)| *c)
            .unwrap_or(200);
        // The second release/resume of the same identity/caller: 404.
        let second = statuses.iter().filter(|(w, _, _)| w == what).count() > 1
            && (what.contains("/release") || what.contains("/resume"));
        if second {
            assert!(*code == 200 || *code == 404, "{what}: {code} {body}");
            continue;
        }
        assert_eq!(*code, want, "{what}: {body}");
    }
    assert!(
        statuses
            .iter()
            .filter(|(w, _, _)| w.contains("/quarantine/release"))
            .map(|(_, c, _)| *c)
            .eq([200, 404]),
        "release then release again"
    );
    assert_eq!(get_json(d, "/api/suspended")[0]["caller"], "dept-stats");
    let _ = wait_exit(&mut sleeper, "psql after the kill");

    let results = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(results.path(), serde_json::to_vec(&out).expect("json")).expect("write");
    let o = run(python()
        .arg(workspace_root().join("tests/clients/openapi_check.py"))
        .arg(workspace_root().join("docs/admin-openapi.yaml"))
        .arg(results.path()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "OpenAPI conformance:\n{text}");
    assert!(
        text.contains(&format!("{} answers, 0 mismatches", out.len())),
        "{text}"
    );
}
