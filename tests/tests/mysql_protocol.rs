//! The MySQL wire protocol's corners through danxia's `mysql` listener, each
//! compared with MariaDB directly: multi-statement COM_QUERY
//! (CLIENT_MULTI_STATEMENTS) with several result sets and semicolons inside
//! strings and comments; packets over 16 MiB (a 17 MiB BLOB written and
//! read back, so both directions split across several packets); GBK
//! connections (PyMySQL and the `mariadb` CLI), whose statements must be
//! audited as the right UTF-8 text; and COM_QUIT, after which the backend
//! session must be gone.

use std::time::{Duration, Instant};

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

/// Statement events whose text contains `needle`.
fn events_with<'a>(events: &'a [&'a Value], needle: &str) -> Vec<&'a Value> {
    events
        .iter()
        .copied()
        .filter(|e| e["statement"].as_str().is_some_and(|s| s.contains(needle)))
        .collect()
}

#[test]
fn mysql_multi_statements_identical_and_audited_one_by_one() {
    let d = start();
    let t = "danxia_my_multi";
    let steps = json!([
        {"op": "query", "label": "two selects", "sql": "select 1 as a; select 2 as b"},
        {"op": "query", "label": "semicolons in strings",
         "sql": "select 'a;b' as s; select \"c;d\" as t; select 1 /* ; */ as u"},
        {"op": "query", "label": "backslash quote",
         "sql": "select 'x\\';y' as tricky; select 'after' as next"},
        {"op": "query", "label": "ddl and dml",
         "sql": format!("drop table if exists {t}; create table {t} (x int); \
                         insert into {t} values (1), (2), (3); update {t} set x = x * 10 where x > 1; \
                         select x from {t} order by x")},
        {"op": "query", "label": "error in the middle", "sql": "select 1; selec 2; select 3"},
        {"op": "query", "label": "after the error", "sql": format!("select count(*) from {t}")},
        {"op": "query", "label": "call", "sql": "select 'call' as c; do 1; select 2 as d"},
        {"op": "query", "label": "drop", "sql": format!("drop table {t}")},
    ]);
    let conn = MysqlConn::root("pymysql", MYSQL_DIRECT_PORT).with(&[
        "--multi-statements",
        "--autocommit",
        "on",
    ]);
    let direct = conn.steps(&steps);
    let two = &direct.step("two selects")["results"];
    assert_eq!(
        (
            &two[0]["columns"][0][0],
            &two[0]["rows"],
            &two[1]["columns"][0][0],
            &two[1]["rows"]
        ),
        (&json!("a"), &json!([[1]]), &json!("b"), &json!([[2]])),
        "two result sets directly: {}",
        direct.stdout
    );
    assert_eq!(
        direct.step("semicolons in strings")["results"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(direct.step("error in the middle")["error"]["errno"], 1064);
    let proxy = conn.on(d.mysql_port).steps(&steps);
    assert_same_json_lines("PyMySQL multi-statements", &direct.lines, &proxy.lines);

    // One audit event per statement of a multi-statement COM_QUERY.
    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "statement"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.contains(&format!("drop table {t}")) && !s.contains("if exists"))
    });
    let st = mysql_statements(&events);
    let two: Vec<&Value> = st
        .iter()
        .copied()
        .filter(|e| {
            let s = e["statement"]
                .as_str()
                .unwrap_or("")
                .trim()
                .trim_end_matches(';')
                .trim();
            s == "select 1 as a" || s == "select 2 as b"
        })
        .collect();
    assert_eq!(two.len(), 2, "one event per statement:\n{}", show(&st));
    assert!(
        two.iter().all(|e| e["rows"] == 1 && e["outcome"] == "ok"),
        "{}",
        show(&two)
    );
    let upd = events_with(&st, "update danxia_my_multi set x = x * 10");
    assert_eq!(upd.len(), 1, "{}", show(&st));
    assert_eq!(upd[0]["operation"], "update", "{}", upd[0]);
    assert_eq!(upd[0]["rows"], 2, "{}", upd[0]);
    assert!(
        !upd[0]["statement"]
            .as_str()
            .unwrap_or("")
            .contains("insert"),
        "each event holds one statement: {}",
        upd[0]
    );
    let ins = events_with(&st, "insert into danxia_my_multi values (1), (2), (3)");
    assert_eq!(ins.len(), 1, "{}", show(&st));
    assert_eq!(ins[0]["rows"], 3, "{}", ins[0]);
    let tricky = events_with(&st, "tricky");
    assert_eq!(
        tricky.len(),
        1,
        "the escaped quote does not end the string:\n{}",
        show(&st)
    );
    let semis = events_with(&st, "'a;b'");
    assert_eq!(semis.len(), 1, "{}", show(&st));
    assert!(
        !semis[0]["statement"].as_str().unwrap_or("").contains("c;d"),
        "split after the string, not inside it: {}",
        semis[0]
    );
    let bad = events_with(&st, "selec 2");
    assert_eq!(bad.len(), 1, "{}", show(&st));
    assert_eq!(bad[0]["outcome"], "error", "{}", bad[0]);
    assert_eq!(bad[0]["error_code"], 1064, "{}", bad[0]);
    assert!(
        events_with(&st, "select 3")
            .iter()
            .all(|e| e["outcome"] != "ok"),
        "the server never ran the statement after the error:\n{}",
        show(&st)
    );
}

/// 17 MiB: larger than one MySQL packet (16 MiB - 1), so the INSERT arrives
/// split over two packets and the row comes back split too.
const BIG: u64 = 17 * 1024 * 1024;

#[test]
fn mysql_packets_over_16_mib_round_trip() {
    require_mariadb();
    // New sessions take the global; the server's default (16 MiB) would
    // refuse the statement itself.
    mariadb_exec("set global max_allowed_packet = 67108864");
    let d = start();
    let t = "danxia_my_big";
    let steps = json!([
        {"op": "query", "sql": format!("drop table if exists {t}")},
        {"op": "query", "sql": format!("create table {t} (id int primary key, b longblob)")},
        {"op": "query", "label": "insert", "sql": format!("insert into {t} values (%s, %s)"),
         "params": [1, {"random_bytes": BIG, "seed": 11}]},
        {"op": "query", "label": "digest", "sql": format!("select length(b), sha2(b, 256) from {t} where id = 1")},
        {"op": "query", "label": "read back", "sql": format!("select b from {t} where id = 1")},
        {"op": "query", "label": "after", "sql": "select 'still in step' as s"},
        {"op": "query", "sql": format!("drop table {t}")},
    ]);
    let conn = MysqlConn::root("pymysql", MYSQL_DIRECT_PORT).with(&[
        "--autocommit",
        "on",
        "--max-allowed-packet",
        "67108864",
    ]);
    let direct = conn.steps(&steps);
    let sent = &direct.step("insert")["params"][1];
    assert_eq!(sent["len"], BIG, "{sent}");
    assert_eq!(
        direct.step("insert")["results"][0]["rowcount"],
        1,
        "the 17 MiB insert works directly: {}",
        direct.step("insert")
    );
    assert_eq!(
        direct.step("read back")["results"][0]["rows"][0][0],
        *sent,
        "read back as sent, directly"
    );
    let proxy = conn.on(d.mysql_port).steps(&steps);
    assert_same_json_lines("17 MiB round trip", &direct.lines, &proxy.lines);
    assert_eq!(
        proxy.step("read back")["results"][0]["rows"][0][0],
        *sent,
        "the BLOB read back through danxia is the one sent"
    );
    assert_eq!(
        proxy.step("digest")["results"][0]["rows"][0][0],
        BIG,
        "{}",
        proxy.step("digest")
    );

    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "statement"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.contains("still in step"))
    });
    let st = mysql_statements(&events);
    let ins: Vec<&Value> = st
        .iter()
        .copied()
        .filter(|e| {
            e["statement"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("insert into {t}")))
        })
        .collect();
    assert_eq!(ins.len(), 1, "one event for the 17 MiB insert");
    assert_eq!(ins[0]["outcome"], "ok", "outcome of the 17 MiB insert");
    assert_eq!(ins[0]["operation"], "insert");
    assert_eq!(ins[0]["rows"], 1);
    let back = events_with(&st, &format!("select b from {t}"));
    assert_eq!(back.len(), 1, "{}", show(&st));
    assert_eq!(back[0]["rows"], 1, "{}", back[0]);
    assert_eq!(back[0]["outcome"], "ok", "{}", back[0]);
    let protocol_errors = of_kind(&events, "protocol_error");
    assert!(protocol_errors.is_empty(), "{}", show(&protocol_errors));
}

/// `s` encoded in GBK (by Python's codec: no Rust dependency for it).
fn gbk(s: &str) -> Vec<u8> {
    let out = run_with_stdin(
        python().args([
            "-c",
            "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read().decode('utf-8').encode('gbk'))",
        ]),
        s,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn mysql_gbk_statements_audited_as_utf8() {
    let d = start();
    let t = "danxia_my_gbk";
    mariadb_exec(&format!(
        "drop table if exists {t}; create table {t} (id int primary key, name varchar(50)) default charset=utf8mb4"
    ));

    // PyMySQL with a GBK connection: it encodes the statements in GBK. 乗
    // is 0x81 0x5C in GBK: its second byte is an ASCII backslash.
    let steps = json!([
        {"op": "query", "label": "insert", "sql": format!("insert into {t} values (1, '数据库防火墙'), (2, '乗客')")},
        {"op": "query", "label": "select", "sql": format!("select id, name, hex(convert(name using gbk)) from {t} where name = '乗客'")},
        {"op": "query", "label": "literal", "sql": "select '乗' as k, hex('乗') as h, length('乗') as l"},
        {"op": "query", "label": "delete", "sql": format!("delete from {t} where id in (1, 2)")},
    ]);
    let conn = MysqlConn::root("pymysql", MYSQL_DIRECT_PORT).with(&[
        "--charset",
        "gbk",
        "--autocommit",
        "on",
    ]);
    let direct = conn.steps(&steps);
    assert_eq!(
        direct.step("select")["results"][0]["rows"],
        json!([[2, "乗客", "815CBFCD"]]),
        "{}",
        direct.stdout
    );
    assert_eq!(
        direct.step("literal")["results"][0]["rows"],
        json!([["乗", "815C", 2]])
    );
    let proxy = conn.on(d.mysql_port).steps(&steps);
    assert_same_json_lines("PyMySQL over GBK", &direct.lines, &proxy.lines);

    // The mariadb CLI with a GBK connection and GBK bytes on stdin.
    let script = format!(
        "insert into {t} values (3, '中文'), (4, '表');\nselect id, name from {t} where name in ('中文', '表') order by id;\n"
    );
    let cli = |port: u16| {
        let out = run_with_stdin_bytes(
            mariadb(port, "root", None, "test").arg("--default-character-set=gbk"),
            &gbk(&script),
        );
        assert!(
            out.status.success(),
            "mariadb --default-character-set=gbk on port {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let direct_cli = cli(MYSQL_DIRECT_PORT);
    assert!(
        direct_cli.ends_with(&gbk("3\t中文\n4\t表\n")),
        "GBK rows directly: {direct_cli:?}"
    );
    mariadb_exec(&format!("delete from {t} where id in (3, 4)"));
    let proxy_cli = cli(d.mysql_port);
    assert_eq!(
        proxy_cli, direct_cli,
        "GBK output through danxia, byte for byte"
    );

    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "statement"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.contains("where name in ('中文', '表')"))
    });
    let st = mysql_statements(&events);
    let ins = events_with(&st, "'数据库防火墙'");
    assert_eq!(
        ins.len(),
        1,
        "the GBK insert audited as UTF-8 text:\n{}",
        show(&st)
    );
    assert!(
        ins[0]["statement"]
            .as_str()
            .is_some_and(|s| s.contains("(2, '乗客')")),
        "{}",
        ins[0]
    );
    assert_eq!(ins[0]["rows"], 2, "{}", ins[0]);
    assert_eq!(ins[0]["operation"], "insert", "{}", ins[0]);
    let sel = events_with(&st, "where name = '乗客'");
    assert_eq!(sel.len(), 1, "{}", show(&st));
    assert_eq!(sel[0]["rows"], 1, "{}", sel[0]);
    let lit = events_with(&st, "select '乗' as k");
    assert_eq!(
        lit.len(),
        1,
        "0x5C inside a GBK character is not an escape:\n{}",
        show(&st)
    );
    assert_eq!(lit[0]["outcome"], "ok", "{}", lit[0]);
    let cli_ins = events_with(&st, "(3, '中文'), (4, '表')");
    assert_eq!(
        cli_ins.len(),
        1,
        "the CLI's GBK insert as UTF-8:\n{}",
        show(&st)
    );
    assert_eq!(cli_ins[0]["rows"], 2, "{}", cli_ins[0]);
    mariadb_exec(&format!("drop table {t}"));
}

#[test]
fn mysql_com_quit_ends_the_backend_session() {
    let d = start();
    let steps = json!([
        {"op": "query", "label": "id", "sql": "select connection_id()"},
        {"op": "ping", "label": "ping"},
        {"op": "close", "label": "quit"},
    ]);
    let run = MysqlConn::root("pymysql", d.mysql_port).steps(&steps);
    assert_eq!(run.step("ping")["value"], "pong", "{}", run.stdout);
    let id = run.step("id")["results"][0]["rows"][0][0]
        .as_u64()
        .unwrap_or_else(|| panic!("connection id: {}", run.stdout));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = mariadb_exec(&format!(
            "select count(*) as n from information_schema.processlist where id = {id}"
        ));
        if left.lines().nth(1) == Some("0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backend session {id} still open 5 s after COM_QUIT:\n{}",
            mariadb_exec(
                "select id, user, command, time, state from information_schema.processlist"
            )
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["listener"] == "mysql"
    });
    let ends: Vec<&Value> = of_kind(&events, "session_end")
        .into_iter()
        .filter(|e| e["listener"] == "mysql")
        .collect();
    assert_eq!(ends.len(), 1, "{}", show(&ends));
    assert_eq!(ends[0]["user"], "root", "{}", ends[0]);
    d.wait_metric(
        WAIT,
        "danxia_connections_active",
        &[("listener", "mysql")],
        |v| v == 0.0,
    );
    assert_eq!(
        d.metric("danxia_connections_total", &[("listener", "mysql")]),
        1.0
    );
}
