//! The hash chain: how one audit record becomes one line of bytes, and how a
//! line is checked against its own hash.
//!
//! A line is `{"seq":N,"ts":"…",<event fields>,"prev":"<hex>","hash":"<hex>"}`
//! and `hash` is the digest of every byte before `,"hash":`, so any change to
//! the line (including `prev`, which links it to the record before) breaks it.
//! A record hashed with another digest than SHA-256 says which one right
//! before `prev` (`…,"alg":"sm3","prev":…`), inside the hashed bytes: the
//! verifier reads the digest from the line instead of trying each one, and
//! SHA-256 records (all files written before SM3 existed) stay unchanged.
//!
//! Owns the byte layout and the digests. Must never do I/O: the writer and
//! the verifier bring the bytes.

use serde::Deserialize;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use super::event::AuditEvent;
use super::settings::HashAlgorithm;
use super::AuditError;

/// Bytes in a digest. SHA-256 and SM3 are both 256 bits; an algorithm with
/// another size would change this type and the file format.
pub(crate) const DIGEST_LEN: usize = 32;
/// Hex digits of a digest as written in `prev` and `hash`.
pub(crate) const DIGEST_HEX_LEN: usize = DIGEST_LEN * 2;

pub(crate) type Digest = [u8; DIGEST_LEN];

/// `prev` of the very first record of a chain.
pub(crate) const GENESIS_PREV: Digest = [0; DIGEST_LEN];

/// `seq` of the very first record of a chain.
pub(crate) const FIRST_SEQ: u64 = 1;

/// Record timestamp: RFC 3339, UTC, microseconds.
const TS_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

const SEQ_OPEN: &[u8] = b"{\"seq\":";
const TS_OPEN: &[u8] = b",\"ts\":\"";
const PREV_OPEN: &[u8] = b",\"prev\":\"";
const ALG_OPEN: &[u8] = b",\"alg\":\"";
/// `,"prev":"<hex>"` at the end of the hashed body.
const PREV_FIELD_LEN: usize = PREV_OPEN.len() + DIGEST_HEX_LEN + 1;
/// Longest algorithm name looked for in a line.
const MAX_ALG_NAME: usize = 16;
const HASH_OPEN: &[u8] = b",\"hash\":\"";
const LINE_CLOSE: &[u8] = b"\"}";
/// Everything after the hashed body: `,"hash":"<hex>"}` (newline excluded).
const HASH_SUFFIX_LEN: usize = HASH_OPEN.len() + DIGEST_HEX_LEN + LINE_CLOSE.len();

impl HashAlgorithm {
    /// Every algorithm verify accepts, so files written before a change of
    /// `audit.hash` stay verifiable.
    pub(crate) const ALL: &'static [HashAlgorithm] = &[HashAlgorithm::Sha256, HashAlgorithm::Sm3];

    pub(crate) fn digest(self, bytes: &[u8]) -> Digest {
        match self {
            HashAlgorithm::Sha256 => {
                use sha2::Digest as _;
                sha2::Sha256::digest(bytes).into()
            }
            HashAlgorithm::Sm3 => {
                use sm3::Digest as _;
                sm3::Sm3::digest(bytes).into()
            }
        }
    }

    /// The name as written in `audit.hash` and in a record's `alg` field.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sm3 => "sm3",
        }
    }

    fn from_name(name: &[u8]) -> Option<HashAlgorithm> {
        HashAlgorithm::ALL
            .iter()
            .copied()
            .find(|a| a.name().as_bytes() == name)
    }
}

/// Lower-case hex of a digest, for messages and reports.
pub(crate) fn to_hex(digest: &Digest) -> String {
    hex::encode(digest)
}

/// Where the chain stands: the next record's `seq` and `prev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    pub alg: HashAlgorithm,
    pub next_seq: u64,
    pub prev: Digest,
}

impl Chain {
    /// A chain with no records yet.
    pub(crate) fn genesis(alg: HashAlgorithm) -> Chain {
        Chain {
            alg,
            next_seq: FIRST_SEQ,
            prev: GENESIS_PREV,
        }
    }

    /// Appends one complete line (newline included) for `event` stamped `ts`
    /// to `out` and advances the chain. Writes straight into `out`, so a
    /// reused buffer costs no allocation per record. On error `out` and the
    /// chain are left as they were.
    pub(crate) fn append(
        &mut self,
        ts: OffsetDateTime,
        event: &AuditEvent,
        out: &mut Vec<u8>,
    ) -> Result<(), AuditError> {
        let start = out.len();
        match self.encode(ts, event, out, start) {
            Ok(hash) => {
                self.prev = hash;
                self.next_seq = self.next_seq.saturating_add(1);
                Ok(())
            }
            Err(reason) => {
                out.truncate(start);
                Err(AuditError::Encode {
                    seq: self.next_seq,
                    reason,
                })
            }
        }
    }

    fn encode(
        &self,
        ts: OffsetDateTime,
        event: &AuditEvent,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<Digest, String> {
        use std::io::Write as _;

        out.extend_from_slice(SEQ_OPEN);
        write!(out, "{}", self.next_seq).map_err(|e| e.to_string())?;
        out.extend_from_slice(TS_OPEN);
        ts.to_offset(time::UtcOffset::UTC)
            .format_into(out, TS_FORMAT)
            .map_err(|e| format!("timestamp {ts}: {e}"))?;
        out.push(b'"');

        splice_object(out, event)?;
        if self.alg != HashAlgorithm::Sha256 {
            out.extend_from_slice(ALG_OPEN);
            out.extend_from_slice(self.alg.name().as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(PREV_OPEN);
        push_hex(out, &self.prev);
        out.push(b'"');
        let hash = self.alg.digest(&out[start..]);
        out.extend_from_slice(HASH_OPEN);
        push_hex(out, &hash);
        out.extend_from_slice(LINE_CLOSE);
        out.push(b'\n');
        Ok(hash)
    }
}

/// Appends the fields of `value`'s JSON object to `out`, each preceded by a
/// comma, without the braces: the object's `{` becomes the `,` after the
/// fields already in `out` and its `}` is dropped, so no second buffer is
/// needed. On error `out` may hold a partial object; the caller truncates.
fn splice_object<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), String> {
    let object = out.len();
    serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string())?;
    match (out.get(object), out.last()) {
        (Some(b'{'), Some(b'}')) => {}
        _ => return Err("the event does not serialise to a JSON object".into()),
    }
    if out.len() - object == 2 {
        out.truncate(object); // `{}`: no fields to splice
    } else {
        out[object] = b',';
        out.pop();
    }
    Ok(())
}

fn push_hex(out: &mut Vec<u8>, digest: &Digest) {
    let mut buf = [0u8; DIGEST_HEX_LEN];
    // Cannot fail: the buffer is exactly twice the digest's length.
    if hex::encode_to_slice(digest, &mut buf).is_ok() {
        out.extend_from_slice(&buf);
    }
}

fn parse_hex(text: &[u8]) -> Option<Digest> {
    let mut digest = [0u8; DIGEST_LEN];
    hex::decode_to_slice(text, &mut digest).ok()?;
    Some(digest)
}

/// The chain fields of a record, as the line claims them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub seq: u64,
    pub prev: Digest,
    pub hash: Digest,
}

/// Whether the line's `hash` matches its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashCheck {
    Matches,
    /// The line ends with a well-formed hash field that does not match.
    Mismatch,
    /// The line does not end with `,"hash":"<64 hex>"}`.
    Missing,
    /// The line names a digest (`alg`) danxia does not know.
    UnknownAlgorithm,
}

/// What one line (without its newline) says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineCheck {
    /// The chain fields, or why the line is not a record.
    pub head: Result<Head, String>,
    pub hash: HashCheck,
    /// The digest the line says it was hashed with (SHA-256 when it names
    /// none); `None` when it names an unknown one or has no hash field.
    pub alg: Option<HashAlgorithm>,
}

#[derive(Deserialize)]
struct RawHead<'a> {
    seq: u64,
    #[serde(rename = "ts", borrow)]
    _ts: &'a str,
    prev: &'a str,
    hash: &'a str,
}

/// Splits a line into the hashed body and the digest its suffix claims.
fn split_hash(line: &[u8]) -> Option<(&[u8], Digest)> {
    let body_len = line.len().checked_sub(HASH_SUFFIX_LEN)?;
    let (body, suffix) = line.split_at(body_len);
    let hex = suffix.strip_prefix(HASH_OPEN)?.strip_suffix(LINE_CLOSE)?;
    Some((body, parse_hex(hex)?))
}

/// The digest a hashed body names: the `"alg":"…"` field right before
/// `prev`, SHA-256 when there is none. `Err` for an unknown name.
fn body_alg(body: &[u8]) -> Result<HashAlgorithm, ()> {
    let Some(before) = body
        .len()
        .checked_sub(PREV_FIELD_LEN)
        .map(|n| &body[..n])
        .filter(|_| body[body.len() - PREV_FIELD_LEN..].starts_with(PREV_OPEN))
    else {
        return Ok(HashAlgorithm::Sha256);
    };
    let Some(quoted) = before.strip_suffix(b"\"") else {
        return Ok(HashAlgorithm::Sha256);
    };
    let window = &quoted[quoted.len().saturating_sub(MAX_ALG_NAME + ALG_OPEN.len())..];
    match memchr::memmem::rfind(window, ALG_OPEN) {
        Some(at) => HashAlgorithm::from_name(&window[at + ALG_OPEN.len()..]).ok_or(()),
        None => Ok(HashAlgorithm::Sha256),
    }
}

/// Checks one line: its hash against its bytes, under the digest the line
/// names, and whether it parses as a record.
pub(crate) fn inspect_line(line: &[u8]) -> LineCheck {
    let (hash, alg) = match split_hash(line) {
        None => (HashCheck::Missing, None),
        Some((body, claimed)) => match body_alg(body) {
            Err(()) => (HashCheck::UnknownAlgorithm, None),
            Ok(alg) if alg.digest(body) == claimed => (HashCheck::Matches, Some(alg)),
            Ok(alg) => (HashCheck::Mismatch, Some(alg)),
        },
    };
    LineCheck {
        head: parse_head(line),
        hash,
        alg,
    }
}

/// Parses the chain fields only; the other fields are checked for JSON
/// syntax but not kept.
pub(crate) fn parse_head(line: &[u8]) -> Result<Head, String> {
    let raw: RawHead<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let prev = parse_hex(raw.prev.as_bytes())
        .filter(|_| raw.prev.len() == DIGEST_HEX_LEN)
        .ok_or_else(|| format!("prev is not {DIGEST_HEX_LEN} hex digits"))?;
    let hash = parse_hex(raw.hash.as_bytes())
        .filter(|_| raw.hash.len() == DIGEST_HEX_LEN)
        .ok_or_else(|| format!("hash is not {DIGEST_HEX_LEN} hex digits"))?;
    Ok(Head {
        seq: raw.seq,
        prev,
        hash,
    })
}

/// Best effort for a line that is not valid JSON: the `seq` at its start and
/// the hash at its end, as the writer laid them out. Used only on start-up to
/// continue the chain from what a damaged last line claims.
pub(crate) fn claimed_seq_and_hash(line: &[u8]) -> Option<(u64, Digest)> {
    let seq = claimed_seq(line)?;
    let (_, hash) = split_hash(line)?;
    Some((seq, hash))
}

/// The `seq` at the start of a line laid out by the writer, even if the rest
/// of the line is cut off or broken.
pub(crate) fn claimed_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(SEQ_OPEN)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if rest.get(digits) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{EventKind, Outcome};

    fn sample_event(statement: &str) -> AuditEvent {
        AuditEvent {
            kind: Some(EventKind::Statement),
            session: Some("s-1".into()),
            user: Some("alice".into()),
            statement: Some(statement.into()),
            tables: vec!["public.t".into()],
            rows: Some(3),
            outcome: Some(Outcome::Ok),
            ..Default::default()
        }
    }

    fn ts() -> OffsetDateTime {
        time::macros::datetime!(2025-03-04 05:06:07.123456 UTC)
    }

    fn line_of(out: &[u8]) -> &[u8] {
        out.strip_suffix(b"\n").expect("record ends with a newline")
    }

    #[test]
    fn record_layout_splices_the_event_between_ts_and_prev() {
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        let mut out = Vec::new();
        let event = sample_event("select 1");
        chain.append(ts(), &event, &mut out).expect("encodes");
        let text = std::str::from_utf8(&out).expect("utf-8");

        let event_json = serde_json::to_string(&event).expect("serialises");
        let inner = &event_json[1..event_json.len() - 1];
        let body = format!(
            "{{\"seq\":1,\"ts\":\"2025-03-04T05:06:07.123456Z\",{inner},\"prev\":\"{}\"",
            "0".repeat(DIGEST_HEX_LEN)
        );
        let hash = to_hex(&HashAlgorithm::Sha256.digest(body.as_bytes()));
        assert_eq!(text, format!("{body},\"hash\":\"{hash}\"}}\n"));

        // The line is valid JSON with the event's fields at the top level.
        let value: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(value["statement"], "select 1");
        assert_eq!(value["seq"], 1);
        assert_eq!(chain.next_seq, 2);
        assert_eq!(to_hex(&chain.prev), hash);
    }

    #[test]
    fn each_record_links_to_the_previous_hash() {
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        let mut out = Vec::new();
        let mut heads = Vec::new();
        for i in 0..3 {
            let start = out.len();
            chain
                .append(ts(), &sample_event(&format!("select {i}")), &mut out)
                .expect("encodes");
            let check = inspect_line(line_of(&out[start..]));
            assert_eq!(check.hash, HashCheck::Matches);
            heads.push(check.head.expect("parses"));
        }
        assert_eq!(heads[0].prev, GENESIS_PREV);
        for pair in heads.windows(2) {
            assert_eq!(pair[1].prev, pair[0].hash);
            assert_eq!(pair[1].seq, pair[0].seq + 1);
        }
    }

    #[test]
    fn splice_handles_empty_and_non_object_values() {
        #[derive(serde::Serialize)]
        struct Empty {}
        #[derive(serde::Serialize)]
        struct Two {
            a: u8,
            b: &'static str,
        }
        fn spliced<T: serde::Serialize>(value: &T) -> Result<String, String> {
            let mut out = b"{\"x\":1".to_vec();
            splice_object(&mut out, value)?;
            out.push(b'}');
            String::from_utf8(out).map_err(|e| e.to_string())
        }
        assert_eq!(spliced(&Empty {}), Ok("{\"x\":1}".to_string()));
        assert_eq!(
            spliced(&Two { a: 2, b: "}" }),
            Ok("{\"x\":1,\"a\":2,\"b\":\"}\"}".to_string())
        );
        assert!(spliced(&7u8).is_err());
        assert!(spliced(&"{}").is_err());
    }

    #[test]
    fn any_changed_byte_breaks_the_hash_or_the_parse() {
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        let mut out = Vec::new();
        chain
            .append(ts(), &sample_event("select 1"), &mut out)
            .expect("encodes");
        let line = line_of(&out).to_vec();
        for i in 0..line.len() {
            let mut altered = line.clone();
            altered[i] ^= 0x01;
            let check = inspect_line(&altered);
            assert!(
                check.hash != HashCheck::Matches || check.head.is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn missing_fields_and_bad_hex_are_reported() {
        let cases: [&[u8]; 4] = [
            b"not json",
            b"{\"seq\":1,\"prev\":\"00\",\"hash\":\"00\"}",
            b"{\"ts\":\"x\",\"prev\":\"00\",\"hash\":\"00\"}",
            b"{\"seq\":1,\"ts\":\"x\",\"prev\":\"zz\",\"hash\":\"00\"}",
        ];
        for line in cases {
            let check = inspect_line(line);
            assert!(check.head.is_err(), "{:?}", String::from_utf8_lossy(line));
            assert_eq!(check.hash, HashCheck::Missing);
        }
    }

    /// GB/T 32905-2016 appendix A, example 1: SM3("abc").
    #[test]
    fn sm3_matches_the_standard_test_vector() {
        assert_eq!(
            to_hex(&HashAlgorithm::Sm3.digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        // Example 2: "abcd" repeated 16 times (512 bits).
        assert_eq!(
            to_hex(&HashAlgorithm::Sm3.digest("abcd".repeat(16).as_bytes())),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    #[test]
    fn sm3_records_name_their_digest_and_continue_a_sha256_chain() {
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        let mut out = Vec::new();
        chain
            .append(ts(), &sample_event("select 1"), &mut out)
            .expect("encodes");
        let first_end = out.len();
        chain.alg = HashAlgorithm::Sm3;
        chain
            .append(ts(), &sample_event("select 2"), &mut out)
            .expect("encodes");
        let first = line_of(&out[..first_end]);
        let second = line_of(&out[first_end..]);
        assert!(!std::str::from_utf8(first)
            .expect("utf-8")
            .contains("\"alg\""));
        let text = std::str::from_utf8(second).expect("utf-8");
        assert!(text.contains(",\"alg\":\"sm3\",\"prev\":\""), "{text}");

        let a = inspect_line(first);
        let b = inspect_line(second);
        assert_eq!(
            (a.hash, a.alg),
            (HashCheck::Matches, Some(HashAlgorithm::Sha256))
        );
        assert_eq!(
            (b.hash, b.alg),
            (HashCheck::Matches, Some(HashAlgorithm::Sm3))
        );
        let (a, b) = (a.head.expect("parses"), b.head.expect("parses"));
        assert_eq!(b.prev, a.hash);
        // The hash is SM3 of the bytes before `,"hash":`.
        let body = &second[..second.len() - HASH_SUFFIX_LEN];
        assert_eq!(b.hash, HashAlgorithm::Sm3.digest(body));

        // Claiming another digest breaks the record; an unknown one is named.
        let relabelled = text.replace("\"alg\":\"sm3\"", "\"alg\":\"sha256\"");
        assert_eq!(
            inspect_line(relabelled.as_bytes()).hash,
            HashCheck::Mismatch
        );
        let unknown = text.replace("\"alg\":\"sm3\"", "\"alg\":\"md5\"");
        assert_eq!(
            inspect_line(unknown.as_bytes()).hash,
            HashCheck::UnknownAlgorithm
        );
    }

    #[test]
    fn claims_are_read_from_a_line_that_is_not_json() {
        let mut chain = Chain::genesis(HashAlgorithm::Sha256);
        chain.next_seq = 41;
        let mut out = Vec::new();
        chain
            .append(ts(), &sample_event("select 1"), &mut out)
            .expect("encodes");
        // Break the JSON in the middle but keep both ends.
        let text = std::str::from_utf8(line_of(&out)).expect("utf-8");
        let line = text.replace("\"kind\":\"statement\"", "\"kind\":statement\"");
        let line = line.as_bytes();
        assert!(parse_head(line).is_err());
        assert_eq!(claimed_seq_and_hash(line), Some((41, chain.prev)));
        assert_eq!(claimed_seq_and_hash(b"{\"seq\":x,"), None);
    }
}
