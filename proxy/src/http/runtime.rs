//! The API scope policy at run time: loaded at start (a policy that does
//! not load stops start-up), swapped whole and atomically when its files
//! change, on SIGHUP or `POST /policy/reload`; a reload that fails keeps
//! the running policy, logs every diagnostic and counts the failure. The
//! caller keys and JWKS files reload with it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use danxia_policies::api::{ApiLoadOptions, ApiPolicy};
use metrics::counter;
use tracing::{error, info, warn};

pub struct ApiRuntime {
    current: ArcSwap<ApiPolicy>,
    opts: ApiLoadOptions,
    listener: Arc<str>,
    reloading: tokio::sync::Mutex<()>,
    last_error: Mutex<Option<String>>,
    /// Files whose change triggers a reload besides the policy directory
    /// (API keys, JWKS).
    extra: Vec<PathBuf>,
}

impl ApiRuntime {
    pub fn start(
        listener: &str,
        opts: ApiLoadOptions,
        extra: Vec<PathBuf>,
    ) -> Result<Arc<ApiRuntime>, String> {
        let p = ApiPolicy::load(&opts).map_err(|d| {
            format!(
                "listener {listener}: the API policy in {} does not load (check it with `danxia check --api {}`):\n{d}",
                opts.dir.display(),
                opts.dir.display()
            )
        })?;
        info!(listener, dir = %opts.dir.display(), version = p.version(), routes = p.routes().len(), "API policy loaded");
        Ok(Arc::new(ApiRuntime {
            current: ArcSwap::from_pointee(p),
            opts,
            listener: Arc::from(listener),
            reloading: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
            extra,
        }))
    }

    pub fn current(&self) -> arc_swap::Guard<Arc<ApiPolicy>> {
        self.current.load()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.opts.dir
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads now; the new version or why it failed.
    pub async fn reload(&self, trigger: &'static str) -> Result<u64, String> {
        let _one = self.reloading.lock().await;
        let opts = self.opts.clone();
        let loaded = tokio::task::spawn_blocking(move || ApiPolicy::load(&opts))
            .await
            .map_err(|e| format!("API policy loader thread failed: {e}"))?;
        match loaded {
            Ok(p) => {
                let v = p.version();
                self.current.store(Arc::new(p));
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                counter!("danxia_api_policy_reloads_total", "listener" => self.listener.to_string(), "result" => "ok").increment(1);
                info!(listener = %self.listener, trigger, version = v, "API policy reloaded");
                Ok(v)
            }
            Err(d) => {
                let text = d.to_string();
                counter!("danxia_api_policy_reloads_total", "listener" => self.listener.to_string(), "result" => "failed").increment(1);
                error!(listener = %self.listener, trigger, "API policy reload failed; the previous policy stays in force:\n{text}");
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.clone());
                Err(text)
            }
        }
    }

    fn stamp(&self) -> Vec<(PathBuf, u64, u128)> {
        crate::policy::files_stamp(&self.opts.dir, self.extra.iter().cloned())
    }

    /// Polls the files every `interval` (0: never) and reloads on change;
    /// `on_change` runs after each successful reload (the authenticator
    /// re-reads keys and JWKS).
    pub fn spawn_watcher(
        self: &Arc<Self>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        on_change: Arc<dyn Fn() + Send + Sync>,
    ) {
        {
            let rt = self.clone();
            let on_change = on_change.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = hup.recv() => {
                            on_change();
                            let _ = rt.reload("sighup").await;
                        }
                        _ = crate::pg::session::shutdown_signalled(&mut stop) => return,
                    }
                }
            });
        }
        if interval.is_zero() {
            return;
        }
        let rt = self.clone();
        tokio::spawn(async move {
            let mut seen = rt.stamp();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = crate::pg::session::shutdown_signalled(&mut shutdown) => return,
                }
                let rt2 = rt.clone();
                let now = tokio::task::spawn_blocking(move || rt2.stamp())
                    .await
                    .unwrap_or_default();
                if now != seen {
                    seen = now;
                    on_change();
                    if let Err(e) = rt.reload("files changed").await {
                        warn!(listener = %rt.listener, "API policy not reloaded: {}", e.lines().next().unwrap_or(""));
                    }
                }
            }
        });
    }
}
