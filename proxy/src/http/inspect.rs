//! What danxia does to a JSON response body on its way to an API caller:
//! decode its content coding, walk it with the streaming rewriter under
//! the caller's field scope (remove what is outside it, mask what the
//! grant masks), count records and personal data by tag, and re-encode.
//! Memory is bounded by the rewriter's token limit and the codecs' chunk
//! bounds, never by the body's size.

use std::sync::Arc;

use bytes::Bytes;
use danxia_detectors::mask::Masked;
use danxia_detectors::pii::{Counts, Kind, Scanner};
use danxia_policies::api::{FieldAction, Grant};
use danxia_policies::MaskRef;
use danxia_protocols::http::encoding::{Coding, Decoder, Encoder};
use danxia_protocols::http::json::{
    write_json_string, Action, Limits, Path, Rewriter, ScalarKind, Seg, Visitor,
};

/// Paths listed per event (the counts cover them all).
pub const MAX_LISTED_PATHS: usize = 32;

/// What inspecting one body found and did.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    pub records: u64,
    /// Personal data sent in the clear, by kind.
    pub counts: Counts,
    /// Personal data found in values danxia masked, by kind.
    pub masked_counts: Counts,
    pub masked: u64,
    pub removed: u64,
    pub masked_paths: Vec<String>,
    pub removed_paths: Vec<String>,
    pub bytes_in: u64,
}

/// Why a body could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("the API's response is not valid JSON: {0}")]
    Json(#[from] danxia_protocols::http::json::JsonError),
    #[error("the API's response encoding could not be read: {0}")]
    Codec(#[from] danxia_protocols::http::encoding::CodecError),
}

impl InspectError {
    /// The rule id audited and returned for this failure.
    pub fn rule(&self) -> &'static str {
        match self {
            InspectError::Json(_) => "api.upstream-bad-json",
            InspectError::Codec(_) => "api.upstream-bad-encoding",
        }
    }
}

/// The rewriter's visitor: the grant's field scope, masks and counters.
struct Inspector {
    grant: Option<Arc<Grant>>,
    scanner: Arc<Scanner>,
    /// Scanner of the kinds the grant's `mask_tags` name, with the masks.
    tag_masks: Option<(Scanner, Vec<(Kind, MaskRef)>)>,
    found: Findings,
    /// Without a grant: whether the document's root is an array (its
    /// elements are the records) or an object (one record).
    root_array: Option<bool>,
    /// Automaton states whose masked / removed path is already listed
    /// (building the path text once per state, not once per value).
    noted_masked: Vec<(u32, Box<str>)>,
    noted_removed: Vec<(u32, Box<str>)>,
}

/// Whether (state, last key of `path`) is new to `noted`; records it.
fn first_time(noted: &mut Vec<(u32, Box<str>)>, state: u32, path: &Path<'_>) -> bool {
    if noted.len() >= MAX_LISTED_PATHS {
        return false;
    }
    let key = match path.last() {
        Some(Seg::Key(k)) => k,
        _ => "[*]",
    };
    if noted.iter().any(|(s, k)| *s == state && &**k == key) {
        return false;
    }
    noted.push((state, Box::from(key)));
    true
}

impl Inspector {
    /// Lists a path once, with array indexes generalised (`$.items[*].phone`):
    /// the audit says which fields, the counts say how many.
    fn note(list: &mut Vec<String>, path: &Path<'_>) {
        if list.len() >= MAX_LISTED_PATHS {
            return;
        }
        let mut s = String::from("$");
        for seg in path.iter() {
            match seg {
                Seg::Index(_) => s.push_str("[*]"),
                Seg::Key(k) => {
                    let plain = !k.is_empty()
                        && !k.starts_with(|c: char| c.is_ascii_digit())
                        && k.chars().all(|c| c.is_alphanumeric() || c == '_');
                    if plain {
                        s.push('.');
                        s.push_str(k);
                    } else {
                        s.push('[');
                        write_json_string_into(&mut s, k);
                        s.push(']');
                    }
                }
            }
        }
        if !list.contains(&s) {
            list.push(s);
        }
    }
}

/// Masks one value: counts it (and the personal data it held), lists its
/// path once per automaton state, and returns the replacement JSON.
fn mask_value(
    found: &mut Findings,
    noted: &mut Vec<(u32, Box<str>)>,
    scanner: &Scanner,
    state: u32,
    spec: &MaskRef,
    text: &str,
    path: &Path<'_>,
) -> Vec<u8> {
    found.masked += 1;
    scanner.scan(text.as_bytes(), &mut found.masked_counts);
    if first_time(noted, state, path) {
        Inspector::note(&mut found.masked_paths, path);
    }
    let mut out = Vec::with_capacity(text.len() + 2);
    match spec.strategy.apply(text.as_bytes()) {
        Masked::Value(v) => write_json_string(&mut out, &String::from_utf8_lossy(&v)),
        Masked::Null => out.extend_from_slice(b"null"),
    }
    out
}

impl Inspector {
    /// The first member or element says what the root is; the root itself
    /// may be a record.
    fn root_seen(&mut self, array: bool) {
        self.root_array = Some(array);
        let root_record = match &self.grant {
            Some(g) => g.fields.counts_records() && g.fields.root_is_record(array),
            None => !array,
        };
        if root_record {
            self.found.records += 1;
        }
    }
}

impl Visitor for Inspector {
    fn root(&mut self) -> u32 {
        match &self.grant {
            Some(g) => g.fields.root(),
            None => 0,
        }
    }

    fn member(&mut self, parent: u32, key: &str, path: &Path<'_>) -> (Action, u32) {
        if path.len() == 1 && self.root_array.is_none() {
            self.root_seen(false);
        }
        let Some(g) = &self.grant else {
            return (Action::Keep, parent.saturating_add(1));
        };
        let (a, s) = g.fields.member(parent, key);
        let action = match a {
            FieldAction::Keep => Action::Keep,
            FieldAction::KeepIfContainer => Action::KeepIfContainer,
            FieldAction::Remove => {
                self.found.removed += 1;
                if first_time(&mut self.noted_removed, parent, path) {
                    Self::note(&mut self.found.removed_paths, path);
                }
                Action::Remove
            }
        };
        if action != Action::Remove && g.fields.node(s).is_record {
            self.found.records += 1;
        }
        (action, s)
    }

    fn element(&mut self, parent: u32, index: u64, path: &Path<'_>) -> u32 {
        if path.len() == 1 && self.root_array.is_none() {
            self.root_seen(true);
        }
        let Some(g) = &self.grant else {
            if path.len() == 1 {
                self.found.records += 1;
            }
            return parent.saturating_add(1);
        };
        let s = g.fields.element(parent, index);
        let n = g.fields.node(s);
        if n.is_record && n.action != FieldAction::Remove {
            self.found.records += 1;
        }
        s
    }

    fn scalar(
        &mut self,
        state: u32,
        kind: ScalarKind,
        text: &str,
        path: &Path<'_>,
    ) -> Option<Vec<u8>> {
        if let Some(g) = &self.grant {
            let n = g.fields.node(state);
            if let Some(m) = n.mask {
                return Some(mask_value(
                    &mut self.found,
                    &mut self.noted_masked,
                    &self.scanner,
                    state,
                    m,
                    text,
                    path,
                ));
            }
            if n.action != FieldAction::Keep && !n.allowed && !n.outside {
                // An out-of-scope array element (elements are never
                // removed: that would shift every later index).
                self.found.removed += 1;
                Self::note(&mut self.found.removed_paths, path);
                return Some(b"null".to_vec());
            }
        }
        if kind != ScalarKind::String {
            return None;
        }
        if let Some((sc, masks)) = &self.tag_masks {
            let mut c = Counts::new();
            sc.scan(text.as_bytes(), &mut c);
            if !c.is_empty() {
                if let Some((_, m)) = masks.iter().find(|(k, _)| c.get(*k) > 0) {
                    return Some(mask_value(
                        &mut self.found,
                        &mut self.noted_masked,
                        &self.scanner,
                        u32::MAX,
                        m,
                        text,
                        path,
                    ));
                }
            }
        }
        self.scanner.scan(text.as_bytes(), &mut self.found.counts);
        None
    }
}

/// How the body reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The upstream's bytes, untouched (inspection reads a decoded copy).
    Original,
    /// The rewritten document, in the upstream's content coding.
    Rewritten,
}

/// One response body's inspection, fed chunk by chunk.
pub struct Pipeline {
    decoder: Option<Decoder>,
    rewriter: Rewriter,
    encoder: Option<Encoder>,
    inspector: Inspector,
    output: Output,
    decoded: Vec<u8>,
    rewritten: Vec<u8>,
}

/// Settings of a pipeline.
pub struct PipelineConfig {
    pub limits: Limits,
    pub max_decoded_bytes: u64,
}

impl Pipeline {
    /// `grant`: the caller's scope on this route (`None`: an unscoped route,
    /// counted only). `coding`: the response's content coding.
    pub fn new(
        cfg: &PipelineConfig,
        grant: Option<Arc<Grant>>,
        scanner: Arc<Scanner>,
        coding: Coding,
    ) -> Pipeline {
        let restricts = grant.as_ref().is_some_and(|g| g.restricts());
        let tag_masks = grant.as_ref().and_then(|g| {
            let pairs: Vec<(Kind, MaskRef)> = g.mask_tags().to_vec();
            if pairs.is_empty() {
                return None;
            }
            let kinds: Vec<Kind> = pairs.iter().map(|(k, _)| *k).collect();
            Some((Scanner::new(&kinds), pairs))
        });
        let encoded = coding != Coding::Identity;
        Pipeline {
            decoder: encoded.then(|| Decoder::new(coding, cfg.max_decoded_bytes)),
            rewriter: Rewriter::new(cfg.limits),
            encoder: (encoded && restricts).then(|| Encoder::new(coding, 6)),
            inspector: Inspector {
                grant,
                scanner,
                tag_masks,
                found: Findings::default(),
                root_array: None,
                noted_masked: Vec::new(),
                noted_removed: Vec::new(),
            },
            output: if restricts {
                Output::Rewritten
            } else {
                Output::Original
            },
            decoded: Vec::new(),
            rewritten: Vec::new(),
        }
    }

    pub fn output(&self) -> Output {
        self.output
    }

    /// Feeds one chunk of the upstream body; returns what to send (for
    /// [`Output::Original`], the chunk itself).
    pub fn feed(&mut self, chunk: Bytes) -> Result<Bytes, InspectError> {
        self.inspector.found.bytes_in += chunk.len() as u64;
        let text: &[u8] = match &mut self.decoder {
            Some(d) => {
                self.decoded.clear();
                d.feed(&chunk, &mut self.decoded)?;
                &self.decoded
            }
            None => &chunk,
        };
        self.rewritten.clear();
        self.rewriter
            .feed(text, &mut self.rewritten, &mut self.inspector)?;
        self.emit(Some(chunk))
    }

    /// End of the upstream body; returns the last bytes to send.
    pub fn finish(&mut self) -> Result<Bytes, InspectError> {
        self.rewritten.clear();
        if let Some(d) = &mut self.decoder {
            self.decoded.clear();
            d.finish(&mut self.decoded)?;
            self.rewriter
                .feed(&self.decoded, &mut self.rewritten, &mut self.inspector)?;
        }
        self.rewriter
            .finish(&mut self.rewritten, &mut self.inspector)?;
        if self.output == Output::Rewritten {
            if let Some(e) = &mut self.encoder {
                let mut out = Vec::new();
                e.feed(&self.rewritten, &mut out)?;
                e.finish(&mut out)?;
                return Ok(Bytes::from(out));
            }
            return Ok(Bytes::from(std::mem::take(&mut self.rewritten)));
        }
        Ok(Bytes::new())
    }

    fn emit(&mut self, original: Option<Bytes>) -> Result<Bytes, InspectError> {
        match self.output {
            Output::Original => Ok(original.unwrap_or_default()),
            Output::Rewritten => match &mut self.encoder {
                Some(e) => {
                    let mut out = Vec::new();
                    e.feed(&self.rewritten, &mut out)?;
                    e.flush(&mut out)?;
                    Ok(Bytes::from(out))
                }
                None => Ok(Bytes::from(std::mem::take(&mut self.rewritten))),
            },
        }
    }

    pub fn findings(&self) -> &Findings {
        &self.inspector.found
    }
}

fn write_json_string_into(s: &mut String, k: &str) {
    let mut b = Vec::with_capacity(k.len() + 2);
    write_json_string(&mut b, k);
    s.push_str(&String::from_utf8_lossy(&b));
}

pub use danxia_protocols::http::request::is_json;

#[cfg(test)]
mod tests {
    use super::*;
    use danxia_policies::api::{ApiLoadOptions, ApiPolicy};

    fn pack() -> ApiPolicy {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/packs/api-example");
        ApiPolicy::load(&ApiLoadOptions {
            dir,
            mask_key: None,
        })
        .unwrap_or_else(|d| panic!("{d}"))
    }

    fn grant(p: &ApiPolicy, caller: &str, method: &str, path: &str) -> Arc<Grant> {
        let m = p.route(method, path).expect("route");
        p.grant(caller, &m).expect("granted").clone()
    }

    const CFG: PipelineConfig = PipelineConfig {
        limits: Limits {
            max_depth: 64,
            max_token_bytes: 4096,
        },
        max_decoded_bytes: 1 << 24,
    };

    fn person(id: u32) -> String {
        format!(
            r#"{{"id": {id}, "name": "叶涛", "id_number": "440105197906094199", "phone": "13198586743", "address": "广州市海珠区工业大道399号", "district": "海珠区", "note": "call 13198586743"}}"#
        )
    }

    /// Feeds `body` in `chunk`-byte pieces; the output and findings.
    fn run(p: &mut Pipeline, body: &[u8], chunk: usize) -> (Vec<u8>, Findings) {
        let mut out = Vec::new();
        for c in body.chunks(chunk.max(1)) {
            out.extend_from_slice(&p.feed(Bytes::copy_from_slice(c)).expect("feed"));
        }
        out.extend_from_slice(&p.finish().expect("finish"));
        (out, p.findings().clone())
    }

    #[test]
    fn list_is_scoped_masked_and_counted_in_any_chunking() {
        let p = pack();
        let g = grant(&p, "dept-health", "GET", "/api/v1/persons");
        let body = format!(
            r#"{{"page": 1, "size": 3, "total": 99, "items": [{}, {}, {}]}}"#,
            person(1),
            person(2),
            person(3)
        );
        for chunk in [1, 7, 64, body.len()] {
            let mut pl = Pipeline::new(
                &CFG,
                Some(g.clone()),
                Arc::new(Scanner::all()),
                Coding::Identity,
            );
            assert_eq!(pl.output(), Output::Rewritten);
            let (out, f) = run(&mut pl, body.as_bytes(), chunk);
            let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON out");
            let items = v["items"].as_array().expect("items");
            assert_eq!(items.len(), 3);
            for it in items {
                assert!(
                    it.get("id").is_none()
                        && it.get("address").is_none()
                        && it.get("note").is_none(),
                    "{it}"
                );
                assert_eq!(it["id_number"], "440105********4199");
                assert_eq!(it["phone"], "131****6743");
                assert_eq!(it["name"], "叶涛");
            }
            assert_eq!(v["total"], 99);
            assert_eq!(f.records, 3, "chunk {chunk}");
            assert_eq!(f.masked, 6);
            assert_eq!(f.removed, 9);
            assert_eq!(
                f.masked_paths,
                vec!["$.items[*].id_number", "$.items[*].phone"]
            );
            assert_eq!(
                f.removed_paths,
                vec!["$.items[*].id", "$.items[*].address", "$.items[*].note"]
            );
        }
    }

    #[test]
    fn unrestricted_grant_passes_bytes_and_counts_personal_data() {
        let p = pack();
        let g = grant(&p, "dept-audit", "GET", "/api/v1/export");
        let body = format!("[{},{}]", person(1), person(2));
        let mut pl = Pipeline::new(&CFG, Some(g), Arc::new(Scanner::all()), Coding::Identity);
        assert_eq!(pl.output(), Output::Original);
        let (out, f) = run(&mut pl, body.as_bytes(), 5);
        assert_eq!(out, body.as_bytes());
        assert_eq!(f.records, 2);
        assert_eq!(f.counts.get(Kind::IdNumber), 2);
        // The phone field and the phone inside the note.
        assert_eq!(f.counts.get(Kind::Phone), 4);
        assert_eq!(f.masked, 0);
    }

    #[test]
    fn gzip_body_is_decoded_rewritten_and_reencoded() {
        let p = pack();
        let g = grant(&p, "dept-health", "GET", "/api/v1/persons/{id}");
        let plain = person(7);
        let mut enc = Encoder::new(Coding::Gzip, 6);
        let mut gz = Vec::new();
        enc.feed(plain.as_bytes(), &mut gz).expect("gzip");
        enc.finish(&mut gz).expect("gzip end");
        let mut pl = Pipeline::new(&CFG, Some(g), Arc::new(Scanner::all()), Coding::Gzip);
        let (out, f) = run(&mut pl, &gz, 11);
        let mut dec = Decoder::new(Coding::Gzip, 1 << 20);
        let mut text = Vec::new();
        dec.feed(&out, &mut text).expect("gunzip");
        dec.finish(&mut text).expect("gunzip end");
        let v: serde_json::Value = serde_json::from_slice(&text).expect("json");
        assert_eq!(v["id_number"], "440105********4199");
        assert!(v.get("address").is_none());
        assert_eq!(f.records, 1);
    }

    #[test]
    fn malformed_and_bomb_bodies_fail_with_their_rule() {
        let p = pack();
        let g = grant(&p, "dept-health", "GET", "/api/v1/persons");
        let mut pl = Pipeline::new(
            &CFG,
            Some(g.clone()),
            Arc::new(Scanner::all()),
            Coding::Identity,
        );
        let e = pl
            .feed(Bytes::from_static(b"{\"items\": [{\"id\": 1,}"))
            .and_then(|_| pl.finish())
            .expect_err("malformed");
        assert_eq!(e.rule(), "api.upstream-bad-json");
        let mut enc = Encoder::new(Coding::Gzip, 1);
        let mut gz = Vec::new();
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..40 {
            enc.feed(&zeros, &mut gz).expect("gzip");
        }
        enc.finish(&mut gz).expect("gzip end");
        let small = PipelineConfig {
            limits: CFG.limits,
            max_decoded_bytes: 1 << 20,
        };
        let mut pl = Pipeline::new(&small, Some(g), Arc::new(Scanner::all()), Coding::Gzip);
        let e = pl
            .feed(Bytes::from(gz))
            .and_then(|_| pl.finish())
            .expect_err("bomb");
        assert_eq!(e.rule(), "api.upstream-bad-encoding");
    }

    #[test]
    fn unscoped_routes_count_root_arrays_and_objects() {
        for (body, want) in [("[{}, {}, {}]", 3), ("{\"a\": [1, 2]}", 1), ("[]", 0)] {
            let mut pl = Pipeline::new(&CFG, None, Arc::new(Scanner::all()), Coding::Identity);
            let (out, f) = run(&mut pl, body.as_bytes(), 2);
            assert_eq!(out, body.as_bytes());
            assert_eq!(f.records, want, "{body}");
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("application/problem+json")));
        assert!(!is_json(Some("text/csv")));
        assert!(!is_json(None));
    }
}
