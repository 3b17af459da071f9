//! SQL analysis for the data path: splits a Query into statements and gets
//! each statement's facts from a bounded, sharded cache, so a repeated
//! statement shape costs one lexer pass instead of a full sqlparser parse
//! (8–30 µs). Owns no policy.
//!
//! The cache is indexed by fingerprint but an entry is only used when its
//! normalised text (and dialect) equals the statement's: the fingerprint
//! (FNV-1a) is not collision resistant, and a client who controls SQL text
//! can craft a statement whose fingerprint equals a benign one's. It must
//! never hand out another statement's facts on a fingerprint match alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use danxia_detectors::{
    analyze, fingerprint, fingerprint_with_values, redact_credentials, split_statements, Dialect,
    LexOptions, StatementFacts,
};
use metrics::{counter, Counter};

/// Number of independently locked cache shards: enough that sessions on
/// different workers rarely meet on one lock.
const SHARDS: usize = 16;
/// Entries per shard before the shard is cleared. Clearing (rather than LRU
/// bookkeeping) keeps the hit path to one hash lookup; an application's
/// statement shapes are far fewer than SHARDS × this.
const SHARD_CAPACITY: usize = 4096;
/// Normalised text a shard may hold before it is cleared: bounds the cache
/// at SHARDS × this (64 MiB) whatever the statements' sizes.
const SHARD_TEXT_BUDGET: usize = 4 << 20;
/// Longest normalised text whose facts are cached.
const MAX_CACHED_TEXT: usize = 64 << 10;

/// One lock's worth of the cache, with the bytes of text it holds.
#[derive(Default)]
struct Shard {
    map: HashMap<u64, Entry>,
    text_bytes: usize,
}

/// One statement as the session tracks it: its own text and its facts.
#[derive(Debug, Clone)]
pub struct Statement {
    pub text: Arc<str>,
    pub facts: Arc<StatementFacts>,
    /// The statement may change how later text must be lexed
    /// (`client_encoding`, `standard_conforming_strings`).
    pub changes_lexing: bool,
    /// The policy's decision, once the session has asked for one.
    pub judgement: Option<Judgement>,
    /// Digest of its literal values (behaviour baselines count distinct
    /// ones per shape); `None` when it has none.
    pub values: Option<u64>,
    /// The text with credential literals (`PASSWORD 'x'`, `IDENTIFIED BY
    /// 'x'`) replaced, for the audit log and alerts; `None` when the text
    /// has none, so the common case costs no copy.
    pub redacted: Option<Arc<str>>,
}

/// A policy decision about one statement and the policy version that made
/// it: a prepared statement decided under an older policy is decided again
/// before it runs.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub decision: Arc<danxia_policies::Decision>,
    pub policy_version: u64,
}

impl Statement {
    /// Whether the policy refuses this statement.
    pub fn blocked(&self) -> bool {
        self.judgement.as_ref().is_some_and(|j| j.decision.block)
    }

    /// Whether a mask rule applies to this statement's results.
    pub fn masked(&self) -> bool {
        self.judgement
            .as_ref()
            .is_some_and(|j| j.decision.masks.is_some())
    }
}

/// A cached analysis: the facts and the dialect they were computed under
/// (the facts' `normalized` is the text the entry is for).
type Entry = (Dialect, Arc<StatementFacts>);

/// The shared facts cache of one proxy process.
pub struct Analyzer {
    /// fingerprint → entry; a hit must also match the normalised text.
    shards: Vec<Mutex<Shard>>,
    hits: Counter,
    misses: Counter,
    parse_failures: Counter,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl Analyzer {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hits: counter!("danxia_sql_analysis_cache_total", "result" => "hit"),
            misses: counter!("danxia_sql_analysis_cache_total", "result" => "miss"),
            parse_failures: counter!("danxia_sql_parse_failures_total"),
        }
    }

    /// The statements of one Query (or Parse) text, in order, with facts.
    pub fn statements(&self, sql: &str, opts: LexOptions) -> Vec<Statement> {
        split_statements(sql, opts)
            .into_iter()
            .map(|text| {
                let (facts, values) = self.facts_and_values(text, opts);
                Statement {
                    changes_lexing: changes_lexing(&facts),
                    facts,
                    text: Arc::from(text),
                    judgement: None,
                    values,
                    redacted: redact_credentials(text, opts).map(Arc::from),
                }
            })
            .collect()
    }

    /// A statement the proxy must not split or parse (undecodable encoding,
    /// lexing settings in flux): kept whole, operation `unknown`, with the
    /// reason as its parse error. Not cached.
    pub fn unanalysable(&self, text: &str, reason: &str) -> Statement {
        self.parse_failures.increment(1);
        Statement {
            text: Arc::from(text),
            facts: Arc::new(bare_facts(
                text,
                LexOptions::default(),
                danxia_detectors::Operation::Unknown,
                Some(reason.to_string()),
            )),
            changes_lexing: false,
            judgement: None,
            values: None,
            // The lexing rules are unknown here: hide what either dialect
            // would read as a credential.
            redacted: redact_credentials(text, LexOptions::for_dialect(Dialect::Postgres))
                .or_else(|| redact_credentials(text, LexOptions::for_dialect(Dialect::MySql)))
                .map(Arc::from),
        }
    }

    /// Facts of one statement, from the cache when its shape was seen: same
    /// fingerprint *and* same normalised text (a memcmp), so a crafted
    /// fingerprint collision is analysed afresh (a miss) and replaces the
    /// entry instead of borrowing another statement's facts.
    pub fn facts(&self, stmt: &str, opts: LexOptions) -> Arc<StatementFacts> {
        self.facts_and_values(stmt, opts).0
    }

    /// [`Analyzer::facts`] and the digest of the statement's literal
    /// values, from one lexer pass.
    pub fn facts_and_values(
        &self,
        stmt: &str,
        opts: LexOptions,
    ) -> (Arc<StatementFacts>, Option<u64>) {
        let (fp, normalized, values) = fingerprint_with_values(stmt, opts);
        let shard = &self.shards[(fp.0 as usize) % SHARDS];
        if let Some((dialect, f)) = lock(shard).map.get(&fp.0) {
            if *dialect == opts.dialect && f.normalized == normalized {
                self.hits.increment(1);
                return (f.clone(), values);
            }
        }
        self.misses.increment(1);
        let facts = analyze(stmt, opts)
            .into_iter()
            .next()
            .map(|mut f| {
                // The split already isolated one statement: keep the
                // fingerprint the cache is keyed by.
                f.fingerprint = fp;
                f
            })
            .unwrap_or_else(|| bare_facts(stmt, opts, danxia_detectors::Operation::Empty, None));
        if facts.parse_error.is_some() {
            self.parse_failures.increment(1);
        }
        let facts = Arc::new(facts);
        self.store(fp.0, opts.dialect, facts.clone());
        (facts, values)
    }

    fn store(&self, fp: u64, dialect: Dialect, facts: Arc<StatementFacts>) {
        let size = facts.normalized.len();
        if size > MAX_CACHED_TEXT {
            // Analysed afresh each time: rare, and caching it would let a
            // client pin megabytes per entry.
            return;
        }
        let mut shard = lock(&self.shards[(fp as usize) % SHARDS]);
        let full = shard.map.len() >= SHARD_CAPACITY || shard.text_bytes + size > SHARD_TEXT_BUDGET;
        if full && !shard.map.contains_key(&fp) {
            shard.map.clear();
            shard.text_bytes = 0;
        }
        if let Some((_, old)) = shard.map.insert(fp, (dialect, facts)) {
            shard.text_bytes = shard.text_bytes.saturating_sub(old.normalized.len());
        }
        shard.text_bytes += size;
    }
}

/// Whether a statement may change a setting that decides how the server
/// lexes later text: `SET client_encoding`/`SET NAMES`,
/// `standard_conforming_strings`, `RESET ALL`, `DISCARD ALL`, or
/// `set_config(...)` called from any statement.
fn changes_lexing(f: &StatementFacts) -> bool {
    let n = &f.normalized;
    let set_like = f.operation == danxia_detectors::Operation::Set
        && (n.contains("client_encoding")
            || n.contains("names")
            || n.contains("standard_conforming_strings")
            || n.contains(" all"));
    set_like
        || f.functions
            .iter()
            .any(|x| x == "set_config" || x.ends_with(".set_config"))
}

/// Facts with only a fingerprint and an operation: for text the analyser
/// returned nothing for, or that must not be parsed at all.
fn bare_facts(
    stmt: &str,
    opts: LexOptions,
    operation: danxia_detectors::Operation,
    parse_error: Option<String>,
) -> StatementFacts {
    let (fingerprint, normalized) = fingerprint(stmt, opts);
    StatementFacts {
        operation,
        fingerprint,
        normalized,
        parse_error,
        ..StatementFacts::default()
    }
}

/// A poisoned shard only means another thread panicked mid-insert; the map
/// is still a valid cache, so keep using it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use danxia_detectors::Operation;

    #[test]
    fn splits_and_caches_by_shape() {
        let a = Analyzer::new();
        let o = LexOptions::default();
        let s = a.statements("select * from t where id = 1; update u set x = 2", o);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].facts.operation, Operation::Select);
        assert_eq!(s[0].facts.tables, vec!["t".to_string()]);
        assert_eq!(s[1].facts.operation, Operation::Update);
        assert_eq!(&*s[1].text, "update u set x = 2");
        assert!(!s[0].changes_lexing && !s[1].changes_lexing);
        let again = a.facts("SELECT *  FROM t WHERE id = 42", o);
        assert!(
            Arc::ptr_eq(&again, &s[0].facts),
            "same shape must hit the cache"
        );
    }

    #[test]
    fn lexing_changes_are_recognised() {
        let a = Analyzer::new();
        let o = LexOptions::default();
        for (sql, want) in [
            ("SET client_encoding TO 'GBK'", true),
            ("set names 'SJIS'", true),
            ("SET standard_conforming_strings = off", true),
            ("RESET ALL", true),
            ("DISCARD ALL", true),
            ("select set_config('client_encoding', 'GBK', false)", true),
            ("SET search_path TO app", false),
            ("select 1", false),
        ] {
            let s = a.statements(sql, o);
            assert_eq!(s[0].changes_lexing, want, "{sql}");
        }
    }

    #[test]
    fn fingerprint_collision_gets_its_own_facts() {
        let a = Analyzer::new();
        let o = LexOptions::default();
        let evil = "select * from pg_shadow";
        let (fp, normalized) = fingerprint(evil, o);
        // Plant a benign statement's facts under the malicious statement's
        // fingerprint, as a crafted collision would.
        let benign = Arc::new(StatementFacts {
            operation: Operation::Select,
            tables: vec!["t".into()],
            fingerprint: fp,
            normalized: "select * from t".into(),
            ..StatementFacts::default()
        });
        a.store(fp.0, o.dialect, benign.clone());
        let got = a.facts(evil, o);
        assert!(
            !Arc::ptr_eq(&got, &benign),
            "collision served foreign facts"
        );
        assert_eq!(got.tables, vec!["pg_shadow".to_string()]);
        assert_eq!(got.normalized, normalized);
        // The fresh analysis replaced the entry: the next one is a hit.
        assert!(Arc::ptr_eq(&a.facts(evil, o), &got));
        // Another dialect never reuses the entry either.
        let mysql = LexOptions {
            dialect: Dialect::MySql,
            ..o
        };
        assert!(!Arc::ptr_eq(&a.facts(evil, mysql), &got));
    }

    #[test]
    fn empty_query_has_no_statements() {
        let a = Analyzer::new();
        assert!(a.statements("  ;  ", LexOptions::default()).is_empty());
    }
}
