//! What a DBA deploying danxia meets first: `danxia init` writes a starter
//! configuration that `danxia check` accepts and `danxia run` serves in front
//! of the real PostgreSQL and MariaDB, from any working directory; it never
//! overwrites an operator's files; and the shipped systemd unit passes
//! `systemd-analyze verify` with the real binary.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use danxia_e2e::*;

fn danxia(args: &[&str]) -> std::process::Output {
    Command::new(bin_path())
        .args(args)
        .output()
        .expect("run danxia")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Kills the child on drop so a failing assertion does not leak a proxy.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_healthy(admin: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = try_http_get(admin, "/healthz") {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("danxia exited with {status} before becoming healthy");
        }
        assert!(Instant::now() < deadline, "danxia not healthy after 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn init_writes_a_config_that_runs_in_front_of_both_databases() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let etc = tmp.path().join("etc");
    let state = tmp.path().join("state");
    let (pg, my, admin) = (free_port(), free_port(), free_port());
    let (pg_listen, my_listen, admin_listen) = (
        format!("127.0.0.1:{pg}"),
        format!("127.0.0.1:{my}"),
        format!("127.0.0.1:{admin}"),
    );
    let o = danxia(&[
        "init",
        etc.to_str().expect("utf-8"),
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--postgres",
        "127.0.0.1:5432",
        "--postgres-listen",
        &pg_listen,
        "--mysql",
        "127.0.0.1:3306",
        "--mysql-listen",
        &my_listen,
        "--admin-listen",
        &admin_listen,
        "--mode",
        "enforce",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let config = etc.join("danxia.toml");
    assert!(
        text(&o).contains(&format!("danxia check --config {}", config.display())),
        "init prints the next steps: {}",
        text(&o)
    );
    let written = std::fs::read_to_string(&config).expect("config written");
    assert!(
        written.contains("# "),
        "the starter configuration is commented"
    );
    assert!(etc.join("policies/00-policy.toml").is_file());

    let o = danxia(&["check", "--config", config.to_str().expect("utf-8")]);
    assert!(o.status.success(), "check: {}", text(&o));

    // From an unrelated working directory: init wrote absolute paths.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let child = Command::new(bin_path())
        .args(["run", "--config", config.to_str().expect("utf-8")])
        .current_dir(elsewhere.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn danxia");
    let mut running = Running(child);
    wait_healthy(admin, &mut running.0);

    let out = run_ok(Command::new("psql").args([
        "-X",
        "-A",
        "-t",
        "-h",
        "127.0.0.1",
        "-p",
        &pg.to_string(),
        "-U",
        "postgres",
        "-d",
        "test",
        "-c",
        "select 40 + 2",
    ]));
    assert_eq!(out.trim(), "42");
    let out = run_ok(Command::new("mariadb").args([
        "-h127.0.0.1",
        &format!("-P{my}"),
        "-uroot",
        "--skip-ssl",
        "-N",
        "-e",
        "select 40 + 2",
        "test",
    ]));
    assert_eq!(out.trim(), "42");

    // The shipped pack enforces: an application account may not read
    // password hashes (trust auth: the role only has to exist).
    run_ok(psql_direct("postgres", "test").args([
        "-c",
        "do $$ begin create role danxia_init_app login; \
         exception when duplicate_object then null; end $$;",
    ]));
    let refused = Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.to_string(),
            "-U",
            "danxia_init_app",
            "-d",
            "test",
            "-c",
            "select * from pg_shadow",
        ])
        .output()
        .expect("psql");
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("danxia") && text(&refused).contains("rule"),
        "refused by the policy init wrote: {}",
        text(&refused)
    );

    // The audit log is where init said, and verifies.
    let audit = state.join("audit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_audit_dir(&audit)
        .iter()
        .all(|e| e["statement"].as_str() != Some("select 40 + 2"))
    {
        assert!(
            Instant::now() < deadline,
            "statement not audited under {}",
            audit.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM: graceful stop, exit 0.
    let pid = running.0.id() as i32;
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    let status = loop {
        if let Some(s) = running.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "danxia did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let v = audit_verify_dir(&audit);
    assert!(v.status.success(), "{}", text(&v));
}

#[test]
fn init_never_overwrites_without_force() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_str().expect("utf-8");
    let o = danxia(&["init", dir, "--postgres", "127.0.0.1:5432"]);
    assert!(o.status.success(), "{}", text(&o));
    let config = tmp.path().join("danxia.toml");
    std::fs::write(&config, "# the operator's edits\n").expect("edit");
    let o = danxia(&["init", dir, "--postgres", "127.0.0.1:5432"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--force"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&config).expect("read"),
        "# the operator's edits\n"
    );
    let o = danxia(&["init", dir, "--postgres", "127.0.0.1:5432", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read_to_string(&config)
        .expect("read")
        .contains("[[listener]]"));
    // Bad arguments name the flag and write nothing.
    let empty = tempfile::tempdir().expect("tempdir");
    let o = danxia(&[
        "init",
        empty.path().to_str().expect("utf-8"),
        "--postgres-listen",
        "localhost:6543",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--postgres-listen"), "{}", text(&o));
    assert!(std::fs::read_dir(empty.path())
        .expect("read_dir")
        .next()
        .is_none());
}

/// The unit as shipped, with the binary path pointed at the one under test:
/// systemd parses every key (an unknown or misspelt hardening key is a
/// warning, which fails the test), and the commands exist.
#[test]
fn systemd_unit_verifies() {
    let unit = workspace_root().join("packaging/systemd/danxia.service");
    let text_unit = std::fs::read_to_string(&unit).expect("unit file");
    for key in [
        "ExecStartPre=/usr/local/bin/danxia check --config /etc/danxia/danxia.toml",
        "ExecStart=/usr/local/bin/danxia run --config /etc/danxia/danxia.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=danxia",
        "NoNewPrivileges=yes",
        "LimitNOFILE=",
    ] {
        assert!(text_unit.contains(key), "the unit lacks {key:?}");
    }
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.is_file(),
        "systemd-analyze is missing: tests/install-deps.sh installs the systemd package"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = tmp.path().join("danxia.service");
    let bin = bin_path();
    std::fs::write(
        &local,
        text_unit
            .replace("/usr/local/bin/danxia", bin.to_str().expect("utf-8"))
            // verify resolves the user; this machine has no danxia user.
            .replace("User=danxia", "User=root")
            .replace("Group=danxia", "Group=root"),
    )
    .expect("write unit");
    let o = Command::new(analyze)
        .arg("verify")
        .arg(&local)
        .output()
        .expect("systemd-analyze");
    assert!(o.status.success(), "{}", text(&o));
    let noise: Vec<String> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains("danxia.service"))
        .map(str::to_owned)
        .collect();
    assert!(noise.is_empty(), "systemd complains: {noise:#?}");
}
