//! The registry of live database sessions, for the admin API: who is
//! connected where since when, how many statements each session ran, and a
//! kill switch per session.
//!
//! Owns only bookkeeping. It must never cost the hot path more than an
//! atomic increment and a clock read per completed statement (no lock, no
//! allocation), and an entry must never outlive its session: entries are
//! added and removed by an RAII guard ([`LiveGuard`]) that the listener's
//! session task owns, so a session that panics or errors still leaves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::Notify;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// RFC 3339 (UTC, milliseconds) of a Unix-millisecond time.
pub fn rfc3339_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Who a session turned out to be once its startup finished. Written at
/// startup (and on MySQL COM_CHANGE_USER), read by the admin API: a mutex
/// is fine here, the hot path never touches it.
#[derive(Debug, Default, Clone)]
struct Who {
    user: Option<Arc<str>>,
    database: Option<Arc<str>>,
    application: Option<Arc<str>>,
    tls_subject: Option<Arc<str>>,
    established: bool,
}

/// One live PostgreSQL or MySQL client session.
#[derive(Debug)]
pub struct LiveSession {
    pub id: Arc<str>,
    pub listener: Arc<str>,
    pub protocol: &'static str,
    pub client: SocketAddr,
    started_ms: u64,
    who: Mutex<Who>,
    statements: AtomicU64,
    /// 0 until the first statement completes.
    last_statement_ms: AtomicU64,
    killed: AtomicBool,
    kill: Notify,
}

/// What the admin API shows of a session (`GET /sessions`).
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: String,
    pub listener: String,
    pub protocol: &'static str,
    pub user: Option<String>,
    pub database: Option<String>,
    pub application: Option<String>,
    pub client: String,
    /// The verified TLS client certificate's subject (RFC 4514); null
    /// for plaintext sessions and TLS without a client certificate.
    pub tls_subject: Option<String>,
    pub started: String,
    /// Statements completed (allowed, refused or failed); one still
    /// running is counted when it ends.
    pub statements: u64,
    pub last_statement: Option<String>,
    /// `startup` (authenticating), `established`, or `killing`.
    pub state: &'static str,
}

impl LiveSession {
    fn new(id: Arc<str>, listener: Arc<str>, protocol: &'static str, client: SocketAddr) -> Self {
        LiveSession {
            id,
            listener,
            protocol,
            client,
            started_ms: now_ms(),
            who: Mutex::new(Who::default()),
            statements: AtomicU64::new(0),
            last_statement_ms: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        }
    }

    /// Records who the session is, once startup succeeded (again after a
    /// MySQL COM_CHANGE_USER).
    pub fn set_identity(
        &self,
        user: Option<&Arc<str>>,
        database: Option<&Arc<str>>,
        application: Option<&Arc<str>>,
        tls_subject: Option<&Arc<str>>,
    ) {
        let mut w = self.who.lock().unwrap_or_else(|p| p.into_inner());
        w.user = user.cloned();
        w.database = database.cloned();
        w.application = application.cloned();
        w.tls_subject = tls_subject.cloned();
        w.established = true;
    }

    /// One statement completed: the hot path's only cost.
    #[inline]
    pub fn statement_done(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.last_statement_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Asks the session to end. `false` when a kill was already asked for.
    /// The permit is kept until the session waits on [`LiveSession::killed`],
    /// so a kill during startup takes effect as soon as the relay starts.
    pub fn kill(&self) -> bool {
        if self.killed.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.kill.notify_one();
        true
    }

    /// Resolves once an administrator killed the session.
    pub async fn killed(&self) {
        self.kill.notified().await
    }

    pub fn view(&self) -> SessionView {
        let who = self.who.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let last = self.last_statement_ms.load(Ordering::Relaxed);
        SessionView {
            id: self.id.to_string(),
            listener: self.listener.to_string(),
            protocol: self.protocol,
            user: who.user.map(|s| s.to_string()),
            database: who.database.map(|s| s.to_string()),
            application: who.application.map(|s| s.to_string()),
            client: self.client.to_string(),
            tls_subject: who.tls_subject.map(|s| s.to_string()),
            started: rfc3339_ms(self.started_ms),
            statements: self.statements.load(Ordering::Relaxed),
            last_statement: (last != 0).then(|| rfc3339_ms(last)),
            state: if self.killed.load(Ordering::Acquire) {
                "killing"
            } else if who.established {
                "established"
            } else {
                "startup"
            },
        }
    }
}

/// Every live database session, by id.
#[derive(Debug, Default)]
pub struct Registry {
    map: DashMap<Arc<str>, Arc<LiveSession>>,
}

impl Registry {
    /// Adds a session; it leaves the registry when the guard is dropped.
    pub fn register(
        self: &Arc<Self>,
        id: Arc<str>,
        listener: Arc<str>,
        protocol: &'static str,
        client: SocketAddr,
    ) -> LiveGuard {
        let s = Arc::new(LiveSession::new(id.clone(), listener, protocol, client));
        self.map.insert(id.clone(), s);
        LiveGuard {
            registry: self.clone(),
            id,
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        self.map.get(id).map(|e| e.value().clone())
    }

    /// Every live session, oldest first.
    pub fn list(&self) -> Vec<Arc<LiveSession>> {
        let mut v: Vec<Arc<LiveSession>> = self.map.iter().map(|e| e.value().clone()).collect();
        v.sort_by(|a, b| a.started_ms.cmp(&b.started_ms).then(a.id.cmp(&b.id)));
        v
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Keeps a session in the registry until dropped.
#[derive(Debug)]
pub struct LiveGuard {
    registry: Arc<Registry>,
    id: Arc<str>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.registry.map.remove(&*self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    }

    #[test]
    fn guard_removes_the_entry_even_on_panic() {
        let r = Arc::new(Registry::default());
        let g = r.register(Arc::from("a-1"), Arc::from("pg"), "postgres", addr());
        assert_eq!(r.len(), 1);
        drop(g);
        assert!(r.is_empty());
        let r2 = r.clone();
        // A session task that panics unwinds its guard.
        let res = std::thread::spawn(move || {
            let _g = r2.register(Arc::from("a-2"), Arc::from("pg"), "postgres", addr());
            panic!("session failed");
        })
        .join();
        assert!(res.is_err());
        assert!(r.is_empty(), "a panicking session must not leak its entry");
    }

    #[test]
    fn view_counts_statements_and_states() {
        let r = Arc::new(Registry::default());
        let _g = r.register(Arc::from("a-1"), Arc::from("my"), "mysql", addr());
        let s = r.get("a-1").expect("registered");
        let v = s.view();
        assert_eq!(
            (v.state, v.statements, v.user.clone()),
            ("startup", 0, None)
        );
        assert!(v.last_statement.is_none());
        assert!(v.started.ends_with('Z'), "{}", v.started);
        s.set_identity(
            Some(&Arc::from("app")),
            Some(&Arc::from("test")),
            None,
            Some(&Arc::from("CN=app1,O=Health")),
        );
        s.statement_done();
        s.statement_done();
        let v = s.view();
        assert_eq!(v.state, "established");
        assert_eq!(v.statements, 2);
        assert_eq!(v.user.as_deref(), Some("app"));
        assert_eq!(v.tls_subject.as_deref(), Some("CN=app1,O=Health"));
        assert!(v.last_statement.is_some());
        assert!(s.kill());
        assert!(!s.kill(), "a second kill is a no-op");
        assert_eq!(s.view().state, "killing");
    }

    #[tokio::test]
    async fn a_kill_before_the_wait_is_not_lost() {
        let r = Arc::new(Registry::default());
        let _g = r.register(Arc::from("a-1"), Arc::from("pg"), "postgres", addr());
        let s = r.get("a-1").expect("registered");
        s.kill();
        tokio::time::timeout(std::time::Duration::from_secs(1), s.killed())
            .await
            .expect("the stored permit wakes the session");
    }
}
