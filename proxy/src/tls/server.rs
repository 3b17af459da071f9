//! The listener side of TLS: a rustls `ServerConfig` built from the
//! `[listener.tls]` files, swapped whole when the files change (so that a
//! renewed certificate needs no restart), and the handshake with its
//! metrics. A certificate that fails to load never replaces a working one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use metrics::{counter, gauge};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::config::{read_certs, read_key, ClientAuth, ListenerTls, MinVersion};
use super::{provider, TlsError, RELOAD_POLL};

/// What the files of a `[listener.tls]` hold, checked.
pub(crate) struct LoadedServer {
    pub config: ServerConfig,
    /// `not_after` of the leaf certificate (Unix seconds).
    pub not_after: i64,
    /// Things worth a log line that do not stop danxia (expired cert).
    pub warnings: Vec<String>,
}

/// Reads and checks the files and builds the rustls configuration (ALPN
/// not set).
pub(crate) fn load_server_files(s: &ListenerTls) -> Result<LoadedServer, TlsError> {
    let certs = read_certs(&s.cert, "certificate")?;
    let key = read_key(&s.key)?;
    let mut warnings = Vec::new();
    let not_after = check_leaf(&s.cert, &certs[0], &mut warnings)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match s.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config {
            context: "TLS versions",
            reason: e.to_string(),
        })?;
    let builder = match (s.client_auth(), &s.client_ca) {
        (Some(auth), Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca, "client CA")? {
                roots.add(c).map_err(|e| TlsError::Certificate {
                    path: ca.clone(),
                    reason: format!("not usable as a CA certificate: {e}"),
                })?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let v = match auth {
                ClientAuth::Required => v,
                ClientAuth::Optional => v.allow_unauthenticated(),
            };
            let v = v.build().map_err(|e| TlsError::Config {
                context: "client certificate verifier",
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(v)
        }
        _ => builder.with_no_client_auth(),
    };
    let config = single_cert(builder, certs, key, &s.cert, &s.key)?;
    Ok(LoadedServer {
        config,
        not_after,
        warnings,
    })
}

fn single_cert(
    builder: rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<ServerConfig, TlsError> {
    builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        },
        other => TlsError::Pem {
            path: key_path.to_path_buf(),
            what: "private key",
            reason: format!("not usable with the certificate: {other}"),
        },
    })
}

/// Parses the leaf: its expiry, and warnings for an expired or not yet
/// valid certificate (clients will refuse it, but danxia can still start,
/// which lets an operator replace the file and see it reloaded).
pub(crate) fn check_leaf(
    path: &Path,
    der: &CertificateDer<'_>,
    warnings: &mut Vec<String>,
) -> Result<i64, TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::Certificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let v = cert.validity();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let not_after = v.not_after.timestamp();
    if not_after < now {
        warnings.push(format!(
            "the certificate {} expired on {}: clients will refuse it; replace it (danxia reloads it without a restart)",
            path.display(),
            v.not_after
        ));
    } else if v.not_before.timestamp() > now {
        warnings.push(format!(
            "the certificate {} is not valid before {}",
            path.display(),
            v.not_before
        ));
    }
    Ok(not_after)
}

/// Size, modification time and inode of each file: any change means the
/// files were replaced.
type Stamp = Vec<(u64, u128, u64)>;

fn stamp(paths: &[PathBuf]) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|p| match std::fs::metadata(p) {
            Ok(m) => (
                m.len(),
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos()),
                m.ino(),
            ),
            Err(_) => (u64::MAX, 0, 0),
        })
        .collect()
}

/// One listener's TLS: the current configuration and how to renew it.
pub struct ServerTls {
    listener: Arc<str>,
    settings: ListenerTls,
    alpn: Vec<Vec<u8>>,
    current: ArcSwap<ServerConfig>,
    files: Vec<PathBuf>,
    seen: Mutex<Stamp>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("listener", &self.listener)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the files; `alpn` lists the protocols offered (empty: no ALPN).
    pub fn new(
        listener: &str,
        settings: &ListenerTls,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ServerTls>, TlsError> {
        let mut files = vec![settings.cert.clone(), settings.key.clone()];
        files.extend(settings.client_ca.iter().cloned());
        let seen = stamp(&files);
        let loaded = load_server_files(settings)?;
        let this = ServerTls {
            listener: Arc::from(listener),
            settings: settings.clone(),
            alpn,
            current: ArcSwap::from_pointee(ServerConfig::clone(&loaded.config)),
            files,
            seen: Mutex::new(seen),
        };
        this.install(loaded);
        Ok(Arc::new(this))
    }

    fn install(&self, loaded: LoadedServer) {
        for w in &loaded.warnings {
            warn!(listener = %self.listener, "{w}");
        }
        let mut config = loaded.config;
        config.alpn_protocols = self.alpn.clone();
        self.current.store(Arc::new(config));
        gauge!("danxia_tls_certificate_expiry_timestamp_seconds", "listener" => self.listener.to_string(), "cert" => "server")
            .set(loaded.not_after as f64);
    }

    /// The `[listener.tls]` this was built from (mode, client_auth, …).
    pub fn settings(&self) -> &ListenerTls {
        &self.settings
    }

    /// An acceptor on the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Runs the server handshake on `tcp` within `timeout`, counting the
    /// result. The caller has already sent whatever the protocol requires
    /// first (PostgreSQL's `S`).
    pub async fn accept(
        &self,
        tcp: TcpStream,
        timeout: Duration,
    ) -> Result<tokio_rustls::server::TlsStream<TcpStream>, TlsError> {
        let r = tokio::time::timeout(timeout, self.acceptor().accept(tcp)).await;
        let (result, out) = match r {
            Ok(Ok(s)) => ("ok", Ok(s)),
            Ok(Err(e)) => ("failed", Err(TlsError::Handshake(e))),
            Err(_) => ("timeout", Err(TlsError::HandshakeTimeout(timeout))),
        };
        self.count_handshake(result);
        out
    }

    /// Counts one handshake outcome (for callers that drive the handshake
    /// themselves, e.g. through hyper): `ok`, `failed` or `timeout`.
    pub fn count_handshake(&self, result: &'static str) {
        counter!("danxia_tls_handshakes_total", "listener" => self.listener.to_string(), "result" => result)
            .increment(1);
    }

    /// Counts a plaintext client refused by `mode = "required"`.
    pub fn count_plaintext_refused(&self) {
        counter!("danxia_tls_plaintext_refused_total", "listener" => self.listener.to_string())
            .increment(1);
    }

    /// Reloads when a file's size, mtime or inode changed. `Ok(true)`: the
    /// new certificate is in force; `Err`: it is not (the old one stays).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamp(&self.files);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return Ok(false);
            }
            // Remember the stamp even if loading fails: a broken file is
            // reported once, and retried when it changes again.
            *seen = now;
        }
        self.reload().map(|()| true)
    }

    /// Reloads the files now, keeping the old configuration if they do not
    /// load.
    pub fn reload(&self) -> Result<(), TlsError> {
        match load_server_files(&self.settings) {
            Ok(loaded) => {
                self.install(loaded);
                counter!("danxia_tls_reloads_total", "listener" => self.listener.to_string(), "result" => "ok")
                    .increment(1);
                info!(listener = %self.listener, cert = %self.settings.cert.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                counter!("danxia_tls_reloads_total", "listener" => self.listener.to_string(), "result" => "failed")
                    .increment(1);
                warn!(listener = %self.listener, error = %e, "TLS certificate not reloaded; the previous one stays in force");
                Err(e)
            }
        }
    }

    /// Polls the files every [`RELOAD_POLL`] and reloads on SIGHUP, until
    /// `shutdown` turns true.
    pub fn spawn_watcher(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let this = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hup = signal(SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(RELOAD_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let forced = tokio::select! {
                    _ = tick.tick() => false,
                    Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                let t = this.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if forced {
                        *t.seen.lock().unwrap_or_else(|p| p.into_inner()) = stamp(&t.files);
                        t.reload().map(|()| true)
                    } else {
                        t.reload_if_changed()
                    }
                })
                .await;
            }
        });
    }
}
