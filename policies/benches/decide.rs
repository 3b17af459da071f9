//! Policy evaluation cost: a generated 1,000-rule policy (identity lists,
//! tables, operations, conditions, functions, addresses; deny and alert),
//! with a request that no rule matches until the last one. `decide` is the
//! cached path (the same request repeatedly), `evaluate` the uncached walk
//! over every rule.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion};
use danxia_detectors::{Fingerprint, Operation, StatementFacts};
use danxia_policies::{Identity, LoadOptions, Mode, Policy, Request};

const RULES: usize = 1000;

fn policy_text() -> String {
    let mut out = String::from(
        "[policy]\ndefault_action = \"allow\"\nunparsed_action = \"deny\"\n\n[groups]\nadmins = [\"postgres\", \"dba_*\"]\n\n",
    );
    for i in 0..RULES - 1 {
        let (action, keys) = match i % 6 {
            0 => ("deny", format!("users = [\"u{i}\", \"dba{i}_*\"]\ntables = [\"s{i}.t{i}\"]")),
            1 => ("alert", format!("operations = [\"delete\", \"update\"]\ntables = [\"t{i}*\"]")),
            2 => ("deny", format!("conditions = [\"unbounded_write\", \"injection\"]\ndatabases = [\"db{i}\"]")),
            3 => ("alert", format!("tables = [\"hr{i}.*\", \"x{i}\"]\ncolumns = [\"c{i}\"]")),
            4 => (
                "deny",
                format!(
                    "functions = [\"f{i}_*\"]\napplications = [\"app{i}\"]\naddresses = [\"10.{}.0.0/16\"]",
                    i % 256
                ),
            ),
            _ => ("deny", format!("users = [\"!@admins\"]\ntables = [\"public.secret_{i}\", \"*.vault{i}\"]")),
        };
        out.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\ndescription = \"generated rule {i}\"\naction = \"{action}\"\n{keys}\n\n"
        ));
    }
    out.push_str(
        "[[rule]]\nid = \"last\"\ndescription = \"the one that matches\"\naction = \"deny\"\nusers = [\"app\"]\ntables = [\"public.orders\"]\n",
    );
    out
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.toml"), policy_text()).expect("write");
    let policy = Policy::load(&LoadOptions {
        dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.rule_count(), RULES);

    let identity = Identity::new(
        Arc::from("pg"),
        Arc::from("app"),
        Arc::from("shop"),
        Arc::from("shop-api"),
        Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20))),
    );
    let facts = StatementFacts {
        operation: Operation::Select,
        tables: vec!["public.orders".into(), "customers".into()],
        functions: vec!["lower".into()],
        columns: vec!["id".into(), "name".into(), "total".into()],
        fingerprint: Fingerprint(0x1234_5678_9abc_def0),
        limited: true,
        ..Default::default()
    };
    let req = Request {
        identity: &identity,
        facts: &facts,
        stacked: false,
        mode: Mode::Enforce,
        now: SystemTime::now(),
    };
    let d = policy.evaluate(&req);
    assert_eq!(&*d.rule_id, "last");

    c.bench_function("decide_cached_1000_rules", |b| {
        b.iter(|| black_box(policy.decide(black_box(&req))))
    });
    c.bench_function("evaluate_uncached_1000_rules", |b| {
        b.iter(|| black_box(policy.evaluate(black_box(&req))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
