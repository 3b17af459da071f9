//! The firewall on the MySQL listener, with the shipped default pack in
//! enforce mode and the application account `app` (not an administrator):
//! DDL/DCL, unbounded writes, server file access (LOAD_FILE, INTO OUTFILE,
//! LOAD DATA LOCAL INFILE), reading credentials and injection are refused
//! with an ERR packet 1142 / SQLSTATE 42000 whose message names danxia and
//! the rule; the session goes on; a refusal inside a transaction leaves the
//! transaction open exactly like a server error does; a multi-statement with
//! one refused statement runs none of it; COM_STMT_PREPARE of a refused
//! statement fails at prepare time (mysql-connector-python and Connector/J);
//! COM_CHANGE_USER to `app` brings `app`'s policy; a GBK connection cannot
//! hide a statement behind a 0x5C byte. Audit events and metrics record each
//! refusal.

use std::collections::BTreeMap;
use std::time::Duration;

use danxia_e2e::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);
const APP: &str = MYSQL_APP_USER;

/// The MySQL error a refusal is (ER_TABLEACCESS_DENIED_ERROR's number and
/// SQLSTATE: what clients already handle as "not allowed").
const DENY_ERRNO: u64 = 1142;
const DENY_SQLSTATE: &str = "42000";

fn start() -> Danxia {
    Danxia::start_with(Options {
        mysql: true,
        ..Options::default_pack()
    })
}

/// Creates `table` (id, name, qty) with three rows, owned by nobody in
/// particular (created by root; `app` has ALL on test.*).
fn seed(table: &str) {
    ensure_mysql_app_user();
    mariadb_exec(&format!(
        "drop table if exists {table}; \
         create table {table} (id int primary key, name varchar(50), qty int) default charset=utf8mb4; \
         insert into {table} values (1, 'alice', 10), (2, 'bob', 20), (3, '中文', 30)"
    ));
}

/// The table's rows, read directly, as the CLI prints them.
fn rows_of(table: &str) -> String {
    run_ok(
        mariadb_direct("root", None, "test")
            .arg("-N")
            .arg("-e")
            .arg(format!("select id, name, qty from {table} order by id")),
    )
}

fn drop_table(table: &str) {
    mariadb_exec(&format!("drop table if exists {table}"));
}

fn show(events: &[&Value]) -> String {
    events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The refused statement events (verdict denied) of the mysql listener.
fn refusals(d: &Danxia, n: usize) -> Vec<Value> {
    d.wait_audit_count(WAIT, n, |e| {
        e["kind"] == "statement" && e["listener"] == "mysql" && e["verdict"] == "denied"
    })
}

/// Asserts that a driver error (a mysql_steps.py line) is danxia's refusal
/// by one of `rules`.
fn assert_refused_line(line: &Value, rules: &[&str]) {
    let err = &line["error"];
    assert_eq!(err["errno"], DENY_ERRNO, "refusal error number: {line}");
    assert_eq!(err["sqlstate"], DENY_SQLSTATE, "refusal SQLSTATE: {line}");
    let msg = err["msg"].as_str().unwrap_or("");
    assert!(msg.contains("danxia"), "the message names danxia: {line}");
    assert!(
        rules.iter().any(|r| msg.contains(r)),
        "the message names the rule ({rules:?}): {line}"
    );
}

/// Asserts that a refusal's audit event is complete.
fn assert_refusal_event(e: &Value, user: &str, rules: &[&str]) {
    assert_eq!(e["protocol"], "mysql", "{e}");
    assert_eq!(e["listener"], "mysql", "{e}");
    assert_eq!(e["user"], user, "{e}");
    assert_eq!(e["database"], "test", "{e}");
    assert_eq!(e["verdict"], "denied", "{e}");
    assert_eq!(e["outcome"], "refused", "{e}");
    assert!(
        rules.iter().any(|r| e["rule"] == *r),
        "rule one of {rules:?}: {e}"
    );
    assert!(
        e["operation"].is_string() && e["statement"].is_string(),
        "{e}"
    );
}

#[test]
fn mysql_default_pack_refuses_attacks_from_the_application_cli() {
    let t = "danxia_my_pol_cli";
    seed(t);
    drop_table("danxia_my_pol_evil");
    let before = rows_of(t);
    let outfile = format!("/tmp/danxia_my_pol_out_{}", std::process::id());
    let _ = std::fs::remove_file(&outfile);
    let mut d = start();
    // (statement, rules that may refuse it)
    let cases: Vec<(String, &[&str])> = vec![
        (format!("drop table {t}"), &["deny-ddl-dcl"]),
        (
            "create table danxia_my_pol_evil (x int)".into(),
            &["deny-ddl-dcl"],
        ),
        (format!("truncate table {t}"), &["deny-ddl-dcl"]),
        (
            format!("grant all on test.* to '{APP}'@'%'"),
            &["deny-ddl-dcl"],
        ),
        (format!("delete from {t}"), &["deny-unbounded-writes"]),
        (
            format!("update {t} set qty = 0 where 1 = 1"),
            &["deny-unbounded-writes"],
        ),
        (
            "select load_file('/etc/passwd')".into(),
            &["deny-server-file-access", "deny-server-access-functions"],
        ),
        (
            format!("select * from {t} into outfile '{outfile}'"),
            &["deny-server-file-access"],
        ),
        (
            format!("select * from {t} where id = 1 or 1=1"),
            &["deny-injection"],
        ),
        (
            format!("select name from {t} where id = 1 union select password from mysql.user"),
            &[
                "deny-catalog-secret-signal",
                "deny-catalog-secrets",
                "deny-injection",
            ],
        ),
        ("select sleep(1)".into(), &["deny-injection"]),
    ];
    // One CLI session: each refused statement is followed by a marker the
    // session must still answer.
    let mut script = String::new();
    for (i, (sql, _)) in cases.iter().enumerate() {
        script.push_str(&format!("{sql};\nselect 'alive-{i}' as k;\n"));
    }
    let out = run_with_stdin(
        d.mariadb(APP, Some(MYSQL_APP_PASSWORD), "test")
            .args(["--force", "-N"]),
        &script,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // The CLI prints "ERROR 1142 (42000) at line N: message" per refusal.
    let errors: BTreeMap<usize, &str> = stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("ERROR ")?;
            let at = rest.find(" at line ")?;
            let after = &rest[at + 9..];
            let colon = after.find(':')?;
            let line: usize = after[..colon].parse().ok()?;
            Some((line, l))
        })
        .collect();
    for (i, (sql, rules)) in cases.iter().enumerate() {
        let line = 2 * i + 1;
        let err = errors.get(&line).unwrap_or_else(|| {
            panic!("{sql:?} (script line {line}) was not refused.\nstdout:\n{stdout}\nstderr:\n{stderr}")
        });
        assert!(
            err.starts_with("ERROR 1142 (42000)"),
            "{sql:?}: error 1142, SQLSTATE 42000: {err}"
        );
        assert!(err.contains("danxia"), "{sql:?}: {err}");
        assert!(
            rules.iter().any(|r| err.contains(r)),
            "{sql:?}: the message names one of {rules:?}: {err}"
        );
        assert!(
            stdout.lines().any(|l| l == format!("alive-{i}")),
            "the session goes on after {sql:?}:\n{stdout}"
        );
    }
    assert_eq!(
        errors.len(),
        cases.len(),
        "only the attacks are refused:\n{stderr}"
    );
    assert_eq!(rows_of(t), before, "the table is unchanged");
    let evil = mariadb_exec(
        "select count(*) from information_schema.tables where table_name = 'danxia_my_pol_evil'",
    );
    assert!(evil.ends_with("\n0\n"), "CREATE TABLE was refused: {evil}");
    assert!(
        !std::path::Path::new(&outfile).exists(),
        "INTO OUTFILE wrote {outfile}"
    );

    let ev = refusals(&d, cases.len());
    let ev: Vec<&Value> = ev.iter().collect();
    assert_eq!(ev.len(), cases.len(), "{}", show(&ev));
    for (e, (sql, rules)) in ev.iter().zip(&cases) {
        assert_refusal_event(e, APP, rules);
        assert_eq!(
            e["statement"]
                .as_str()
                .map(|s| s.trim_end_matches([';', ' '])),
            Some(sql.as_str()),
            "{e}"
        );
    }
    assert_eq!(ev[0]["operation"], "ddl", "{}", ev[0]);
    assert_eq!(ev[4]["operation"], "delete", "{}", ev[4]);
    let m = d.metrics();
    let denied = |rule: &str| {
        metric_sum(
            &m,
            "danxia_policy_decisions_total",
            &[("listener", "mysql"), ("rule", rule), ("verdict", "denied")],
        )
        .unwrap_or(0.0)
    };
    assert!(denied("deny-ddl-dcl") >= 4.0, "{m}");
    assert!(denied("deny-unbounded-writes") >= 2.0, "{m}");
    assert!(denied("deny-injection") >= 2.0, "{m}");
    assert!(
        metric_sum(
            &m,
            "danxia_statements_total",
            &[("listener", "mysql"), ("outcome", "refused")]
        )
        .unwrap_or(0.0)
            >= cases.len() as f64,
        "{m}"
    );

    // Ordinary application SQL: the same output as directly.
    let benign = format!(
        "select id, name from {t} where qty >= 20 order by id;\n\
         insert into {t} values (10, 'new', 1);\n\
         update {t} set qty = qty + 1 where id = 10;\n\
         select * from {t} where id = 10;\n\
         delete from {t} where id = 10;\n\
         select count(*) from {t};\n"
    );
    let direct = run_ok_stdin(
        mariadb_direct(APP, Some(MYSQL_APP_PASSWORD), "test").arg("-N"),
        &benign,
    );
    let through = run_ok_stdin(
        d.mariadb(APP, Some(MYSQL_APP_PASSWORD), "test").arg("-N"),
        &benign,
    );
    assert_same_text("application SQL", &direct, &through);
    let status = d.shutdown();
    assert!(status.success(), "{}", d.stderr());
    let v = d.audit_verify();
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    drop_table(t);
}

#[test]
fn mysql_load_data_local_infile_is_refused() {
    let t = "danxia_my_pol_load";
    let t_direct = "danxia_my_pol_load_direct";
    seed(t);
    seed(t_direct);
    let before = rows_of(t);
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("rows.tsv");
    std::fs::write(&file, "100\tloaded\t1\n101\tloaded\t2\n102\tloaded\t3\n").expect("write rows");
    let load = |table: &str| {
        format!(
            "load data local infile '{}' into table {table};\nselect 'alive' as k;\nselect count(*) from {table};\n",
            file.display()
        )
    };
    // Directly, the application account may load the file: the refusal
    // below is danxia's.
    let direct = run_ok_stdin(
        mariadb_direct(APP, Some(MYSQL_APP_PASSWORD), "test").args(["-N", "--local-infile=1"]),
        &load(t_direct),
    );
    assert!(
        direct.ends_with("alive\n6\n"),
        "LOAD DATA LOCAL works directly: {direct}"
    );

    let d = start();
    let out = run_with_stdin(
        d.mariadb(APP, Some(MYSQL_APP_PASSWORD), "test").args([
            "-N",
            "--local-infile=1",
            "--force",
        ]),
        &load(t),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR 1142 (42000)")
            && stderr.contains("danxia")
            && stderr.contains("deny-server-file-access"),
        "the CLI's LOAD DATA LOCAL is refused:\n{stderr}"
    );
    assert_eq!(stdout, "alive\n3\n", "the session goes on, nothing loaded");
    assert_eq!(rows_of(t), before);

    // PyMySQL with local_infile=True.
    let steps = json!([
        {"op": "local_infile", "label": "load", "content": "200\tpy\t1\n201\tpy\t2\n",
         "sql": format!("load data local infile '{{file}}' into table {t}")},
        {"op": "query", "label": "count", "sql": format!("select count(*) from {t}")},
    ]);
    let run = MysqlConn::app("pymysql", d.mysql_port)
        .with(&["--local-infile", "--autocommit", "on"])
        .steps(&steps);
    assert_refused_line(run.step("load"), &["deny-server-file-access"]);
    assert_eq!(
        run.step("count")["results"][0]["rows"],
        json!([[3]]),
        "{}",
        run.stdout
    );
    assert_eq!(rows_of(t), before);

    let ev = refusals(&d, 2);
    assert_eq!(ev.len(), 2, "{ev:?}");
    for e in &ev {
        assert_refusal_event(e, APP, &["deny-server-file-access"]);
        assert_eq!(e["operation"], "copy_in", "LOAD DATA is a copy_in: {e}");
        assert!(
            e["statement"]
                .as_str()
                .is_some_and(|s| s.contains("load data local infile")),
            "{e}"
        );
    }
    drop_table(t);
    drop_table(t_direct);
}

#[test]
fn mysql_refusal_inside_a_transaction_keeps_it_open_like_a_server_error() {
    let t = "danxia_my_pol_txn";
    seed(t);
    // The same program directly, each refused statement replaced by a
    // syntax error (a server-side error of the same moment): everything
    // else must match, transaction state included.
    let program = |refused_delete: &str, refused_update: &str| {
        json!([
            {"op": "query", "label": "begin", "sql": "start transaction"},
            {"op": "query", "label": "insert 100", "sql": format!("insert into {t} values (100, 'in-txn', 1)")},
            {"op": "query", "label": "denied delete", "sql": refused_delete},
            {"op": "query", "label": "insert 101", "sql": format!("insert into {t} values (101, 'after', 2)")},
            {"op": "query", "label": "both", "sql": format!("select id from {t} where id >= 100 order by id")},
            {"op": "rollback", "label": "rollback"},
            {"op": "query", "label": "none", "sql": format!("select count(*) from {t} where id >= 100")},
            {"op": "query", "label": "begin again", "sql": "begin"},
            {"op": "query", "label": "insert 102", "sql": format!("insert into {t} values (102, 'kept', 3)")},
            {"op": "query", "label": "denied update", "sql": refused_update},
            {"op": "commit", "label": "commit"},
            {"op": "query", "label": "kept", "sql": format!("select id, name from {t} where id >= 100 order by id")},
            {"op": "query", "label": "cleanup", "sql": format!("delete from {t} where id = 102")},
        ])
    };
    // Autocommit on: only the explicit transactions hold the inserts back.
    let direct = MysqlConn::app("pymysql", MYSQL_DIRECT_PORT)
        .with(&["--autocommit", "on"])
        .steps(&program("selec 'denied' delete", "selec 'denied' update"));
    assert_eq!(
        direct.step("both")["results"][0]["rows"],
        json!([[100], [101]])
    );
    assert_eq!(direct.step("none")["results"][0]["rows"], json!([[0]]));
    assert_eq!(direct.step("denied delete")["in_transaction"], true);
    let d = start();
    let proxy = MysqlConn::app("pymysql", d.mysql_port)
        .with(&["--autocommit", "on"])
        .steps(&program(
            &format!("delete from {t}"),
            &format!("update {t} set name = 'x' where 1 = 1"),
        ));
    assert_refused_line(proxy.step("denied delete"), &["deny-unbounded-writes"]);
    assert_refused_line(proxy.step("denied update"), &["deny-unbounded-writes"]);
    for (dl, pl) in direct.lines.iter().zip(&proxy.lines) {
        assert_eq!(
            dl["in_transaction"], pl["in_transaction"],
            "transaction state after {}:\n  direct: {dl}\n  danxia: {pl}",
            dl["label"]
        );
        if dl["label"]
            .as_str()
            .is_some_and(|l| l.starts_with("denied"))
        {
            assert_eq!(dl["error"]["errno"], 1064, "{dl}");
            continue;
        }
        assert_eq!(dl, pl, "step {} differs", dl["label"]);
    }
    assert_eq!(
        proxy.step("kept")["results"][0]["rows"],
        json!([[102, "kept"]]),
        "the transaction went on and committed after the refusal"
    );
    assert_eq!(
        rows_of(t),
        "1\talice\t10\n2\tbob\t20\n3\t中文\t30\n",
        "nothing else changed"
    );
    let ev = refusals(&d, 2);
    for e in &ev {
        assert_refusal_event(e, APP, &["deny-unbounded-writes"]);
    }
    drop_table(t);
}

#[test]
fn mysql_multi_statement_with_a_refused_statement_runs_none_of_it() {
    let t = "danxia_my_pol_multi";
    seed(t);
    let d = start();
    let steps = json!([
        {"op": "query", "label": "allowed", "sql": format!("select 1 as a; select name from {t} where id = 2")},
        {"op": "query", "label": "refused delete",
         "sql": format!("insert into {t} values (200, 'multi', 1); delete from {t}")},
        {"op": "query", "label": "insert did not run", "sql": format!("select count(*) from {t} where id = 200")},
        {"op": "query", "label": "refused drop",
         "sql": format!("select 'x;y' as s; drop table {t}")},
        {"op": "query", "label": "refused first",
         "sql": format!("drop table {t}; insert into {t} values (201, 'second', 1)")},
        {"op": "query", "label": "still there", "sql": format!("select count(*) from {t}")},
    ]);
    let conn = MysqlConn::app("pymysql", MYSQL_DIRECT_PORT).with(&[
        "--multi-statements",
        "--autocommit",
        "on",
    ]);
    let direct_allowed = conn.steps(&json!([steps[0].clone()]));
    let run = conn.on(d.mysql_port).steps(&steps);
    assert_eq!(
        direct_allowed.lines[0], run.lines[0],
        "an allowed multi-statement gives the same result sets as directly"
    );
    assert_eq!(
        run.step("allowed")["results"].as_array().map(Vec::len),
        Some(2)
    );
    assert_refused_line(run.step("refused delete"), &["deny-unbounded-writes"]);
    assert_refused_line(run.step("refused drop"), &["deny-ddl-dcl"]);
    assert_refused_line(run.step("refused first"), &["deny-ddl-dcl"]);
    assert_eq!(
        run.step("insert did not run")["results"][0]["rows"],
        json!([[0]]),
        "the allowed insert of a refused multi-statement did not run"
    );
    assert_eq!(run.step("still there")["results"][0]["rows"], json!([[3]]));
    assert_eq!(rows_of(t), "1\talice\t10\n2\tbob\t20\n3\t中文\t30\n");

    let ev = refusals(&d, 3);
    let rules: Vec<&str> = ev.iter().filter_map(|e| e["rule"].as_str()).collect();
    assert_eq!(
        rules,
        ["deny-unbounded-writes", "deny-ddl-dcl", "deny-ddl-dcl"],
        "{ev:?}"
    );
    let events = d.audit_events();
    let st = mysql_statements(&events);
    let never_ran: Vec<&&Value> = st
        .iter()
        .filter(|e| {
            e["statement"].as_str().is_some_and(|s| {
                s.contains("(200, 'multi', 1)") || s.contains("(201, 'second', 1)")
            })
        })
        .collect();
    assert!(
        never_ran.iter().all(|e| e["outcome"] != "ok"),
        "statements of a refused multi-statement are not audited as run: {never_ran:?}"
    );
    drop_table(t);
}

#[test]
fn mysql_prepare_of_a_refused_statement_fails_connector_and_jdbc() {
    let t = "danxia_my_pol_prep";
    seed(t);
    let before = rows_of(t);
    let classes = compile_jdbc_script();
    let d = start();
    let steps = json!([
        {"op": "prepared", "label": "delete", "sql": format!("delete from {t}"), "params": []},
        {"op": "prepared", "label": "select", "sql": format!("select name from {t} where id = ?"), "params": [1]},
        {"op": "prepared", "label": "drop", "sql": format!("drop table {t}"), "params": []},
        {"op": "prepared", "label": "injection",
         "sql": format!("select name from {t} where id = ? or 1=1"), "params": [1]},
        {"op": "prepared", "label": "after", "sql": format!("select count(*) from {t} where qty > ?"), "params": [0]},
    ]);
    let run = MysqlConn::app("connector-pure", d.mysql_port)
        .with(&["--autocommit", "on"])
        .steps(&steps);
    assert_refused_line(run.step("delete"), &["deny-unbounded-writes"]);
    assert_refused_line(run.step("drop"), &["deny-ddl-dcl"]);
    assert_refused_line(run.step("injection"), &["deny-injection"]);
    assert_eq!(
        run.step("select")["results"][0]["rows"],
        json!([["alice"]]),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.step("after")["results"][0]["rows"],
        json!([[3]]),
        "{}",
        run.stdout
    );
    assert_eq!(rows_of(t), before);

    // Connector/J with server-side prepared statements.
    let url = jdbc_url(d.mysql_port, APP, Some(MYSQL_APP_PASSWORD));
    for (sql, rule) in [
        (format!("delete from {t}"), "deny-unbounded-writes"),
        (format!("drop table {t}"), "deny-ddl-dcl"),
    ] {
        let out = run_ok(&mut jdbc_script(classes.path(), &["prepare", &url, &sql]));
        let err = out
            .lines()
            .find(|l| l.starts_with("prepare error: "))
            .unwrap_or_else(|| panic!("JDBC prepare of {sql:?} was not refused:\n{out}"));
        assert!(
            err.starts_with("prepare error: 1142 42000 ")
                && err.contains("danxia")
                && err.contains(rule),
            "{sql:?}: {err}"
        );
        assert!(
            out.contains("after row: String(still usable)"),
            "the JDBC connection goes on:\n{out}"
        );
    }
    assert_eq!(rows_of(t), before);

    let ev = refusals(&d, 5);
    let ev: Vec<&Value> = ev.iter().collect();
    for e in &ev {
        assert_refusal_event(
            e,
            APP,
            &["deny-unbounded-writes", "deny-ddl-dcl", "deny-injection"],
        );
    }
    drop_table(t);
}

#[test]
fn mysql_change_user_to_the_application_account_brings_its_policy() {
    let t = "danxia_my_pol_chuser";
    seed(t);
    let d = start();
    let steps = json!([
        {"op": "query", "label": "root may", "sql": format!("create table if not exists {t}_root (x int)")},
        {"op": "query", "sql": format!("drop table {t}_root")},
        {"op": "change_user", "label": "to app", "user": APP, "password": MYSQL_APP_PASSWORD, "database": "test"},
        {"op": "query", "label": "app drop", "sql": format!("drop table {t}")},
        {"op": "prepared", "label": "app prepared delete", "sql": format!("delete from {t}"), "params": []},
        {"op": "query", "label": "app select", "sql": format!("select current_user(), count(*) from {t} where id > 0")},
        {"op": "change_user", "label": "to root", "user": "root", "password": "", "database": "test"},
        {"op": "query", "label": "root again", "sql": format!("create table if not exists {t}_root (x int)")},
        {"op": "query", "sql": format!("drop table {t}_root")},
    ]);
    let run = MysqlConn::root("connector-pure", d.mysql_port)
        .with(&["--autocommit", "on"])
        .steps(&steps);
    assert!(
        run.step("root may").get("error").is_none(),
        "{}",
        run.stdout
    );
    assert_refused_line(run.step("app drop"), &["deny-ddl-dcl"]);
    assert_refused_line(run.step("app prepared delete"), &["deny-unbounded-writes"]);
    assert_eq!(
        run.step("app select")["results"][0]["rows"],
        json!([["app@127.0.0.1", 3]]),
        "{}",
        run.stdout
    );
    assert!(
        run.step("root again").get("error").is_none(),
        "after changing back, root is an administrator again: {}",
        run.stdout
    );
    let ev = refusals(&d, 2);
    assert_eq!(ev.len(), 2, "{ev:?}");
    for e in &ev {
        assert_refusal_event(e, APP, &["deny-ddl-dcl", "deny-unbounded-writes"]);
    }
    drop_table(t);
}

#[test]
fn mysql_gbk_connection_cannot_hide_a_refused_statement() {
    let t = "danxia_my_pol_gbk";
    seed(t);
    let d = start();
    // 乗 is 0x81 0x5C in GBK: a lexer that reads bytes as ASCII sees a
    // backslash escaping the closing quote, and the DELETE inside the
    // "string".
    let steps = json!([
        {"op": "query", "label": "hidden delete", "sql": format!("select '乗' as k; delete from {t}")},
        {"op": "query", "label": "tautology", "sql": format!("select name from {t} where name = '中文' or 1=1")},
        {"op": "query", "label": "allowed", "sql": format!("select id, name from {t} where name = '中文'")},
        {"op": "query", "label": "count", "sql": format!("select count(*) from {t}")},
    ]);
    let conn = MysqlConn::app("pymysql", d.mysql_port).with(&[
        "--charset",
        "gbk",
        "--multi-statements",
        "--autocommit",
        "on",
    ]);
    let run = conn.steps(&steps);
    assert_refused_line(run.step("hidden delete"), &["deny-unbounded-writes"]);
    assert_refused_line(run.step("tautology"), &["deny-injection"]);
    let direct = conn.on(MYSQL_DIRECT_PORT).steps(&json!([steps[2].clone()]));
    assert_eq!(direct.lines[0]["results"][0]["rows"], json!([[3, "中文"]]));
    assert_eq!(
        run.step("allowed")["results"],
        direct.lines[0]["results"],
        "an allowed GBK statement answers as directly"
    );
    assert_eq!(run.step("count")["results"][0]["rows"], json!([[3]]));

    let ev = refusals(&d, 2);
    let del = ev
        .iter()
        .find(|e| e["rule"] == "deny-unbounded-writes")
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert_eq!(
        del["statement"]
            .as_str()
            .map(|s| s.trim_end_matches([';', ' '])),
        Some(format!("delete from {t}").as_str()),
        "the refused statement, split where the server splits: {del}"
    );
    let taut = ev
        .iter()
        .find(|e| e["rule"] == "deny-injection")
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert!(
        taut["statement"]
            .as_str()
            .is_some_and(|s| s.contains("name = '中文' or 1=1")),
        "GBK text audited as UTF-8: {taut}"
    );
    drop_table(t);
}
