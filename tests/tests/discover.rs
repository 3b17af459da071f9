//! `danxia discover` as a DBA runs it: against the real PostgreSQL and
//! MariaDB, over tables seeded with generated (valid, fictitious) ID
//! numbers, mobile numbers and bank cards. Checks what lands in the
//! classification file, that a re-run keeps the team's hand edits and
//! refreshes the evidence, and the exit codes of the failures an operator
//! meets (unreachable server, bad DSN, a broken classification file).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use danxia_e2e::*;

const PG_DSN: &str = "postgres://postgres@127.0.0.1:5432/test";
const MARIADB_DSN: &str = "mysql://root@127.0.0.1:3306/test";

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// xorshift64*: deterministic test data without a dependency.
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

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// A GB 11643-1999 identity number: region, birth date, sequence, and the
/// ISO 7064 MOD 11-2 check character.
fn id_number(rng: &mut Rng) -> String {
    let region = rng.pick(&["110105", "310104", "440305", "510107", "330106"]);
    let body = format!(
        "{region}{}{:02}{:02}{}",
        1950 + rng.below(55),
        1 + rng.below(12),
        1 + rng.below(28),
        rng.digits(3)
    );
    format!("{body}{}", id_check(&body))
}

fn id_check(body: &str) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    char::from(b"10X98765432"[(sum % 11) as usize])
}

/// A mainland mobile number: `1[3-9]` and nine digits.
fn mobile(rng: &mut Rng) -> String {
    format!("1{}{}", 3 + rng.below(7), rng.digits(9))
}

/// A UnionPay card number (`62…`) of `len` digits with its Luhn digit.
fn bank_card(rng: &mut Rng, len: usize) -> String {
    let body = format!("62{}", rng.digits(len - 3));
    format!("{body}{}", luhn_check(&body))
}

fn luhn_check(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Free text with nothing sensitive in it.
fn note(rng: &mut Rng) -> String {
    const WORDS: &[&str] = &[
        "delivered",
        "pending",
        "call back",
        "on holiday",
        "prefers",
        "mornings",
        "paid",
        "invoice",
        "refund",
        "closed",
        "reopened",
        "VIP",
        "new",
        "address changed",
        "ok",
    ];
    (0..1 + rng.below(6))
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

fn person_name(rng: &mut Rng) -> String {
    const FAMILY: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "赵", "黄"];
    const GIVEN: &[&str] = &["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊"];
    format!("{}{}", rng.pick(FAMILY), rng.pick(GIVEN))
}

#[test]
fn generators_produce_valid_values() {
    assert_eq!(id_check("11010519491231002"), 'X');
    assert_eq!(luhn_check("7992739871"), '3');
    let mut rng = Rng(7);
    for _ in 0..100 {
        let id = id_number(&mut rng);
        assert_eq!(id.len(), 18);
        let phone = mobile(&mut rng);
        assert!(phone.len() == 11 && (b'3'..=b'9').contains(&phone.as_bytes()[1]));
        let card = bank_card(&mut rng, 19);
        assert_eq!(card.len(), 19);
    }
}

/// `danxia discover ARGS`.
fn discover(args: &[&str]) -> Output {
    run(Command::new(bin_path()).arg("discover").args(args))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `discover` that must exit 0; returns (stdout, stderr).
fn discover_ok(args: &[&str]) -> (String, String) {
    let out = discover(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "danxia discover {args:?} failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// A classification file's `[[column]]` entries by (table, column).
fn entries(text: &str) -> BTreeMap<(String, String), toml::Table> {
    let doc: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"));
    let columns = match doc.get("column") {
        Some(toml::Value::Array(a)) => a.clone(),
        None => Vec::new(),
        Some(other) => panic!("`column` is not an array of tables: {other:?}"),
    };
    columns
        .into_iter()
        .map(|c| {
            let t = match c {
                toml::Value::Table(t) => t,
                other => panic!("a [[column]] that is not a table: {other:?}"),
            };
            let key = |k: &str| t[k].as_str().unwrap_or_default().to_string();
            ((key("table"), key("column")), t)
        })
        .collect()
}

/// What one entry says: tags, level, and evidence (hits, sampled,
/// name_match).
#[derive(Debug, PartialEq)]
struct Entry {
    tags: Vec<String>,
    level: Option<i64>,
    hits: i64,
    sampled: i64,
    name_match: Option<String>,
}

fn entry(all: &BTreeMap<(String, String), toml::Table>, table: &str, column: &str) -> Entry {
    let t = all
        .get(&(table.to_string(), column.to_string()))
        .unwrap_or_else(|| panic!("no entry for {table} {column}; entries: {:?}", all.keys()));
    let ev = t["evidence"].as_table().expect("evidence is a table");
    Entry {
        tags: t["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        level: t.get("level").and_then(toml::Value::as_integer),
        hits: ev["hits"].as_integer().expect("hits"),
        sampled: ev["sampled"].as_integer().expect("sampled"),
        name_match: ev
            .get("name_match")
            .and_then(toml::Value::as_str)
            .map(str::to_string),
    }
}

fn want(tags: &[&str], level: i64, hits: i64, sampled: i64, name: Option<&str>) -> Entry {
    Entry {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        level: Some(level),
        hits,
        sampled,
        name_match: name.map(str::to_string),
    }
}

/// Replaces `from` with `to` inside the `[[column]]` block for `column`
/// (a hand edit); panics if it is not there.
fn edit_entry(text: &str, column: &str, from: &str, to: &str) -> String {
    let marker = format!("column = \"{column}\"\n");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no entry for column {column} in\n{text}"));
    let end = text[start..]
        .find("[[column]]")
        .map_or(text.len(), |i| start + i);
    let block = &text[start..end];
    assert!(
        block.contains(from),
        "{from:?} not in the {column} entry:\n{block}"
    );
    format!(
        "{}{}{}",
        &text[..start],
        block.replacen(from, to, 1),
        &text[end..]
    )
}

/// Drops the test's PostgreSQL schema, even when the test fails.
struct PgSchema(String);

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = run(psql_direct("postgres", "test")
            .arg("-q")
            .arg("-c")
            .arg(format!("drop schema if exists {} cascade", self.0)));
    }
}

fn pg_citizens_rows(schema: &str, rng: &mut Rng, from: u32, to: u32) -> String {
    let mut sql = format!(
        "insert into {schema}.citizens (id, sfzh, mobile, sjhm, payload, xm, note) values\n"
    );
    let rows: Vec<String> = (from..to)
        .map(|i| {
            // Every fourth row has no sjhm: NULLs are not sampled values.
            let sjhm = if i % 4 == 0 {
                "null".to_string()
            } else {
                format!("'{}'", mobile(rng))
            };
            format!(
                "({i}, '{}', '{}', {sjhm}, '{}', '{}', '{}')",
                id_number(rng),
                mobile(rng),
                bank_card(rng, if i % 2 == 0 { 16 } else { 19 }),
                person_name(rng),
                note(rng)
            )
        })
        .collect();
    sql.push_str(&rows.join(",\n"));
    sql
}

#[test]
fn postgres_classifies_and_keeps_hand_edits() {
    require_postgres();
    let schema = unique("dx_discover");
    let _guard = PgSchema(schema.clone());
    let mut rng = Rng(0x5eed_1234);
    let setup = format!(
        "create schema {schema};\n\
         create table {schema}.citizens (id int primary key, sfzh text, mobile text, \
         sjhm text, payload text, xm text, note text);\n\
         {};\n\
         create view {schema}.broken as select 1 / 0 as sjhm;",
        pg_citizens_rows(&schema, &mut rng, 0, 40)
    );
    run_ok(
        psql_direct("postgres", "test")
            .arg("-q")
            .arg("-c")
            .arg(setup),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("classification.toml");
    let out_s = out.to_str().expect("UTF-8 path");
    let args = ["--dsn", PG_DSN, "--schema", &schema, "--out", out_s];
    let (stdout, stderr) = discover_ok(&args);
    assert!(
        stdout.is_empty(),
        "with --out nothing goes to stdout: {stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "warning: cannot sample {schema}.broken: division by zero"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "1 table(s) scanned, 1 skipped, 5 column(s) classified; \
             5 added, 0 evidence updated, 0 kept as edited, 0 not seen"
        ),
        "{stderr}"
    );

    let first = fs::read_to_string(&out).expect("classification file");
    let all = entries(&first);
    let table = format!("{schema}.citizens");
    let expected = [
        ("sfzh", want(&["pii.id_number"], 2, 40, 40, Some("sfzh"))),
        ("mobile", want(&["pii.phone"], 2, 40, 40, Some("mobile"))),
        ("sjhm", want(&["pii.phone"], 2, 30, 30, Some("sjhm"))),
        ("payload", want(&["finance.bank_card"], 2, 40, 40, None)),
        ("xm", want(&["pii.name"], 1, 0, 40, Some("xm"))),
    ];
    for (column, e) in &expected {
        assert_eq!(&entry(&all, &table, column), e, "{column}\n{first}");
    }
    assert_eq!(all.len(), expected.len(), "only those columns:\n{first}");
    assert!(
        !all.contains_key(&(table.clone(), "note".into())),
        "{first}"
    );

    // The team reviews the file: the ID column is part of a register
    // (level 4, an extra tag), the card column is a false positive, and
    // someone scribbled over the phone column's evidence.
    let edited = format!("# Reviewed by the DPO.\n{first}");
    let edited = edit_entry(
        &edited,
        "sfzh",
        "tags = [\"pii.id_number\"]\nlevel = 2",
        "tags = [\"pii.id_number\", \"gov.register.id\"]  # register\nlevel = 4",
    );
    let edited = edit_entry(
        &edited,
        "payload",
        "tags = [\"finance.bank_card\"]",
        "tags = []",
    );
    let edited = edit_entry(
        &edited,
        "mobile",
        "evidence = { hits = 40, sampled = 40, name_match = \"mobile\" }",
        "evidence = { hits = 1, sampled = 1 }",
    );
    fs::write(&out, &edited).expect("write the edited file");

    // More rows since the last run: the evidence must follow.
    run_ok(
        psql_direct("postgres", "test")
            .arg("-q")
            .arg("-c")
            .arg(pg_citizens_rows(&schema, &mut rng, 40, 50)),
    );
    let (_, stderr) = discover_ok(&args);
    assert!(
        stderr.contains(
            "1 table(s) scanned, 1 skipped, 5 column(s) classified; \
             0 added, 5 evidence updated, 2 kept as edited, 0 not seen"
        ),
        "{stderr}"
    );
    let second = fs::read_to_string(&out).expect("classification file");
    assert!(second.starts_with("# Reviewed by the DPO.\n"), "{second}");
    assert!(
        second.contains("tags = [\"pii.id_number\", \"gov.register.id\"]  # register\nlevel = 4"),
        "{second}"
    );
    let all = entries(&second);
    let expected = [
        (
            "sfzh",
            want(
                &["pii.id_number", "gov.register.id"],
                4,
                50,
                50,
                Some("sfzh"),
            ),
        ),
        ("mobile", want(&["pii.phone"], 2, 50, 50, Some("mobile"))),
        ("sjhm", want(&["pii.phone"], 2, 37, 37, Some("sjhm"))),
        ("payload", want(&[], 2, 50, 50, None)),
        ("xm", want(&["pii.name"], 1, 0, 50, Some("xm"))),
    ];
    for (column, e) in &expected {
        assert_eq!(&entry(&all, &table, column), e, "{column}\n{second}");
    }
    assert_eq!(all.len(), expected.len(), "{second}");
    let files: Vec<String> = fs::read_dir(dir.path())
        .expect("read_dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["classification.toml"], "no temporary file is left");

    // The policy's own checker accepts the result.
    let check = run(Command::new(bin_path())
        .arg("check")
        .arg(workspace_root().join("policies/packs/default"))
        .arg("--classification")
        .arg(&out));
    assert!(
        check.status.success(),
        "danxia check --classification rejects the file:\n{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );
}

/// `mariadb … test -e SQL`, panicking with its output on failure.
fn mariadb(sql: &str) -> String {
    run_ok(
        Command::new("mariadb")
            .args(["-h127.0.0.1", "-P3306", "-uroot", "--batch", "test", "-e"])
            .arg(sql),
    )
}

/// Drops the test's MariaDB table, even when the test fails.
struct MariadbTable(String);

impl Drop for MariadbTable {
    fn drop(&mut self) {
        let _ = run(Command::new("mariadb")
            .args(["-h127.0.0.1", "-P3306", "-uroot", "test", "-e"])
            .arg(format!("DROP TABLE IF EXISTS `{}`", self.0)));
    }
}

#[test]
fn mariadb_classifies_to_stdout() {
    // Mixed case on purpose: MySQL names are written lower-cased.
    let table = unique("Dx_Discover");
    mariadb(&format!(
        "CREATE TABLE `{table}` (id INT PRIMARY KEY, sfzh CHAR(18), MOBILE VARCHAR(20), \
         sjhm VARCHAR(20), c_val VARCHAR(19), xm VARCHAR(20), note TEXT) CHARACTER SET utf8mb4"
    ));
    let _guard = MariadbTable(table.clone());
    let mut rng = Rng(0xdb_2024);
    let rows: Vec<String> = (0..30)
        .map(|i| {
            let sjhm = if i % 3 == 0 {
                "NULL".to_string()
            } else {
                format!("'{}'", mobile(&mut rng))
            };
            format!(
                "({i}, '{}', '{}', {sjhm}, '{}', '{}', '{}')",
                id_number(&mut rng),
                mobile(&mut rng),
                bank_card(&mut rng, 16),
                person_name(&mut rng),
                note(&mut rng)
            )
        })
        .collect();
    mariadb(&format!(
        "SET NAMES utf8mb4; INSERT INTO `{table}` VALUES {}",
        rows.join(", ")
    ));

    // Other tests may create tables in `test` meanwhile: only this table's
    // entries are checked.
    let (stdout, stderr) = discover_ok(&["--dsn", MARIADB_DSN, "--sample", "25"]);
    assert!(stderr.contains("column(s) classified;"), "{stderr}");
    let all = entries(&stdout);
    let key = format!("test.{}", table.to_ascii_lowercase());
    let expected = [
        ("sfzh", want(&["pii.id_number"], 2, 25, 25, Some("sfzh"))),
        ("mobile", want(&["pii.phone"], 2, 25, 25, Some("mobile"))),
        ("c_val", want(&["finance.bank_card"], 2, 25, 25, None)),
        ("xm", want(&["pii.name"], 1, 0, 25, Some("xm"))),
    ];
    for (column, e) in &expected {
        assert_eq!(&entry(&all, &key, column), e, "{column}\n{stdout}");
    }
    // A third of the rows have a NULL sjhm; which 25 rows the server
    // returns is its choice, so only the bounds are sure.
    let sjhm = entry(&all, &key, "sjhm");
    assert_eq!(
        (sjhm.tags.as_slice(), sjhm.level, sjhm.name_match.as_deref()),
        (&["pii.phone".to_string()][..], Some(2), Some("sjhm"))
    );
    assert!(
        sjhm.hits == sjhm.sampled && (15..=20).contains(&sjhm.sampled),
        "{sjhm:?}"
    );
    let ours = all.keys().filter(|(t, _)| *t == key).count();
    assert_eq!(
        ours,
        expected.len() + 1,
        "note and id are not classified:\n{stdout}"
    );
}

#[test]
fn unreachable_servers_and_bad_dsns_exit_2() {
    let port = closed_port();
    let cases = [
        (
            format!("postgres://postgres@127.0.0.1:{port}/test"),
            format!("cannot connect to PostgreSQL at 127.0.0.1:{port}"),
        ),
        (
            format!("mysql://root@127.0.0.1:{port}/test"),
            format!("cannot connect to MySQL/MariaDB at 127.0.0.1:{port}"),
        ),
        ("127.0.0.1:5432".to_string(), "bad --dsn".to_string()),
        (
            "postgres://postgres@127.0.0.1:5432".to_string(),
            "name the database".to_string(),
        ),
    ];
    for (dsn, want) in cases {
        let out = discover(&["--dsn", &dsn]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dsn}: {stderr}");
        assert!(stderr.contains(&want), "{dsn}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(out.stdout.is_empty(), "{dsn}: nothing on stdout");
    }
    let out = discover(&[
        "--dsn",
        &format!("postgres://postgres@127.0.0.1:{port}/test"),
    ]);
    assert!(
        text(&out.stderr).contains("check the host and port in --dsn"),
        "names what to fix: {}",
        text(&out.stderr)
    );
}

#[test]
fn a_broken_classification_file_exits_1_and_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    let broken = "version = 1\n[[column]]\ntable = \"t\"\n";
    fs::write(&path, broken).expect("write");
    let out = discover(&["--dsn", PG_DSN, "--out", path.to_str().expect("UTF-8")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("without `column`"), "{stderr}");
    assert!(stderr.contains("could not be merged"), "{stderr}");
    assert_eq!(fs::read_to_string(&path).ok().as_deref(), Some(broken));
    assert!(!Path::new(&format!("{}.tmp", path.display())).exists());
}
