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
    write_json_string, Action, Limits, Path, Rewriter, ScalarKind, Visitor,
};

/// Paths listed per event (the counts cover them all).
pub const MAX_LISTED_PATHS: usize = 32;

/// What inspecting one body found and did.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    pub records: u64,
    pub counts: Counts,
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
}

impl Inspector {
    fn note(list: &mut Vec<String>, path: &Path<'_>) {
        if list.len() < MAX_LISTED_PATHS {
            list.push(path.to_string());
        }
    }

    fn mask_text(&mut self, spec: &MaskRef, text: &str, path: &Path<'_>) -> Vec<u8> {
        self.found.masked += 1;
        Self::note(&mut self.found.masked_paths, path);
        let mut out = Vec::with_capacity(text.len() + 2);
        match spec.strategy.apply(text.as_bytes()) {
            Masked::Value(v) => write_json_string(&mut out, &String::from_utf8_lossy(&v)),
            Masked::Null => out.extend_from_slice(b"null"),
        }
        out
    }
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
                Self::note(&mut self.found.removed_paths, path);
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
        if let Some(g) = self.grant.clone() {
            let n = g.fields.node(state);
            if let Some(m) = n.mask {
                return Some(self.mask_text(m, text, path));
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
        self.scanner.scan(text.as_bytes(), &mut self.found.counts);
        if let Some((sc, masks)) = &self.tag_masks {
            let mut c = Counts::new();
            sc.scan(text.as_bytes(), &mut c);
            if !c.is_empty() {
                if let Some((_, m)) = masks.iter().find(|(k, _)| c.get(*k) > 0) {
                    let m = m.clone();
                    return Some(self.mask_text(&m, text, path));
                }
            }
        }
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
            rewriter: Rewriter::new(cfg.limits.clone()),
            encoder: (encoded && restricts).then(|| Encoder::new(coding, 6)),
            inspector: Inspector {
                grant,
                scanner,
                tag_masks,
                found: Findings::default(),
                root_array: None,
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

/// Whether a `Content-Type` is JSON (`application/json`, `*/*+json`).
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}
