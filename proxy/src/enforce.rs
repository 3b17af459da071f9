//! Policy enforcement for one session, whatever the protocol: asks the
//! policy about each statement (with the session's identity, kept current
//! as the application name, user or database change), adds what acts on
//! the statement's results (masks and limits inherited by a `FETCH` or
//! `EXECUTE` from the `DECLARE` or `PREPARE` it names, the refusal of COPY
//! of masked data), feeds the learner and counts decisions. How a refusal
//! looks on the wire is each protocol's own (`pg/enforce.rs`,
//! `mysql/session.rs`). Knows nothing of sockets.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use std::collections::HashMap;

use danxia_detectors::{Operation, StatementFacts};
use danxia_policies::{CopyMasking, Decision, Identity, Limit, MaskSet, Request};

use crate::analysis::{Judgement, Statement};
use crate::behaviour::SessionBehaviour;
use crate::listener::ListenerCtx;

/// Fingerprints a session remembers having sent to the learner, so a
/// repeated statement does not queue an entry each time.
const MAX_LEARNED_PER_SESSION: usize = 4096;

/// The session's current `application_name`, set from the server's
/// ParameterStatus (the relay's backend side) and read when deciding (the
/// client side). `application_name` is the client's own claim, so a change
/// taking effect one pipelined statement late is harmless.
#[derive(Debug, Default)]
pub struct AppName {
    current: Mutex<Option<Arc<str>>>,
    generation: std::sync::atomic::AtomicU64,
}

impl AppName {
    pub fn new(initial: Option<Arc<str>>) -> Self {
        Self {
            current: Mutex::new(initial),
            generation: 0.into(),
        }
    }

    pub fn set(&self, name: &str) {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.as_deref() != Some(name) {
            *cur = Some(Arc::from(name));
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn get(&self) -> Option<Arc<str>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Per-session policy state.
pub struct Enforcer {
    identity: Identity,
    app: Arc<AppName>,
    app_generation: u64,
    learned: HashSet<u64>,
    /// A refusal was forwarded in the current extended-protocol batch: the
    /// server discards everything after it up to Sync, so later refusals in
    /// the batch need no poison of their own.
    pub batch_failed: bool,
    /// SQL cursors and prepared statements (`DECLARE c …`, `PREPARE p …`)
    /// whose query is masked or limited, by name: a later `FETCH … c` or
    /// `EXECUTE p` names no table, so it inherits them from here.
    named: HashMap<String, ResultRules>,
    /// The session's behaviour baseline view (absent when disabled).
    behaviour: Option<Arc<SessionBehaviour>>,
    /// A statement judged since the last [`Enforcer::throttle_delay`] came
    /// from a throttled identity.
    throttled: bool,
}

/// What acts on a statement's results (see `danxia_policies::MaskSet`).
#[derive(Debug, Clone)]
struct ResultRules {
    masks: Option<Arc<MaskSet>>,
    limits: Vec<Limit>,
}

/// Named cursors and SQL prepared statements remembered per session.
const MAX_NAMED: usize = 1024;

impl Enforcer {
    pub fn new(
        ctx: &ListenerCtx,
        user: Arc<str>,
        database: Arc<str>,
        address: Option<IpAddr>,
        app: Arc<AppName>,
    ) -> Self {
        let application = app.get().unwrap_or_else(|| Arc::from(""));
        let app_generation = app.generation();
        let behaviour = ctx.behaviour.as_ref().map(|b| {
            Arc::new(SessionBehaviour::new(
                b.clone(),
                &user,
                &application,
                address,
            ))
        });
        Self {
            identity: Identity::new(ctx.name.clone(), user, database, application, address),
            app,
            app_generation,
            learned: HashSet::new(),
            batch_failed: false,
            named: HashMap::new(),
            behaviour,
            throttled: false,
        }
    }

    /// The client's verified TLS certificate subject, which policies
    /// match with `tls_subjects`.
    pub fn set_tls_subject(&mut self, subject: Option<Arc<str>>) {
        self.identity = self.identity.clone().with_tls_subject(subject);
        self.learned.clear();
    }

    pub fn has_behaviour(&self) -> bool {
        self.behaviour.is_some()
    }

    /// The session's behaviour view, for the side that completes
    /// statements.
    pub fn behaviour(&self) -> Option<Arc<SessionBehaviour>> {
        self.behaviour.clone()
    }

    /// How long to hold the statements just judged: the identity is
    /// throttled. Resets.
    pub fn throttle_delay(&mut self) -> Option<std::time::Duration> {
        if std::mem::take(&mut self.throttled) {
            self.behaviour.as_ref().map(|b| b.delay())
        } else {
            None
        }
    }

    /// A statement about to run again (Bind, COM_STMT_EXECUTE): what the
    /// behaviour layer says now (quarantine, window budgets, throttling)
    /// on top of its policy decision.
    pub fn amend(&mut self, stmt: Arc<Statement>) -> Arc<Statement> {
        let Some(sb) = &self.behaviour else {
            return stmt;
        };
        let Some(j) = &stmt.judgement else {
            return stmt;
        };
        let (d, throttled) = sb.before(&stmt.facts, j.decision.clone());
        self.throttled |= throttled;
        if Arc::ptr_eq(&d, &j.decision) {
            return stmt;
        }
        let mut s = (*stmt).clone();
        s.judgement = Some(Judgement {
            decision: d,
            policy_version: j.policy_version,
        });
        Arc::new(s)
    }

    /// The session's user or database changed (MySQL `COM_CHANGE_USER`,
    /// `COM_INIT_DB`, `USE`): later statements are decided for the new one.
    pub fn set_identity(&mut self, user: Arc<str>, database: Arc<str>) {
        if let Some(b) = &self.behaviour {
            b.set(&user, &self.identity.application);
        }
        let i = &self.identity;
        self.identity = Identity::new(
            i.listener.clone(),
            user,
            database,
            i.application.clone(),
            i.address,
        )
        .with_tls_subject(i.tls_subject.clone());
        self.learned.clear();
        self.named.clear();
    }

    fn refresh_identity(&mut self) {
        let g = self.app.generation();
        if g != self.app_generation {
            self.app_generation = g;
            let name = self.app.get().unwrap_or_else(|| Arc::from(""));
            if let Some(b) = &self.behaviour {
                b.set(&self.identity.user, &name);
            }
            self.identity = self.identity.with_application(name);
        }
    }

    /// Decides every statement of one message (the ones after the first
    /// are `stacked`); returns the index of the first refused one.
    pub fn judge(&mut self, ctx: &ListenerCtx, stmts: &mut [Statement]) -> Option<usize> {
        self.refresh_identity();
        let loaded = ctx.policy.current();
        let now = SystemTime::now();
        let mut first_blocked = None;
        for (i, s) in stmts.iter_mut().enumerate() {
            let look = loaded.policy.decide(&Request {
                identity: &self.identity,
                facts: &s.facts,
                stacked: i > 0,
                mode: ctx.mode,
                now,
            });
            let mut decision = self.result_rules(&s.facts, look.decision);
            if let Some(sb) = &self.behaviour {
                let (d, throttled) = sb.before(&s.facts, decision);
                decision = d;
                self.throttled |= throttled;
            }
            self.account(ctx, &decision, look.hit, s);
            if decision.block && first_blocked.is_none() {
                first_blocked = Some(i);
            }
            s.judgement = Some(Judgement {
                decision,
                policy_version: loaded.policy.version(),
            });
        }
        first_blocked
    }

    /// A prepared statement about to be bound: decided again if the policy
    /// changed since its Parse, so a new rule reaches long-lived prepared
    /// statements too.
    pub fn rejudge(&mut self, ctx: &ListenerCtx, stmt: Arc<Statement>) -> Arc<Statement> {
        let version = ctx.policy.current().policy.version();
        if stmt
            .judgement
            .as_ref()
            .is_some_and(|j| j.policy_version == version)
        {
            return stmt;
        }
        let mut s = (*stmt).clone();
        self.judge(ctx, std::slice::from_mut(&mut s));
        Arc::new(s)
    }

    /// The decision with what must act on the statement's results: a
    /// `FETCH`/`EXECUTE` inherits the masks and limits of the `DECLARE` /
    /// `PREPARE` it names, and `COPY … TO STDOUT` of masked data is
    /// refused (its rows are not DataRows the masks could rewrite).
    fn result_rules(&mut self, facts: &StatementFacts, d: Arc<Decision>) -> Arc<Decision> {
        let mut d = d;
        match named_statement(&facts.normalized) {
            Some(Named::Defines(name)) => {
                if d.masks.is_some() || !d.limits.is_empty() {
                    if self.named.len() >= MAX_NAMED && !self.named.contains_key(&name) {
                        self.named.clear();
                    }
                    let rules = ResultRules {
                        masks: d.masks.clone(),
                        limits: d.limits.clone(),
                    };
                    self.named.insert(name, rules);
                } else {
                    self.named.remove(&name);
                }
            }
            Some(Named::Uses(name)) => {
                if let Some(r) = self.named.get(&name) {
                    if !d.block {
                        let mut c = (*d).clone();
                        if c.masks.is_none() {
                            c.masks = r.masks.clone();
                        }
                        c.limits.extend(r.limits.iter().cloned());
                        d = Arc::new(c);
                    }
                }
            }
            None => {}
        }
        if facts.operation == Operation::CopyOut && !d.block {
            if let Some(m) = d.masks.as_ref().filter(|m| m.copy == CopyMasking::Refuse) {
                let rule = m
                    .rule_ids()
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| Arc::from("mask"));
                let mut c = (*d).clone();
                c.block = true;
                c.action = danxia_policies::Action::Deny;
                c.rule_id = rule;
                c.message = Arc::from(
                    "COPY of masked data is refused: read it with SELECT, which masks it",
                );
                d = Arc::new(c);
            }
        }
        d
    }

    fn account(&mut self, ctx: &ListenerCtx, d: &Decision, hit: bool, s: &Statement) {
        let m = &ctx.decisions;
        if hit {
            m.cache_hit.increment(1);
        } else {
            m.cache_miss.increment(1);
        }
        m.record(d);
        if d.learn {
            if let Some(learner) = &ctx.learner {
                let fp = s.facts.fingerprint;
                if !self.learned.contains(&fp.0) {
                    if learner.record(
                        &self.identity.user,
                        &self.identity.database,
                        fp,
                        &s.facts.normalized,
                    ) {
                        if self.learned.len() < MAX_LEARNED_PER_SESSION {
                            self.learned.insert(fp.0);
                        }
                    } else {
                        m.learned_dropped.increment(1);
                    }
                }
            }
        }
    }
}

/// A statement that names a cursor or SQL prepared statement.
#[derive(Debug, PartialEq, Eq)]
enum Named {
    /// `DECLARE name …` or `PREPARE name …`.
    Defines(String),
    /// `FETCH … name`, `MOVE … name` or `EXECUTE name …`.
    Uses(String),
}

/// Reads the cursor or prepared-statement name from normalised text.
/// Unquoted names fold to lower case as PostgreSQL folds them.
fn named_statement(normalized: &str) -> Option<Named> {
    let mut words = normalized.split_whitespace();
    // Runs for every statement: compare the verb without allocating.
    let verb = words.next()?;
    let is = |v: &str| verb.eq_ignore_ascii_case(v);
    let clean = |w: &str| {
        let w = w.trim_end_matches(';');
        let w = w.split('(').next().unwrap_or(w);
        if let Some(q) = w.strip_prefix('"') {
            q.trim_end_matches('"').replace("\"\"", "\"")
        } else {
            w.to_ascii_lowercase()
        }
    };
    if is("declare") || is("prepare") {
        words.next().map(|w| Named::Defines(clean(w)))
    } else if is("execute") {
        words.next().map(|w| Named::Uses(clean(w)))
    } else if is("fetch") || is("move") {
        words.last().map(|w| Named::Uses(clean(w)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_and_prepared_names() {
        use Named::*;
        assert_eq!(
            named_statement("declare c1 cursor for select * from t"),
            Some(Defines("c1".into()))
        );
        assert_eq!(
            named_statement("DECLARE \"Big\" BINARY CURSOR FOR select 1"),
            Some(Defines("Big".into()))
        );
        assert_eq!(named_statement("fetch ? from c1"), Some(Uses("c1".into())));
        assert_eq!(
            named_statement("fetch next in C1;"),
            Some(Uses("c1".into()))
        );
        assert_eq!(named_statement("move all c1"), Some(Uses("c1".into())));
        assert_eq!(
            named_statement("prepare q(int) as select * from t where id = $1"),
            Some(Defines("q".into()))
        );
        assert_eq!(named_statement("execute q(?)"), Some(Uses("q".into())));
        assert_eq!(named_statement("select 1"), None);
    }
}
