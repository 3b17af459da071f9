//! Real MySQL clients through danxia's `mysql` listener, compared with the
//! same client straight against MariaDB: the `mariadb` CLI, PyMySQL,
//! mysql-connector-python (pure Python, text and server-side prepared
//! statements; the C extension too when it loads) and MariaDB Connector/J
//! with `useServerPrepStmts=true`. Each client runs a fixed script once on
//! 127.0.0.1:3306 and once through danxia (the default pack enforced; root is
//! an administrator, so nothing is refused) and the two outputs must be
//! identical. Then the audit must describe what ran — protocol, listener,
//! user, database, statement, operation, tables, verdict, rule, outcome,
//! rows, error code and SQLSTATE, the protocol flow (`query` for COM_QUERY,
//! `prepared` for COM_STMT_EXECUTE, with the bound parameters) — the
//! metrics must count it under `listener="mysql"`, and the chain must
//! verify. The commands around statements (COM_PING, COM_INIT_DB,
//! COM_CHANGE_USER, COM_RESET_CONNECTION, COM_FIELD_LIST,
//! COM_STMT_SEND_LONG_DATA, COM_STMT_RESET) must work as they do directly.

use std::time::Duration;

use danxia_e2e::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

fn start() -> Danxia {
    require_mariadb();
    Danxia::start_with(Options {
        mysql: true,
        ..Options::default_pack()
    })
}

fn show(events: &[&Value]) -> String {
    events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The statement events whose text contains `needle`.
fn events_with<'a>(events: &'a [&'a Value], needle: &str) -> Vec<&'a Value> {
    events
        .iter()
        .copied()
        .filter(|e| e["statement"].as_str().is_some_and(|s| s.contains(needle)))
        .collect()
}

/// The one statement event whose text contains `needle`.
fn one_with<'a>(events: &'a [&'a Value], needle: &str) -> &'a Value {
    let found = events_with(events, needle);
    assert_eq!(
        found.len(),
        1,
        "want exactly one statement event containing {needle:?}; all mysql events:\n{}",
        show(events)
    );
    found[0]
}

/// `tables` names exactly `table` (unqualified as written, or qualified
/// with the default database `test`).
fn assert_table(e: &Value, table: &str) {
    let tables = e["tables"].as_array().cloned().unwrap_or_default();
    assert!(
        tables.len() == 1 && (tables[0] == table || tables[0] == format!("test.{table}").as_str()),
        "tables of {e} should be [{table:?}]"
    );
}

/// The fields every statement event of this file's administrator traffic
/// carries.
fn assert_common(e: &Value, user: &str, db: &str) {
    assert_eq!(e["protocol"], "mysql", "{e}");
    assert_eq!(e["listener"], "mysql", "{e}");
    assert_eq!(e["user"], user, "{e}");
    assert_eq!(e["database"], db, "{e}");
    assert_eq!(e["verdict"], "allowed", "{e}");
    assert!(
        e["rule"].is_string(),
        "every event names the deciding rule: {e}"
    );
    assert!(e["operation"].is_string(), "{e}");
    assert!(e["statement"].is_string(), "{e}");
    assert!(
        e["outcome"] == "ok" || e["outcome"] == "error",
        "outcome of {e}"
    );
}

fn assert_error(e: &Value, code: u64, sqlstate: &str) {
    assert_eq!(e["outcome"], "error", "{e}");
    assert_eq!(e["error_code"], code, "MySQL error number in {e}");
    assert_eq!(e["sqlstate"], sqlstate, "{e}");
}

fn shutdown_and_verify(d: &mut Danxia) {
    let status = d.shutdown();
    assert!(
        status.success(),
        "danxia exited with {status}:\n{}",
        d.stderr()
    );
    let v = d.audit_verify();
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success() && out.starts_with("OK"),
        "danxia audit verify failed ({}): {out}{}",
        v.status,
        String::from_utf8_lossy(&v.stderr)
    );
}

const CLI_SCRIPT: &str = r"drop table if exists danxia_my_cli;
create table danxia_my_cli (id int primary key, name varchar(50), note text, data blob) default charset=utf8mb4;
insert into danxia_my_cli values (1, 'alice', 'first', x'00ff'), (2, '数据库防火墙', '🔥 emoji', null), (3, 'O''Brien', 'tab\there', x'5c27');
select * from danxia_my_cli order by id;
select count(*), group_concat(name order by id separator '|') from danxia_my_cli;
update danxia_my_cli set note = 'updated' where id = 1;
select id, note from danxia_my_cli where id = 1 /* cli-marker */;
select * from danxia_no_such_table_cli;
delete from danxia_my_cli where id = 3;
select 1/0 as warned;
select id from danxia_my_cli order by id;
drop table danxia_my_cli;
";

#[test]
fn mysql_mariadb_cli_identical_audited_and_counted() {
    let mut d = start();
    // The script's first statement then always leaves a note (1051).
    mariadb_exec("drop table if exists danxia_my_cli");
    let run_cli = |port: u16| {
        let out = run_with_stdin(
            mariadb(port, "root", None, "test").args(["--force", "--show-warnings"]),
            CLI_SCRIPT,
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (direct_out, direct_err) = run_cli(MYSQL_DIRECT_PORT);
    assert!(
        direct_out.contains("数据库防火墙") && direct_out.contains("O'Brien"),
        "the script did not run directly:\n{direct_out}\n{direct_err}"
    );
    assert!(
        direct_err.contains("ERROR 1146 (42S02)"),
        "the unknown table is an error directly:\n{direct_err}"
    );
    let (proxy_out, proxy_err) = run_cli(d.mysql_port);
    assert_same_text("mariadb CLI stdout", &direct_out, &proxy_out);
    assert_same_text("mariadb CLI stderr", &direct_err, &proxy_err);

    d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["listener"] == "mysql"
    });
    let events = d.audit_events();
    let starts: Vec<&Value> = of_kind(&events, "session_start")
        .into_iter()
        .filter(|e| e["listener"] == "mysql")
        .collect();
    assert_eq!(starts.len(), 1, "{}", show(&starts));
    assert_eq!(starts[0]["user"], "root", "{}", starts[0]);
    assert_eq!(starts[0]["database"], "test", "{}", starts[0]);
    assert_eq!(starts[0]["protocol"], "mysql", "{}", starts[0]);

    let st = mysql_statements(&events);
    // The CLI in batch mode sends exactly the script's statements.
    // `--show-warnings` makes the client send SHOW WARNINGS after each
    // statement that left a note, warning or error.
    let want: &[(&str, Option<&str>, Option<u64>, &str)] = &[
        ("ddl", Some("danxia_my_cli"), None, "ok"),
        ("show", None, None, "ok"),
        ("ddl", Some("danxia_my_cli"), None, "ok"),
        ("insert", Some("danxia_my_cli"), Some(3), "ok"),
        ("select", Some("danxia_my_cli"), Some(3), "ok"),
        ("select", Some("danxia_my_cli"), Some(1), "ok"),
        ("update", Some("danxia_my_cli"), Some(1), "ok"),
        ("select", Some("danxia_my_cli"), Some(1), "ok"),
        ("select", Some("danxia_no_such_table_cli"), None, "error"),
        ("show", None, None, "ok"),
        ("delete", Some("danxia_my_cli"), Some(1), "ok"),
        ("select", None, Some(1), "ok"),
        ("show", None, None, "ok"),
        ("select", Some("danxia_my_cli"), Some(2), "ok"),
        ("ddl", Some("danxia_my_cli"), None, "ok"),
    ];
    assert_eq!(
        st.len(),
        want.len(),
        "one event per statement the CLI sent:\n{}",
        show(&st)
    );
    for (i, (e, (op, table, rows, outcome))) in st.iter().zip(want).enumerate() {
        assert_common(e, "root", "test");
        assert_eq!(e["operation"], *op, "event {i}: {e}");
        assert_eq!(e["outcome"], *outcome, "event {i}: {e}");
        assert_eq!(e["protocol_flow"], "query", "event {i}: {e}");
        if let Some(t) = table {
            assert_table(e, t);
        }
        if let Some(r) = rows {
            assert_eq!(e["rows"], *r, "event {i} rows: {e}");
        }
    }
    let marker = one_with(&st, "cli-marker");
    assert_eq!(
        marker["statement"]
            .as_str()
            .map(|s| s.trim_end_matches([';', ' '])),
        Some("select id, note from danxia_my_cli where id = 1 /* cli-marker */"),
        "statement text kept in full: {marker}"
    );
    assert_error(one_with(&st, "danxia_no_such_table_cli"), 1146, "42S02");

    let mysql = ("listener", "mysql");
    // The CLI has gone.
    d.wait_metric(WAIT, "danxia_connections_active", &[mysql], |v| v == 0.0);
    let m = d.metrics();
    let count = |name: &str, labels: &[(&str, &str)]| metric_sum(&m, name, labels).unwrap_or(0.0);
    assert!(
        count(
            "danxia_statements_total",
            &[mysql, ("operation", "select"), ("outcome", "ok")]
        ) >= 5.0,
        "{m}"
    );
    assert!(
        count(
            "danxia_statements_total",
            &[mysql, ("operation", "insert"), ("outcome", "ok")]
        ) >= 1.0,
        "{m}"
    );
    assert!(
        count(
            "danxia_statements_total",
            &[mysql, ("operation", "ddl"), ("outcome", "ok")]
        ) >= 3.0,
        "{m}"
    );
    assert!(
        count("danxia_statements_total", &[mysql, ("outcome", "error")]) >= 1.0,
        "{m}"
    );
    assert!(
        count(
            "danxia_policy_decisions_total",
            &[mysql, ("verdict", "allowed")]
        ) >= want.len() as f64,
        "{m}"
    );
    assert!(count("danxia_connections_total", &[mysql]) >= 1.0, "{m}");
    for dir in ["in", "out"] {
        assert!(
            count("danxia_client_bytes_total", &[mysql, ("direction", dir)]) > 0.0,
            "{m}"
        );
        assert!(
            count("danxia_backend_bytes_total", &[mysql, ("direction", dir)]) > 0.0,
            "{m}"
        );
    }
    assert!(
        metric_sum(&m, "danxia_statement_duration_seconds_count", &[mysql]).unwrap_or(0.0)
            >= want.len() as f64,
        "statement durations observed for the mysql listener: {m}"
    );
    assert_eq!(
        count("danxia_statements_total", &[("listener", "pg")]),
        0.0,
        "MySQL statements are not counted on the pg listener: {m}"
    );
    shutdown_and_verify(&mut d);
}

/// PyMySQL: client-side parameter interpolation of many types, transactions
/// (PyMySQL's default is autocommit off), a duplicate key, COM_PING,
/// COM_INIT_DB (`select_db`), COM_FIELD_LIST.
fn pymysql_steps(table: &str) -> Value {
    let all_bytes: String = (0u8..=255).map(|b| format!("{b:02x}")).collect();
    json!([
        {"op": "query", "sql": format!("drop table if exists {table}")},
        {"op": "query", "sql": format!(
            "create table {table} (id int primary key auto_increment, name varchar(100), qty int, \
             price decimal(12,3), ratio double, born date, seen datetime(6), flag boolean, data blob, note text) \
             default charset=utf8mb4")},
        {"op": "query", "label": "insert alice", "sql": format!(
            "insert into {table} (name, qty, price, ratio, born, seen, flag, data, note) \
             values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"),
         "params": ["alice", 42, {"decimal": "12345.678"}, {"float": "0.5"}, {"date": "1990-02-28"},
                    {"datetime": "2024-02-29 23:59:58.123456"}, true, {"hex": all_bytes}, "first"]},
        {"op": "query", "label": "insert unicode", "sql": format!(
            "insert into {table} (name, qty, price, ratio, born, seen, flag, data, note) \
             values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"),
         "params": ["数据库防火墙 🔥", -2147483648, {"decimal": "-0.001"}, {"float": "-1e300"}, null, null, false,
                    {"hex": ""}, "O'Brien \\ \"q\" ; -- not a comment"]},
        {"op": "query", "label": "insert nulls", "sql": format!("insert into {table} (name) values (%s), (%s)"),
         "params": [null, "second"]},
        {"op": "commit", "label": "commit"},
        {"op": "query", "label": "select all", "sql": format!("select * from {table} order by id")},
        {"op": "query", "label": "select alice", "sql": format!(
            "select id, name, qty from {table} where name = %s and qty >= %s"), "params": ["alice", 42]},
        {"op": "query", "label": "insert rolled back", "sql": format!("insert into {table} (name) values ('gone')")},
        {"op": "rollback", "label": "rollback"},
        {"op": "query", "label": "count", "sql": format!("select count(*), sum(name = 'gone') from {table}")},
        {"op": "query", "label": "duplicate", "sql": format!("insert into {table} (id, name) values (1, 'dup')")},
        {"op": "query", "label": "warning", "sql": "select 1/0 as warned, cast('12abc' as signed) as truncated"},
        {"op": "ping", "label": "ping"},
        {"op": "select_db", "label": "init_db", "database": "mysql"},
        {"op": "query", "label": "in mysql", "sql": "select database(), count(*) > 0 from db"},
        {"op": "select_db", "database": "test"},
        {"op": "field_list", "label": "field_list", "table": table},
        {"op": "query", "label": "drop", "sql": format!("drop table {table}")},
    ])
}

#[test]
fn mysql_pymysql_identical_and_audited() {
    let mut d = start();
    let table = "danxia_my_pymysql";
    let steps = pymysql_steps(table);
    let conn = MysqlConn::root("pymysql", MYSQL_DIRECT_PORT);
    let direct = conn.steps(&steps);
    // The script is meaningful: the rows and the error came back directly.
    assert_eq!(
        direct.step("select alice")["results"][0]["rows"],
        json!([[1, "alice", 42]]),
        "{}",
        direct.stdout
    );
    assert_eq!(direct.step("duplicate")["error"]["errno"], 1062);
    assert!(
        direct.step("field_list")["value"]
            .as_array()
            .is_some_and(|f| f.len() == 10),
        "COM_FIELD_LIST lists the columns: {}",
        direct.step("field_list")
    );
    let proxy = conn.on(d.mysql_port).steps(&steps);
    assert_same_json_lines("PyMySQL", &direct.lines, &proxy.lines);

    d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["listener"] == "mysql"
    });
    let events = d.audit_events();
    let st = mysql_statements(&events);
    let alice = one_with(&st, "values ('alice'");
    assert_common(alice, "root", "test");
    assert_eq!(alice["operation"], "insert", "{alice}");
    assert_eq!(alice["protocol_flow"], "query", "{alice}");
    assert_eq!(alice["rows"], 1, "{alice}");
    assert_eq!(alice["outcome"], "ok", "{alice}");
    assert_table(alice, table);
    let sel = one_with(&st, "where name = 'alice' and qty >= 42");
    assert_eq!(sel["operation"], "select", "{sel}");
    assert_eq!(sel["rows"], 1, "{sel}");
    let dup = one_with(&st, "values (1, 'dup')");
    assert_error(dup, 1062, "23000");
    // COM_INIT_DB moved the session to `mysql`: the statement after it is
    // audited there.
    let in_mysql = one_with(&st, "from db");
    assert_eq!(in_mysql["database"], "mysql", "{in_mysql}");
    assert_eq!(in_mysql["outcome"], "ok", "{in_mysql}");
    let after = one_with(&st, &format!("drop table {table}"));
    assert_eq!(after["database"], "test", "{after}");
    for e in [alice, sel, dup, in_mysql, after] {
        assert_eq!(
            e["protocol_flow"], "query",
            "PyMySQL sends SQL as COM_QUERY: {e}"
        );
    }
    for e in &st {
        assert_common(e, "root", e["database"].as_str().unwrap_or("?"));
    }
    shutdown_and_verify(&mut d);
}

/// mysql-connector-python: text and server-side prepared statements
/// (binary protocol) with parameters of many types, re-execution of a
/// prepared statement (COM_STMT_RESET each time), a parameter streamed with
/// COM_STMT_SEND_LONG_DATA, COM_PING, COM_INIT_DB, COM_RESET_CONNECTION and
/// COM_CHANGE_USER (to the application account and back).
fn connector_steps(table: &str) -> Value {
    let ins = format!(
        "insert into {table} (name, qty, price, born, seen, data, note) values (?, ?, ?, ?, ?, ?, ?)"
    );
    let sel = format!(
        "select id, name, qty, price, born, seen, data, note from {table} where name = ? and qty >= ?"
    );
    json!([
        {"op": "query", "sql": format!("drop table if exists {table}")},
        {"op": "query", "sql": format!(
            "create table {table} (id int primary key auto_increment, name varchar(100), qty int, \
             price decimal(12,3), born date, seen datetime(6), data longblob, note text) default charset=utf8mb4")},
        {"op": "prepared", "label": "insert alice", "sql": ins,
         "params": ["alice", 42, {"decimal": "12.5"}, {"date": "1990-02-28"},
                    {"datetime": "2024-02-29 23:59:58.123456"}, {"hex": "00ff5c2722"}, "first"]},
        {"op": "prepared", "label": "insert unicode", "sql": ins,
         "params": ["数据库防火墙 🔥", -5, {"decimal": "-0.001"}, null, null, {"hex": ""},
                    "O'Brien \\ \"q\" ; -- not a comment"]},
        {"op": "prepared", "label": "insert nulls", "sql": ins,
         "params": [null, null, null, null, null, null, null]},
        {"op": "prepared", "label": "select alice", "sql": sel, "params": ["alice", 42]},
        {"op": "prepared", "label": "select again", "sql": sel, "params": ["数据库防火墙 🔥", -5]},
        {"op": "prepared", "label": "select none", "sql": sel, "params": ["nobody", null]},
        {"op": "prepared", "label": "long data", "sql": format!("insert into {table} (name, data) values (?, ?)"),
         "params": ["streamed", {"stream": {"random_bytes": 300000, "seed": 5}}]},
        {"op": "query", "label": "long data back", "sql": format!(
            "select name, length(data), sha2(data, 256) from {table} where name = 'streamed'")},
        {"op": "query", "label": "text select", "sql": format!("select * from {table} order by id")},
        {"op": "prepared", "label": "duplicate", "sql": format!("insert into {table} (id, name) values (?, ?)"),
         "params": [1, "dup"]},
        {"op": "prepared", "label": "syntax error", "sql": "selec ? from nowhere", "params": [1]},
        {"op": "query", "label": "counters", "sql":
            "select variable_name, variable_value from information_schema.session_status where variable_name in \
             ('COM_STMT_PREPARE', 'COM_STMT_EXECUTE', 'COM_STMT_RESET', 'COM_STMT_SEND_LONG_DATA', \
              'COM_STMT_CLOSE', 'COM_CHANGE_DB') order by 1"},
        {"op": "ping", "label": "ping"},
        {"op": "select_db", "label": "init_db", "database": "mysql"},
        {"op": "query", "label": "in mysql", "sql": "select database(), count(*) > 0 from db"},
        {"op": "select_db", "database": "test"},
        {"op": "query", "label": "set variable", "sql": "set @danxia_reset_me = 1"},
        {"op": "reset_connection", "label": "reset"},
        {"op": "query", "label": "after reset", "sql": "select @danxia_reset_me, database()"},
        {"op": "change_user", "label": "change user", "user": MYSQL_APP_USER, "password": MYSQL_APP_PASSWORD,
         "database": "test"},
        {"op": "query", "label": "as app", "sql": format!(
            "select current_user(), database(), count(*) from {table} where id > 0")},
        {"op": "prepared", "label": "app prepared", "sql": format!("select name from {table} where id = ?"),
         "params": [1]},
        {"op": "change_user", "label": "back to root", "user": "root", "password": "", "database": "test"},
        {"op": "query", "label": "drop", "sql": format!("drop table {table}")},
    ])
}

fn check_connector_run(driver: &str, d: &Danxia, table: &str) {
    let steps = connector_steps(table);
    let conn = MysqlConn::root(driver, MYSQL_DIRECT_PORT).with(&["--autocommit", "on"]);
    let direct = conn.steps(&steps);
    assert_eq!(
        direct.step("select alice")["results"][0]["rows"][0][1],
        "alice",
        "{}",
        direct.stdout
    );
    assert_eq!(
        direct.step("long data back")["results"][0]["rows"][0][1],
        300000
    );
    assert_eq!(direct.step("duplicate")["error"]["errno"], 1062);
    assert_eq!(
        direct.step("as app")["results"][0]["rows"][0][0],
        "app@127.0.0.1",
        "{}",
        direct.stdout
    );
    // The commands reached the server: its own per-session counters.
    let counters: std::collections::BTreeMap<String, String> = direct.step("counters")["results"]
        [0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or("").to_string(),
                r[1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for c in [
        "COM_STMT_PREPARE",
        "COM_STMT_EXECUTE",
        "COM_STMT_RESET",
        "COM_STMT_SEND_LONG_DATA",
    ] {
        assert!(
            counters.get(c).is_some_and(|v| v != "0"),
            "{driver} used {c} directly: {counters:?}"
        );
    }
    let proxy = conn.on(d.mysql_port).steps(&steps);
    assert_same_json_lines(
        &format!("mysql-connector-python ({driver})"),
        &direct.lines,
        &proxy.lines,
    );
}

#[test]
fn mysql_connector_python_text_and_prepared_identical_and_audited() {
    ensure_mysql_app_user();
    let mut d = start();
    let table = "danxia_my_connector";
    check_connector_run("connector-pure", &d, table);

    d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["listener"] == "mysql"
    });
    let events = d.audit_events();
    let st = mysql_statements(&events);

    // Prepared executes: flow, parameters, rows.
    let ins: Vec<&Value> = events_with(&st, "insert into danxia_my_connector (name, qty")
        .into_iter()
        .filter(|e| e["protocol_flow"] == "prepared")
        .collect();
    assert_eq!(ins.len(), 3, "three executes of the insert:\n{}", show(&st));
    let params = ins[0]["params"].as_str().unwrap_or("");
    assert!(
        params.contains("'alice'") && params.contains("42"),
        "the bound parameters are audited: {}",
        ins[0]
    );
    assert!(
        ins[1]["params"]
            .as_str()
            .is_some_and(|p| p.contains("数据库防火墙")),
        "UTF-8 parameters audited as text: {}",
        ins[1]
    );
    for e in &ins {
        assert_common(e, "root", "test");
        assert_eq!(e["operation"], "insert", "{e}");
        assert_eq!(e["rows"], 1, "{e}");
        assert_eq!(e["outcome"], "ok", "{e}");
        assert_table(e, table);
        assert!(
            e["statement"]
                .as_str()
                .is_some_and(|s| s.contains("values (?, ?, ?, ?, ?, ?, ?)")),
            "the prepared text with its placeholders: {e}"
        );
    }
    let sel: Vec<&Value> = events_with(&st, "where name = ? and qty >= ?")
        .into_iter()
        .filter(|e| e["protocol_flow"] == "prepared")
        .collect();
    assert_eq!(
        sel.len(),
        3,
        "one event per execute of the same prepared select:\n{}",
        show(&st)
    );
    assert!(
        sel[0]["params"]
            .as_str()
            .is_some_and(|p| p.contains("'alice'") && p.contains("42")),
        "{}",
        sel[0]
    );
    assert_eq!(sel[0]["rows"], 1, "{}", sel[0]);
    assert_eq!(sel[2]["rows"], 0, "{}", sel[2]);
    assert_eq!(sel[0]["operation"], "select", "{}", sel[0]);
    let dup: Vec<&Value> = events_with(&st, "(id, name) values (?, ?)");
    assert!(
        dup.iter().any(|e| e["outcome"] == "error"
            && e["error_code"] == 1062
            && e["sqlstate"] == "23000"),
        "the duplicate key of a prepared execute: {}",
        show(&dup)
    );
    let text: Vec<&Value> = events_with(&st, "order by id")
        .into_iter()
        .filter(|e| e["protocol_flow"] == "query")
        .collect();
    assert_eq!(text.len(), 1, "{}", show(&st));
    assert_eq!(text[0]["rows"], 4, "{}", text[0]);

    // COM_INIT_DB and COM_CHANGE_USER change what later events say.
    let in_mysql = one_with(&st, "from db");
    assert_eq!(in_mysql["database"], "mysql", "{in_mysql}");
    let as_app = one_with(&st, "select current_user()");
    assert_eq!(as_app["user"], MYSQL_APP_USER, "{as_app}");
    assert_eq!(as_app["outcome"], "ok", "{as_app}");
    let app_prepared: Vec<&Value> =
        events_with(&st, "select name from danxia_my_connector where id = ?")
            .into_iter()
            .filter(|e| e["protocol_flow"] == "prepared")
            .collect();
    assert_eq!(app_prepared.len(), 1, "{}", show(&st));
    assert_eq!(
        app_prepared[0]["user"], MYSQL_APP_USER,
        "{}",
        app_prepared[0]
    );
    let drop = one_with(&st, "drop table danxia_my_connector");
    assert_eq!(drop["user"], "root", "back to root: {drop}");
    assert_eq!(drop["verdict"], "allowed", "{drop}");

    let m = d.metrics();
    assert!(
        metric_sum(
            &m,
            "danxia_statements_total",
            &[
                ("listener", "mysql"),
                ("operation", "select"),
                ("outcome", "ok")
            ]
        )
        .unwrap_or(0.0)
            >= 5.0,
        "{m}"
    );
    assert!(
        metric_sum(
            &m,
            "danxia_statements_total",
            &[("listener", "mysql"), ("outcome", "error")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );

    // The C extension speaks the same protocol through libmysqlclient's
    // code paths; it is optional (`mysql-connector-python` ships it only for
    // some platforms and it needs a matching OpenSSL).
    let probe = MysqlConn::root("connector-cext", MYSQL_DIRECT_PORT).try_steps(&json!([]));
    if probe.status.code() == Some(4) {
        eprintln!(
            "NOTE: mysql-connector-python's C extension is not available here, only the pure-Python \
             connector was compared: {}",
            probe.stderr.trim()
        );
    } else {
        check_connector_run("connector-cext", &d, "danxia_my_connector_cext");
    }
    shutdown_and_verify(&mut d);
}

#[test]
fn mysql_jdbc_server_prepared_identical_and_audited() {
    require_mariadb();
    let classes = compile_jdbc_script();
    let mut d = start();
    let table = "danxia_my_jdbc";
    let run_java = |port: u16| {
        run_ok(&mut jdbc_script(
            classes.path(),
            &["script", &jdbc_url(port, "root", None), table],
        ))
    };
    let direct = run_java(MYSQL_DIRECT_PORT);
    for want in [
        "select alice row: Integer(1) String(alice) Integer(42)",
        "batch: 50 statements",
        "duplicate error: 1062 23000",
        "syntax error: 1064 42000",
        "isValid: true",
        "catalog row: String(mysql)",
        "status row: String(COM_STMT_SEND_LONG_DATA) String(",
        "done",
    ] {
        assert!(
            direct.contains(want),
            "the JDBC script directly should print {want:?}:\n{direct}"
        );
    }
    assert!(
        !direct.contains("String(COM_STMT_SEND_LONG_DATA) String(0)"),
        "setBinaryStream used COM_STMT_SEND_LONG_DATA directly:\n{direct}"
    );
    let proxy = run_java(d.mysql_port);
    assert_same_text("JDBC script", &direct, &proxy);

    d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["listener"] == "mysql"
    });
    let events = d.audit_events();
    let st = mysql_statements(&events);
    let sel: Vec<&Value> = events_with(&st, "where name = ? and qty >= ?")
        .into_iter()
        .filter(|e| e["protocol_flow"] == "prepared")
        .collect();
    assert_eq!(
        sel.len(),
        3,
        "three executes of the prepared select:\n{}",
        show(&st)
    );
    let p = sel[0]["params"].as_str().unwrap_or("");
    assert!(
        p.contains("'alice'") && p.contains("42"),
        "parameters of the first execute: {}",
        sel[0]
    );
    assert_eq!(sel[0]["rows"], 1, "{}", sel[0]);
    assert_common(sel[0], "root", "test");
    assert_table(sel[0], table);
    let batch: Vec<&Value> = events_with(&st, "(name, qty, price) values (?, ?, ?)");
    assert_eq!(
        batch.len(),
        50,
        "one event per batched execute:\n{}",
        show(&batch)
    );
    assert!(
        batch
            .iter()
            .all(|e| e["operation"] == "insert" && e["outcome"] == "ok" && e["rows"] == 1),
        "{}",
        show(&batch)
    );
    let stream = events_with(&st, "(name, data, note) values (?, ?, ?)");
    assert_eq!(stream.len(), 1, "{}", show(&st));
    assert_eq!(stream[0]["outcome"], "ok", "{}", stream[0]);
    assert_eq!(stream[0]["rows"], 1, "{}", stream[0]);
    let dup: Vec<&Value> = events_with(&st, "(id, name) values (?, ?)");
    assert!(
        dup.iter()
            .any(|e| e["outcome"] == "error" && e["error_code"] == 1062),
        "{}",
        show(&dup)
    );
    let m = d.metrics();
    assert!(
        metric_sum(
            &m,
            "danxia_statements_total",
            &[
                ("listener", "mysql"),
                ("operation", "insert"),
                ("outcome", "ok")
            ]
        )
        .unwrap_or(0.0)
            >= 55.0,
        "{m}"
    );
    shutdown_and_verify(&mut d);
}
