//! End-to-end scenarios over simulated weeks: normal traffic must stay
//! quiet, the classic incidents must stand out, and state must stay bounded
//! and survive a JSON round trip. Deterministic: a seeded xorshift and
//! injected time. Run with `--nocapture` to see the measured scores.

use super::stats::Ewma;
use super::*;

/// Local offset of the simulated deployment (UTC+8).
const OFFSET: i32 = 8 * 3_600;
/// 2024-01-01 00:00 local (UTC+8), a Monday: day 0 of every simulation.
const MONDAY: u64 = 1_704_067_200 - 8 * 3_600;
const DAY: u64 = 86_400;
const HOUR: u64 = 3_600;
const WINDOW: u64 = 600;
/// The alert threshold the scenarios are judged by.
const ALERT: f64 = 6.0;
/// The threshold of the shipped `alert-behaviour-anomaly` rule.
const DEFAULT_ALERT: f64 = 8.0;

const CITIZENS: &str = "public.citizens";
const ORDERS: &str = "public.orders";
const PORTAL_LOOKUP: u64 = 0x6cdf_8c3f_21ac_c0e8;
const PORTAL_ORDERS: u64 = 0x1f2e_3d4c_5b6a_7988;
const PORTAL_BULK: u64 = 0x0bad_0bad_0bad_0bad;
const ANALYST_BASE: u64 = 0xa11a_0000_0000_0000;
const ANALYST_TABLES: [&str; 4] = ["sales.orders", "sales.customers", "sales.items", "hr.staff"];

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
        self.next() % n.max(1)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// One simulated statement (owned; borrowed into an [`Observation`]).
#[derive(Debug, Clone)]
struct Stmt {
    at: u64,
    fingerprint: u64,
    tables: Vec<String>,
    rows: u64,
    bytes: u64,
    sensitive: Vec<(&'static str, u64)>,
    key: Option<u64>,
    error: bool,
}

impl Stmt {
    fn new(at: u64, fingerprint: u64, tables: &[&str], rows: u64) -> Stmt {
        Stmt {
            at,
            fingerprint,
            tables: tables.iter().map(|t| t.to_string()).collect(),
            rows,
            bytes: rows * 150,
            sensitive: Vec::new(),
            key: None,
            error: false,
        }
    }

    /// The same statement failing because of the caller: nothing returned.
    fn failed(mut self) -> Stmt {
        self.rows = 0;
        self.bytes = 120;
        self.sensitive.clear();
        self.error = true;
        self
    }

    fn observation(&self) -> Observation<'_> {
        Observation {
            at: self.at,
            utc_offset: OFFSET,
            fingerprint: self.fingerprint,
            tables: &self.tables,
            rows: self.rows,
            bytes: self.bytes,
            sensitive: &self.sensitive,
            key_digest: self.key,
            error: self.error,
        }
    }

    fn observe(
        &self,
        p: &mut Profile,
        cfg: &BaselineConfig,
        prior: Prior<'_>,
    ) -> (Assessment, Option<WindowTotals>) {
        p.observe(cfg, &self.observation(), prior)
    }
}

fn is_weekday(day: u64) -> bool {
    day % 7 < 5
}

/// A portal lookup of one citizen by id.
fn portal_lookup(rng: &mut Rng, at: u64) -> Stmt {
    let mut s = Stmt::new(at, PORTAL_LOOKUP, &[CITIZENS], 1);
    s.bytes = 380;
    s.sensitive = vec![("pii.id_number", 1), ("pii.phone", 1)];
    s.key = Some(rng.next());
    s
}

/// One portal window: `n` statements spread over the window; 4 in 5 are
/// lookups by id, the rest list a customer's orders.
fn portal_window(rng: &mut Rng, start: u64, n: u64) -> Vec<Stmt> {
    (0..n)
        .map(|i| {
            let at = start + i * WINDOW / n;
            if rng.below(5) < 4 {
                portal_lookup(rng, at)
            } else {
                let mut s = Stmt::new(at, PORTAL_ORDERS, &[ORDERS], rng.range(0, 30));
                s.key = Some(rng.below(100_000));
                s
            }
        })
        .collect()
}

/// The portal: weekdays 08:00–20:00, 170–230 statements per window (about
/// 150 distinct ids looked up), idle at night and at weekends.
fn portal_day(rng: &mut Rng, day: u64) -> Vec<Stmt> {
    if !is_weekday(day) {
        return Vec::new();
    }
    let open = MONDAY + day * DAY + 8 * HOUR;
    (0..72)
        .flat_map(|w| {
            let n = rng.range(170, 230);
            portal_window(rng, open + w * WINDOW, n)
        })
        .collect()
}

/// One analyst report query.
fn analyst_query(rng: &mut Rng, at: u64) -> Stmt {
    let first = ANALYST_TABLES[rng.below(4) as usize];
    let mut tables = vec![first];
    if rng.below(2) == 0 {
        let second = ANALYST_TABLES[rng.below(4) as usize];
        if second != first {
            tables.push(second);
        }
    }
    let rows = rng.range(20, 200);
    let mut s = Stmt::new(at, ANALYST_BASE + rng.below(12), &tables, rows);
    if tables.contains(&"sales.customers") {
        s.sensitive = vec![("pii.phone", rows / 2)];
    }
    s.key = Some(rng.below(40));
    // About one in 36 fails (a typo, a table it may not read): from the
    // draws above, so the other scenarios' sequences are unchanged.
    if rows.is_multiple_of(40) {
        s = s.failed();
    }
    s
}

/// The analyst: weekdays 09:00–18:00, 20–40 report queries per window of
/// 20–200 rows each, about one failing per window.
fn analyst_day(rng: &mut Rng, day: u64) -> Vec<Stmt> {
    if !is_weekday(day) {
        return Vec::new();
    }
    let open = MONDAY + day * DAY + 9 * HOUR;
    let mut out = Vec::new();
    for w in 0..54 {
        let n = rng.range(20, 40);
        for i in 0..n {
            out.push(analyst_query(rng, open + w * WINDOW + i * WINDOW / n));
        }
    }
    out
}

/// A profile that has lived `days` simulated days of `day`'s traffic.
fn learned(
    cfg: &BaselineConfig,
    rng: &mut Rng,
    days: u64,
    day: fn(&mut Rng, u64) -> Vec<Stmt>,
) -> Profile {
    let mut p = Profile::new(MONDAY);
    for d in 0..days {
        for s in day(rng, d) {
            s.observe(&mut p, cfg, Prior::None);
        }
    }
    p
}

/// Replays `stmts`; returns the highest-scoring assessment.
fn replay(p: &mut Profile, cfg: &BaselineConfig, stmts: &[Stmt], prior: Prior<'_>) -> Assessment {
    let mut worst = Assessment::default();
    for s in stmts {
        let (a, _) = s.observe(p, cfg, prior);
        if a.score > worst.score {
            worst = a;
        }
    }
    worst
}

fn has(a: &Assessment, m: Measure) -> bool {
    a.evidence.iter().any(|e| e.measure == m)
}

fn show(what: &str, a: &Assessment) {
    println!("{what}: score {:.2} (learning {})", a.score, a.learning);
    for e in &a.evidence {
        println!("    {e}");
    }
}

// 1. Normal days stay quiet.
#[test]
fn normal_week_raises_no_alert() {
    let cfg = BaselineConfig::default();
    for (name, day, seed) in [
        ("portal", portal_day as fn(&mut Rng, u64) -> Vec<Stmt>, 1),
        ("analyst", analyst_day, 2),
    ] {
        let mut rng = Rng(0x5eed_0000 + seed);
        let mut p = learned(&cfg, &mut rng, 10, day);
        assert!(!p.is_learning(&cfg, MONDAY + 10 * DAY));
        let mut overall = Assessment::default();
        // A whole week after learning: Thursday to Wednesday, so it
        // includes a weekend and a Monday morning.
        for d in 10..17 {
            let stmts = day(&mut rng, d);
            let worst = replay(&mut p, &cfg, &stmts, Prior::None);
            assert!(
                worst.score < ALERT,
                "{name} day {d}: {:.2} {:#?}",
                worst.score,
                worst.evidence
            );
            assert!(worst.evidence.iter().all(|e| e.score < ALERT));
            if worst.score > overall.score {
                overall = worst;
            }
        }
        show(
            &format!("{name}: highest score over a normal week"),
            &overall,
        );
    }
}

// 2. The 3 a.m. bulk read.
#[test]
fn bulk_read_at_night() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0001);
    let mut p = learned(&cfg, &mut rng, 15, portal_day);
    let mut bulk = Stmt::new(
        MONDAY + 15 * DAY + 3 * HOUR,
        PORTAL_BULK,
        &[CITIZENS],
        200_000,
    );
    bulk.bytes = 200_000 * 380;
    bulk.sensitive = vec![("pii.id_number", 200_000)];
    let (a, _) = bulk.observe(&mut p, &cfg, Prior::None);
    show("portal: 200 000 citizens at Tue 03:00", &a);
    assert!(a.score >= 10.0);
    assert!(!a.learning);
    assert!(has(&a, Measure::RowsPerStatement), "{a:#?}");
    assert!(has(&a, Measure::HourOfWeek), "{a:#?}");
    let hour = a.evidence.iter().find(|e| e.measure == Measure::HourOfWeek);
    assert_eq!(hour.and_then(|e| e.subject.as_deref()), Some("Tue 03:00"));
}

/// The drip: 40 rows with 40 id numbers every 3 minutes for an hour from
/// `start`, through a report query the analyst runs every day.
fn drip(start: u64) -> Vec<Stmt> {
    (0..20)
        .map(|i| {
            let mut s = Stmt::new(start + i * 180, ANALYST_BASE, &["sales.customers"], 40);
            s.sensitive = vec![("pii.id_number", 40)];
            s.key = Some(1_000 + i);
            s
        })
        .collect()
}

// 3. Drip exfiltration at night.
#[test]
fn drip_at_night() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0002);
    let p = learned(&cfg, &mut rng, 15, analyst_day);

    let mut night = p.clone();
    let stmts = drip(MONDAY + 15 * DAY + HOUR);
    let scores: Vec<f64> = stmts
        .iter()
        .map(|s| s.observe(&mut night, &cfg, Prior::None).0.score)
        .collect();
    let first_alert = scores.iter().position(|&s| s >= ALERT);
    println!(
        "analyst: drip from Tue 01:00: first statement {:.2}, max in the hour {:.2}, \
         first alert after {:?} statements",
        scores[0],
        scores.iter().copied().fold(0.0, f64::max),
        first_alert.map(|i| i + 1)
    );
    assert!(first_alert.is_some(), "{scores:?}");

    // The same statements in office hours are not an alert: it is the hour
    // that gives the night away, not the volume.
    let mut day = p.clone();
    let worst = replay(
        &mut day,
        &cfg,
        &drip(MONDAY + 15 * DAY + 11 * HOUR),
        Prior::None,
    );
    show("analyst: the same drip at Tue 11:00", &worst);
    assert!(worst.score < ALERT);
}

// 4. Enumeration: walking ids vs a portal that serves many ids.
#[test]
fn enumeration_walk() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0003);
    let mut analyst = learned(&cfg, &mut rng, 15, analyst_day);
    let start = MONDAY + 15 * DAY + 10 * HOUR;
    let walk: Vec<Stmt> = (0..1_000)
        .map(|i| {
            let mut s = Stmt::new(start + i * 3 / 5, ANALYST_BASE + 3, &["sales.customers"], 1);
            s.key = Some(i);
            s
        })
        .collect();
    let mut worst_enum = 0.0_f64;
    let mut last = Assessment::default();
    for s in &walk {
        let (a, _) = s.observe(&mut analyst, &cfg, Prior::None);
        for e in a
            .evidence
            .iter()
            .filter(|e| e.measure == Measure::Enumeration)
        {
            worst_enum = worst_enum.max(e.score);
        }
        last = a;
    }
    show(
        "analyst: 1 000 ids walked in one window (last statement)",
        &last,
    );
    assert!(has(&last, Measure::Enumeration));
    assert!(worst_enum >= ALERT);
    assert!(last
        .evidence
        .iter()
        .any(|e| e.subject.as_deref() == Some("a11a000000000003")));

    let mut rng = Rng(0x5eed_0004);
    let mut portal = learned(&cfg, &mut rng, 15, portal_day);
    let busy: Vec<Stmt> = (0..300)
        .map(|i| portal_lookup(&mut rng, start + i * 2))
        .collect();
    let mut portal_enum = 0.0_f64;
    let mut worst = Assessment::default();
    for s in &busy {
        let (a, _) = s.observe(&mut portal, &cfg, Prior::None);
        for e in a
            .evidence
            .iter()
            .filter(|e| e.measure == Measure::Enumeration)
        {
            portal_enum = portal_enum.max(e.score);
        }
        if a.score > worst.score {
            worst = a;
        }
    }
    println!(
        "enumeration: analyst walking 1 000 ids {worst_enum:.2}; portal serving 300 ids \
         {portal_enum:.2}"
    );
    show("portal: 300 distinct ids in one window", &worst);
    assert!(portal_enum < ALERT);
}

/// A population of established identities: 10-minute windows touching
/// 2–4 tables each.
fn population(cfg: &BaselineConfig, rng: &mut Rng) -> Population {
    let pool: Vec<String> = (0..20).map(|i| format!("app.table_{i}")).collect();
    let mut pop = Population::default();
    for i in 0..3_000 {
        let mut w = WindowTotals {
            start: MONDAY + i * WINDOW,
            statements: rng.range(10, 60),
            rows: rng.range(100, 3_000),
            new_fingerprints: rng.below(2),
            max_distinct_keys: rng.range(1, 30),
            ..WindowTotals::default()
        };
        w.bytes = w.rows * 200;
        // 0–2 failed statements (from the draws above: the population's
        // other measures are what they were before errors were counted).
        w.errors = w.statements % 3;
        let tables = rng.range(2, 4);
        for _ in 0..tables {
            let t = &pool[rng.below(pool.len() as u64) as usize];
            w.table_rows.insert(t.clone(), w.rows / tables);
            w.max_rows_per_statement
                .insert(t.clone(), rng.range(10, 300));
        }
        w.distinct_tables = w.table_rows.len() as u64;
        pop.fold(cfg, &w);
    }
    pop
}

/// A brand-new identity reading 60 catalogue tables in one window.
fn catalogue_sweep(start: u64) -> Vec<Stmt> {
    (0..60)
        .map(|i| {
            let table = format!("pg_catalog.table_{i}");
            Stmt::new(start + i * 5, 0xca7a_0000 + i, &[table.as_str()], 10)
        })
        .collect()
}

// 5. A new identity is judged against the population.
#[test]
fn new_identity_against_population() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0005);
    let pop = population(&cfg, &mut rng);
    assert_eq!(pop.samples(), 3_000);
    let start = MONDAY + 20 * DAY + 10 * HOUR;

    let mut p = Profile::new(start);
    let mut worst = Assessment::default();
    let mut tables_score = 0.0_f64;
    for s in catalogue_sweep(start) {
        let (a, _) = s.observe(&mut p, &cfg, Prior::Population(&pop));
        assert!(a.learning);
        for e in a
            .evidence
            .iter()
            .filter(|e| e.measure == Measure::DistinctTables)
        {
            tables_score = tables_score.max(e.score);
        }
        if a.score > worst.score {
            worst = a;
        }
    }
    show(
        "new identity: 60 catalogue tables, population prior",
        &worst,
    );
    assert!(tables_score >= ALERT, "{tables_score}");

    // Without a prior a learning identity says nothing.
    let mut p = Profile::new(start);
    for s in catalogue_sweep(start) {
        let (a, _) = s.observe(&mut p, &cfg, Prior::None);
        assert_eq!(a.score, 0.0);
        assert!(a.evidence.is_empty());
        assert!(a.learning);
    }
    // Nor before the population has learned anything.
    let empty = Population::default();
    let mut p = Profile::new(start);
    let (a, _) = catalogue_sweep(start)[0].observe(&mut p, &cfg, Prior::Population(&empty));
    assert_eq!((a.score, a.learning), (0.0, true));
}

// A known user from a new network: the new identity borrows the usual one's
// profile as its prior.
#[test]
fn known_user_new_network_against_own_profile() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0006);
    let usual = learned(&cfg, &mut rng, 15, analyst_day);
    let start = MONDAY + 15 * DAY + 14 * HOUR;
    let mut fresh = Profile::new(start);
    // Ordinary work from the new network: quiet.
    let normal: Vec<Stmt> = (0..30)
        .map(|i| analyst_query(&mut rng, start + i * 20))
        .collect();
    let worst = replay(&mut fresh, &cfg, &normal, Prior::Profile(&usual));
    assert!(worst.score < ALERT, "{worst:#?}");
    // Far more than usual: it stands out against the user's own baseline.
    let mut big = Stmt::new(start + 700, ANALYST_BASE, &["sales.customers"], 20_000);
    big.sensitive = vec![("pii.phone", 20_000)];
    let (a, _) = big.observe(&mut fresh, &cfg, Prior::Profile(&usual));
    show("analyst from a new network: 20 000 customers", &a);
    assert!(a.learning && a.score >= ALERT);
    assert!(has(&a, Measure::RowsPerStatement));
}

fn same(a: &Assessment, b: &Assessment) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    a.learning == b.learning
        && close(a.score, b.score)
        && a.evidence.len() == b.evidence.len()
        && a.evidence.iter().zip(&b.evidence).all(|(x, y)| {
            x.measure == y.measure
                && x.subject == y.subject
                && close(x.observed, y.observed)
                && close(x.expected, y.expected)
                && close(x.scale, y.scale)
                && close(x.score, y.score)
        })
}

// 6. A profile survives a JSON round trip.
#[test]
fn json_round_trip_scores_alike() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0007);
    let mut p = learned(&cfg, &mut rng, 10, portal_day);
    // Stop in the middle of a window, so the open window (tables, tags,
    // enumeration sets) is part of what is saved.
    let today = portal_day(&mut rng, 10);
    let (before, after) = today.split_at(today.len() / 2 + 37);
    replay(&mut p, &cfg, before, Prior::None);
    let json = serde_json::to_string(&p).unwrap();
    let mut q: Profile = serde_json::from_str(&json).unwrap();
    println!("portal profile: {} bytes of JSON", json.len());

    let mut bulk = Stmt::new(
        after[500].at,
        PORTAL_BULK,
        &[CITIZENS, "public.secret"],
        5_000,
    );
    bulk.sensitive = vec![("pii.id_number", 5_000)];
    let mut tail: Vec<Stmt> = after.to_vec();
    tail.insert(501, bulk);
    let mut evidence = 0;
    for s in &tail {
        let (a, wa) = s.observe(&mut p, &cfg, Prior::None);
        let (b, wb) = s.observe(&mut q, &cfg, Prior::None);
        assert!(same(&a, &b), "{a:#?}\n{b:#?}");
        assert_eq!(wa, wb);
        evidence += a.evidence.len();
    }
    assert!(evidence > 0, "the comparison covered some evidence");
    let (a, b) = (p.summary(&cfg, 0, OFFSET), q.summary(&cfg, 0, OFFSET));
    assert_eq!(a.to_string(), b.to_string());
}

// 7. A hostile client cannot grow a profile without bound.
#[test]
fn state_stays_bounded() {
    let cfg = BaselineConfig::default();
    let mut p = Profile::new(MONDAY);
    // Leaked once: the simulated statements hold `&'static` tags.
    let tags: Vec<&'static str> = (0..200)
        .map(|i| &*Box::leak(format!("tag.{i}").into_boxed_str()))
        .collect();
    for i in 0..100_000_u64 {
        // The first half in one window, the rest one every 6 s.
        let at = if i < 50_000 {
            MONDAY
        } else {
            MONDAY + (i - 50_000) * 6
        };
        let table = format!("schema.table_{i}");
        let tag = tags[(i % 200) as usize];
        let s = Stmt {
            at,
            fingerprint: i,
            tables: vec![table.clone(), table],
            rows: i,
            bytes: u64::MAX / 2,
            sensitive: vec![(tag, u64::MAX / 3)],
            key: Some(i),
            error: i.is_multiple_of(2),
        };
        s.observe(&mut p, &cfg, Prior::None);
    }
    // One fingerprint walking 100 000 keys in one window.
    let walk_start = MONDAY + 400 * DAY;
    for i in 0..100_000_u64 {
        let mut s = Stmt::new(walk_start + i / 1_000, 7, &["t"], 1);
        s.key = Some(i);
        s.observe(&mut p, &cfg, Prior::None);
    }
    assert!(p.tables.len() <= cfg.max_tables);
    assert!(p.fingerprints.len() <= cfg.max_fingerprints);
    assert!(p.global.sensitive.len() <= MAX_SENSITIVE_TAGS);
    assert!(p
        .slots
        .iter()
        .all(|s| s.sensitive.len() <= MAX_SENSITIVE_TAGS));
    let w = p.current.as_ref().unwrap();
    let (fps, keys) = w.enumeration.size();
    assert_eq!((fps, keys), (1, cfg.max_enum_keys));
    let json = serde_json::to_string(&p).unwrap();
    println!(
        "bounded profile after 200 000 hostile statements: {} bytes",
        json.len()
    );
    assert!(json.len() < 2_000_000);

    // The open window itself is bounded too: 100 000 tables and
    // fingerprints in one window.
    let mut p = Profile::new(MONDAY);
    for i in 0..100_000_u64 {
        let mut s = Stmt::new(MONDAY, i, &[format!("t{i}").as_str()], 1);
        s.key = Some(i);
        s.observe(&mut p, &cfg, Prior::None);
    }
    let w = p.current.as_ref().unwrap();
    assert_eq!(w.tables.len(), cfg.max_tables);
    assert_eq!(
        w.enumeration.size(),
        (cfg.max_enum_fingerprints, cfg.max_enum_fingerprints)
    );
    assert!(serde_json::to_string(&p).unwrap().len() < 2_000_000);
}

// 8. What an analyst reads.
#[test]
fn summary_text() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0008);
    let p = learned(&cfg, &mut rng, 15, portal_day);
    let now = MONDAY + 15 * DAY;
    let s = p.summary(&cfg, now, OFFSET);
    let text = s.to_string();
    println!("{text}");
    assert!(!s.learning);
    assert_eq!((s.hours.len(), s.heat.len()), (24, 7));
    assert!(s.heat.iter().all(|d| d.len() == 24));
    // Ranked by rows per active window: ~40 order lists of ~15 rows beat
    // ~160 single-row lookups.
    let top: Vec<&str> = s.top_tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(top, [ORDERS, CITIZENS]);
    assert_eq!(s.known_fingerprints, 2);
    let lines: Vec<&str> = text.lines().collect();
    let line = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in\n{text}"))
            .to_string()
    };
    assert_eq!(
        line("  first seen"),
        "  first seen       2024-01-01 00:00 UTC+08:00"
    );
    assert!(line("  learning").contains("no: established"));
    // The portal never fails.
    assert_eq!(
        line("  errors"),
        "  errors           usually 0 failed statements per window"
    );
    assert_eq!(s.usual_errors, 0.0);
    // Heat map: busy office hours on weekdays, blank nights and weekends.
    let tue = line("  Tue  |");
    assert_eq!(tue.chars().count(), "  Tue  |".len() + 24 + 1);
    let cells: Vec<char> = tue.chars().skip("  Tue  |".len()).take(24).collect();
    assert!(cells[..8].iter().all(|&c| c == ' '), "{tue}");
    assert!(cells[8..20].iter().all(|&c| c != ' '), "{tue}");
    assert!(cells[20..].iter().all(|&c| c == ' '), "{tue}");
    // Three Mondays in 15 days: Monday is the busiest day.
    assert!(line("  Mon  |").contains('@'));
    assert_eq!(line("  Sat  |"), format!("  Sat  |{}|", " ".repeat(24)));
    // Hour-of-day table: idle at 03:00, ~200 statements per window at 10:00
    // (the slot mixes weekdays and weekends, so it reads lower).
    assert_eq!(line("  03:00").split_whitespace().nth(1), Some("0"));
    assert_eq!(
        line("  10:00").split_whitespace().nth(3),
        Some("0"),
        "errors"
    );
    let ten: f64 = line("  10:00")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!((50.0..=230.0).contains(&ten), "{ten}");
    // Top tables and tags.
    assert!(line("  public.citizens").split_whitespace().nth(1) == Some("1"));
    assert!(text.contains("  pii.id_number"));
}

// 9. Gap filling is bounded however long the gap.
#[test]
fn gaps_fold_a_bounded_number_of_zeros() {
    let cfg = BaselineConfig::default();
    for gap in [30 * DAY, 1_000_000_000_000, u64::MAX - 2 * MONDAY] {
        let mut p = Profile::new(MONDAY);
        for i in 0..10 {
            Stmt::new(MONDAY + i * 60, 1, &["t"], 5).observe(&mut p, &cfg, Prior::None);
        }
        let before = p.global.samples();
        let (_, closed) = Stmt::new(MONDAY + gap, 1, &["t"], 5).observe(&mut p, &cfg, Prior::None);
        let closed = closed.expect("the open window is closed and returned");
        assert_eq!((closed.statements, closed.rows), (10, 50));
        let folded = p.global.samples() - before;
        assert_eq!(folded, 1 + cfg.max_fill_windows, "gap {gap}");
        assert_eq!(p.active_windows, 1);
    }
    // A short gap folds exactly its empty windows.
    let mut p = Profile::new(MONDAY);
    Stmt::new(MONDAY, 1, &["t"], 5).observe(&mut p, &cfg, Prior::None);
    Stmt::new(MONDAY + 5 * WINDOW, 1, &["t"], 5).observe(&mut p, &cfg, Prior::None);
    assert_eq!(p.global.samples(), 5);
}

#[test]
fn tick_closes_idle_windows_once() {
    let cfg = BaselineConfig::default();
    let mut p = Profile::new(MONDAY);
    assert!(
        p.tick(&cfg, MONDAY + DAY, OFFSET).is_none(),
        "nothing seen yet"
    );
    Stmt::new(MONDAY + 30, 1, &["t"], 5).observe(&mut p, &cfg, Prior::None);
    assert!(
        p.tick(&cfg, MONDAY + 599, OFFSET).is_none(),
        "window still open"
    );
    let w = p.tick(&cfg, MONDAY + 600, OFFSET).expect("closed");
    assert_eq!((w.start, w.statements), (MONDAY, 1));
    assert!(p.tick(&cfg, MONDAY + 3_000, OFFSET).is_none());
    assert_eq!(p.global.samples(), 5);
    // A late statement for a folded window counts in the next open one.
    let (_, closed) = Stmt::new(MONDAY + 10, 1, &["t"], 5).observe(&mut p, &cfg, Prior::None);
    assert!(closed.is_none());
    assert_eq!(
        p.current.as_ref().map(|w| w.index),
        Some((MONDAY + 3_000) / WINDOW)
    );
    // Changing the window length restarts window tracking, not the stats.
    let cfg5 = BaselineConfig {
        window_secs: 300,
        ..cfg.clone()
    };
    assert!(p.tick(&cfg5, MONDAY + 9_000, OFFSET).is_none());
    assert_eq!(p.global.samples(), 5);
}

#[test]
fn preview_agrees_with_observe_on_what_it_can_know() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0009);
    let p = learned(&cfg, &mut rng, 15, analyst_day);
    let at = MONDAY + 15 * DAY + 2 * HOUR;
    let tables = vec!["hr.salaries".to_owned()];
    let a = p.preview(&cfg, at, OFFSET, 0xdead, &tables, Some(1), Prior::None);
    show("analyst: preview of a new table at Tue 02:00", &a);
    assert!(has(&a, Measure::HourOfWeek) && has(&a, Measure::NewTable));
    let mut q = p.clone();
    let (b, _) = Stmt::new(at, 0xdead, &["hr.salaries"], 0).observe(&mut q, &cfg, Prior::None);
    assert!(same(&a, &b), "{a:#?}\n{b:#?}");
    // Previewing records nothing.
    assert_eq!(p.statements_seen(), q.statements_seen() - 1);
    // Enumeration as if the key were added.
    let mut q = p.clone();
    let start = MONDAY + 15 * DAY + 10 * HOUR;
    for i in 0..400 {
        let mut s = Stmt::new(start + i, ANALYST_BASE, &["sales.orders"], 1);
        s.key = Some(i);
        s.observe(&mut q, &cfg, Prior::None);
    }
    let a = q.preview(
        &cfg,
        start + 401,
        OFFSET,
        ANALYST_BASE,
        &[],
        Some(9_999),
        Prior::None,
    );
    let e = a
        .evidence
        .iter()
        .find(|e| e.measure == Measure::Enumeration);
    assert_eq!(e.map(|e| e.observed), Some(401.0));
    // A learning identity previews against its prior, or not at all.
    let fresh = Profile::new(at);
    assert_eq!(
        fresh
            .preview(&cfg, at, OFFSET, 1, &tables, None, Prior::None)
            .score,
        0.0
    );
    assert!(
        fresh
            .preview(&cfg, at, OFFSET, 1, &tables, None, Prior::None)
            .learning
    );
}

#[test]
fn rows_for_score_is_where_the_score_is_reached() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_000a);
    let p = learned(&cfg, &mut rng, 15, analyst_day);
    let now = MONDAY + 15 * DAY + 10 * HOUR;
    let tables: Vec<String> = ["sales.orders", "hr.staff", "nowhere"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    let rows = p
        .rows_for_score(&cfg, &tables, ALERT, now)
        .expect("learned tables");
    println!("analyst: a statement reaches {ALERT} on rows per statement at {rows} rows");
    let score_at = |rows: u64| {
        tables
            .iter()
            .filter_map(|t| p.tables.get(t))
            .filter_map(|t| {
                t.per_statement.score(
                    rows as f64,
                    FLOOR_ROWS_PER_STATEMENT,
                    cfg.min_samples,
                    cfg.score_cap,
                )
            })
            .map(|d| d.score)
            .fold(0.0, f64::max)
    };
    assert!(score_at(rows) >= ALERT);
    assert!(score_at(rows - 1) < ALERT);
    assert_eq!(p.rows_for_score(&cfg, &tables[2..], ALERT, now), None);
    assert_eq!(
        Profile::new(now).rows_for_score(&cfg, &tables, ALERT, now),
        None
    );
}

/// Per-observe cost on an established profile with 50 tables. Run with
/// `cargo test --release -p danxia-detectors observe_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn observe_cost() {
    let cfg = BaselineConfig::default();
    let tables: Vec<String> = (0..50).map(|i| format!("app.table_{i:02}")).collect();
    let mut rng = Rng(0x5eed_000b);
    let stmts: Vec<Stmt> = (0..1_000_000_u64)
        .map(|i| {
            let t = &tables[rng.below(50) as usize];
            let mut s = Stmt::new(
                MONDAY + i * 2,
                rng.below(200),
                &[t.as_str()],
                rng.range(1, 100),
            );
            s.sensitive = vec![("pii.phone", 1)];
            s.key = Some(rng.below(1_000));
            s
        })
        .collect();
    let mut p = Profile::new(MONDAY);
    let (warm, timed) = stmts.split_at(400_000);
    replay(&mut p, &cfg, warm, Prior::None);
    assert!(!p.is_learning(&cfg, timed[0].at));
    let started = std::time::Instant::now();
    let mut total = 0.0;
    for s in timed {
        total += s.observe(&mut p, &cfg, Prior::None).0.score;
    }
    let per = started.elapsed() / timed.len() as u32;
    let started = std::time::Instant::now();
    for s in timed.iter().take(100_000) {
        total += p
            .preview(
                &cfg,
                s.at,
                OFFSET,
                s.fingerprint,
                &s.tables,
                s.key,
                Prior::None,
            )
            .score;
    }
    let per_preview = started.elapsed() / 100_000;
    println!("observe: {per:?} per statement; preview: {per_preview:?} (checksum {total:.1})");
}

// A nightly job: a few small aggregates and one ~2000-row export on the
// same table, once a night. It stays learning for days (one or two active
// windows a night), but its own history of the table soon judges it, not
// the population's much smaller statements on that table.
#[test]
fn nightly_export_is_its_own_usual_while_learning() {
    let cfg = BaselineConfig {
        learning_secs: 30 * DAY,
        ..BaselineConfig::default()
    };
    let mut rng = Rng(0x5eed_0010);
    let pop = population(&cfg, &mut rng);
    let mut p = Profile::new(MONDAY);
    let night = |day: u64, rng: &mut Rng| -> Vec<Stmt> {
        let t = MONDAY + day * DAY + 2 * HOUR + rng.range(0, 600);
        vec![
            Stmt::new(t, 0x1000, &["app.table_1"], 12),
            Stmt::new(t + 60, 0x1001, &["app.table_2"], 5),
            Stmt::new(t + 120, 0x1002, &["app.table_1"], rng.range(1_900, 2_100)),
        ]
    };
    for day in 0..5 {
        replay(&mut p, &cfg, &night(day, &mut rng), Prior::Population(&pop));
    }
    let sixth = night(5, &mut rng);
    let judged = replay(&mut p, &cfg, &sixth, Prior::Population(&pop));
    show("nightly job, sixth night", &judged);
    assert!(
        p.is_learning(&cfg, sixth[2].at),
        "still learning: few active windows"
    );
    assert!(
        !judged
            .evidence
            .iter()
            .any(|e| e.measure == Measure::RowsPerStatement && e.score >= 1.0),
        "its own export history judges it"
    );
    assert!(judged.score < ALERT, "{}", judged.score);
    // The same export from a brand-new identity is judged on the population.
    let mut fresh = Profile::new(MONDAY + 5 * DAY);
    let first = replay(
        &mut fresh,
        &cfg,
        &night(5, &mut rng),
        Prior::Population(&pop),
    );
    assert!(has(&first, Measure::RowsPerStatement), "{first:?}");
}

/// `n` analyst queries over the window from `start`, `failed` of them (every
/// one but each `n / (n − failed)`-th, spread through the window) failing.
fn analyst_window_with_errors(rng: &mut Rng, start: u64, n: u64, failed: u64) -> Vec<Stmt> {
    (0..n)
        .map(|i| {
            let s = analyst_query(rng, start + i * WINDOW / n);
            // Exactly `failed` of them: the i-th fails when the running
            // count of failures falls behind its share.
            let fail = (i + 1) * failed / n > i * failed / n;
            if fail {
                s.failed()
            } else {
                Stmt { error: false, ..s }
            }
        })
        .collect()
}

fn errors_evidence(a: &Assessment) -> Option<&Evidence> {
    a.evidence.iter().find(|e| e.measure == Measure::Errors)
}

// 10. Probing: a burst of failed statements (401/403/404, permission denied,
// undefined table) from an identity that rarely fails.
#[test]
fn error_burst_is_probing() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0011);
    let p = learned(&cfg, &mut rng, 15, analyst_day);
    let usual = p.summary(&cfg, MONDAY + 15 * DAY, OFFSET).usual_errors;
    println!("analyst: usually {usual:.2} failed statements per window");
    assert!(usual > 0.0 && usual < 3.0, "{usual}");
    let start = MONDAY + 15 * DAY + 10 * HOUR;

    // 40 of 50 statements in one window fail.
    let mut probe = p.clone();
    let stmts = analyst_window_with_errors(&mut rng, start, 50, 40);
    assert_eq!(stmts.iter().filter(|s| s.error).count(), 40);
    let mut last = Assessment::default();
    for s in &stmts {
        last = s.observe(&mut probe, &cfg, Prior::None).0;
    }
    show("analyst: 40 of 50 statements fail in one window", &last);
    let e = errors_evidence(&last).expect("errors evidence");
    assert_eq!(e.observed, 40.0);
    assert!(e.score >= DEFAULT_ALERT, "{e}");
    assert!(last.score >= DEFAULT_ALERT, "{}", last.score);
    assert!(e
        .to_string()
        .starts_with("failed statements in this window: 40 (usual "));
    // The next statement is refused before it runs by an `anomaly` deny
    // rule: the window's failures so far are in the preview.
    let next = analyst_query(&mut rng, start + 590);
    let pre = probe.preview(
        &cfg,
        next.at,
        OFFSET,
        next.fingerprint,
        &next.tables,
        next.key,
        Prior::None,
    );
    let e = errors_evidence(&pre).expect("errors evidence before it runs");
    assert!(e.score >= DEFAULT_ALERT, "{e}");

    // 3 failures in an ordinary window are a typo or two: no evidence.
    let mut typo = p.clone();
    let stmts = analyst_window_with_errors(&mut rng, start, 30, 3);
    assert_eq!(stmts.iter().filter(|s| s.error).count(), 3);
    for s in &stmts {
        let (a, _) = s.observe(&mut typo, &cfg, Prior::None);
        assert!(errors_evidence(&a).is_none(), "{a:#?}");
    }
}

/// Route fingerprints of the busy API (hash of method + route template).
const API_ROUTES: [(u64, &str); 4] = [
    (0xa910_0000_0000_0001, "/persons/{id}"),
    (0xa910_0000_0000_0002, "/persons/{id}/addresses"),
    (0xa910_0000_0000_0003, "/permits/{id}"),
    (0xa910_0000_0000_0004, "/permits"),
];

/// One window of the busy API client: `n` requests, `failed` of them 4xx.
fn api_window(rng: &mut Rng, start: u64, n: u64, failed: u64) -> Vec<Stmt> {
    (0..n)
        .map(|i| {
            let (fp, route) = API_ROUTES[rng.below(4) as usize];
            let mut s = Stmt::new(start + i * WINDOW / n, fp, &[route], rng.range(1, 3));
            s.key = Some(rng.below(1_000_000));
            if (i + 1) * failed / n > i * failed / n {
                s = s.failed();
            }
            s
        })
        .collect()
}

/// A busy API client: every day 10:00–12:00, ~5 000 requests per window of
/// which 10–20 are answered 404 (stale ids: its usual).
fn api_day(rng: &mut Rng, day: u64) -> Vec<Stmt> {
    let open = MONDAY + day * DAY + 10 * HOUR;
    (0..12)
        .flat_map(|w| {
            let n = rng.range(4_800, 5_200);
            let failed = rng.range(10, 20);
            api_window(rng, open + w * WINDOW, n, failed)
        })
        .collect()
}

// 11. The share matters: 20 failures among 5 000 requests are a busy client's
// usual 404s; 25 making up most of a window are not.
#[test]
fn busy_identity_errors_are_usual() {
    let cfg = BaselineConfig {
        learning_secs: 2 * DAY,
        ..BaselineConfig::default()
    };
    let mut rng = Rng(0x5eed_0012);
    let p = learned(&cfg, &mut rng, 3, api_day);
    let start = MONDAY + 3 * DAY + 10 * HOUR;
    assert!(!p.is_learning(&cfg, start));
    let usual = p.summary(&cfg, start, OFFSET).hours[10].errors;
    println!("api client: usually {usual:.1} failed requests per window at 10:00");
    assert!((12.0..=18.0).contains(&usual), "{usual}");

    let mut busy = p.clone();
    for s in api_window(&mut rng, start, 5_000, 20) {
        let (a, _) = s.observe(&mut busy, &cfg, Prior::None);
        assert!(errors_evidence(&a).is_none(), "{a:#?}");
    }

    // A few more failures, but making up most of a small window: it
    // stands out (mildly: the client is used to failures).
    let mut sparse = p.clone();
    let worst = replay(
        &mut sparse,
        &cfg,
        &api_window(&mut rng, start, 40, 25),
        Prior::None,
    );
    show("api client: 25 of 40 requests fail", &worst);
    let e = errors_evidence(&worst).expect("errors evidence");
    assert!(e.score >= 1.0 && e.score < ALERT, "{e}");
}

// 12. A learning identity is compared with the population on errors too.
#[test]
fn new_identity_probing_against_population() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0013);
    let pop = population(&cfg, &mut rng);
    let start = MONDAY + 20 * DAY + 10 * HOUR;
    let mut p = Profile::new(start);
    let stmts = api_window(&mut rng, start, 50, 40);
    let worst = replay(&mut p, &cfg, &stmts, Prior::Population(&pop));
    show(
        "new identity: 40 of 50 requests refused, population prior",
        &worst,
    );
    assert!(worst.learning);
    let e = errors_evidence(&worst).expect("errors evidence");
    assert!(e.score >= DEFAULT_ALERT, "{e}");
    assert!(e.expected > 0.5 && e.expected < 1.5, "population usual {e}");
}

/// Removes every `errors` field, as saved before errors were counted.
fn strip_errors(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("errors");
            m.values_mut().for_each(strip_errors);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_errors),
        _ => {}
    }
}

// 13. Profiles and the population saved before errors were counted still
// load; errors are then learned from scratch, not assumed to have been 0.
#[test]
fn state_saved_before_errors_loads() {
    let cfg = BaselineConfig::default();
    let mut rng = Rng(0x5eed_0014);
    let p = learned(&cfg, &mut rng, 15, analyst_day);
    let mut json = serde_json::to_value(&p).unwrap();
    strip_errors(&mut json);
    assert!(!json.to_string().contains("\"errors\""));
    let mut old: Profile = serde_json::from_value(json).unwrap();
    assert_eq!(old.global.errors, Ewma::default());
    assert_eq!(old.global.samples(), p.global.samples());

    let mut pop = serde_json::to_value(population(&cfg, &mut rng)).unwrap();
    strip_errors(&mut pop);
    let pop: Population = serde_json::from_value(pop).unwrap();
    assert_eq!(pop.samples(), 3_000);
    let mut w = serde_json::to_value(WindowTotals::default()).unwrap();
    strip_errors(&mut w);
    assert_eq!(
        serde_json::from_value::<WindowTotals>(w).unwrap(),
        WindowTotals::default()
    );

    // Nothing learned yet: a burst right after the upgrade is not scored.
    let start = MONDAY + 15 * DAY + 10 * HOUR;
    let mut now = old.clone();
    let worst = replay(
        &mut now,
        &cfg,
        &analyst_window_with_errors(&mut rng, start, 50, 40),
        Prior::None,
    );
    assert!(errors_evidence(&worst).is_none(), "{worst:#?}");
    // A day of ordinary traffic later it is.
    replay(&mut old, &cfg, &analyst_day(&mut rng, 15), Prior::None);
    let next = MONDAY + 16 * DAY + 10 * HOUR;
    let worst = replay(
        &mut old,
        &cfg,
        &analyst_window_with_errors(&mut rng, next, 50, 40),
        Prior::None,
    );
    show("analyst after the upgrade and a day: 40 of 50 fail", &worst);
    let e = errors_evidence(&worst).expect("errors evidence");
    assert!(e.score >= DEFAULT_ALERT, "{e}");
}
