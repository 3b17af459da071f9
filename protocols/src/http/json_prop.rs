//! Property-style tests of the streaming JSON rewriter: generated documents
//! fed in random chunkings, compared with themselves (keep-all must be
//! byte-identical, the outcome must not depend on chunk boundaries) and with
//! serde_json (removal and masking must yield the value serde_json's tree
//! edit yields; acceptance must match serde_json's); random bytes and
//! mutated documents must never panic nor exceed the memory limits. Plus an
//! ignored throughput measurement.

use serde_json::Value;

use super::json::{
    rewrite, write_json_string, Action, JsonError, KeepAll, Limits, Path, Rewriter, ScalarKind,
    Seg, Visitor, MAX_HELD_WHITESPACE,
};

const DOCS: usize = 1500;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Keys from a small pool (so removal keys occur often), including ones
/// that need escaping or quoting in paths.
const KEYS: &[&str] = &[
    "a", "b", "c", "id", "name", "items", "x y", "é", "k\\\"q", "", "\\u0062",
];
/// String pieces: plain text, every escape, multi-byte UTF-8, pairs.
const PIECES: &[&str] = &[
    "abc",
    " ",
    "Zhang San",
    "\\n",
    "\\\"",
    "\\\\",
    "\\/",
    "\\b\\f\\r\\t",
    "\\u00e9",
    "\\uD83D\\uDE00",
    "数据",
    "😀",
    "é",
    "1380013800",
    ",:{}[]",
];
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-12",
    "3.25",
    "-0.5e+10",
    "1E5",
    "2e-3",
    "12345678901234567",
    "0.0001",
];

fn ws(rng: &mut XorShift, out: &mut Vec<u8>) {
    if rng.below(3) == 0 {
        for _ in 0..rng.below(4) {
            out.push(*rng.pick(b" \n\t\r"));
        }
    }
}

fn gen_value(rng: &mut XorShift, depth: usize, out: &mut Vec<u8>) {
    let kind = if depth >= 5 {
        2 + rng.below(4)
    } else {
        rng.below(7)
    };
    match kind {
        0 | 6 => {
            out.push(b'{');
            ws(rng, out);
            let mut keys: Vec<&str> = KEYS.to_vec();
            for i in 0..rng.below(6) {
                if i > 0 {
                    out.push(b',');
                    ws(rng, out);
                }
                let key = keys.swap_remove(rng.below(keys.len()));
                out.push(b'"');
                out.extend_from_slice(key.as_bytes());
                out.push(b'"');
                ws(rng, out);
                out.push(b':');
                ws(rng, out);
                gen_value(rng, depth + 1, out);
                ws(rng, out);
            }
            out.push(b'}');
        }
        1 => {
            out.push(b'[');
            ws(rng, out);
            for i in 0..rng.below(5) {
                if i > 0 {
                    out.push(b',');
                    ws(rng, out);
                }
                gen_value(rng, depth + 1, out);
                ws(rng, out);
            }
            out.push(b']');
        }
        2 | 3 => {
            out.push(b'"');
            for _ in 0..rng.below(5) {
                out.extend_from_slice(rng.pick(PIECES).as_bytes());
            }
            out.push(b'"');
        }
        4 => out.extend_from_slice(rng.pick(NUMBERS).as_bytes()),
        _ => out.extend_from_slice(rng.pick(&["true", "false", "null"]).as_bytes()),
    }
}

fn gen_doc(rng: &mut XorShift) -> Vec<u8> {
    let mut out = Vec::new();
    ws(rng, &mut out);
    gen_value(rng, 0, &mut out);
    ws(rng, &mut out);
    out
}

/// Chunk sizes: 1, 7, random, whole.
fn chunkings(rng: &mut XorShift, len: usize) -> Vec<Vec<usize>> {
    let mut random = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = (1 + rng.below(20)).min(left);
        random.push(n);
        left -= n;
    }
    let fixed = |n: usize| vec![n; len.div_ceil(n)];
    vec![fixed(1), fixed(7), random, vec![len.max(1)]]
}

/// Feeds `doc` in the given chunk sizes, checking the memory bounds after
/// every chunk.
fn feed_chunked<V: Visitor>(
    doc: &[u8],
    sizes: &[usize],
    limits: Limits,
    v: &mut V,
) -> Result<Vec<u8>, JsonError> {
    let mut rw = Rewriter::new(limits);
    let mut out = Vec::new();
    let mut pos = 0;
    for &n in sizes {
        let end = (pos + n).min(doc.len());
        let r = rw.feed(&doc[pos..end], &mut out, v);
        let (tok, pending, frames) = rw.held();
        assert!(
            tok <= limits.max_token_bytes,
            "token buffer {tok} over the limit"
        );
        assert!(
            pending <= limits.max_token_bytes + MAX_HELD_WHITESPACE + 2,
            "held prefix {pending}"
        );
        assert!(frames <= limits.max_depth, "{frames} frames");
        r?;
        pos = end;
    }
    rw.finish(&mut out, v)?;
    assert_eq!(rw.bytes_in(), doc.len() as u64);
    Ok(out)
}

#[test]
fn keep_all_is_byte_identical_in_any_chunking() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..DOCS {
        let doc = gen_doc(&mut rng);
        serde_json::from_slice::<Value>(&doc).unwrap_or_else(|e| {
            panic!(
                "generator made invalid JSON {}: {e}",
                String::from_utf8_lossy(&doc)
            )
        });
        for sizes in chunkings(&mut rng, doc.len()) {
            let out = feed_chunked(&doc, &sizes, Limits::default(), &mut KeepAll)
                .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&doc)));
            assert_eq!(out, doc);
        }
    }
}

/// Removes `b` and `name` everywhere, keeps `c` only when it holds a
/// container, masks string values of `id` (at any depth).
struct Edit;

const REMOVE: &[&str] = &["b", "name"];
const IF_CONTAINER: &str = "c";
const MASKED: &str = "id";

impl Visitor for Edit {
    fn root(&mut self) -> u32 {
        0
    }
    fn member(&mut self, _: u32, key: &str, _: &Path<'_>) -> (Action, u32) {
        if REMOVE.contains(&key) {
            (Action::Remove, 0)
        } else if key == IF_CONTAINER {
            (Action::KeepIfContainer, 0)
        } else {
            (Action::Keep, u32::from(key == MASKED))
        }
    }
    fn element(&mut self, _: u32, _: u64, _: &Path<'_>) -> u32 {
        0
    }
    fn scalar(
        &mut self,
        state: u32,
        kind: ScalarKind,
        text: &str,
        path: &Path<'_>,
    ) -> Option<Vec<u8>> {
        assert_eq!(state == 1, path.last() == Some(Seg::Key(MASKED)));
        (state == 1 && kind == ScalarKind::String).then(|| {
            let mut out = Vec::new();
            write_json_string(&mut out, &format!("***{}", text.chars().count()));
            out
        })
    }
}

/// The same edit on a serde_json tree.
fn edit_tree(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, v| {
                !REMOVE.contains(&k.as_str())
                    && (k != IF_CONTAINER || v.is_object() || v.is_array())
            });
            for (k, v) in map.iter_mut() {
                if k == MASKED {
                    if let Value::String(s) = v {
                        *s = format!("***{}", s.chars().count());
                        continue;
                    }
                }
                edit_tree(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(edit_tree),
        _ => {}
    }
}

#[test]
fn removal_and_masking_match_serde_json() {
    let mut rng = XorShift(0x0123_4567_89AB_CDEF);
    let mut changed = 0;
    for _ in 0..DOCS {
        let doc = gen_doc(&mut rng);
        let mut want: Value = serde_json::from_slice(&doc).expect("generator makes valid JSON");
        edit_tree(&mut want);
        let mut first: Option<Vec<u8>> = None;
        for sizes in chunkings(&mut rng, doc.len()) {
            let out = feed_chunked(&doc, &sizes, Limits::default(), &mut Edit)
                .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&doc)));
            let got: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
                panic!(
                    "invalid output {} from {}: {e}",
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&doc)
                )
            });
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&doc));
            // Output does not depend on the chunking.
            match &first {
                None => first = Some(out),
                Some(f) => assert_eq!(f, &out),
            }
        }
        changed += usize::from(first.as_deref() != Some(&doc[..]));
    }
    assert!(
        changed > DOCS / 5,
        "the edit changed only {changed} documents"
    );
}

/// One random edit of a valid document.
fn mutate(rng: &mut XorShift, doc: &mut Vec<u8>) {
    const SPECIAL: &[u8] = b"{}[]\",:\\0123456789-+.eEtfnu \n\x00\x1f\x80\xc3\xe6\xf0\xff";
    if doc.is_empty() {
        doc.push(*rng.pick(SPECIAL));
        return;
    }
    let at = rng.below(doc.len());
    match rng.below(6) {
        0 => doc[at] = *rng.pick(SPECIAL),
        1 => doc.insert(at, *rng.pick(SPECIAL)),
        2 => {
            doc.remove(at);
        }
        3 => doc.truncate(at),
        4 => {
            let end = (at + 1 + rng.below(8)).min(doc.len());
            let piece = doc[at..end].to_vec();
            let to = rng.below(doc.len());
            doc.splice(to..to, piece);
        }
        _ => doc[at] ^= 1 << rng.below(8),
    }
}

/// Outcome with the output dropped on error (its prefix legitimately
/// depends on how far the input got).
fn outcome<V: Visitor>(
    doc: &[u8],
    sizes: &[usize],
    limits: Limits,
    v: &mut V,
) -> Result<Vec<u8>, JsonError> {
    feed_chunked(doc, sizes, limits, v)
}

#[test]
fn mutated_documents_never_panic_and_agree_with_serde_json() {
    let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..DOCS * 4 {
        let mut doc = gen_doc(&mut rng);
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut doc);
        }
        let serde = serde_json::from_slice::<Value>(&doc);
        let mut results = Vec::new();
        for sizes in chunkings(&mut rng, doc.len()) {
            results.push(outcome(&doc, &sizes, Limits::default(), &mut KeepAll));
        }
        for r in &results[1..] {
            assert_eq!(
                r,
                &results[0],
                "chunking changed the outcome for {:?}",
                String::from_utf8_lossy(&doc)
            );
        }
        match (&results[0], &serde) {
            (Ok(out), Ok(_)) => {
                assert_eq!(out, &doc);
                accepted += 1;
            }
            (Err(_), Err(_)) => rejected += 1,
            // serde_json parses numbers into f64 and refuses overflow; JSON
            // itself has no range, and the rewriter keeps the raw text.
            (Ok(_), Err(e)) if e.to_string().contains("number out of range") => accepted += 1,
            (Ok(_), Err(e)) => panic!(
                "accepted what serde_json rejects ({e}): {:?}",
                String::from_utf8_lossy(&doc)
            ),
            (Err(e), Ok(_)) => panic!(
                "rejected what serde_json accepts ({e}): {:?}",
                String::from_utf8_lossy(&doc)
            ),
        }
        // The editing visitor must cope with the same input.
        let _ = outcome(&doc, &[doc.len().max(1)], Limits::default(), &mut Edit);
    }
    assert!(
        accepted > 100 && rejected > 1000,
        "accepted {accepted}, rejected {rejected}"
    );
}

#[test]
fn random_bytes_never_panic_and_stay_within_small_limits() {
    let mut rng = XorShift(0x1357_9BDF_2468_ACE0);
    let limits = Limits {
        max_depth: 3,
        max_token_bytes: 16,
    };
    const ALPHABET: &[u8] = b"{}[]\"\",,::\\ 0123456789-.eEtrufalsn\x00\xc3\xa9\xff";
    for _ in 0..DOCS * 10 {
        let len = rng.below(40);
        let doc: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(8) == 0 {
                    rng.next() as u8
                } else {
                    *rng.pick(ALPHABET)
                }
            })
            .collect();
        let a = outcome(&doc, &[1; 40][..len.max(1)], limits, &mut KeepAll);
        let b = outcome(&doc, &[len.max(1)], limits, &mut Edit);
        if let (Ok(x), Ok(_)) = (&a, &b) {
            assert_eq!(x, &doc);
        }
        assert_eq!(a.is_ok(), b.is_ok(), "{:?}", String::from_utf8_lossy(&doc));
    }
    // Generated documents under small limits: same bounds, same outcome
    // whatever the chunking.
    for _ in 0..DOCS {
        let doc = gen_doc(&mut rng);
        let sizes = chunkings(&mut rng, doc.len());
        let first = outcome(&doc, &sizes[0], limits, &mut KeepAll);
        for s in &sizes[1..] {
            assert_eq!(outcome(&doc, s, limits, &mut KeepAll), first);
        }
    }
}

/// A typical API body: `{"total":N,"items":[{...}, ...]}`.
fn api_body(records: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(records * 220);
    out.extend_from_slice(format!("{{\"total\":{records},\"page\":1,\"items\":[").as_bytes());
    for i in 0..records {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(
            format!(
                "{{\"id\":{i},\"name\":\"Zhang San {i}\",\"district\":\"Xuhui\",\"id_number\":\"11010119900307{:04}\",\
                 \"phone\":\"1380013{:04}\",\"active\":true,\"score\":{}.5,\"address\":{{\"city\":\"Shanghai\",\
                 \"street\":\"Caoxi Rd {i}\"}},\"tags\":[\"a\",\"b\"],\"note\":null}}",
                i % 10_000,
                i % 10_000,
                i % 100
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"]}");
    out
}

/// Removes `id_number` and `phone`, masks `name`.
struct ApiPolicy;

impl Visitor for ApiPolicy {
    fn root(&mut self) -> u32 {
        0
    }
    fn member(&mut self, _: u32, key: &str, _: &Path<'_>) -> (Action, u32) {
        match key {
            "id_number" | "phone" => (Action::Remove, 0),
            "name" => (Action::Keep, 1),
            _ => (Action::Keep, 0),
        }
    }
    fn element(&mut self, _: u32, _: u64, _: &Path<'_>) -> u32 {
        0
    }
    fn scalar(&mut self, state: u32, _: ScalarKind, text: &str, _: &Path<'_>) -> Option<Vec<u8>> {
        (state == 1).then(|| {
            let mut out = Vec::with_capacity(text.len() + 2);
            write_json_string(&mut out, "***");
            out
        })
    }
}

fn throughput<V: Visitor>(name: &str, body: &[u8], v: &mut V) {
    const CHUNK: usize = 16 * 1024;
    let rounds = 15;
    let mut out = Vec::with_capacity(CHUNK * 2);
    let mut best = f64::MAX;
    let mut produced = 0;
    for _ in 0..rounds {
        let start = std::time::Instant::now();
        let mut rw = Rewriter::new(Limits::default());
        produced = 0;
        for chunk in body.chunks(CHUNK) {
            out.clear();
            rw.feed(chunk, &mut out, v).expect("valid body");
            produced += out.len();
        }
        rw.finish(&mut out, v).expect("complete body");
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mb = body.len() as f64 / 1e6;
    println!(
        "{name}: {mb:.1} MB in {:.1} ms = {:.0} MB/s (output {produced} bytes)",
        best * 1e3,
        mb / best
    );
}

/// `cargo test --release -p danxia-protocols json_throughput -- --ignored --nocapture`
#[test]
#[ignore = "measurement; run in release mode"]
fn json_throughput() {
    let body = api_body(200_000);
    throughput("keep-all", &body, &mut KeepAll);
    throughput("remove 2 fields + mask 1", &body, &mut ApiPolicy);
    let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&body).expect("valid"))
        .expect("ser");
    throughput("keep-all, pretty-printed", &pretty, &mut KeepAll);
    let start = std::time::Instant::now();
    let v: Value = serde_json::from_slice(&body).expect("valid");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "(serde_json::Value parse for reference: {:.0} MB/s)",
        body.len() as f64 / 1e6 / secs
    );
    drop(v);
    let _ = rewrite(b"1", Limits::default(), &mut KeepAll);
}

/// One keep-all pass over the file named by `DANXIA_JSON_FILE`, in 16 KiB
/// chunks: a fixed workload for `valgrind --tool=callgrind`, whose
/// instruction counts repeat on a noisy machine where timings do not:
/// `DANXIA_JSON_FILE=large.json valgrind --tool=callgrind <test binary>
/// json_file_pass --ignored --exact`.
#[test]
#[ignore = "measurement: needs DANXIA_JSON_FILE"]
fn json_file_pass() {
    let Ok(path) = std::env::var("DANXIA_JSON_FILE") else {
        return;
    };
    let body = std::fs::read(&path).expect("DANXIA_JSON_FILE readable");
    let mut rw = Rewriter::new(Limits::default());
    let mut out = Vec::new();
    for chunk in body.chunks(16 * 1024) {
        out.clear();
        rw.feed(chunk, &mut out, &mut KeepAll).expect("valid JSON");
    }
    out.clear();
    rw.finish(&mut out, &mut KeepAll).expect("complete JSON");
    println!("{} bytes", body.len());
}
