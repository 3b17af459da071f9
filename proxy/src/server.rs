//! Process orchestration for `danxia run`: start the audit writer, bind
//! every listener and the admin endpoint, run until SIGTERM/SIGINT, then
//! shut down in order — stop accepting, let running statements finish
//! within `limits.shutdown_grace`, flush the audit log.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState};
use crate::analysis::Analyzer;
use crate::audit;
use crate::config::Config;
use crate::listener::{self, ListenerCtx, SessionCounter};
use crate::metrics::ListenerMetrics;
use crate::pg::cancel::CancelRegistry;
use crate::policy::learn::Learner;
use crate::policy::metrics::DecisionMetrics;
use crate::policy::PolicyRuntime;

/// Extra time after the grace period for sessions to write their farewell
/// and audit events before the process stops waiting for them.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(3);

pub async fn run(config: Config) -> anyhow::Result<()> {
    let prometheus = crate::metrics::install().context("installing the metrics recorder")?;
    let (auditor, audit_task) = audit::start(config.audit.clone())
        .with_context(|| format!("starting the audit log in {}", config.audit.dir.display()))?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let sessions = Arc::new(SessionCounter::default());
    let analyzer = Arc::new(Analyzer::new());
    let cancels = CancelRegistry::new();
    let policy = PolicyRuntime::start(config.policy.as_ref()).map_err(|d| {
        anyhow::anyhow!("the policy does not load (fix it, or check it with `danxia check`):\n{d}")
    })?;
    match &config.policy {
        Some(p) => {
            info!(dir = %p.dir.display(), version = policy.current().policy.version(), rules = policy.current().policy.rule_count(), "policy loaded")
        }
        None => warn!("no [policy] configured: every statement is allowed (and audited)"),
    }
    policy.spawn_watchers(shutdown_rx.clone());
    // Learning is cheap to have ready: the writer only touches the file when
    // a decision asks for a fingerprint to be recorded.
    let learner = config
        .policy
        .as_ref()
        .map(|p| Learner::start(p.allowlist.clone()));

    let alerts = crate::alerts::Alerts::start(&config.alerts)
        .map_err(|e| anyhow::anyhow!("[alerts]: {e}"))?;
    let behaviour = if config.behaviour.enabled {
        let b = crate::behaviour::Behaviour::start(config.behaviour.clone())
            .await
            .map_err(|e| anyhow::anyhow!("[behaviour]: {e}"))?;
        Some(b)
    } else {
        info!("behaviour baselines disabled ([behaviour] enabled = false)");
        None
    };
    // The store's last sync runs once every session has ended, so the
    // last statements are in it.
    let (sync_stop_tx, sync_stop_rx) = watch::channel(false);
    let sync_task = behaviour
        .clone()
        .map(|b| tokio::spawn(b.run_sync(sync_stop_rx)));

    let admin_state = Arc::new(AdminState {
        prometheus,
        listeners_bound: false.into(),
        accepting: true.into(),
        backends: config
            .listeners
            .iter()
            .flat_map(|l| {
                if l.protocol == crate::config::Protocol::Http {
                    // Each upstream's host:port.
                    l.upstream
                        .iter()
                        .filter_map(|u| u.url.parse::<http::Uri>().ok())
                        .filter_map(|u| {
                            let a = u.authority()?;
                            Some((
                                l.name.clone(),
                                format!("{}:{}", a.host(), a.port_u16().unwrap_or(80)),
                            ))
                        })
                        .collect::<Vec<_>>()
                } else {
                    vec![(l.name.clone(), l.backend.clone())]
                }
            })
            .collect(),
        auditor: auditor.clone(),
        policy: policy.clone(),
        behaviour: behaviour.clone(),
        alerts: alerts.clone(),
        api: std::sync::Mutex::new(Vec::new()),
    });
    let admin_listener = admin::bind(config.admin.listen)
        .await
        .with_context(|| format!("binding admin.listen = {}", config.admin.listen))?;
    let mut admin_shutdown = shutdown_rx.clone();
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        admin_state.clone(),
        async move {
            let _ = admin_shutdown.wait_for(|s| *s).await;
        },
    ));
    info!(addr = %config.admin.listen, "admin endpoint listening");

    let mut accept_tasks = Vec::new();
    // HTTP listeners share the caller state (quotas, suspensions).
    let has_http = config
        .listeners
        .iter()
        .any(|l| l.protocol == crate::config::Protocol::Http);
    let api_tz = crate::http::api_timezone(&config);
    let (api_stop_tx, api_stop_rx) = watch::channel(false);
    let mut api_sync_task = None;
    let caller_state = if has_http {
        let st = crate::http::state::CallerState::start(
            crate::http::state_store(&config.api),
            config.api.sync_interval,
        )
        .await
        .map_err(|e| anyhow::anyhow!("[api]: {e}"))?;
        api_sync_task = Some(tokio::spawn(st.clone().run_sync(api_stop_rx)));
        Some(st)
    } else {
        None
    };
    // One scanner for every session: its birth-year limit is read once.
    let scanner = Arc::new(danxia_detectors::pii::Scanner::all());
    for l in &config.listeners {
        let sock = listener::bind(l.listen)
            .await
            .with_context(|| format!("binding listener \"{}\" on {}", l.name, l.listen))?;
        let (tls, backend_tls) = crate::tls::for_listener(l)
            .map_err(|e| anyhow::anyhow!("listener \"{}\": {e}", l.name))?;
        if let Some(t) = &tls {
            t.spawn_watcher(shutdown_rx.clone());
        }
        let ctx = Arc::new(ListenerCtx {
            config: l.clone(),
            name: Arc::from(l.name.as_str()),
            limits: config.limits.clone(),
            metrics: ListenerMetrics::new(&l.name),
            auditor: auditor.clone(),
            analyzer: analyzer.clone(),
            cancels: cancels.clone(),
            shutdown: shutdown_rx.clone(),
            sessions: sessions.clone(),
            policy: policy.clone(),
            mode: config.listener_mode(l),
            learner: learner.clone(),
            decisions: DecisionMetrics::new(&l.name),
            data: config.data.clone(),
            scanner: scanner.clone(),
            behaviour: behaviour.clone(),
            alerts: alerts.clone(),
            tls,
            backend_tls,
        });
        if l.protocol == crate::config::Protocol::Http {
            let (Some(state), Some(api_dir)) = (caller_state.clone(), l.api_policy.clone()) else {
                anyhow::bail!(
                    "listener {}: http listener without [api] state or api_policy",
                    l.name
                );
            };
            let mut extra = Vec::new();
            if let Some(a) = &l.auth {
                extra.extend(a.keys_file.iter().cloned());
                extra.extend(a.jwks_file.iter().cloned());
            }
            let opts = danxia_policies::api::ApiLoadOptions {
                dir: api_dir,
                mask_key: config.policy.as_ref().and_then(|p| p.mask_key.clone()),
            };
            let rt = crate::http::runtime::ApiRuntime::start(&l.name, opts, extra)
                .map_err(|e| anyhow::anyhow!(e))?;
            let hx = Arc::new(
                crate::http::HttpCtx::new(ctx, rt.clone(), state, api_tz.clone())
                    .map_err(|e| anyhow::anyhow!(e))?,
            );
            let interval = config
                .policy
                .as_ref()
                .map_or(Duration::from_secs(2), |p| p.reload_interval);
            let hx2 = hx.clone();
            rt.spawn_watcher(
                interval,
                shutdown_rx.clone(),
                Arc::new(move || {
                    if let Err(e) = hx2.auth.reload() {
                        warn!(error = %e, "API keys / JWKS not reloaded; the previous ones stay in force");
                    }
                }),
            );
            admin_state
                .api
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(hx.clone());
            accept_tasks.push(tokio::spawn(crate::http::serve(sock, hx)));
            continue;
        }
        accept_tasks.push(tokio::spawn(listener::serve(sock, ctx)));
    }
    admin_state.listeners_bound.store(true, Ordering::Release);
    info!(version = env!("CARGO_PKG_VERSION"), "danxia ready");

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received: shutting down"),
        _ = int.recv() => info!("SIGINT received: shutting down"),
    }
    admin_state.accepting.store(false, Ordering::Release);
    let _ = shutdown_tx.send(true);
    for t in accept_tasks {
        let _ = t.await;
    }
    let grace = config.limits.shutdown_grace + SHUTDOWN_SLACK;
    let active = sessions.active();
    if active > 0 {
        info!(sessions = active, grace = ?config.limits.shutdown_grace, "waiting for running statements");
    }
    if tokio::time::timeout(grace, sessions.wait_idle())
        .await
        .is_err()
    {
        warn!(
            sessions = sessions.active(),
            "sessions still open after the grace period; closing them"
        );
    }
    let _ = admin_task.await;
    let _ = sync_stop_tx.send(true);
    if let Some(t) = sync_task {
        let _ = t.await;
    }
    let _ = api_stop_tx.send(true);
    if let Some(t) = api_sync_task {
        let _ = t.await;
    }
    if !alerts.flush(Duration::from_secs(5)).await {
        warn!("alerts still queued at shutdown were not delivered (see danxia_alert_deliveries_total)");
    }
    let stats = tokio::task::spawn_blocking(move || audit_task.shutdown())
        .await
        .context("joining the audit writer")?;
    match stats {
        Ok(s) => info!(?s, "audit log flushed"),
        Err(e) => {
            error!(error = %e, "audit log could not be flushed");
            return Err(e).context("flushing the audit log");
        }
    }
    info!("danxia stopped");
    Ok(())
}
