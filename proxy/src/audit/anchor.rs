//! The anchor file `audit-anchor.json`: the newest point of the chain the
//! writer knew when it last closed a file, pruned or stopped, and how far
//! pruning went.
//!
//! The chain alone cannot tell that its newest file was deleted, nor that
//! more old files were removed than pruning removed. The anchor can: verify
//! checks that the chain still reaches the anchored seq with the anchored
//! hash, and starts no later than the first seq pruning kept. Like the chain
//! it has no key, so it proves nothing against someone who rewrites both;
//! keep `Last hash` off the host for that.
//!
//! Owns the anchor's format and its atomic replacement. Must never be
//! written before the records it names are in the files (and synced, unless
//! `fsync = "none"`).

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the audit directory; not `audit-*.jsonl`, so never
/// taken for a chain file.
pub(crate) const ANCHOR_FILE: &str = "audit-anchor.json";
const ANCHOR_TMP: &str = "audit-anchor.json.tmp";
/// An anchor is a few hundred bytes; refuse to read anything much larger.
const MAX_ANCHOR_BYTES: u64 = 64 * 1024;

/// What the anchor records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Anchor {
    /// A seq the chain reached, and that record's hash.
    pub seq: u64,
    pub hash: String,
    /// When the anchor was written (RFC 3339 UTC).
    pub written: String,
    /// The first seq kept by the last pruning: the chain must not start
    /// after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_kept_seq: Option<u64>,
}

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(ANCHOR_FILE)
}

/// The anchor of `dir`; `Ok(None)` when there is none, `Err` with what is
/// wrong when it cannot be read or parsed.
pub(crate) fn read(dir: &Path) -> Result<Option<Anchor>, String> {
    let path = path(dir);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_ANCHOR_BYTES), &mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| format!("{} is not an anchor: {e}", path.display()))
}

/// Replaces the anchor atomically (temporary file, rename); with `sync` the
/// file and the directory entry are fsynced, so a power cut leaves the old
/// anchor or the new one, never a torn one.
pub(crate) fn write(dir: &Path, anchor: &Anchor, sync: bool) -> std::io::Result<()> {
    let tmp = dir.join(ANCHOR_TMP);
    let mut text = serde_json::to_vec(anchor).map_err(std::io::Error::other)?;
    text.push(b'\n');
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&text)?;
        if sync {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path(dir))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_round_trip_and_garbage_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()), Ok(None));
        let a = Anchor {
            seq: 42,
            hash: "ab".repeat(32),
            written: "2026-01-02T03:04:05.000000Z".into(),
            first_kept_seq: Some(7),
        };
        write(dir.path(), &a, true).expect("writes");
        assert_eq!(read(dir.path()), Ok(Some(a)));
        std::fs::write(path(dir.path()), b"{nope").expect("write");
        let err = read(dir.path()).expect_err("garbage");
        assert!(err.contains("is not an anchor"), "{err}");
    }
}
