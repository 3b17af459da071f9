//! Where API caller state persists: a JSON snapshot in a directory, Redis
//! shared by several danxia instances, or nowhere. Owns the snapshot
//! format and the Redis key layout; runs only in the sync task, never on a
//! request's path.
//!
//! Redis layout under `PREFIX`:
//! - `PREFIX:api:count:{caller}:{req|rec}:{m|d}:{window_start}` — the
//!   caller's requests/records in one minute/day window, summed over all
//!   instances (INCRBY of each instance's local delta), expiring after
//!   two windows;
//! - `PREFIX:api:suspended` — hash, caller → [`Suspension`] (JSON);
//!   authoritative, like the behaviour quarantine hash.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{StateError, Suspension};

/// Version of the snapshot format.
pub(crate) const SNAPSHOT_VERSION: u32 = 1;
/// File name of the disk snapshot in the state directory.
pub const SNAPSHOT_FILE: &str = "api-state.json";
/// Commands per Redis pipeline.
const REDIS_BATCH: usize = 512;
/// Longest wait for a Redis connection or one pipeline.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// One counter window in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedCounter {
    pub caller: String,
    /// `req:m`, `req:d`, `rec:m` or `rec:d`.
    pub counter: String,
    pub start: u64,
    pub end: u64,
    pub count: u64,
}

/// The disk snapshot.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub version: u32,
    pub saved_at: u64,
    pub counters: Vec<SavedCounter>,
    pub suspensions: Vec<Suspension>,
}

pub(crate) fn read_file(path: &Path) -> Result<Snapshot, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Snapshot::default()),
        Err(source) => {
            return Err(StateError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if snap.version != SNAPSHOT_VERSION {
        return Err(StateError::Corrupt {
            path: path.into(),
            reason: format!(
                "format version {} (this danxia reads {SNAPSHOT_VERSION})",
                snap.version
            ),
        });
    }
    Ok(snap)
}

/// Writes the snapshot atomically (temporary file, fsync, rename).
pub(crate) fn write_file(path: &Path, snap: &Snapshot) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let body = serde_json::to_string(snap).map_err(|e| err(std::io::Error::other(e)))?;
    crate::files::write_atomically(path, &body).map_err(err)
}

/// One counter to push (`delta` > 0: INCRBY) or read (GET).
pub(crate) struct Exchange {
    pub key: String,
    pub delta: u64,
    pub expire_secs: u64,
}

/// A Redis connection shared by the sync task.
pub(crate) struct Redis {
    pub url: String,
    pub prefix: String,
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl Redis {
    pub(crate) fn open(url: &str, prefix: &str) -> Result<Redis, StateError> {
        let client = redis::Client::open(url).map_err(|e| StateError::Redis {
            url: url.into(),
            reason: e.to_string(),
        })?;
        Ok(Redis {
            url: url.into(),
            prefix: prefix.into(),
            client,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Redis {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }

    async fn conn(&self) -> Result<redis::aio::MultiplexedConnection, StateError> {
        let mut c = self.conn.lock().await;
        if let Some(x) = c.as_ref() {
            return Ok(x.clone());
        }
        let fresh = tokio::time::timeout(
            REDIS_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| self.err(format!("no connection within {REDIS_TIMEOUT:?}")))?
        .map_err(|e| self.err(e))?;
        *c = Some(fresh.clone());
        Ok(fresh)
    }

    /// Drops the cached connection after an error, so the next call
    /// reconnects.
    pub(crate) async fn forget(&self) {
        *self.conn.lock().await = None;
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StateError> {
        tokio::time::timeout(REDIS_TIMEOUT, f)
            .await
            .map_err(|_| self.err(format!("no answer within {REDIS_TIMEOUT:?}")))?
            .map_err(|e| self.err(e))
    }

    pub(crate) fn count_key(&self, caller: &str, counter: &str, start: u64) -> String {
        format!("{}:api:count:{caller}:{counter}:{start}", self.prefix)
    }

    fn suspended_key(&self) -> String {
        format!("{}:api:suspended", self.prefix)
    }

    /// Pushes deltas and reads back the shared totals, in order.
    pub(crate) async fn exchange(&self, items: &[Exchange]) -> Result<Vec<u64>, StateError> {
        let mut c = self.conn().await?;
        let mut totals = Vec::with_capacity(items.len());
        for chunk in items.chunks(REDIS_BATCH) {
            let mut pipe = redis::pipe();
            for x in chunk {
                if x.delta > 0 {
                    pipe.cmd("INCRBY").arg(&x.key).arg(x.delta);
                    pipe.cmd("EXPIRE").arg(&x.key).arg(x.expire_secs).ignore();
                } else {
                    pipe.cmd("GET").arg(&x.key);
                }
            }
            let got: Vec<Option<i64>> = self.timed(pipe.query_async(&mut c)).await?;
            if got.len() != chunk.len() {
                return Err(self.err(format!(
                    "pipeline answered {} values for {} counters",
                    got.len(),
                    chunk.len()
                )));
            }
            totals.extend(got.into_iter().map(|v| v.unwrap_or(0).max(0) as u64));
        }
        Ok(totals)
    }

    pub(crate) async fn suspend(&self, s: &Suspension) -> Result<(), StateError> {
        let mut c = self.conn().await?;
        let body = serde_json::to_string(s).map_err(|e| self.err(e))?;
        self.timed(
            redis::cmd("HSET")
                .arg(self.suspended_key())
                .arg(&s.caller)
                .arg(body)
                .query_async::<()>(&mut c),
        )
        .await
    }

    pub(crate) async fn resume(&self, caller: &str) -> Result<(), StateError> {
        let mut c = self.conn().await?;
        self.timed(
            redis::cmd("HDEL")
                .arg(self.suspended_key())
                .arg(caller)
                .query_async::<()>(&mut c),
        )
        .await
    }

    pub(crate) async fn suspensions(&self) -> Result<Vec<Suspension>, StateError> {
        let mut c = self.conn().await?;
        let all: Vec<(String, String)> = self
            .timed(
                redis::cmd("HGETALL")
                    .arg(self.suspended_key())
                    .query_async(&mut c),
            )
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(caller, v)| match serde_json::from_str::<Suspension>(&v) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(caller, error = %e, "api state: skipping an unreadable suspension in redis");
                    None
                }
            })
            .collect())
    }

    /// Deletes every key under the prefix's `api:` space (tests).
    #[cfg(test)]
    pub(crate) async fn clear(&self) -> Result<(), StateError> {
        let mut c = self.conn().await?;
        let keys: Vec<String> = self
            .timed(
                redis::cmd("KEYS")
                    .arg(format!("{}:api:*", self.prefix))
                    .query_async(&mut c),
            )
            .await?;
        if !keys.is_empty() {
            self.timed(redis::cmd("DEL").arg(&keys).query_async::<()>(&mut c))
                .await?;
        }
        Ok(())
    }
}

/// Where state persists, resolved.
pub(crate) enum Backend {
    Memory,
    Disk { path: PathBuf },
    Redis(Box<Redis>),
}

impl Backend {
    pub(crate) fn describe(&self) -> String {
        match self {
            Backend::Memory => "memory (nothing persists)".into(),
            Backend::Disk { path } => format!("disk ({})", path.display()),
            Backend::Redis(r) => format!("redis ({}, prefix {})", r.url, r.prefix),
        }
    }
}
