//! The API keys file: which key belongs to which caller, stored as the
//! SHA-256 of each key (the key itself is shown once, when it is made).
//! Owns the file format and its edits (`add_key`, `revoke_key`, which keep
//! the file's comments); must never write or log a plaintext key.
//!
//! ```toml
//! [[key]]
//! id = "k-2026-11-26-a1b2"          # stable id, audited (never the key)
//! caller = "dept-health"
//! sha256 = "hex of sha256(key)"
//! created = "2026-11-26T10:00:00Z"
//! expires = "2027-11-26T00:00:00Z"  # optional
//! disabled = false                   # optional
//! ```
//!
//! Lookup hashes the presented key first and then looks the digest up, so
//! the time a lookup takes says nothing about how close a guess was.
//!
//! Edits rewrite the file atomically (temporary file, fsync, rename) with
//! mode 0600; two edits at once are not serialised (last writer wins), so
//! run one `danxia api key` command at a time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::MAX_API_KEY_BYTES;
use super::{read_bounded, AuthError, AuthFailure, AuthReason, Caller, Credential};

/// Every generated key starts with this, so leaked keys are recognisable
/// by secret scanners.
pub const KEY_PREFIX: &str = "dx_";
/// Random bytes in a generated key.
pub const KEY_RANDOM_BYTES: usize = 32;
/// Comment heading a keys file danxia creates.
const FILE_HEADER: &str = "# danxia API keys: SHA-256 of each key; the key itself is shown once at `danxia api key add`.\n";

/// One `[[key]]` entry, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Stable id, audited instead of the key.
    pub id: String,
    /// The policy's `[[caller]]` id this key authenticates as.
    pub caller: String,
    /// Lower-case hex SHA-256 of the key.
    pub sha256: String,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339; absent = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default)]
    pub disabled: bool,
}

/// The file as parsed, with positions for error messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    key: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: toml::Spanned<String>,
    caller: String,
    sha256: String,
    created: String,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    disabled: bool,
}

/// A loaded key, indexed by digest.
#[derive(Debug, Clone)]
struct KeyRecord {
    id: Arc<str>,
    caller: Arc<str>,
    expires: Option<u64>,
    disabled: bool,
}

/// The keys of one file, by SHA-256 digest.
#[derive(Debug, Default)]
pub(crate) struct KeyTable {
    by_digest: HashMap<[u8; 32], KeyRecord>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn parse_time(s: &str) -> Option<u64> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    u64::try_from(ts.as_second()).ok()
}

/// An entry, its digest and its expiry (unix seconds).
type Parsed = (KeyEntry, [u8; 32], Option<u64>);

/// Parses and checks a keys file's text: ids unique, digests 64 hex
/// digits and unique, times RFC 3339.
fn parse(path: &Path, text: &str) -> Result<Vec<Parsed>, AuthError> {
    let bad = |line: Option<usize>, message: String| AuthError::KeysFile {
        path: path.into(),
        line,
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        bad(line, e.message().to_string())
    })?;
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut digests: HashMap<[u8; 32], usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.key.len());
    for r in raw.key {
        let line = line_of(text, r.id.span().start);
        let id = r.id.into_inner();
        if id.is_empty() {
            return Err(bad(Some(line), "empty key id".into()));
        }
        if let Some(first) = ids.insert(id.clone(), line) {
            return Err(bad(
                Some(line),
                format!("duplicate key id {id:?} (first at line {first})"),
            ));
        }
        if r.caller.is_empty() {
            return Err(bad(Some(line), format!("key {id:?}: empty caller")));
        }
        let mut digest = [0u8; 32];
        if r.sha256.len() != 64 || hex::decode_to_slice(&r.sha256, &mut digest).is_err() {
            return Err(bad(
                Some(line),
                format!("key {id:?}: sha256 must be 64 hex digits"),
            ));
        }
        if let Some(first) = digests.insert(digest, line) {
            return Err(bad(
                Some(line),
                format!("key {id:?}: same sha256 as the key at line {first}"),
            ));
        }
        if parse_time(&r.created).is_none() {
            return Err(bad(
                Some(line),
                format!(
                    "key {id:?}: created {:?} is not an RFC 3339 time",
                    r.created
                ),
            ));
        }
        let expires = match &r.expires {
            Some(e) => Some(parse_time(e).ok_or_else(|| {
                bad(
                    Some(line),
                    format!("key {id:?}: expires {e:?} is not an RFC 3339 time"),
                )
            })?),
            None => None,
        };
        out.push((
            KeyEntry {
                id,
                caller: r.caller,
                sha256: r.sha256.to_ascii_lowercase(),
                created: r.created,
                expires: r.expires,
                disabled: r.disabled,
            },
            digest,
            expires,
        ));
    }
    Ok(out)
}

impl KeyTable {
    pub(crate) fn load(path: &Path) -> Result<KeyTable, AuthError> {
        let text = read_bounded(path)?;
        Ok(KeyTable::from_entries(parse(path, &text)?))
    }

    fn from_entries(entries: Vec<Parsed>) -> KeyTable {
        let by_digest = entries
            .into_iter()
            .map(|(e, digest, expires)| {
                (
                    digest,
                    KeyRecord {
                        id: Arc::from(e.id),
                        caller: Arc::from(e.caller),
                        expires,
                        disabled: e.disabled,
                    },
                )
            })
            .collect();
        KeyTable { by_digest }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// The caller a presented key authenticates, at `now` (unix seconds).
    pub(crate) fn check(&self, key: &[u8], now: u64) -> Result<Caller, AuthFailure> {
        if key.is_empty() {
            return Err(AuthFailure::new(AuthReason::Malformed, "empty API key"));
        }
        if key.len() > MAX_API_KEY_BYTES {
            return Err(AuthFailure::new(AuthReason::Malformed, "API key too long"));
        }
        let digest: [u8; 32] = Sha256::digest(key).into();
        let rec = self
            .by_digest
            .get(&digest)
            .ok_or_else(|| AuthFailure::new(AuthReason::UnknownKey, "API key not accepted"))?;
        if rec.disabled {
            // Same answer as an unknown key: a revoked key's holder learns nothing.
            return Err(AuthFailure::new(
                AuthReason::UnknownKey,
                "API key not accepted",
            ));
        }
        if matches!(rec.expires, Some(e) if now >= e) {
            return Err(AuthFailure::new(AuthReason::Expired, "API key expired"));
        }
        Ok(Caller {
            id: rec.caller.clone(),
            credential: Credential::ApiKey {
                key_id: rec.id.clone(),
            },
        })
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

fn random(buf: &mut [u8]) {
    // A host without a working random source cannot issue keys safely at
    // all; there is nothing better to do than stop.
    getrandom::fill(buf).expect("the operating system's random source failed");
}

/// A new key and its entry: `dx_` + 32 random bytes (base64url), the
/// entry holding its SHA-256, a fresh id and `created` = now. `caller` is
/// left empty and `expires` unset: the caller of this function fills them.
pub fn generate_key() -> (String, KeyEntry) {
    let mut bytes = [0u8; KEY_RANDOM_BYTES];
    random(&mut bytes);
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let mut tag = [0u8; 2];
    random(&mut tag);
    let date = jiff::Zoned::now().strftime("%Y-%m-%d").to_string();
    let entry = KeyEntry {
        id: format!("k-{date}-{}", hex::encode(tag)),
        caller: String::new(),
        sha256: hex::encode(Sha256::digest(key.as_bytes())),
        created: now_rfc3339(),
        expires: None,
        disabled: false,
    };
    (key, entry)
}

/// The file's text and document, or a fresh one if it does not exist;
/// refuses a file that does not load (an edit must not hide its error).
fn open_doc(path: &Path) -> Result<(Vec<KeyEntry>, toml_edit::DocumentMut), AuthError> {
    let text = match read_bounded(path) {
        Ok(t) => t,
        Err(AuthError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            FILE_HEADER.to_string()
        }
        Err(e) => return Err(e),
    };
    let entries = parse(path, &text)?.into_iter().map(|(e, ..)| e).collect();
    let doc = text
        .parse::<toml_edit::DocumentMut>()
        .map_err(|e| AuthError::KeysFile {
            path: path.into(),
            line: None,
            message: e.to_string(),
        })?;
    Ok((entries, doc))
}

/// Writes `text` to `path` atomically, readable by the owner only.
fn write_private(path: &Path, text: &str) -> Result<(), AuthError> {
    use std::io::Write;
    let err = |source| AuthError::Write {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    #[cfg(unix)]
    {
        // `mode` applies only when the file is created; a leftover
        // temporary file keeps its mode unless set.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Adds a key for `caller` to the keys file at `path` (created if
/// missing); returns the plaintext key, to be shown once, and its entry.
pub fn add_key(
    path: &Path,
    caller: &str,
    expires: Option<jiff::Timestamp>,
) -> Result<(String, KeyEntry), AuthError> {
    if caller.is_empty() {
        return Err(AuthError::Config("the caller id must not be empty".into()));
    }
    let (entries, mut doc) = open_doc(path)?;
    let (key, mut entry) = loop {
        let (k, e) = generate_key();
        if !entries.iter().any(|x| x.id == e.id) {
            break (k, e);
        }
    };
    entry.caller = caller.to_string();
    entry.expires = expires.map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string());
    let mut t = toml_edit::Table::new();
    t["id"] = toml_edit::value(entry.id.as_str());
    t["caller"] = toml_edit::value(entry.caller.as_str());
    t["sha256"] = toml_edit::value(entry.sha256.as_str());
    t["created"] = toml_edit::value(entry.created.as_str());
    if let Some(e) = &entry.expires {
        t["expires"] = toml_edit::value(e.as_str());
    }
    // The first table takes the comments of an empty file (toml_edit
    // keeps them as trailing text, which would end up after the table).
    let first = doc
        .get("key")
        .and_then(|k| k.as_array_of_tables())
        .is_none_or(|a| a.is_empty());
    if first {
        let lead = doc.trailing().as_str().unwrap_or("").to_string();
        if !lead.trim().is_empty() {
            t.decor_mut().set_prefix(lead);
            doc.set_trailing("");
        }
    }
    let item = doc
        .entry("key")
        .or_insert_with(|| toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    let Some(arr) = item.as_array_of_tables_mut() else {
        return Err(AuthError::KeysFile {
            path: path.into(),
            line: None,
            message: "`key` must be an array of tables ([[key]])".into(),
        });
    };
    arr.push(t);
    write_private(path, &doc.to_string())?;
    Ok((key, entry))
}

/// The keys in the file at `path` (no file: none).
pub fn list_keys(path: &Path) -> Result<Vec<KeyEntry>, AuthError> {
    match read_bounded(path) {
        Ok(text) => Ok(parse(path, &text)?.into_iter().map(|(e, ..)| e).collect()),
        Err(AuthError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// Revokes key `id` (sets `disabled = true`; the entry stays, so its id
/// still means something in old audit records). Returns the entry.
pub fn revoke_key(path: &Path, id: &str) -> Result<KeyEntry, AuthError> {
    let (entries, mut doc) = open_doc(path)?;
    let Some(pos) = entries.iter().position(|e| e.id == id) else {
        return Err(AuthError::NoSuchKey {
            path: path.into(),
            id: id.into(),
        });
    };
    let table = doc
        .get_mut("key")
        .and_then(|k| k.as_array_of_tables_mut())
        .and_then(|a| a.get_mut(pos));
    let Some(table) = table else {
        return Err(AuthError::NoSuchKey {
            path: path.into(),
            id: id.into(),
        });
    };
    table["disabled"] = toml_edit::value(true);
    write_private(path, &doc.to_string())?;
    let mut e = entries[pos].clone();
    e.disabled = true;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<KeyTable, AuthError> {
        Ok(KeyTable::from_entries(parse(Path::new("keys.toml"), text)?))
    }

    fn entry(id: &str, caller: &str, key: &str, extra: &str) -> String {
        format!(
            "[[key]]\nid = \"{id}\"\ncaller = \"{caller}\"\nsha256 = \"{}\"\ncreated = \"2026-11-26T10:00:00Z\"\n{extra}\n",
            hex::encode(Sha256::digest(key.as_bytes()))
        )
    }

    #[test]
    fn keys_are_found_by_digest_and_checked() {
        let text = [
            entry("k1", "dept-health", "dx_one", ""),
            entry(
                "k2",
                "dept-tax",
                "dx_two",
                "expires = \"2027-01-01T00:00:00Z\"",
            ),
            entry("k3", "dept-tax", "dx_three", "disabled = true"),
        ]
        .concat();
        let t = table(&text).expect("loads");
        assert_eq!(t.len(), 3);
        let now = 1_790_000_000; // 2026-09
        let c = t.check(b"dx_one", now).expect("known key");
        assert_eq!(&*c.id, "dept-health");
        assert_eq!(c.method(), "api_key");
        assert_eq!(
            c.credential,
            Credential::ApiKey {
                key_id: "k1".into()
            }
        );
        assert_eq!(
            &*t.check(b"dx_two", now).expect("not expired yet").id,
            "dept-tax"
        );
        let after = 1_800_000_000; // 2027-01
        assert_eq!(
            t.check(b"dx_two", after).unwrap_err().reason,
            AuthReason::Expired
        );
        let e = t.check(b"dx_three", now).unwrap_err();
        assert_eq!(e.reason, AuthReason::UnknownKey);
        let e = t.check(b"dx_nope", now).unwrap_err();
        assert_eq!(e.reason, AuthReason::UnknownKey);
        assert!(!e.detail.contains("dx_nope"));
        assert_eq!(t.check(b"", now).unwrap_err().reason, AuthReason::Malformed);
        let long = vec![b'a'; MAX_API_KEY_BYTES + 1];
        assert_eq!(
            t.check(&long, now).unwrap_err().reason,
            AuthReason::Malformed
        );
    }

    #[test]
    fn bad_files_name_the_line() {
        let dup = [entry("k1", "a", "x", ""), entry("k1", "b", "y", "")].concat();
        let e = table(&dup).unwrap_err().to_string();
        assert!(
            e.contains("keys.toml:8") && e.contains("duplicate key id"),
            "{e}"
        );
        let bad_hex = "\n[[key]]\nid = \"k\"\ncaller = \"c\"\nsha256 = \"zz\"\ncreated = \"2026-11-26T10:00:00Z\"\n";
        let e = table(bad_hex).unwrap_err().to_string();
        assert!(e.contains("keys.toml:3") && e.contains("64 hex"), "{e}");
        let e = table("[[key]]\nid = \"k\"\ncaller = \n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("keys.toml:3"), "{e}");
        let same = [entry("k1", "a", "x", ""), entry("k2", "b", "x", "")].concat();
        assert!(table(&same)
            .unwrap_err()
            .to_string()
            .contains("same sha256"));
        let bad_time = entry("k1", "a", "x", "expires = \"tomorrow\"");
        assert!(table(&bad_time)
            .unwrap_err()
            .to_string()
            .contains("RFC 3339"));
        let unknown = entry("k1", "a", "x", "colour = \"red\"");
        assert!(table(&unknown).unwrap_err().to_string().contains("colour"));
        assert_eq!(table("").expect("empty file").len(), 0);
    }

    #[test]
    fn generated_keys_hash_to_their_entry() {
        let (key, e) = generate_key();
        assert!(key.starts_with(KEY_PREFIX) && key.len() == 3 + 43, "{key}");
        assert_eq!(e.sha256, hex::encode(Sha256::digest(key.as_bytes())));
        assert!(
            e.id.starts_with("k-") && parse_time(&e.created).is_some(),
            "{e:?}"
        );
        assert_ne!(generate_key().0, key);
    }

    #[test]
    fn add_list_revoke_keep_comments_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("var").join("api-keys.toml");
        assert!(list_keys(&path).expect("missing = none").is_empty());
        let exp: jiff::Timestamp = "2027-11-26T00:00:00Z".parse().expect("time");
        let (k1, e1) = add_key(&path, "dept-health", Some(exp)).expect("add");
        let (k2, e2) = add_key(&path, "dept-tax", None).expect("add");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# danxia API keys"), "{text}");
        assert!(!text.contains(&k1) && !text.contains(&k2));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let listed = list_keys(&path).expect("list");
        assert_eq!(listed, vec![e1.clone(), e2.clone()]);
        assert_eq!(e1.expires.as_deref(), Some("2027-11-26T00:00:00Z"));
        let t = KeyTable::load(&path).expect("load");
        let now = 1_790_000_000;
        assert_eq!(&*t.check(k1.as_bytes(), now).expect("k1").id, "dept-health");
        let r = revoke_key(&path, &e2.id).expect("revoke");
        assert!(r.disabled);
        assert!(std::fs::read_to_string(&path)
            .expect("read")
            .starts_with("# danxia"));
        let t = KeyTable::load(&path).expect("load");
        assert_eq!(
            t.check(k2.as_bytes(), now).unwrap_err().reason,
            AuthReason::UnknownKey
        );
        assert!(t.check(k1.as_bytes(), now).is_ok());
        let e = revoke_key(&path, "k-nope").unwrap_err();
        assert!(matches!(e, AuthError::NoSuchKey { .. }), "{e}");
        std::fs::write(&path, "[[key]]\nid = 1\n").expect("break it");
        assert!(
            add_key(&path, "x", None).is_err(),
            "a broken file is not rewritten"
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "[[key]]\nid = 1\n"
        );
    }
}
