//! Fuzzes the streaming JSON response scanner/rewriter. Invariants: a
//! keep-everything rewrite of an accepted document is the input byte for
//! byte, and feeding the input in two chunks (split where the first byte
//! says) gives the same result as one call. Limits are small so the depth
//! and token-size limits are hit often.
#![no_main]

use danxia_protocols::http::json::{rewrite, KeepAll, Limits, Rewriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, doc)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_depth: 32,
        max_token_bytes: 4096,
    };
    let whole = rewrite(doc, limits, &mut KeepAll);
    if let Ok(out) = &whole {
        assert_eq!(out.as_slice(), doc, "KeepAll is the identity");
    }
    let at = usize::from(split).min(doc.len());
    let mut r = Rewriter::new(limits);
    let mut out = Vec::new();
    let streamed = r
        .feed(&doc[..at], &mut out, &mut KeepAll)
        .and_then(|()| r.feed(&doc[at..], &mut out, &mut KeepAll))
        .and_then(|()| r.finish(&mut out, &mut KeepAll))
        .map(|()| out);
    assert_eq!(whole.is_ok(), streamed.is_ok(), "chunking changes nothing");
    if let (Ok(a), Ok(b)) = (&whole, &streamed) {
        assert_eq!(a, b);
    }
});
