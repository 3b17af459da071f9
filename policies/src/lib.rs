//! The danxia policy language and its evaluator.
//!
//! Step 1 ships no rules: every statement is allowed and audited. This
//! crate fixes the shape the data path calls — a pure function from
//! statement facts and identity to a decision that names the rule that made
//! it — so that step 2's rule engine slots in without touching the proxy.
//! It must never do I/O on the hot path; loading and compiling happen off it.

use danxia_detectors::StatementFacts;

/// What the proxy does with a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    Alert,
}

/// A decision and the rule that made it (`"default"` when no rule matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub rule_id: String,
}

/// The compiled policy. Empty in step 1: its default allows everything.
#[derive(Debug, Default)]
pub struct Policy {
    _private: (),
}

impl Policy {
    /// Decides for one statement.
    pub fn decide(&self, _facts: &StatementFacts) -> Decision {
        Decision {
            action: Action::Allow,
            rule_id: "default".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use danxia_detectors::{analyze, LexOptions};

    #[test]
    fn empty_policy_allows_by_default_rule() {
        let facts = analyze("select 1", LexOptions::default());
        let d = Policy::default().decide(&facts[0]);
        assert_eq!(d.action, Action::Allow);
        assert_eq!(d.rule_id, "default");
    }
}
