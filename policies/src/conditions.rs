//! Conditions (`conditions = [...]` in a rule): named properties of one
//! statement in its session, as a bitmask. Owns the names (the contract
//! with the docs and policy files) and how each is computed from the facts;
//! never looks at anything but the request and the allowlist verdict.

use danxia_detectors::{Operation, Signals, StatementFacts};

/// The detector signals occupy the low bits exactly as [`Signals::bits`]
/// has them; the conditions below sit above them.
pub(crate) const UNBOUNDED_WRITE: u32 = 1 << 16;
pub(crate) const NO_LIMIT: u32 = 1 << 17;
pub(crate) const SELECT_STAR: u32 = 1 << 18;
pub(crate) const NOT_ALLOWLISTED: u32 = 1 << 19;
pub(crate) const PARSE_ERROR: u32 = 1 << 20;
pub(crate) const STACKED: u32 = 1 << 21;
pub(crate) const INJECTION: u32 = 1 << 22;

/// Signals that on their own mean `injection`.
pub(crate) const INJECTION_SIGNALS: Signals = Signals::TAUTOLOGY
    .union(Signals::UNION_SELECT)
    .union(Signals::COMMENT_TRUNCATION)
    .union(Signals::TIME_DELAY)
    .union(Signals::ENCODED_LITERAL);

const OWN: [(u32, &str); 7] = [
    (UNBOUNDED_WRITE, "unbounded_write"),
    (NO_LIMIT, "no_limit"),
    (SELECT_STAR, "select_star"),
    (NOT_ALLOWLISTED, "not_allowlisted"),
    (PARSE_ERROR, "parse_error"),
    (STACKED, "stacked"),
    (INJECTION, "injection"),
];

/// Every condition name with its bit: ours, then the detector signals.
pub(crate) fn all() -> impl Iterator<Item = (u32, &'static str)> {
    OWN.into_iter()
        .chain(Signals::NAMED.iter().map(|(s, n)| (s.bits(), *n)))
}

pub(crate) fn by_name(name: &str) -> Option<u32> {
    all().find(|(_, n)| *n == name).map(|(b, _)| b)
}

/// Names of the conditions set in `mask`, in [`all`]'s order.
pub(crate) fn names(mask: u32) -> Vec<&'static str> {
    all()
        .filter(|(b, _)| mask & b != 0)
        .map(|(_, n)| n)
        .collect()
}

/// Conditions `other` implies: `injection` holds whenever one of its
/// signals does, so a rule on `injection` covers a rule on `tautology`.
pub(crate) fn implied(mask: u32) -> u32 {
    if mask & INJECTION != 0 {
        mask | INJECTION_SIGNALS.bits()
    } else {
        mask
    }
}

/// The conditions that hold for a statement, except `not_allowlisted`
/// (which needs the allowlist; the caller adds it).
pub(crate) fn held(facts: &StatementFacts, stacked: bool) -> u32 {
    let signals = facts.signals;
    let mut m = signals.bits();
    let flag = |b: bool, bit: u32| if b { bit } else { 0 };
    m |= flag(facts.unbounded_write, UNBOUNDED_WRITE);
    m |= flag(
        matches!(facts.operation, Operation::Select | Operation::CopyOut)
            && !facts.tables.is_empty()
            && !facts.limited,
        NO_LIMIT,
    );
    m |= flag(facts.select_star, SELECT_STAR);
    m |= flag(facts.parse_error.is_some(), PARSE_ERROR);
    m |= flag(stacked, STACKED);
    m |= flag(
        signals.intersects(INJECTION_SIGNALS) || (stacked && !signals.is_empty()),
        INJECTION,
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(f: impl FnOnce(&mut StatementFacts)) -> StatementFacts {
        let mut x = StatementFacts {
            operation: Operation::Select,
            ..Default::default()
        };
        f(&mut x);
        x
    }

    #[test]
    fn names_are_unique_and_known() {
        let mut seen = std::collections::HashSet::new();
        let mut bits = 0;
        for (b, n) in all() {
            assert!(seen.insert(n), "{n}");
            assert_eq!(bits & b, 0, "{n} reuses a bit");
            bits |= b;
            assert_eq!(by_name(n), Some(b));
        }
        assert_eq!(seen.len(), 17);
        assert_eq!(by_name("nope"), None);
    }

    #[test]
    fn each_condition() {
        type Case = (&'static str, StatementFacts, bool, bool);
        let cases: Vec<Case> = vec![
            (
                "unbounded_write",
                facts(|f| f.unbounded_write = true),
                false,
                true,
            ),
            ("unbounded_write", facts(|_| {}), false, false),
            (
                "no_limit",
                facts(|f| f.tables = vec!["t".into()]),
                false,
                true,
            ),
            (
                "no_limit",
                facts(|f| {
                    f.tables = vec!["t".into()];
                    f.limited = true
                }),
                false,
                false,
            ),
            ("no_limit", facts(|_| {}), false, false),
            (
                "no_limit",
                facts(|f| {
                    f.tables = vec!["t".into()];
                    f.operation = Operation::CopyOut
                }),
                false,
                true,
            ),
            (
                "no_limit",
                facts(|f| {
                    f.tables = vec!["t".into()];
                    f.operation = Operation::Delete
                }),
                false,
                false,
            ),
            ("select_star", facts(|f| f.select_star = true), false, true),
            (
                "parse_error",
                facts(|f| f.parse_error = Some("x".into())),
                false,
                true,
            ),
            ("parse_error", facts(|_| {}), false, false),
            ("stacked", facts(|_| {}), true, true),
            ("stacked", facts(|_| {}), false, false),
            (
                "tautology",
                facts(|f| f.signals = Signals::TAUTOLOGY),
                false,
                true,
            ),
            (
                "catalog_secret",
                facts(|f| f.signals = Signals::CATALOG_SECRET),
                false,
                true,
            ),
            (
                "injection",
                facts(|f| f.signals = Signals::TAUTOLOGY),
                false,
                true,
            ),
            (
                "injection",
                facts(|f| f.signals = Signals::ENCODED_LITERAL),
                false,
                true,
            ),
            (
                "injection",
                facts(|f| f.signals = Signals::CATALOG_PROBE),
                false,
                false,
            ),
            (
                "injection",
                facts(|f| f.signals = Signals::CATALOG_PROBE),
                true,
                true,
            ),
            ("injection", facts(|_| {}), true, false),
        ];
        for (name, f, stacked, want) in cases {
            let bit = by_name(name).unwrap();
            assert_eq!(
                held(&f, stacked) & bit != 0,
                want,
                "{name} on {f:?} stacked={stacked}"
            );
        }
    }
}
