//! The profiles of every identity the proxy has seen, the population that
//! scores identities too new for a baseline of their own, and the priors:
//! a user who appears from a new network or with a new application is
//! compared with its own established behaviour, and that novelty is
//! evidence in itself. Sharded locks: a session holds one shard for one
//! observe (a few microseconds), never two locks at once except shard →
//! population / established, always in that order.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use danxia_detectors::baseline::{
    Assessment, BaselineConfig, Evidence, Measure, Observation, Population, Prior, Profile,
};
use serde::{Deserialize, Serialize};

use super::who::Who;

const SHARDS: usize = 16;
/// How stale the population snapshot used for learning identities may be.
const POPULATION_REFRESH: Duration = Duration::from_secs(5);
/// Established identities remembered per user as priors.
const MAX_ESTABLISHED_PER_USER: usize = 16;

struct Entry {
    who: Who,
    profile: Profile,
    dirty: bool,
}

/// One identity's state as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredProfile {
    pub identity: String,
    pub user: String,
    pub application: String,
    pub network: String,
    pub profile: Profile,
}

/// An established identity of a user, kept as a prior.
#[derive(Clone)]
struct Established {
    key: Arc<str>,
    application: Arc<str>,
    network: Arc<str>,
    profile: Arc<Profile>,
}

pub struct Registry {
    pub cfg: BaselineConfig,
    shards: Vec<Mutex<HashMap<Arc<str>, Entry>>>,
    population: Mutex<Population>,
    population_snap: Mutex<(Instant, Arc<Population>)>,
    established: Mutex<HashMap<Arc<str>, Vec<Established>>>,
    count: AtomicUsize,
    max: usize,
    new_network_score: f64,
    new_application_score: f64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    pub fn new(cfg: BaselineConfig, max: usize, new_network: f64, new_app: f64) -> Registry {
        Registry {
            cfg,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            population: Mutex::new(Population::default()),
            population_snap: Mutex::new((Instant::now(), Arc::new(Population::default()))),
            established: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
            max: max.max(1),
            new_network_score: new_network,
            new_application_score: new_app,
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<Arc<str>, Entry>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn population_prior(&self) -> Arc<Population> {
        let mut s = lock(&self.population_snap);
        if s.0.elapsed() >= POPULATION_REFRESH {
            *s = (Instant::now(), Arc::new(lock(&self.population).clone()));
        }
        s.1.clone()
    }

    /// The user's established identities other than `who`.
    fn established_of(&self, who: &Who) -> Vec<Established> {
        lock(&self.established)
            .get(&who.user)
            .map(|v| v.iter().filter(|e| e.key != who.key).cloned().collect())
            .unwrap_or_default()
    }

    fn remember_established(&self, who: &Who, profile: &Profile) {
        let e = Established {
            key: who.key.clone(),
            application: who.application.clone(),
            network: who.network.clone(),
            profile: Arc::new(profile.clone()),
        };
        let mut m = lock(&self.established);
        let v = m.entry(who.user.clone()).or_default();
        v.retain(|x| x.key != who.key);
        if v.len() >= MAX_ESTABLISHED_PER_USER {
            v.remove(0);
        }
        v.push(e);
    }

    /// Records one completed statement of `who` and scores it.
    pub fn observe(&self, who: &Who, obs: &Observation<'_>) -> Assessment {
        let shard = self.shard(&who.key);
        let mut m = lock(shard);
        if !m.contains_key(&who.key) {
            if self.count.load(Ordering::Relaxed) >= self.max {
                // Forget this shard's least recently seen identity.
                if let Some(k) = m
                    .iter()
                    .min_by_key(|(_, e)| e.profile.last_seen())
                    .map(|(k, _)| k.clone())
                {
                    m.remove(&k);
                    self.count.fetch_sub(1, Ordering::Relaxed);
                }
            }
            m.insert(
                who.key.clone(),
                Entry {
                    who: who.clone(),
                    profile: Profile::new(obs.at),
                    dirty: true,
                },
            );
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        let Some(entry) = m.get_mut(&who.key) else {
            return Assessment::default();
        };
        let learning = entry.profile.is_learning(&self.cfg, obs.at);
        let (mut a, closed) = if learning {
            let others = self.established_of(who);
            // The same user's usual behaviour is the better prior: prefer
            // one from the same network, then the same application.
            let best = others
                .iter()
                .find(|e| e.network == who.network)
                .or_else(|| others.iter().find(|e| e.application == who.application))
                .or(others.first());
            let (a, closed) = match best {
                Some(e) => entry
                    .profile
                    .observe(&self.cfg, obs, Prior::Profile(&e.profile)),
                None => {
                    let pop = self.population_prior();
                    entry
                        .profile
                        .observe(&self.cfg, obs, Prior::Population(&pop))
                }
            };
            let mut a = a;
            if !others.is_empty() {
                let known: Vec<&str> = others.iter().map(|e| &*e.network).collect();
                if !others.iter().any(|e| e.network == who.network) {
                    add_evidence(
                        &mut a,
                        Evidence {
                            measure: Measure::NewNetwork,
                            subject: Some(format!("{} (known: {})", who.network, known.join(", "))),
                            observed: 1.0,
                            expected: 0.0,
                            scale: 0.0,
                            score: self.new_network_score,
                        },
                        self.cfg.score_cap,
                    );
                } else if !others.iter().any(|e| e.application == who.application) {
                    add_evidence(
                        &mut a,
                        Evidence {
                            measure: Measure::NewApplication,
                            subject: Some(who.application.to_string()),
                            observed: 1.0,
                            expected: 0.0,
                            scale: 0.0,
                            score: self.new_application_score,
                        },
                        self.cfg.score_cap,
                    );
                }
            }
            (a, closed)
        } else {
            entry.profile.observe(&self.cfg, obs, Prior::None)
        };
        entry.dirty = true;
        if let Some(w) = closed {
            if !entry.profile.is_learning(&self.cfg, obs.at) {
                self.remember_established(who, &entry.profile);
            }
            drop(m);
            lock(&self.population).fold(&self.cfg, &w);
        }
        a.evidence
            .truncate(danxia_detectors::baseline::MAX_EVIDENCE);
        a
    }

    /// Scores a statement before it runs (see `Profile::preview`); `None`
    /// for an identity never seen.
    pub fn preview(
        &self,
        who: &Who,
        at: u64,
        offset: i32,
        facts: &danxia_detectors::StatementFacts,
        key_digest: Option<u64>,
    ) -> Option<Assessment> {
        let m = lock(self.shard(&who.key));
        let e = m.get(&who.key)?;
        let pop;
        let prior = if e.profile.is_learning(&self.cfg, at) {
            pop = self.population_prior();
            Prior::Population(&pop)
        } else {
            Prior::None
        };
        Some(e.profile.preview(
            &self.cfg,
            at,
            offset,
            facts.fingerprint.0,
            &facts.tables,
            key_digest,
            prior,
        ))
    }

    /// Rows at which one statement of `who` on `tables` scores `score`.
    pub fn rows_for_score(
        &self,
        who: &Who,
        tables: &[String],
        score: f64,
        now: u64,
    ) -> Option<u64> {
        let m = lock(self.shard(&who.key));
        m.get(&who.key)?
            .profile
            .rows_for_score(&self.cfg, tables, score, now)
    }

    /// Identities whose key equals `pattern`, or whose user does.
    pub fn find(&self, pattern: &str) -> Vec<StoredProfile> {
        let mut out = Vec::new();
        for s in &self.shards {
            for e in lock(s).values() {
                if &*e.who.key == pattern || &*e.who.user == pattern {
                    out.push(stored(e));
                }
            }
        }
        out.sort_by(|a, b| a.identity.cmp(&b.identity));
        out
    }

    /// (identity, learning, statements, last seen) of every identity.
    pub fn list(&self, now: u64) -> Vec<(String, bool, u64, u64)> {
        let mut out = Vec::new();
        for s in &self.shards {
            for e in lock(s).values() {
                out.push((
                    e.who.key.to_string(),
                    e.profile.is_learning(&self.cfg, now),
                    e.profile.statements_seen(),
                    e.profile.last_seen(),
                ));
            }
        }
        out.sort();
        out
    }

    /// Every profile (all, or only those changed since the last call),
    /// marking them clean.
    pub fn export(&self, only_dirty: bool) -> Vec<StoredProfile> {
        let mut out = Vec::new();
        for s in &self.shards {
            for e in lock(s).values_mut() {
                if only_dirty && !e.dirty {
                    continue;
                }
                e.dirty = false;
                out.push(stored(e));
            }
        }
        out
    }

    pub fn population(&self) -> Population {
        lock(&self.population).clone()
    }

    /// Loads stored profiles (replacing any of the same identity unless the
    /// one held is newer) and the population.
    pub fn import(&self, profiles: Vec<StoredProfile>, population: Option<Population>, now: u64) {
        for p in profiles {
            let who = Who {
                key: Arc::from(p.identity.as_str()),
                user: Arc::from(p.user.as_str()),
                application: Arc::from(p.application.as_str()),
                network: Arc::from(p.network.as_str()),
            };
            let established = !p.profile.is_learning(&self.cfg, now);
            let mut m = lock(self.shard(&who.key));
            let newer_here = m
                .get(&who.key)
                .is_some_and(|e| e.profile.last_seen() > p.profile.last_seen());
            if newer_here {
                continue;
            }
            if established {
                self.remember_established(&who, &p.profile);
            }
            if m.insert(
                who.key.clone(),
                Entry {
                    who,
                    profile: p.profile,
                    dirty: false,
                },
            )
            .is_none()
            {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(pop) = population {
            *lock(&self.population) = pop;
            *lock(&self.population_snap) = (Instant::now(), Arc::new(self.population()));
        }
    }
}

fn stored(e: &Entry) -> StoredProfile {
    StoredProfile {
        identity: e.who.key.to_string(),
        user: e.who.user.to_string(),
        application: e.who.application.to_string(),
        network: e.who.network.to_string(),
        profile: e.profile.clone(),
    }
}

/// Adds `e` and recomputes the combined score (root of the sum of squares,
/// as the engine combines).
fn add_evidence(a: &mut Assessment, e: Evidence, cap: f64) {
    let sq: f64 = a.evidence.iter().map(|x| x.score * x.score).sum::<f64>() + e.score * e.score;
    a.score = sq.sqrt().min(cap).max(a.score);
    a.evidence.push(e);
    a.evidence.sort_by(|x, y| {
        y.score
            .partial_cmp(&x.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}
