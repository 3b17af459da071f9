//! The danxia policy language and its evaluator.
//!
//! A policy is a directory of TOML files (rules, groups, settings) plus two
//! optional data files: a classification file (which columns hold which
//! kinds of data) and a learned allowlist (statement shapes, as normalised
//! text and fingerprint, seen per identity).
//! [`Policy::load`] parses, validates and compiles them off the hot path;
//! [`Policy::decide`] is a pure, cached function from one statement's facts
//! and the session's identity to a [`Decision`] that names the rule that
//! made it. Nothing here touches a socket; the only I/O is reading the
//! policy files in `load`.
//!
//! See `docs/policy.md` for the language as the security team reads it.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use danxia_detectors::StatementFacts;
use serde::{Deserialize, Serialize};

/// How strictly a listener (or one rule) applies decisions. Ordered from
/// the most lenient; a rule's effective mode is the more lenient of its own
/// and its listener's, so a listener in `monitor` never blocks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Allow everything; record each fingerprint per identity into the
    /// learned allowlist.
    Learn,
    /// Decide, audit and alert, never block.
    Monitor,
    /// Decide and block what is denied.
    #[default]
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Learn => "learn",
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
        }
    }
}

/// What a rule says to do with a statement it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    /// Allow, and raise an alert. Not terminal: evaluation goes on, so an
    /// alert rule never hides a later deny.
    Alert,
    /// Mask the statement's results (`[rule.mask]`). Not terminal either.
    Mask,
    /// Slow the identity down for a while (the statement itself runs). Not
    /// terminal. With `returned` or `anomaly`: once reached.
    Throttle,
    /// Refuse the statement and everything after it from the identity until
    /// a person releases it (`danxia quarantine release`). Terminal like
    /// `deny`. With `returned` or `anomaly`: once reached.
    Quarantine,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Alert => "alert",
            Action::Mask => "mask",
            Action::Throttle => "throttle",
            Action::Quarantine => "quarantine",
        }
    }
}

/// A per-rule override of how much statement text the audit event keeps
/// (the global setting is `audit.statement_text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditText {
    Full,
    Normalized,
    None,
}

/// Who is running a statement: everything a rule can match on besides the
/// statement itself. Built once per session (and again when
/// `application_name` changes), so its hash [`Identity::key`] is computed
/// once and the decision cache can key on it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub listener: Arc<str>,
    pub user: Arc<str>,
    pub database: Arc<str>,
    pub application: Arc<str>,
    pub address: Option<IpAddr>,
    /// Subject of the client's TLS certificate (TLS step; `None` until then).
    pub tls_subject: Option<Arc<str>>,
    /// Authenticated API caller (HTTP step; `None` for database sessions).
    pub api_caller: Option<Arc<str>>,
    key: u64,
}

/// One statement to decide on.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub identity: &'a Identity,
    pub facts: &'a StatementFacts,
    /// The statement is not the first of a multi-statement Query message.
    pub stacked: bool,
    /// The listener's mode.
    pub mode: Mode,
    pub now: SystemTime,
}

/// What the proxy does with one statement, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Refuse the statement (the deciding rule denies and its effective
    /// mode is `enforce`).
    pub block: bool,
    /// The deciding rule's action (`Allow` or `Deny`; the default action
    /// when no rule decided).
    pub action: Action,
    /// The deciding rule's id, or `default` / `default.unparsed`.
    pub rule_id: Arc<str>,
    /// Text for the client when blocked.
    pub message: Arc<str>,
    /// Effective mode of the deciding rule.
    pub mode: Mode,
    /// Ids of the rules that raised an alert (alert rules that matched, and
    /// a deny that was not enforced because of `monitor`).
    pub alerts: Vec<Arc<str>>,
    /// Statement-text override for the audit event.
    pub audit_text: Option<AuditText>,
    /// Record this fingerprint for this identity in the learned allowlist.
    pub learn: bool,
    /// Classification tags of the data the statement touches.
    pub tags: Vec<Arc<str>>,
    /// Highest classification level touched (0 when none).
    pub level: u8,
    /// Masks for the statement's results (mask rules that matched).
    pub masks: Option<Arc<MaskSet>>,
    /// `returned` thresholds watching the statement's results.
    pub limits: Vec<Limit>,
    /// Rules with `anomaly` that matched: they act on the behaviour
    /// baseline's score of the statement.
    pub anomaly: Vec<AnomalyRule>,
    /// What happens to the identity because of rules that matched outright
    /// (`throttle` rules, the deciding `quarantine` rule), in effective
    /// mode `enforce`.
    pub follow_ups: Vec<(Arc<str>, FollowUp)>,
}

/// A decision and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub decision: Arc<Decision>,
    pub hit: bool,
}

/// Where the policy's files are.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Directory of rule files (`*.toml`, read in name order).
    pub dir: PathBuf,
    /// Classification file (columns → tags, levels), if any.
    pub classification: Option<PathBuf>,
    /// Learned allowlist file, if any. A missing file is an empty list.
    pub allowlist: Option<PathBuf>,
    /// The deployment's secret for `hash` masks (kept out of policy files).
    /// Without it a policy using `hash` does not load.
    pub mask_key: Option<Arc<[u8]>>,
}

pub mod allowlist;
pub mod api;
mod cache;
mod check;
mod classification;
mod compile;
mod conditions;
pub mod discovery;
mod error;
mod eval;
mod explain;
mod glob;
mod lang;
pub mod mask;
pub mod perms;
#[cfg(test)]
mod tests;
mod time;

pub use api::{ApiLoadOptions, ApiPolicy, Authorisation, FieldAction, FieldScope};
pub use discovery::{merge_classification, Finding, MergeReport};
pub use error::{Diagnostic, Diagnostics, Severity};
pub use explain::{Explanation, TraceStep};
pub use mask::{AnomalyRule, CopyMasking, Counted, FollowUp, Limit, MaskRef, MaskSet};

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::cache::{CacheKey, DecisionCache};
use crate::eval::Engine;

/// Per-process hashing keys for [`Identity::key`]: random, so a client who
/// chooses its own `application_name` cannot aim a collision at another
/// identity's cached decisions.
fn identity_hasher() -> &'static RandomState {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new)
}

impl Identity {
    pub fn new(
        listener: Arc<str>,
        user: Arc<str>,
        database: Arc<str>,
        application: Arc<str>,
        address: Option<IpAddr>,
    ) -> Identity {
        let mut id = Identity {
            listener,
            user,
            database,
            application,
            address,
            tls_subject: None,
            api_caller: None,
            key: 0,
        };
        id.key = id.compute_key();
        id
    }

    /// The same identity with another `application_name`.
    pub fn with_application(&self, application: Arc<str>) -> Identity {
        let mut id = self.clone();
        id.application = application;
        id.key = id.compute_key();
        id
    }

    pub fn with_tls_subject(mut self, s: Option<Arc<str>>) -> Identity {
        self.tls_subject = s;
        self.key = self.compute_key();
        self
    }

    pub fn with_api_caller(mut self, c: Option<Arc<str>>) -> Identity {
        self.api_caller = c;
        self.key = self.compute_key();
        self
    }

    /// Hash of every field, stable within this process: the decision
    /// cache's identity key.
    pub fn key(&self) -> u64 {
        self.key
    }

    fn compute_key(&self) -> u64 {
        let mut h = identity_hasher().build_hasher();
        self.listener.hash(&mut h);
        self.user.hash(&mut h);
        self.database.hash(&mut h);
        self.application.hash(&mut h);
        self.address.hash(&mut h);
        self.tls_subject.hash(&mut h);
        self.api_caller.hash(&mut h);
        h.finish()
    }
}

/// Source of [`Policy::version`]: every policy built in this process gets
/// the next value.
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

/// A loaded, validated, compiled policy. Immutable: a reload builds a new
/// one (with an empty decision cache) and the proxy swaps it in whole.
pub struct Policy {
    version: u64,
    warnings: Vec<Diagnostic>,
    engine: Engine,
    cache: DecisionCache,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.version)
            .field("rules", &self.rule_count())
            .field("warnings", &self.warnings.len())
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Reads, validates and compiles the policy `opts` names. Any error
    /// rejects the whole policy (the diagnostics then hold the errors and
    /// the warnings); warnings of a loaded policy are in
    /// [`Policy::warnings`].
    pub fn load(opts: &LoadOptions) -> Result<Policy, Diagnostics> {
        let (compiled, diags) = compile::compile(opts);
        if diags.iter().any(|d| d.severity == Severity::Error) {
            return Err(Diagnostics(diags));
        }
        let clock = time::Clock::new(compiled.settings.timezone.clone(), compiled.windows);
        let engine = Engine::new(
            compiled.settings,
            compiled.rules,
            clock,
            compiled.classification,
            compiled.allowlist,
        );
        Ok(Policy::from_engine(engine, diags))
    }

    /// No rules, everything allowed (parsed or not): the policy when none
    /// is configured.
    pub fn allow_all() -> Policy {
        let settings = compile::Settings::defaults();
        let clock = time::Clock::new(settings.timezone.clone(), Vec::new());
        let engine = Engine::new(
            settings,
            Vec::new(),
            clock,
            Default::default(),
            Default::default(),
        );
        Policy::from_engine(engine, Vec::new())
    }

    fn from_engine(engine: Engine, warnings: Vec<Diagnostic>) -> Policy {
        Policy {
            version: NEXT_VERSION.fetch_add(1, Ordering::Relaxed),
            warnings,
            engine,
            cache: DecisionCache::default(),
        }
    }

    /// Unique per policy built in this process; audit records carry it.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn rule_count(&self) -> usize {
        self.engine.rules.len()
    }

    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The decision for `req`, from the cache when this statement shape
    /// (same fingerprint and same normalised text) was decided for this
    /// identity (same listener mode, stacking and open time windows)
    /// before. Statements longer than 64 KiB of normalised text are not
    /// cached and are evaluated every time.
    pub fn decide(&self, req: &Request<'_>) -> Lookup {
        let open_windows = self.engine.clock.open_mask(req.now);
        let key = CacheKey {
            fingerprint: req.facts.fingerprint.0,
            identity: req.identity.key(),
            open_windows,
            stacked: req.stacked,
            parse_error: req.facts.parse_error.is_some(),
            mode: req.mode,
        };
        let normalized = req.facts.normalized.as_str();
        if let Some(decision) = self.cache.get(&key, normalized) {
            return Lookup {
                decision,
                hit: true,
            };
        }
        let cx = self.engine.context(req, open_windows);
        let decision = Arc::new(self.engine.decide(&cx, None));
        self.cache.insert(key, normalized, decision.clone());
        Lookup {
            decision,
            hit: false,
        }
    }

    /// The decision for `req`, computed afresh (same result as
    /// [`Policy::decide`]).
    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        let cx = self
            .engine
            .context(req, self.engine.clock.open_mask(req.now));
        self.engine.decide(&cx, None)
    }

    /// The decision with the conditions that held and each rule's verdict.
    pub fn explain(&self, req: &Request<'_>) -> Explanation {
        let cx = self
            .engine
            .context(req, self.engine.clock.open_mask(req.now));
        let mut trace = Vec::new();
        let decision = self.engine.decide(&cx, Some(&mut trace));
        Explanation {
            decision,
            conditions: conditions::names(cx.held),
            trace,
        }
    }

    /// SQLSTATE for a blocked statement (`42501` unless `[policy]` sets
    /// `deny_sqlstate`).
    pub fn deny_sqlstate(&self) -> &str {
        &self.engine.settings.deny_sqlstate
    }
}

/// Everything [`Policy::load`] would report about `opts`, errors and
/// warnings, without stopping at the first error.
pub fn check(opts: &LoadOptions) -> Vec<Diagnostic> {
    if opts.mask_key.is_some() {
        return compile::compile(opts).1;
    }
    // Checking policy text needs no secret: a stand-in key lets `hash`
    // strategies be validated; loading for real still requires the key.
    let mut opts = opts.clone();
    opts.mask_key = Some(Arc::from(&b"danxia check: stand-in masking key"[..]));
    compile::compile(&opts).1
}
