//! The mixed soak, CI-sized: `bench/soak.sh --seconds 60` (pgbench,
//! sysbench, HTTP and a latency probe through one danxia, reloads good and
//! broken, alert bursts, samples every 10 s). The checks live in the script
//! (bench/soak.py); this test asserts its exit status and the summary it
//! wrote, so there is one implementation of them.

use std::process::Command;

use danxia_e2e::{bin_path, require_mariadb, require_postgres, run, workspace_root};

const SOAK_SECONDS: &str = "60";

#[test]
fn soak_one_minute_passes_its_checks() {
    require_postgres();
    require_mariadb();
    let out = tempfile::tempdir().expect("tempdir");
    let o = run(Command::new("bash")
        .arg(workspace_root().join("bench/soak.sh"))
        .args(["--seconds", SOAK_SECONDS, "--no-build", "--out"])
        .arg(out.path())
        .env("DANXIA_BIN", bin_path()));
    let summary = std::fs::read_to_string(out.path().join("summary.txt")).unwrap_or_default();
    assert!(
        o.status.success(),
        "bench/soak.sh must pass every check (exit {}):\n{summary}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    // Expected: the summary says PASS, every acknowledged statement was
    // audited, reloads happened and broken ones were refused, the alerts
    // of the bursts arrived.
    assert!(
        summary.starts_with("danxia soak summary (PASS)"),
        "{summary}"
    );
    for want in [
        "audit completeness: pg ",
        "mysql +0, http +0; verify: OK",
        "reloads: ok ",
        "broken refused ",
        "alerts: expected ",
    ] {
        assert!(summary.contains(want), "summary lacks {want:?}:\n{summary}");
    }
    let samples = std::fs::read_to_string(out.path().join("samples.csv")).expect("samples.csv");
    assert!(
        samples.lines().count() >= 7,
        "a 60 s soak samples at least every 10 s: {samples}"
    );
}
