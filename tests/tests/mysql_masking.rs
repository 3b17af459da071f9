//! Sensitive data in MySQL results, end to end: a MariaDB table of synthetic
//! citizens (valid PRC identity numbers and mobile numbers, generated here
//! and checked with the detectors' own validators) read through danxia by a
//! masked identity (`app`) and an unmasked one (root). The unmasked read is
//! byte-identical to a direct read and its audit event counts every
//! identifier; the masked identity sees `keep(6,4)` / `keep(3,4)` in text
//! results (the `mariadb` CLI, mysql-connector-python's COM_QUERY) and in
//! binary results (server-side prepared statements), and by content in
//! aliases and expressions; its events count the masked cells and nothing
//! in the clear.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use danxia_detectors::pii::{is_valid_id_number, is_valid_phone, Counts, Kind, Scanner};
use danxia_e2e::*;
use serde_json::{json, Value};

const ROWS: usize = 200;
const WAIT: Duration = Duration::from_secs(15);

/// The mask rule for the application account on the citizens tables
/// (matched with or without the database qualifier).
const POLICY: &str = r#"
[policy]
default_action = "allow"

[[rule]]
id = "mask-app"
description = "The application account sees citizens' identifiers masked"
action = "mask"
users = ["app"]
tables = ["*danxia_my_cit_*"]
[rule.mask.columns]
id_number = "keep(6,4)"
phone = "keep(3,4)"
[rule.mask.tags]
"pii.id_number" = "keep(6,4)"
"pii.phone" = "keep(3,4)"
"#;

/// A small deterministic generator (xorshift64*): the same rows every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// County-level address codes (GB/T 2260).
const REGIONS: [u32; 8] = [
    110101, 110105, 310104, 310115, 440305, 510107, 330106, 420106,
];
const PHONE_PREFIXES: [&str; 10] = [
    "130", "135", "138", "139", "150", "158", "177", "186", "188", "199",
];
const SURNAMES: [&str; 8] = ["王", "李", "张", "刘", "陈", "杨", "欧阳", "司马"];
const GIVEN: [&str; 8] = ["伟", "芳", "娜", "敏", "静", "强", "磊", "洋"];

/// GB 11643-1999: 17 digits and the ISO 7064 MOD 11-2 check character.
fn id_number(rng: &mut Rng) -> String {
    let region = REGIONS[rng.below(REGIONS.len() as u64) as usize];
    let year = 1950 + rng.below(56);
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28);
    let seq = 1 + rng.below(999);
    let body = format!("{region}{year:04}{month:02}{day:02}{seq:03}");
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

fn phone(rng: &mut Rng) -> String {
    let prefix = PHONE_PREFIXES[rng.below(PHONE_PREFIXES.len() as u64) as usize];
    format!("{prefix}{:08}", rng.below(100_000_000))
}

struct Citizen {
    id: usize,
    name: String,
    id_number: String,
    phone: String,
    note: String,
}

fn citizens() -> Vec<Citizen> {
    let mut rng = Rng(0x00DA_5A1A_2024_0001);
    let scanner = Scanner::all();
    (1..=ROWS)
        .map(|id| {
            let c = Citizen {
                id,
                name: format!(
                    "{}{}",
                    SURNAMES[rng.below(SURNAMES.len() as u64) as usize],
                    GIVEN[rng.below(GIVEN.len() as u64) as usize]
                ),
                id_number: id_number(&mut rng),
                phone: phone(&mut rng),
                note: format!("第{}组 普通备注", id % 7),
            };
            // The fixture keeps its promise, judged by the detectors.
            assert!(is_valid_id_number(&c.id_number), "{}", c.id_number);
            assert!(is_valid_phone(&c.phone), "{}", c.phone);
            for (value, kind) in [(&c.id_number, Kind::IdNumber), (&c.phone, Kind::Phone)] {
                let mut counts = Counts::new();
                scanner.scan(value.as_bytes(), &mut counts);
                assert!(
                    counts.get(kind) == 1 && counts.total() == 1,
                    "{value} is found as one {kind}"
                );
            }
            for value in [&c.name, &c.note] {
                let mut counts = Counts::new();
                scanner.scan(value.as_bytes(), &mut counts);
                assert!(counts.is_empty(), "{value} holds nothing detectable");
            }
            c
        })
        .collect()
}

struct Env {
    d: Danxia,
    table: String,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = run(mariadb_direct("root", None, "test")
            .arg("-e")
            .arg(format!("drop table if exists {}", self.table)));
    }
}

/// Seeds `danxia_my_cit_<tag>`, writes the policy and starts danxia.
fn setup(tag: &str) -> Env {
    ensure_mysql_app_user();
    let table = format!("danxia_my_cit_{tag}");
    let values: Vec<String> = citizens()
        .iter()
        .map(|c| {
            format!(
                "({}, '{}', '{}', '{}', '{}')",
                c.id, c.name, c.id_number, c.phone, c.note
            )
        })
        .collect();
    mariadb_exec(&format!(
        "drop table if exists {table}; \
         create table {table} (id int primary key, name varchar(20), id_number varchar(18), \
         phone varchar(11), note varchar(50)) default charset=utf8mb4; \
         insert into {table} values {}",
        values.join(", ")
    ));
    let dir = tempfile::Builder::new()
        .prefix("danxia-my-mask-")
        .tempdir()
        .expect("tempdir");
    let policy = dir.path().join("policy");
    fs::create_dir(&policy).expect("policy dir");
    fs::write(policy.join("10-masking.toml"), POLICY).expect("policy");
    let d = Danxia::start_with(Options {
        mysql: true,
        extra_toml: format!(
            "[policy]\ndir = {}\nmode = \"enforce\"\nallowlist = {}\n",
            toml_str(&policy.display().to_string()),
            toml_str(&dir.path().join("allowlist.toml").display().to_string()),
        ),
        ..Options::default()
    });
    Env {
        d,
        table,
        _dir: dir,
    }
}

/// Rows of `sql` through the CLI on `port`, fields split on tabs.
fn cli_rows(port: u16, user: &str, password: Option<&str>, sql: &str) -> Vec<Vec<String>> {
    let out = run_ok(
        mariadb(port, user, password, "test")
            .arg("-N")
            .arg("-e")
            .arg(sql),
    );
    out.lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn keep(v: &str, first: usize, last: usize) -> String {
    let chars: Vec<char> = v.chars().collect();
    let n = chars.len();
    if n <= first + last {
        return "*".repeat(n);
    }
    let mut s: String = chars[..first].iter().collect();
    s.push_str(&"*".repeat(n - first - last));
    s.extend(&chars[n - last..]);
    s
}

/// The audit event of the statement whose text contains `marker`.
fn event_for(d: &Danxia, marker: &str) -> Value {
    let pred = |e: &Value| {
        e["kind"] == "statement"
            && e["listener"] == "mysql"
            && e["statement"].as_str().is_some_and(|s| s.contains(marker))
    };
    let events = d.wait_audit(WAIT, pred);
    events.into_iter().find(pred).expect("event")
}

fn sensitive(e: &Value) -> BTreeMap<String, u64> {
    e["sensitive"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Masked rows (id, name, id_number, phone, note as text) must be the
/// direct ones with the identifiers kept 6+4 and 3+4.
fn assert_masked(masked: &[Vec<String>], direct: &[Vec<String>], how: &str) {
    assert_eq!(masked.len(), direct.len(), "{how}: row count");
    for (m, d) in masked.iter().zip(direct) {
        assert_eq!(m[0], d[0], "{how}: id untouched");
        assert_eq!(m[1], d[1], "{how}: name untouched");
        assert_eq!(m[2], keep(&d[2], 6, 4), "{how}: id_number keep(6,4)");
        assert_eq!(m[3], keep(&d[3], 3, 4), "{how}: phone keep(3,4)");
        assert_eq!(m[4], d[4], "{how}: note untouched");
        assert_ne!(m[2], d[2], "{how}: the identity number is not in the clear");
    }
}

#[test]
fn mysql_unmasked_reads_are_identical_and_counted() {
    let env = setup("plain");
    let sql = format!(
        "select id, name, id_number, phone, note from {} order by id /* plain-read */",
        env.table
    );
    let direct = cli_rows(MYSQL_DIRECT_PORT, "root", None, &sql);
    assert_eq!(direct.len(), ROWS);
    let through = cli_rows(env.d.mysql_port, "root", None, &sql);
    assert_eq!(through, direct, "root reads exactly what the server sent");

    let e = event_for(&env.d, "plain-read");
    let counts = sensitive(&e);
    assert_eq!(counts.get("pii.id_number"), Some(&(ROWS as u64)), "{e}");
    assert_eq!(counts.get("pii.phone"), Some(&(ROWS as u64)), "{e}");
    assert_eq!(e["scanned_rows"], ROWS as u64, "{e}");
    assert_eq!(e["rows"], ROWS as u64, "{e}");
    assert!(e.get("masked").is_none(), "nothing masked for root: {e}");
    let m = env.d.metrics();
    assert!(
        metric_sum(
            &m,
            "danxia_sensitive_values_total",
            &[("listener", "mysql"), ("tag", "pii.id_number")]
        )
        .unwrap_or(0.0)
            >= ROWS as f64,
        "{m}"
    );
}

#[test]
fn mysql_masked_in_text_results() {
    let env = setup("text");
    let sql = format!(
        "select id, name, id_number, phone, note from {} order by id",
        env.table
    );
    let direct = cli_rows(MYSQL_DIRECT_PORT, "root", None, &sql);
    let masked = cli_rows(
        env.d.mysql_port,
        MYSQL_APP_USER,
        Some(MYSQL_APP_PASSWORD),
        &format!("{sql} /* app-text-read */"),
    );
    assert_masked(&masked, &direct, "mariadb CLI");

    let e = event_for(&env.d, "app-text-read");
    assert_eq!(
        e["masked"],
        (ROWS * 2) as u64,
        "two masked cells a row: {e}"
    );
    assert_eq!(sensitive(&e), BTreeMap::new(), "nothing in the clear: {e}");
    assert_eq!(e["user"], MYSQL_APP_USER, "{e}");
    let rules: Vec<&str> = e["mask_rules"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(rules, ["mask-app"], "{e}");
    assert!(
        env.d
            .metric("danxia_masked_values_total", &[("listener", "mysql")])
            >= (ROWS * 2) as f64
    );

    // By content: an alias and expressions holding the values.
    let expr = format!(
        "select id_number as x, concat(phone, '') as p, concat('ID ', id_number) as label from {} order by id limit 20",
        env.table
    );
    let direct = cli_rows(MYSQL_DIRECT_PORT, "root", None, &expr);
    let masked = cli_rows(
        env.d.mysql_port,
        MYSQL_APP_USER,
        Some(MYSQL_APP_PASSWORD),
        &expr,
    );
    assert_eq!(masked.len(), 20);
    for (m, d) in masked.iter().zip(&direct) {
        assert_eq!(m[0], keep(&d[0], 6, 4), "alias of id_number masked");
        assert_eq!(
            m[1],
            keep(&d[1], 3, 4),
            "phone expression masked by content"
        );
        assert_eq!(
            m[2],
            keep(&d[2], 6, 4),
            "a value holding an identity number is masked whole"
        );
    }
}

#[test]
fn mysql_masked_in_binary_results_of_prepared_statements() {
    let env = setup("binary");
    let t = &env.table;
    let sql = format!("select id, name, id_number, phone, note from {t} where id <= ? order by id");
    let direct = cli_rows(
        MYSQL_DIRECT_PORT,
        "root",
        None,
        &sql.replace('?', &ROWS.to_string()),
    );
    let steps = json!([
        {"op": "prepared", "label": "binary", "sql": sql, "params": [ROWS]},
        {"op": "prepared", "label": "binary again", "sql": sql, "params": [5]},
        {"op": "query", "label": "text", "sql": format!("select id, name, id_number, phone, note from {t} where id <= 5 order by id")},
    ]);
    let run = MysqlConn::app("connector-pure", env.d.mysql_port)
        .with(&["--autocommit", "on"])
        .steps(&steps);
    let as_text = |label: &str| -> Vec<Vec<String>> {
        run.step(label)["results"][0]["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("{label}: {}", run.step(label)))
            .iter()
            .map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .collect()
    };
    assert_masked(&as_text("binary"), &direct, "binary protocol");
    assert_masked(
        &as_text("binary again"),
        &direct[..5],
        "binary protocol, re-executed",
    );
    assert_masked(&as_text("text"), &direct[..5], "connector text protocol");

    let events = env.d.wait_audit_count(WAIT, 3, |e| {
        e["kind"] == "statement"
            && e["listener"] == "mysql"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.contains(t.as_str()) && s.contains("id <="))
    });
    let prepared: Vec<&Value> = events
        .iter()
        .filter(|e| e["protocol_flow"] == "prepared")
        .collect();
    assert_eq!(prepared.len(), 2, "{events:?}");
    assert_eq!(prepared[0]["masked"], (ROWS * 2) as u64, "{}", prepared[0]);
    assert_eq!(prepared[1]["masked"], 10, "{}", prepared[1]);
    for e in &events {
        assert_eq!(sensitive(e), BTreeMap::new(), "nothing in the clear: {e}");
        assert!(
            e["mask_rules"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r == "mask-app")),
            "{e}"
        );
    }
}
