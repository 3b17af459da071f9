//! Sensitive data in results, end to end: a seeded table of synthetic
//! citizens (valid identity numbers, phones, bank cards: see
//! `tests/fixtures/citizens.sql`) read through danxia by a masked identity
//! and an unmasked one, with psql, psycopg2 (also a server-side cursor) and
//! a hand-written extended-protocol client (text and binary results, with
//! and without Describe). Checks that unmasked columns are byte-identical
//! to a direct read, that masked ones follow their strategy, that the audit
//! counts equal the values returned, that COPY of masked data is refused,
//! and that a `returned` limit alerts or withholds the rest of a result.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use danxia_e2e::wire::{self, RawSession};
use danxia_e2e::*;
use serde_json::Value;

const DB: &str = "test";
const ADMIN: &str = "postgres";
const ROWS: usize = 300;
const WAIT: Duration = Duration::from_secs(10);
const ANALYST: &str = "danxia_mask_analyst";
const BULK: &str = "danxia_mask_bulk";

/// Masks for the analyst; a limit alert for everyone on identity numbers;
/// the bulk reader's results are cut after 50 phone numbers.
const POLICY: &str = r#"
[policy]
default_action = "allow"

[[rule]]
id = "mask-analyst"
description = "Analysts see citizens' identifiers masked"
action = "mask"
users = ["danxia_mask_analyst"]
tables = ["*.citizens"]
[rule.mask.columns]
id_number = "keep(6,4)"
phone = "keep(3,4)"
[rule.mask.tags]
"pii.id_number" = "keep(6,4)"
"pii.phone" = "keep(3,4)"
"finance.bank_card" = "hash(sm3)"
"pii.email" = "redact"
"pii.name" = "keep(1,0)"

[[rule]]
id = "alert-bulk-id-numbers"
description = "Reading 100 identity numbers at once is worth a look"
action = "alert"
returned = { "pii.id_number" = 100 }

[[rule]]
id = "cut-bulk-phones"
description = "The bulk account never gets more than 50 phone numbers in one result"
action = "deny"
users = ["danxia_mask_bulk"]
message = "too many phone numbers in one result"
returned = { "pii.phone" = 50 }
"#;

struct Env {
    d: Danxia,
    schema: String,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = run(psql_direct(ADMIN, DB)
            .arg("-q")
            .arg("-c")
            .arg(format!("drop schema if exists {} cascade", self.schema)));
    }
}

/// Seeds `<schema>.citizens` with `ROWS` synthetic citizens, creates the
/// roles, writes the policy, a classification file (name → pii.name: no
/// content form) and a masking key, and starts danxia.
fn setup(tag: &str) -> Env {
    require_postgres();
    let schema = format!("danxia_mask_{tag}_{}", std::process::id());
    let fixture = workspace_root().join("tests/fixtures/citizens.sql");
    let roles = format!(
        "select pg_advisory_xact_lock(48151623);\n\
         do $$ begin create role {ANALYST} login; exception when duplicate_object then null; end $$;\n\
         do $$ begin create role {BULK} login; exception when duplicate_object then null; end $$;"
    );
    run_ok(
        psql_direct(ADMIN, DB)
            .arg("-1")
            .arg("-q")
            .arg("-c")
            .arg(roles),
    );
    let seed = format!(
        "drop schema if exists {schema} cascade; create schema {schema}; set search_path = {schema};\n\
         \\i {}\n\
         create table citizens as select * from danxia_citizens({ROWS}, 7);\n\
         grant usage on schema {schema} to {ANALYST}, {BULK};\n\
         grant select on citizens to {ANALYST}, {BULK};",
        fixture.display()
    );
    run_ok_stdin(psql_direct(ADMIN, DB).arg("-q"), &seed);

    let dir = tempfile::Builder::new()
        .prefix("danxia-mask-")
        .tempdir()
        .expect("tempdir");
    let policy = dir.path().join("policy");
    fs::create_dir(&policy).expect("policy dir");
    fs::write(policy.join("10-masking.toml"), POLICY).expect("policy");
    let classification = dir.path().join("classification.toml");
    fs::write(
        &classification,
        format!(
            "version = 1\n\n[[column]]\ntable = \"{schema}.citizens\"\ncolumn = \"name\"\ntags = [\"pii.name\"]\nlevel = 2\n"
        ),
    )
    .expect("classification");
    let key = dir.path().join("masking.key");
    // 0600: danxia refuses a masking key other users can read.
    fs::File::create(&key)
        .and_then(|mut f| f.write_all(b"0123456789abcdef0123456789abcdef\n"))
        .and_then(|()| fs::set_permissions(&key, fs::Permissions::from_mode(0o600)))
        .expect("key");
    let d = Danxia::start_with(Options {
        extra_toml: format!(
            "[policy]\ndir = {}\nmode = \"enforce\"\nclassification = {}\nallowlist = {}\nmasking_key_file = {}\n",
            toml_str(&policy.display().to_string()),
            toml_str(&classification.display().to_string()),
            toml_str(&dir.path().join("allowlist.toml").display().to_string()),
            toml_str(&key.display().to_string()),
        ),
        ..Options::default()
    });
    Env {
        d,
        schema,
        _dir: dir,
    }
}

/// Rows of `sql` as `|`-separated fields, through `port` as `user`.
fn rows(port: u16, user: &str, sql: &str) -> Vec<Vec<String>> {
    let out = run_ok(psql(port, user, DB).args(["-A", "-t", "-F", "|", "-c", sql]));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

fn keep(v: &str, first: usize, last: usize) -> String {
    let chars: Vec<char> = v.chars().collect();
    let n = chars.len();
    if n <= first + last {
        return "*".repeat(n);
    }
    let mut s: String = chars[..first].iter().collect();
    s.push_str(&"*".repeat(n - first - last));
    s.extend(&chars[n - last..]);
    s
}

/// The audit event of the statement whose text contains `marker`.
fn event_for(d: &Danxia, marker: &str) -> Value {
    let events = d.wait_audit(WAIT, |e| {
        e["kind"] == "statement" && e["statement"].as_str().is_some_and(|s| s.contains(marker))
    });
    events
        .into_iter()
        .find(|e| {
            e["kind"] == "statement" && e["statement"].as_str().is_some_and(|s| s.contains(marker))
        })
        .expect("event")
}

fn sensitive(e: &Value) -> BTreeMap<String, u64> {
    e["sensitive"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn unmasked_reads_are_identical_and_counted() {
    let env = setup("plain");
    let sql = format!(
        "select id, name, id_number, phone, bank_card, email, note from {}.citizens order by id /* plain-read */",
        env.schema
    );
    let direct = rows(DIRECT_PORT, ADMIN, &sql);
    let through = rows(env.d.pg_port, ADMIN, &sql);
    assert_eq!(direct.len(), ROWS);
    assert_eq!(
        through, direct,
        "an unmasked identity reads exactly what the server sent"
    );

    let e = event_for(&env.d, "plain-read");
    let counts = sensitive(&e);
    for tag in [
        "pii.id_number",
        "pii.phone",
        "finance.bank_card",
        "pii.email",
    ] {
        assert_eq!(counts.get(tag), Some(&(ROWS as u64)), "{tag} in {e}");
    }
    assert_eq!(e["scanned_rows"], ROWS as u64);
    assert!(e.get("masked").is_none(), "nothing masked: {e}");
    // 300 identity numbers reach the alert rule's 100.
    let alerts: Vec<&str> = e["alerts"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(alerts.contains(&"alert-bulk-id-numbers"), "{e}");
    env.d.wait_audit(WAIT, |a| {
        a["kind"] == "alert"
            && a["alerts"]
                .as_array()
                .is_some_and(|l| l.iter().any(|r| r == "alert-bulk-id-numbers"))
    });
    let m = env.d.metrics();
    assert!(
        metric_sum(
            &m,
            "danxia_sensitive_values_total",
            &[("tag", "pii.id_number")]
        )
        .unwrap_or(0.0)
            >= ROWS as f64,
        "{m}"
    );
}

#[test]
fn masked_identity_sees_masked_values_and_audit_counts_match() {
    let env = setup("psql");
    let sql = format!(
        "select id, name, id_number, phone, bank_card, email, note from {}.citizens order by id",
        env.schema
    );
    let direct = rows(DIRECT_PORT, ADMIN, &sql);
    let masked = rows(env.d.pg_port, ANALYST, &format!("{sql} /* analyst-read */"));
    assert_eq!(masked.len(), direct.len());
    let mut pseudonyms = std::collections::HashMap::new();
    for (m, d) in masked.iter().zip(&direct) {
        // What the masks hid never reaches a log or an audit record.
        for hidden in [&d[2], &d[4]] {
            danxia_e2e::artifacts::register_secret(hidden);
        }
        assert_eq!(m[0], d[0], "id untouched");
        assert_eq!(
            m[1],
            keep(&d[1], 1, 0),
            "name masked by its classification tag"
        );
        assert_eq!(m[2], keep(&d[2], 6, 4), "id_number keep(6,4)");
        assert_eq!(m[3], keep(&d[3], 3, 4), "phone keep(3,4)");
        assert_eq!(
            m[4].len(),
            16,
            "bank card → 16-hex-digit SM3 HMAC: {}",
            m[4]
        );
        assert!(m[4].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(m[4], d[4]);
        if let Some(prev) = pseudonyms.insert(d[4].clone(), m[4].clone()) {
            assert_eq!(prev, m[4], "same card, same pseudonym");
        }
        assert_eq!(m[5], "******", "email redacted");
        assert_eq!(m[6], d[6], "note untouched");
    }
    // Joinable pseudonyms: the same card hashes the same on a second read.
    let again = rows(
        env.d.pg_port,
        ANALYST,
        &format!(
            "select bank_card from {}.citizens order by id limit 5",
            env.schema
        ),
    );
    for (a, m) in again.iter().zip(&masked) {
        assert_eq!(a[0], m[4]);
    }

    let e = event_for(&env.d, "analyst-read");
    // Five masked columns on every row; nothing sensitive left in the clear.
    assert_eq!(e["masked"], (ROWS * 5) as u64, "{e}");
    assert_eq!(sensitive(&e), BTreeMap::new(), "{e}");
    let rules: Vec<&str> = e["mask_rules"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(rules, ["mask-analyst"]);
    assert!(env.d.metric("danxia_masked_values_total", &[]) >= (ROWS * 5) as f64);
}

#[test]
fn aliases_and_expressions_are_masked_by_content() {
    let env = setup("alias");
    let sql = format!(
        "select id_number as x, phone || '' as p, upper(email) as e, 'ID ' || id_number as label \
         from {}.citizens order by id limit 20",
        env.schema
    );
    let direct = rows(DIRECT_PORT, ADMIN, &sql);
    let masked = rows(env.d.pg_port, ANALYST, &sql);
    for (m, d) in masked.iter().zip(&direct) {
        assert_eq!(
            m[0],
            keep(&d[0], 6, 4),
            "alias of id_number masked by content"
        );
        assert_eq!(
            m[1],
            keep(&d[1], 3, 4),
            "phone expression masked by content"
        );
        assert_eq!(m[2], "******", "an upper-cased e-mail is still an e-mail");
        // A value holding an identity number is masked whole.
        assert_eq!(m[3], keep(&d[3], 6, 4));
    }
}

#[test]
fn extended_protocol_text_and_binary_with_and_without_describe() {
    let env = setup("ext");
    let sql = format!(
        "select id, id_number, phone, note from {}.citizens where id <= $1 order by id",
        env.schema
    );
    let direct = rows(DIRECT_PORT, ADMIN, &sql.replace("$1", "5"));
    let mut s = RawSession::connect(env.d.pg_port, ANALYST, DB).expect("connect");
    // Three executions: text results without any Describe (danxia injects
    // one and swallows the answer), binary results with Describe portal,
    // and binary results after Describe statement.
    let mut batch = Vec::new();
    batch.extend(wire::parse("", &sql));
    batch.extend(wire::bind("", "", &[Some("5")]));
    batch.extend(wire::execute("", 0));
    batch.extend(wire::parse("s1", &sql));
    batch.extend(wire::bind_formats("p1", "s1", &[Some("5")], &[1]));
    batch.extend(wire::describe(b'P', "p1"));
    batch.extend(wire::execute("p1", 0));
    batch.extend(wire::describe(b'S', "s1"));
    batch.extend(wire::bind_formats("p2", "s1", &[Some("5")], &[0, 0, 1, 0]));
    batch.extend(wire::execute("p2", 0));
    batch.extend(wire::sync());
    s.stream.write_all(&batch).expect("send");
    let mut msgs = Vec::new();
    loop {
        let m = wire::read_msg(&mut s.stream).expect("read");
        let done = m.tag == b'Z';
        msgs.push(m);
        if done {
            break;
        }
    }
    let tags: String = msgs.iter().map(|m| m.tag_char()).collect();
    assert_eq!(
        tags, "12DDDDDC12TDDDDDCtT2DDDDDCZ",
        "no injected RowDescription reaches the client; order kept"
    );
    let data: Vec<Vec<Option<String>>> = msgs
        .iter()
        .filter(|m| m.tag == b'D')
        .map(|m| m.data_row())
        .collect();
    for (round, chunk) in data.chunks(5).enumerate() {
        for (row, d) in chunk.iter().zip(&direct) {
            assert_eq!(
                row[1].as_deref(),
                Some(keep(&d[1], 6, 4).as_str()),
                "round {round}"
            );
            assert_eq!(
                row[2].as_deref(),
                Some(keep(&d[2], 3, 4).as_str()),
                "round {round}"
            );
            assert_eq!(
                row[3].as_deref(),
                Some(d[3].as_str()),
                "note untouched, round {round}"
            );
        }
    }
    // Round 2 asked for binary: id (int4) comes back as 4 bytes, untouched.
    let bin_id = &msgs
        .iter()
        .filter(|m| m.tag == b'D')
        .nth(5)
        .expect("row")
        .body;
    assert_eq!(&bin_id[2..6], &8i32.to_be_bytes(), "binary int8 length");
    assert_eq!(&bin_id[6..14], &1i64.to_be_bytes(), "binary id untouched");
    s.stream.write_all(&wire::terminate()).ok();

    let events = env.d.wait_audit_count(WAIT, 3, |e| {
        e["kind"] == "statement" && e["protocol_flow"] == "extended" && e["user"] == ANALYST
    });
    for e in &events {
        assert_eq!(e["masked"], 10, "5 rows × 2 masked columns: {e}");
    }
}

#[test]
fn psycopg2_and_server_side_cursors_are_masked() {
    let env = setup("py");
    let script = format!(
        r#"
import psycopg2
conn = psycopg2.connect(host="127.0.0.1", port={port}, user="{ANALYST}", dbname="{DB}")
cur = conn.cursor()
cur.execute("select id_number, phone from {schema}.citizens order by id limit 3")
for r in cur.fetchall():
    print("plain", r[0], r[1])
named = conn.cursor(name="danxia_cur")
named.itersize = 2
named.execute("select id_number, phone from {schema}.citizens order by id limit 5")
for r in named:
    print("cursor", r[0], r[1])
named.close()
conn.close()
"#,
        port = env.d.pg_port,
        schema = env.schema
    );
    let out = run_ok(python().arg("-c").arg(script));
    let direct = rows(
        DIRECT_PORT,
        ADMIN,
        &format!(
            "select id_number, phone from {}.citizens order by id limit 5",
            env.schema
        ),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    for (i, l) in lines.iter().enumerate() {
        let parts: Vec<&str> = l.split(' ').collect();
        let d = &direct[if i < 3 { i } else { i - 3 }];
        assert_eq!(parts[1], keep(&d[0], 6, 4), "{l}");
        assert_eq!(parts[2], keep(&d[1], 3, 4), "{l}");
    }
}

#[test]
fn copy_of_masked_data_is_refused_for_the_masked_identity_only() {
    let env = setup("copy");
    let sql = format!(
        "copy (select id_number from {}.citizens) to stdout",
        env.schema
    );
    let out = run(psql(env.d.pg_port, ANALYST, DB).arg("-c").arg(&sql));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("COPY of masked data is refused"), "{err}");
    assert!(err.contains("mask-analyst"), "{err}");
    let admin = run_ok(psql(env.d.pg_port, ADMIN, DB).arg("-c").arg(&sql));
    assert_eq!(admin.lines().count(), ROWS);
}

#[test]
fn a_deny_limit_withholds_the_rest_of_the_result_and_the_session_goes_on() {
    let env = setup("cut");
    let small = format!(
        "select phone from {}.citizens order by id limit 10",
        env.schema
    );
    assert_eq!(rows(env.d.pg_port, BULK, &small).len(), 10);

    let script = format!(
        "\\set ON_ERROR_STOP 0\nselect phone from {}.citizens order by id /* bulk-cut */;\nselect 'still here';\n",
        env.schema
    );
    let out = run_with_stdin(psql(env.d.pg_port, BULK, DB).args(["-A", "-t"]), &script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("too many phone numbers in one result (rule cut-bulk-phones)"),
        "{stderr}"
    );
    assert!(
        stdout.contains("still here"),
        "the session goes on: {stdout}"
    );

    let e = event_for(&env.d, "bulk-cut");
    assert_eq!(e["outcome"], "refused", "{e}");
    assert_eq!(e["rule"], "cut-bulk-phones");
    assert_eq!(
        sensitive(&e).get("pii.phone"),
        Some(&50),
        "counted up to the cut: {e}"
    );
    assert_eq!(
        env.d.metric(
            "danxia_result_limits_total",
            &[("rule", "cut-bulk-phones"), ("action", "cut")]
        ),
        1.0
    );
}

#[test]
fn copy_to_stdout_is_counted_and_limited() {
    let env = setup("copyout");
    let sql = format!(
        "copy (select id, phone, email from {}.citizens order by id) to stdout /* copy-count */",
        env.schema
    );
    let out = run_ok(psql(env.d.pg_port, ADMIN, DB).arg("-c").arg(&sql));
    assert_eq!(out.lines().count(), ROWS);
    let e = event_for(&env.d, "copy-count");
    let counts = sensitive(&e);
    assert_eq!(counts.get("pii.phone"), Some(&(ROWS as u64)), "{e}");
    assert_eq!(counts.get("pii.email"), Some(&(ROWS as u64)), "{e}");
    assert_eq!(e["scanned_rows"], ROWS as u64);

    // The bulk account's COPY stops at its limit like a query does.
    let cut = format!(
        "copy (select phone from {}.citizens order by id) to stdout /* copy-cut */",
        env.schema
    );
    let out = run(psql(env.d.pg_port, BULK, DB).arg("-c").arg(&cut));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rule cut-bulk-phones"), "{stderr}");
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, 49, "rows before the one that reached the limit");
    let e = event_for(&env.d, "copy-cut");
    assert_eq!(e["outcome"], "refused", "{e}");
}
