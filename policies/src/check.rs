//! Whole-policy checks on compiled rules: shadowing (a rule that can never
//! decide because an earlier one always decides first) and rules that match
//! everything. Owns the coverage relation between rules. It must never
//! report a rule as shadowed when it is not (that would reject a valid
//! policy), so every coverage test errs towards "not covered".

use crate::compile::{AddrList, ColumnPattern, IdentList, Matcher, Rule};
use crate::conditions;
use crate::error::{Diagnostic, Severity};
use crate::Action;

pub(crate) fn check_rules(rules: &[Rule], diags: &mut Vec<Diagnostic>) {
    for (j, b) in rules.iter().enumerate() {
        if b.keys.is_empty() && !b.decides() {
            // A `returned` rule for everyone is the usual way to watch
            // results, so only alert and mask rules are worth a warning.
            let message = match b.action {
                _ if !b.returned.is_empty() || b.anomaly.is_some() => None,
                Action::Mask => {
                    Some("mask rule with no match keys: it masks every statement's results")
                }
                Action::Throttle => {
                    Some("throttle rule with no match keys: it throttles every identity")
                }
                _ => Some("alert rule with no match keys: it alerts on every statement"),
            };
            if let Some(m) = message {
                diags.push(diag(Severity::Warning, b, m.into()));
            }
        } else if b.keys.is_empty() && j + 1 < rules.len() {
            let message = {
                format!(
                    "rule with no match keys {}s every statement, so no rule after it ever decides",
                    b.action.as_str()
                )
            };
            diags.push(diag(Severity::Warning, b, message));
        }
        let shadow = rules[..j].iter().find(|a| a.decides() && covers(a, b));
        if let Some(a) = shadow {
            let what = match b.action {
                _ if !b.returned.is_empty() => "watch a result",
                _ if b.anomaly.is_some() => "watch the behaviour score",
                Action::Alert => "raise an alert",
                Action::Throttle => "throttle",
                Action::Mask => "mask",
                _ => "decide",
            };
            diags.push(diag(
                Severity::Error,
                b,
                format!(
                    "can never {what}: rule `{}` ({}) matches everything it matches and decides first",
                    a.id,
                    a.location()
                ),
            ));
        }
    }
}

fn diag(severity: Severity, rule: &Rule, message: String) -> Diagnostic {
    Diagnostic {
        severity,
        file: Some(rule.file.clone()),
        line: Some(rule.line),
        rule_id: Some(rule.id.to_string()),
        message,
    }
}

/// Whether rule `a` matches every request rule `b` matches.
pub(crate) fn covers(a: &Rule, b: &Rule) -> bool {
    if b.ops & !a.ops != 0 {
        return false;
    }
    if a.conds != 0 && (b.conds == 0 || b.conds & !conditions::implied(a.conds) != 0) {
        return false;
    }
    a.keys.iter().all(|ka| match (&ka.matcher, b.key(ka.name)) {
        (Matcher::Operations(_) | Matcher::Conditions(_), _) => true,
        (_, None) => false,
        (x, Some(kb)) => matcher_covers(x, &kb.matcher),
    })
}

fn matcher_covers(a: &Matcher, b: &Matcher) -> bool {
    match (a, b) {
        (Matcher::Ident(fa, la), Matcher::Ident(fb, lb)) => {
            fa == fb && ident_covers(la, lb, fa.value_always_present())
        }
        (Matcher::Addresses(la), Matcher::Addresses(lb)) => addr_covers(la, lb),
        // A rule limited to time windows matches nothing outside them.
        (Matcher::Time(_), _) => false,
        (Matcher::Tables(pa), Matcher::Tables(pb))
        | (Matcher::Functions(pa), Matcher::Functions(pb)) => {
            pb.iter().all(|p| pa.iter().any(|q| q.covers(p)))
        }
        (Matcher::Columns(pa), Matcher::Columns(pb)) => {
            pb.iter().all(|p| pa.iter().any(|q| column_covers(q, p)))
        }
        (Matcher::Tags(ga), Matcher::Tags(gb)) => gb.iter().all(|p| ga.iter().any(|q| q.covers(p))),
        (Matcher::MinLevel(la), Matcher::MinLevel(lb)) => la <= lb,
        _ => false,
    }
}

fn column_covers(a: &ColumnPattern, b: &ColumnPattern) -> bool {
    a.column.covers(&b.column)
        && match (&a.table, &b.table) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(x), Some(y)) => x.covers(y),
        }
}

/// `present`: every session has the attribute (a list of exclusions alone
/// also matches sessions without it, which no positive pattern does).
fn ident_covers(a: &IdentList, b: &IdentList, present: bool) -> bool {
    if !a.neg.is_empty() {
        fn texts(v: &[crate::glob::Glob]) -> Vec<&str> {
            let mut t: Vec<&str> = v.iter().map(|g| g.as_str()).collect();
            t.sort_unstable();
            t.dedup();
            t
        }
        return texts(&a.pos) == texts(&b.pos) && texts(&a.neg) == texts(&b.neg);
    }
    if b.pos.is_empty() {
        return present && a.pos.iter().any(|g| g.is_any());
    }
    b.pos.iter().all(|p| a.pos.iter().any(|q| q.covers(p)))
}

fn addr_covers(a: &AddrList, b: &AddrList) -> bool {
    if !a.neg.is_empty() {
        let sorted = |v: &[ipnet::IpNet]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v.dedup();
            v
        };
        return sorted(&a.pos) == sorted(&b.pos) && sorted(&a.neg) == sorted(&b.neg);
    }
    if b.pos.is_empty() {
        // `b` also matches sessions with no address; `a` never does.
        return false;
    }
    b.pos.iter().all(|p| a.pos.iter().any(|q| q.contains(p)))
}
