//! The shipped policy packs, as a DBA deploys them: the default pack in
//! enforce mode stops the classic attacks from an application account while
//! administrators (and pgbench, psql's meta-commands) work unchanged; the
//! strict-allowlist pack refuses what was not learned; and the policy
//! tools (`danxia check`, `danxia explain`) say what is wrong and why.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use danxia_e2e::*;

const ADMIN: &str = "postgres";
const DB: &str = "test";
const WAIT: Duration = Duration::from_secs(10);
const BENCH_DB: &str = "danxia_e2e_pgbench_pack";

fn pack(name: &str) -> PathBuf {
    workspace_root().join("policies/packs").join(name)
}

/// danxia with a shipped pack in `mode`; the allowlist goes to `allowlist`
/// (or a file in the danxia's own directory).
fn start_pack(name: &str, mode: &str, allowlist: Option<PathBuf>) -> Danxia {
    let allowlist =
        allowlist.map_or_else(|| "allowlist.toml".to_string(), |p| p.display().to_string());
    Danxia::start_with(Options {
        extra_toml: format!(
            "[policy]\ndir = {}\nmode = {}\nallowlist = {}\n",
            toml_str(&pack(name).display().to_string()),
            toml_str(mode),
            toml_str(&allowlist)
        ),
        ..Options::default()
    })
}

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

/// Runs one statement as `user` and returns the rule that refused it, if
/// any.
fn refusing_rule(d: &Danxia, user: &str, sql: &str) -> Option<String> {
    let (_, err) = psql_script(d, user, &format!("{sql};\n"));
    let at = err.find("(rule ")?;
    let rest = &err[at + 6..];
    Some(rest[..rest.find(')')?].to_string())
}

#[test]
fn default_pack_stops_attacks_from_applications() {
    ensure_app_role();
    let t = "danxia_pack_accounts";
    run_ok(psql_direct(ADMIN, DB).arg("-q").arg("-c").arg(format!(
        "drop table if exists {t}; create table {t}(id int primary key, name text, balance int);\
         insert into {t} values (1, 'alice', 10), (2, 'bob', 20);\
         alter table {t} owner to {APP_USER};"
    )));
    let d = start_pack("default", "enforce", None);
    let cases: &[(&str, &str)] = &[
        (
            "select usename, passwd from pg_shadow",
            "deny-catalog-secrets",
        ),
        (
            "select rolpassword from pg_catalog.pg_authid",
            "deny-catalog-secrets",
        ),
        (
            "select pg_read_file('/etc/passwd')",
            "deny-server-file-access",
        ),
        (
            "select dblink_connect('host=10.0.0.1')",
            "deny-server-file-access",
        ),
        (
            "copy danxia_pack_accounts to '/tmp/danxia_pack_out'",
            "deny-server-file-access",
        ),
        (
            "copy danxia_pack_accounts from program 'id'",
            "deny-server-file-access",
        ),
        (
            "select * from danxia_pack_accounts where name = '' or '1'='1' --'",
            "deny-injection",
        ),
        (
            "select name from danxia_pack_accounts where id = 1 union select passwd from pg_shadow",
            "deny-catalog-secrets",
        ),
        (
            "select name from danxia_pack_accounts where id = 1 union select null",
            "deny-injection",
        ),
        ("select pg_sleep(0.01)", "deny-injection"),
        ("select chr(97)||chr(98)", "deny-injection"),
        ("delete from danxia_pack_accounts", "deny-unbounded-writes"),
        (
            "update danxia_pack_accounts set balance = 0 where 1=1",
            "deny-unbounded-writes",
        ),
        ("create table danxia_pack_evil(x int)", "deny-ddl-dcl"),
        ("drop table danxia_pack_accounts", "deny-ddl-dcl"),
        (
            "grant all on danxia_pack_accounts to public",
            "deny-ddl-dcl",
        ),
        (
            "select * from rows from (generate_series(1, 2)) as x",
            "default.unparsed",
        ),
    ];
    let mut wrong = Vec::new();
    for (sql, rule) in cases {
        let got = refusing_rule(&d, APP_USER, sql);
        if got.as_deref() != Some(*rule) {
            wrong.push(format!("{sql:?}: expected {rule}, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "application account:\n{}",
        wrong.join("\n")
    );

    // Ordinary application SQL is untouched.
    let (out, err) = psql_script(
        &d,
        APP_USER,
        &format!(
            "select name from {t} where id = 1;\nupdate {t} set balance = balance + 1 where id = 2;\n\
             select balance from {t} where id = 2;\n"
        ),
    );
    assert!(err.is_empty(), "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["alice", "UPDATE 1", "21"]);

    // Administrators: DDL, unparseable maintenance and psql's catalog
    // queries run; the credential tables stay closed even to them.
    let (out, err) = psql_script(
        &d,
        ADMIN,
        "create table danxia_pack_admin_tmp(x int);\nvacuum (analyze) danxia_pack_admin_tmp;\n\
         drop table danxia_pack_admin_tmp;\nselect 'admin ok';\n",
    );
    assert!(err.is_empty() && out.contains("admin ok"), "{out}\n{err}");
    for meta in ["\\d", "\\dt", "\\du", "\\l", "\\df pg_sleep", "\\dn+"] {
        let out = run(d.psql(ADMIN, DB).arg("-c").arg(meta));
        assert!(
            out.status.success(),
            "psql {meta} through the default pack: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        refusing_rule(&d, ADMIN, "select passwd from pg_shadow").as_deref(),
        Some("deny-catalog-secrets")
    );
    // An administrator's injection-looking statement runs, with an alert.
    let (out, _) = psql_script(
        &d,
        ADMIN,
        &format!("select count(*) from {t} where 1=1 or 2=2;\n"),
    );
    assert_eq!(out.trim(), "2");
    let events = d.wait_audit(WAIT, |e| e["kind"] == "alert" && e["user"] == ADMIN);
    let alert = events
        .iter()
        .find(|e| e["kind"] == "alert" && e["user"] == ADMIN)
        .expect("alert");
    assert_eq!(
        alert["alerts"],
        serde_json::json!(["alert-injection-admins"])
    );
    assert!(alert["signals"]
        .as_array()
        .is_some_and(|s| s.iter().any(|x| x == "tautology")));
    let _ = run(psql_direct(ADMIN, DB)
        .arg("-c")
        .arg(format!("drop table if exists {t}")));
}

#[test]
fn pgbench_runs_under_the_default_pack() {
    require_postgres();
    run_ok(psql_direct(ADMIN, DB).args([
        "-c",
        &format!("drop database if exists {BENCH_DB} with (force)"),
    ]));
    run_ok(psql_direct(ADMIN, DB).args(["-c", &format!("create database {BENCH_DB}")]));
    let d = start_pack("default", "enforce", None);
    let bench = |args: &[&str]| {
        let out = run(pgbench()
            .args(["-h", "127.0.0.1", "-U", ADMIN])
            .arg("-p")
            .arg(d.pg_port.to_string())
            .args(args)
            .arg(BENCH_DB)
            .env("PGCONNECT_TIMEOUT", "10"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "pgbench {args:?} under the default pack:\n{text}"
        );
        text
    };
    bench(&["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        let out = bench(&["-M", mode, "-c", "4", "-t", "50"]);
        assert!(
            out.contains("number of transactions actually processed: 200/200"),
            "{out}"
        );
    }
    assert_eq!(
        d.metric("danxia_policy_decisions_total", &[("verdict", "denied")]),
        0.0,
        "nothing of pgbench may be refused"
    );
    // Every statement of the simple and extended runs is decided (the
    // prepared run decides each statement once, at its Parse).
    assert!(d.metric("danxia_policy_decisions_total", &[("verdict", "allowed")]) >= 2800.0);
    let _ = run(psql_direct(ADMIN, DB).args([
        "-c",
        &format!("drop database if exists {BENCH_DB} with (force)"),
    ]));
}

#[test]
fn strict_allowlist_pack_refuses_what_was_not_learned() {
    ensure_app_role();
    let dir = tempfile::tempdir().expect("tempdir");
    let allowlist = dir.path().join("allowlist.toml");
    let learning = start_pack("strict-allowlist", "learn", Some(allowlist.clone()));
    let (_, err) = psql_script(&learning, APP_USER, "select 1 + 1;\nselect current_user;\n");
    assert!(err.is_empty(), "{err}");
    let deadline = std::time::Instant::now() + WAIT;
    while learned_entries(&fs::read_to_string(&allowlist).unwrap_or_default()) < 2 {
        assert!(std::time::Instant::now() < deadline, "nothing learned");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(learning);
    let d = start_pack("strict-allowlist", "enforce", Some(allowlist));
    let (out, err) = psql_script(
        &d,
        APP_USER,
        "select 2 + 3;\nselect current_user;\nselect 'new shape', 1;\n",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["5", APP_USER], "{err}");
    assert_eq!(
        err.matches("(rule deny-not-allowlisted)").count(),
        1,
        "{err}"
    );
    // Administrators are outside the allowlist rule; secrets stay closed.
    assert_eq!(refusing_rule(&d, ADMIN, "select 'anything', 42"), None);
    assert_eq!(
        refusing_rule(&d, APP_USER, "select * from pg_shadow").as_deref(),
        Some("deny-catalog-secrets")
    );
}

fn danxia() -> Command {
    Command::new(bin_path())
}

#[test]
fn check_accepts_the_shipped_packs_and_explains_mistakes() {
    for name in ["default", "strict-allowlist"] {
        let out = run(danxia().arg("check").arg(pack(name)));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {text}");
        assert!(text.contains(": OK, "), "{text}");
    }
    // The shipped configuration points at a pack that loads.
    let out = run(danxia()
        .arg("check")
        .arg("--config")
        .arg(workspace_root().join("danxia.toml"))
        .current_dir(workspace_root()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("10-a.toml"),
        "[[rule]]\nid = \"all-selects\"\ndescription = \"d\"\naction = \"deny\"\noperations = [\"select\"]\n\n\
         [[rule]]\nid = \"some-selects\"\ndescription = \"d\"\naction = \"deny\"\noperations = [\"select\"]\ntables = [\"t\"]\n\n\
         [[rule]]\nid = \"typo\"\ndescription = \"d\"\naction = \"deny\"\ntabels = [\"t\"]\n\n\
         [[rule]]\nid = \"cidr\"\ndescription = \"d\"\naction = \"deny\"\naddresses = [\"10.0.0.0/40\"]\n\n\
         [[rule]]\nid = \"all-selects\"\ndescription = \"dup\"\naction = \"alert\"\n",
    )
    .expect("write");
    let out = run(danxia().arg("check").arg(dir.path()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for want in [
        "10-a.toml:7: rule `some-selects`",
        "can never decide",
        "10-a.toml:18: rule `typo`",
        "did you mean `tables`",
        "10.0.0.0/40",
        "duplicate",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn explain_shows_facts_and_the_rule_trace() {
    let out = run(danxia()
        .args(["explain", "--user", "app", "--db", "test", "--policy"])
        .arg(pack("default"))
        .arg("select * from accounts where name = '' or '1'='1' --'"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "refused → exit 1:\n{text}");
    for want in [
        "operation:   select",
        "tables:      accounts",
        "tautology",
        "comment_truncation",
        "deny-injection",
        "BLOCKED",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let out = run(danxia()
        .args(["explain", "--user", "postgres", "--db", "test", "--policy"])
        .arg(pack("default"))
        .arg("select 1; create table t(x int)"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("statement 2 of 2") && text.contains("stacked"),
        "{text}"
    );
}
