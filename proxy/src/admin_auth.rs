//! Who may use the admin API: whoever holds the bearer token in
//! `admin.token_file`. Owns the token file (created with a fresh random
//! token and mode 0600 when missing, refused when group or others can read
//! it, re-read when it changes so a rotated token works without a restart),
//! the constant-time check of `Authorization: Bearer …`, and the limiter
//! that keeps a brute force from flooding the audit log.
//!
//! Must never log, audit or answer with the token or any part of it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderValue;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use crate::error::AdminTokenError;

/// Shortest token accepted from a file (a generated one is 64 hex digits).
pub const MIN_TOKEN_CHARS: usize = 32;
/// Random bytes in a generated token.
const TOKEN_BYTES: usize = 32;
/// Largest token file read (a token is one short line).
const MAX_TOKEN_FILE_BYTES: u64 = 4096;
/// The realm named in `WWW-Authenticate`.
pub const REALM: &str = "danxia-admin";
/// Failed attempts audited per window; the rest are only counted.
const AUDITED_FAILURES_PER_WINDOW: u32 = 10;
const AUDIT_WINDOW: Duration = Duration::from_secs(60);

/// Why a request was refused; the `reason` label of
/// `danxia_admin_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No `Authorization` header.
    Missing,
    /// A header that is not `Bearer <token>`.
    Malformed,
    /// A bearer token that is not the one in the file.
    Wrong,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::Malformed => "malformed",
            Failure::Wrong => "wrong",
        }
    }

    /// What the problem body tells the caller to do.
    pub fn detail(self) -> &'static str {
        match self {
            Failure::Missing => "this endpoint needs `Authorization: Bearer <token>`; the token is in the file admin.token_file names (default var/admin.token)",
            Failure::Malformed => "the Authorization header must be `Bearer <token>`",
            Failure::Wrong => "the bearer token is not the one in admin.token_file (it may have been rotated: read the file again)",
        }
    }
}

/// Identifies a version of the file: a change of content, of permissions
/// or a replacement (rename over it) changes the stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.size(),
            mode: m.mode(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

struct Loaded {
    stamp: Stamp,
    /// SHA-256 of the token: requests are compared digest to digest, in
    /// constant time, so neither the length nor a prefix leaks.
    digest: [u8; 32],
    /// A changed file that did not load: not retried (or logged) again
    /// until it changes once more.
    rejected: Option<Stamp>,
}

/// The admin token, as in the file now.
pub struct TokenFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl TokenFile {
    /// At start-up: creates the file with a fresh random token when it is
    /// missing, then reads it. Any error stops start-up.
    pub fn open(path: &Path) -> Result<TokenFile, AdminTokenError> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create(path)?;
                info!(path = %path.display(), "admin token file created with a fresh random token (mode 0600)");
            }
            Err(source) => {
                return Err(AdminTokenError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
            Ok(_) => {}
        }
        let (stamp, digest) = read(path)?;
        info!(path = %path.display(), "admin API requires the bearer token in this file");
        Ok(TokenFile {
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded {
                stamp,
                digest,
                rejected: None,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The digest of the token in force, re-reading the file first if it
    /// changed. A changed file that does not load (too short, unsafe
    /// permissions, gone) leaves the previous token in force, logged once.
    fn current(&self) -> [u8; 32] {
        let mut l = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = match fs::metadata(&self.path) {
            Ok(m) => Stamp::of(&m),
            Err(e) => {
                if l.rejected.is_none() {
                    warn!(path = %self.path.display(), error = %e, "admin token file unreadable; the previous token stays in force");
                    l.rejected = Some(l.stamp);
                }
                return l.digest;
            }
        };
        if stamp == l.stamp || Some(stamp) == l.rejected {
            return l.digest;
        }
        match read(&self.path) {
            Ok((stamp, digest)) => {
                if digest != l.digest {
                    info!(path = %self.path.display(), "admin token file changed: the new token is in force");
                }
                *l = Loaded {
                    stamp,
                    digest,
                    rejected: None,
                };
            }
            Err(e) => {
                warn!(error = %e, "admin token file changed but does not load; the previous token stays in force");
                l.rejected = Some(stamp);
            }
        }
        l.digest
    }

    /// Checks an `Authorization` header against the token.
    pub fn check(&self, header: Option<&HeaderValue>) -> Result<(), Failure> {
        let presented = bearer(header)?;
        let digest: [u8; 32] = Sha256::digest(presented).into();
        if bool::from(digest.ct_eq(&self.current())) {
            Ok(())
        } else {
            Err(Failure::Wrong)
        }
    }
}

/// The token of a `Bearer` header (scheme case-insensitive, RFC 9110).
fn bearer(header: Option<&HeaderValue>) -> Result<&[u8], Failure> {
    let h = header.ok_or(Failure::Missing)?.as_bytes();
    let (scheme, rest) = match h.iter().position(|&b| b == b' ') {
        Some(i) => (&h[..i], &h[i + 1..]),
        None => return Err(Failure::Malformed),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(Failure::Malformed);
    }
    let token = rest.trim_ascii();
    if token.is_empty() || !token.iter().all(u8::is_ascii_graphic) {
        return Err(Failure::Malformed);
    }
    Ok(token)
}

/// Reads and validates the file: a regular file, mode without group or
/// other bits, one printable token of at least [`MIN_TOKEN_CHARS`].
fn read(path: &Path) -> Result<(Stamp, [u8; 32]), AdminTokenError> {
    let err_read = |source| AdminTokenError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(err_read)?;
    if !meta.is_file() {
        return Err(AdminTokenError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    check_mode(path, meta.permissions().mode())?;
    let mut text = Vec::new();
    let f = fs::File::open(path).map_err(err_read)?;
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_TOKEN_FILE_BYTES), &mut text)
        .map_err(err_read)?;
    let token = text.trim_ascii();
    if token.len() < MIN_TOKEN_CHARS {
        return Err(AdminTokenError::TooShort {
            path: path.to_path_buf(),
            len: token.len(),
            min: MIN_TOKEN_CHARS,
        });
    }
    if !token.iter().all(u8::is_ascii_graphic) {
        return Err(AdminTokenError::Invalid {
            path: path.to_path_buf(),
        });
    }
    Ok((Stamp::of(&meta), Sha256::digest(token).into()))
}

/// Refuses a token file group or others may read or write.
fn check_mode(path: &Path, mode: u32) -> Result<(), AdminTokenError> {
    if mode & 0o077 != 0 {
        return Err(AdminTokenError::Permissions {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Writes a fresh random token (64 hex digits) with mode 0600: written to
/// a temporary file created 0600 (never readable by others, not even
/// briefly), synced, then renamed into place.
fn create(path: &Path) -> Result<(), AdminTokenError> {
    let err = |source| AdminTokenError::Create {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| err(std::io::Error::other(e.to_string())))?;
    let token = format!("{}\n", hex::encode(bytes));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Decides which failed attempts are audited: the first
/// [`AUDITED_FAILURES_PER_WINDOW`] of each minute; the others are only
/// counted, and the next audited one says how many were left out.
#[derive(Debug)]
pub struct FailureAudit {
    state: Mutex<(Instant, u32, u64)>,
}

impl Default for FailureAudit {
    fn default() -> Self {
        FailureAudit {
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }
}

impl FailureAudit {
    /// `Some(n)`: audit this failure, `n` failures were not audited since
    /// the last one that was. `None`: count only.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(s.0) >= AUDIT_WINDOW {
            s.0 = now;
            s.1 = 0;
        }
        if s.1 < AUDITED_FAILURES_PER_WINDOW {
            s.1 += 1;
            Some(std::mem::take(&mut s.2))
        } else {
            s.2 += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).expect("header")
    }

    fn write_mode(path: &Path, text: &str, mode: u32) {
        fs::write(path, text).expect("write");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn creates_a_private_random_token_when_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("var/admin.token");
        let t = TokenFile::open(&path).expect("created");
        let meta = fs::metadata(&path).expect("exists");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let token = fs::read_to_string(&path).expect("read");
        let token = token.trim();
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!dir.path().join("var/admin.token.tmp").exists());
        assert_eq!(t.check(Some(&hv(&format!("Bearer {token}")))), Ok(()));
        let other = TokenFile::open(&dir.path().join("b.token")).expect("second");
        assert_eq!(
            other.check(Some(&hv(&format!("Bearer {token}")))),
            Err(Failure::Wrong),
            "two generated tokens differ"
        );
    }

    #[test]
    fn check_says_missing_malformed_or_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t");
        let token = "0123456789abcdef0123456789abcdef";
        write_mode(&path, &format!("{token}\n"), 0o600);
        let t = TokenFile::open(&path).expect("loads");
        let cases: &[(Option<&str>, Result<(), Failure>)] = &[
            (None, Err(Failure::Missing)),
            (Some("Basic abc"), Err(Failure::Malformed)),
            (Some("Bearer"), Err(Failure::Malformed)),
            (Some("Bearer "), Err(Failure::Malformed)),
            (Some(token), Err(Failure::Malformed)),
            (Some("Bearer 0123456789abcdef"), Err(Failure::Wrong)),
            (
                Some("Bearer 0123456789abcdef0123456789abcdeX"),
                Err(Failure::Wrong),
            ),
            (
                Some("Bearer 0123456789abcdef0123456789abcdef0"),
                Err(Failure::Wrong),
            ),
            (Some("Bearer 0123456789abcdef0123456789abcdef"), Ok(())),
            (Some("bearer 0123456789abcdef0123456789abcdef"), Ok(())),
        ];
        for (h, want) in cases {
            let v = h.map(hv);
            assert_eq!(t.check(v.as_ref()), *want, "{h:?}");
        }
    }

    #[test]
    fn refuses_unsafe_permissions_short_and_garbled_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t");
        write_mode(&path, "0123456789abcdef0123456789abcdef", 0o640);
        let e = TokenFile::open(&path).err().expect("refused").to_string();
        assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        write_mode(&path, "0123456789abcdef0123456789abcdef", 0o604);
        assert!(TokenFile::open(&path).is_err());
        write_mode(&path, "short\n", 0o600);
        let e = TokenFile::open(&path).err().expect("refused").to_string();
        assert!(e.contains("at least 32"), "{e}");
        write_mode(&path, "", 0o600);
        assert!(TokenFile::open(&path).is_err(), "an empty file is refused");
        write_mode(&path, "0123456789abcdef 0123456789abcdef", 0o600);
        let e = TokenFile::open(&path).err().expect("refused").to_string();
        assert!(e.contains("printable"), "{e}");
        let e = TokenFile::open(dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_rotated_token_is_used_and_a_bad_rotation_keeps_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t");
        let old = "a".repeat(40);
        // Lengths differ: two writes may share a coarse file timestamp.
        let new = "b".repeat(41);
        write_mode(&path, &old, 0o600);
        let t = TokenFile::open(&path).expect("loads");
        let ok = |tok: &str| t.check(Some(&hv(&format!("Bearer {tok}")))).is_ok();
        assert!(ok(&old));
        write_mode(&path, &new, 0o600);
        assert!(ok(&new) && !ok(&old), "the rotated token replaces the old");
        write_mode(&path, &old, 0o644);
        assert!(
            ok(&new) && !ok(&old),
            "a world-readable file is not taken; the previous token stays"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(ok(&old), "fixed permissions: the file's token is in force");
    }

    #[test]
    fn failure_audit_is_rate_limited() {
        let a = FailureAudit::default();
        let t0 = Instant::now();
        for _ in 0..AUDITED_FAILURES_PER_WINDOW {
            assert_eq!(a.admit(t0), Some(0));
        }
        assert_eq!(a.admit(t0), None);
        assert_eq!(a.admit(t0), None);
        assert_eq!(a.admit(t0 + AUDIT_WINDOW), Some(2));
    }
}
