//! The statement shapes an identity has run, for "new fingerprint" counts.
//! Owns the bounded set and its first-in-first-out eviction: a client that
//! sends endless distinct shapes pushes out old ones instead of growing the
//! profile. O(1) lookups on the hot path; serialised as the plain list in
//! insertion order, the hash set rebuilt on load.

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<u64>", into = "Vec<u64>")]
pub(crate) struct Fingerprints {
    order: VecDeque<u64>,
    set: HashSet<u64>,
}

impl From<Vec<u64>> for Fingerprints {
    fn from(list: Vec<u64>) -> Self {
        let mut f = Fingerprints::default();
        for fp in list {
            if f.set.insert(fp) {
                f.order.push_back(fp);
            }
        }
        f
    }
}

impl From<Fingerprints> for Vec<u64> {
    fn from(f: Fingerprints) -> Vec<u64> {
        f.order.into()
    }
}

impl Fingerprints {
    pub fn contains(&self, fp: u64) -> bool {
        self.set.contains(&fp)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Remembers `fp`, forgetting the oldest beyond `cap`; true when it was
    /// not known.
    pub fn insert(&mut self, fp: u64, cap: usize) -> bool {
        if self.set.contains(&fp) {
            return false;
        }
        while self.order.len() >= cap.max(1) {
            match self.order.pop_front() {
                Some(old) => {
                    self.set.remove(&old);
                }
                None => break,
            }
        }
        self.set.insert(fp);
        self.order.push_back(fp);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_within_cap_and_round_trip() {
        let mut f = Fingerprints::default();
        assert!(f.insert(1, 3));
        assert!(!f.insert(1, 3));
        assert!(f.insert(2, 3));
        assert!(f.insert(3, 3));
        assert!(f.insert(4, 3));
        assert_eq!((f.len(), f.contains(1), f.contains(4)), (3, false, true));
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, "[2,3,4]");
        let back: Fingerprints = serde_json::from_str("[2,3,3,4]").unwrap();
        assert_eq!((back.len(), back.contains(3)), (3, true));
    }
}
