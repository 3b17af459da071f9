//! Listeners: bind, accept, enforce the connection limit, and hand each
//! client to its protocol's session. Owns what every session of a listener
//! shares (config, metrics handles, audit, analyser, cancel keys) and the
//! shutdown signal; knows nothing of any wire protocol.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tracing::{debug, info, warn};

use crate::analysis::Analyzer;
use crate::audit::Auditor;
use crate::config::{Limits, ListenerConfig, Protocol};
use crate::metrics::ListenerMetrics;
use crate::pg;
use crate::pg::cancel::CancelRegistry;
use crate::policy::learn::Learner;
use crate::policy::metrics::DecisionMetrics;
use crate::policy::PolicyRuntime;
use danxia_policies::Mode;

/// Everything a session needs from its listener.
pub struct ListenerCtx {
    pub config: ListenerConfig,
    pub name: Arc<str>,
    pub limits: Limits,
    pub metrics: ListenerMetrics,
    pub auditor: Auditor,
    pub analyzer: Arc<Analyzer>,
    pub cancels: Arc<CancelRegistry>,
    pub shutdown: watch::Receiver<bool>,
    pub sessions: Arc<SessionCounter>,
    pub policy: Arc<PolicyRuntime>,
    /// How this listener applies the policy.
    pub mode: Mode,
    /// Present when this listener learns (mode `learn`, or any rule may).
    pub learner: Option<Arc<Learner>>,
    pub decisions: DecisionMetrics,
    /// Result scanning settings (`[data]`).
    pub data: crate::config::DataConfig,
    pub scanner: Arc<danxia_detectors::pii::Scanner>,
    /// Behaviour baselines (absent when `[behaviour] enabled = false`).
    pub behaviour: Option<Arc<crate::behaviour::Behaviour>>,
    /// Alert delivery to the SOC.
    pub alerts: crate::alerts::Alerts,
    /// TLS towards clients (`[listener.tls]`), reloaded when its files
    /// change.
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// TLS towards the backend (`[listener.backend_tls]` with a mode other
    /// than `disable`).
    pub backend_tls: Option<Arc<crate::tls::BackendConnector>>,
}

/// Counts live sessions across listeners and issues session ids, so that
/// shutdown can wait for the last one.
pub struct SessionCounter {
    active: AtomicUsize,
    next_id: AtomicU64,
    /// Process start (seconds), prefixed to ids so they never repeat across
    /// restarts of the proxy.
    epoch: u64,
    idle: Notify,
}

impl Default for SessionCounter {
    fn default() -> Self {
        Self {
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            epoch: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            idle: Notify::new(),
        }
    }
}

impl SessionCounter {
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Waits until no session is running.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Counts a new session (an HTTP connection too) and gives its id.
    pub fn enter_session(self: &Arc<Self>) -> (SessionGuard, Arc<str>) {
        self.enter()
    }

    fn enter(self: &Arc<Self>) -> (SessionGuard, Arc<str>) {
        self.active.fetch_add(1, Ordering::AcqRel);
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id: Arc<str> = Arc::from(format!("{:x}-{n}", self.epoch));
        (SessionGuard(self.clone()), id)
    }
}

/// Keeps a session counted until dropped.
pub struct SessionGuard(Arc<SessionCounter>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Binds a listener socket now, so that a bad address fails at start-up.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts clients until shutdown. Each client runs in its own task.
pub async fn serve(listener: TcpListener, ctx: Arc<ListenerCtx>) {
    let limit = Arc::new(Semaphore::new(ctx.limits.max_connections));
    let mut shutdown = ctx.shutdown.clone();
    info!(listener = %ctx.name, addr = %ctx.config.listen, backend = %ctx.config.backend, "listening");
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(listener = %ctx.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = pg::session::shutdown_signalled(&mut shutdown) => break,
        };
        ctx.metrics.connections_total.increment(1);
        let _ = stream.set_nodelay(true);
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                ctx.metrics.rejected_max_connections.increment(1);
                debug!(listener = %ctx.name, %peer, "refused: max_connections reached");
                let ctx = ctx.clone();
                tokio::spawn(async move { refuse(ctx.config.protocol, stream).await });
                continue;
            }
        };
        let (guard, id) = ctx.sessions.enter();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.metrics.connections_active.increment(1.0);
            match ctx.config.protocol {
                Protocol::Postgres => pg::session::run(&ctx, stream, peer, id).await,
                Protocol::Mysql => crate::mysql::session::run(&ctx, stream, peer, id).await,
                // HTTP listeners have their own accept loop (`http::serve`).
                Protocol::Http => drop(stream),
            }
            ctx.metrics.connections_active.decrement(1.0);
            drop(permit);
            drop(guard);
        });
    }
    info!(listener = %ctx.name, "stopped accepting");
}

async fn refuse(protocol: Protocol, stream: TcpStream) {
    match protocol {
        Protocol::Postgres => pg::session::refuse_too_many(stream).await,
        Protocol::Mysql => crate::mysql::session::refuse_too_many(stream).await,
        Protocol::Http => drop(stream),
    }
}
