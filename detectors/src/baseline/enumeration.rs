//! Enumeration tracking: per statement shape (fingerprint), the distinct
//! key values seen in the current window. An application walking
//! `WHERE id = $1` across the key space shows up as one fingerprint with far
//! more distinct keys than this identity's windows usually have, even though
//! every statement returns one row. Owns the per-window sets and their caps
//! (`max_enum_fingerprints`, `max_enum_keys`); stores only the caller's
//! digests, never the values.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The current window's distinct key digests, per tracked fingerprint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Enumeration {
    /// At most `max_enum_fingerprints`, in order of first use; a linear
    /// scan over at most a few hundred `u64`s beats hashing here.
    tracked: Vec<Tracked>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tracked {
    fingerprint: u64,
    keys: KeySet,
}

/// A set of key digests, serialised as a plain list.
#[derive(Debug, Clone, Default)]
struct KeySet(HashSet<u64>);

impl Serialize for KeySet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for KeySet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u64>::deserialize(d).map(|v| KeySet(v.into_iter().collect()))
    }
}

impl Enumeration {
    /// Records `key` for `fingerprint`; returns the fingerprint's distinct
    /// count including it, or `None` when the fingerprint is not tracked
    /// (the window already tracks `max_fingerprints` others). The count
    /// saturates at `max_keys`.
    pub fn record(
        &mut self,
        fingerprint: u64,
        key: u64,
        max_fingerprints: usize,
        max_keys: usize,
    ) -> Option<u64> {
        let i = match self
            .tracked
            .iter()
            .position(|t| t.fingerprint == fingerprint)
        {
            Some(i) => i,
            None if self.tracked.len() < max_fingerprints => {
                self.tracked.push(Tracked {
                    fingerprint,
                    keys: KeySet::default(),
                });
                self.tracked.len() - 1
            }
            None => return None,
        };
        let keys = &mut self.tracked.get_mut(i)?.keys.0;
        if keys.len() < max_keys {
            keys.insert(key);
        }
        Some(keys.len() as u64)
    }

    /// What [`Enumeration::record`] would return, without recording.
    pub fn peek(
        &self,
        fingerprint: u64,
        key: u64,
        max_fingerprints: usize,
        max_keys: usize,
    ) -> Option<u64> {
        match self.tracked.iter().find(|t| t.fingerprint == fingerprint) {
            Some(t) => {
                let n = t.keys.0.len();
                let added = n < max_keys && !t.keys.0.contains(&key);
                Some((n + usize::from(added)) as u64)
            }
            None if self.tracked.len() < max_fingerprints => Some(1),
            None => None,
        }
    }

    /// The largest distinct count over the window's fingerprints.
    pub fn max_distinct(&self) -> u64 {
        self.tracked
            .iter()
            .map(|t| t.keys.0.len() as u64)
            .max()
            .unwrap_or(0)
    }

    /// Fingerprints tracked and digests held (for bounds checks).
    #[cfg(test)]
    pub fn size(&self) -> (usize, usize) {
        (
            self.tracked.len(),
            self.tracked.iter().map(|t| t.keys.0.len()).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_keys_per_fingerprint_within_caps() {
        let mut e = Enumeration::default();
        // (fingerprint, key, expected record result) with caps 2 fps × 3 keys
        let steps: &[(u64, u64, Option<u64>)] = &[
            (1, 10, Some(1)),
            (1, 10, Some(1)),
            (1, 11, Some(2)),
            (2, 10, Some(1)),
            (3, 10, None), // third fingerprint: not tracked this window
            (1, 12, Some(3)),
            (1, 13, Some(3)), // saturated
        ];
        for &(fp, key, want) in steps {
            assert_eq!(e.peek(fp, key, 2, 3), want, "peek {fp}/{key}");
            assert_eq!(e.record(fp, key, 2, 3), want, "record {fp}/{key}");
        }
        assert_eq!(e.max_distinct(), 3);
        assert_eq!(e.size(), (2, 4));
    }

    #[test]
    fn round_trips_through_json() {
        let mut e = Enumeration::default();
        for k in 0..50 {
            e.record(7, k, 4, 100);
        }
        let back: Enumeration = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back.max_distinct(), 50);
        assert_eq!(back.peek(7, 3, 4, 100), Some(50));
        assert_eq!(back.peek(7, 99, 4, 100), Some(51));
    }
}
