//! The firewall deciding, end to end: real PostgreSQL, the real binary,
//! psql, psycopg2 and a hand-written wire client. Each test writes its own
//! small policy (so it states exactly what it relies on) into a temporary
//! directory; the shipped packs are exercised in `pg_policy_packs.rs`.
//!
//! What is checked: a refused statement gets SQLSTATE 42501 naming the rule
//! and the session goes on; inside a transaction the client sees the same
//! transaction state as the server; an extended-protocol pipeline with a
//! refused statement in the middle keeps its order and the server skips to
//! Sync; unparseable statements get the configured default; monitor mode
//! alerts without blocking; learn → enforce; hot reload with a broken file
//! keeps the old policy; every refusal is audited with its rule.

use std::fs;
use std::path::Path;
use std::time::Duration;

use danxia_e2e::wire::{self, RawSession};
use danxia_e2e::*;
use serde_json::Value;

const ADMIN: &str = "postgres";
const DB: &str = "test";
const WAIT: Duration = Duration::from_secs(10);

/// The test policy: administrators are `postgres`/`root`; unparseable
/// statements are denied except for administrators; `SELECT *` by
/// applications raises an alert (alert rules do not stop evaluation); a
/// family of "secret" tables is off limits to everyone; applications may
/// not write without a bounding WHERE.
const POLICY: &str = r#"
[policy]
default_action = "allow"
unparsed_action = "deny"

[groups]
admins = ["postgres", "root"]

[[rule]]
id = "admins-unparsed"
description = "Administrators may run statements danxia cannot parse"
action = "allow"
users = ["@admins"]
conditions = ["parse_error"]

[[rule]]
id = "alert-select-star"
description = "Applications reading every column get a second look"
action = "alert"
users = ["!@admins"]
conditions = ["select_star"]

[[rule]]
id = "deny-secret-table"
description = "Nobody reads the secret tables through the proxy"
action = "deny"
tables = ["danxia_pol_secret*"]
message = "the secret table is off limits"

[[rule]]
id = "deny-unbounded-writes"
description = "Applications must bound their UPDATEs and DELETEs"
action = "deny"
users = ["!@admins"]
operations = ["update", "delete"]
conditions = ["unbounded_write"]

"#;

/// A policy directory holding `files` (name, text); kept alive by the
/// returned guard.
fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("danxia-policy-")
        .tempdir()
        .expect("policy tempdir");
    for (name, text) in files {
        fs::write(dir.path().join(name), text).expect("write policy file");
    }
    dir
}

fn policy_toml(dir: &Path, mode: &str, allowlist: &Path) -> String {
    format!(
        "[policy]\ndir = {}\nmode = {}\nallowlist = {}\nreload_interval = \"200ms\"\n",
        toml_str(&dir.display().to_string()),
        toml_str(mode),
        toml_str(&allowlist.display().to_string()),
    )
}

/// danxia with `POLICY` (or `files`) in `mode`.
fn start(files: &[(&str, &str)], mode: &str) -> (Danxia, tempfile::TempDir) {
    let dir = policy_dir(files);
    let allowlist = dir.path().join("learned").join("allowlist.toml");
    let d = Danxia::start_with(Options {
        extra_toml: policy_toml(dir.path(), mode, &allowlist),
        ..Options::default()
    });
    (d, dir)
}

/// Creates (as the admin, directly) the tables a test uses, owned by the
/// application role so it may write them; `suffix` keeps parallel tests
/// apart.
fn setup_tables(suffix: &str) -> (String, String) {
    ensure_app_role();
    let data = format!("danxia_pol_data_{suffix}");
    let secret = format!("danxia_pol_secret_{suffix}");
    run_ok(psql_direct(ADMIN, DB).arg("-q").arg("-c").arg(format!(
        "drop table if exists {data}, {secret};\
         create table {data}(id int primary key, v text);\
         create table {secret}(id int, s text);\
         insert into {secret} values (1, 'top');\
         alter table {data} owner to {APP_USER};\
         alter table {secret} owner to {APP_USER};"
    )));
    (data, secret)
}

fn drop_tables(tables: &[&str]) {
    let _ = run(psql_direct(ADMIN, DB)
        .arg("-q")
        .arg("-c")
        .arg(format!("drop table if exists {}", tables.join(", "))));
}

fn count_direct(table: &str) -> i64 {
    run_ok(
        psql_direct(ADMIN, DB)
            .args(["-At", "-c"])
            .arg(format!("select count(*) from {table}")),
    )
    .trim()
    .parse()
    .expect("count")
}

/// psql through danxia with ON_ERROR_STOP off, script on stdin; returns
/// (stdout, stderr).
fn psql_script(d: &Danxia, user: &str, script: &str) -> (String, String) {
    let out = run_with_stdin(
        d.psql(user, DB).args(["-v", "ON_ERROR_STOP=0", "-At"]),
        script,
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refused(e: &Value, rule: &str) -> bool {
    e["kind"] == "statement" && e["verdict"] == "denied" && e["rule"] == rule
}

#[test]
fn denied_statement_gets_42501_and_the_session_continues() {
    let (data, secret) = setup_tables("deny");
    let (d, _p) = start(&[("10-test.toml", POLICY)], "enforce");
    let (out, err) = psql_script(
        &d,
        APP_USER,
        &format!(
            "select 'before';\nselect * from {secret};\nselect 'after';\n\
             insert into {data} values (1, 'a'), (2, 'b');\n\
             delete from {data};\n\
             delete from {data} where id = 1;\n\
             update {data} set v = 'x' where 1 = 1;\n\
             select count(*) from {data};\n"
        ),
    );
    assert!(
        out.contains("before") && out.contains("after"),
        "{out}\n{err}"
    );
    assert!(!out.contains("top"), "the secret row leaked: {out}");
    assert!(
        err.contains("ERROR:  danxia: the secret table is off limits (rule deny-secret-table)"),
        "{err}"
    );
    // Both unbounded writes were refused; the bounded delete ran.
    assert_eq!(
        err.matches("(rule deny-unbounded-writes)").count(),
        2,
        "{err}"
    );
    assert_eq!(out.lines().last(), Some("1"), "one row must remain: {out}");

    // The administrator is not an application: the same delete is allowed.
    let (out, err) = psql_script(&d, ADMIN, &format!("delete from {data};\nselect 'done';\n"));
    assert!(out.contains("done") && err.is_empty(), "{out}\n{err}");
    assert_eq!(count_direct(&data), 0);

    // SQLSTATE and rule in the audit trail; decisions counted by rule.
    let events = d.wait_audit_count(WAIT, 2, |e| refused(e, "deny-unbounded-writes"));
    for e in &events {
        assert_eq!(e["outcome"], "refused", "{e}");
        assert_eq!(e["sqlstate"], "42501", "{e}");
        assert_eq!(e["user"], APP_USER, "{e}");
        assert_eq!(e["mode"], "enforce", "{e}");
    }
    let all = d.wait_audit(WAIT, |e| refused(e, "deny-secret-table"));
    let allowed = all
        .iter()
        .find(|e| {
            e["kind"] == "statement"
                && e["statement"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("delete from") && s.contains("where id"))
        })
        .expect("the bounded delete is audited");
    assert_eq!(allowed["verdict"], "allowed");
    assert_eq!(allowed["rule"], "default");
    let star = all
        .iter()
        .find(|e| refused(e, "deny-secret-table"))
        .expect("refusal");
    assert_eq!(
        star["alerts"],
        serde_json::json!(["alert-select-star"]),
        "{star}"
    );
    assert!(
        d.metric(
            "danxia_policy_decisions_total",
            &[("rule", "deny-unbounded-writes"), ("verdict", "denied")]
        ) >= 2.0
    );
    assert!(
        d.metric(
            "danxia_policy_alerts_total",
            &[("rule", "alert-select-star")]
        ) >= 1.0
    );
    assert!(
        d.metric("danxia_policy_decision_cache_total", &[("result", "hit")])
            + d.metric("danxia_policy_decision_cache_total", &[("result", "miss")])
            >= 8.0
    );
    drop_tables(&[&data, &secret]);
}

#[test]
fn deny_inside_a_transaction_leaves_client_and_server_agreeing() {
    let (data, secret) = setup_tables("tx");
    let (d, _p) = start(&[("10-test.toml", POLICY)], "enforce");

    // Raw protocol: the ReadyForQuery status after the refusal is the
    // server's own ('E'), so the client knows the transaction is aborted.
    let mut s = RawSession::connect(d.pg_port, APP_USER, DB).expect("session");
    let m = s.simple_query("begin").expect("begin");
    assert_eq!(m.last().map(|m| m.body[0]), Some(b'T'));
    s.simple_query(&format!("insert into {data} values (1, 'in tx')"))
        .expect("insert");
    let m = s
        .simple_query(&format!("select * from {secret}"))
        .expect("refused select");
    assert_eq!(wire::tags(&m), "EZ", "{m:?}");
    assert_eq!(m[0].sqlstate().as_deref(), Some("42501"));
    assert!(m[0].fields()[&'M'].contains("deny-secret-table"), "{m:?}");
    assert_eq!(
        m[1].body[0], b'E',
        "transaction must be aborted like the server's"
    );
    // The server agrees: further statements fail with 25P02 ...
    let m = s.simple_query("select 1").expect("select in aborted tx");
    assert_eq!(m[0].sqlstate().as_deref(), Some("25P02"), "{m:?}");
    // ... and COMMIT ends it as a rollback.
    let m = s.simple_query("commit").expect("commit");
    assert!(
        m.iter()
            .any(|x| x.tag_char() == 'C' && x.command_tag() == "ROLLBACK"),
        "{m:?}"
    );
    assert_eq!(m.last().map(|m| m.body[0]), Some(b'I'));
    assert_eq!(
        count_direct(&data),
        0,
        "the aborted transaction's insert must be gone"
    );
    s.terminate();

    // psql with ON_ERROR_ROLLBACK: its savepoints make a refusal cost only
    // the refused statement, exactly as with a server-side error.
    let (out, err) = psql_script(
        &d,
        APP_USER,
        &format!(
            "\\set ON_ERROR_ROLLBACK on\nbegin;\ninsert into {data} values (7, 'a');\n\
             select * from {secret};\ninsert into {data} values (8, 'b');\ncommit;\n\
             select count(*) from {data};\n"
        ),
    );
    assert!(err.contains("(rule deny-secret-table)"), "{err}");
    assert_eq!(out.lines().last(), Some("2"), "{out}\n{err}");
    assert_eq!(count_direct(&data), 2);

    // psycopg2: the refusal is an InsufficientPrivilege error carrying the
    // rule; the connection is in an aborted transaction until rollback, then
    // usable; in autocommit mode nothing needs repair.
    let script = format!(
        r#"
import sys, psycopg2, psycopg2.extensions as ext
conn = psycopg2.connect(sys.argv[1])
cur = conn.cursor()
cur.execute("insert into {data} values (20, 'x')")
try:
    cur.execute("select * from {secret}")
    print("NOT REFUSED"); sys.exit(1)
except psycopg2.errors.InsufficientPrivilege as e:
    assert e.pgcode == "42501", e.pgcode
    assert "deny-secret-table" in str(e), str(e)
assert conn.get_transaction_status() == ext.TRANSACTION_STATUS_INERROR, conn.get_transaction_status()
conn.rollback()
cur.execute("select count(*) from {data} where id = 20")
assert cur.fetchone()[0] == 0
conn.rollback()
conn.autocommit = True
try:
    cur.execute("select s from {secret}")
    print("NOT REFUSED"); sys.exit(1)
except psycopg2.Error as e:
    assert e.pgcode == "42501"
assert conn.get_transaction_status() == ext.TRANSACTION_STATUS_IDLE
cur.execute("select 40 + 2")
assert cur.fetchone()[0] == 42
print("ok")
"#
    );
    let out = run(python().arg("-c").arg(script).arg(d.pg_dsn(APP_USER, DB)));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "psycopg2 check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop_tables(&[&data, &secret]);
}

#[test]
fn multi_statement_query_is_judged_statement_by_statement() {
    let (data, secret) = setup_tables("multi");
    let (d, _p) = start(&[("10-test.toml", POLICY)], "enforce");
    let mut s = RawSession::connect(d.pg_port, APP_USER, DB).expect("session");
    let m = s
        .simple_query(&format!(
            "insert into {data} values (1, 'a'); select * from {secret}; insert into {data} values (2, 'b')"
        ))
        .expect("query");
    assert_eq!(
        wire::tags(&m),
        "EZ",
        "nothing of a refused request runs: {m:?}"
    );
    let f = m[0].fields();
    assert_eq!(f[&'C'], "42501");
    assert!(f[&'D'].contains("Statement 2 of 3"), "{f:?}");
    assert_eq!(m[1].body[0], b'I');
    assert_eq!(count_direct(&data), 0);
    // An allowed multi-statement request runs as usual.
    let m = s
        .simple_query(&format!(
            "insert into {data} values (1, 'a'); insert into {data} values (2, 'b')"
        ))
        .expect("query");
    assert_eq!(wire::tags(&m), "CCZ", "{m:?}");
    s.terminate();
    let events = d.wait_audit_count(WAIT, 1, |e| refused(e, "deny-secret-table"));
    assert_eq!(events[0]["protocol_flow"], "simple");
    let all = d.audit_events();
    let skipped: Vec<_> = all
        .iter()
        .filter(|e| {
            e["kind"] == "statement"
                && e["outcome"] == "aborted"
                && e["detail"]
                    .as_str()
                    .is_some_and(|x| x.contains("refused by policy"))
        })
        .collect();
    assert_eq!(skipped.len(), 2, "both inserts recorded as not executed");
    drop_tables(&[&data, &secret]);
}

#[test]
fn extended_protocol_pipeline_with_a_refused_statement() {
    let (data, secret) = setup_tables("ext");
    let (d, _p) = start(&[("10-test.toml", POLICY)], "enforce");
    let mut s = RawSession::connect(d.pg_port, APP_USER, DB).expect("session");
    let ins = format!("insert into {data} values ($1, 'p')");
    let mut batch = Vec::new();
    batch.extend(wire::parse("ins", &ins));
    batch.extend(wire::bind("", "ins", &[Some("1")]));
    batch.extend(wire::execute("", 0));
    batch.extend(wire::parse("sec", &format!("select * from {secret}")));
    batch.extend(wire::bind("", "sec", &[]));
    batch.extend(wire::describe(b'P', ""));
    batch.extend(wire::execute("", 0));
    batch.extend(wire::bind("", "ins", &[Some("2")]));
    batch.extend(wire::execute("", 0));
    batch.extend(wire::sync());
    // A second batch in the same pipeline, sent before any answer.
    batch.extend(wire::bind("", "ins", &[Some("3")]));
    batch.extend(wire::execute("", 0));
    batch.extend(wire::sync());
    s.send(&batch).expect("send pipeline");
    let first = s.read_until_ready().expect("first batch");
    // ParseComplete, BindComplete, CommandComplete, then the refusal where
    // the refused Parse stood; the server skipped the rest to Sync.
    assert_eq!(wire::tags(&first), "12CEZ", "{first:?}");
    assert_eq!(first[3].sqlstate().as_deref(), Some("42501"));
    assert!(first[3].fields()[&'M'].contains("deny-secret-table"));
    assert_eq!(first[4].body[0], b'I');
    let second = s.read_until_ready().expect("second batch");
    assert_eq!(wire::tags(&second), "2CZ", "{second:?}");
    // The first batch was one implicit transaction: its insert was rolled
    // back with it, as PostgreSQL does for any error before Sync.
    assert_eq!(count_direct(&data), 1);

    // The refused name stays refused in later batches: Bind to it gets the
    // policy's error, not the server's "does not exist".
    let mut b = Vec::new();
    b.extend(wire::bind("", "sec", &[]));
    b.extend(wire::execute("", 0));
    b.extend(wire::sync());
    s.send(&b).expect("send");
    let m = s.read_until_ready().expect("bind to refused name");
    assert_eq!(wire::tags(&m), "EZ", "{m:?}");
    assert_eq!(m[0].sqlstate().as_deref(), Some("42501"));
    assert!(m[0].fields()[&'M'].contains("deny-secret-table"));
    // And the session is still fine.
    let m = s.simple_query("select 41 + 1").expect("select");
    assert_eq!(wire::tags(&m), "TDCZ");
    s.terminate();
    let events = d.wait_audit_count(WAIT, 2, |e| refused(e, "deny-secret-table"));
    assert!(
        events.iter().all(|e| e["protocol_flow"] == "extended"),
        "{events:?}"
    );
    drop_tables(&[&data, &secret]);
}

#[test]
fn unparseable_statements_get_the_configured_default() {
    ensure_app_role();
    let (d, _p) = start(&[("10-test.toml", POLICY)], "enforce");
    // Valid PostgreSQL that the SQL parser does not model.
    let sql = "select * from rows from (generate_series(1, 2)) as x";
    let (out, err) = psql_script(&d, APP_USER, &format!("{sql};\nselect 'still here';\n"));
    assert!(err.contains("(rule default.unparsed)"), "{out}\n{err}");
    assert!(out.contains("still here"), "{out}");
    let (out, err) = psql_script(&d, ADMIN, &format!("{sql};\n"));
    assert_eq!(out.trim(), "1\n2", "administrators are allowed: {err}");
    let events = d.wait_audit(WAIT, |e| refused(e, "default.unparsed"));
    let ev = events
        .iter()
        .find(|e| refused(e, "default.unparsed"))
        .expect("refusal");
    assert!(
        ev["parse_error"].is_string(),
        "the parse error is audited: {ev}"
    );
    let allowed = d.wait_audit(WAIT, |e| e["rule"] == "admins-unparsed");
    assert!(allowed
        .iter()
        .any(|e| e["rule"] == "admins-unparsed" && e["verdict"] == "allowed"));
    assert!(d.metric("danxia_sql_parse_failures_total", &[]) >= 1.0);
}

#[test]
fn monitor_mode_alerts_but_never_blocks() {
    let (data, secret) = setup_tables("monitor");
    let (d, _p) = start(&[("10-test.toml", POLICY)], "monitor");
    let (out, err) = psql_script(
        &d,
        APP_USER,
        &format!(
            "select s from {secret};\ninsert into {data} values (1, 'a');\ndelete from {data};\n"
        ),
    );
    assert!(err.is_empty(), "monitor mode must not block: {err}");
    assert!(out.contains("top"), "{out}");
    assert_eq!(count_direct(&data), 0, "the unbounded delete ran");
    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "alert" && e["rule"] == "deny-unbounded-writes"
    });
    let st = events
        .iter()
        .find(|e| e["kind"] == "statement" && e["rule"] == "deny-unbounded-writes")
        .expect("statement event");
    assert_eq!(st["verdict"], "would_deny");
    assert_eq!(st["outcome"], "ok");
    assert_eq!(st["mode"], "monitor");
    assert_eq!(st["alerts"], serde_json::json!(["deny-unbounded-writes"]));
    let alert = events
        .iter()
        .find(|e| e["kind"] == "alert" && e["rule"] == "deny-unbounded-writes")
        .expect("alert event");
    assert_eq!(alert["user"], APP_USER);
    assert_eq!(alert["fingerprint"], st["fingerprint"]);
    assert!(
        d.metric(
            "danxia_policy_decisions_total",
            &[("rule", "deny-unbounded-writes"), ("verdict", "would_deny")]
        ) >= 1.0
    );
    drop_tables(&[&data, &secret]);
}

#[test]
fn rule_mode_override_and_listener_mode() {
    // A rule in monitor mode only alerts even on an enforcing listener,
    // and a listener in monitor mode never blocks even for enforcing rules.
    let (data, secret) = setup_tables("rulemode");
    let relaxed = POLICY.replace(
        "message = \"the secret table is off limits\"",
        "message = \"the secret table is off limits\"\nmode = \"monitor\"",
    );
    let (d, _p) = start(&[("10-test.toml", &relaxed)], "enforce");
    let (out, err) = psql_script(
        &d,
        APP_USER,
        &format!("select s from {secret};\ndelete from {data};\n"),
    );
    assert!(
        out.contains("top"),
        "monitor rule must not block: {out}\n{err}"
    );
    assert!(
        err.contains("(rule deny-unbounded-writes)"),
        "enforcing rule blocks: {err}"
    );
    drop(d);
    let mut opts = Options::default();
    let dir = policy_dir(&[("10-test.toml", POLICY)]);
    opts.extra_toml = policy_toml(dir.path(), "enforce", &dir.path().join("allow.toml"));
    opts.listener_toml = "mode = \"monitor\"".into();
    let d = Danxia::start_with(opts);
    let (out, err) = psql_script(&d, APP_USER, &format!("select s from {secret};\n"));
    assert!(out.contains("top") && err.is_empty(), "{out}\n{err}");
    drop_tables(&[&data, &secret]);
}

const ALLOWLIST_POLICY: &str = r#"
[policy]
default_action = "allow"

[[rule]]
id = "deny-not-allowlisted"
description = "Applications run only the statement shapes learned for them"
action = "deny"
users = ["!postgres", "!root"]
conditions = ["not_allowlisted"]
"#;

#[test]
fn learn_then_enforce_round_trip() {
    let (data, secret) = setup_tables("learn");
    let dir = policy_dir(&[("10-allowlist.toml", ALLOWLIST_POLICY)]);
    let allowlist = dir.path().join("learned").join("allowlist.toml");
    let learning = Danxia::start_with(Options {
        extra_toml: policy_toml(dir.path(), "learn", &allowlist),
        ..Options::default()
    });
    let (_, err) = psql_script(
        &learning,
        APP_USER,
        &format!(
            "insert into {data} values (1, 'a');\nselect v from {data} where id = 1;\n\
             update {data} set v = 'b' where id = 1;\n"
        ),
    );
    assert!(err.is_empty(), "learn mode never blocks: {err}");
    // The writer appends asynchronously: wait for the three shapes.
    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        let text = fs::read_to_string(&allowlist).unwrap_or_default();
        if learned_entries(&text) >= 3 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for shape in [
        format!("select v from {data} where id = ?"),
        format!("update {data} set v = ? where id = ?"),
    ] {
        assert!(text.contains(&shape), "{shape} not learned:\n{text}");
    }
    assert!(text.contains(&format!("user = \"{APP_USER}\"")), "{text}");
    let ev = learning.wait_audit(WAIT, |e| e["kind"] == "statement" && e["user"] == APP_USER);
    assert!(ev
        .iter()
        .filter(|e| e["kind"] == "statement" && e["user"] == APP_USER)
        .all(|e| e["mode"] == "learn" && e["verdict"] != "denied"));
    drop(learning);

    // The team reviewed the file; enforce it. Learned shapes run with any
    // literal values; anything else is refused.
    let enforcing = Danxia::start_with(Options {
        extra_toml: policy_toml(dir.path(), "enforce", &allowlist),
        ..Options::default()
    });
    let (out, err) = psql_script(
        &enforcing,
        APP_USER,
        &format!(
            "select v from {data} where id = 2;\nselect v from {data} where id = 1;\n\
             select 'unlearned';\nselect v from {data};\ndelete from {data} where id = 1;\n"
        ),
    );
    assert_eq!(
        out.trim(),
        "b",
        "learned shapes run with any literal: {out}\n{err}"
    );
    assert_eq!(
        err.matches("(rule deny-not-allowlisted)").count(),
        3,
        "unlearned shapes are refused:\n{err}"
    );
    assert!(
        !err.contains(&format!("select v from {data} where id")),
        "{err}"
    );
    // The administrator is outside the rule.
    let (_, err) = psql_script(
        &enforcing,
        ADMIN,
        &format!("select count(*) from {data};\n"),
    );
    assert!(err.is_empty(), "{err}");
    drop_tables(&[&data, &secret]);
}

#[test]
fn hot_reload_swaps_atomically_and_keeps_the_old_policy_on_errors() {
    let (data, secret) = setup_tables("reload");
    let (d, dir) = start(&[("10-test.toml", POLICY)], "enforce");
    let denied = |d: &Danxia| {
        let (_, err) = psql_script(d, APP_USER, &format!("select s from {secret};\n"));
        err.contains("(rule deny-secret-table)")
    };
    assert!(denied(&d));
    let (code, body) = d.http_get("/policy");
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).expect("json");
    let v1 = status["version"].as_u64().expect("version");
    assert_eq!(status["rules"], 4);

    // A broken file (a typo in a key) is refused with file, line and a
    // suggestion; the running policy stays.
    fs::write(
        dir.path().join("20-broken.toml"),
        "[[rule]]\nid = \"x\"\ndescription = \"typo\"\naction = \"deny\"\ntabels = [\"t\"]\n",
    )
    .expect("write broken");
    let (code, body) = d.http_post("/policy/reload");
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("20-broken.toml:5"), "{body}");
    assert!(body.contains("tables"), "did-you-mean missing: {body}");
    assert!(denied(&d), "the old policy must stay in force");
    let (_, body) = d.http_get("/policy");
    let status: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status["version"].as_u64(), Some(v1));
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("tabels")),
        "{status}"
    );
    assert!(d.metric("danxia_policy_reloads_total", &[("result", "error")]) >= 1.0);
    assert!(
        d.stderr().contains("policy reload failed"),
        "the log says why"
    );

    // Fixing the file is picked up by the file watcher (no signal needed):
    // the new rule denies what was allowed.
    fs::write(
        dir.path().join("20-broken.toml"),
        format!(
            "[[rule]]\nid = \"deny-data-reads\"\ndescription = \"fixed\"\naction = \"deny\"\n\
             users = [\"{APP_USER}\"]\ntables = [\"{data}\"]\noperations = [\"select\"]\n"
        ),
    )
    .expect("write fixed");
    d.wait_metric(
        WAIT,
        "danxia_policy_reloads_total",
        &[("result", "ok")],
        |v| v >= 1.0,
    );
    let (_, err) = psql_script(&d, APP_USER, &format!("select * from {data};\n"));
    assert!(err.contains("(rule deny-data-reads)"), "{err}");
    // The audit names the policy version that decided each statement.
    let events = d.wait_audit(WAIT, |e| refused(e, "deny-data-reads"));
    let old = events
        .iter()
        .find(|e| refused(e, "deny-secret-table"))
        .expect("old refusal");
    let new = events
        .iter()
        .find(|e| refused(e, "deny-data-reads"))
        .expect("new refusal");
    assert_eq!(old["policy_version"].as_u64(), Some(v1), "{old}");
    assert!(new["policy_version"].as_u64() > Some(v1), "{new}");
    let (_, body) = d.http_get("/policy");
    let status: Value = serde_json::from_str(&body).expect("json");
    assert!(status["version"].as_u64() > Some(v1));
    assert!(status["last_error"].is_null(), "{status}");

    // SIGHUP reloads too: remove the rule, signal, and it is gone.
    fs::remove_file(dir.path().join("20-broken.toml")).expect("rm");
    let before = d.metric("danxia_policy_reloads_total", &[("result", "ok")]);
    d.signal(libc::SIGHUP);
    d.wait_metric(
        WAIT,
        "danxia_policy_reloads_total",
        &[("result", "ok")],
        |v| v > before,
    );
    let (out, err) = psql_script(&d, APP_USER, &format!("select count(*) from {data};\n"));
    assert!(err.is_empty() && out.trim() == "0", "{out}\n{err}");
    drop_tables(&[&data, &secret]);
}

#[test]
fn a_policy_that_does_not_load_stops_startup_with_the_reason() {
    let dir = policy_dir(&[(
        "10-bad.toml",
        "[[rule]]\nid = \"a\"\ndescription = \"d\"\naction = \"deny\"\naddresses = [\"10.0.0.0/33\"]\n",
    )]);
    let cfg_dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg_dir.path().join("danxia.toml");
    fs::write(
        &cfg,
        format!(
            "[admin]\nlisten = \"127.0.0.1:{}\"\n[audit]\ndir = {}\n{}\n[[listener]]\nname = \"pg\"\nprotocol = \"postgres\"\nlisten = \"127.0.0.1:{}\"\nbackend = \"127.0.0.1:5432\"\n",
            free_port(),
            toml_str(&cfg_dir.path().join("audit").display().to_string()),
            policy_toml(dir.path(), "enforce", &dir.path().join("a.toml")),
            free_port()
        ),
    )
    .expect("config");
    let out = run(std::process::Command::new(bin_path())
        .arg("run")
        .arg("--config")
        .arg(&cfg));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10-bad.toml:5"), "{err}");
    assert!(err.contains("10.0.0.0/33"), "{err}");
}

#[test]
fn identity_keys_address_application_and_time_windows() {
    let (data, secret) = setup_tables("ident");
    // Shanghai hour now, and an hour-long window two hours from now: open
    // all day vs. closed now (the test takes seconds, not hours).
    let hour: u32 = run_ok(
        std::process::Command::new("date")
            .env("TZ", "Asia/Shanghai")
            .arg("+%H"),
    )
    .trim()
    .parse()
    .expect("hour");
    let closed = format!("{:02}:00-{:02}:00", (hour + 2) % 24, (hour + 3) % 24);
    let policy = format!(
        r#"
[[rule]]
id = "deny-evil-tools"
description = "Tools calling themselves evil-* may not read the data table from this host"
action = "deny"
addresses = ["127.0.0.0/8", "!127.0.0.2"]
applications = ["evil-*"]
tables = ["{data}"]

[[rule]]
id = "deny-outside-office-hours"
description = "Never matches now: the window is closed"
action = "deny"
time = ["{closed}"]
tables = ["{data}"]

[[rule]]
id = "deny-elsewhere"
description = "Clients outside loopback are refused"
action = "deny"
addresses = ["!127.0.0.0/8"]

[[rule]]
id = "deny-all-day"
description = "The secret table, at any hour of any day"
action = "deny"
time = ["mon-sun 00:00-24:00"]
tables = ["{secret}"]
"#
    );
    let (d, _p) = start(&[("10-identity.toml", &policy)], "enforce");
    let as_app = |app: &str, script: &str| {
        let out = run_with_stdin(
            d.psql(APP_USER, DB)
                .args(["-v", "ON_ERROR_STOP=0", "-At"])
                .env("PGAPPNAME", app),
            script,
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (out, err) = as_app("evil-scraper", &format!("select count(*) from {data};\n"));
    assert!(err.contains("(rule deny-evil-tools)"), "{out}\n{err}");
    let (out, err) = as_app("billing", &format!("select count(*) from {data};\n"));
    assert!(
        err.is_empty() && out.trim() == "0",
        "closed window must not match: {out}\n{err}"
    );
    // application_name changed mid-session (the server reports it): the
    // next statements are decided for the new name.
    let (out, err) = as_app(
        "billing",
        &format!(
            "select count(*) from {data};\nset application_name = 'evil-renamed';\n\
             select 'sync';\nselect count(*) from {data};\n"
        ),
    );
    assert_eq!(
        err.matches("(rule deny-evil-tools)").count(),
        1,
        "{out}\n{err}"
    );
    let (_, err) = as_app("billing", &format!("select * from {secret};\n"));
    assert!(err.contains("(rule deny-all-day)"), "{err}");
    let events = d.wait_audit(WAIT, |e| refused(e, "deny-evil-tools"));
    assert!(events
        .iter()
        .filter(|e| refused(e, "deny-evil-tools"))
        .all(|e| e["application"]
            .as_str()
            .is_some_and(|a| a.starts_with("evil-"))));
    drop_tables(&[&data, &secret]);
}

#[test]
fn classification_tags_and_levels_reach_rules_and_audit() {
    let (data, secret) = setup_tables("class");
    let dir = policy_dir(&[(
        "10-class.toml",
        r#"
[[rule]]
id = "deny-bulk-ids"
description = "Applications may not read every column of a table holding identity numbers"
action = "deny"
users = ["!postgres"]
tags = ["pii.id_number"]
conditions = ["select_star"]

[[rule]]
id = "alert-level-2"
description = "Reads of sensitive personal data are watched"
action = "alert"
min_level = 2
"#,
    )]);
    let classification = dir.path().join("classification.toml");
    fs::write(
        &classification,
        format!(
            "version = 1\n\n[[column]]\ntable = \"{data}\"\ncolumn = \"v\"\ntags = [\"pii.id_number\"]\nlevel = 2\n\
             evidence = {{ hits = 10, sampled = 10, name_match = \"\" }}\n"
        ),
    )
    .expect("classification");
    let d = Danxia::start_with(Options {
        extra_toml: format!(
            "{}classification = {}\n",
            policy_toml(dir.path(), "enforce", &dir.path().join("allow.toml")),
            toml_str(&classification.display().to_string())
        ),
        ..Options::default()
    });
    let (out, err) = psql_script(
        &d,
        APP_USER,
        &format!("select * from {data};\nselect id from {data};\nselect v from {data};\n"),
    );
    assert_eq!(
        err.matches("(rule deny-bulk-ids)").count(),
        1,
        "{out}\n{err}"
    );
    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "alert"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.starts_with("select v"))
    });
    let of = |text: &str| {
        events
            .iter()
            .find(|e| e["kind"] == "statement" && e["statement"] == text)
            .unwrap_or_else(|| panic!("no event for {text}"))
            .clone()
    };
    let star = of(&format!("select * from {data}"));
    assert_eq!(star["verdict"], "denied");
    assert_eq!(star["tags"], serde_json::json!(["pii.id_number"]));
    assert_eq!(star["level"], 2);
    // A column that is not classified touches nothing.
    let id = of(&format!("select id from {data}"));
    assert!(id["tags"].is_null() && id["level"].is_null(), "{id}");
    assert!(id["alerts"].is_null(), "{id}");
    let v = of(&format!("select v from {data}"));
    assert_eq!(v["verdict"], "allowed");
    assert_eq!(v["alerts"], serde_json::json!(["alert-level-2"]));
    assert_eq!(v["level"], 2);
    drop_tables(&[&data, &secret]);
}
