//! Whole-policy tests: loading directories, every match key, evaluation
//! order, modes, defaults, classification, the allowlist, the cache,
//! explanations, every diagnostic, and the shipped packs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use danxia_detectors::{analyze, Fingerprint, LexOptions, Operation, Signals, StatementFacts};
use tempfile::TempDir;

use crate::*;

/// Monday 2024-01-01 09:30 in Asia/Shanghai (01:30 UTC).
const MONDAY_0930: u64 = 1_704_072_600;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Local time in Shanghai on 2024-01-01 + `day` days at `hh:mm`.
fn shanghai(day: u64, hh: u64, mm: u64) -> SystemTime {
    // Midnight 2024-01-01 in Shanghai is 16:00 UTC the day before.
    at(MONDAY_0930 - (9 * 3600 + 1800) + day * 86400 + hh * 3600 + mm * 60)
}

fn write_dir(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

fn opts(dir: &TempDir) -> LoadOptions {
    LoadOptions {
        dir: dir.path().to_path_buf(),
        ..Default::default()
    }
}

fn load(files: &[(&str, &str)]) -> Policy {
    let dir = write_dir(files);
    Policy::load(&opts(&dir)).unwrap_or_else(|e| panic!("policy rejected:\n{e}"))
}

/// A request under construction.
#[derive(Clone)]
struct R {
    user: &'static str,
    db: &'static str,
    app: &'static str,
    addr: Option<&'static str>,
    tls: Option<&'static str>,
    facts: StatementFacts,
    /// Fingerprint; by default one derived from the facts, since the
    /// decision cache relies on facts being a function of it.
    fp: Option<u64>,
    stacked: bool,
    mode: Mode,
    now: SystemTime,
}

impl Default for R {
    fn default() -> Self {
        R {
            user: "app",
            db: "shop",
            app: "psql",
            addr: Some("10.0.0.5"),
            tls: None,
            facts: StatementFacts {
                operation: Operation::Select,
                tables: vec!["public.orders".into()],
                columns: vec!["id".into()],
                limited: true,
                ..Default::default()
            },
            fp: None,
            stacked: false,
            mode: Mode::Enforce,
            now: at(MONDAY_0930),
        }
    }
}

fn r(f: impl FnOnce(&mut R)) -> R {
    let mut x = R::default();
    f(&mut x);
    x
}

impl R {
    fn identity(&self) -> Identity {
        let addr: Option<IpAddr> = self.addr.map(|a| a.parse().expect("address"));
        Identity::new(
            Arc::from("pg"),
            Arc::from(self.user),
            Arc::from(self.db),
            Arc::from(self.app),
            addr,
        )
        .with_tls_subject(self.tls.map(Arc::from))
    }

    fn with<T>(&self, f: impl FnOnce(&Request<'_>) -> T) -> T {
        let identity = self.identity();
        let mut facts = self.facts.clone();
        facts.fingerprint = Fingerprint(self.fp.unwrap_or_else(|| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            format!("{facts:?}").hash(&mut h);
            h.finish()
        }));
        let req = Request {
            identity: &identity,
            facts: &facts,
            stacked: self.stacked,
            mode: self.mode,
            now: self.now,
        };
        f(&req)
    }

    fn eval(&self, p: &Policy) -> Decision {
        self.with(|req| {
            let d = p.evaluate(req);
            assert_eq!(*p.decide(req).decision, d, "decide and evaluate differ");
            assert_eq!(p.explain(req).decision, d, "explain and evaluate differ");
            d
        })
    }
}

fn rule(id: &str, action: &str, body: &str) -> String {
    format!("[[rule]]\nid = \"{id}\"\ndescription = \"test rule {id}\"\naction = \"{action}\"\n{body}\n\n")
}

const GROUPS: &str = r#"
[groups]
admins = ["postgres", "dba_*"]
office = ["10.0.0.0/8"]
secrets = ["pg_shadow", "pg_authid"]
"#;

#[test]
fn every_match_key() {
    let facts = |f: fn(&mut StatementFacts)| {
        let mut x = R::default().facts;
        f(&mut x);
        x
    };
    let cases: Vec<(&str, R, bool)> = vec![
        // Identity lists: globs, negation, groups, exclusions only.
        (r#"users = ["app"]"#, r(|_| {}), true),
        (r#"users = ["ap"]"#, r(|_| {}), false),
        (r#"users = ["a*"]"#, r(|_| {}), true),
        (r#"users = ["!app"]"#, r(|_| {}), false),
        (r#"users = ["!postgres"]"#, r(|_| {}), true),
        (r#"users = ["*", "!app"]"#, r(|_| {}), false),
        (r#"users = ["@admins"]"#, r(|x| x.user = "dba_bob"), true),
        (r#"users = ["@admins"]"#, r(|_| {}), false),
        (r#"users = ["!@admins"]"#, r(|_| {}), true),
        (r#"users = ["!@admins"]"#, r(|x| x.user = "postgres"), false),
        (r#"databases = ["shop", "crm"]"#, r(|_| {}), true),
        (r#"databases = ["crm"]"#, r(|_| {}), false),
        (r#"applications = ["psql"]"#, r(|_| {}), true),
        (r#"applications = ["pgbench"]"#, r(|_| {}), false),
        (r#"tls_subjects = ["CN=app*"]"#, r(|_| {}), false),
        (
            r#"tls_subjects = ["CN=app*"]"#,
            r(|x| x.tls = Some("CN=app1")),
            true,
        ),
        (r#"tls_subjects = ["!CN=evil"]"#, r(|_| {}), true),
        (r#"api_callers = ["ops"]"#, r(|_| {}), false),
        // Addresses: CIDR, single IPs, v6, exclusions, groups, no address.
        (r#"addresses = ["10.0.0.0/8"]"#, r(|_| {}), true),
        (r#"addresses = ["10.0.0.5"]"#, r(|_| {}), true),
        (r#"addresses = ["10.0.0.6"]"#, r(|_| {}), false),
        (
            r#"addresses = ["10.0.0.0/8", "!10.0.0.0/24"]"#,
            r(|_| {}),
            false,
        ),
        (r#"addresses = ["!10.1.0.0/16"]"#, r(|_| {}), true),
        (r#"addresses = ["@office"]"#, r(|_| {}), true),
        (
            r#"addresses = ["::1/128"]"#,
            r(|x| x.addr = Some("::1")),
            true,
        ),
        (
            r#"addresses = ["10.0.0.0/8"]"#,
            r(|x| x.addr = Some("::ffff:10.1.2.3")),
            true,
        ),
        (r#"addresses = ["127.0.0.1"]"#, r(|x| x.addr = None), false),
        (r#"addresses = ["!127.0.0.1"]"#, r(|x| x.addr = None), true),
        // Time windows, in the policy zone (Asia/Shanghai).
        (r#"time = ["mon-fri 09:00-18:00"]"#, r(|_| {}), true),
        (
            r#"time = ["mon-fri 09:00-18:00"]"#,
            r(|x| x.now = shanghai(0, 8, 59)),
            false,
        ),
        (
            r#"time = ["mon-fri 09:00-18:00"]"#,
            r(|x| x.now = shanghai(5, 10, 0)),
            false,
        ),
        (
            r#"time = ["sat,sun 10:00-12:00"]"#,
            r(|x| x.now = shanghai(6, 11, 0)),
            true,
        ),
        (
            r#"time = ["22:00-06:00"]"#,
            r(|x| x.now = shanghai(1, 23, 0)),
            true,
        ),
        (
            r#"time = ["22:00-06:00"]"#,
            r(|x| x.now = shanghai(2, 5, 59)),
            true,
        ),
        (
            r#"time = ["22:00-06:00"]"#,
            r(|x| x.now = shanghai(2, 6, 0)),
            false,
        ),
        (
            r#"time = ["fri 22:00-06:00"]"#,
            r(|x| x.now = shanghai(5, 3, 0)),
            true,
        ),
        (
            r#"time = ["fri 22:00-06:00"]"#,
            r(|x| x.now = shanghai(4, 3, 0)),
            false,
        ),
        (r#"time = ["sat", "mon 09:00-09:31"]"#, r(|_| {}), true),
        // Operations and their groups, with exclusions.
        (r#"operations = ["select"]"#, r(|_| {}), true),
        (r#"operations = ["ddl", "dcl"]"#, r(|_| {}), false),
        (r#"operations = ["read"]"#, r(|_| {}), true),
        (r#"operations = ["write"]"#, r(|_| {}), false),
        (r#"operations = ["dml"]"#, r(|_| {}), true),
        (
            r#"operations = ["copy"]"#,
            r(|x| x.facts.operation = Operation::CopyIn),
            true,
        ),
        (r#"operations = ["all", "!select"]"#, r(|_| {}), false),
        (r#"operations = ["!ddl"]"#, r(|_| {}), true),
        // Object names.
        (r#"tables = ["orders"]"#, r(|_| {}), true),
        (r#"tables = ["public.orders"]"#, r(|_| {}), true),
        (r#"tables = ["hr.orders"]"#, r(|_| {}), false),
        (r#"tables = ["public.*"]"#, r(|_| {}), true),
        (r#"tables = ["Public.Orders"]"#, r(|_| {}), true),
        (
            r#"tables = ["@secrets"]"#,
            r(|x| x.facts.tables = vec!["pg_catalog.pg_authid".into()]),
            true,
        ),
        (
            r#"tables = ["pg_catalog.*"]"#,
            r(|x| x.facts.tables = vec!["users".into()]),
            false,
        ),
        (
            r#"tables = ["public.citizens"]"#,
            r(|x| x.facts.tables = vec!["citizens".into()]),
            true,
        ),
        (
            r#"functions = ["pg_sleep"]"#,
            r(|x| x.facts.functions = vec!["pg_catalog.pg_sleep".into()]),
            true,
        ),
        (
            r#"functions = ["dblink*"]"#,
            r(|x| x.facts.functions = vec!["dblink_exec".into()]),
            true,
        ),
        (
            r#"functions = ["pg_catalog.lo_*"]"#,
            r(|x| x.facts.functions = vec!["lo_import".into()]),
            false,
        ),
        (
            r#"functions = ["pg_catalog.lo_*"]"#,
            r(|x| x.facts.functions = vec!["pg_catalog.lo_import".into()]),
            true,
        ),
        (r#"functions = ["pg_sleep"]"#, r(|_| {}), false),
        (r#"columns = ["id"]"#, r(|_| {}), true),
        (r#"columns = ["i*"]"#, r(|_| {}), true),
        (r#"columns = ["orders.id"]"#, r(|_| {}), true),
        (r#"columns = ["citizens.id"]"#, r(|_| {}), false),
        (r#"columns = ["phone"]"#, r(|_| {}), false),
        // Conditions: any listed one holds.
        (r#"conditions = ["select_star"]"#, r(|_| {}), false),
        (
            r#"conditions = ["select_star"]"#,
            r(|x| x.facts.select_star = true),
            true,
        ),
        (
            r#"conditions = ["no_limit", "unbounded_write"]"#,
            r(|x| x.facts.limited = false),
            true,
        ),
        (r#"conditions = ["stacked"]"#, r(|x| x.stacked = true), true),
        (
            r#"conditions = ["parse_error"]"#,
            r(|x| x.facts.parse_error = Some("bad".into())),
            true,
        ),
        (
            r#"conditions = ["injection"]"#,
            r(|x| x.facts = facts(|f| f.signals = Signals::UNION_SELECT)),
            true,
        ),
        (
            r#"conditions = ["catalog_probe"]"#,
            r(|x| x.facts = facts(|f| f.signals = Signals::CATALOG_PROBE)),
            true,
        ),
        (r#"conditions = ["not_allowlisted"]"#, r(|_| {}), true),
        // AND across keys.
        (
            "users = [\"app\"]\noperations = [\"select\"]\ntables = [\"orders\"]",
            r(|_| {}),
            true,
        ),
        (
            "users = [\"app\"]\noperations = [\"delete\"]",
            r(|_| {}),
            false,
        ),
    ];
    for (body, req, want) in cases {
        let files = [
            ("00-groups.toml", GROUPS.to_string()),
            ("10-rule.toml", rule("r", "deny", body)),
        ];
        let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let p = load(&files);
        let d = req.eval(&p);
        assert_eq!(
            &*d.rule_id == "r",
            want,
            "{body} on user={} {:?}: {d:?}",
            req.user,
            req.facts
        );
        assert_eq!(d.block, want, "{body}");
    }
}

#[test]
fn tags_and_levels_from_classification() {
    let dir = write_dir(&[(
        "10.toml",
        &[
            rule("pii-level", "alert", "min_level = 3"),
            rule("bank", "deny", r#"tags = ["finance.*"]"#),
        ]
        .concat(),
    )]);
    let class = dir.path().join("classification.toml");
    std::fs::write(
        &class,
        r#"version = 1
[levels]
"pii.*" = 3
[[column]]
table = "public.citizens"
column = "id_number"
tags = ["pii.id_number"]
[[column]]
table = "pay.cards"
column = "pan"
tags = ["finance.bank_card"]
level = 4
"#,
    )
    .unwrap();
    let p = Policy::load(&LoadOptions {
        classification: Some(class),
        ..opts(&dir)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let citizens = |cols: &[&str], star: bool| {
        r(|x| {
            x.facts.tables = vec!["citizens".into()];
            x.facts.columns = cols.iter().map(|c| c.to_string()).collect();
            x.facts.select_star = star;
        })
    };
    let d = citizens(&["id_number"], false).eval(&p);
    assert_eq!(
        (d.tags.clone(), d.level, d.alerts.clone(), d.block),
        (
            vec![Arc::from("pii.id_number")],
            3,
            vec![Arc::from("pii-level")],
            false
        )
    );
    let d = citizens(&["name"], false).eval(&p);
    assert_eq!((d.tags.len(), d.level, d.alerts.len()), (0, 0, 0));
    let d = citizens(&[], true).eval(&p);
    assert_eq!((d.level, d.alerts.len()), (3, 1));
    let d = r(|x| {
        x.facts.tables = vec!["pay.cards".into()];
        x.facts.columns = vec!["pan".into()];
    })
    .eval(&p);
    assert_eq!((&*d.rule_id, d.block, d.level), ("bank", true, 4));
}

#[test]
fn star_reads_classified_columns_for_column_rules() {
    let dir = write_dir(&[(
        "10.toml",
        &rule("ids", "deny", r#"columns = ["citizens.id_number"]"#),
    )]);
    let class = dir.path().join("c.toml");
    std::fs::write(
        &class,
        "version = 1\n[[column]]\ntable = \"citizens\"\ncolumn = \"id_number\"\ntags = [\"pii.id\"]\n",
    )
    .unwrap();
    let p = Policy::load(&LoadOptions {
        classification: Some(class),
        ..opts(&dir)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let star = r(|x| {
        x.facts.tables = vec!["public.citizens".into()];
        x.facts.columns = vec![];
        x.facts.select_star = true;
    });
    assert_eq!(&*star.eval(&p).rule_id, "ids");
    let named = r(|x| x.facts.tables = vec!["citizens".into()]);
    assert_eq!(&*named.eval(&p).rule_id, "default");
}

#[test]
fn evaluation_order_and_alerts() {
    let p = load(&[
        (
            "10-a.toml",
            &[
                rule("alert-1", "alert", r#"tables = ["orders"]"#),
                rule("allow-admins", "allow", r#"users = ["postgres"]"#),
                rule(
                    "alert-2",
                    "alert",
                    "audit = \"full\"\noperations = [\"select\"]",
                ),
            ]
            .concat(),
        ),
        (
            "20-b.toml",
            &[
                rule(
                    "deny-orders",
                    "deny",
                    "tables = [\"orders\"]\nmessage = \"no orders\"",
                ),
                rule("alert-after", "alert", r#"tables = ["orders", "x"]"#),
            ]
            .concat(),
        ),
    ]);
    // Alerts before the decider are kept; files are read in name order.
    let d = r(|_| {}).eval(&p);
    assert_eq!(&*d.rule_id, "deny-orders");
    assert!(d.block);
    assert_eq!(&*d.message, "no orders");
    assert_eq!(d.alerts, vec![Arc::from("alert-1"), Arc::from("alert-2")]);
    assert_eq!(
        d.audit_text,
        Some(AuditText::Full),
        "from the first alert rule that sets one"
    );
    // The first allow decides; later rules are not evaluated.
    let d = r(|x| x.user = "postgres").eval(&p);
    assert_eq!(
        (&*d.rule_id, d.action, d.block),
        ("allow-admins", Action::Allow, false)
    );
    assert_eq!(d.alerts, vec![Arc::from("alert-1")]);
    // Nothing decides: default allow, with alerts.
    let d = r(|x| x.facts.tables = vec!["t".into()]).eval(&p);
    assert_eq!((&*d.rule_id, d.action), ("default", Action::Allow));
    assert_eq!(d.alerts, vec![Arc::from("alert-2")]);
    assert_eq!(p.rule_count(), 5);
}

#[test]
fn defaults_and_unparsed() {
    let settings = |default: &str, unparsed: &str| {
        format!(
            "[policy]\ndefault_action = \"{default}\"\nunparsed_action = \"{unparsed}\"\ndeny_message = \"nope\"\ndeny_sqlstate = \"42000\"\n"
        )
    };
    let unparsed = r(|x| x.facts.parse_error = Some("syntax".into()));
    let p = load(&[("00.toml", &settings("allow", "deny"))]);
    assert_eq!(p.deny_sqlstate(), "42000");
    let d = r(|_| {}).eval(&p);
    assert_eq!((&*d.rule_id, d.block), ("default", false));
    let d = unparsed.eval(&p);
    assert_eq!(
        (&*d.rule_id, d.action, d.block, &*d.message),
        ("default.unparsed", Action::Deny, true, "nope")
    );

    let p = load(&[("00.toml", &settings("deny", "alert"))]);
    let d = r(|_| {}).eval(&p);
    assert_eq!((&*d.rule_id, d.block), ("default", true));
    let d = unparsed.eval(&p);
    assert_eq!(
        (&*d.rule_id, d.action, d.block),
        ("default.unparsed", Action::Allow, false)
    );
    assert_eq!(d.alerts, vec![Arc::from("default.unparsed")]);

    // A rule that allows unparsed statements for admins decides first.
    let p = load(&[
        ("00.toml", &settings("allow", "deny")),
        (
            "10.toml",
            &rule(
                "admins-unparsed",
                "allow",
                "users = [\"postgres\"]\nconditions = [\"parse_error\"]",
            ),
        ),
    ]);
    let admin = r(|x| {
        x.user = "postgres";
        x.facts.parse_error = Some("x".into());
    });
    assert_eq!(&*admin.eval(&p).rule_id, "admins-unparsed");
    assert_eq!(&*unparsed.eval(&p).rule_id, "default.unparsed");

    let all = Policy::allow_all();
    assert_eq!(all.rule_count(), 0);
    assert_eq!(all.deny_sqlstate(), "42501");
    let d = unparsed.eval(&all);
    assert_eq!((&*d.rule_id, d.block), ("default.unparsed", false));
}

#[test]
fn modes() {
    let p = load(&[(
        "10.toml",
        &[
            rule("deny-any", "deny", "tables = [\"orders\"]"),
            rule(
                "deny-monitor",
                "deny",
                "tables = [\"t2\"]\nmode = \"monitor\"",
            ),
            rule("deny-learn", "deny", "tables = [\"t3\"]\nmode = \"learn\""),
            rule(
                "learn-unknown",
                "alert",
                "tables = [\"t4\"]\nmode = \"learn\"\nconditions = [\"not_allowlisted\"]",
            ),
        ]
        .concat(),
    )]);
    let on = |table: &'static str, mode: Mode| {
        r(move |x| {
            x.facts.tables = vec![table.into()];
            x.mode = mode;
        })
    };
    use Mode::*;
    // (table, listener mode) -> (rule, effective mode, block, alerts contain the rule, learn)
    let cases: &[(&str, Mode, &str, Mode, bool, bool, bool)] = &[
        ("orders", Enforce, "deny-any", Enforce, true, false, false),
        ("orders", Monitor, "deny-any", Monitor, false, true, false),
        ("orders", Learn, "deny-any", Learn, false, false, true),
        ("t2", Enforce, "deny-monitor", Monitor, false, true, false),
        ("t2", Learn, "deny-monitor", Learn, false, false, true),
        ("t3", Enforce, "deny-learn", Learn, false, false, true),
        ("t3", Monitor, "deny-learn", Learn, false, false, true),
        ("t4", Enforce, "default", Enforce, false, false, true),
        ("other", Enforce, "default", Enforce, false, false, false),
        ("other", Learn, "default", Learn, false, false, true),
    ];
    for (table, mode, id, eff, block, alert, learn) in cases {
        let d = on(table, *mode).eval(&p);
        assert_eq!(
            (
                &*d.rule_id,
                d.mode,
                d.block,
                d.alerts.iter().any(|a| **a == **id),
                d.learn
            ),
            (*id, *eff, *block, *alert, *learn),
            "{table} under {mode:?}: {d:?}"
        );
    }
}

#[test]
fn allowlist_condition() {
    let dir = write_dir(&[(
        "10.toml",
        &rule("deny-new", "deny", r#"conditions = ["not_allowlisted"]"#),
    )]);
    let path = dir.path().join("allow.toml");
    let learned = "select id from public.orders limit ?";
    let learned_fp = Fingerprint::of_normalized(learned).0;
    let mut text = allowlist::HEADER.to_string();
    text.push_str(&allowlist::render(&allowlist::Entry {
        user: "app".into(),
        database: "shop".into(),
        fingerprint: Fingerprint(learned_fp),
        statement: Some(learned.into()),
    }));
    text.push_str(&allowlist::render(&allowlist::Entry {
        user: "report_*".into(),
        database: "*".into(),
        fingerprint: Fingerprint(7),
        statement: None,
    }));
    std::fs::write(&path, text).unwrap();
    let p = Policy::load(&LoadOptions {
        allowlist: Some(path),
        ..opts(&dir)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.warnings().is_empty(), "{:?}", p.warnings());
    // A statement crafted to share an entry's fingerprint.
    let evil = "select * from pg_shadow as \"\u{1}crafted\"";
    let cases: &[(&'static str, &'static str, u64, &str, bool)] = &[
        ("app", "shop", learned_fp, learned, false),
        ("app", "shop", learned_fp, evil, true),
        ("app", "shop", learned_fp + 1, learned, true),
        ("app", "crm", learned_fp, learned, true),
        ("report_x", "crm", 7, "select ?", false),
        // An entry without a statement matches the fingerprint alone.
        ("report_x", "crm", 7, evil, false),
        ("report_x", "crm", learned_fp, learned, true),
    ];
    for (user, db, fp, normalized, blocked) in cases {
        let d = r(|x| {
            x.user = user;
            x.db = db;
            x.fp = Some(*fp);
            x.facts.normalized = normalized.to_string();
        })
        .eval(&p);
        assert_eq!(d.block, *blocked, "{user} {db} {fp:x} {normalized}");
    }
}

#[test]
fn allowlist_entry_with_a_foreign_statement_warns() {
    let dir = write_dir(&[(
        "10.toml",
        &rule("deny-new", "deny", r#"conditions = ["not_allowlisted"]"#),
    )]);
    let path = dir.path().join("allow.toml");
    let mut text = allowlist::HEADER.to_string();
    text.push_str(&allowlist::render(&allowlist::Entry {
        user: "app".into(),
        database: "shop".into(),
        fingerprint: Fingerprint(42),
        statement: Some("select id from public.orders limit ?".into()),
    }));
    std::fs::write(&path, text).unwrap();
    let p = Policy::load(&LoadOptions {
        allowlist: Some(path),
        ..opts(&dir)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let w = p.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("entry never matches"), "{}", w[0]);
    // The entry fails closed.
    let d = r(|x| {
        x.fp = Some(42);
        x.facts.normalized = "select id from public.orders limit ?".into();
    })
    .eval(&p);
    assert!(d.block);
}

#[test]
fn decision_cache_checks_the_statement_text() {
    let p = load(&[(
        "10.toml",
        &rule("deny-shadow", "deny", "tables = [\"pg_shadow\"]"),
    )]);
    // Two statements whose facts share a fingerprint (a crafted collision)
    // but not their text.
    let benign = r(|x| {
        x.fp = Some(99);
        x.facts.normalized = "select id from public.orders limit ?".into();
    });
    let evil = r(|x| {
        x.fp = Some(99);
        x.facts.tables = vec!["pg_catalog.pg_shadow".into()];
        x.facts.normalized = "select * from pg_catalog.pg_shadow as \"\u{1}x\"".into();
    });
    let first = benign.with(|req| p.decide(req));
    assert!(!first.hit && !first.decision.block);
    let second = evil.with(|req| p.decide(req));
    assert!(!second.hit, "a collision must not hit");
    assert!(second.decision.block, "{:?}", second.decision);
    assert_eq!(&*second.decision.rule_id, "deny-shadow");
    // The miss replaced the entry; each text still gets its own decision.
    let again = evil.with(|req| p.decide(req));
    assert!(again.hit && again.decision.block);
    let back = benign.with(|req| p.decide(req));
    assert!(!back.hit && !back.decision.block);
    assert_eq!(p.cache.len(), 1);
}

#[test]
fn long_statements_are_not_cached() {
    let p = load(&[(
        "10.toml",
        &rule("deny-shadow", "deny", "tables = [\"pg_shadow\"]"),
    )]);
    let long = r(|x| {
        x.fp = Some(5);
        x.facts.normalized = "x".repeat(cache::MAX_CACHED_STATEMENT_BYTES + 1);
    });
    for _ in 0..2 {
        let l = long.with(|req| p.decide(req));
        assert!(!l.hit);
        assert_eq!(*l.decision, long.with(|req| p.evaluate(req)));
    }
    assert_eq!(p.cache.len(), 0);
    let at_limit = r(|x| {
        x.fp = Some(5);
        x.facts.normalized = "x".repeat(cache::MAX_CACHED_STATEMENT_BYTES);
    });
    assert!(!at_limit.with(|req| p.decide(req)).hit);
    assert!(at_limit.with(|req| p.decide(req)).hit);
}

#[test]
fn cache_matches_evaluate_and_is_per_policy() {
    let files = [(
        "10.toml",
        [
            rule(
                "deny-postgres-orders",
                "deny",
                "users = [\"postgres\"]\ntables = [\"orders\"]",
            ),
            rule("office", "alert", "time = [\"mon-fri 09:00-18:00\"]"),
        ]
        .concat(),
    )];
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let p = load(&files);
    let base = r(|_| {});
    let first = base.with(|req| p.decide(req));
    assert!(!first.hit);
    let again = base.with(|req| p.decide(req));
    assert!(again.hit);
    assert_eq!(first.decision, again.decision);
    assert_eq!(first.decision.alerts, vec![Arc::from("office")]);

    // Every part of the key separates entries.
    let variants = [
        r(|x| x.user = "postgres"),
        r(|x| x.app = "other"),
        r(|x| x.stacked = true),
        r(|x| x.mode = Mode::Monitor),
        r(|x| x.now = shanghai(0, 20, 0)),
        r(|x| x.fp = Some(43)),
        r(|x| x.facts.parse_error = Some("x".into())),
    ];
    for v in &variants {
        let l = v.with(|req| p.decide(req));
        assert!(!l.hit, "{:?}", v.facts);
        assert_eq!(*l.decision, v.with(|req| p.evaluate(req)));
        assert!(v.with(|req| p.decide(req)).hit);
    }
    let d = variants[0].with(|req| p.decide(req));
    assert!(d.decision.block);
    let evening = variants[4].with(|req| p.decide(req));
    assert!(evening.decision.alerts.is_empty());
    assert_eq!(p.cache.len(), 1 + variants.len());

    // A reloaded policy starts empty and has a new version.
    let q = load(&files);
    assert_ne!(p.version(), q.version());
    assert!(!base.with(|req| q.decide(req)).hit);
}

#[test]
fn identity_keys() {
    let a = r(|_| {}).identity();
    let b = r(|_| {}).identity();
    assert_eq!(a.key(), b.key());
    assert_ne!(a.key(), a.with_application(Arc::from("x")).key());
    assert_eq!(a.with_application(Arc::from("x")).application.as_ref(), "x");
    assert_ne!(
        a.key(),
        a.clone().with_tls_subject(Some(Arc::from("CN=a"))).key()
    );
    assert_ne!(
        a.key(),
        a.clone().with_api_caller(Some(Arc::from("ops"))).key()
    );
    assert_ne!(a.key(), r(|x| x.addr = None).identity().key());
    assert_ne!(a.key(), r(|x| x.db = "crm").identity().key());
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Policy>();
}

#[test]
fn explanation() {
    let p = load(&[
        ("00.toml", GROUPS),
        (
            "10.toml",
            &[
                rule("deny-secrets", "deny", r#"tables = ["@secrets"]"#),
                rule("alert-star", "alert", r#"conditions = ["select_star"]"#),
                rule(
                    "deny-orders",
                    "deny",
                    "users = [\"!@admins\"]\ntables = [\"orders\"]",
                ),
                rule("never-reached", "deny", r#"tables = ["x"]"#),
            ]
            .concat(),
        ),
    ]);
    let req = r(|x| x.facts.select_star = true);
    let e = req.with(|req| p.explain(req));
    assert_eq!(e.conditions, vec!["select_star", "not_allowlisted"]);
    assert_eq!(e.trace.len(), 3);
    assert_eq!(
        e.trace[0].detail,
        "tables: none of [@secrets] matched [public.orders]"
    );
    assert_eq!(e.trace[0].line, 1);
    assert!(e.trace[1].matched && e.trace[2].matched);
    assert_eq!(e.trace[1].line, 7);
    let text = e.to_string();
    for want in [
        "conditions:     select_star, not_allowlisted",
        "no    deny-secrets (",
        "10.toml:1): tables: none of [@secrets] matched [public.orders]",
        "MATCH alert-star",
        "MATCH deny-orders",
        "decision:       deny by rule `deny-orders`, mode enforce: BLOCKED",
        "alerts:         alert-star",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let admin = r(|x| x.user = "postgres").with(|req| p.explain(req));
    assert_eq!(admin.decision.rule_id.as_ref(), "default");
    assert_eq!(
        admin.trace[2].detail,
        "users: `postgres` does not match [!@admins]"
    );
    assert!(admin.to_string().contains("by `default` (no rule decided)"));

    let p = load(&[(
        "10.toml",
        &rule(
            "office",
            "deny",
            "time = [\"sat 10:00-12:00\"]\noperations = [\"ddl\"]",
        ),
    )]);
    let e = r(|x| x.facts.operation = Operation::Ddl).with(|req| p.explain(req));
    assert_eq!(
        e.trace[0].detail,
        "time: none of [sat 10:00-12:00] is open (now mon 09:30 in the policy time zone)"
    );
    let e = r(|_| {}).with(|req| p.explain(req));
    assert_eq!(e.trace[0].detail, "operations: `select` is not in [ddl]");
}

#[test]
fn real_statements_through_the_analyser() {
    let p = load(&[
        ("00.toml", GROUPS),
        (
            "10.toml",
            &[
                rule("deny-secrets", "deny", r#"tables = ["@secrets"]"#),
                rule("deny-sleep", "deny", r#"functions = ["pg_sleep"]"#),
                rule(
                    "deny-ddl",
                    "deny",
                    "users = [\"!@admins\"]\noperations = [\"ddl\", \"dcl\"]",
                ),
            ]
            .concat(),
        ),
    ]);
    let cases: &[(&str, &str, &str)] = &[
        ("select * from pg_catalog.pg_shadow", "app", "deny-secrets"),
        (
            "select usename, passwd from pg_shadow",
            "postgres",
            "deny-secrets",
        ),
        ("select pg_sleep(5)", "app", "deny-sleep"),
        ("select pg_catalog.pg_sleep(5)", "app", "deny-sleep"),
        ("drop table t", "app", "deny-ddl"),
        ("grant all on t to bob", "app", "deny-ddl"),
        ("drop table t", "postgres", "default"),
        ("select * from orders where id = 1", "app", "default"),
    ];
    for (sql, user, want) in cases {
        let facts = analyze(sql, LexOptions::default()).remove(0);
        let mut req = r(|x| x.user = user);
        req.fp = Some(facts.fingerprint.0);
        req.facts = facts;
        let d = req.eval(&p);
        assert_eq!(&*d.rule_id, *want, "{sql} as {user}");
    }
}

/// (file name, text) pairs, a message fragment, its line, its severity.
type DiagCase<'a> = (Vec<(&'a str, String)>, &'a str, Option<usize>, Severity);

fn diag_cases() -> Vec<DiagCase<'static>> {
    use Severity::*;
    let one = |text: &str| vec![("10.toml", text.to_string())];
    let ok = |id: &str| rule(id, "deny", r#"tables = ["t"]"#);
    vec![
        (one("[[rule]\nid = \"x\"\n"), "TOML syntax error", Some(1), Error),
        (
            one("[[rule]]\nid = \"deny-secrets\"\ndescription = \"d\"\naction = \"deny\"\ntabels = [\"pg_shadow\"]\n"),
            "unknown key `tabels`, did you mean `tables`?",
            Some(5),
            Error,
        ),
        (one("[[rule]]\ndescription = \"d\"\naction = \"deny\"\n"), "rule without `id`", Some(1), Error),
        (one("\n[[rule]]\nid = \"a\"\naction = \"deny\"\n"), "missing `description`", Some(2), Error),
        (one("[[rule]]\nid = \"a\"\ndescription = \"d\"\n"), "missing `action`", Some(1), Error),
        (one("[[rule]]\nid = \"a\"\ndescription = \"d\"\naction = \"block\"\n"), "unknown action `block`", Some(4), Error),
        (one("[[rule]]\nid = \"a b\"\ndescription = \"d\"\naction = \"deny\"\n"), "bad rule id `a b`", Some(2), Error),
        (
            vec![("10.toml", ok("dup")), ("20.toml", format!("\n\n{}", rule("dup", "allow", r#"tables = ["u"]"#)))],
            "duplicate rule id (first defined at ",
            Some(4),
            Error,
        ),
        (one(&rule("a", "deny", "addresses = [\"10.0.0.0/33\"]")), "bad address `10.0.0.0/33`", Some(5), Error),
        (one(&rule("a", "deny", "message = \"no\\u0000pe\"")), "control character '\\0' is not allowed", Some(5), Error),
        (one("[policy]\ndeny_message = \"line\\nbreak\"\n"), "deny_message: control character '\\n'", Some(2), Error),
        (one(&rule("a", "deny", &format!("message = \"{}\"", "x".repeat(1001)))), "too long for a client error message", Some(5), Error),
        (one(&rule("a", "deny", "addresses = [\"10.0.0.x\"]")), "bad address `10.0.0.x`", Some(5), Error),
        (one(&rule("a", "deny", "time = [\"mon-fry 09:00-18:00\"]")), "unknown day `fry`", Some(5), Error),
        (one(&rule("a", "deny", "time = [\"25:00-26:00\"]")), "bad time `25:00`", Some(5), Error),
        (one(&rule("a", "deny", "operations = [\"selct\"]")), "unknown operation `selct`, did you mean `select`?", Some(5), Error),
        (one(&rule("a", "deny", "conditions = [\"injecton\"]")), "unknown condition `injecton`, did you mean `injection`?", Some(5), Error),
        (one(&rule("a", "deny", "users = [\"@admin\"]")), "unknown group `@admin`", Some(5), Error),
        (
            vec![("00.toml", GROUPS.to_string()), ("10.toml", rule("a", "deny", "users = [\"@admin\"]"))],
            "unknown group `@admin`, did you mean `admins`?",
            Some(5),
            Error,
        ),
        (one("[policy]\ntimezone = \"Mars/Olympus\"\n"), "unknown time zone `Mars/Olympus`", Some(2), Error),
        (one("[policy]\ndeny_sqlstate = \"4250\"\n"), "bad deny_sqlstate `4250`", Some(2), Error),
        (one("[policy]\ndefault_acton = \"deny\"\n"), "unknown key `default_acton`, did you mean `default_action`?", Some(2), Error),
        (
            vec![("00.toml", "[policy]\n".into()), ("10.toml", "\n[policy]\n".into())],
            "a second [policy] table",
            Some(2),
            Error,
        ),
        (one(&rule("a", "deny", "min_level = 5")), "min_level 5 is out of range", Some(5), Error),
        (one(&rule("a", "deny", "min_level = 0")), "min_level 0 is out of range", Some(5), Error),
        (one(&rule("a", "deny", "tables = []")), "`tables` is an empty list", Some(5), Error),
        (one(&rule("a", "deny", "tables = [\"!t\"]")), "`tables` does not support `!` exclusions", Some(5), Error),
        (one(&rule("a", "deny", "tables = \"t\"")), "`tables` must be a list of strings, not string", Some(5), Error),
        (one(&rule("a", "deny", "mode = \"enforced\"")), "unknown mode `enforced`, did you mean `enforce`?", Some(5), Error),
        (one(&rule("a", "deny", "audit = \"partial\"")), "unknown audit `partial`", Some(5), Error),
        (one("[rules]\n"), "unknown key `rules`, did you mean `rule`?", Some(1), Error),
        (one("[groups]\nadmins = [\"a\"]\n"), "", None, Warning),
        (
            vec![("00.toml", "[groups]\nadmins = [\"a\"]\n".into()), ("10.toml", "[groups]\nadmins = [\"b\"]\n".into())],
            "duplicate group `admins` (first defined at ",
            Some(2),
            Error,
        ),
        (one("[groups]\nadmins = [\"!a\"]\n"), "cannot be negated", Some(2), Error),
        (
            one(&[ok("a"), rule("b", "allow", "tables = [\"t\"]\nusers = [\"app\"]")].concat()),
            "can never decide: rule `a` (",
            Some(7),
            Error,
        ),
        (
            one(&[rule("a", "deny", r#"tables = ["hr.*"]"#), rule("b", "alert", "tables = [\"hr.s*\", \"hr.*\"]")].concat()),
            "can never raise an alert: rule `a` (",
            Some(7),
            Error,
        ),
        (
            one(&[rule("a", "deny", r#"conditions = ["injection"]"#), rule("b", "deny", "conditions = [\"tautology\"]\nusers = [\"x\"]")].concat()),
            "can never decide: rule `a`",
            Some(7),
            Error,
        ),
        (
            one(&[rule("a", "allow", ""), ok("b")].concat()),
            "rule with no match keys allows every statement",
            Some(1),
            Warning,
        ),
        (one(&rule("a", "alert", "")), "alert rule with no match keys", Some(1), Warning),
    ]
}

#[test]
fn diagnostics() {
    for (files, want, line, severity) in diag_cases() {
        let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let dir = write_dir(&refs);
        let diags = check(&opts(&dir));
        if want.is_empty() {
            assert!(diags.is_empty(), "{diags:?}");
            continue;
        }
        let d = diags.iter().find(|d| d.message.contains(want));
        let d = d.unwrap_or_else(|| panic!("no {want:?} in {diags:#?}"));
        assert_eq!((d.line, d.severity), (line, severity), "{want}: {d}");
        let shown = d.to_string();
        assert!(
            shown.contains(&format!("{}", d.file.as_ref().unwrap().display())),
            "{shown}"
        );
        let result = Policy::load(&opts(&dir));
        match severity {
            Severity::Error => {
                let err = result.expect_err(want);
                assert!(err.to_string().contains(want), "{err}");
            }
            Severity::Warning if diags.iter().all(|d| d.severity == Severity::Warning) => {
                let p = result.unwrap_or_else(|e| panic!("{want}: {e}"));
                assert!(p.warnings().iter().any(|w| w.message.contains(want)));
            }
            Severity::Warning => {
                let err = result.expect_err(want);
                assert!(
                    err.to_string()
                        .contains(&format!("warning: {}", d.file.as_ref().unwrap().display())),
                    "{err}"
                );
            }
        }
    }
}

#[test]
fn diagnostic_display() {
    let d = Diagnostic {
        severity: Severity::Error,
        file: Some(PathBuf::from("policies/packs/default/10-catalog.toml")),
        line: Some(12),
        rule_id: Some("deny-secrets".into()),
        message: "unknown key `tabels`, did you mean `tables`?".into(),
    };
    assert_eq!(
        d.to_string(),
        "policies/packs/default/10-catalog.toml:12: rule `deny-secrets`: unknown key `tabels`, did you mean `tables`?"
    );
    let w = Diagnostic {
        severity: Severity::Warning,
        file: None,
        line: None,
        rule_id: None,
        message: "m".into(),
    };
    assert_eq!(w.to_string(), "warning: m");
    let all = Diagnostics(vec![d, w]);
    assert_eq!(all.to_string().lines().count(), 2);
}

#[test]
fn missing_or_empty_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let diags = check(&opts(&dir));
    assert!(diags[0].message.contains("no policy files"), "{diags:?}");
    let diags = check(&LoadOptions {
        dir: dir.path().join("nope"),
        ..Default::default()
    });
    assert!(
        diags[0]
            .message
            .contains("cannot read the policy directory"),
        "{diags:?}"
    );
}

#[test]
fn data_file_errors_are_diagnostics() {
    let dir = write_dir(&[("10.toml", &rule("a", "deny", r#"tables = ["t"]"#))]);
    let class = dir.path().join("class.txt");
    std::fs::write(&class, "version = 1\n[[column]]\ntable = \"t\"\n").unwrap();
    let allow = dir.path().join("allow.txt");
    std::fs::write(
        &allow,
        "version = 1\n[[allow]]\nuser = \"a\"\ndatabase = \"b\"\nfingerprint = \"zz\"\n",
    )
    .unwrap();
    let diags = check(&LoadOptions {
        classification: Some(class.clone()),
        allowlist: Some(allow.clone()),
        ..opts(&dir)
    });
    let find = |frag: &str| {
        diags
            .iter()
            .find(|d| d.message.contains(frag))
            .unwrap_or_else(|| panic!("{frag}: {diags:?}"))
            .clone()
    };
    let c = find("without `column`");
    assert_eq!(
        (c.file.as_deref(), c.line),
        (Some(class.as_path()), Some(2))
    );
    let a = find("bad fingerprint");
    assert_eq!(
        (a.file.as_deref(), a.line),
        (Some(allow.as_path()), Some(5))
    );
    let missing = check(&LoadOptions {
        classification: Some(dir.path().join("none.toml")),
        ..opts(&dir)
    });
    assert!(missing
        .iter()
        .any(|d| d.message.contains("cannot read the classification file")));
}

fn packs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packs")
}

#[test]
fn shipped_packs_load_cleanly() {
    let mut seen = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(packs_dir())
        .expect("packs dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        // API scope packs have their own loader and test (api::tests).
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("api-"))
        })
        .collect();
    dirs.sort();
    for dir in dirs {
        let opts = LoadOptions {
            dir: dir.clone(),
            ..Default::default()
        };
        let diags = check(&opts);
        assert!(
            diags.is_empty(),
            "{}:\n{}",
            dir.display(),
            Diagnostics(diags)
        );
        let p = Policy::load(&opts).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.rule_count() > 0);
        seen += 1;
    }
    assert!(seen >= 2, "expected the default and strict-allowlist packs");
}

fn default_pack() -> Policy {
    Policy::load(&LoadOptions {
        dir: packs_dir().join("default"),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// pgbench -i, its TPC-B transaction, and psql's \d and \du queries.
const ADMIN_WORKLOAD: &[&str] = &[
    "drop table if exists pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers",
    "create table pgbench_history(tid int,bid int,aid    int,delta int,mtime timestamp,filler char(22))",
    "create table pgbench_accounts(aid    int not null,bid int,abalance int,filler char(84)) with (fillfactor=100)",
    "truncate table pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers",
    "insert into pgbench_branches(bid,bbalance) values(1,0)",
    "copy pgbench_accounts from stdin with (freeze on)",
    "vacuum analyze pgbench_branches",
    "alter table pgbench_branches add primary key (bid)",
    "alter table pgbench_accounts add constraint pgbench_accounts_pkey primary key (aid)",
    "select count(*) from pgbench_branches",
    "vacuum pgbench_branches",
    "truncate pgbench_history",
    "begin",
    "UPDATE pgbench_accounts SET abalance = abalance + -4093 WHERE aid = 40912",
    "SELECT abalance FROM pgbench_accounts WHERE aid = 40912",
    "UPDATE pgbench_tellers SET tbalance = tbalance + -4093 WHERE tid = 3",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 40912, -4093, CURRENT_TIMESTAMP)",
    "END",
    "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3",
    "SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolconnlimit, r.rolvaliduntil, r.rolreplication, r.rolbypassrls FROM pg_catalog.pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1",
    "select * from orders where id = 1",
    "set search_path = public",
    "show server_version",
];

#[test]
fn default_pack_lets_admins_work() {
    let p = default_pack();
    for user in ["postgres", "root", "dba_alice"] {
        for sql in ADMIN_WORKLOAD {
            for (i, facts) in analyze(sql, LexOptions::default()).into_iter().enumerate() {
                let mut req = r(|x| x.user = user);
                req.fp = Some(facts.fingerprint.0);
                req.facts = facts;
                req.stacked = i > 0;
                let d = req.eval(&p);
                assert!(
                    !d.block && d.action == Action::Allow,
                    "{user}: {sql}: {d:?}\n{}",
                    req.with(|q| p.explain(q))
                );
            }
        }
    }
}

#[test]
fn default_pack_denies_others() {
    let p = default_pack();
    let sql_cases: &[(&str, &str)] = &[
        ("drop table pgbench_accounts", "deny-ddl-dcl"),
        ("grant select on t to bob", "deny-ddl-dcl"),
        (
            "select usename, passwd from pg_shadow",
            "deny-catalog-secrets",
        ),
        ("select * from pg_catalog.pg_authid", "deny-catalog-secrets"),
        // The signal rule or the function list, whichever the analyser's
        // facts reach first.
        ("select pg_read_file('/etc/passwd')", "deny-server-"),
        (
            "select * from dblink('host=x', 'select 1') as t(a int)",
            "deny-server-",
        ),
        ("select * from orders where id = 1", "default"),
        (
            "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1",
            "default",
        ),
    ];
    for (sql, want) in sql_cases {
        let facts = analyze(sql, LexOptions::default()).remove(0);
        let mut req = r(|x| x.user = "app");
        req.fp = Some(facts.fingerprint.0);
        req.facts = facts;
        let d = req.eval(&p);
        let ok = if want.ends_with('-') {
            d.rule_id.starts_with(want)
        } else {
            &*d.rule_id == *want
        };
        assert!(ok, "{sql}: {} instead of {want}", d.rule_id);
        assert_eq!(d.block, *want != "default", "{sql}");
    }
    // Signal-based rules, with facts as the analyser reports them.
    let with = |user: &'static str, f: fn(&mut R)| {
        let mut x = r(|x| x.user = user);
        f(&mut x);
        x.eval(&p)
    };
    let d = with("app", |x| x.facts.signals = Signals::TAUTOLOGY);
    assert_eq!((&*d.rule_id, d.block), ("deny-injection", true));
    let d = with("postgres", |x| x.facts.signals = Signals::TAUTOLOGY);
    assert_eq!((&*d.rule_id, d.block), ("default", false));
    assert_eq!(d.alerts, vec![Arc::from("alert-injection-admins")]);
    let d = with("app", |x| {
        x.facts.operation = Operation::Delete;
        x.facts.unbounded_write = true;
    });
    assert_eq!(&*d.rule_id, "deny-unbounded-writes");
    let d = with("postgres", |x| {
        x.facts.operation = Operation::Delete;
        x.facts.unbounded_write = true;
    });
    assert!(!d.block);
    let d = with("postgres", |x| {
        x.facts.operation = Operation::CopyOut;
        x.facts.signals = Signals::PROGRAM_EXEC;
    });
    assert_eq!((&*d.rule_id, d.block), ("deny-server-file-access", true));
    let d = with("app", |x| x.facts.parse_error = Some("x".into()));
    assert_eq!((&*d.rule_id, d.block), ("default.unparsed", true));
    let d = with("postgres", |x| x.facts.parse_error = Some("x".into()));
    assert_eq!((&*d.rule_id, d.block), ("allow-admins-unparsed", false));
    let d = with("app", |x| {
        x.facts.signals = Signals::CATALOG_PROBE;
        x.stacked = true;
    });
    assert_eq!(
        d.alerts,
        vec![Arc::from("alert-catalog-probe"), Arc::from("alert-stacked")]
    );
    assert!(!d.block);
}

#[test]
fn strict_pack_after_learning() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.toml");
    let facts = analyze("select * from orders where id = 1", LexOptions::default()).remove(0);
    let mut text = allowlist::HEADER.to_string();
    text.push_str(&allowlist::render(&allowlist::Entry {
        user: "app".into(),
        database: "shop".into(),
        fingerprint: facts.fingerprint,
        statement: Some(facts.normalized.clone()),
    }));
    std::fs::write(&allow, text).unwrap();
    let p = Policy::load(&LoadOptions {
        dir: packs_dir().join("strict-allowlist"),
        allowlist: Some(allow),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let run = |user: &'static str, sql: &str, mode: Mode| {
        let facts = analyze(sql, LexOptions::default()).remove(0);
        let mut req = r(|x| {
            x.user = user;
            x.mode = mode;
        });
        req.fp = Some(facts.fingerprint.0);
        req.facts = facts;
        req.eval(&p)
    };
    let d = run("app", "select * from orders where id = 2", Mode::Enforce);
    assert_eq!((&*d.rule_id, d.block), ("default", false));
    let d = run("app", "select * from customers", Mode::Enforce);
    assert_eq!((&*d.rule_id, d.block), ("deny-not-allowlisted", true));
    let d = run("app", "select * from customers", Mode::Learn);
    assert_eq!(
        (&*d.rule_id, d.block, d.learn),
        ("deny-not-allowlisted", false, true)
    );
    let d = run("postgres", "drop table customers", Mode::Enforce);
    assert_eq!((&*d.rule_id, d.block), ("allow-admins", false));
    let d = run("postgres", "select * from pg_shadow", Mode::Enforce);
    assert_eq!((&*d.rule_id, d.block), ("deny-catalog-secrets", true));
}

#[test]
fn explanation_reads_well() {
    let p = default_pack();
    let facts = analyze(
        "select usename, passwd from pg_shadow",
        LexOptions::default(),
    )
    .remove(0);
    let mut req = r(|x| x.user = "app");
    req.fp = Some(facts.fingerprint.0);
    req.facts = facts;
    let text = req.with(|q| p.explain(q)).to_string();
    assert!(text.contains("MATCH deny-catalog-secrets ("), "{text}");
    assert!(
        text.contains("decision:       deny by rule `deny-catalog-secrets`, mode enforce: BLOCKED"),
        "{text}"
    );
    assert!(
        text.contains("message:        reading credential catalogs is not allowed"),
        "{text}"
    );
}

#[test]
fn mask_rules_accumulate_and_do_not_decide() {
    let dir = write_dir(&[(
        "10.toml",
        &[
            rule(
                "mask-a",
                "mask",
                "users = [\"analyst\"]\ntables = [\"*.citizens\"]\n[rule.mask.columns]\nid_number = \"keep(6,4)\"\n\"citizens.phone\" = \"keep(3,4)\"\n\"other.secret\" = \"redact\"\n[rule.mask.tags]\n\"pii.name\" = \"keep(1,0)\"\n\"finance.*\" = \"hash(sm3)\"",
            ),
            rule(
                "mask-b",
                "mask",
                "users = [\"analyst\"]\n[rule.mask.columns]\nid_number = \"redact\"\nemail = \"redact\"",
            ),
            rule("deny-secret", "deny", "tables = [\"secret\"]"),
        ]
        .concat(),
    )]);
    let class = dir.path().join("classification.toml");
    std::fs::write(
        &class,
        "version = 1\n[[column]]\ntable = \"public.citizens\"\ncolumn = \"xm\"\ntags = [\"pii.name\"]\n",
    )
    .unwrap();
    let p = Policy::load(&LoadOptions {
        classification: Some(class),
        mask_key: Some(Arc::from(&b"0123456789abcdef"[..])),
        ..opts(&dir)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let analyst = |tables: &[&str]| {
        r(|x| {
            x.user = "analyst";
            x.facts.tables = tables.iter().map(|t| t.to_string()).collect();
        })
    };
    let d = analyst(&["public.citizens"]).eval(&p);
    assert_eq!(
        (&*d.rule_id, d.block),
        ("default", false),
        "masks do not decide"
    );
    let m = d.masks.clone().expect("masks");
    // First rule naming a column wins; table-qualified patterns need the table.
    assert_eq!(&*m.column("id_number").unwrap().spec, "keep(6,4)");
    assert_eq!(&*m.column("ID_NUMBER").unwrap().rule_id, "mask-a");
    assert_eq!(&*m.column("phone").unwrap().spec, "keep(3,4)");
    assert!(
        m.column("secret").is_none(),
        "other.secret is not this table"
    );
    assert_eq!(&*m.column("email").unwrap().rule_id, "mask-b");
    // By classification tag (no content form).
    assert_eq!(&*m.column("xm").unwrap().spec, "keep(1,0)");
    assert!(m.column("note").is_none());
    // Content masking covers the detectable kinds the tag globs name.
    let kinds: Vec<&str> = m.content().iter().map(|(k, _)| k.tag()).collect();
    assert_eq!(kinds, ["finance.bank_card"]);
    assert_eq!(m.copy, CopyMasking::Refuse);

    // mask-a is limited to citizens; mask-b applies everywhere.
    let d = analyst(&["public.orders"]).eval(&p);
    let m = d.masks.expect("mask-b");
    assert!(m.column("phone").is_none());
    assert_eq!(&*m.column("id_number").unwrap().rule_id, "mask-b");
    // A later deny still refuses; another user is not masked.
    assert!(analyst(&["secret"]).eval(&p).block);
    assert!(r(|x| x.facts.tables = vec!["public.citizens".into()])
        .eval(&p)
        .masks
        .is_none());
    // Masking changes results, so like blocking it needs enforce mode.
    let d = r(|x| {
        x.user = "analyst";
        x.mode = Mode::Monitor;
        x.facts.tables = vec!["public.citizens".into()];
    })
    .eval(&p);
    assert!(d.masks.is_none());
}

#[test]
fn returned_limits_ride_on_the_decision() {
    let p = load(&[(
        "10.toml",
        &[
            rule("alert-ids", "alert", "returned = { \"pii.id_number\" = 100 }"),
            rule(
                "cut-phones",
                "deny",
                "users = [\"bulk\"]\nmessage = \"too many phones\"\nreturned = { \"pii.phone\" = 50, \"pii.email\" = 10 }",
            ),
            rule("allow-all", "allow", ""),
        ]
        .concat(),
    )]);
    let d = r(|x| x.user = "bulk").eval(&p);
    assert_eq!(
        &*d.rule_id, "allow-all",
        "a rule with `returned` does not decide"
    );
    let limits: Vec<(&str, &str, u64, bool)> = d
        .limits
        .iter()
        .map(|l| (&*l.rule_id, l.counted.name(), l.threshold, l.block))
        .collect();
    assert_eq!(
        limits,
        [
            ("alert-ids", "pii.id_number", 100, false),
            ("cut-phones", "pii.phone", 50, true),
            ("cut-phones", "pii.email", 10, true),
        ]
    );
    assert_eq!(&*d.limits[1].message, "too many phones");
    // In monitor mode a deny limit only alerts.
    let d = r(|x| {
        x.user = "bulk";
        x.mode = Mode::Monitor;
    })
    .eval(&p);
    assert!(d.limits.iter().all(|l| !l.block));
    let other = r(|x| x.user = "app").eval(&p);
    assert_eq!(other.limits.len(), 1);
    // explain says what the rule watches.
    let text = r(|x| x.user = "bulk").with(|req| p.explain(req).to_string());
    assert!(
        text.contains("watches the result (deny once it returns 50 pii.phone or 10 pii.email)"),
        "{text}"
    );
}

#[test]
fn mask_and_returned_diagnostics() {
    let cases: [(&str, &str); 17] = [
        ("action = \"mask\"\n", "a `mask` rule needs a [rule.mask] table"),
        ("action = \"deny\"\n[rule.mask.columns]\na = \"redact\"\n", "[rule.mask] is only read by rules with action = \"mask\""),
        ("action = \"mask\"\n[rule.mask.columns]\na = \"scramble\"\n", "mask.columns.a: masking strategy `scramble`: unknown strategy"),
        ("action = \"mask\"\n[rule.mask]\ncopy = \"always\"\n[rule.mask.columns]\na = \"redact\"\n", "mask.copy `always`"),
        ("action = \"mask\"\n[rule.mask]\ncolour = 1\n[rule.mask.columns]\na = \"redact\"\n", "unknown key `colour`"),
        ("action = \"mask\"\n[rule.mask]\n", "[rule.mask] masks nothing"),
        ("action = \"allow\"\nreturned = { \"pii.phone\" = 5 }\n", "`returned` needs action = \"alert\", \"deny\""),
        ("action = \"alert\"\nreturned = { \"pii.name\" = 5 }\n", "`pii.name` is not something danxia can count"),
        ("action = \"alert\"\nreturned = { \"pii.phone\" = 0 }\n", "returned.pii.phone must be a count from 1"),
        ("action = \"alert\"\nreturned = { statements = 5 }\n", "returned.statements counts statements over a `window`"),
        ("action = \"alert\"\nwindow = \"1h\"\n", "`window` needs `returned`"),
        ("action = \"alert\"\nwindow = \"1 fortnight\"\nreturned = { rows = 5 }\n", "window `1 fortnight`"),
        ("action = \"alert\"\nwindow = \"40d\"\nreturned = { rows = 5 }\n", "at most 31d"),
        ("action = \"alert\"\nanomaly = 0\n", "`anomaly` must be a score above 0"),
        ("action = \"alert\"\nanomaly = \"high\"\n", "`anomaly` must be a score above 0"),
        ("action = \"allow\"\nanomaly = 6\n", "`anomaly` needs action = \"alert\", \"deny\", \"throttle\" or \"quarantine\""),
        ("action = \"alert\"\nanomaly = 6\nreturned = { rows = 5 }\n", "either `anomaly` or `returned`"),
    ];
    for (body, want) in cases {
        let text = format!("[[rule]]\nid = \"x\"\ndescription = \"d\"\n{body}");
        let dir = write_dir(&[("10.toml", &text)]);
        let diags = check(&opts(&dir));
        assert!(
            diags
                .iter()
                .any(|d| d.severity == Severity::Error && d.message.contains(want)),
            "{want:?} not in {diags:#?}"
        );
    }
    // `check` validates hash strategies without the key; loading needs it.
    let dir = write_dir(&[(
        "10.toml",
        &rule(
            "m",
            "mask",
            "users = [\"u\"]\n[rule.mask.columns]\na = \"hash(sm3)\"",
        ),
    )]);
    assert!(check(&opts(&dir)).is_empty(), "{:?}", check(&opts(&dir)));
    let err = Policy::load(&opts(&dir)).expect_err("no key");
    assert!(err.to_string().contains("masking key"), "{err}");
}

#[test]
fn windows_anomaly_throttle_and_quarantine_ride_on_the_decision() {
    use crate::{Counted, FollowUp};
    let p = load(&[(
        "10.toml",
        &[
            rule(
                "drip",
                "alert",
                "window = \"8h\"\nreturned = { \"pii.id_number\" = 500, statements = 2000 }",
            ),
            rule(
                "bulk-rows",
                "deny",
                "users = [\"bulk\"]\nreturned = { rows = 5000 }",
            ),
            rule("odd", "alert", "anomaly = 6.5"),
            rule("very-odd", "quarantine", "users = [\"bulk\"]\nanomaly = 20"),
            rule("slow-scanners", "throttle", "users = [\"scanner\"]"),
            rule("honeypot", "quarantine", "tables = [\"honey\"]"),
            rule("allow-all", "allow", ""),
        ]
        .concat(),
    )]);
    let d = r(|x| x.user = "bulk").eval(&p);
    assert_eq!(&*d.rule_id, "allow-all");
    let limits: Vec<(&str, Counted, u64, Option<u64>, bool)> = d
        .limits
        .iter()
        .map(|l| (&*l.rule_id, l.counted, l.threshold, l.window, l.block))
        .collect();
    assert_eq!(
        limits,
        [
            (
                "drip",
                Counted::Values(danxia_detectors::pii::Kind::IdNumber),
                500,
                Some(8 * 3600),
                false
            ),
            ("drip", Counted::Statements, 2000, Some(8 * 3600), false),
            ("bulk-rows", Counted::Rows, 5000, None, true),
        ]
    );
    let anomaly: Vec<(&str, f64, bool, FollowUp)> = d
        .anomaly
        .iter()
        .map(|a| (&*a.rule_id, a.threshold(), a.block, a.follow_up))
        .collect();
    assert_eq!(
        anomaly,
        [
            ("odd", 6.5, false, FollowUp::None),
            ("very-odd", 20.0, true, FollowUp::Quarantine),
        ]
    );
    assert!(d.follow_ups.is_empty());

    // A throttle rule does not decide; it alerts and follows up.
    let d = r(|x| x.user = "scanner").eval(&p);
    assert_eq!(&*d.rule_id, "allow-all");
    assert!(d.alerts.iter().any(|a| &**a == "slow-scanners"));
    assert_eq!(
        d.follow_ups,
        [(Arc::from("slow-scanners"), FollowUp::Throttle)]
    );

    // A quarantine rule decides like deny, and quarantines.
    let d = r(|x| x.facts.tables = vec!["honey".into()]).eval(&p);
    assert_eq!(&*d.rule_id, "honeypot");
    assert!(d.block);
    assert_eq!(
        d.follow_ups,
        [(Arc::from("honeypot"), FollowUp::Quarantine)]
    );

    // Monitor mode: nothing blocks, nothing follows up; quarantine alerts.
    let d = r(|x| {
        x.facts.tables = vec!["honey".into()];
        x.mode = Mode::Monitor;
    })
    .eval(&p);
    assert!(!d.block);
    assert!(d.follow_ups.is_empty());
    assert!(d.alerts.iter().any(|a| &**a == "honeypot"));
    let d = r(|x| {
        x.user = "bulk";
        x.mode = Mode::Monitor;
    })
    .eval(&p);
    assert!(d
        .anomaly
        .iter()
        .all(|a| !a.block && a.follow_up == FollowUp::None));
    assert!(d.limits.iter().all(|l| !l.block));

    // explain names what watches the statement.
    let text = r(|x| x.user = "bulk").with(|req| p.explain(req).to_string());
    assert!(
        text.contains(
            "once it returns 500 pii.id_number or 2000 statements per identity per 28800 s"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "refuse or cut, and quarantine the identity once the anomaly score reaches 20"
        ),
        "{text}"
    );
    assert!(
        text.contains("withhold the rest once it returns 5000 rows (rule bulk-rows)"),
        "{text}"
    );
}

/// Deeply nested TOML in a policy file (100 000 nested arrays, then
/// inline tables) on a thread with a 256 KiB stack: toml_edit's nesting
/// limit turns it into a diagnostic, never a stack overflow. Regression:
/// the inline tables overflowed a 256 KiB stack before the limit (80
/// levels) was reached; lang::parse_document now grows the stack.
#[test]
fn deeply_nested_toml_is_a_clean_error_on_a_small_stack() {
    let n = 100_000;
    let arrays = format!("x = {}{}\n", "[".repeat(n), "]".repeat(n));
    let tables = format!("x = {}1{}\n", "{a = ".repeat(n), "}".repeat(n));
    for text in [arrays, tables] {
        let dir = write_dir(&[("00-deep.toml", &text)]);
        let opts = opts(&dir);
        let got = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || Policy::load(&opts).map(|_| ()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        let diags = got.expect_err("a nested policy file does not load");
        assert!(
            diags.0.iter().any(|d| d.severity == Severity::Error),
            "{diags}"
        );
    }
}
