//! Costs of the two analysis speeds on pgbench's tpcb-like statements:
//! `normalize`/`fingerprint` run on every statement (target ≤ 2 µs for
//! ~100 bytes), `analyze` runs once per statement shape (sqlparser: 8–30 µs).
//! Run: `cargo bench -p danxia-detectors --bench analyze`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use danxia_detectors::{analyze, fingerprint, normalize, split_statements, LexOptions};

/// pgbench's built-in scripts (`-S` select-only, and tpcb-like).
const STATEMENTS: &[(&str, &str)] = &[
    ("select", "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"),
    (
        "update",
        "UPDATE pgbench_accounts SET abalance = abalance + -4037 WHERE aid = 48213;",
    ),
    (
        "insert",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 48213, -4037, CURRENT_TIMESTAMP);",
    ),
];

/// A whole tpcb-like transaction sent as one simple-protocol Query.
const TPCB_SCRIPT: &str = "BEGIN; \
    UPDATE pgbench_accounts SET abalance = abalance + -4037 WHERE aid = 48213; \
    SELECT abalance FROM pgbench_accounts WHERE aid = 48213; \
    UPDATE pgbench_tellers SET tbalance = tbalance + -4037 WHERE tid = 7; \
    UPDATE pgbench_branches SET bbalance = bbalance + -4037 WHERE bid = 1; \
    INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 48213, -4037, CURRENT_TIMESTAMP); \
    END;";

fn bench(c: &mut Criterion) {
    let opts = LexOptions::default();
    for (name, sql) in STATEMENTS {
        c.bench_function(&format!("normalize/{name}"), |b| {
            b.iter(|| normalize(black_box(sql), opts))
        });
        c.bench_function(&format!("fingerprint/{name}"), |b| {
            b.iter(|| fingerprint(black_box(sql), opts))
        });
        c.bench_function(&format!("analyze/{name}"), |b| {
            b.iter(|| analyze(black_box(sql), opts))
        });
    }
    c.bench_function("split/tpcb_script", |b| {
        b.iter(|| split_statements(black_box(TPCB_SCRIPT), opts))
    });
    c.bench_function("analyze/tpcb_script", |b| {
        b.iter(|| analyze(black_box(TPCB_SCRIPT), opts))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
