//! What the whole test run leaves for `tests/scan_secrets.py`: every
//! harness danxia's log and audit files, and every secret a test handed
//! danxia (admin tokens, API keys, passwords, JWT signatures, private keys,
//! values a mask hid). After the run the scanner checks that no secret
//! appears in any log, audit record or test output.
//!
//! Active only when `DANXIA_TEST_ARTIFACTS` names a directory (tests/run.sh
//! sets it); otherwise every function here does nothing, so a single test
//! run by hand leaves nothing behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable naming the run's artifact directory.
pub const ARTIFACTS_ENV: &str = "DANXIA_TEST_ARTIFACTS";
/// Secrets shorter than this are not registered: they would match
/// unrelated text (`app`, `pw`), and the scanner could not tell.
pub const MIN_SECRET_CHARS: usize = 8;
/// Largest file kept from one instance; larger ones (a soak's audit) are
/// cut to their first and last halves of this, which is where a startup or
/// shutdown log line would be.
const MAX_KEPT_FILE_BYTES: u64 = 32 * 1024 * 1024;

fn root() -> Option<PathBuf> {
    std::env::var_os(ARTIFACTS_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Records `secret` as something that must never appear in danxia's logs,
/// audit records or the test output. One line per secret in
/// `secrets.txt` (appended, so concurrent test processes do not clash).
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.chars().count() < MIN_SECRET_CHARS || secret.contains('\n') {
        return;
    }
    let Some(root) = root() else { return };
    let _ = fs::create_dir_all(&root);
    let line = format!("{secret}\n");
    // One write of a short line to an O_APPEND file is not interleaved.
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("secrets.txt"))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The base64 body lines of a PEM private key, registered as secrets: a log
/// line that quoted the key file would hold at least one of them.
pub fn register_pem_key(pem: &str) {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 48)
        .for_each(register_secret);
}

/// Keeps what a danxia instance wrote: `log` (its stdout+stderr) and every
/// file under `audit_dir`, under `instances/<name>/`.
pub fn keep_instance(name: &str, log: &Path, audit_dir: &Path) {
    let Some(root) = root() else { return };
    let dest = root.join("instances").join(name);
    if fs::create_dir_all(&dest).is_err() {
        return;
    }
    keep_file(log, &dest.join("danxia.log"));
    keep_tree(audit_dir, &dest.join("audit"));
}

fn keep_tree(from: &Path, to: &Path) {
    let Ok(entries) = fs::read_dir(from) else {
        return;
    };
    let _ = fs::create_dir_all(to);
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => keep_tree(&p, &to.join(e.file_name())),
            Ok(t) if t.is_file() => keep_file(&p, &to.join(e.file_name())),
            _ => {}
        }
    }
}

fn keep_file(from: &Path, to: &Path) {
    let Ok(meta) = fs::metadata(from) else { return };
    if meta.len() <= MAX_KEPT_FILE_BYTES {
        let _ = fs::copy(from, to);
        return;
    }
    let Ok(bytes) = fs::read(from) else { return };
    let half = (MAX_KEPT_FILE_BYTES / 2) as usize;
    let mut kept = bytes[..half].to_vec();
    kept.extend_from_slice(&bytes[bytes.len() - half..]);
    let _ = fs::write(to, kept);
}
