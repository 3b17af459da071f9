//! Who else on the host could change or read the files danxia trusts.
//! A policy file every local user can write is a policy every local user
//! can rewrite; a masking key or TLS private key others can read is no
//! longer secret. This module owns the permission rules for both kinds of
//! file and the operator-facing wording of each finding; callers decide
//! what a finding does (refuse to start, refuse a reload, log a warning).
//! It reads metadata only and never changes a permission itself: fixing
//! modes is the operator's call, so the message says the command to run.
//!
//! Rules (like PostgreSQL's for `server.key`, and sshd's for its keys):
//! - *trusted* files (policy, API policy, classification, allowlist, API
//!   keys, JWKS, certificates, the configuration): refused when writable by
//!   other users (`o+w`) or when their directory is (`o+w` without the
//!   sticky bit, where anyone could replace the file); a warning when
//!   group-writable.
//! - *secret* files (masking key, TLS private keys): refused when other
//!   users have any access (`o+rwx`) or the group can write; group-read is
//!   accepted (the `ssl-cert` group convention), as are the trusted-file
//!   directory rules.

use std::path::Path;

/// What a permission check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The file must not be used: say why and how to fix it.
    Refuse(String),
    /// Usable, but an operator should look.
    Warn(String),
}

impl Finding {
    pub fn message(&self) -> &str {
        match self {
            Finding::Refuse(m) | Finding::Warn(m) => m,
        }
    }
}

/// Checks a file whose content decides what danxia allows. `what` names it
/// in the message ("policy file").
pub fn check_trusted(path: &Path, what: &str) -> Option<Finding> {
    imp::check(path, what, false)
}

/// Checks a file holding a secret (a key).
pub fn check_secret(path: &Path, what: &str) -> Option<Finding> {
    imp::check(path, what, true)
}

#[cfg(unix)]
mod imp {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::Finding;

    const OTHER_WRITE: u32 = 0o002;
    const OTHER_ANY: u32 = 0o007;
    const GROUP_WRITE: u32 = 0o020;
    const STICKY: u32 = 0o1000;

    pub(super) fn check(path: &Path, what: &str, secret: bool) -> Option<Finding> {
        // A file that cannot be read is reported by the reader, with the
        // OS error; nothing to add here.
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
        let shown = path.display();
        if secret && mode & OTHER_ANY != 0 {
            return Some(Finding::Refuse(format!(
                "{what} {shown} can be accessed by every user on this host (mode {mode:04o}); \
                 a key others can read is no longer secret: run `chmod 600 {shown}` \
                 (or 640 with a group you trust) and make sure only danxia's user owns it"
            )));
        }
        if mode & OTHER_WRITE != 0 {
            return Some(Finding::Refuse(format!(
                "{what} {shown} is writable by every user on this host (mode {mode:04o}): \
                 anyone could rewrite it; run `chmod o-w {shown}`"
            )));
        }
        if let Some(dir) = dir_of(path) {
            if let Ok(m) = std::fs::metadata(dir) {
                let dmode = m.permissions().mode() & 0o7777;
                if dmode & OTHER_WRITE != 0 && dmode & STICKY == 0 {
                    return Some(Finding::Refuse(format!(
                        "the directory {} of {what} {shown} is writable by every user on this \
                         host (mode {dmode:04o}): anyone could replace the file; run `chmod o-w {}`",
                        dir.display(),
                        dir.display()
                    )));
                }
            }
        }
        if mode & GROUP_WRITE != 0 {
            let text = format!(
                "{what} {shown} is group-writable (mode {mode:04o}): every member of its group \
                 can change it; run `chmod g-w {shown}` unless that is intended"
            );
            return Some(if secret {
                Finding::Refuse(text)
            } else {
                Finding::Warn(text)
            });
        }
        None
    }

    fn dir_of(path: &Path) -> Option<&Path> {
        match path.parent() {
            Some(d) if d.as_os_str().is_empty() => Some(Path::new(".")),
            other => other,
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use std::path::Path;

    use super::Finding;

    /// Windows ACLs are not modelled; nothing is reported.
    pub(super) fn check(_path: &Path, _what: &str, _secret: bool) -> Option<Finding> {
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn file(dir: &Path, mode: u32) -> std::path::PathBuf {
        let p = dir.join(format!("f{mode:o}"));
        std::fs::write(&p, "x").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    #[test]
    fn trusted_files_refuse_world_write_and_warn_group_write() {
        let d = tempfile::tempdir().expect("tempdir");
        assert_eq!(check_trusted(&file(d.path(), 0o644), "policy file"), None);
        assert_eq!(check_trusted(&file(d.path(), 0o600), "policy file"), None);
        let f = check_trusted(&file(d.path(), 0o666), "policy file").expect("finding");
        assert!(matches!(f, Finding::Refuse(_)), "{f:?}");
        assert!(
            f.message().contains("mode 0666") && f.message().contains("chmod o-w"),
            "{f:?}"
        );
        let f = check_trusted(&file(d.path(), 0o664), "policy file").expect("finding");
        assert!(matches!(f, Finding::Warn(_)), "{f:?}");
        assert!(f.message().contains("group-writable"), "{f:?}");
    }

    #[test]
    fn secrets_refuse_any_other_access_and_group_write() {
        let d = tempfile::tempdir().expect("tempdir");
        assert_eq!(check_secret(&file(d.path(), 0o600), "masking key"), None);
        assert_eq!(check_secret(&file(d.path(), 0o640), "masking key"), None);
        for mode in [0o644, 0o604, 0o660, 0o601] {
            let f = check_secret(&file(d.path(), mode), "masking key").expect("finding");
            assert!(matches!(f, Finding::Refuse(_)), "{mode:o}: {f:?}");
        }
    }

    #[test]
    fn a_world_writable_directory_is_refused_unless_sticky() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = file(d.path(), 0o644);
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let got = check_trusted(&f, "policy file").expect("finding");
        assert!(
            matches!(got, Finding::Refuse(_)) && got.message().contains("directory"),
            "{got:?}"
        );
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        assert_eq!(check_trusted(&f, "policy file"), None, "sticky like /tmp");
    }

    #[test]
    fn a_missing_file_is_left_to_the_reader() {
        assert_eq!(check_secret(Path::new("/nonexistent/key"), "key"), None);
    }
}
