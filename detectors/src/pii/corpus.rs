//! Precision and recall of the scanner on a generated corpus: for every
//! detectable kind, 2000 valid values and 2000 near misses (one digit
//! changed, wrong check, bad date or region, wrong length or prefix), plus
//! 2000 noise values (digit strings, order numbers, timestamps, 12-digit
//! phone-likes, UUIDs, prices), each alone or in a line of free text.
//! Deterministic (seeded), no network. Run with
//! `cargo test -p danxia-detectors pii_precision_recall -- --nocapture`
//! to see the table.
//!
//! A finding counts as a true positive only for the kind the value was
//! generated as (once per value); every other finding, and every finding in
//! a near miss or noise value, is a false positive of the kind found.

use super::gen::{self, Rng, TEST_YEAR};
use super::{Counts, Kind, Scanner};

const N: usize = 2_000;

fn valid(kind: Kind, rng: &mut Rng) -> String {
    match kind {
        Kind::IdNumber => gen::id_number(rng),
        Kind::Phone => gen::phone(rng),
        Kind::BankCard => gen::bank_card(rng),
        Kind::CreditCode => gen::credit_code(rng),
        Kind::Email => gen::email(rng),
        Kind::Passport => gen::passport(rng),
        Kind::TravelPermit => gen::travel_permit(rng),
        Kind::Ip => gen::ip(rng),
        Kind::Plate => gen::plate(rng),
        Kind::Name | Kind::Address => unreachable!("not detectable"),
    }
}

fn near_miss(kind: Kind, rng: &mut Rng) -> (&'static str, String) {
    match kind {
        Kind::IdNumber => gen::id_number_near_miss(rng),
        Kind::Phone => gen::phone_near_miss(rng),
        Kind::BankCard => gen::bank_card_near_miss(rng),
        Kind::CreditCode => gen::credit_code_near_miss(rng),
        Kind::Email => gen::email_near_miss(rng),
        Kind::Passport => gen::passport_near_miss(rng),
        Kind::TravelPermit => gen::travel_permit_near_miss(rng),
        Kind::Ip => gen::ip_near_miss(rng),
        Kind::Plate => gen::plate_near_miss(rng),
        Kind::Name | Kind::Address => unreachable!("not detectable"),
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    tp: u32,
    fp: u32,
    fn_: u32,
}

impl Tally {
    fn precision(&self) -> f64 {
        let found = self.tp + self.fp;
        if found == 0 {
            1.0
        } else {
            f64::from(self.tp) / f64::from(found)
        }
    }

    fn recall(&self) -> f64 {
        let all = self.tp + self.fn_;
        if all == 0 {
            1.0
        } else {
            f64::from(self.tp) / f64::from(all)
        }
    }
}

#[test]
fn pii_precision_recall() {
    let scanner = Scanner::all().with_max_birth_year(TEST_YEAR);
    let mut rng = Rng(0xda7a_5ec0_2024);
    let mut tally = [Tally::default(); Kind::COUNT];
    // Where the false positives came from: (found kind, source) → count.
    let mut sources: std::collections::BTreeMap<(Kind, String), u32> = Default::default();
    let mut examples: Vec<String> = Vec::new();
    let mut counts = Counts::new();

    let mut record = |counts: &Counts,
                      expected: Option<Kind>,
                      source: &str,
                      value: &str,
                      tally: &mut [Tally; Kind::COUNT]| {
        if let Some(k) = expected {
            if counts.get(k) > 0 {
                tally[k.index()].tp += 1;
            } else {
                tally[k.index()].fn_ += 1;
                if examples.len() < 40 {
                    examples.push(format!("missed {k}: {value:?}"));
                }
            }
        }
        for (k, n) in counts.iter() {
            let extra = if Some(k) == expected { n - 1 } else { n };
            if extra > 0 {
                tally[k.index()].fp += extra;
                *sources.entry((k, source.to_string())).or_default() += extra;
                if examples.len() < 40 {
                    examples.push(format!("{k} found in {source}: {value:?}"));
                }
            }
        }
    };

    for kind in Kind::DETECTABLE {
        for _ in 0..N {
            let value = valid(kind, &mut rng);
            let v = gen::embed(&mut rng, &value);
            counts.clear();
            scanner.scan(v.as_bytes(), &mut counts);
            record(
                &counts,
                Some(kind),
                &format!("valid {kind}"),
                &v,
                &mut tally,
            );
        }
        for _ in 0..N {
            let (why, bad) = near_miss(kind, &mut rng);
            let v = gen::embed(&mut rng, &bad);
            counts.clear();
            scanner.scan(v.as_bytes(), &mut counts);
            record(
                &counts,
                None,
                &format!("{kind} near miss ({why})"),
                &v,
                &mut tally,
            );
        }
    }
    for _ in 0..N {
        let (why, noise) = gen::noise(&mut rng);
        let v = gen::embed(&mut rng, &noise);
        counts.clear();
        scanner.scan(v.as_bytes(), &mut counts);
        record(&counts, None, &format!("noise ({why})"), &v, &mut tally);
    }

    println!(
        "\n{:<18} {:>6} {:>6} {:>6} {:>10} {:>8}",
        "kind", "TP", "FP", "FN", "precision", "recall"
    );
    for kind in Kind::DETECTABLE {
        let t = tally[kind.index()];
        println!(
            "{:<18} {:>6} {:>6} {:>6} {:>10.4} {:>8.4}",
            kind.tag(),
            t.tp,
            t.fp,
            t.fn_,
            t.precision(),
            t.recall()
        );
    }
    println!("\nfalse positives by source:");
    for ((kind, source), n) in &sources {
        println!("  {n:>5}  {kind} from {source}");
    }
    println!("\nexamples:");
    for e in &examples {
        println!("  {e}");
    }

    for kind in Kind::DETECTABLE {
        let t = tally[kind.index()];
        assert!(t.recall() >= 0.99, "{kind}: recall {:.4}", t.recall());
    }
    for kind in [Kind::IdNumber, Kind::BankCard, Kind::CreditCode] {
        let t = tally[kind.index()];
        assert!(
            t.precision() >= 0.95,
            "{kind}: precision {:.4}",
            t.precision()
        );
    }
}
