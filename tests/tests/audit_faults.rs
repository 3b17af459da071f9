//! The audit disk failing under traffic — full (ENOSPC) and read-only
//! (EROFS) — with both `audit.on_error` policies, and an audit directory
//! that cannot be written at start-up. Checks exactly what docs/audit.md
//! "When the disk fails" promises.
//!
//! The audit directory is a small tmpfs mounted by the test (we run as
//! root); a test whose mount is refused prints `SKIP <test>: <reason>` and
//! returns. Every mount is undone by a Drop guard.
//!
//! How the faults are made:
//! - full: a filler file takes every free byte of a 2 MiB tmpfs; deleting
//!   it frees the space;
//! - read-only: `mount -o remount,ro` is refused while danxia holds its
//!   audit file open for writing (EBUSY), so a read-only tmpfs is mounted
//!   over the directory instead, with `rotate_bytes` at its 4 KiB minimum:
//!   the next file danxia creates fails with EROFS; unmounting the cover
//!   ends the fault.
//!
//! Sessions stall only once the audit queue is full (`on_full = "block"`),
//! so the tests set `queue_capacity = 4`; with the default 65,536 a client
//! is answered until that many events wait.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use danxia_e2e::wire::RawSession;
use danxia_e2e::*;

const WAIT: Duration = Duration::from_secs(30);
/// How long the statement count must stand still to call the clients
/// stalled.
const STALL: Duration = Duration::from_secs(2);

/// Mounts on one directory, unmounted (innermost first) on drop.
struct Mounts {
    dir: PathBuf,
    layers: usize,
}

impl Mounts {
    /// A tmpfs of `size` on `dir`; `None` (after printing why) when this
    /// machine does not let the test mount.
    fn tmpfs(test: &str, dir: &Path, size: &str) -> Option<Mounts> {
        std::fs::create_dir_all(dir).expect("mount point");
        let mut m = Mounts {
            dir: dir.to_path_buf(),
            layers: 0,
        };
        match m.mount(&format!("size={size}")) {
            Ok(()) => Some(m),
            Err(e) => {
                eprintln!(
                    "SKIP {test}: cannot mount a tmpfs ({e}); run as root with mount permission"
                );
                None
            }
        }
    }

    fn mount(&mut self, opts: &str) -> Result<(), String> {
        let out = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&self.dir));
        if out.status.success() {
            self.layers += 1;
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn umount(&mut self) {
        if self.layers == 0 {
            return;
        }
        let ok = run(Command::new("umount").arg(&self.dir)).status.success()
            || run(Command::new("umount").arg("-l").arg(&self.dir))
                .status
                .success();
        assert!(ok, "umount {}", self.dir.display());
        self.layers -= 1;
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        while self.layers > 0 {
            let ok = run(Command::new("umount").arg(&self.dir)).status.success()
                || run(Command::new("umount").arg("-l").arg(&self.dir))
                    .status
                    .success();
            if !ok {
                eprintln!("could not unmount {}", self.dir.display());
                return;
            }
            self.layers -= 1;
        }
    }
}

/// A client running `select 'fault-N'` one after another on one session,
/// recording each N it got an answer for.
struct Driver {
    answered: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Driver {
    fn start(port: u16) -> Driver {
        let answered = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (answered.clone(), stop.clone());
        let handle = thread::spawn(move || {
            let mut sess = RawSession::connect(port, "postgres", "test").expect("session");
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                let msgs = sess
                    .simple_query(&format!("select 'fault-{n}'"))
                    .expect("an answer (after the disk is back at the latest)");
                assert_eq!(
                    msgs[1].data_row(),
                    vec![Some(format!("fault-{n}"))],
                    "statement {n}"
                );
                a.lock().expect("lock").push(n);
                n += 1;
                thread::sleep(Duration::from_millis(10));
            }
            sess.terminate();
        });
        Driver {
            answered,
            stop,
            handle: Some(handle),
        }
    }

    fn count(&self) -> usize {
        self.answered.lock().expect("lock").len()
    }

    /// Waits until at least `n` statements were answered.
    fn wait_count(&self, n: usize, what: &str) {
        let deadline = Instant::now() + WAIT;
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: only {} answered",
                self.count()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until no statement has been answered for [`STALL`]; returns
    /// the count then.
    fn wait_stalled(&self) -> usize {
        let deadline = Instant::now() + WAIT;
        let (mut last, mut since) = (self.count(), Instant::now());
        loop {
            let c = self.count();
            if c != last {
                (last, since) = (c, Instant::now());
            } else if since.elapsed() >= STALL {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "clients never stalled ({c} answered)"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("driver");
        }
        let answered = self.answered.lock().expect("lock").clone();
        answered
    }
}

/// Fills the file system of `dir` with `dir/filler` until ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    Full,
    ReadOnly,
}

/// The `N` of the audit_recovery record's "N events lost".
fn lost(detail: &str) -> u64 {
    let i = detail
        .find(" events lost")
        .expect("'events lost' in the recovery record");
    detail[..i]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number before 'events lost'")
}

/// Runs the outage: traffic, the fault, the checks during it, the repair,
/// the checks after. Returns nothing; asserts everything.
fn outage(test: &str, fault: Fault, on_error: &str) {
    require_postgres();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("audit");
    let Some(mut mounts) = Mounts::tmpfs(test, &dir, "2m") else {
        return;
    };
    let mut audit = vec![
        ("dir".to_string(), toml_str(&dir.display().to_string())),
        ("on_error".to_string(), toml_str(on_error)),
        ("queue_capacity".to_string(), "4".to_string()),
    ];
    if fault == Fault::ReadOnly {
        audit.push(("rotate_bytes".into(), "4096".into()));
    }
    let mut d = Danxia::start_with(Options {
        audit,
        ..Options::default()
    });
    let driver = Driver::start(d.pg_port);
    driver.wait_count(20, "before the fault");
    let failures0 = d
        .metric_opt("danxia_audit_write_failures_total", &[])
        .unwrap_or(0.0);
    let t = Instant::now();
    let filler = match fault {
        Fault::Full => Some(fill(&dir)),
        Fault::ReadOnly => {
            mounts.mount("ro,size=1m").expect("read-only cover");
            None
        }
    };
    d.wait_metric(WAIT, "danxia_audit_healthy", &[], |v| v == 0.0);
    println!("{test}: audit unhealthy {:?} after the fault", t.elapsed());
    let errno = match fault {
        Fault::Full => "No space left on device",
        Fault::ReadOnly => "Read-only file system",
    };
    let during = if on_error == "block" {
        // Fail closed: once the queue is full the client waits.
        let stalled = driver.wait_stalled();
        assert_eq!(
            d.http_get("/readyz").0,
            503,
            "not ready while the audit fails"
        );
        stalled
    } else {
        // Fail open: traffic goes on.
        let c = driver.count();
        driver.wait_count(c + 50, "on_error = continue during the outage");
        c + 50
    };
    let failures = d.metric("danxia_audit_write_failures_total", &[]);
    assert!(failures > failures0, "write failures counted: {failures}");
    let log = d.stderr();
    assert!(
        log.contains("cannot write audit file") || log.contains("cannot open audit file"),
        "the log names the file: {log}"
    );
    assert!(log.contains(&dir.display().to_string()), "{log}");
    assert!(log.contains(errno), "the log names {errno}: {log}");
    // Repair.
    let t = Instant::now();
    match filler {
        Some(f) => std::fs::remove_file(f).expect("free the space"),
        None => mounts.umount(),
    }
    d.wait_metric(WAIT, "danxia_audit_healthy", &[], |v| v == 1.0);
    driver.wait_count(during + 20, "after the repair");
    println!(
        "{test}: healthy again and {} statements answered {:?} after the repair",
        driver.count() - during,
        t.elapsed()
    );
    let answered = driver.finish();
    assert!(d.shutdown().success(), "{}", d.stderr());
    let events = read_audit_dir(&dir);
    let recovery: Vec<&serde_json::Value> = of_kind(&events, "audit_recovery");
    assert!(!recovery.is_empty(), "an audit_recovery record");
    let detail = recovery[0]["detail"].as_str().unwrap_or_default();
    println!("{test}: {detail}");
    let lost_n = lost(detail);
    let verify = audit_verify_dir(&dir);
    assert!(
        verify.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let audited: std::collections::HashSet<String> = events
        .iter()
        .filter_map(|e| e["statement"].as_str())
        .map(String::from)
        .collect();
    let missing: Vec<u64> = answered
        .iter()
        .copied()
        .filter(|n| !audited.contains(&format!("select 'fault-{n}'")))
        .collect();
    if on_error == "block" {
        assert_eq!(lost_n, 0, "{detail}");
        assert!(
            missing.is_empty(),
            "every answered statement is audited; missing {missing:?}"
        );
    } else {
        assert!(lost_n > 0, "{detail}");
        assert!(
            missing.len() as u64 <= lost_n,
            "{} answered statements missing, {lost_n} events lost",
            missing.len()
        );
        println!(
            "{test}: {} of {} answered statements not audited; {lost_n} events lost",
            missing.len(),
            answered.len()
        );
    }
    drop(mounts);
}

/// Case 1: Disk full, `on_error = "block"`. Expected: `danxia_audit_healthy` 0,
/// `/readyz` 503, write failures counted, the log names the file and
/// ENOSPC; clients stall once the queue is full; after space is freed they
/// go on, an `audit_recovery` record says "0 events lost", every answered
/// statement is audited and the chain verifies.
#[test]
fn disk_full_blocks_then_recovers_losing_nothing() {
    outage("disk_full_blocks", Fault::Full, "block");
}

/// Case 2: Disk full, `on_error = "continue"`. Expected: traffic goes on, the
/// failures and lost events are counted, the recovery record states how
/// many were lost (> 0), no more answered statements are missing than
/// that, and the chain verifies (no seq skipped).
#[test]
fn disk_full_continue_counts_what_it_loses() {
    outage("disk_full_continue", Fault::Full, "continue");
}

/// Case 3a: Read-only audit directory (EROFS), `on_error = "block"`: as 1.
#[test]
fn read_only_blocks_then_recovers_losing_nothing() {
    outage("read_only_blocks", Fault::ReadOnly, "block");
}

/// Case 3b: Read-only audit directory (EROFS), `on_error = "continue"`: as 2.
#[test]
fn read_only_continue_counts_what_it_loses() {
    outage("read_only_continue", Fault::ReadOnly, "continue");
}

/// Case 4: An audit directory that cannot be written at start-up (a read-only
/// tmpfs). Expected: danxia refuses to start — it exits at once with a
/// message naming the directory and the OS error — rather than serve
/// without an audit log.
#[test]
fn unwritable_audit_dir_stops_start_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("audit");
    let Some(_mounts) = Mounts::tmpfs("unwritable_audit_dir", &dir, "1m") else {
        return;
    };
    let out = run(Command::new("mount").args(["-o", "remount,ro"]).arg(&dir));
    assert!(out.status.success(), "remount ro");
    let config = tmp.path().join("danxia.toml");
    let opts = Options {
        audit: vec![("dir".into(), toml_str(&dir.display().to_string()))],
        ..Options::default()
    };
    std::fs::write(
        &config,
        opts.to_toml(free_port(), free_port(), free_port(), &dir),
    )
    .expect("config");
    let t = Instant::now();
    let out = run(Command::new(bin_path())
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(tmp.path()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "unwritable audit dir: exit {:?} after {:?}: {stderr}",
        out.status.code(),
        t.elapsed()
    );
    assert!(!out.status.success(), "danxia must not start: {stderr}");
    assert!(t.elapsed() < Duration::from_secs(20), "exits at once");
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
}
