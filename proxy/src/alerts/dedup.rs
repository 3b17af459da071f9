//! Suppression of repeated alerts: one incident, one alert.
//!
//! Owns the map key → (last sent at, suppressed since) and its size bound.
//! Must never read the clock itself (the caller passes `now`, so tests are
//! deterministic), never block, and never grow beyond `max_keys` entries of
//! at most `MAX_KEY_BYTES` each.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Longest key stored as given. Keys are built from session data (identity,
/// table); longer ones are stored as a prefix plus the SHA-256 of the whole
/// key, which keeps them distinct while bounding memory per entry.
pub const MAX_KEY_BYTES: usize = 512;

/// What to do with one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it; `suppressed` repeats of its key were swallowed since the
    /// last one sent.
    Send { suppressed: u64 },
    /// A repeat inside the window of the last one sent: count, do not send.
    Suppress,
}

struct Entry {
    last_sent: Instant,
    suppressed: u64,
    /// Position in `Dedup::order`; rises with every send of this key.
    seq: u64,
}

/// The suppression state of one `Alerts` instance.
pub struct Dedup {
    window: Duration,
    max_keys: usize,
    entries: HashMap<Arc<str>, Entry>,
    /// seq → key, oldest send first: the eviction order.
    order: BTreeMap<u64, Arc<str>>,
    next_seq: u64,
}

impl Dedup {
    /// `window` zero never suppresses (and remembers nothing); `max_keys`
    /// is at least 1.
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Dedup {
            window,
            max_keys: max_keys.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decides about one alert of `key` arriving at `now`. The first alert of
    /// a key is sent; later ones within `window` of the last one *sent* are
    /// suppressed; the first one after the window is sent with the count.
    pub fn check(&mut self, key: &str, now: Instant) -> Decision {
        if self.window.is_zero() {
            return Decision::Send { suppressed: 0 };
        }
        let key = bounded_key(key);
        let seq = self.next_seq;
        if let Some(e) = self.entries.get_mut(key.as_ref()) {
            if now.saturating_duration_since(e.last_sent) < self.window {
                e.suppressed = e.suppressed.saturating_add(1);
                return Decision::Suppress;
            }
            let suppressed = std::mem::take(&mut e.suppressed);
            e.last_sent = now;
            let old = std::mem::replace(&mut e.seq, seq);
            self.next_seq += 1;
            if let Some(k) = self.order.remove(&old) {
                self.order.insert(seq, k);
            }
            return Decision::Send { suppressed };
        }
        while self.entries.len() >= self.max_keys {
            match self.order.pop_first() {
                Some((_, oldest)) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        let key: Arc<str> = Arc::from(key.as_ref());
        self.entries.insert(
            key.clone(),
            Entry {
                last_sent: now,
                suppressed: 0,
                seq,
            },
        );
        self.order.insert(seq, key);
        self.next_seq += 1;
        Decision::Send { suppressed: 0 }
    }
}

/// The key as stored: unchanged up to `MAX_KEY_BYTES`, otherwise a prefix
/// (cut at a char boundary) plus `#` and the hex SHA-256 of the full key.
pub fn bounded_key(key: &str) -> Cow<'_, str> {
    if key.len() <= MAX_KEY_BYTES {
        return Cow::Borrowed(key);
    }
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let keep = MAX_KEY_BYTES - digest.len() - 1;
    let cut = floor_char_boundary(key, keep);
    Cow::Owned(format!("{}#{digest}", &key[..cut]))
}

/// The largest index `<= at` that is a char boundary of `s`.
pub(crate) fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    let mut i = at;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn first_sent_repeats_suppressed_then_counted() {
        let t0 = Instant::now();
        let mut d = Dedup::new(W, 100);
        assert_eq!(d.check("k", t0), Decision::Send { suppressed: 0 });
        assert_eq!(d.check("k", secs(t0, 1)), Decision::Suppress);
        assert_eq!(d.check("k", secs(t0, 9)), Decision::Suppress);
        // The window counts from the last one SENT (t0), not the last seen.
        assert_eq!(d.check("k", secs(t0, 10)), Decision::Send { suppressed: 2 });
        assert_eq!(d.check("k", secs(t0, 19)), Decision::Suppress);
        assert_eq!(d.check("k", secs(t0, 20)), Decision::Send { suppressed: 1 });
        assert_eq!(
            d.check("k", secs(t0, 100)),
            Decision::Send { suppressed: 0 }
        );
    }

    #[test]
    fn keys_are_independent() {
        let t0 = Instant::now();
        let mut d = Dedup::new(W, 100);
        assert_eq!(d.check("a", t0), Decision::Send { suppressed: 0 });
        assert_eq!(d.check("b", t0), Decision::Send { suppressed: 0 });
        assert_eq!(d.check("a", secs(t0, 1)), Decision::Suppress);
        assert_eq!(d.check("c", secs(t0, 1)), Decision::Send { suppressed: 0 });
        assert_eq!(d.check("b", secs(t0, 11)), Decision::Send { suppressed: 0 });
        assert_eq!(d.check("a", secs(t0, 11)), Decision::Send { suppressed: 1 });
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn zero_window_never_suppresses_nor_remembers() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::ZERO, 100);
        for _ in 0..3 {
            assert_eq!(d.check("k", t0), Decision::Send { suppressed: 0 });
        }
        assert!(d.is_empty());
    }

    #[test]
    fn max_keys_evicts_the_key_sent_longest_ago() {
        let t0 = Instant::now();
        let mut d = Dedup::new(W, 2);
        assert_eq!(d.check("a", t0), Decision::Send { suppressed: 0 });
        assert_eq!(d.check("b", secs(t0, 1)), Decision::Send { suppressed: 0 });
        assert_eq!(d.check("a", secs(t0, 2)), Decision::Suppress);
        // "c" evicts "a" (sent at t0, the oldest send), not "b".
        assert_eq!(d.check("c", secs(t0, 3)), Decision::Send { suppressed: 0 });
        assert_eq!(d.len(), 2);
        assert_eq!(d.check("b", secs(t0, 4)), Decision::Suppress);
        // "a" was forgotten: sent again at once, its suppressed count lost.
        assert_eq!(d.check("a", secs(t0, 4)), Decision::Send { suppressed: 0 });
        assert_eq!(d.len(), 2);
        // "a" evicted "b"; "c" is still remembered.
        assert_eq!(d.check("c", secs(t0, 5)), Decision::Suppress);
        assert_eq!(d.check("b", secs(t0, 5)), Decision::Send { suppressed: 0 });
    }

    #[test]
    fn resend_moves_a_key_to_the_back_of_the_eviction_order() {
        let t0 = Instant::now();
        let mut d = Dedup::new(W, 2);
        d.check("a", t0);
        d.check("b", secs(t0, 1));
        // "a" is sent again after its window: now "b" is the oldest send.
        assert_eq!(d.check("a", secs(t0, 10)), Decision::Send { suppressed: 0 });
        d.check("c", secs(t0, 11));
        assert_eq!(d.check("a", secs(t0, 12)), Decision::Suppress);
        assert_eq!(d.check("b", secs(t0, 12)), Decision::Send { suppressed: 0 });
        assert_eq!(d.order.len(), d.entries.len());
    }

    #[test]
    fn long_keys_are_bounded_and_stay_distinct() {
        let a = format!("{}a", "é".repeat(400));
        let b = format!("{}b", "é".repeat(400));
        let ka = bounded_key(&a);
        let kb = bounded_key(&b);
        assert!(ka.len() <= MAX_KEY_BYTES && kb.len() <= MAX_KEY_BYTES);
        assert_ne!(ka, kb);
        assert_eq!(bounded_key("short"), "short");
        let t0 = Instant::now();
        let mut d = Dedup::new(W, 10);
        assert_eq!(d.check(&a, t0), Decision::Send { suppressed: 0 });
        assert_eq!(d.check(&b, t0), Decision::Send { suppressed: 0 });
        assert_eq!(d.check(&a, t0), Decision::Suppress);
    }

    #[test]
    fn floor_char_boundary_cuts_inside_multibyte_chars() {
        let s = "a中b"; // 'a' 0, '中' 1..4, 'b' 4
        assert_eq!(floor_char_boundary(s, 0), 0);
        assert_eq!(floor_char_boundary(s, 2), 1);
        assert_eq!(floor_char_boundary(s, 3), 1);
        assert_eq!(floor_char_boundary(s, 4), 4);
        assert_eq!(floor_char_boundary(s, 99), 5);
    }
}
