//! The synthetic citizens fixture (`tests/fixtures/citizens.sql`) keeps its
//! promises, judged by the detectors themselves: every generated identity
//! number, mobile number and card number passes danxia's validators and is
//! found by the scanner as exactly that kind; the neutral columns (note,
//! name, address) hold nothing the scanner finds; and the same call gives
//! the same rows. Runs straight against PostgreSQL (no danxia), each test in
//! its own schema, dropped at the end even when an assertion fails.

use std::collections::HashSet;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use danxia_detectors::pii::{
    is_valid_bank_card, is_valid_email, is_valid_id_number, is_valid_phone, parse_id_number,
    Counts, Kind, Scanner,
};
use danxia_e2e::*;

const USER: &str = "postgres";
const DB: &str = "test";
/// Rows generated per call.
const ROWS: usize = 2000;
/// Birth years the fixture promises.
const BIRTH_YEARS: std::ops::RangeInclusive<u16> = 1950..=2005;

/// A fresh schema holding the fixture's functions; dropped on drop.
struct FixtureSchema {
    name: String,
}

impl FixtureSchema {
    /// Creates a uniquely named schema and loads the fixture into it (twice:
    /// the file must be idempotent).
    fn load(tag: &str) -> FixtureSchema {
        require_postgres();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let schema = FixtureSchema {
            name: format!("danxia_fx_{tag}_{}_{nanos}", std::process::id()),
        };
        let fixture = workspace_root().join("tests/fixtures/citizens.sql");
        run_ok(
            psql_direct(USER, DB)
                .arg("-q")
                .arg("-c")
                .arg(format!("create schema {}", schema.name))
                .arg("-c")
                .arg(format!("set search_path = {}", schema.name))
                .arg("-f")
                .arg(&fixture)
                .arg("-f")
                .arg(&fixture),
        );
        schema
    }

    /// psql with the schema first on `search_path`.
    fn psql(&self) -> Command {
        let mut c = psql_direct(USER, DB);
        c.env("PGOPTIONS", format!("-c search_path={}", self.name));
        c
    }

    /// `danxia_citizens(ROWS, seed)` as psql prints it unaligned (`|`
    /// between fields, one row a line), ordered by id.
    fn citizens_text(&self, seed: i32) -> String {
        run_ok(self.psql().args(["-A", "-t", "-c"]).arg(format!(
            "select * from danxia_citizens({ROWS}, {seed}) order by id"
        )))
    }
}

impl Drop for FixtureSchema {
    fn drop(&mut self) {
        let out = run(psql_direct(USER, DB)
            .arg("-q")
            .arg("-c")
            .arg("set client_min_messages = warning")
            .arg("-c")
            .arg(format!("drop schema if exists {} cascade", self.name)));
        if !out.status.success() && !std::thread::panicking() {
            panic!(
                "dropping schema {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// One generated row.
#[derive(Debug)]
struct Citizen {
    id: i64,
    name: String,
    id_number: String,
    phone: String,
    bank_card: String,
    email: String,
    address: String,
    note: String,
}

fn parse_rows(text: &str) -> Vec<Citizen> {
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            assert_eq!(f.len(), 8, "expected 8 fields in {line:?}");
            Citizen {
                id: f[0]
                    .parse()
                    .unwrap_or_else(|e| panic!("id {:?}: {e}", f[0])),
                name: f[1].into(),
                id_number: f[2].into(),
                phone: f[3].into(),
                bank_card: f[4].into(),
                email: f[5].into(),
                address: f[6].into(),
                note: f[7].into(),
            }
        })
        .collect()
}

/// What the scanner finds in one value.
fn scan(scanner: &Scanner, value: &str) -> Counts {
    let mut counts = Counts::new();
    scanner.scan(value.as_bytes(), &mut counts);
    counts
}

/// Asserts that the scanner finds exactly one value, of `kind`, in `value`.
fn assert_found_as(scanner: &Scanner, value: &str, kind: Kind, row: i64) {
    let counts = scan(scanner, value);
    assert!(
        counts.get(kind) == 1 && counts.total() == 1,
        "row {row}: {value:?} should be found as one {kind}, found {:?}",
        counts.iter().collect::<Vec<_>>()
    );
}

#[test]
fn generated_values_pass_the_validators() {
    let schema = FixtureSchema::load("valid");
    let rows = parse_rows(&schema.citizens_text(0));
    assert_eq!(rows.len(), ROWS);
    let scanner = Scanner::all();
    for (n, c) in rows.iter().enumerate() {
        assert_eq!(c.id, n as i64 + 1, "ids are 1..n in order");
        let id = parse_id_number(&c.id_number)
            .unwrap_or_else(|| panic!("row {}: invalid id_number {:?}", c.id, c.id_number));
        assert!(
            c.id_number.len() == 18 && !id.legacy,
            "row {}: {:?} is not the 18-character form",
            c.id,
            c.id_number
        );
        assert!(
            BIRTH_YEARS.contains(&id.birth_year),
            "row {}: born {} in {:?}",
            c.id,
            id.birth_year,
            c.id_number
        );
        assert!(
            is_valid_phone(&c.phone) && c.phone.len() == 11,
            "row {}: invalid phone {:?}",
            c.id,
            c.phone
        );
        assert!(
            is_valid_bank_card(&c.bank_card) && matches!(c.bank_card.len(), 16 | 19),
            "row {}: invalid bank_card {:?}",
            c.id,
            c.bank_card
        );
        assert!(
            is_valid_email(&c.email),
            "row {}: invalid email {:?}",
            c.id,
            c.email
        );
        assert_found_as(&scanner, &c.id_number, Kind::IdNumber, c.id);
        assert_found_as(&scanner, &c.phone, Kind::Phone, c.id);
        assert_found_as(&scanner, &c.bank_card, Kind::BankCard, c.id);
        assert_found_as(&scanner, &c.email, Kind::Email, c.id);
        for (column, value) in [
            ("note", &c.note),
            ("name", &c.name),
            ("address", &c.address),
        ] {
            let counts = scan(&scanner, value);
            assert!(
                counts.is_empty(),
                "row {}: {column} {value:?} holds detectable values {:?}",
                c.id,
                counts.iter().collect::<Vec<_>>()
            );
            assert!(!value.is_empty(), "row {}: empty {column}", c.id);
        }
    }
    // The hashes spread: (almost) no two people share a number. Chance
    // collisions are possible but rare at this size (about 0.01 expected
    // for identity numbers, fewer for the others).
    for (column, values) in [
        (
            "id_number",
            rows.iter().map(|c| &c.id_number).collect::<HashSet<_>>(),
        ),
        ("phone", rows.iter().map(|c| &c.phone).collect()),
        ("bank_card", rows.iter().map(|c| &c.bank_card).collect()),
        ("email", rows.iter().map(|c| &c.email).collect()),
    ] {
        assert!(
            values.len() >= ROWS - 2,
            "{column}: only {} distinct values in {ROWS} rows",
            values.len()
        );
    }
    // Both card lengths and several regions occur.
    let lengths: HashSet<usize> = rows.iter().map(|c| c.bank_card.len()).collect();
    assert_eq!(lengths, HashSet::from([16, 19]));
    let regions: HashSet<&str> = rows.iter().map(|c| &c.id_number[..6]).collect();
    assert!(regions.len() >= 10, "regions: {regions:?}");
}

/// Identity numbers the validator accepts, covering every check character
/// but 4–8 (GB 11643-1999's own example among them).
const KNOWN_IDS: [&str; 7] = [
    "11010519491231002X",
    "110105200002290021",
    "810000199001010019",
    "830000199001010020",
    "440305198506150062",
    "440305198506150193",
    "440305198506150142",
];

/// Card numbers the validator accepts (the networks' test PANs).
const KNOWN_CARDS: [&str; 5] = [
    "6200000000000005",
    "4111111111111111",
    "5555555555554444",
    "2223000048400011",
    "3530111333300000",
];

#[test]
fn sql_check_functions_agree_with_the_validators() {
    let schema = FixtureSchema::load("check");
    // Known numbers: the SQL functions give the check they end with, from
    // text and from a number.
    let mut selects = Vec::new();
    for id in KNOWN_IDS {
        assert!(is_valid_id_number(id), "{id}");
        selects.push(format!("danxia_id_check('{id}')"));
        selects.push(format!("danxia_id_check({})", &id[..17]));
    }
    for card in KNOWN_CARDS {
        assert!(is_valid_bank_card(card), "{card}");
        let body = &card[..card.len() - 1];
        selects.push(format!("danxia_luhn_check('{body}')"));
        selects.push(format!("danxia_luhn_check({body})"));
    }
    let out = run_ok(
        schema
            .psql()
            .args(["-A", "-t", "-c"])
            .arg(format!("select {}", selects.join(", "))),
    );
    let want: Vec<String> = KNOWN_IDS
        .iter()
        .chain(KNOWN_CARDS.iter())
        .flat_map(|v| [v[v.len() - 1..].to_string(), v[v.len() - 1..].to_string()])
        .collect();
    assert_eq!(out.trim(), want.join("|"));
    // Generated numbers (another seed): the text forms agree with the
    // number the generator built.
    let out = run_ok(schema.psql().args(["-A", "-t", "-c"]).arg(format!(
        "select count(*) filter (where danxia_id_check(id_number) <> right(id_number, 1)), \
                count(*) filter (where danxia_luhn_check(left(bank_card, -1)) <> right(bank_card, 1)::int) \
         from danxia_citizens({ROWS}, 3)"
    )));
    assert_eq!(
        out.trim(),
        "0|0",
        "SQL checks disagree with the generated values"
    );
}

#[test]
fn same_seed_same_rows() {
    let schema = FixtureSchema::load("determinism");
    let first = schema.citizens_text(0);
    let again = schema.citizens_text(0);
    assert_eq!(first.lines().count(), ROWS);
    assert!(first == again, "two calls with seed 0 gave different rows");
    let other = schema.citizens_text(7);
    assert!(
        first != other,
        "seed 7 gave the same rows as seed 0: the seed is ignored"
    );
    assert_eq!(other, schema.citizens_text(7));
}
