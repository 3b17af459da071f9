//! Files danxia rewrites while others may read them (classification files,
//! state snapshots): replaced whole and durably, never left half-written.
//! Also the permission gate every trusted or secret file passes before it
//! is read ([`trusted`], [`secret`]).

use std::fs;
use std::io::Write;
use std::path::Path;

/// Checks a file whose content decides what danxia allows (configuration,
/// certificates, API keys, JWKS) with [`danxia_policies::perms`]: `Err`
/// with the operator-facing reason when it must not be used, a logged
/// warning when it is merely group-writable.
pub fn trusted(path: &Path, what: &str) -> Result<(), String> {
    gate(danxia_policies::perms::check_trusted(path, what))
}

/// Checks a file holding a secret (masking key, TLS private key).
pub fn secret(path: &Path, what: &str) -> Result<(), String> {
    gate(danxia_policies::perms::check_secret(path, what))
}

fn gate(finding: Option<danxia_policies::perms::Finding>) -> Result<(), String> {
    use danxia_policies::perms::Finding;
    match finding {
        None => Ok(()),
        Some(Finding::Warn(m)) => {
            tracing::warn!("{m}");
            Ok(())
        }
        Some(Finding::Refuse(m)) => Err(m),
    }
}

/// Replaces `path` with `text` so that a reader sees the old file or the
/// new one, never a mix: write `FILE.tmp` beside it, fsync, rename over,
/// fsync the directory. Keeps the old file's permissions.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a file name", path.display()),
        )
    })?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        if let Ok(meta) = fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Makes the rename itself durable; not every platform can open a
    // directory, and the file is already complete, so this is best effort.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
