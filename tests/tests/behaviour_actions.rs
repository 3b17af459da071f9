//! Behaviour rules end to end, through psql against the real PostgreSQL:
//! a `returned = { rows = N }` deny cuts a result mid-stream and cancels
//! the backend query; a `window` budget cuts and then refuses; a
//! `quarantine` rule refuses everything from the identity until
//! `danxia quarantine release`; a `throttle` rule slows the identity down;
//! every action is audited with its evidence and reaches a real webhook
//! receiver and a real syslog (UDP) socket; baselines and the quarantine
//! list survive a restart (`danxia baseline show`, `quarantine list`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use danxia_e2e::*;
use serde_json::Value;

const DB: &str = "test";
const WAIT: Duration = Duration::from_secs(15);
const SCHEMA: &str = "dxbeh";
const USERS: [&str; 4] = ["dx_beh_cut", "dx_beh_q", "dx_beh_t", "dx_beh_w"];

const POLICY: &str = r#"
[policy]
default_action = "allow"

[[rule]]
id = "cut-big-results"
description = "No result of 1000 rows or more for the cut account"
action = "deny"
users = ["dx_beh_cut"]
message = "result too large"
returned = { rows = 1000 }

[[rule]]
id = "window-rows"
description = "At most 150 rows an hour for the window account"
action = "deny"
users = ["dx_beh_w"]
window = "1h"
message = "hourly row budget spent"
returned = { rows = 150 }

[[rule]]
id = "slow-down-probers"
description = "Whoever reads the slow table is throttled"
action = "throttle"
tables = ["dxbeh.slow"]

[[rule]]
id = "honeypot"
description = "Whoever reads the honeypot table is quarantined"
action = "quarantine"
tables = ["dxbeh.honey"]
"#;

/// A webhook receiver on loopback: every POST body, answered 200.
fn webhook() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
    let port = l.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let t = line.trim_end();
                if t.is_empty() {
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        break;
                    }
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        g.lock().unwrap().push(v);
                    }
                    let _ = r
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                    len = 0;
                    continue;
                }
                if let Some(v) = t.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
    });
    (port, got)
}

fn setup() {
    require_postgres();
    let mut sql = String::from("select pg_advisory_xact_lock(48151624);\n");
    for u in USERS {
        sql.push_str(&format!(
            "do $$ begin create role {u} login; exception when duplicate_object then null; end $$;\n"
        ));
    }
    sql.push_str(&format!(
        "drop schema if exists {SCHEMA} cascade; create schema {SCHEMA};\n\
         create table {SCHEMA}.big as select g as id, md5(g::text) as v from generate_series(1, 200000) g;\n\
         create table {SCHEMA}.slow (id int); insert into {SCHEMA}.slow values (1);\n\
         create table {SCHEMA}.honey (id int); insert into {SCHEMA}.honey values (1);\n"
    ));
    for u in USERS {
        sql.push_str(&format!(
            "grant usage on schema {SCHEMA} to {u}; grant select on all tables in schema {SCHEMA} to {u};\n"
        ));
    }
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

fn options(dir: &std::path::Path, hook: u16, syslog: u16) -> Options {
    let policy = dir.join("policy");
    std::fs::create_dir_all(&policy).expect("policy dir");
    std::fs::write(policy.join("10.toml"), POLICY).expect("policy");
    Options {
        extra_toml: format!(
            "[policy]\ndir = {}\nallowlist = \"allowlist.toml\"\n\n\
             [behaviour]\nstore = \"disk\"\ndir = {}\nsync_interval = \"200ms\"\nthrottle_delay = \"300ms\"\nthrottle_for = \"1m\"\n\n\
             [alerts]\nsuppress = \"0s\"\n[alerts.webhook]\nurl = \"http://127.0.0.1:{hook}/hook\"\nbackoff = \"50ms\"\n\
             [alerts.syslog]\naddress = \"127.0.0.1:{syslog}\"\ntransport = \"udp\"\n",
            toml_str(&policy.display().to_string()),
            toml_str(&dir.join("behaviour").display().to_string()),
        ),
        ..Options::default()
    }
}

fn cli(d: &Danxia, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(bin_path());
    c.args(args)
        .arg("--config")
        .arg(d.dir().join("danxia.toml"))
        .current_dir(d.dir());
    run(&mut c)
}

fn psql_as(d: &Danxia, user: &str, sqls: &[&str]) -> (std::process::Output, Duration) {
    let mut c = d.psql(user, DB);
    // Go on after an error, as an interactive client does.
    c.args(["-v", "ON_ERROR_STOP=0", "-q", "-A", "-t"]);
    for s in sqls {
        c.arg("-c").arg(s);
    }
    let t = Instant::now();
    let out = run(&mut c);
    (out, t.elapsed())
}

#[test]
fn behaviour_rules_cut_refuse_quarantine_throttle_and_alert() {
    setup();
    let (hook, posted) = webhook();
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let syslog_port = udp.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = Danxia::start_with(options(dir.path(), hook, syslog_port));

    // 1. A rows limit cuts mid-stream; the backend query is cancelled and
    //    the client sees danxia's error, not 57014.
    let (out, _) = psql_as(&d, "dx_beh_cut", &["select * from dxbeh.big", "select 42"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("danxia: result too large (rule cut-big-results)"),
        "{stderr}"
    );
    assert!(!stderr.contains("canceling statement"), "{stderr}");
    assert!(
        stdout.trim_end().ends_with("42"),
        "the session goes on: {stdout}"
    );
    let ev = d.wait_audit(WAIT, |e| {
        e["rule"] == "cut-big-results" && e["kind"] == "statement"
    });
    let cut = ev
        .iter()
        .find(|e| e["rule"] == "cut-big-results" && e["kind"] == "statement")
        .expect("cut event");
    assert_eq!(cut["outcome"], "refused");
    assert_eq!(cut["actions"], serde_json::json!(["cut"]), "{cut}");
    assert_eq!(cut["identity"], "dx_beh_cut|psql|127.0.0.0/24");
    let cancels = d.wait_metric(
        WAIT,
        "danxia_cancel_requests_total",
        &[("result", "cut")],
        |v| v >= 1.0,
    );
    assert!(cancels >= 1.0);

    // 2. A window budget: 100 rows pass, the next 100 are cut at 150 in
    //    all, and the statement after that is refused before it runs.
    let (out, _) = psql_as(
        &d,
        "dx_beh_w",
        &[
            "select id from dxbeh.big limit 100",
            "select id from dxbeh.big limit 100",
            "select id from dxbeh.big limit 10",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("hourly row budget spent (rule window-rows)"),
        "{stderr}"
    );
    assert!(stderr.contains("this identity already has"), "{stderr}");
    let rows_shown = stdout.lines().count();
    // psql prints nothing of a result that ends in an error.
    assert_eq!(rows_shown, 100, "only the first result is whole: {stdout}");
    // Both events: the writer may not have written the refusal yet when
    // the cut is already on disk.
    let evs = d.wait_audit_count(WAIT, 2, |e| {
        e["kind"] == "statement" && e["rule"] == "window-rows"
    });
    assert!(
        evs.iter()
            .any(|e| e["actions"] == serde_json::json!(["cut"])),
        "the first over-budget result is cut: {evs:?}"
    );
    let w: Vec<&Value> = evs.iter().collect();
    assert_eq!(w.len(), 2, "one cut, one refused before running: {w:?}");
    assert!(
        w[1]["error"]
            .as_str()
            .unwrap_or("")
            .contains("already has 150 rows of 150"),
        "{}",
        w[1]
    );

    // 3. Quarantine: the honeypot statement is refused, so is everything
    //    after it, until released by the CLI.
    let (out, _) = psql_as(&d, "dx_beh_q", &["select * from dxbeh.honey"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(rule honeypot)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (out, _) = psql_as(&d, "dx_beh_q", &["select 7"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("is quarantined") && e.contains("(rule honeypot)"),
        "{e}"
    );
    let list = cli(&d, &["quarantine", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("dx_beh_q|psql|127.0.0.0/24") && listed.contains("honeypot"),
        "{listed}"
    );
    let rel = cli(&d, &["quarantine", "release", "dx_beh_q|psql|127.0.0.0/24"]);
    assert!(
        rel.status.success(),
        "{}",
        String::from_utf8_lossy(&rel.stderr)
    );
    let (out, _) = psql_as(&d, "dx_beh_q", &["select 7"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7", "released");
    let q = d.wait_audit(WAIT, |e| e["kind"] == "alert" && e["rule"] == "honeypot");
    let alert = q
        .iter()
        .find(|e| e["kind"] == "alert" && e["rule"] == "honeypot")
        .expect("alert");
    assert_eq!(alert["risk"], "critical", "{alert}");
    assert_eq!(alert["actions"], serde_json::json!(["quarantine"]));

    // 4. Throttle: after reading the slow table, each statement waits.
    let (_, plain) = psql_as(
        &d,
        "dx_beh_t",
        &["select 1", "select 1", "select 1", "select 1"],
    );
    let (out, slowed) = psql_as(
        &d,
        "dx_beh_t",
        &[
            "select * from dxbeh.slow",
            "select 1",
            "select 1",
            "select 1",
            "select 1",
        ],
    );
    assert!(out.status.success());
    assert!(
        slowed >= plain + Duration::from_millis(1100),
        "4 throttled statements at 300 ms each: {slowed:?} vs {plain:?}"
    );

    // 5. The SOC got them: webhook JSON and syslog datagrams.
    let deadline = Instant::now() + WAIT;
    loop {
        let rules: Vec<String> = posted
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["rule"].as_str().unwrap_or("").to_string())
            .collect();
        if [
            "cut-big-results",
            "window-rows",
            "honeypot",
            "slow-down-probers",
        ]
        .iter()
        .all(|r| rules.iter().any(|x| x == r))
        {
            break;
        }
        assert!(Instant::now() < deadline, "webhook got only {rules:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let honey = posted
        .lock()
        .unwrap()
        .iter()
        .find(|v| v["rule"] == "honeypot")
        .cloned()
        .expect("honeypot alert");
    assert_eq!(honey["who"]["user"], "dx_beh_q");
    assert_eq!(honey["who"]["network"], "127.0.0.0/24");
    assert_eq!(honey["where"]["tables"], serde_json::json!(["dxbeh.honey"]));
    assert_eq!(honey["risk"], "critical");
    assert!(honey["alert_id"].is_string());
    let mut syslog = String::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + WAIT;
    while !syslog.contains("honeypot") && Instant::now() < deadline {
        if let Ok(n) = udp.recv(&mut buf) {
            syslog.push_str(&String::from_utf8_lossy(&buf[..n]));
            syslog.push('\n');
        }
    }
    assert!(
        syslog.contains("danxia@32473") && syslog.contains("rule=\"honeypot\""),
        "{syslog}"
    );
    assert!(syslog.starts_with('<'), "{syslog}");

    // 6. Baselines survive a restart; `baseline show` reads them online
    //    and, with the proxy stopped, from the snapshot.
    let show = cli(&d, &["baseline", "show", "dx_beh_w|psql|127.0.0.0/24"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(text.contains("dx_beh_w|psql|127.0.0.0/24"), "{text}");
    // A second quarantine, kept over the restart.
    let (_, _) = psql_as(&d, "dx_beh_q", &["select * from dxbeh.honey"]);
    d.shutdown();
    let offline = cli(&d, &["baseline", "show", "dx_beh_w"]);
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert!(String::from_utf8_lossy(&offline.stdout).contains("dx_beh_w|psql|127.0.0.0/24"));
    let listed = cli(&d, &["quarantine", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("dx_beh_q|psql|127.0.0.0/24"));
    let d2 = Danxia::start_with(options(dir.path(), hook, syslog_port));
    let (out, _) = psql_as(&d2, "dx_beh_q", &["select 7"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is quarantined"),
        "the quarantine survived the restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, body) = d2.http_get("/behaviour/identities");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("dx_beh_cut|psql|127.0.0.0/24"), "{body}");
    assert!(d.audit_verify().status.success());
}
