//! Masking strategies: how one sensitive value is rewritten before it
//! leaves through a shared channel. Owns the strategies, their text form
//! (as policy files will write them) and their application to one value;
//! knows nothing of which columns or identities are masked, nor of wire
//! formats (values are the bytes of a text-format column).
//!
//! | spec | result for `11010119900307123X` / `13812345678` |
//! |---|---|
//! | `keep(6,4)` | `110101********123X` |
//! | `keep(3,4)` | `138****5678` |
//! | `keep(1,0,'#')` | `1#################` |
//! | `redact` | `******` |
//! | `redact('[removed]')` | `[removed]` |
//! | `hash` / `hash(sha256)` / `hash(sm3, 32)` | keyed hash, hex (16 digits by default) |
//! | `null` | SQL NULL |
//!
//! `keep` counts characters (UTF-8), so `keep(1,0)` turns `张三丰` into
//! `张**`; bytes that are not UTF-8 are counted as bytes. A value no longer
//! than `first + last` is masked whole: keeping both ends of it would keep
//! all of it. `redact` does not keep the length (a length can identify).
//!
//! `hash` is an HMAC with a deployment secret, not a plain digest: the same
//! value always gives the same pseudonym (joins, counts and group-bys over
//! masked data still work), while someone without the key cannot recover
//! a value by hashing guesses — a plain SHA-256 of an 18-digit identity
//! number falls to enumerating birth dates and region codes. SM3 (GB/T
//! 32905-2016) is offered for deployments that must use national
//! commercial cryptography.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sm3::Sm3;

/// Default length of a `hash` pseudonym in hex digits (64 bits: collisions
/// become likely only around 4 billion distinct values).
pub const DEFAULT_HASH_HEX_LEN: usize = 16;
/// Shortest and longest accepted pseudonym lengths (hex digits).
pub const MIN_HASH_HEX_LEN: usize = 8;
pub const MAX_HASH_HEX_LEN: usize = 64;
/// What `redact` writes when no text is given.
pub const DEFAULT_REDACTION: &str = "******";
/// Longest `redact('…')` text and `keep` counts accepted: a spec is policy
/// text, and its output goes to every client that reads the column.
const MAX_REDACTION_LEN: usize = 256;
const MAX_KEEP: usize = 1024;

/// The digest under a `hash` strategy's HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Sm3,
}

impl HashAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sm3 => "sm3",
        }
    }
}

/// One way of masking a value.
#[derive(Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Keep the first `first` and last `last` characters; every other
    /// character becomes `fill`.
    Keep {
        first: usize,
        last: usize,
        fill: char,
    },
    /// Replace the value with fixed text.
    Redact { with: String },
    /// HMAC of the value under `key`, as `hex_len` lowercase hex digits.
    Hash {
        algorithm: HashAlgorithm,
        hex_len: usize,
        key: Arc<[u8]>,
    },
    /// Replace the value with SQL NULL.
    Null,
}

impl fmt::Debug for Strategy {
    /// Never prints a hash key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Keep { first, last, fill } => write!(f, "keep({first},{last},{fill:?})"),
            Strategy::Redact { with } => write!(f, "redact({with:?})"),
            Strategy::Hash {
                algorithm, hex_len, ..
            } => write!(f, "hash({}, {hex_len})", algorithm.as_str()),
            Strategy::Null => f.write_str("null"),
        }
    }
}

/// A masked value: new bytes, or SQL NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Masked {
    Value(Vec<u8>),
    Null,
}

impl Strategy {
    /// Parses a spec (see the module docs). `hash_key` is the deployment's
    /// secret for `hash` (it never appears in policy text); a `hash` spec
    /// without a key is an error that says where the key comes from.
    pub fn parse(spec: &str, hash_key: Option<&Arc<[u8]>>) -> Result<Strategy, String> {
        let spec = spec.trim();
        let (name, args) = match spec.find('(') {
            Some(open) => {
                let inner = spec[open + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| format!("masking strategy `{spec}`: missing `)` at the end"))?;
                (spec[..open].trim(), Some(inner))
            }
            None => (spec, None),
        };
        let args: Vec<&str> = match args {
            Some(a) if !a.trim().is_empty() => split_args(a),
            _ => Vec::new(),
        };
        let bad = |why: String| format!("masking strategy `{spec}`: {why}");
        match name {
            "keep" => {
                if !(2..=3).contains(&args.len()) {
                    return Err(bad(
                        "expected keep(FIRST, LAST) or keep(FIRST, LAST, 'C'), e.g. keep(3, 4)"
                            .into(),
                    ));
                }
                let count = |s: &str, what: &str| {
                    s.parse::<usize>()
                        .ok()
                        .filter(|n| *n <= MAX_KEEP)
                        .ok_or_else(|| bad(format!("{what} `{s}` is not a number from 0 to {MAX_KEEP}")))
                };
                let first = count(args[0], "FIRST")?;
                let last = count(args[1], "LAST")?;
                let fill = match args.get(2) {
                    None => '*',
                    Some(c) => {
                        let text = unquote(c).ok_or_else(|| bad(format!("fill {c} must be quoted, e.g. '#'")))?;
                        let mut chars = text.chars();
                        match (chars.next(), chars.next()) {
                            (Some(ch), None) if !ch.is_control() => ch,
                            _ => return Err(bad(format!("fill {c} must be one printable character"))),
                        }
                    }
                };
                Ok(Strategy::Keep { first, last, fill })
            }
            "redact" => {
                let with = match args.as_slice() {
                    [] => DEFAULT_REDACTION.to_string(),
                    [t] => unquote(t)
                        .filter(|t| t.len() <= MAX_REDACTION_LEN && !t.chars().any(char::is_control))
                        .ok_or_else(|| {
                            bad(format!(
                                "expected redact or redact('TEXT') with at most {MAX_REDACTION_LEN} printable bytes"
                            ))
                        })?
                        .to_string(),
                    _ => return Err(bad("expected redact or redact('TEXT')".into())),
                };
                Ok(Strategy::Redact { with })
            }
            "hash" => {
                let algorithm = match args.first().copied() {
                    None | Some("sha256") => HashAlgorithm::Sha256,
                    Some("sm3") => HashAlgorithm::Sm3,
                    Some(other) => return Err(bad(format!("unknown algorithm `{other}` (sha256 or sm3)"))),
                };
                let hex_len = match args.get(1) {
                    None => DEFAULT_HASH_HEX_LEN,
                    Some(n) => n
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (MIN_HASH_HEX_LEN..=MAX_HASH_HEX_LEN).contains(n))
                        .ok_or_else(|| {
                            bad(format!(
                                "length `{n}` must be {MIN_HASH_HEX_LEN} to {MAX_HASH_HEX_LEN} hex digits"
                            ))
                        })?,
                };
                if args.len() > 2 {
                    return Err(bad("expected hash, hash(ALGORITHM) or hash(ALGORITHM, LENGTH)".into()));
                }
                let key = hash_key.cloned().ok_or_else(|| {
                    bad("needs the deployment's masking key (configured outside the policy files), and none is set".into())
                })?;
                Ok(Strategy::Hash {
                    algorithm,
                    hex_len,
                    key,
                })
            }
            "null" if args.is_empty() => Ok(Strategy::Null),
            _ => Err(bad(
                "unknown strategy: use keep(FIRST, LAST), redact, redact('TEXT'), hash, hash(sm3) or null"
                    .into(),
            )),
        }
    }

    /// The masked form of one text-format value.
    pub fn apply(&self, value: &[u8]) -> Masked {
        match self {
            Strategy::Keep { first, last, fill } => {
                Masked::Value(keep(value, *first, *last, *fill))
            }
            Strategy::Redact { with } => Masked::Value(with.as_bytes().to_vec()),
            Strategy::Hash {
                algorithm,
                hex_len,
                key,
            } => {
                let digest = match algorithm {
                    HashAlgorithm::Sha256 => hmac_bytes::<Hmac<Sha256>>(key, value),
                    HashAlgorithm::Sm3 => hmac_bytes::<Hmac<Sm3>>(key, value),
                };
                let mut hex = hex::encode(digest);
                hex.truncate(*hex_len);
                Masked::Value(hex.into_bytes())
            }
            Strategy::Null => Masked::Null,
        }
    }
}

fn hmac_bytes<M: Mac + hmac::digest::KeyInit>(key: &[u8], value: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <M as hmac::digest::KeyInit>::new(&Default::default()));
    mac.update(value);
    mac.finalize().into_bytes().to_vec()
}

/// `keep(first, last)` over characters (bytes when not UTF-8).
fn keep(value: &[u8], first: usize, last: usize, fill: char) -> Vec<u8> {
    let mut fill_buf = [0u8; 4];
    let fill = fill.encode_utf8(&mut fill_buf).as_bytes();
    let mut out = Vec::with_capacity(value.len() + 8);
    match std::str::from_utf8(value) {
        Ok(text) => {
            let n = text.chars().count();
            let whole = n <= first + last;
            for (i, c) in text.chars().enumerate() {
                if !whole && (i < first || i >= n - last) {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                } else {
                    out.extend_from_slice(fill);
                }
            }
        }
        Err(_) => {
            let n = value.len();
            let whole = n <= first + last;
            for (i, b) in value.iter().enumerate() {
                if !whole && (i < first || i >= n - last) {
                    out.push(*b);
                } else {
                    out.extend_from_slice(fill);
                }
            }
        }
    }
    out
}

/// Splits `a, 'b, c', d` at commas outside single quotes.
fn split_args(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ',' if !quoted => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

/// `'text'` → `text`; anything else is not a quoted string.
fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('\'')?.strip_suffix('\'')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<[u8]> {
        Arc::from(&b"deployment secret"[..])
    }

    fn text(m: Masked) -> String {
        match m {
            Masked::Value(v) => String::from_utf8(v).expect("utf8"),
            Masked::Null => "NULL".into(),
        }
    }

    fn mask(spec: &str, value: &str) -> String {
        text(
            Strategy::parse(spec, Some(&key()))
                .expect(spec)
                .apply(value.as_bytes()),
        )
    }

    #[test]
    fn strategies_on_typical_values() {
        let cases: &[(&str, &str, &str)] = &[
            ("keep(6,4)", "11010119900307123X", "110101********123X"),
            ("keep(3,4)", "13812345678", "138****5678"),
            ("keep(3, 4)", "138-1234-5678", "138******5678"),
            ("keep(1,0)", "张三丰", "张**"),
            ("keep(0,1)", "张三丰", "**丰"),
            ("keep(1,0,'#')", "abc", "a##"),
            ("keep(0,0)", "abc", "***"),
            ("keep(3,4)", "1234567", "*******"),
            ("keep(3,4)", "", ""),
            ("keep(2,2,'•')", "ab-cd-ef", "ab••••ef"),
            ("redact", "11010119900307123X", "******"),
            ("redact('[removed]')", "x", "[removed]"),
            ("redact('a, b')", "x", "a, b"),
            ("null", "anything", "NULL"),
        ];
        for (spec, value, want) in cases {
            assert_eq!(mask(spec, value), *want, "{spec} on {value:?}");
        }
    }

    #[test]
    fn keep_counts_bytes_when_not_utf8() {
        let s = Strategy::parse("keep(1,1)", None).unwrap();
        assert_eq!(
            s.apply(&[0xff, 0xfe, 0xfd, 0xfc]),
            Masked::Value(vec![0xff, b'*', b'*', 0xfc])
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test case 2.
        let s = Strategy::parse("hash(sha256, 64)", Some(&Arc::from(&b"Jefe"[..]))).unwrap();
        assert_eq!(
            text(s.apply(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sm3_is_the_standard_digest() {
        // GB/T 32905-2016, example 1: SM3("abc").
        use sm3::Digest;
        assert_eq!(
            hex::encode(Sm3::digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }

    #[test]
    fn hash_pseudonyms_are_stable_keyed_and_sized() {
        let id = "11010119900307123X";
        let a = mask("hash", id);
        assert_eq!(a.len(), DEFAULT_HASH_HEX_LEN);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, mask("hash(sha256)", id), "same value, same pseudonym");
        assert_ne!(a, mask("hash", "11010119900307124X"));
        let sm3 = mask("hash(sm3, 32)", id);
        assert_eq!(sm3.len(), 32);
        assert_ne!(&sm3[..16], a, "SM3 and SHA-256 differ");
        let other_key = Strategy::parse("hash", Some(&Arc::from(&b"another"[..]))).unwrap();
        assert_ne!(text(other_key.apply(id.as_bytes())), a, "the key matters");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("keep(3)", "expected keep(FIRST, LAST)"),
            ("keep(a,4)", "FIRST `a`"),
            ("keep(3,4,#)", "must be quoted"),
            ("keep(3,4,'ab')", "one printable character"),
            ("keep(3,4", "missing `)`"),
            ("keep(99999,1)", "from 0 to 1024"),
            ("redact('x", "missing `)`"),
            ("redact(x)", "redact('TEXT')"),
            ("hash(md5)", "unknown algorithm `md5`"),
            ("hash(sm3, 4)", "8 to 64"),
            ("mask", "unknown strategy"),
            ("null(1)", "unknown strategy"),
        ];
        for (spec, want) in cases {
            let e = Strategy::parse(spec, Some(&key())).expect_err(spec);
            assert!(e.contains(want), "{spec}: {e}");
        }
        let e = Strategy::parse("hash", None).unwrap_err();
        assert!(e.contains("masking key"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let s = Strategy::parse("hash(sm3)", Some(&key())).unwrap();
        let d = format!("{s:?}");
        assert_eq!(d, "hash(sm3, 16)");
        assert!(!d.contains("secret"));
    }
}
