//! Differential test for the MySQL listener: the corpus
//! `tests/mysql/corpus.sql` (≈ 330 entries: DDL, DML, joins, aggregates,
//! window functions, CTEs, errors of ~35 kinds, NULLs, unicode and GBK text,
//! BLOBs, multi-statements and a procedure's several result sets, SHOW,
//! DESCRIBE, EXPLAIN, information_schema, transactions, user variables,
//! PREPARE/EXECUTE, backslash escapes, `#`, `--` and `/*! */` comments) runs
//! once straight against MariaDB and once through danxia (no policy: it
//! allows everything), each in its own scratch database, and every entry's
//! outcome must be identical: columns and types, rows, affected rows, insert
//! id, warnings, error number, SQLSTATE and message, transaction state.
//! Once with PyMySQL (COM_QUERY, text protocol) and once with
//! mysql-connector-python's server-side prepared statements (binary
//! protocol) for the entries with parameters. Then the audit must hold the
//! statements and their errors, and its chain must verify.

use std::collections::BTreeMap;
use std::time::Duration;

use danxia_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const MIN_ENTRIES: usize = 300;

/// Runs the corpus on one side; panics with the runner's output unless it
/// ran to the end. Returns one JSON value per entry.
fn run_side(port: u16, database: &str, prepared: bool) -> Vec<Value> {
    let mut cmd = python();
    cmd.arg(mysql_file("differential.py"))
        .arg("--port")
        .arg(port.to_string())
        .arg("--database")
        .arg(database)
        .arg("--corpus")
        .arg(mysql_file("corpus.sql"));
    if prepared {
        cmd.args(["--driver", "connector-pure", "--prepared"]);
    }
    let out = run(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "differential.py on port {port} ({database}) failed with {}:\n{stderr}\nlast lines:\n{}",
        out.status,
        stdout.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("differential.py printed a line that is not JSON ({e}): {l}")
            })
        })
        .collect()
}

/// Error numbers of the entries that failed, as a multiset.
fn error_numbers(lines: &[Value]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        if let Some(n) = l["error"]["errno"].as_u64() {
            *m.entry(n).or_default() += 1;
        }
    }
    m
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

#[test]
fn mysql_corpus_identical_direct_and_through_danxia() {
    require_mariadb();
    let mut d = Danxia::start_with(Options {
        mysql: true,
        ..Options::default()
    });
    let direct = run_side(MYSQL_DIRECT_PORT, "danxia_diff_direct", false);
    assert!(
        direct.len() >= MIN_ENTRIES,
        "only {} corpus entries",
        direct.len()
    );
    let proxy = run_side(d.mysql_port, "danxia_diff_proxy", false);
    assert_same_json_lines("MySQL corpus (PyMySQL, text protocol)", &direct, &proxy);

    let want = error_numbers(&direct);
    assert!(
        want.len() >= 30,
        "the corpus should raise ≥ 30 kinds of error, raises {want:?}"
    );
    // The runner's own session (and its admin sessions, which go straight
    // to MariaDB) are over once it exits: all events are written after the
    // session ends.
    d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["listener"] == "mysql"
    });
    let events = d.audit_events();
    let st = mysql_statements(&events);
    assert!(
        st.len() >= MIN_ENTRIES,
        "only {} statement events for {} entries",
        st.len(),
        direct.len()
    );
    // Every error the server raised directly was raised through danxia and
    // audited with its number (multisets: an entry may hold one failing
    // statement among several).
    let mut got: BTreeMap<u64, usize> = BTreeMap::new();
    for e in &st {
        if e["outcome"] == "error" {
            let n = e["error_code"]
                .as_u64()
                .unwrap_or_else(|| panic!("error without error_code: {e}"));
            *got.entry(n).or_default() += 1;
            assert!(e["sqlstate"].is_string(), "error without sqlstate: {e}");
        }
    }
    for (code, n) in &want {
        let have = got.get(code).copied().unwrap_or(0);
        assert!(
            have >= *n,
            "error {code}: {n} entries failed with it directly but {have} error events in the audit.\naudited: {got:?}\nwanted: {want:?}"
        );
    }
    for e in &st {
        assert_eq!(e["verdict"], "allowed", "no policy, nothing refused: {e}");
        assert_eq!(e["protocol"], "mysql", "{e}");
        assert!(e["operation"].is_string(), "{e}");
    }
    // One event per statement of a multi-statement entry.
    let statement_is = |e: &Value, text: &str| {
        e["statement"]
            .as_str()
            .map(|s| s.trim().trim_end_matches(';').trim())
            == Some(text)
    };
    let upd: Vec<&&Value> = st
        .iter()
        .filter(|e| statement_is(e, "update multi_t set x = x * 10"))
        .collect();
    assert_eq!(upd.len(), 1, "{upd:?}");
    assert_eq!(upd[0]["operation"], "update", "{}", upd[0]);
    assert_eq!(upd[0]["rows"], 2, "{}", upd[0]);
    // A statement naming the scratch database by name is audited with it.
    assert!(
        st.iter().any(|e| e["database"] == "danxia_diff_proxy"),
        "events name the scratch database"
    );
    assert!(
        st.iter().any(|e| e["database"] == "information_schema"),
        "`use information_schema` changes the audited database"
    );
    let big = st
        .iter()
        .find(|e| statement_is(e, "select repeat('x', 5000000) as five_megabytes"))
        .unwrap_or_else(|| panic!("no event for the 5 MB row"));
    assert_eq!(big["rows"], 1, "{big}");
    let many = st
        .iter()
        .find(|e| {
            e["statement"]
                .as_str()
                .is_some_and(|s| s.contains("select seq, md5(seq) from seq_1_to_20000"))
        })
        .unwrap_or_else(|| panic!("no event for the 20000-row result"));
    assert_eq!(many["rows"], 20000, "{many}");
    assert!(
        of_kind(&events, "protocol_error").is_empty(),
        "{:?}",
        of_kind(&events, "protocol_error")
    );
    shutdown_and_verify(&mut d);
}

#[test]
fn mysql_corpus_prepared_statements_identical_direct_and_through_danxia() {
    require_mariadb();
    let mut d = Danxia::start_with(Options {
        mysql: true,
        ..Options::default()
    });
    let direct = run_side(MYSQL_DIRECT_PORT, "danxia_diffp_direct", true);
    let prepared: Vec<&Value> = direct.iter().filter(|l| l["op"] == "prepared").collect();
    assert!(
        prepared.len() >= 60,
        "only {} prepared entries in the corpus",
        prepared.len()
    );
    assert!(
        prepared
            .iter()
            .filter(|l| l.get("results").is_some())
            .count()
            >= 50,
        "most prepared entries succeed directly"
    );
    let proxy = run_side(d.mysql_port, "danxia_diffp_proxy", true);
    assert_same_json_lines(
        "MySQL corpus (mysql-connector-python, server-side prepared statements)",
        &direct,
        &proxy,
    );

    d.wait_audit(WAIT, |e| {
        e["kind"] == "session_end" && e["listener"] == "mysql"
    });
    let events = d.audit_events();
    let st = mysql_statements(&events);
    let executes: Vec<&&Value> = st
        .iter()
        .filter(|e| e["protocol_flow"] == "prepared")
        .collect();
    // Entries that failed may have failed at prepare time (no execute);
    // those with results certainly executed.
    let executed = prepared
        .iter()
        .filter(|l| l.get("results").is_some())
        .count();
    assert!(
        executes.len() >= executed,
        "{} prepared executes audited for {executed} prepared entries that executed",
        executes.len()
    );
    assert!(
        executes
            .iter()
            .all(|e| e["outcome"] == "ok" || e["error_code"].is_u64()),
        "{executes:?}"
    );
    let with_params = executes
        .iter()
        .find(|e| {
            e["statement"]
                .as_str()
                .is_some_and(|s| s.contains("select ? as n, ? as s, ? as nothing"))
        })
        .unwrap_or_else(|| panic!("no prepared event for the first parameter entry"));
    let p = with_params["params"].as_str().unwrap_or("");
    assert!(
        p.contains('1') && p.contains("'one'") && p.to_uppercase().contains("NULL"),
        "parameters rendered: {with_params}"
    );
    shutdown_and_verify(&mut d);
}
