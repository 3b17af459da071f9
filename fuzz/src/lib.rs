//! Shared bodies of the cargo-fuzz targets in `fuzz_targets/`: each target
//! is one line calling a function here, so invariants are written once.
//!
//! Every function must hold for any input: no panic, no hang, memory
//! bounded by the parsers' own limits (run.sh sets `-rss_limit_mb`), plus
//! the cheap invariants noted on each.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use danxia_detectors::{
    analyze, fingerprint_with_values, normalize, split_statements, Dialect, LexOptions, Lexer,
};
use danxia_policies::api::{ApiLoadOptions, ApiPolicy};
use danxia_policies::LoadOptions;
use danxia_protocols::mysql::fuzz::{Hits, XorShift};

/// A generator seeded from the input, for the MySQL checks that pick
/// column types and limits at random (same input, same choices).
pub fn rng_for(data: &[u8]) -> XorShift {
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for chunk in data.chunks(8).take(4) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        seed ^= u64::from_le_bytes(b);
        seed = seed.rotate_left(17).wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    XorShift(seed | 1)
}

/// A fresh hit counter (the fuzz targets ignore the counts).
pub fn hits() -> Hits {
    Hits::new()
}

/// Everything the proxy runs on a client statement, in one dialect and
/// session mode chosen by the first byte: facts (sqlparser + our AST
/// walkers), split, lexer, fingerprint. Invariants: the lexer's tokens are
/// in order and inside the input; split pieces are slices of the input;
/// normalizing is idempotent on what the lexer already normalized.
pub fn sql(data: &[u8], dialect: Dialect) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut opts = LexOptions::for_dialect(dialect);
    opts.standard_conforming_strings = mode & 1 == 0;
    opts.no_backslash_escapes = mode & 2 != 0;
    opts.ansi_quotes = mode & 4 != 0;

    let mut end = 0;
    for token in Lexer::new(text, opts) {
        assert!(token.start >= end, "tokens go forward");
        end = token.end();
        assert!(end <= text.len(), "token inside the input");
        assert_eq!(&text[token.start..end], token.text);
    }
    for piece in split_statements(text, opts) {
        let start = piece.as_ptr() as usize - text.as_ptr() as usize;
        assert!(
            start + piece.len() <= text.len(),
            "piece is a slice of the input"
        );
    }
    let facts = analyze(text, opts);
    for f in &facts {
        let _ = (f.touches_table("users"), f.calls_function("pg_sleep"));
    }
    let (fp, normalized, _) = fingerprint_with_values(text, opts);
    let _ = fp;
    let _ = normalize(&normalized, opts);
}

/// A directory under the temp dir private to this fuzzing process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("danxia-fuzz-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Splits a fuzz input into the texts of `n` files at `\n#---\n` lines.
fn files(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    while out.len() + 1 < n {
        match rest.windows(6).position(|w| w == b"\n#---\n") {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + 6..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// Loads a database policy: rule files, then a classification file, then
/// an allowlist (`\n#---\n` between them). Loading must end in a policy or
/// diagnostics; a loaded policy also passes `check`.
pub fn policy_rules(data: &[u8]) {
    let root = scratch("rules");
    let dir = root.join("rules.d");
    std::fs::create_dir_all(&dir).expect("rules dir");
    let parts = files(data, 4);
    for (i, part) in parts.iter().take(2).enumerate() {
        std::fs::write(dir.join(format!("{i}0-fuzz.toml")), part).expect("write rules");
    }
    let classification = parts.get(2).map(|p| {
        let path = root.join("classification.toml");
        std::fs::write(&path, p).expect("write classification");
        path
    });
    let allowlist = parts.get(3).map(|p| {
        let path = root.join("allowlist.toml");
        std::fs::write(&path, p).expect("write allowlist");
        path
    });
    let opts = LoadOptions {
        dir,
        classification,
        allowlist,
        mask_key: Some(std::sync::Arc::from(&b"fuzz mask key"[..])),
    };
    if let Ok(policy) = danxia_policies::Policy::load(&opts) {
        let _ = policy.rule_count();
        let diags = danxia_policies::check(&opts);
        assert!(
            diags
                .iter()
                .all(|d| d.severity != danxia_policies::Severity::Error),
            "a loaded policy checks without errors"
        );
    }
}

/// Loads an API scope policy from up to three files; when it loads, routes
/// a request built from the input's first line. The text is also fed to
/// the OpenAPI importer (YAML or JSON).
pub fn policy_api(data: &[u8]) {
    let dir = scratch("api");
    for (i, part) in files(data, 3).iter().enumerate() {
        std::fs::write(dir.join(format!("{i}0-fuzz.toml")), part).expect("write scope");
    }
    let opts = ApiLoadOptions {
        dir,
        mask_key: Some(std::sync::Arc::from(&b"fuzz mask key"[..])),
    };
    if let Ok(policy) = ApiPolicy::load(&opts) {
        let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
        route_one(&policy, line);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(scope) = danxia_policies::api::import_openapi(text, "fuzz.yaml") {
            assert!(!scope.is_empty());
        }
    }
}

fn route_one(policy: &ApiPolicy, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let (method, path) = text.split_once(' ').unwrap_or(("GET", &text));
    if let Some(m) = policy.route(method, path) {
        for (name, _) in &m.params {
            assert!(m.param(name).is_some());
        }
    }
}

/// Routes `METHOD path` lines against the shipped example API pack (loaded
/// once): path matching, percent-decoding, parameters.
pub fn api_route(data: &[u8]) {
    static PACK: OnceLock<ApiPolicy> = OnceLock::new();
    let policy = PACK.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/packs/api-example");
        ApiPolicy::load(&ApiLoadOptions {
            dir,
            mask_key: Some(std::sync::Arc::from(&b"fuzz mask key"[..])),
        })
        .expect("the shipped api-example pack loads")
    });
    for line in data.split(|&b| b == b'\n') {
        route_one(policy, line);
    }
}
