//! A refusal must behave exactly like a statement the server itself
//! rejects at parse time. This test generates random programs — simple
//! queries (single and multi-statement), extended-protocol batches with
//! named and unnamed statements, Describe, pipelined batches, explicit
//! transactions with commits and rollbacks — in which some statements are
//! denied by the policy. It runs each program through danxia, and directly
//! against PostgreSQL with every denied statement replaced by a syntax
//! error, and requires the same answers message for message (types,
//! ReadyForQuery status, command tags), SQLSTATE 42501 through danxia
//! exactly where the server reported a parse-time error, and the same
//! table contents at the end.

use std::fmt::Write as _;

use danxia_e2e::wire::{self, Msg, RawSession};
use danxia_e2e::*;

const ADMIN: &str = "postgres";
const DB: &str = "test";
const SEEDS: u64 = 40;
const UNITS: usize = 25;

const POLICY: &str = r#"
[[rule]]
id = "deny-secret"
description = "The secret table is off limits"
action = "deny"
tables = ["danxia_pdiff_secret"]
"#;

/// What the direct run sends instead of a denied statement: fails in the
/// server's raw parser, like danxia's stand-in.
const SYNTAX_ERROR: &str = "selec 1 from danxia_pdiff_secret";

/// xorshift64*: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One step of a program; `table` is filled in per run.
#[derive(Debug, Clone)]
enum Step {
    /// Simple Query of these statements (denied ones marked true).
    Query(Vec<(String, bool)>),
    /// Extended-protocol messages ending in Sync.
    Batch(Vec<Ext>),
}

#[derive(Debug, Clone)]
enum Ext {
    Parse {
        name: String,
        sql: String,
        denied: bool,
    },
    Bind {
        name: String,
        param: Option<String>,
    },
    Describe {
        name: String,
    },
    Execute,
}

struct Gen {
    rng: Rng,
    next_id: u64,
    /// Named statements parsed so far: (name, takes a parameter).
    named: Vec<(String, bool)>,
    next_name: u32,
}

impl Gen {
    fn insert(&mut self) -> String {
        self.next_id += 1;
        format!("insert into {{T}} values ({})", self.next_id)
    }

    fn statement(&mut self) -> (String, bool) {
        match self.rng.below(10) {
            0..=2 => ("select * from danxia_pdiff_secret".into(), true),
            3..=6 => (self.insert(), false),
            7 => ("select count(*) from {T}".into(), false),
            8 => (
                [
                    "begin",
                    "commit",
                    "rollback",
                    "savepoint s",
                    "rollback to savepoint s",
                ][self.rng.below(5) as usize]
                    .into(),
                false,
            ),
            _ => (
                format!("update {{T}} set id = id where id = {}", self.rng.below(50)),
                false,
            ),
        }
    }

    fn step(&mut self) -> Step {
        if self.rng.below(3) == 0 {
            let n = 1 + self.rng.below(3) as usize;
            return Step::Query((0..n).map(|_| self.statement()).collect());
        }
        let mut ext = Vec::new();
        for _ in 0..1 + self.rng.below(3) {
            match self.rng.below(4) {
                // A new statement, parsed and run at once (named or not).
                0 | 1 => {
                    let (sql, denied) = if self.rng.below(3) == 0 {
                        (
                            "select * from danxia_pdiff_secret where 1 = $1".to_string(),
                            true,
                        )
                    } else {
                        self.next_id += 1;
                        ("insert into {T} values ($1)".to_string(), false)
                    };
                    let name = if self.rng.below(2) == 0 {
                        String::new()
                    } else {
                        self.next_name += 1;
                        let n = format!("s{}", self.next_name);
                        self.named.push((n.clone(), true));
                        n
                    };
                    let param = Some(self.next_id.to_string());
                    ext.push(Ext::Parse {
                        name: name.clone(),
                        sql,
                        denied,
                    });
                    if self.rng.below(4) == 0 {
                        ext.push(Ext::Describe { name: name.clone() });
                    }
                    ext.push(Ext::Bind { name, param });
                    ext.push(Ext::Execute);
                }
                // Reuse a named statement from an earlier batch (refused or
                // not), or one that never existed.
                2 if !self.named.is_empty() => {
                    let i = self.rng.below(self.named.len() as u64) as usize;
                    let name = self.named[i].0.clone();
                    self.next_id += 1;
                    if self.rng.below(3) == 0 {
                        ext.push(Ext::Describe { name: name.clone() });
                    }
                    ext.push(Ext::Bind {
                        name,
                        param: Some(self.next_id.to_string()),
                    });
                    ext.push(Ext::Execute);
                }
                _ => {
                    let sql = if self.rng.below(2) == 0 {
                        "select 1".to_string()
                    } else {
                        "select * from danxia_pdiff_secret".to_string()
                    };
                    let denied = sql.contains("secret");
                    ext.push(Ext::Parse {
                        name: String::new(),
                        sql,
                        denied,
                    });
                    ext.push(Ext::Bind {
                        name: String::new(),
                        param: None,
                    });
                    ext.push(Ext::Execute);
                }
            }
        }
        Step::Batch(ext)
    }
}

/// Sends `steps` (with `{T}` = `table`; denied statements replaced by a
/// syntax error when `direct`), pipelining every batch of a step run of
/// batches, and returns the answers as one line per message.
fn run_program(port: u16, user: &str, table: &str, steps: &[Step], direct: bool) -> Vec<String> {
    let mut s = RawSession::connect(port, user, DB).expect("connect");
    let text = |sql: &str, denied: bool| {
        if denied && direct {
            SYNTAX_ERROR.to_string()
        } else {
            sql.replace("{T}", table)
        }
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        // Pipeline consecutive batches: send them all, then read each.
        let mut bytes = Vec::new();
        let mut expected_ready = 0;
        while i < steps.len() {
            match &steps[i] {
                Step::Query(stmts) => {
                    if expected_ready > 0 {
                        break;
                    }
                    let sql: Vec<String> = stmts.iter().map(|(q, d)| text(q, *d)).collect();
                    bytes.extend(wire::query(&sql.join("; ")));
                    expected_ready = 1;
                    i += 1;
                    break;
                }
                Step::Batch(ext) => {
                    for m in ext {
                        match m {
                            Ext::Parse { name, sql, denied } => {
                                bytes.extend(wire::parse(name, &text(sql, *denied)))
                            }
                            Ext::Bind { name, param } => {
                                let p: Vec<Option<&str>> =
                                    param.iter().map(|x| Some(x.as_str())).collect();
                                bytes.extend(wire::bind("", name, &p));
                            }
                            Ext::Describe { name } => bytes.extend(wire::describe(b'S', name)),
                            Ext::Execute => bytes.extend(wire::execute("", 0)),
                        }
                    }
                    bytes.extend(wire::sync());
                    expected_ready += 1;
                    i += 1;
                }
            }
        }
        s.send(&bytes).expect("send");
        for _ in 0..expected_ready {
            let msgs = s.read_until_ready().expect("answers");
            out.extend(msgs.iter().map(describe));
        }
    }
    s.terminate();
    out
}

/// A message as compared: its type, plus what must match.
fn describe(m: &Msg) -> String {
    match m.tag_char() {
        'E' => {
            let code = m.sqlstate().unwrap_or_default();
            // Where danxia refused, the server reported an error of its own
            // parsing or name lookup (syntax error, no such statement or
            // portal, or the aborted-transaction error that precedes them).
            let kind = match code.as_str() {
                "42501" | "42601" | "26000" | "34000" => "parse-time".to_string(),
                other => other.to_string(),
            };
            format!("E {kind}")
        }
        'Z' => format!("Z {}", m.body.first().map_or('?', |b| *b as char)),
        'C' => format!("C {}", m.command_tag()),
        // Row descriptions and data rows differ in nothing the policy
        // touches; compare their presence.
        c => c.to_string(),
    }
}

fn ids(table: &str) -> String {
    run_ok(psql_direct(ADMIN, DB).args(["-At", "-c"]).arg(format!(
        "select coalesce(string_agg(id::text, ',' order by id), '') from {table}"
    )))
    .trim()
    .to_string()
}

#[test]
fn refusals_behave_like_server_side_parse_errors() {
    ensure_app_role();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("10-test.toml"), POLICY).expect("policy");
    let d = Danxia::start_with(Options {
        extra_toml: format!(
            "[policy]\ndir = {}\nallowlist = {}\n",
            toml_str(&dir.path().display().to_string()),
            toml_str(&dir.path().join("a.toml").display().to_string())
        ),
        ..Options::default()
    });
    let (tp, td) = ("danxia_pdiff_proxy", "danxia_pdiff_direct");
    let mut failures = String::new();
    for seed in 1..=SEEDS {
        run_ok(psql_direct(ADMIN, DB).arg("-q").arg("-c").arg(format!(
            "drop table if exists {tp}, {td}, danxia_pdiff_secret;\
             create table {tp}(id int); create table {td}(id int);\
             create table danxia_pdiff_secret(id int);\
             grant all on {tp}, {td}, danxia_pdiff_secret to {APP_USER};"
        )));
        let mut g = Gen {
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            next_id: 0,
            named: Vec::new(),
            next_name: 0,
        };
        let steps: Vec<Step> = (0..UNITS).map(|_| g.step()).collect();
        let through = run_program(d.pg_port, APP_USER, tp, &steps, false);
        let direct = run_program(DIRECT_PORT, APP_USER, td, &steps, true);
        if through != direct {
            let _ = writeln!(
                failures,
                "seed {seed}: answers differ\nprogram: {steps:#?}\nthrough danxia: {through:?}\ndirect:         {direct:?}\n"
            );
        } else if ids(tp) != ids(td) {
            let _ = writeln!(
                failures,
                "seed {seed}: table contents differ: danxia {:?} direct {:?}\nprogram: {steps:#?}",
                ids(tp),
                ids(td)
            );
        }
        if failures.len() > 20_000 {
            break;
        }
    }
    let _ = run(psql_direct(ADMIN, DB).arg("-c").arg(format!(
        "drop table if exists {tp}, {td}, danxia_pdiff_secret"
    )));
    assert!(failures.is_empty(), "{failures}");
    // The programs did exercise refusals.
    assert!(
        d.metric("danxia_policy_decisions_total", &[("verdict", "denied")]) >= SEEDS as f64,
        "too few refusals generated"
    );
}
