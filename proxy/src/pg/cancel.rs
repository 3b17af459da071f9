//! Cancel-key mapping. Clients see the backend's real process id (so that
//! `pg_backend_pid()`, NOTIFY payload pids and `PQbackendPID` agree, which
//! applications rely on to ignore their own notifications) but a secret key
//! issued by the proxy: the backend's secret never leaves danxia, and a
//! CancelRequest — which arrives on a fresh connection — is found by the
//! (pid, secret) pair. Owns the registry only; sending the cancel is the
//! session's job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use danxia_protocols::pg::backend::BackendKeyData;

/// Where a proxy-issued key leads.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    pub backend_addr: String,
    pub backend_key: BackendKeyData,
}

/// Keyed by (process id, proxy-issued secret): process ids of different
/// backends may collide, the pair does not in practice (and a collision is
/// re-drawn at registration).
#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<(u32, u32), CancelTarget>>,
}

/// Removes the key when the session ends.
pub struct Registration {
    registry: Arc<CancelRegistry>,
    pub key: BackendKeyData,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.registry.map).remove(&(self.key.process_id, self.key.secret_key));
    }
}

impl CancelRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Issues the client-visible key for `target`: the backend's pid with a
    /// fresh random secret.
    pub fn register(self: &Arc<Self>, target: CancelTarget) -> Registration {
        let pid = target.backend_key.process_id;
        let mut map = lock(&self.map);
        let secret = loop {
            let s = random_u32();
            if !map.contains_key(&(pid, s)) {
                break s;
            }
        };
        map.insert((pid, secret), target);
        Registration {
            registry: self.clone(),
            key: BackendKeyData {
                process_id: pid,
                secret_key: secret,
            },
        }
    }

    /// The backend a CancelRequest is for, if the key is live.
    pub fn lookup(&self, process_id: u32, secret_key: u32) -> Option<CancelTarget> {
        lock(&self.map).get(&(process_id, secret_key)).cloned()
    }

    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.map).is_empty()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A random 32-bit value from the OS. If the OS RNG fails (it does not on
/// Linux after boot) fall back to a hash-seeded value rather than crash.
fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => u32::from_ne_bytes(b),
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            h.finish() as u32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(pid: u32) -> CancelTarget {
        CancelTarget {
            backend_addr: "127.0.0.1:5432".into(),
            backend_key: BackendKeyData {
                process_id: pid,
                secret_key: 7,
            },
        }
    }

    #[test]
    fn keys_map_to_backend_and_expire() {
        let r = CancelRegistry::new();
        let a = r.register(target(100));
        let b = r.register(target(200));
        let c = r.register(target(100)); // same pid on another backend
        assert_eq!(a.key.process_id, 100, "clients see the real backend pid");
        assert_ne!(a.key.secret_key, 7, "but never the backend's secret");
        assert_ne!(a.key.secret_key, c.key.secret_key);
        let t = r.lookup(a.key.process_id, a.key.secret_key).unwrap();
        assert_eq!(t.backend_key.process_id, 100);
        assert_eq!(t.backend_key.secret_key, 7);
        assert!(r.lookup(c.key.process_id, c.key.secret_key).is_some());
        assert!(r.lookup(a.key.process_id, a.key.secret_key ^ 1).is_none());
        let pid = b.key.process_id;
        let secret = b.key.secret_key;
        drop(b);
        assert!(r.lookup(pid, secret).is_none());
        assert_eq!(r.len(), 2);
    }
}
