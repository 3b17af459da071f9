//! Why a policy decided what it did: the conditions that held, the
//! classification touched, each rule's verdict up to the deciding one, and
//! the decision. What `danxia explain` prints after the statement's facts
//! (which the caller prints). Only formatting lives here; the verdicts come
//! from [`crate::eval`], the same code that decides.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::mask::FollowUp;
use crate::{Action, Decision, Mode};

/// One rule's verdict on a request.
#[derive(Debug, Clone)]
pub struct TraceStep {
    pub rule_id: Arc<str>,
    pub file: PathBuf,
    pub line: usize,
    pub matched: bool,
    /// `matched: deny (decides)`, or the first key that did not match and
    /// why (`tables: none of [pg_shadow] matched [public.t]`).
    pub detail: String,
}

/// A decision with the reasons for it.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub decision: Decision,
    /// Conditions that hold for this request (names as rules spell them).
    pub conditions: Vec<&'static str>,
    /// Every rule evaluated, in order, up to and including the deciding
    /// one (rules after it are never evaluated).
    pub trace: Vec<TraceStep>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.decision;
        let conditions = if self.conditions.is_empty() {
            "none".to_string()
        } else {
            self.conditions.join(", ")
        };
        writeln!(f, "conditions:     {conditions}")?;
        if d.tags.is_empty() {
            writeln!(f, "classification: no classified column touched")?;
        } else {
            let tags: Vec<&str> = d.tags.iter().map(|t| &**t).collect();
            writeln!(
                f,
                "classification: level {}, tags {}",
                d.level,
                tags.join(", ")
            )?;
        }
        if self.trace.is_empty() {
            writeln!(f, "rules:          none matched or none to evaluate")?;
        } else {
            writeln!(f, "rules:")?;
            for s in &self.trace {
                let mark = if s.matched { "MATCH" } else { "no   " };
                writeln!(
                    f,
                    "  {mark} {} ({}:{}): {}",
                    s.rule_id,
                    s.file.display(),
                    s.line,
                    s.detail
                )?;
            }
        }
        let by = if d.rule_id.starts_with("default")
            && !self.trace.iter().any(|s| *s.rule_id == *d.rule_id)
        {
            format!("`{}` (no rule decided)", d.rule_id)
        } else {
            format!("rule `{}`", d.rule_id)
        };
        let outcome = match (d.action, d.mode) {
            (Action::Deny, Mode::Enforce) => "BLOCKED",
            (Action::Quarantine, Mode::Enforce) => "BLOCKED, and the identity quarantined",
            (Action::Deny | Action::Quarantine, Mode::Monitor) => {
                "not blocked: monitor mode, alert raised"
            }
            (Action::Deny | Action::Quarantine, Mode::Learn) => "not blocked: learn mode",
            _ => "allowed",
        };
        writeln!(
            f,
            "decision:       {} by {by}, mode {}: {outcome}",
            d.action.as_str(),
            d.mode.as_str()
        )?;
        if d.block {
            writeln!(f, "message:        {}", d.message)?;
        }
        if !d.alerts.is_empty() {
            let alerts: Vec<&str> = d.alerts.iter().map(|a| &**a).collect();
            writeln!(f, "alerts:         {}", alerts.join(", "))?;
        }
        if let Some(a) = d.audit_text {
            writeln!(f, "audit text:     {}", format!("{a:?}").to_lowercase())?;
        }
        if d.learn {
            writeln!(f, "learn:          fingerprint recorded in the allowlist")?;
        }
        if let Some(m) = &d.masks {
            writeln!(f, "results masked:")?;
            for line in m.describe() {
                writeln!(f, "  {line}")?;
            }
            if !m.content().is_empty() {
                let kinds: Vec<&str> = m.content().iter().map(|(k, _)| k.tag()).collect();
                writeln!(
                    f,
                    "  any other text value holding {} is masked by content",
                    kinds.join(", ")
                )?;
            }
        }
        for l in &d.limits {
            let then = match (l.block, l.follow_up) {
                (true, FollowUp::Quarantine) => "withhold the rest and quarantine the identity",
                (true, _) => "withhold the rest",
                (false, FollowUp::Throttle) => "throttle the identity",
                _ => "alert",
            };
            let per = match l.window {
                Some(w) => format!(" (per identity, over {w} s)"),
                None => String::new(),
            };
            writeln!(
                f,
                "result limit:   {then} once it returns {} {}{per} (rule {})",
                l.threshold,
                l.counted.name(),
                l.rule_id
            )?;
        }
        for a in &d.anomaly {
            let then = match (a.block, a.follow_up) {
                (true, FollowUp::Quarantine) => "refuse or cut, and quarantine the identity",
                (true, _) => "refuse the statement, or cut its result",
                (false, FollowUp::Throttle) => "throttle the identity",
                _ => "alert",
            };
            writeln!(
                f,
                "behaviour:      {then} once the anomaly score reaches {} (rule {})",
                a.threshold(),
                a.rule_id
            )?;
        }
        for (rule, what) in &d.follow_ups {
            writeln!(f, "identity:       {} (rule {rule})", what.as_str())?;
        }
        Ok(())
    }
}
