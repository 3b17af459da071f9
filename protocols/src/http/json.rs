//! Sans-IO streaming JSON scanner and rewriter with bounded memory.
//!
//! Owns the JSON grammar as the proxy sees a response body: bytes arrive
//! chunk by chunk, a [`Visitor`] is told about every member, element and
//! scalar with its path, and decides per member whether it stays
//! ([`Action`]) and per scalar whether it is replaced (masking). The
//! rewritten bytes come out as the input goes in, so a 500 MB response is
//! never buffered: the rewriter holds only the open-container stack (at most
//! [`Limits::max_depth`] frames), the keys on the current path, and the one
//! token that straddles a chunk boundary (at most
//! [`Limits::max_token_bytes`]).
//!
//! Must never: buffer a whole document, allocate per byte, decide policy
//! (that is the visitor's job), emit invalid JSON for valid input, or panic
//! on any input, however hostile. Invalid input is an error ([`JsonError`])
//! and the rewriter stays failed afterwards, because the output already sent
//! may be a prefix the caller must abort rather than continue.
//!
//! # Output fidelity
//!
//! When the visitor keeps everything and replaces nothing, the output is
//! byte-identical to the input, whitespace included. Removed members vanish
//! with their key, colon, value and the right comma, so the output stays
//! valid JSON whichever members go. The whitespace between a comma and the
//! decision about the member after it is held (it cannot be written before
//! we know the comma stays); only the first [`MAX_HELD_WHITESPACE`] bytes of
//! such a run are kept, the rest is dropped, which keeps memory bounded
//! against a body of a gigabyte of spaces and changes no JSON value.
//!
//! # Strings
//!
//! String scalars and keys reach the visitor unescaped. Surrogate pairs
//! (`\uD83D\uDE00`) are joined; a lone surrogate is an error (the same
//! choice serde_json makes): a scanner looking for personal data must not
//! analyse text that differs from what the client will decode, and
//! replacing it with U+FFFD would do exactly that. Raw control characters
//! and invalid UTF-8 inside strings are errors too.
//!
//! # Token limit
//!
//! Every string, key and number token must fit in
//! [`Limits::max_token_bytes`] (counting the quotes and escapes as sent),
//! whether the member is kept or removed and whether or not it happens to
//! straddle a chunk boundary: the outcome never depends on how the body was
//! chunked. The keys of the current path (held for [`Path`]) must together
//! fit the same limit; only kept members count, since removed subtrees are
//! not walked.

use std::fmt;

/// Default nesting limit: deep enough for any real API document, shallow
/// enough that the container stack stays a few kilobytes.
pub const DEFAULT_MAX_DEPTH: usize = 128;

/// Default largest token (string or number) held in memory: 1 MiB.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 1 << 20;

/// Whitespace held between an object's comma and the keep/remove decision
/// on the member after it; longer runs are truncated (see the module doc).
/// 4 KiB covers pretty-printed documents at any depth the default limit
/// allows.
pub const MAX_HELD_WHITESPACE: usize = 4096;

/// Resource limits of one [`Rewriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most containers (objects and arrays) open at once.
    pub max_depth: usize,
    /// Largest string or number token, in bytes as sent (quotes included).
    pub max_token_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

/// Why a body is not (or no longer) acceptable JSON. Every variant carries
/// the byte offset into the body where the problem was found; none carries
/// body content, so an error is always safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// A byte that the grammar does not allow here.
    #[error("JSON syntax error at byte {offset}: expected {expected}")]
    Syntax { offset: u64, expected: &'static str },

    /// More than [`Limits::max_depth`] containers open at once.
    #[error("JSON nested deeper than {max} levels at byte {offset}")]
    TooDeep { offset: u64, max: usize },

    /// A string or number longer than [`Limits::max_token_bytes`].
    #[error("JSON token at byte {offset} is longer than {max} bytes")]
    TokenTooLong { offset: u64, max: usize },

    /// A string (starting at `offset`) is not valid UTF-8.
    #[error("JSON string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: u64 },

    /// The body ended inside a value.
    #[error("JSON document truncated at byte {offset}")]
    Truncated { offset: u64 },

    /// The body held no value at all (empty or only whitespace).
    #[error("JSON body of {offset} bytes holds no value")]
    Empty { offset: u64 },
}

impl JsonError {
    /// Byte offset into the body where the error was found.
    pub fn offset(&self) -> u64 {
        match *self {
            JsonError::Syntax { offset, .. }
            | JsonError::TooDeep { offset, .. }
            | JsonError::TokenTooLong { offset, .. }
            | JsonError::InvalidUtf8 { offset }
            | JsonError::Truncated { offset }
            | JsonError::Empty { offset } => offset,
        }
    }
}

/// What happens to an object member, decided by [`Visitor::member`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Emit the member and walk its value (children get visitor calls).
    Keep,
    /// Drop the member entirely; its value is validated but not visited.
    Remove,
    /// Keep the member if its value is an object or array (so that allowed
    /// descendants can survive), remove it if the value is a scalar.
    KeepIfContainer,
}

/// The kind of a scalar passed to [`Visitor::scalar`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    /// A string; the text is unescaped.
    String,
    /// A number; the text is the raw token (e.g. `-0.5e+10`).
    Number,
    /// `true` or `false`; the text is the raw token.
    Bool,
    /// `null`; the text is `null`.
    Null,
}

/// The caller's policy, consulted by the [`Rewriter`] as it walks.
///
/// Each node carries a `u32` state chosen by the visitor (the proxy stores
/// its compiled field-scope automaton state there): the root's comes from
/// [`Visitor::root`], each child's from the call that announced it, and the
/// rewriter hands it back as `parent`/`state`, so a visitor needs no stack
/// of its own.
pub trait Visitor {
    /// State of the top-level value, asked once when it starts.
    fn root(&mut self) -> u32;
    /// Member `key` (unescaped) of an object whose node state is `parent`;
    /// `path` ends with `key`. Returns what to do with the member and the
    /// state of its value.
    fn member(&mut self, parent: u32, key: &str, path: &Path<'_>) -> (Action, u32);
    /// Element `index` of an array whose node state is `parent`; `path`
    /// ends with `index`. Returns the state of the element. Elements are
    /// never removed (that would change every later index).
    fn element(&mut self, parent: u32, index: u64, path: &Path<'_>) -> u32;
    /// A scalar kept in the output: string (unescaped text), number,
    /// true/false/null (raw text). `path` is the scalar's own path. Return
    /// `Some(raw JSON bytes)` to emit instead of the original token (see
    /// [`write_json_string`]); `None` keeps the original bytes exactly.
    fn scalar(
        &mut self,
        state: u32,
        kind: ScalarKind,
        text: &str,
        path: &Path<'_>,
    ) -> Option<Vec<u8>>;
}

/// A visitor that keeps everything: the rewriter then only validates, and
/// the output is the input byte for byte.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeepAll;

impl Visitor for KeepAll {
    fn root(&mut self) -> u32 {
        0
    }
    fn member(&mut self, _: u32, _: &str, _: &Path<'_>) -> (Action, u32) {
        (Action::Keep, 0)
    }
    fn element(&mut self, _: u32, _: u64, _: &Path<'_>) -> u32 {
        0
    }
    fn scalar(&mut self, _: u32, _: ScalarKind, _: &str, _: &Path<'_>) -> Option<Vec<u8>> {
        None
    }
}

/// One step of a [`Path`]: an object member or an array element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(u64),
}

/// A path step as stored on the rewriter's stack: keys are ranges into one
/// shared string buffer, so walking a document allocates nothing per key.
#[derive(Debug, Clone, Copy)]
enum SegRepr {
    Key { start: usize, end: usize },
    Index(u64),
}

/// Borrowed view of the path from the document root to the current node
/// (`$` for the root itself). Valid only during the visitor call.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    segs: &'a [SegRepr],
    keys: &'a str,
}

impl<'a> Path<'a> {
    /// Number of steps below the root (0 for the root).
    pub fn len(&self) -> usize {
        self.segs.len()
    }

    /// True for the root itself.
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Step `i` (0 is the one just below the root).
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn get(&self, i: usize) -> Seg<'a> {
        self.seg(self.segs[i])
    }

    /// The last step, i.e. the current node's own key or index.
    pub fn last(&self) -> Option<Seg<'a>> {
        self.segs.last().map(|&s| self.seg(s))
    }

    /// Steps from the root down.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Seg<'a>> + 'a {
        let keys = self.keys;
        self.segs.iter().map(move |&s| match s {
            SegRepr::Key { start, end } => Seg::Key(keys.get(start..end).unwrap_or("")),
            SegRepr::Index(i) => Seg::Index(i),
        })
    }

    fn seg(&self, s: SegRepr) -> Seg<'a> {
        match s {
            // The range was recorded when the key was pushed, on char
            // boundaries of this very buffer; `get` only guards the type.
            SegRepr::Key { start, end } => Seg::Key(self.keys.get(start..end).unwrap_or("")),
            SegRepr::Index(i) => Seg::Index(i),
        }
    }
}

impl fmt::Debug for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Renders `$.items[3].name`; keys that are not identifiers render as
/// `["a b"]` (JSON-escaped), so the text is also valid path syntax.
impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for seg in self.iter() {
            match seg {
                Seg::Index(i) => write!(f, "[{i}]")?,
                Seg::Key(k) if is_identifier(k) => write!(f, ".{k}")?,
                Seg::Key(k) => {
                    let mut quoted = Vec::with_capacity(k.len() + 2);
                    write_json_string(&mut quoted, k);
                    write!(f, "[{}]", String::from_utf8_lossy(&quoted))?;
                }
            }
        }
        Ok(())
    }
}

fn is_identifier(k: &str) -> bool {
    let mut bytes = k.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Appends `s` as a JSON string literal (quotes included), escaping `"`,
/// `\` and control characters; everything else is copied as UTF-8.
/// Visitors use it to build replacement values for [`Visitor::scalar`].
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Rewrites a whole body held in memory (the proxy's buffered path and
/// tests): `feed` once, then `finish`.
pub fn rewrite<V: Visitor>(input: &[u8], limits: Limits, v: &mut V) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::with_capacity(input.len());
    let mut rw = Rewriter::new(limits);
    rw.feed(input, &mut out, v)?;
    rw.finish(&mut out, v)?;
    Ok(out)
}

/// Where the scanner is in the grammar, between tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level value: only whitespace so far.
    Start,
    /// A value is required (after `:`, or after `,` in an array).
    Value,
    /// After `[`: a value or `]`.
    ValueOrClose,
    /// After `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value inside a container: `,` or the container's closer.
    CommaOrClose,
    /// After the top-level value: only whitespace may follow.
    End,
    /// Inside a string that started in an earlier chunk (held in `tok`).
    InString,
    /// Inside a number or literal that started in an earlier chunk.
    InBare,
}

/// One open container.
#[derive(Debug, Clone, Copy)]
struct Frame {
    is_object: bool,
    /// The container's node state (the visitor's `parent` for children).
    state: u32,
    /// Whether a member of this object has been written to the output, so
    /// that the next kept member knows whether it needs its comma.
    emitted_any: bool,
    /// Next element index (arrays).
    next_index: u64,
}

/// The streaming rewriter; see the module doc. One per response body.
#[derive(Debug)]
pub struct Rewriter {
    limits: Limits,
    state: State,
    /// Set once an error is returned; every later call returns it again.
    failed: Option<JsonError>,
    /// Bytes fed before the current chunk, for error offsets.
    base: u64,

    frames: Vec<Frame>,
    /// Path of the current node (only outside skipped values).
    segs: Vec<SegRepr>,
    /// Keys of `segs`, concatenated.
    keys: String,
    /// State of the value about to start or in progress.
    cur_state: u32,

    /// Inside a removed value: nothing is emitted, the visitor is not
    /// called, the grammar is still checked.
    skip: bool,
    /// `frames.len()` when the skipped value started; the skip ends when a
    /// value completes at this depth.
    skip_base: usize,

    /// Output held until the current member is decided: its comma (if
    /// any), whitespace, key, colon.
    pending: Vec<u8>,
    pending_active: bool,
    pending_ws: usize,
    /// The current member is `KeepIfContainer`: decide at the value's
    /// first byte.
    undecided: bool,

    /// The partial token carried across chunks.
    tok: Vec<u8>,
    tok_key: bool,
    tok_escape_open: bool,
    tok_flags: StrFlags,
    tok_offset: u64,
    /// Scratch for unescaped strings.
    text: String,
}

impl Rewriter {
    /// A rewriter for one body. Allocates nothing until fed; buffers grow
    /// to the largest token and path seen and are reused after that.
    pub fn new(limits: Limits) -> Rewriter {
        Rewriter {
            limits,
            state: State::Start,
            failed: None,
            base: 0,
            frames: Vec::new(),
            segs: Vec::new(),
            keys: String::new(),
            cur_state: 0,
            skip: false,
            skip_base: 0,
            pending: Vec::new(),
            pending_active: false,
            pending_ws: 0,
            undecided: false,
            tok: Vec::new(),
            tok_key: false,
            tok_escape_open: false,
            tok_flags: StrFlags::default(),
            tok_offset: 0,
            text: String::new(),
        }
    }

    /// Total bytes fed so far.
    pub fn bytes_in(&self) -> u64 {
        self.base
    }

    /// (held token bytes, held member-prefix bytes, open containers), for
    /// the property tests' memory-bound checks.
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, usize, usize) {
        (self.tok.len(), self.pending.len(), self.frames.len())
    }

    /// Consumes all of `input`, appending output bytes to `out`. Tokens
    /// split across chunk boundaries are handled (only the current partial
    /// token is held, at most `max_token_bytes`).
    pub fn feed<V: Visitor>(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        v: &mut V,
    ) -> Result<(), JsonError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.run(input, out, v);
        self.base += input.len() as u64;
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// End of body: errors if the document is incomplete (truncated) or
    /// there is no value. Trailing whitespace is fine; anything else after
    /// the top-level value was already an error in `feed`.
    pub fn finish<V: Visitor>(&mut self, out: &mut Vec<u8>, v: &mut V) -> Result<(), JsonError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.finish_inner(out, v);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn finish_inner<V: Visitor>(&mut self, out: &mut Vec<u8>, v: &mut V) -> Result<(), JsonError> {
        let end = self.base;
        match self.state {
            // A top-level number or literal ends with the body.
            State::InBare if self.frames.is_empty() => {
                let tok = std::mem::take(&mut self.tok);
                let r = self.bare_token(&tok, self.tok_offset, out, v);
                self.tok = tok;
                self.tok.clear();
                r?;
                Ok(())
            }
            State::End => Ok(()),
            State::Start => Err(JsonError::Empty { offset: end }),
            _ => Err(JsonError::Truncated { offset: end }),
        }
    }

    fn run<V: Visitor>(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        v: &mut V,
    ) -> Result<(), JsonError> {
        let mut i = match self.state {
            State::InString => self.continue_string(input, out, v)?,
            State::InBare => self.continue_bare(input, out, v)?,
            _ => 0,
        };
        let len = input.len();
        while i < len {
            let b = input[i];
            if is_ws(b) {
                let mut j = i + 1;
                while j < len && is_ws(input[j]) {
                    j += 1;
                }
                self.emit_ws(out, &input[i..j]);
                i = j;
                continue;
            }
            let at = self.base + i as u64;
            match self.state {
                State::Start | State::Value | State::ValueOrClose => {
                    if b == b']' && self.state == State::ValueOrClose {
                        self.close(b, out);
                        i += 1;
                    } else {
                        i = self.value(input, i, out, v)?;
                    }
                }
                State::KeyOrClose | State::Key => {
                    if b == b'"' {
                        i = self.key(input, i, out, v)?;
                    } else if b == b'}' && self.state == State::KeyOrClose {
                        self.close(b, out);
                        i += 1;
                    } else {
                        let expected = if self.state == State::Key {
                            "a string key"
                        } else {
                            "a string key or '}'"
                        };
                        return Err(JsonError::Syntax {
                            offset: at,
                            expected,
                        });
                    }
                }
                State::Colon => {
                    if b != b':' {
                        return Err(JsonError::Syntax {
                            offset: at,
                            expected: "':'",
                        });
                    }
                    self.emit(out, b":");
                    self.state = State::Value;
                    i += 1;
                }
                State::CommaOrClose => {
                    let is_object = self.frames.last().is_some_and(|f| f.is_object);
                    match (b, is_object) {
                        (b',', true) => {
                            if !self.skip {
                                self.pending.clear();
                                self.pending.push(b',');
                                self.pending_active = true;
                                self.pending_ws = 0;
                            }
                            self.state = State::Key;
                        }
                        (b',', false) => {
                            self.emit(out, b",");
                            self.state = State::Value;
                        }
                        (b'}', true) | (b']', false) => self.close(b, out),
                        (_, true) => {
                            return Err(JsonError::Syntax {
                                offset: at,
                                expected: "',' or '}'",
                            })
                        }
                        (_, false) => {
                            return Err(JsonError::Syntax {
                                offset: at,
                                expected: "',' or ']'",
                            })
                        }
                    }
                    i += 1;
                }
                State::End => {
                    return Err(JsonError::Syntax {
                        offset: at,
                        expected: "end of document after the top-level value",
                    })
                }
                // Token states are left by `continue_*` before the loop
                // and entered only when the chunk ends.
                State::InString | State::InBare => {
                    return Err(JsonError::Syntax {
                        offset: at,
                        expected: "a complete token",
                    })
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        if self.skip {
            // Inside a removed value: nothing to write.
        } else if self.pending_active {
            self.pending.extend_from_slice(bytes);
        } else {
            out.extend_from_slice(bytes);
        }
    }

    #[inline]
    fn emit_ws(&mut self, out: &mut Vec<u8>, ws: &[u8]) {
        if self.skip {
            // Inside a removed value: nothing to write.
        } else if self.pending_active {
            let room = MAX_HELD_WHITESPACE.saturating_sub(self.pending_ws);
            let n = ws.len().min(room);
            self.pending.extend_from_slice(&ws[..n]);
            self.pending_ws += n;
        } else {
            out.extend_from_slice(ws);
        }
    }

    /// Writes the held member prefix: the member is kept.
    fn flush_pending(&mut self, out: &mut Vec<u8>) {
        let emitted_any = match self.frames.last_mut() {
            Some(f) => std::mem::replace(&mut f.emitted_any, true),
            None => true,
        };
        let held = if !emitted_any && self.pending.first() == Some(&b',') {
            &self.pending[1..]
        } else {
            &self.pending[..]
        };
        out.extend_from_slice(held);
        self.pending.clear();
        self.pending_active = false;
    }

    /// Drops the held member prefix and skips the member's value.
    fn remove_member(&mut self) {
        self.pending.clear();
        self.pending_active = false;
        self.pop_seg();
        self.skip = true;
        self.skip_base = self.frames.len();
    }

    fn pop_seg(&mut self) {
        if let Some(SegRepr::Key { start, .. }) = self.segs.pop() {
            self.keys.truncate(start);
        }
    }

    /// A value has ended (scalar token or container closer).
    #[inline]
    fn value_done(&mut self) {
        if self.skip {
            if self.frames.len() == self.skip_base {
                self.skip = false;
            }
        } else if !self.frames.is_empty() {
            self.pop_seg();
        }
        self.state = if self.frames.is_empty() {
            State::End
        } else {
            State::CommaOrClose
        };
    }

    fn close(&mut self, b: u8, out: &mut Vec<u8>) {
        self.emit(out, &[b]);
        self.frames.pop();
        self.value_done();
    }

    fn open(&mut self, is_object: bool, at: u64, out: &mut Vec<u8>) -> Result<(), JsonError> {
        if self.frames.len() >= self.limits.max_depth {
            return Err(JsonError::TooDeep {
                offset: at,
                max: self.limits.max_depth,
            });
        }
        self.emit(out, if is_object { b"{" } else { b"[" });
        self.frames.push(Frame {
            is_object,
            state: self.cur_state,
            emitted_any: false,
            next_index: 0,
        });
        self.state = if is_object {
            State::KeyOrClose
        } else {
            State::ValueOrClose
        };
        Ok(())
    }

    /// The first byte of a value at `input[i]`: announce the node to the
    /// visitor, settle a `KeepIfContainer` member, then dispatch on the kind.
    fn value<V: Visitor>(
        &mut self,
        input: &[u8],
        i: usize,
        out: &mut Vec<u8>,
        v: &mut V,
    ) -> Result<usize, JsonError> {
        let b = input[i];
        let at = self.base + i as u64;
        let is_container = b == b'{' || b == b'[';
        if !self.skip {
            match self.frames.last_mut() {
                None => self.cur_state = v.root(),
                Some(f) if !f.is_object => {
                    let index = f.next_index;
                    f.next_index += 1;
                    let parent = f.state;
                    self.segs.push(SegRepr::Index(index));
                    let path = Path {
                        segs: &self.segs,
                        keys: &self.keys,
                    };
                    self.cur_state = v.element(parent, index, &path);
                }
                Some(_) => {
                    if self.undecided {
                        self.undecided = false;
                        if is_container {
                            self.flush_pending(out);
                        } else {
                            self.remove_member();
                        }
                    }
                }
            }
        }
        match b {
            b'{' | b'[' => {
                self.open(b == b'{', at, out)?;
                Ok(i + 1)
            }
            b'"' => self.string_start(input, i, false, out, v),
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let mut j = i + 1;
                while j < input.len() && is_bare(input[j]) {
                    j += 1;
                }
                if j < input.len() {
                    self.bare_token(&input[i..j], at, out, v)?;
                    Ok(j)
                } else {
                    self.tok.clear();
                    self.hold(&input[i..], at)?;
                    self.tok_offset = at;
                    self.state = State::InBare;
                    Ok(j)
                }
            }
            _ => Err(JsonError::Syntax {
                offset: at,
                expected: "a value",
            }),
        }
    }

    /// A key's opening quote at `input[i]`.
    fn key<V: Visitor>(
        &mut self,
        input: &[u8],
        i: usize,
        out: &mut Vec<u8>,
        v: &mut V,
    ) -> Result<usize, JsonError> {
        if !self.skip && !self.pending_active {
            // First member position: nothing held yet (no comma).
            self.pending.clear();
            self.pending_active = true;
            self.pending_ws = 0;
        }
        self.string_start(input, i, true, out, v)
    }

    fn string_start<V: Visitor>(
        &mut self,
        input: &[u8],
        i: usize,
        is_key: bool,
        out: &mut Vec<u8>,
        v: &mut V,
    ) -> Result<usize, JsonError> {
        let at = self.base + i as u64;
        let mut flags = StrFlags::default();
        match scan_string(input, i + 1, &mut flags) {
            Ok(end) => {
                let raw = &input[i..end];
                if raw.len() > self.limits.max_token_bytes {
                    return Err(self.too_long(at));
                }
                self.string_token(raw, is_key, flags, at, out, v)?;
                Ok(end)
            }
            Err(escape_open) => {
                self.tok.clear();
                self.hold(&input[i..], at)?;
                self.tok_key = is_key;
                self.tok_escape_open = escape_open;
                self.tok_flags = flags;
                self.tok_offset = at;
                self.state = State::InString;
                Ok(input.len())
            }
        }
    }

    fn continue_string<V: Visitor>(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        v: &mut V,
    ) -> Result<usize, JsonError> {
        if input.is_empty() {
            return Ok(0);
        }
        let from = usize::from(self.tok_escape_open);
        let mut flags = self.tok_flags;
        match scan_string(input, from, &mut flags) {
            Ok(end) => {
                self.hold(&input[..end], self.tok_offset)?;
                let tok = std::mem::take(&mut self.tok);
                let r = self.string_token(&tok, self.tok_key, flags, self.tok_offset, out, v);
                self.tok = tok;
                self.tok.clear();
                r?;
                Ok(end)
            }
            Err(escape_open) => {
                self.hold(input, self.tok_offset)?;
                self.tok_escape_open = escape_open;
                self.tok_flags = flags;
                Ok(input.len())
            }
        }
    }

    fn continue_bare<V: Visitor>(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        v: &mut V,
    ) -> Result<usize, JsonError> {
        let end = input
            .iter()
            .position(|&b| !is_bare(b))
            .unwrap_or(input.len());
        self.hold(&input[..end], self.tok_offset)?;
        if end < input.len() {
            let tok = std::mem::take(&mut self.tok);
            let r = self.bare_token(&tok, self.tok_offset, out, v);
            self.tok = tok;
            self.tok.clear();
            r?;
        }
        Ok(end)
    }

    /// Appends part of a token to `tok`, within the token limit.
    fn hold(&mut self, bytes: &[u8], at: u64) -> Result<(), JsonError> {
        if self.tok.len() + bytes.len() > self.limits.max_token_bytes {
            return Err(self.too_long(at));
        }
        self.tok.extend_from_slice(bytes);
        Ok(())
    }

    fn too_long(&self, at: u64) -> JsonError {
        JsonError::TokenTooLong {
            offset: at,
            max: self.limits.max_token_bytes,
        }
    }

    /// A complete string token `raw` (quotes included), key or value.
    fn string_token<V: Visitor>(
        &mut self,
        raw: &[u8],
        is_key: bool,
        flags: StrFlags,
        at: u64,
        out: &mut Vec<u8>,
        v: &mut V,
    ) -> Result<(), JsonError> {
        let content = &raw[1..raw.len() - 1];
        let text = decode_string(content, flags, &mut self.text, at)?;
        if is_key {
            self.state = State::Colon;
            if self.skip {
                return Ok(());
            }
            // The keys of the open path are held too; together they obey
            // the token limit, or 128 nested 1 MiB keys would hold 128 MiB.
            if self.keys.len() + text.len() > self.limits.max_token_bytes {
                return Err(JsonError::TokenTooLong {
                    offset: at,
                    max: self.limits.max_token_bytes,
                });
            }
            self.pending.extend_from_slice(raw);
            let start = self.keys.len();
            self.keys.push_str(text);
            self.segs.push(SegRepr::Key {
                start,
                end: self.keys.len(),
            });
            let parent = self.frames.last().map_or(0, |f| f.state);
            let path = Path {
                segs: &self.segs,
                keys: &self.keys,
            };
            let key = self.keys.get(start..).unwrap_or("");
            let (action, state) = v.member(parent, key, &path);
            self.cur_state = state;
            match action {
                Action::Keep => self.flush_pending(out),
                Action::Remove => self.remove_member(),
                Action::KeepIfContainer => self.undecided = true,
            }
        } else {
            if !self.skip {
                let path = Path {
                    segs: &self.segs,
                    keys: &self.keys,
                };
                match v.scalar(self.cur_state, ScalarKind::String, text, &path) {
                    None => out.extend_from_slice(raw),
                    Some(bytes) => out.extend_from_slice(&bytes),
                }
            }
            self.value_done();
        }
        Ok(())
    }

    /// A complete number or literal token.
    fn bare_token<V: Visitor>(
        &mut self,
        raw: &[u8],
        at: u64,
        out: &mut Vec<u8>,
        v: &mut V,
    ) -> Result<(), JsonError> {
        if raw.len() > self.limits.max_token_bytes {
            return Err(self.too_long(at));
        }
        let kind = match raw {
            b"true" | b"false" => ScalarKind::Bool,
            b"null" => ScalarKind::Null,
            _ if is_number(raw) => ScalarKind::Number,
            _ => {
                return Err(JsonError::Syntax {
                    offset: at,
                    expected: "a number, true, false or null",
                })
            }
        };
        if !self.skip {
            // Validated above: the token is ASCII.
            let text = simdutf8::basic::from_utf8(raw)
                .map_err(|_| JsonError::InvalidUtf8 { offset: at })?;
            let path = Path {
                segs: &self.segs,
                keys: &self.keys,
            };
            match v.scalar(self.cur_state, kind, text, &path) {
                None => out.extend_from_slice(raw),
                Some(bytes) => out.extend_from_slice(&bytes),
            }
        }
        self.value_done();
        Ok(())
    }
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// Bytes that may continue a number or literal token; anything else ends
/// it. Wider than the grammar on purpose (`tru3` is one bad token, not
/// `tru` followed by `3`), so that the whole token is judged at once.
#[inline]
fn is_bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')
}

/// What a string body contained, gathered while looking for its end so
/// that validation only re-reads the strings that need it.
#[derive(Debug, Clone, Copy, Default)]
struct StrFlags {
    escape: bool,
    control: bool,
    non_ascii: bool,
}

const PLAIN: u8 = 0;
const QUOTE: u8 = 1;
const BACKSLASH: u8 = 2;
const CONTROL: u8 = 3;
const NON_ASCII: u8 = 4;

/// Byte classes inside a string, one lookup per byte.
static STR_CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b {
            0x22 => QUOTE,
            0x5c => BACKSLASH,
            0..=0x1f => CONTROL,
            0x80..=0xff => NON_ASCII,
            _ => PLAIN,
        };
        b += 1;
    }
    t
};

/// Every byte lane set: `LANES * b` repeats `b` in each of 8 bytes.
const LANES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is `"`, `\\` or a control
/// character (< 0x20). Exact for the lowest such byte; a borrow can also
/// flag a byte above a flagged one, never one of a word without any, so a
/// word that flags nothing holds only plain or non-ASCII bytes.
#[inline]
fn special_bytes(w: u64) -> u64 {
    let q = w ^ (LANES * 0x22);
    let b = w ^ (LANES * 0x5c);
    let quote = q.wrapping_sub(LANES) & !q;
    let backslash = b.wrapping_sub(LANES) & !b;
    let control = w.wrapping_sub(LANES * 0x20) & !w;
    (quote | backslash | control) & HIGH_BITS
}

/// Finds the closing quote of a string whose body starts at `buf[from]`.
/// `Ok(index after the quote)`, or `Err(escape_open)` when the buffer ends
/// first (`escape_open`: it ended right after a backslash). Eight bytes at
/// a time while a word holds nothing special (Chinese text included: its
/// bytes are all non-ASCII), then a table-driven loop to the special byte.
/// Not `memchr`: API strings are mostly short, where the call costs more
/// than the scan, and this pass classifies the bytes too.
#[inline]
fn scan_string(buf: &[u8], from: usize, flags: &mut StrFlags) -> Result<usize, bool> {
    let len = buf.len();
    let mut i = from;
    loop {
        let mut high = 0u64;
        while let Some(word) = buf.get(i..i + 8) {
            let Ok(bytes) = <[u8; 8]>::try_from(word) else {
                break;
            };
            let w = u64::from_le_bytes(bytes);
            if special_bytes(w) != 0 {
                break;
            }
            high |= w;
            i += 8;
        }
        if high & HIGH_BITS != 0 {
            flags.non_ascii = true;
        }
        while i < len {
            match STR_CLASS[usize::from(buf[i])] {
                PLAIN => i += 1,
                NON_ASCII => {
                    flags.non_ascii = true;
                    i += 1;
                }
                _ => break,
            }
        }
        if i >= len {
            return Err(false);
        }
        match STR_CLASS[usize::from(buf[i])] {
            QUOTE => return Ok(i + 1),
            BACKSLASH => {
                flags.escape = true;
                if i + 1 >= len {
                    return Err(true);
                }
                i += 2;
            }
            _ => {
                flags.control = true;
                i += 1;
            }
        }
    }
}

/// `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`
fn is_number(s: &[u8]) -> bool {
    let n = s.len();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < n && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > st
    };
    if s.first() == Some(&b'-') {
        i += 1;
    }
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == n
}

/// Validates a string body and returns its text, unescaped into `scratch`
/// only when it has escapes (the fast path borrows `content`).
fn decode_string<'a>(
    content: &'a [u8],
    flags: StrFlags,
    scratch: &'a mut String,
    at: u64,
) -> Result<&'a str, JsonError> {
    if flags.control {
        return Err(JsonError::Syntax {
            offset: at,
            expected: "no raw control characters inside a string",
        });
    }
    let s =
        simdutf8::basic::from_utf8(content).map_err(|_| JsonError::InvalidUtf8 { offset: at })?;
    if !flags.escape {
        return Ok(s);
    }
    let bad = |expected| JsonError::Syntax {
        offset: at,
        expected,
    };
    scratch.clear();
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'\\', &bytes[i..]) {
        // `i` and `i + k` are char boundaries: both sit next to ASCII.
        scratch.push_str(s.get(i..i + k).unwrap_or(""));
        let p = i + k;
        let c = *bytes.get(p + 1).ok_or(bad("an escape after '\\'"))?;
        i = p + 2;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(bytes, i).ok_or(bad("four hex digits after \\u"))?;
                i += 4;
                match hi {
                    0xD800..=0xDBFF => {
                        if bytes.get(i..i + 2) != Some(b"\\u") {
                            return Err(bad("a low surrogate \\u escape after a high surrogate"));
                        }
                        let lo = hex4(bytes, i + 2).ok_or(bad("four hex digits after \\u"))?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(bad("a low surrogate \\u escape after a high surrogate"));
                        }
                        i += 6;
                        let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        char::from_u32(cp).ok_or(bad("a valid code point"))?
                    }
                    0xDC00..=0xDFFF => return Err(bad("no lone low surrogate")),
                    _ => char::from_u32(hi).ok_or(bad("a valid code point"))?,
                }
            }
            _ => {
                return Err(bad(
                    "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
                ))
            }
        };
        scratch.push(ch);
    }
    scratch.push_str(s.get(i..).unwrap_or(""));
    Ok(scratch.as_str())
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let h = bytes.get(at..at + 4)?;
    h.iter()
        .try_fold(0u32, |acc, &b| Some(acc << 4 | char::from(b).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Removes members whose key is in `remove`, applies
    /// `KeepIfContainer` to keys in `if_container`, replaces string values
    /// of keys in `mask` with `"***"`, and records every scalar's path.
    #[derive(Default)]
    struct Policy {
        remove: Vec<&'static str>,
        if_container: Vec<&'static str>,
        mask: Vec<&'static str>,
        seen: Vec<String>,
    }

    impl Visitor for Policy {
        fn root(&mut self) -> u32 {
            7
        }
        fn member(&mut self, parent: u32, key: &str, path: &Path<'_>) -> (Action, u32) {
            assert_eq!(path.last(), Some(Seg::Key(key)));
            let action = if self.remove.contains(&key) {
                Action::Remove
            } else if self.if_container.contains(&key) {
                Action::KeepIfContainer
            } else {
                Action::Keep
            };
            (action, parent + 1)
        }
        fn element(&mut self, parent: u32, index: u64, path: &Path<'_>) -> u32 {
            assert_eq!(path.last(), Some(Seg::Index(index)));
            parent + 1
        }
        fn scalar(
            &mut self,
            state: u32,
            kind: ScalarKind,
            text: &str,
            path: &Path<'_>,
        ) -> Option<Vec<u8>> {
            assert_eq!(
                state as usize,
                7 + path.len(),
                "state follows depth at {path}"
            );
            self.seen.push(format!("{path}={kind:?}:{text}"));
            match path.last() {
                Some(Seg::Key(k)) if kind == ScalarKind::String && self.mask.contains(&k) => {
                    Some(b"\"***\"".to_vec())
                }
                _ => None,
            }
        }
    }

    fn run(doc: &str, p: &mut Policy) -> Result<String, JsonError> {
        let out = rewrite(doc.as_bytes(), Limits::default(), p)?;
        Ok(String::from_utf8(out).expect("output of UTF-8 input is UTF-8"))
    }

    fn remove(doc: &str, keys: &[&'static str]) -> String {
        let mut p = Policy {
            remove: keys.to_vec(),
            ..Policy::default()
        };
        run(doc, &mut p).unwrap_or_else(|e| panic!("{doc}: {e}"))
    }

    #[test]
    fn keep_all_is_byte_identical() {
        let docs = [
            "{}",
            "[]",
            " { } ",
            "\n[\n  1,\n  2\n]\n",
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
            r#"{ "a" : 1 , "b" : [ true , false , null ] }"#,
            r#""just a string""#,
            "-0.5e+10",
            "0",
            "  42  ",
            "true",
            "null",
            r#"{"esc":"a\"b\\c\/\b\f\n\r\t\u00e9\uD83D\uDE00","uni":"数据 😀"}"#,
            r#"[[[[[]]]],{"":{"":""}}]"#,
            r#"{"n":[0,-0,1.5,-1.5E-3,2e10,12345678901234567890123]}"#,
        ];
        for doc in docs {
            let mut p = Policy::default();
            assert_eq!(run(doc, &mut p).as_deref(), Ok(doc), "{doc}");
            let mut k = KeepAll;
            assert_eq!(
                rewrite(doc.as_bytes(), Limits::default(), &mut k).as_deref(),
                Ok(doc.as_bytes())
            );
        }
    }

    #[test]
    fn removing_members_keeps_commas_right() {
        let doc = r#"{"a":1,"b":2,"c":3}"#;
        let cases: [(&[&str], &str); 8] = [
            (&["a"], r#"{"b":2,"c":3}"#),
            (&["b"], r#"{"a":1,"c":3}"#),
            (&["c"], r#"{"a":1,"b":2}"#),
            (&["a", "b"], r#"{"c":3}"#),
            (&["a", "c"], r#"{"b":2}"#),
            (&["b", "c"], r#"{"a":1}"#),
            (&["a", "b", "c"], "{}"),
            (&[], doc),
        ];
        for (keys, want) in cases {
            assert_eq!(remove(doc, keys), want, "removing {keys:?}");
        }
        assert_eq!(remove(r#"{"a":1}"#, &["a"]), "{}");
        // Whitespace survives, the JSON stays valid.
        assert_eq!(
            remove(r#"{ "a" : 1 , "b" : 2 }"#, &["a"]),
            r#"{   "b" : 2 }"#
        );
        assert_eq!(
            remove(r#"{ "a" : 1 , "b" : 2 }"#, &["b"]),
            r#"{ "a" : 1  }"#
        );
    }

    #[test]
    fn removed_values_are_skipped_whole_and_unvisited() {
        let doc = r#"{"keep":{"x":1,"secret":{"deep":[1,{"secret":2}],"s":"v"}},"secret":[{"a":"b"}],"z":0}"#;
        let mut p = Policy {
            remove: vec!["secret"],
            ..Policy::default()
        };
        assert_eq!(run(doc, &mut p).as_deref(), Ok(r#"{"keep":{"x":1},"z":0}"#));
        assert_eq!(p.seen, ["$.keep.x=Number:1", "$.z=Number:0"]);
    }

    #[test]
    fn keep_if_container_decides_on_the_value() {
        let doc = r#"{"a":1,"b":{"c":2,"a":"s"},"c":[1,"x"],"d":"t","a":null}"#;
        let mut p = Policy {
            if_container: vec!["a", "b", "c", "d"],
            ..Policy::default()
        };
        assert_eq!(run(doc, &mut p).as_deref(), Ok(r#"{"b":{},"c":[1,"x"]}"#));
        let mut p = Policy {
            if_container: vec!["a"],
            ..Policy::default()
        };
        assert_eq!(run(r#"{"a":1,"b":2}"#, &mut p).as_deref(), Ok(r#"{"b":2}"#));
        let mut p = Policy {
            if_container: vec!["a"],
            ..Policy::default()
        };
        assert_eq!(
            run(r#"{"b":2 , "a" : [] }"#, &mut p).as_deref(),
            Ok(r#"{"b":2 , "a" : [] }"#)
        );
    }

    #[test]
    fn scalars_can_be_replaced() {
        let doc = r#"{"name":"Li Lei","id":"110101199003074514","n":3,"tags":["id"]}"#;
        let mut p = Policy {
            mask: vec!["id", "name"],
            ..Policy::default()
        };
        assert_eq!(
            run(doc, &mut p).as_deref(),
            Ok(r#"{"name":"***","id":"***","n":3,"tags":["id"]}"#)
        );
    }

    #[test]
    fn paths_render_as_json_path() {
        let doc = r#"{"items":[{"name":"a","a b":{"x\"y":[true]}}],"数":null}"#;
        let mut p = Policy::default();
        run(doc, &mut p).expect("valid");
        assert_eq!(
            p.seen,
            [
                "$.items[0].name=String:a",
                r#"$.items[0]["a b"]["x\"y"][0]=Bool:true"#,
                r#"$["数"]=Null:null"#,
            ]
        );
        let mut p = Policy::default();
        run("5", &mut p).expect("valid");
        assert_eq!(p.seen, ["$=Number:5"]);
    }

    #[test]
    fn strings_are_unescaped_for_the_visitor() {
        let mut p = Policy::default();
        run(
            r#"["a\"b\\c\/\b\f\n\r\t\u00e9\uD83D\uDE00\u0000", "plain é"]"#,
            &mut p,
        )
        .expect("valid");
        assert_eq!(
            p.seen,
            [
                "$[0]=String:a\"b\\c/\u{8}\u{c}\n\r\té😀\0",
                "$[1]=String:plain é"
            ]
        );
    }

    #[test]
    fn bad_strings_are_errors() {
        let cases: [&[u8]; 9] = [
            br#""\uD83D""#,
            br#""\uDE00""#,
            br#""\uD83Dx""#,
            br#""\uD83D\u0041""#,
            br#""\x""#,
            br#""\u12G4""#,
            b"\"a\x01b\"",
            b"\"\xff\"",
            b"\"\xe6\x95\"",
        ];
        for doc in cases {
            let r = rewrite(doc, Limits::default(), &mut KeepAll);
            assert!(r.is_err(), "{:?} accepted", String::from_utf8_lossy(doc));
        }
        assert_eq!(
            rewrite(b"[\"\xff\"]", Limits::default(), &mut KeepAll),
            Err(JsonError::InvalidUtf8 { offset: 1 })
        );
    }

    #[test]
    fn malformed_documents_are_errors() {
        let cases = [
            "",
            "  ",
            "{",
            "[",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{\"a\" 1}",
            "{1:2}",
            "[1 2]",
            "01",
            "1.",
            "-",
            ".5",
            "1e",
            "1e+",
            "+1",
            "tru",
            "nul",
            "truex",
            "True",
            "[1]]",
            "{}{}",
            "1 2",
            "[}",
            "{]",
            "\"abc",
            "[\"a\\",
            "{\"a\":",
            "NaN",
            "'a'",
            "[,1]",
            ",",
            ":",
        ];
        for doc in cases {
            let r = rewrite(doc.as_bytes(), Limits::default(), &mut KeepAll);
            assert!(r.is_err(), "{doc:?} accepted");
        }
        let err = |d: &str| rewrite(d.as_bytes(), Limits::default(), &mut KeepAll).err();
        assert_eq!(err(""), Some(JsonError::Empty { offset: 0 }));
        assert_eq!(err(" \n"), Some(JsonError::Empty { offset: 2 }));
        assert_eq!(err("{\"a\":1"), Some(JsonError::Truncated { offset: 6 }));
        assert_eq!(
            err("[1] x"),
            Some(JsonError::Syntax {
                offset: 4,
                expected: "end of document after the top-level value"
            })
        );
        assert_eq!(
            err("[1,]"),
            Some(JsonError::Syntax {
                offset: 3,
                expected: "a value"
            })
        );
    }

    #[test]
    fn numbers_follow_the_grammar() {
        for ok in ["0", "-0", "-0.5e+10", "1E5", "1e-5", "123.456", "-1.0E+0"] {
            assert!(is_number(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", "-", "00", "01", "1.", ".1", "1e", "1e+", "+1", "1.e5", "--1", "1-", "0x10",
            "1.5.5",
        ] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn depth_limit_applies_kept_and_skipped() {
        let limits = Limits {
            max_depth: 4,
            ..Limits::default()
        };
        assert!(rewrite(b"[[[[]]]]", limits, &mut KeepAll).is_ok());
        assert_eq!(
            rewrite(b"[[[[[]]]]]", limits, &mut KeepAll),
            Err(JsonError::TooDeep { offset: 4, max: 4 })
        );
        let mut p = Policy {
            remove: vec!["x"],
            ..Policy::default()
        };
        let r = rewrite(br#"{"x":[[[[]]]]}"#, limits, &mut p);
        assert_eq!(r, Err(JsonError::TooDeep { offset: 8, max: 4 }));
        // Default limit: 128 levels fine, 129 not.
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(rewrite(deep(128).as_bytes(), Limits::default(), &mut KeepAll).is_ok());
        assert!(matches!(
            rewrite(deep(129).as_bytes(), Limits::default(), &mut KeepAll),
            Err(JsonError::TooDeep { .. })
        ));
    }

    /// 100 000 nested arrays and objects (an upstream's hostile response)
    /// on a thread with a 256 KiB stack: the scanner keeps its own depth
    /// stack (no recursion) and stops at the limit with a clean error.
    #[test]
    fn deep_nesting_on_a_small_stack_is_a_clean_error() {
        let n = 100_000;
        let arrays = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        for doc in [arrays, objects] {
            let got = std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || rewrite(doc.as_bytes(), Limits::default(), &mut KeepAll))
                .unwrap()
                .join()
                .expect("no stack overflow");
            assert!(
                matches!(
                    got,
                    Err(JsonError::TooDeep {
                        max: DEFAULT_MAX_DEPTH,
                        ..
                    })
                ),
                "{got:?}"
            );
        }
    }

    #[test]
    fn token_limit_applies_whatever_the_chunking() {
        let limits = Limits {
            max_token_bytes: 8,
            ..Limits::default()
        };
        let fits = br#"["123456",12345678]"#;
        let long_str = br#"[1,"1234567"]"#;
        let long_num = b"[123456789]";
        for chunk in [1, 3, usize::MAX] {
            let feed = |doc: &[u8]| {
                let mut rw = Rewriter::new(limits);
                let mut out = Vec::new();
                for c in doc.chunks(chunk.min(doc.len())) {
                    rw.feed(c, &mut out, &mut KeepAll)?;
                    assert!(rw.tok.len() <= 8);
                }
                rw.finish(&mut out, &mut KeepAll).map(|()| out)
            };
            assert_eq!(feed(fits).as_deref(), Ok(&fits[..]));
            assert_eq!(
                feed(long_str),
                Err(JsonError::TokenTooLong { offset: 3, max: 8 })
            );
            assert_eq!(
                feed(long_num),
                Err(JsonError::TokenTooLong { offset: 1, max: 8 })
            );
        }
    }

    #[test]
    fn path_keys_share_the_token_limit() {
        let limits = Limits {
            max_token_bytes: 10,
            ..Limits::default()
        };
        assert!(rewrite(br#"{"abcde":{"fghij":1}}"#, limits, &mut KeepAll).is_ok());
        assert_eq!(
            rewrite(br#"{"abcde":{"fghij":{"k":1}}}"#, limits, &mut KeepAll),
            Err(JsonError::TokenTooLong {
                offset: 19,
                max: 10
            })
        );
        // Removed subtrees hold no path.
        let mut p = Policy {
            remove: vec!["abcde"],
            ..Policy::default()
        };
        assert_eq!(
            rewrite(br#"{"abcde":{"fghij":{"k":1}}}"#, limits, &mut p).as_deref(),
            Ok(&b"{}"[..])
        );
    }

    #[test]
    fn failed_rewriter_stays_failed() {
        let mut rw = Rewriter::new(Limits::default());
        let mut out = Vec::new();
        let e = rw.feed(b"[1,,", &mut out, &mut KeepAll).unwrap_err();
        assert_eq!(rw.feed(b"2]", &mut out, &mut KeepAll), Err(e.clone()));
        assert_eq!(rw.finish(&mut out, &mut KeepAll), Err(e));
    }

    #[test]
    fn top_level_scalar_split_across_chunks_ends_at_finish() {
        let mut rw = Rewriter::new(Limits::default());
        let mut out = Vec::new();
        let mut p = Policy::default();
        rw.feed(b" -0.", &mut out, &mut p).expect("prefix");
        rw.feed(b"5e+1", &mut out, &mut p).expect("rest");
        assert_eq!(out, b" ");
        rw.finish(&mut out, &mut p).expect("complete");
        assert_eq!(out, b" -0.5e+1");
        assert_eq!(p.seen, ["$=Number:-0.5e+1"]);
        assert_eq!(rw.bytes_in(), 8);
    }

    #[test]
    fn counts_records_under_items() {
        /// Counts elements of `$.items[*]`: state 0 is the root, 1 the
        /// `items` array, 2 and 3 anything else.
        struct Records(u64);
        impl Visitor for Records {
            fn root(&mut self) -> u32 {
                0
            }
            fn member(&mut self, parent: u32, key: &str, _: &Path<'_>) -> (Action, u32) {
                (
                    Action::Keep,
                    if parent == 0 && key == "items" { 1 } else { 3 },
                )
            }
            fn element(&mut self, parent: u32, _: u64, path: &Path<'_>) -> u32 {
                if parent == 1 {
                    assert_eq!(path.get(0), Seg::Key("items"));
                    self.0 += 1;
                }
                2
            }
            fn scalar(&mut self, _: u32, _: ScalarKind, _: &str, _: &Path<'_>) -> Option<Vec<u8>> {
                None
            }
        }
        let doc = br#"{"total":3,"items":[{"id":1,"items":[9,9]},{"id":2},{"id":3}],"other":{"items":[1,2,3,4]}}"#;
        let mut v = Records(0);
        assert_eq!(
            rewrite(doc, Limits::default(), &mut v).as_deref(),
            Ok(&doc[..])
        );
        assert_eq!(v.0, 3);
    }

    #[test]
    fn held_whitespace_is_bounded() {
        let doc = format!("{{\"a\":1,{}\"b\":2}}", " ".repeat(MAX_HELD_WHITESPACE * 3));
        let out = rewrite(doc.as_bytes(), Limits::default(), &mut KeepAll).expect("valid");
        assert_eq!(out.len(), doc.len() - 2 * MAX_HELD_WHITESPACE);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
        assert_eq!(v, serde_json::json!({"a": 1, "b": 2}));
    }

    #[test]
    fn write_json_string_escapes() {
        let mut out = Vec::new();
        write_json_string(&mut out, "a\"b\\c\n\u{1}é😀");
        assert_eq!(String::from_utf8_lossy(&out), r#""a\"b\\c\n\u0001é😀""#);
        let back: String = serde_json::from_slice(&out).expect("valid JSON string");
        assert_eq!(back, "a\"b\\c\n\u{1}é😀");
    }
}
