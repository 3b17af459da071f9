//! Audit durability under `kill -9`: psycopg2 and PyMySQL loaders send one
//! uniquely marked statement after another through danxia
//! (`tests/clients/marker_loader.py` logs every marker whose result came
//! back), danxia is killed with SIGKILL mid-traffic, restarted on the same
//! audit directory, and the audit is compared with what the clients were
//! acknowledged. Three kill cycles per test catch torn-tail cases.
//!
//! - `fsync = "every"`: every acknowledged marker is in the audit (the
//!   session forwards a statement's completion only after the writer has
//!   written and fsynced its event), and the chain verifies after each
//!   restart, a torn tail being cut and recorded as `audit_recovery`.
//! - `fsync = "batch"`: the loss is bounded as docs/audit.md says: at most
//!   the events still in danxia's queue or the writer's batch in hand.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use danxia_e2e::{
    audit_verify_dir, of_kind, python, read_audit_dir, require_mariadb, require_postgres,
    workspace_root, Danxia, Options,
};

/// Kill cycles per test.
const CYCLES: usize = 3;
/// Markers each loader must have acknowledged before the kill: enough that
/// the kill lands mid-traffic, few enough for a noisy 2-core machine.
const ACKED_BEFORE_KILL: usize = 150;
/// Generous bound for waits on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);
/// `[audit] queue_capacity` in the batch test: the documented loss bound is
/// this plus the writer's batch in hand (`MAX_BATCH_EVENTS` in writer.rs).
const BATCH_QUEUE_CAPACITY: usize = 4096;
const MAX_BATCH_EVENTS: usize = 1024;

struct Loader {
    child: Child,
    out: PathBuf,
}

impl Loader {
    fn start(driver: &str, port: u16, dir: &Path, prefix: &str) -> Loader {
        let out = dir.join(format!("acked-{prefix}.txt"));
        let child = python()
            .arg(workspace_root().join("tests/clients/marker_loader.py"))
            .args([driver, &port.to_string(), &out.to_string_lossy(), prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn marker_loader.py");
        Loader { child, out }
    }

    fn acked(&self) -> Vec<String> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits for the loader to stop (its connection died with danxia).
    fn finish(mut self) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait loader") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                assert!(
                    st.success(),
                    "the loader must end cleanly when danxia dies: {st}\n{err}"
                );
                return self.acked();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("loader still running {WAIT:?} after danxia was killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn start_on(audit_dir: &Path, fsync: &str) -> Danxia {
    Danxia::start_with(Options {
        mysql: true,
        audit: vec![
            (
                "dir".into(),
                danxia_e2e::toml_str(&audit_dir.to_string_lossy()),
            ),
            ("fsync".into(), format!("\"{fsync}\"")),
            ("queue_capacity".into(), BATCH_QUEUE_CAPACITY.to_string()),
        ],
        ..Options::default()
    })
}

/// What one test saw over its kill cycles.
struct Outcome {
    /// Markers acknowledged and missing from the audit, per cycle.
    missing: Vec<usize>,
    acked: usize,
    /// `audit_recovery` records ("cut N bytes …") written after restarts.
    recoveries: Vec<String>,
}

/// Runs `CYCLES` kill cycles with `fsync` and checks the chain after each
/// restart. Returns what was lost.
fn kill_cycles(fsync: &str) -> Outcome {
    require_postgres();
    require_mariadb();
    let root = tempfile::tempdir().expect("tempdir");
    let audit_dir = root.path().join("audit");
    let mut missing = Vec::new();
    let mut acked_total = 0;
    let mut d = start_on(&audit_dir, fsync);
    for cycle in 0..CYCLES {
        let loaders = [
            Loader::start("pg", d.pg_port, root.path(), &format!("pg{cycle}")),
            Loader::start("mysql", d.mysql_port, root.path(), &format!("my{cycle}")),
        ];
        let deadline = Instant::now() + WAIT;
        while loaders.iter().any(|l| l.acked().len() < ACKED_BEFORE_KILL) {
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: the loaders did not reach {ACKED_BEFORE_KILL} markers within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d.signal(libc::SIGKILL);
        assert!(d.wait_exit(WAIT).is_some(), "danxia must die on SIGKILL");
        let acked: Vec<String> = loaders.into_iter().flat_map(Loader::finish).collect();
        acked_total += acked.len();
        // Restart on the same directory: the torn tail (if any) is cut.
        drop(d);
        d = start_on(&audit_dir, fsync);
        let verify = audit_verify_dir(&audit_dir);
        assert!(
            verify.status.success(),
            "cycle {cycle}: the chain must verify after a kill -9 and a restart: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        let events = read_audit_dir(&audit_dir);
        let audited: HashSet<String> = of_kind(&events, "statement")
            .iter()
            .filter_map(|e| e["statement"].as_str())
            .filter_map(|s| s.split('\'').nth(1))
            .map(str::to_string)
            .collect();
        let lost: Vec<&String> = acked.iter().filter(|m| !audited.contains(*m)).collect();
        eprintln!(
            "fsync={fsync} cycle {cycle}: {} markers acknowledged, {} missing from the audit",
            acked.len(),
            lost.len()
        );
        if fsync == "every" {
            assert!(
                lost.is_empty(),
                "cycle {cycle}: with fsync = \"every\" every acknowledged statement must be in the audit; missing {} of {}: {:?}",
                lost.len(),
                acked.len(),
                lost.iter().take(10).collect::<Vec<_>>()
            );
        }
        missing.push(lost.len());
    }
    d.shutdown();
    let verify = audit_verify_dir(&audit_dir);
    assert!(
        verify.status.success(),
        "after a clean stop the chain verifies: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let events = read_audit_dir(&audit_dir);
    let recoveries: Vec<String> = of_kind(&events, "audit_recovery")
        .iter()
        .filter_map(|e| e["detail"].as_str().map(str::to_string))
        .collect();
    for r in &recoveries {
        // The only recovery a kill -9 may cause: a partial last record cut.
        assert!(
            r.starts_with("cut ") && r.contains("partial record"),
            "unexpected audit_recovery after kill -9: {r}"
        );
    }
    Outcome {
        missing,
        acked: acked_total,
        recoveries,
    }
}

#[test]
fn fsync_every_keeps_every_acknowledged_statement_through_kill_9() {
    let o = kill_cycles("every");
    eprintln!(
        "fsync=every: {} acknowledged over {CYCLES} kills, missing per cycle {:?}, torn tails cut: {}",
        o.acked,
        o.missing,
        o.recoveries.len()
    );
    assert!(
        o.missing.iter().all(|&m| m == 0),
        "nothing acknowledged is lost"
    );
}

#[test]
fn fsync_batch_loses_at_most_the_queue_and_the_batch_in_hand() {
    let o = kill_cycles("batch");
    let bound = BATCH_QUEUE_CAPACITY + MAX_BATCH_EVENTS;
    eprintln!(
        "fsync=batch: {} acknowledged over {CYCLES} kills, missing per cycle {:?} (bound {bound}), torn tails cut: {}",
        o.acked,
        o.missing,
        o.recoveries.len()
    );
    for (cycle, m) in o.missing.iter().enumerate() {
        assert!(
            *m <= bound,
            "cycle {cycle}: {m} acknowledged statements lost, more than queue_capacity + one batch ({bound})"
        );
    }
}
