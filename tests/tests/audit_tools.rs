//! The audit tools as an auditor and a DBA use them, on audit directories
//! written by the real binary from real psql / mariadb traffic:
//!
//! - `hash = "sm3"`: records name their digest, verify says OK and which
//!   digests it saw, an independent SM3 (Python's hashlib) agrees with the
//!   hashes, a changed line is TAMPERED, and switching back to SHA-256
//!   continues the same chain;
//! - `danxia audit search`: each filter returns exactly the records the
//!   files hold for it (compared with the files read independently);
//! - retention: with a tiny retention danxia prunes closed files while
//!   running, verify says OK and names the pruning, and removing the newest,
//!   the oldest remaining or a middle file is still found; `danxia audit
//!   prune` refuses to go below the retention and while danxia runs;
//! - `[audit.syslog]`: RFC 5424 records reach a real UDP and a real TCP
//!   collector in this process, and a dead collector does not slow traffic.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use danxia_e2e::*;
use serde_json::Value;

const ADMIN: &str = "postgres";
const DB: &str = "test";
const WAIT: Duration = Duration::from_secs(15);

fn danxia_audit(args: &[&str]) -> Output {
    run(Command::new(bin_path()).arg("audit").args(args))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn audit_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("audit dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            n.starts_with("audit-") && n.ends_with(".jsonl")
        })
        .collect();
    files.sort();
    files
}

/// A copy of the audit directory to damage.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            std::fs::copy(&p, to.path().join(p.file_name().expect("name"))).expect("copy");
        }
    }
    to
}

fn psql_script(d: &Danxia, user: &str, sql: &str) -> Output {
    run_with_stdin(d.psql(user, DB).args(["-q", "-v", "ON_ERROR_STOP=0"]), sql)
}

#[test]
fn sm3_chain_verifies_names_its_digest_and_a_changed_line_is_tampered() {
    require_postgres();
    let opts = Options {
        audit: vec![("hash".into(), "\"sm3\"".into())],
        ..Options::default()
    };
    let mut d = Danxia::start_with(opts.clone());
    run_ok(
        d.psql(ADMIN, DB)
            .args(["-c", "select 1 as sm3_one", "-c", "select 2 as sm3_two"]),
    );
    d.wait_audit(WAIT, |e| {
        e["statement"]
            .as_str()
            .is_some_and(|s| s.contains("sm3_two"))
    });
    assert!(d.shutdown().success());

    let out = d.audit_verify();
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.starts_with("OK:"), "{report}");
    assert!(report.contains("Digest: sm3 ("), "{report}");
    assert!(!report.contains("sha256"), "{report}");

    // Every line names SM3 before prev, and an independent SM3 agrees.
    let files = audit_files(&d.audit_dir);
    let lines: Vec<String> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .expect("read")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(lines.len() >= 4, "{lines:?}");
    let check = r#"
import hashlib, sys
ok = 0
for line in sys.stdin.read().splitlines():
    body, _, tail = line.rpartition(',"hash":"')
    assert body.endswith('"') and ',"alg":"sm3","prev":"' in body, line
    assert hashlib.new('sm3', body.encode()).hexdigest() == tail[:64], line
    ok += 1
print(ok)
"#;
    let counted = run_ok_stdin(python().args(["-c", check]), &(lines.join("\n") + "\n"));
    assert_eq!(counted.trim(), lines.len().to_string());

    // A changed statement is found.
    let damaged = copy_dir(&d.audit_dir);
    let target = audit_files(damaged.path()).pop().expect("a file");
    let content = std::fs::read_to_string(&target).expect("read");
    assert!(content.contains("sm3_two"));
    std::fs::write(&target, content.replace("sm3_two", "sm3_TWO")).expect("write");
    let out = audit_verify_dir(damaged.path());
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.starts_with("TAMPERED:"), "{report}");
    assert!(report.contains("altered"), "{report}");

    // Back to SHA-256 in the same directory: the chain goes on.
    let dir = d.audit_dir.clone();
    let mut d2 = Danxia::start_with(Options {
        audit: vec![("dir".into(), toml_str(&dir.display().to_string()))],
        ..Options::default()
    });
    run_ok(d2.psql(ADMIN, DB).args(["-c", "select 3 as back_to_sha"]));
    // d2 writes into the first instance's directory: poll that one.
    let deadline = Instant::now() + WAIT;
    while !read_audit_dir(&dir).iter().any(|e| {
        e["statement"]
            .as_str()
            .is_some_and(|s| s.contains("back_to_sha"))
    }) {
        assert!(
            Instant::now() < deadline,
            "no back_to_sha record in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d2.shutdown().success());
    let out = audit_verify_dir(&dir);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("sm3 (") && report.contains("sha256 ("),
        "{report}"
    );
    let events = read_audit_dir(&dir);
    let last = events
        .iter()
        .rev()
        .find(|e| {
            e["statement"]
                .as_str()
                .is_some_and(|s| s.contains("back_to_sha"))
        })
        .expect("sha256 record");
    assert!(last.get("alg").is_none(), "{last}");
}

const SEARCH_POLICY: &str = r#"
[policy]
default_action = "allow"

[[rule]]
id = "deny-audit-secret"
description = "nobody reads the secret table through the proxy"
action = "deny"
tables = ["dx_audit_secret"]
"#;

/// The seqs of `danxia audit search --format json` for `args`.
fn search_seqs(dir: &Path, args: &[&str]) -> (Option<i32>, Vec<u64>) {
    let mut all = vec![
        "search",
        dir.to_str().expect("utf-8 path"),
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let out = danxia_audit(&all);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{args:?}: {}",
        text(&out)
    );
    let seqs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("search prints JSON lines")["seq"]
                .as_u64()
                .expect("seq")
        })
        .collect();
    (out.status.code(), seqs)
}

fn seqs_where(events: &[Value], pred: impl Fn(&Value) -> bool) -> Vec<u64> {
    events
        .iter()
        .filter(|e| pred(e))
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

fn has_table(e: &Value, name: &str) -> bool {
    e["tables"].as_array().is_some_and(|t| {
        t.iter().any(|x| {
            x.as_str().is_some_and(|s| {
                s.eq_ignore_ascii_case(name) || s.to_lowercase().ends_with(&format!(".{name}"))
            })
        })
    })
}

#[test]
fn search_returns_exactly_the_records_each_filter_names() {
    require_postgres();
    require_mariadb();
    ensure_app_role();
    run_ok(psql_direct(ADMIN, DB).arg("-q").arg("-c").arg(
        "drop table if exists dx_audit_secret, dx_audit_open;\
         create table dx_audit_secret(id int); create table dx_audit_open(id int);\
         insert into dx_audit_open values (1), (2);\
         grant select on dx_audit_secret, dx_audit_open to danxia_app;",
    ));
    let pdir = tempfile::tempdir().expect("tempdir");
    std::fs::write(pdir.path().join("rules.toml"), SEARCH_POLICY).expect("policy");
    let mut d = Danxia::start_with(Options {
        mysql: true,
        extra_toml: format!(
            "[policy]\ndir = {}\nmode = \"enforce\"\n",
            toml_str(&pdir.path().display().to_string())
        ),
        ..Options::default()
    });
    let before = time_now_rfc3339();
    std::thread::sleep(Duration::from_millis(1100));
    psql_script(
        &d,
        ADMIN,
        "select * from dx_audit_open;\nselect * from dx_audit_secret;\n",
    );
    psql_script(
        &d,
        APP_USER,
        "select id from DX_AUDIT_OPEN;\nselect * from dx_audit_secret;\n",
    );
    run(d
        .mariadb("root", None, "test")
        .args(["-e", "select 42 as mariadb_marker"]));
    d.wait_audit(WAIT, |e| {
        e["statement"]
            .as_str()
            .is_some_and(|s| s.contains("mariadb_marker"))
    });
    assert!(d.shutdown().success());
    run(psql_direct(ADMIN, DB)
        .arg("-q")
        .arg("-c")
        .arg("drop table if exists dx_audit_secret, dx_audit_open"));

    let dir = d.audit_dir.clone();
    let events = read_audit_dir(&dir);
    let cases: Vec<(Vec<&str>, Vec<u64>)> = vec![
        (
            vec!["--user", APP_USER],
            seqs_where(&events, |e| e["user"] == APP_USER),
        ),
        (
            vec!["--table", "dx_audit_secret"],
            seqs_where(&events, |e| has_table(e, "dx_audit_secret")),
        ),
        (
            vec!["--table", "PUBLIC.DX_AUDIT_OPEN"],
            seqs_where(&events, |e| has_table(e, "dx_audit_open")),
        ),
        (
            vec!["--decision", "deny"],
            seqs_where(&events, |e| e["verdict"] == "denied"),
        ),
        (
            vec!["--rule", "deny-audit-secret", "--kind", "statement"],
            seqs_where(&events, |e| {
                e["rule"] == "deny-audit-secret" && e["kind"] == "statement"
            }),
        ),
        (
            vec!["--user", APP_USER, "--decision", "deny"],
            seqs_where(&events, |e| {
                e["user"] == APP_USER && e["verdict"] == "denied"
            }),
        ),
        (
            vec!["--listener", "mysql", "--kind", "statement"],
            seqs_where(&events, |e| {
                e["listener"] == "mysql" && e["kind"] == "statement"
            }),
        ),
        (
            vec!["--text", "mariadb_marker"],
            seqs_where(&events, |e| {
                e["statement"]
                    .as_str()
                    .is_some_and(|s| s.contains("mariadb_marker"))
            }),
        ),
        (vec!["--since", &before], seqs_where(&events, |_| true)),
        (vec!["--until", &before], Vec::new()),
        (
            vec!["--since", "2h", "--limit", "3"],
            seqs_where(&events, |_| true)[..3].to_vec(),
        ),
    ];
    for (args, want) in cases {
        let (code, got) = search_seqs(&dir, &args);
        assert_eq!(got, want, "danxia audit search {args:?}");
        assert_eq!(code, Some(if want.is_empty() { 1 } else { 0 }), "{args:?}");
    }
    // The filters that matter here found something.
    let denied = seqs_where(&events, |e| e["verdict"] == "denied");
    assert_eq!(denied.len(), 2, "two refusals: {events:?}");
    let app_denied = seqs_where(&events, |e| {
        e["user"] == APP_USER && e["verdict"] == "denied"
    });
    assert_eq!(app_denied.len(), 1);

    // The table format: a header and one row per record.
    let out = danxia_audit(&[
        "search",
        dir.to_str().expect("path"),
        "--decision",
        "deny",
        "--user",
        APP_USER,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(rows[0].starts_with("time (UTC)"), "{stdout}");
    for part in [APP_USER, "denied", "deny-audit-secret", "dx_audit_secret"] {
        assert!(rows[1].contains(part), "{part} in {stdout}");
    }
    // Errors exit 2 and say what to type.
    let out = danxia_audit(&[
        "search",
        dir.to_str().expect("path"),
        "--since",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("is not a time"), "{}", text(&out));
}

fn time_now_rfc3339() -> String {
    let out = run_ok(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"]));
    out.trim().to_string()
}

fn metric_at_least(d: &Danxia, name: &str, labels: &[(&str, &str)], min: f64) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = d.metric_opt(name, labels).unwrap_or(0.0);
        if v >= min {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} stayed at {v} < {min}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn retention_prunes_while_running_and_the_rest_still_verifies() {
    require_postgres();
    let mut d = Danxia::start_with(Options {
        audit: vec![
            ("retention".into(), "\"1s\"".into()),
            ("allow_short_retention".into(), "true".into()),
            ("rotate_bytes".into(), "4096".into()),
        ],
        ..Options::default()
    });
    // About 20 files of records.
    let mut sql = String::new();
    for i in 0..60 {
        sql.push_str(&format!(
            "select {i} as retention_{i}, repeat('x', 600) as pad;\n"
        ));
    }
    psql_script(&d, ADMIN, &sql);
    let pruned = metric_at_least(&d, "danxia_audit_pruned_files_total", &[], 5.0);
    let oldest = metric_at_least(&d, "danxia_audit_oldest_record_timestamp_seconds", &[], 1.0);
    assert!(oldest > 1.7e9, "{oldest}");

    // Pruning by hand is refused while danxia runs the directory.
    let dir = d.audit_dir.clone();
    let cfg = d.config_path.to_str().expect("path").to_string();
    let out = danxia_audit(&["prune", "--config", &cfg, "--before", "now", "--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("in use by another danxia"),
        "{}",
        text(&out)
    );

    assert!(d.shutdown().success());
    let events = read_audit_dir(&dir);
    let prunes = of_kind(&events, "audit_pruned");
    assert!(!prunes.is_empty(), "no audit_pruned record: {events:?}");
    let last = prunes.last().expect("one");
    assert!(
        last["pruned"]["files"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "{last}"
    );
    let first = &events[0];
    assert_eq!(
        first["seq"],
        last["pruned"]["last_seq"].as_u64().expect("seq") + 1
    );
    assert_eq!(first["prev"], last["pruned"]["last_hash"]);
    assert!(pruned >= 5.0);

    let out = audit_verify_dir(&dir);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains(&format!(
            "History before seq {} pruned on",
            first["seq"].as_u64().expect("seq")
        )),
        "{report}"
    );
    assert!(
        report.contains(last["pruned"]["last_hash"].as_str().expect("hash")),
        "{report}"
    );

    // A second run with the lawful default retention continues the chain
    // over several more files.
    let mut d2 = Danxia::start_with(Options {
        audit: vec![
            ("dir".into(), toml_str(&dir.display().to_string())),
            ("rotate_bytes".into(), "4096".into()),
        ],
        ..Options::default()
    });
    psql_script(&d2, ADMIN, &sql);
    assert!(d2.shutdown().success());
    let out = audit_verify_dir(&dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("pruned on"), "{}", text(&out));

    // What remains is still protected.
    let files = audit_files(&dir);
    assert!(files.len() >= 3, "{files:?}");
    for (what, index) in [
        ("newest", files.len() - 1),
        ("oldest left", 0),
        ("middle", 1),
    ] {
        let copy = copy_dir(&dir);
        let name = files[index].file_name().expect("name");
        std::fs::remove_file(copy.path().join(name)).expect("remove");
        let out = audit_verify_dir(copy.path());
        let report = text(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "removing the {what} file: {report}"
        );
        assert!(
            report.starts_with("TAMPERED:") && report.contains("removed"),
            "{what}: {report}"
        );
    }

    // `danxia audit prune`: below the retention only with --force; a dry run
    // changes nothing; a real run keeps the chain verifiable.
    let out = danxia_audit(&[
        "prune",
        dir.to_str().expect("path"),
        "--config",
        "/nonexistent/danxia.toml",
        "--before",
        "1h",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("Cybersecurity Law"), "{}", text(&out));

    std::thread::sleep(Duration::from_millis(1100));
    let before_files = audit_files(&dir);
    let out = danxia_audit(&[
        "prune",
        dir.to_str().expect("path"),
        "--config",
        &cfg,
        "--before",
        "1s",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("would prune"), "{}", text(&out));
    assert_eq!(audit_files(&dir), before_files);
    let out = danxia_audit(&[
        "prune",
        dir.to_str().expect("path"),
        "--config",
        &cfg,
        "--before",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = audit_files(&dir);
    // The newest file stays; the audit_pruned record may start a new one.
    assert!(
        after.len() <= 2 && after.len() < before_files.len(),
        "{}",
        text(&out)
    );
    let out = audit_verify_dir(&dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("pruned on"), "{}", text(&out));
    let events = read_audit_dir(&dir);
    let prune = of_kind(&events, "audit_pruned");
    assert_eq!(
        prune
            .last()
            .map(|p| p["pruned"]["files"].as_array().map(Vec::len)),
        Some(Some(before_files.len() - 1))
    );
}

/// One RFC 5424 message as the test's collector parsed it.
#[derive(Debug)]
struct Syslog {
    pri: u32,
    timestamp: String,
    app_name: String,
    msgid: String,
    sd: String,
    record: Value,
}

fn parse_5424(msg: &str) -> Syslog {
    let rest = msg
        .strip_prefix('<')
        .unwrap_or_else(|| panic!("no PRI: {msg}"));
    let (pri, rest) = rest.split_once('>').expect("PRI");
    let rest = rest
        .strip_prefix("1 ")
        .unwrap_or_else(|| panic!("version 1: {msg}"));
    let mut parts = rest.splitn(6, ' ');
    let timestamp = parts.next().expect("timestamp").to_string();
    let _hostname = parts.next().expect("hostname");
    let app_name = parts.next().expect("app-name").to_string();
    let _procid = parts.next().expect("procid");
    let msgid = parts.next().expect("msgid").to_string();
    let rest = parts.next().expect("sd and msg");
    let (sd, json) = rest
        .split_once("] \u{feff}")
        .unwrap_or_else(|| panic!("SD and BOM: {msg}"));
    Syslog {
        pri: pri.parse().expect("PRI number"),
        timestamp,
        app_name,
        msgid,
        sd: format!("{sd}]"),
        record: serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("MSG is not JSON ({e}): {json}")),
    }
}

/// Each forwarded record matches the record of the same seq in the files.
fn assert_correlates(messages: &[Syslog], files: &[Value], facility: u32) {
    for m in messages {
        let seq = m.record["seq"].as_u64().expect("seq");
        let on_disk = files
            .iter()
            .find(|e| e["seq"] == seq)
            .unwrap_or_else(|| panic!("seq {seq} not in the files"));
        assert_eq!(&m.record, on_disk);
        assert_eq!(m.timestamp, on_disk["ts"].as_str().expect("ts"));
        assert_eq!(m.msgid, on_disk["kind"].as_str().expect("kind"));
        assert!(
            m.sd.starts_with(&format!("[danxia@32473 seq=\"{seq}\"")),
            "{}",
            m.sd
        );
        assert_eq!(m.pri / 8, facility, "{m:?}");
        let severity = m.pri % 8;
        let want = if on_disk["verdict"] == "denied" || on_disk["kind"] == "alert" {
            4
        } else {
            6
        };
        if on_disk["kind"] == "statement" {
            assert_eq!(severity, want, "{m:?}");
        }
    }
}

#[test]
fn syslog_forwarding_reaches_udp_and_tcp_collectors() {
    require_postgres();
    // UDP: only statements; facility local3 (19).
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let udp_port = udp.local_addr().expect("addr").port();
    let mut d = Danxia::start_with(Options {
        extra_toml: format!(
            "[audit.syslog]\ntarget = \"udp://127.0.0.1:{udp_port}\"\nfacility = \"local3\"\napp_name = \"dx-audit\"\nkinds = [\"statement\"]\n"
        ),
        ..Options::default()
    });
    run_ok(d.psql(ADMIN, DB).args(["-c", "select 'udp' as via_udp"]));
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 65536];
    while !got.iter().any(|m: &Syslog| {
        m.record["statement"]
            .as_str()
            .is_some_and(|s| s.contains("via_udp"))
    }) {
        assert!(
            Instant::now() < deadline,
            "no UDP message for via_udp: {got:?}"
        );
        if let Ok(n) = udp.recv(&mut buf) {
            got.push(parse_5424(std::str::from_utf8(&buf[..n]).expect("utf-8")));
        }
    }
    assert!(d.shutdown().success());
    assert!(
        got.iter()
            .all(|m| m.record["kind"] == "statement" && m.app_name == "dx-audit"),
        "{got:?}"
    );
    assert_correlates(&got, &d.audit_events(), 19);
    assert!(d.audit_verify().status.success());

    // TCP with octet counting: everything, default facility local4 (20).
    let tcp = TcpListener::bind("127.0.0.1:0").expect("tcp");
    let tcp_port = tcp.local_addr().expect("addr").port();
    let collector = std::thread::spawn(move || {
        let (stream, _) = tcp.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut r = BufReader::new(stream);
        let mut messages = Vec::new();
        loop {
            let mut len = Vec::new();
            if r.read_until(b' ', &mut len).unwrap_or(0) == 0 {
                return messages;
            }
            let n: usize = std::str::from_utf8(&len[..len.len() - 1])
                .expect("ascii")
                .parse()
                .expect("octet count");
            let mut msg = vec![0u8; n];
            r.read_exact(&mut msg).expect("frame");
            let m = parse_5424(std::str::from_utf8(&msg).expect("utf-8"));
            let done = m.record["kind"] == "session_end";
            messages.push(m);
            if done {
                return messages;
            }
        }
    });
    let mut d = Danxia::start_with(Options {
        extra_toml: format!("[audit.syslog]\ntarget = \"tcp://127.0.0.1:{tcp_port}\"\n"),
        ..Options::default()
    });
    run_ok(
        d.psql(ADMIN, DB)
            .args(["-c", "select 'tcp' as via_tcp", "-c", "select 2"]),
    );
    let messages = collector.join().expect("collector");
    assert!(d.shutdown().success());
    let kinds: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.record["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"session_start") && kinds.contains(&"statement"),
        "{kinds:?}"
    );
    assert!(messages.iter().any(|m| m.record["statement"]
        .as_str()
        .is_some_and(|s| s.contains("via_tcp"))));
    assert_correlates(&messages, &d.audit_events(), 20);
}

#[test]
fn a_dead_syslog_collector_does_not_slow_statements() {
    require_postgres();
    let port = closed_port();
    let d = Danxia::start_with(Options {
        extra_toml: format!(
            "[audit.syslog]\ntarget = \"tcp://127.0.0.1:{port}\"\nqueue_capacity = 4\n"
        ),
        ..Options::default()
    });
    let mut sql = String::new();
    for i in 0..300 {
        sql.push_str(&format!("select {i} as dead_collector;\n"));
    }
    let started = Instant::now();
    let out = psql_script(&d, ADMIN, &sql);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        took < Duration::from_secs(10),
        "300 statements took {took:?}"
    );
    d.wait_audit_count(WAIT, 300, |e| {
        e["statement"]
            .as_str()
            .is_some_and(|s| s.contains("dead_collector"))
    });
    let dropped = metric_at_least(
        &d,
        "danxia_audit_syslog_events_total",
        &[("result", "dropped")],
        1.0,
    );
    let failed = metric_at_least(
        &d,
        "danxia_audit_syslog_events_total",
        &[("result", "failed")],
        1.0,
    );
    let sent = d
        .metric_opt("danxia_audit_syslog_events_total", &[("result", "sent")])
        .unwrap_or(0.0);
    assert_eq!(sent, 0.0);
    // Everything offered (300 statements and the session's records) was
    // dropped or failed, but for the few still queued.
    assert!(
        dropped + failed >= 290.0,
        "dropped {dropped} failed {failed}"
    );
    assert!(d.stop().success());
}
