//! Evaluation: from one request to a [`Decision`]. Owns the semantics the
//! docs promise — rules in order, alert rules non-terminal, the first
//! matching allow/deny decides, defaults, modes — and the per-key
//! explanations `danxia explain` prints. Pure: no I/O, no clock but the
//! request's `now`, no state but the compiled policy.

use std::net::IpAddr;
use std::sync::Arc;

use crate::allowlist::Allowlist;
use crate::classification::Classification;
use crate::compile::{operation_bit, Matcher, Rule, Settings, DEFAULT_RULE_ID, UNPARSED_RULE_ID};
use crate::conditions::{self, NOT_ALLOWLISTED};
use crate::explain::TraceStep;
use crate::mask::{AnomalyRule, FollowUp, Limit, MaskBuilder, MaskSet};
use crate::time::Clock;
use crate::{Action, AuditText, Decision, Mode, Request};

/// A compiled policy's evaluator.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) settings: Settings,
    pub(crate) rules: Vec<Rule>,
    pub(crate) clock: Clock,
    pub(crate) classification: Classification,
    pub(crate) allowlist: Allowlist,
    default_id: Arc<str>,
    unparsed_id: Arc<str>,
}

/// What evaluation needs about a request, computed once per request.
pub(crate) struct Context<'r> {
    pub(crate) req: &'r Request<'r>,
    op: u32,
    pub(crate) held: u32,
    open: u32,
    address: Option<IpAddr>,
    pub(crate) tags: Vec<Arc<str>>,
    pub(crate) level: u8,
    /// Classified columns of the statement's tables read through `*`:
    /// they count for `columns` rules, as if named.
    star_columns: Vec<Arc<str>>,
    /// The statement's tables and functions split into dotted parts once.
    tables: Vec<Vec<&'r str>>,
    functions: Vec<Vec<&'r str>>,
}

fn split_names(names: &[String]) -> Vec<Vec<&str>> {
    names.iter().map(|n| n.split('.').collect()).collect()
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, as a dual-stack listener reports
/// IPv4 clients) is matched as the IPv4 address it is.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

/// A rule's mode never makes it stricter than its listener.
pub(crate) fn effective(listener: Mode, rule: Option<Mode>) -> Mode {
    rule.map_or(listener, |r| r.min(listener))
}

impl Engine {
    pub(crate) fn new(
        settings: Settings,
        rules: Vec<Rule>,
        clock: Clock,
        classification: Classification,
        allowlist: Allowlist,
    ) -> Engine {
        Engine {
            settings,
            rules,
            clock,
            classification,
            allowlist,
            default_id: Arc::from(DEFAULT_RULE_ID),
            unparsed_id: Arc::from(UNPARSED_RULE_ID),
        }
    }

    /// The request's derived facts; `open` is the clock's window mask.
    pub(crate) fn context<'r>(&self, req: &'r Request<'r>, open: u32) -> Context<'r> {
        let facts = req.facts;
        let mut held = conditions::held(facts, req.stacked);
        let id = req.identity;
        if !self
            .allowlist
            .contains(&id.user, &id.database, facts.fingerprint, &facts.normalized)
        {
            held |= NOT_ALLOWLISTED;
        }
        let (tags, level) = self.classification.touched(facts);
        let star_columns = if facts.select_star {
            self.classification.star_columns(facts)
        } else {
            Vec::new()
        };
        Context {
            req,
            op: operation_bit(facts.operation),
            held,
            open,
            address: id.address.map(canonical),
            tags,
            level,
            star_columns,
            tables: split_names(&facts.tables),
            functions: split_names(&facts.functions),
        }
    }

    /// The decision for `cx`; with `trace`, every rule's verdict up to
    /// the deciding one is recorded.
    pub(crate) fn decide(
        &self,
        cx: &Context<'_>,
        mut trace: Option<&mut Vec<TraceStep>>,
    ) -> Decision {
        let mut alerts: Vec<Arc<str>> = Vec::new();
        let mut alert_audit: Option<AuditText> = None;
        let mut masks = MaskBuilder::default();
        let mut limits: Vec<Limit> = Vec::new();
        let mut anomaly: Vec<AnomalyRule> = Vec::new();
        let mut follow_ups: Vec<(Arc<str>, FollowUp)> = Vec::new();
        let mut learn_hint = false;
        let listener = cx.req.mode;
        for rule in &self.rules {
            let matched = match trace.as_deref_mut() {
                None => self.matches(rule, cx),
                Some(t) => {
                    let miss = self.first_miss(rule, cx);
                    t.push(TraceStep {
                        rule_id: rule.id.clone(),
                        file: rule.file.clone(),
                        line: rule.line,
                        matched: miss.is_none(),
                        detail: miss.clone().unwrap_or_else(|| match rule.action {
                            _ if !rule.returned.is_empty() => format!(
                                "matched: watches the result ({} once it returns {}), evaluation goes on ({})",
                                rule.action.as_str(),
                                returned_text(&rule.returned, rule.window),
                                rule.description
                            ),
                            _ if rule.anomaly.is_some() => format!(
                                "matched: watches the behaviour score ({} once it reaches {}), evaluation goes on ({})",
                                rule.action.as_str(),
                                f64::from(rule.anomaly.unwrap_or(0)) / 100.0,
                                rule.description
                            ),
                            Action::Throttle => format!(
                                "matched: throttle the identity, evaluation goes on ({})",
                                rule.description
                            ),
                            Action::Alert => {
                                format!("matched: alert, evaluation goes on ({})", rule.description)
                            }
                            Action::Mask => {
                                format!("matched: mask, evaluation goes on ({})", rule.description)
                            }
                            a => format!("matched: {}, decides ({})", a.as_str(), rule.description),
                        }),
                    });
                    miss.is_none()
                }
            };
            if !matched {
                continue;
            }
            let mode = effective(listener, rule.mode);
            if mode == Mode::Learn && rule.conds & NOT_ALLOWLISTED != 0 {
                learn_hint = true;
            }
            let message = || {
                rule.message
                    .clone()
                    .unwrap_or_else(|| self.settings.deny_message.clone())
            };
            let enforce = mode == Mode::Enforce;
            let follow_up = match rule.action {
                Action::Throttle if enforce => FollowUp::Throttle,
                Action::Quarantine if enforce => FollowUp::Quarantine,
                _ => FollowUp::None,
            };
            let blocks = enforce && matches!(rule.action, Action::Deny | Action::Quarantine);
            if !rule.returned.is_empty() {
                // Acts on the result, once its counts are known.
                let message = message();
                for &(counted, threshold) in &rule.returned {
                    limits.push(Limit {
                        rule_id: rule.id.clone(),
                        counted,
                        threshold,
                        window: rule.window,
                        already: 0,
                        block: blocks,
                        follow_up,
                        message: message.clone(),
                    });
                }
                continue;
            }
            if let Some(threshold_centi) = rule.anomaly {
                // Acts on the behaviour baseline's score.
                anomaly.push(AnomalyRule {
                    rule_id: rule.id.clone(),
                    threshold_centi,
                    block: blocks,
                    follow_up,
                    message: message(),
                });
                continue;
            }
            match rule.action {
                Action::Alert => {
                    alerts.push(rule.id.clone());
                    alert_audit = alert_audit.or(rule.audit);
                }
                Action::Throttle => {
                    // Slows the identity; the statement runs and
                    // evaluation goes on. Outside enforce: an alert.
                    if enforce {
                        follow_ups.push((rule.id.clone(), FollowUp::Throttle));
                    }
                    alerts.push(rule.id.clone());
                    alert_audit = alert_audit.or(rule.audit);
                }
                Action::Mask => {
                    // Masking changes what applications read: like
                    // blocking, it happens only in enforce mode.
                    if let (Some(m), Mode::Enforce) = (&rule.mask, mode) {
                        masks.add(m);
                    }
                }
                action => {
                    if follow_up == FollowUp::Quarantine {
                        follow_ups.push((rule.id.clone(), FollowUp::Quarantine));
                    }
                    let outcome = Outcome {
                        rule_id: rule.id.clone(),
                        action,
                        mode,
                        message: message(),
                        audit_text: rule.audit.or(alert_audit),
                        learn_hint,
                    };
                    let watch = Watch {
                        limits,
                        anomaly,
                        follow_ups,
                    };
                    return outcome.finish(cx, alerts, self.results(cx, masks), watch);
                }
            }
        }
        let (rule_id, action) = if cx.req.facts.parse_error.is_some() {
            (self.unparsed_id.clone(), self.settings.unparsed_action)
        } else {
            (self.default_id.clone(), self.settings.default_action)
        };
        let action = if action == Action::Alert {
            alerts.push(rule_id.clone());
            Action::Allow
        } else {
            action
        };
        Outcome {
            rule_id,
            action,
            mode: listener,
            message: self.settings.deny_message.clone(),
            audit_text: alert_audit,
            learn_hint,
        }
        .finish(
            cx,
            alerts,
            self.results(cx, masks),
            Watch {
                limits,
                anomaly,
                follow_ups,
            },
        )
    }

    /// What acts on the statement's results.
    fn results(&self, cx: &Context<'_>, masks: MaskBuilder<'_>) -> Option<Arc<MaskSet>> {
        masks.build(&cx.tables, || {
            self.classification.columns_of(&cx.req.facts.tables)
        })
    }

    /// The hot path: cheapest tests first (one AND for operations and
    /// conditions rules out most rules).
    fn matches(&self, rule: &Rule, cx: &Context<'_>) -> bool {
        rule.ops & cx.op != 0
            && (rule.conds == 0 || rule.conds & cx.held != 0)
            && rule.keys.iter().all(|k| self.key_matches(&k.matcher, cx))
    }

    fn key_matches(&self, m: &Matcher, cx: &Context<'_>) -> bool {
        let facts = cx.req.facts;
        match m {
            Matcher::Ident(field, list) => list.matches(field.value(cx.req.identity)),
            Matcher::Addresses(list) => list.matches(cx.address),
            Matcher::Time(bits) => cx.open & bits != 0,
            Matcher::Operations(bits) => cx.op & bits != 0,
            Matcher::Conditions(bits) => cx.held & bits != 0,
            Matcher::Tables(ps) => cx
                .tables
                .iter()
                .any(|t| ps.iter().any(|p| p.matches_parts(t))),
            Matcher::Functions(ps) => cx
                .functions
                .iter()
                .any(|f| ps.iter().any(|p| p.matches_parts(f))),
            Matcher::Columns(ps) => ps.iter().any(|p| {
                let named = facts.columns.iter().any(|c| p.column.matches(c))
                    || cx.star_columns.iter().any(|c| p.column.matches(c));
                named
                    && match &p.table {
                        None => true,
                        Some(q) => cx.tables.iter().any(|t| q.matches_parts(t)),
                    }
            }),
            Matcher::Tags(gs) => cx.tags.iter().any(|t| gs.iter().any(|g| g.matches(t))),
            Matcher::MinLevel(l) => cx.level >= *l,
        }
    }

    /// Why `rule` does not match, naming its first failing key; `None`
    /// when it matches.
    fn first_miss(&self, rule: &Rule, cx: &Context<'_>) -> Option<String> {
        let key = rule
            .keys
            .iter()
            .find(|k| !self.key_matches(&k.matcher, cx))?;
        let facts = cx.req.facts;
        let list = |v: &[String]| format!("[{}]", v.join(", "));
        let why = match &key.matcher {
            Matcher::Ident(field, _) => match field.value(cx.req.identity) {
                Some(v) => format!("`{v}` does not match {}", key.written),
                None => format!("the session has none, and {} needs one", key.written),
            },
            Matcher::Addresses(_) => match cx.address {
                Some(a) => format!("{a} does not match {}", key.written),
                None => format!(
                    "the session has no client address, and {} needs one",
                    key.written
                ),
            },
            Matcher::Time(_) => {
                let now = match self.clock.local(cx.req.now) {
                    Some((d, m)) => format!(
                        " (now {} {:02}:{:02} in the policy time zone)",
                        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][d as usize % 7],
                        m / 60,
                        m % 60
                    ),
                    None => String::new(),
                };
                format!("none of {} is open{now}", key.written)
            }
            Matcher::Operations(_) => {
                format!("`{}` is not in {}", facts.operation.as_str(), key.written)
            }
            Matcher::Conditions(_) => format!(
                "none of {} holds (holding: [{}])",
                key.written,
                conditions::names(cx.held).join(", ")
            ),
            Matcher::Tables(_) => {
                format!("none of {} matched {}", key.written, list(&facts.tables))
            }
            Matcher::Functions(_) => {
                format!("none of {} matched {}", key.written, list(&facts.functions))
            }
            Matcher::Columns(_) => {
                let mut cols = facts.columns.clone();
                cols.extend(cx.star_columns.iter().map(|c| format!("{c} (via *)")));
                format!(
                    "none of {} matched {} of tables {}",
                    key.written,
                    list(&cols),
                    list(&facts.tables)
                )
            }
            Matcher::Tags(_) => {
                let tags: Vec<String> = cx.tags.iter().map(|t| t.to_string()).collect();
                format!("none of {} matched {}", key.written, list(&tags))
            }
            Matcher::MinLevel(l) => format!("level {} is below {l}", cx.level),
        };
        Some(format!("{}: {why}", key.name))
    }
}

/// `{"pii.id_number" = 100}` as written in explanations.
fn returned_text(r: &[(crate::mask::Counted, u64)], window: Option<u64>) -> String {
    let parts: Vec<String> = r.iter().map(|(k, n)| format!("{n} {}", k.name())).collect();
    match window {
        Some(w) => format!("{} per identity per {w} s", parts.join(" or ")),
        None => parts.join(" or "),
    }
}

/// What watches the statement beyond the decision itself.
struct Watch {
    limits: Vec<Limit>,
    anomaly: Vec<AnomalyRule>,
    follow_ups: Vec<(Arc<str>, FollowUp)>,
}

/// A deciding rule (or default) before modes are applied.
struct Outcome {
    rule_id: Arc<str>,
    action: Action,
    mode: Mode,
    message: Arc<str>,
    audit_text: Option<AuditText>,
    learn_hint: bool,
}

impl Outcome {
    fn finish(
        self,
        cx: &Context<'_>,
        mut alerts: Vec<Arc<str>>,
        masks: Option<Arc<MaskSet>>,
        watch: Watch,
    ) -> Decision {
        let deny = matches!(self.action, Action::Deny | Action::Quarantine);
        if deny && self.mode == Mode::Monitor {
            alerts.push(self.rule_id.clone());
        }
        Decision {
            block: deny && self.mode == Mode::Enforce,
            action: self.action,
            rule_id: self.rule_id,
            message: self.message,
            mode: self.mode,
            alerts,
            audit_text: self.audit_text,
            learn: self.mode == Mode::Learn || cx.req.mode == Mode::Learn || self.learn_hint,
            tags: cx.tags.clone(),
            level: cx.level,
            masks,
            limits: watch.limits,
            anomaly: watch.anomaly,
            follow_ups: watch.follow_ups,
        }
    }
}
