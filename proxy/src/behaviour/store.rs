//! Where behaviour state persists: a snapshot file in the data directory
//! (the default: nothing but the disk), Redis shared by several danxia
//! instances, or nowhere. Owns the on-disk/Redis format; writes happen in
//! the background sync task, never on a session's path.
//!
//! Redis layout under `PREFIX`:
//! - `PREFIX:profile:IDENTITY` — one identity's profile (JSON);
//! - `PREFIX:updated` — sorted set, identity → unix time of its last write,
//!   so an instance pulls only what others changed since its last pull;
//! - `PREFIX:population` — the population (JSON; last writer wins);
//! - `PREFIX:quarantine` — hash, identity → why (JSON); authoritative:
//!   every instance applies it at each sync, so a release on one instance
//!   reaches the others within `sync_interval`.

use std::path::{Path, PathBuf};

use danxia_detectors::baseline::Population;
use serde::{Deserialize, Serialize};

use super::gate::Quarantined;
use super::registry::StoredProfile;

/// Version of the snapshot format.
const SNAPSHOT_VERSION: u32 = 1;
/// Profiles read from Redis per round trip.
const REDIS_BATCH: usize = 256;
/// File name of the disk snapshot in `behaviour.dir`.
pub const SNAPSHOT_FILE: &str = "baselines.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a danxia behaviour snapshot: {reason}; move it aside to start learning afresh")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "cannot write {path}: {source}; baselines will be lost at restart until it can be written"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("redis ({url}): {reason}")]
    Redis { url: String, reason: String },
}

/// Everything that persists.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// Real unix time of the save.
    pub saved_at: u64,
    pub profiles: Vec<StoredProfile>,
    pub population: Option<Population>,
    pub quarantine: Vec<Quarantined>,
}

pub enum Store {
    Memory,
    Disk {
        path: PathBuf,
    },
    Redis {
        url: String,
        prefix: String,
        client: Box<redis::Client>,
        conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    },
}

impl Store {
    pub fn disk(dir: &Path) -> Store {
        Store::Disk {
            path: dir.join(SNAPSHOT_FILE),
        }
    }

    pub fn redis(url: &str, prefix: &str) -> Result<Store, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Redis {
            url: url.into(),
            reason: e.to_string(),
        })?;
        Ok(Store::Redis {
            url: url.into(),
            prefix: prefix.into(),
            client: Box::new(client),
            conn: tokio::sync::Mutex::new(None),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Store::Memory => "memory (nothing persists)".into(),
            Store::Disk { path } => format!("disk ({})", path.display()),
            Store::Redis { url, prefix, .. } => format!("redis ({url}, prefix {prefix})"),
        }
    }

    /// Reads a disk snapshot; a missing file is an empty one.
    pub fn read_file(path: &Path) -> Result<Snapshot, StoreError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Snapshot::default()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.into(),
            reason: e.to_string(),
        })?;
        if snap.version != SNAPSHOT_VERSION {
            return Err(StoreError::Corrupt {
                path: path.into(),
                reason: format!(
                    "format version {} (this danxia reads {SNAPSHOT_VERSION})",
                    snap.version
                ),
            });
        }
        Ok(snap)
    }

    /// Writes a disk snapshot atomically (temporary file, fsync, rename).
    pub fn write_file(path: &Path, snap: &Snapshot) -> Result<(), StoreError> {
        let err = |source| StoreError::Write {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let body = serde_json::to_string(snap).map_err(|e| err(std::io::Error::other(e)))?;
        crate::files::write_atomically(path, &body).map_err(err)
    }

    async fn conn(&self) -> Result<redis::aio::MultiplexedConnection, StoreError> {
        let Store::Redis {
            url, client, conn, ..
        } = self
        else {
            return Err(StoreError::Redis {
                url: String::new(),
                reason: "not a redis store".into(),
            });
        };
        let mut c = conn.lock().await;
        if let Some(x) = c.as_ref() {
            return Ok(x.clone());
        }
        let fresh = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| StoreError::Redis {
            url: url.clone(),
            reason: "no connection within 5s".into(),
        })?
        .map_err(|e| StoreError::Redis {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        *c = Some(fresh.clone());
        Ok(fresh)
    }

    async fn forget_conn(&self) {
        if let Store::Redis { conn, .. } = self {
            *conn.lock().await = None;
        }
    }

    fn redis_err(&self, e: impl std::fmt::Display) -> StoreError {
        let url = match self {
            Store::Redis { url, .. } => url.clone(),
            _ => String::new(),
        };
        StoreError::Redis {
            url,
            reason: e.to_string(),
        }
    }

    fn prefix(&self) -> &str {
        match self {
            Store::Redis { prefix, .. } => prefix,
            _ => "",
        }
    }

    /// Everything stored (at start-up).
    pub async fn load(&self) -> Result<Snapshot, StoreError> {
        match self {
            Store::Memory => Ok(Snapshot::default()),
            Store::Disk { path } => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || Self::read_file(&path))
                    .await
                    .map_err(|e| StoreError::Read {
                        path: PathBuf::new(),
                        source: std::io::Error::other(e),
                    })?
            }
            Store::Redis { .. } => {
                let (profiles, _) = self.pull_since(0.0).await?;
                let mut c = self.conn().await?;
                let p = self.prefix();
                let pop: Option<String> = redis::cmd("GET")
                    .arg(format!("{p}:population"))
                    .query_async(&mut c)
                    .await
                    .map_err(|e| self.redis_err(e))?;
                let population = pop.and_then(|s| serde_json::from_str(&s).ok());
                let quarantine = self.quarantine_list().await?;
                Ok(Snapshot {
                    version: SNAPSHOT_VERSION,
                    saved_at: 0,
                    profiles,
                    population,
                    quarantine,
                })
            }
        }
    }

    /// Profiles other writers changed after `since` (unix seconds), and the
    /// time to pull from next.
    pub async fn pull_since(&self, since: f64) -> Result<(Vec<StoredProfile>, f64), StoreError> {
        let mut c = self.conn().await?;
        let p = self.prefix().to_string();
        let now = super::gate::unix_now() as f64;
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(format!("{p}:updated"))
            .arg(since)
            .arg("+inf")
            .query_async(&mut c)
            .await
            .map_err(|e| self.redis_err(e))?;
        let mut out = Vec::new();
        for chunk in ids.chunks(REDIS_BATCH) {
            let keys: Vec<String> = chunk.iter().map(|i| format!("{p}:profile:{i}")).collect();
            let vals: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut c)
                .await
                .map_err(|e| self.redis_err(e))?;
            for v in vals.into_iter().flatten() {
                match serde_json::from_str::<StoredProfile>(&v) {
                    Ok(sp) => out.push(sp),
                    Err(e) => {
                        tracing::warn!(error = %e, "behaviour: skipping an unreadable profile in redis")
                    }
                }
            }
        }
        // A write landing in the same second is pulled again next time
        // (harmless: import keeps the newer copy).
        Ok((out, now - 1.0))
    }

    /// Saves `snap` (disk: whole; redis: its profiles and population).
    pub async fn save(&self, snap: Snapshot) -> Result<(), StoreError> {
        match self {
            Store::Memory => Ok(()),
            Store::Disk { path } => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || Self::write_file(&path, &snap))
                    .await
                    .map_err(|e| StoreError::Write {
                        path: PathBuf::new(),
                        source: std::io::Error::other(e),
                    })?
            }
            Store::Redis { .. } => {
                let r = self.save_redis(&snap).await;
                if r.is_err() {
                    self.forget_conn().await;
                }
                r
            }
        }
    }

    async fn save_redis(&self, snap: &Snapshot) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let p = self.prefix().to_string();
        let now = super::gate::unix_now() as f64;
        for chunk in snap.profiles.chunks(REDIS_BATCH) {
            let mut pipe = redis::pipe();
            for sp in chunk {
                let body = serde_json::to_string(sp).map_err(|e| self.redis_err(e))?;
                pipe.cmd("SET")
                    .arg(format!("{p}:profile:{}", sp.identity))
                    .arg(body)
                    .ignore();
                pipe.cmd("ZADD")
                    .arg(format!("{p}:updated"))
                    .arg(now)
                    .arg(&sp.identity)
                    .ignore();
            }
            pipe.query_async::<()>(&mut c)
                .await
                .map_err(|e| self.redis_err(e))?;
        }
        if let Some(pop) = &snap.population {
            let body = serde_json::to_string(pop).map_err(|e| self.redis_err(e))?;
            redis::cmd("SET")
                .arg(format!("{p}:population"))
                .arg(body)
                .query_async::<()>(&mut c)
                .await
                .map_err(|e| self.redis_err(e))?;
        }
        Ok(())
    }

    pub async fn quarantine_set(&self, q: &Quarantined) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let body = serde_json::to_string(q).map_err(|e| self.redis_err(e))?;
        redis::cmd("HSET")
            .arg(format!("{}:quarantine", self.prefix()))
            .arg(&q.identity)
            .arg(body)
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| self.redis_err(e))
    }

    pub async fn quarantine_del(&self, identity: &str) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        redis::cmd("HDEL")
            .arg(format!("{}:quarantine", self.prefix()))
            .arg(identity)
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| self.redis_err(e))
    }

    pub async fn quarantine_list(&self) -> Result<Vec<Quarantined>, StoreError> {
        let mut c = self.conn().await?;
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(format!("{}:quarantine", self.prefix()))
            .query_async(&mut c)
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(all
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_str(&v).ok())
            .collect())
    }

    pub fn is_redis(&self) -> bool {
        matches!(self, Store::Redis { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_snapshots_round_trip_and_refuse_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b").join(SNAPSHOT_FILE);
        assert!(Store::read_file(&path)
            .expect("missing = empty")
            .profiles
            .is_empty());
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            saved_at: 5,
            profiles: vec![StoredProfile {
                identity: "u|a|local".into(),
                user: "u".into(),
                application: "a".into(),
                network: "local".into(),
                profile: danxia_detectors::baseline::Profile::new(100),
            }],
            population: Some(Population::default()),
            quarantine: vec![Quarantined {
                identity: "u|a|local".into(),
                rule: "r".into(),
                since: 7,
                reason: "why".into(),
            }],
        };
        Store::write_file(&path, &snap).expect("write");
        let back = Store::read_file(&path).expect("read");
        assert_eq!(back.profiles.len(), 1);
        assert_eq!(back.quarantine, snap.quarantine);
        std::fs::write(&path, b"{not json").expect("garbage");
        let e = Store::read_file(&path).expect_err("corrupt");
        assert!(e.to_string().contains("move it aside"), "{e}");
    }
}
