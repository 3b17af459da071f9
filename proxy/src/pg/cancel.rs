//! Cancel-key mapping. Clients see a key pair issued by the proxy, never the
//! backend's: a CancelRequest arrives on a fresh connection, so the proxy
//! must find which backend (and which backend key) it belongs to. Owns the
//! registry only; sending the cancel is the session's job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use danxia_protocols::pg::backend::BackendKeyData;

/// Where a proxy-issued key leads.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    pub backend_addr: String,
    pub backend_key: BackendKeyData,
}

#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<u32, (u32, CancelTarget)>>,
    next_pid: AtomicU32,
}

/// Removes the key when the session ends.
pub struct Registration {
    registry: Arc<CancelRegistry>,
    pub key: BackendKeyData,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.registry.map).remove(&self.key.process_id);
    }
}

impl CancelRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(HashMap::new()),
            next_pid: AtomicU32::new(random_u32() & 0x3fff_ffff),
        })
    }

    /// Issues a fresh client-visible key for `target`.
    pub fn register(self: &Arc<Self>, target: CancelTarget) -> Registration {
        let secret = random_u32();
        let mut map = lock(&self.map);
        let pid = loop {
            // Positive, non-zero pids: some clients treat the pid as signed.
            let pid = self.next_pid.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff;
            if pid != 0 && !map.contains_key(&pid) {
                break pid;
            }
        };
        map.insert(pid, (secret, target));
        Registration {
            registry: self.clone(),
            key: BackendKeyData {
                process_id: pid,
                secret_key: secret,
            },
        }
    }

    /// The backend a CancelRequest is for, if the key is live and the secret
    /// matches.
    pub fn lookup(&self, process_id: u32, secret_key: u32) -> Option<CancelTarget> {
        let map = lock(&self.map);
        let (secret, target) = map.get(&process_id)?;
        // Constant-time compare: the secret is the only thing protecting
        // other users' sessions from being cancelled.
        if (secret ^ secret_key) == 0 {
            Some(target.clone())
        } else {
            None
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.map).len()
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
        assert_ne!(a.key.process_id, b.key.process_id);
        let t = r.lookup(a.key.process_id, a.key.secret_key).unwrap();
        assert_eq!(t.backend_key.process_id, 100);
        assert!(r.lookup(a.key.process_id, a.key.secret_key ^ 1).is_none());
        let pid = b.key.process_id;
        let secret = b.key.secret_key;
        drop(b);
        assert!(r.lookup(pid, secret).is_none());
        assert_eq!(r.len(), 1);
    }
}
