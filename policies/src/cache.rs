//! The decision cache: decisions by everything they depend on, so a
//! repeated statement from the same session costs one hash lookup instead
//! of a walk over every rule. Lives inside one [`crate::Policy`], so a
//! reload (a new policy) starts empty and can never serve a stale decision.
//! Sharded and bounded like the proxy's facts cache.
//!
//! Entries are indexed by fingerprint but hold the statement's normalised
//! text, and a lookup only hits when that text is equal: the fingerprint
//! (FNV-1a) is not collision resistant, so a client who controls SQL text
//! can give a malicious statement a benign one's fingerprint. It must never
//! return a decision made for other text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Decision, Mode};

/// Independently locked shards: enough that sessions on different workers
/// rarely meet on one lock.
const SHARDS: usize = 16;
/// Entries per shard before it is cleared. Clearing (rather than LRU
/// bookkeeping) keeps a hit to one lookup; statement shapes × identities in
/// use are far fewer than SHARDS × this.
const SHARD_CAPACITY: usize = 4096;

/// Longest normalised statement (bytes) the cache keeps. Longer statements
/// are not cached at all and are evaluated every time: each entry stores
/// its text, and this bounds one entry's size and a hit's comparison.
pub(crate) const MAX_CACHED_STATEMENT_BYTES: usize = 64 * 1024;
/// Statement text a shard holds before it is cleared, so a client sending
/// many distinct long statements cannot grow the cache past SHARDS × this
/// (64 MiB). Ordinary statements (a few hundred bytes) reach
/// [`SHARD_CAPACITY`] first.
const SHARD_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// Everything a decision is a function of, given the policy, besides the
/// normalised text the entry stores and a hit compares. Facts are a
/// function of the normalised text (the proxy's facts cache compares it
/// too), except a parse error the proxy imposes on text it cannot decode,
/// hence that flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub(crate) fingerprint: u64,
    pub(crate) identity: u64,
    pub(crate) open_windows: u32,
    pub(crate) stacked: bool,
    pub(crate) parse_error: bool,
    pub(crate) mode: Mode,
}

/// One shard: key → (the normalised text the decision was made for, the
/// decision), and the total bytes of those texts.
#[derive(Default)]
struct Entries {
    map: HashMap<CacheKey, (Box<str>, Arc<Decision>)>,
    text_bytes: usize,
}

type Shard = Mutex<Entries>;

pub(crate) struct DecisionCache {
    shards: Box<[Shard]>,
}

impl Default for DecisionCache {
    fn default() -> Self {
        DecisionCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

/// A poisoned shard only means another thread panicked mid-insert; the map
/// itself is still a valid cache.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DecisionCache {
    fn shard(&self, key: &CacheKey) -> &Shard {
        let i = (key.fingerprint ^ key.identity.rotate_left(29)) as usize % SHARDS;
        &self.shards[i]
    }

    /// Whether statements with this normalised text are cached at all.
    pub(crate) fn cacheable(normalized: &str) -> bool {
        normalized.len() <= MAX_CACHED_STATEMENT_BYTES
    }

    /// The decision cached for `key` and exactly this normalised text; an
    /// entry for other text under the same key is a miss.
    pub(crate) fn get(&self, key: &CacheKey, normalized: &str) -> Option<Arc<Decision>> {
        lock(self.shard(key))
            .map
            .get(key)
            .filter(|(text, _)| **text == *normalized)
            .map(|(_, d)| d.clone())
    }

    /// Caches `decision` for `key` and `normalized`, replacing whatever the
    /// key held (including an entry for other text). Does nothing for a
    /// statement longer than [`MAX_CACHED_STATEMENT_BYTES`].
    pub(crate) fn insert(&self, key: CacheKey, normalized: &str, decision: Arc<Decision>) {
        if !Self::cacheable(normalized) {
            return;
        }
        let mut shard = lock(self.shard(&key));
        let full = shard.map.len() >= SHARD_CAPACITY && !shard.map.contains_key(&key);
        if full || shard.text_bytes + normalized.len() > SHARD_TEXT_BYTES {
            shard.map.clear();
            shard.text_bytes = 0;
        }
        shard.text_bytes += normalized.len();
        if let Some((old, _)) = shard.map.insert(key, (normalized.into(), decision)) {
            shard.text_bytes -= old.len();
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    #[cfg(test)]
    pub(crate) fn text_bytes(&self) -> usize {
        self.shards.iter().map(|s| lock(s).text_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fingerprint: u64) -> CacheKey {
        CacheKey {
            fingerprint,
            identity: 0,
            open_windows: 0,
            stacked: false,
            parse_error: false,
            mode: Mode::Enforce,
        }
    }

    fn decision() -> Arc<Decision> {
        Arc::new(Decision {
            block: false,
            action: crate::Action::Allow,
            rule_id: Arc::from("default"),
            message: Arc::from(""),
            mode: Mode::Enforce,
            alerts: Vec::new(),
            audit_text: None,
            learn: false,
            tags: Vec::new(),
            level: 0,
            masks: None,
            limits: Vec::new(),
            anomaly: Vec::new(),
            follow_ups: Vec::new(),
        })
    }

    #[test]
    fn text_must_match_and_replaces() {
        let c = DecisionCache::default();
        c.insert(key(1), "select ?", decision());
        assert!(c.get(&key(1), "select ?").is_some());
        assert!(
            c.get(&key(1), "select ?, ?").is_none(),
            "same key, other text"
        );
        c.insert(key(1), "select ?, ?", decision());
        assert!(c.get(&key(1), "select ?").is_none());
        assert!(c.get(&key(1), "select ?, ?").is_some());
        assert_eq!((c.len(), c.text_bytes()), (1, "select ?, ?".len()));
    }

    #[test]
    fn text_bytes_are_bounded() {
        let c = DecisionCache::default();
        let long = "x".repeat(MAX_CACHED_STATEMENT_BYTES);
        // Every key in one shard (same fingerprint modulo SHARDS).
        for i in 0..(2 * SHARD_TEXT_BYTES / MAX_CACHED_STATEMENT_BYTES) as u64 {
            c.insert(key(i * SHARDS as u64), &long, decision());
            assert!(c.text_bytes() <= SHARD_TEXT_BYTES);
        }
        c.insert(
            key(7),
            &"y".repeat(MAX_CACHED_STATEMENT_BYTES + 1),
            decision(),
        );
        assert!(c
            .get(&key(7), &"y".repeat(MAX_CACHED_STATEMENT_BYTES + 1))
            .is_none());
    }
}
