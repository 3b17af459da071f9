//! One PostgreSQL client session: startup (SSL/GSS refusal, cancel routing,
//! authentication relay, key substitution), then the steady-state relay in
//! both directions, then a clean end (audit, cancel of an orphaned query,
//! FATAL to the client where the protocol allows one).
//!
//! The relay forwards the client's and the backend's original bytes in the
//! batches they were read in; it decodes only the messages it must see
//! (statements, completions, errors, ReadyForQuery) and streams the rest,
//! so that no result is ever buffered whole. Statement tracking lives in
//! `tracker.rs`; this file owns sockets, buffers and the session lifecycle.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use danxia_detectors::{Dialect, LexOptions, Operation};
use danxia_protocols::pg::backend::{self as be, sqlstate, Authentication, BackendKeyData};
use danxia_protocols::pg::frame::{check_startup, parse_header, HEADER_LEN, MAX_STARTUP_PACKET};
use danxia_protocols::pg::frontend::{self as fe};
use danxia_protocols::pg::startup::{decode_startup, encode_cancel, StartupPacket};
use danxia_protocols::ProtocolError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::cancel::{CancelTarget, Registration};
use super::encoding::{decode, LexState};
use super::enforce::{self, AppName, Enforcer};
use super::results::{ExecuteShape, Results, RowAction};
use super::tracker::{Handled, Identity, Pending, Tracker};
use crate::analysis::Statement;
use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::error::SessionError;
use crate::listener::ListenerCtx;
use crate::tls::{
    BackendReadHalf, BackendStream, BackendWriteHalf, ClientReadHalf, ClientStream,
    ClientWriteHalf, MaybeTls, ServerTls, TlsInfo, TlsMode,
};

/// Read buffer growth step. 16 KiB matches typical socket reads on loopback
/// and keeps an idle session's footprint small.
const READ_CHUNK: usize = 16 * 1024;
/// Backend messages the proxy decodes (never DataRow/CopyData, which are
/// streamed) are small; anything bigger than this is a broken backend.
const MAX_INSPECTED_BACKEND_MESSAGE: usize = 16 * 1024 * 1024;
/// Statements in flight (sent to the backend, not yet answered) before the
/// client side waits: bounds the tracker's memory under deep pipelining.
const MAX_IN_FLIGHT: usize = 8192;
/// How long the proxy tries to deliver its own last words (a FATAL error,
/// a Terminate) to a peer that may be gone.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest buffer kept across an idle period; larger ones are released.
const MAX_RETAINED_BUFFER: usize = 256 * 1024;
/// First byte of a TLS record carrying a handshake: a client starting TLS
/// at once (PostgreSQL 17 `sslnegotiation=direct`) instead of SSLRequest.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The ALPN protocol PostgreSQL 17 requires for direct TLS.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Runs one client connection to completion. Never panics on peer input;
/// every way out is audited and counted.
pub async fn run(ctx: &Arc<ListenerCtx>, client: TcpStream, peer: SocketAddr, id: Arc<str>) {
    let live = ctx.sessions.live.get(&id);
    let started = Instant::now();
    let mut s = Session {
        ctx: ctx.clone(),
        ident: Identity {
            session: id,
            listener: ctx.name.clone(),
            protocol: "postgres",
            client: Arc::from(peer.to_string()),
            user: None,
            database: None,
            application: None,
            tls_subject: None,
            tls: None,
        },
        started,
        deadline: tokio::time::Instant::from_std(started) + ctx.limits.startup_timeout,
        peer,
        live,
    };
    // `None` only while (or after) a TLS handshake has the socket.
    let mut client = Some(MaybeTls::Plain(client));
    let startup = tokio::time::timeout(ctx.limits.startup_timeout, s.startup(&mut client)).await;
    let started = match startup {
        Ok(Ok(Some(x))) => x,
        Ok(Ok(None)) => return, // SSL probe, cancel request, or client gone: nothing to audit
        Ok(Err(e)) => {
            s.fail_startup(client.as_mut(), e).await;
            return;
        }
        Err(_) => {
            s.fail_startup(
                client.as_mut(),
                SessionError::StartupTimeout(ctx.limits.startup_timeout),
            )
            .await;
            return;
        }
    };
    let Some(client) = client else { return };
    s.relay(client, started).await;
}

/// Sends the FATAL "too many connections" answer PostgreSQL itself gives.
pub async fn refuse_too_many(mut stream: TcpStream) {
    let mut out = BytesMut::new();
    be::encode_error_response(
        &mut out,
        "FATAL",
        sqlstate::TOO_MANY_CONNECTIONS,
        "danxia: too many client connections (limits.max_connections reached)",
        None,
    );
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, stream.write_all(&out)).await;
}

struct Session {
    ctx: Arc<ListenerCtx>,
    ident: Identity,
    started: Instant,
    /// End of `limits.startup_timeout`: bounds the TLS handshake too.
    deadline: tokio::time::Instant,
    peer: SocketAddr,
    /// This session in the admin API's registry (its kill switch).
    live: Option<Arc<crate::sessions::LiveSession>>,
}

/// What startup hands to the relay.
struct Started {
    backend: BackendStream,
    /// Bytes read from the client beyond the startup messages (pipelined
    /// queries sent before ReadyForQuery).
    client_buf: BytesMut,
    backend_buf: BytesMut,
    registration: Option<Registration>,
    lex: Arc<LexState>,
    app: Arc<AppName>,
}

impl Session {
    /// Startup phase. `Ok(None)` when the connection legitimately ends here.
    async fn startup(
        &mut self,
        slot: &mut Option<ClientStream>,
    ) -> Result<Option<Started>, SessionError> {
        let ctx = self.ctx.clone();
        let mut cbuf = BytesMut::with_capacity(1024);
        // 0. A client that starts TLS at once (PostgreSQL 17
        //    sslnegotiation=direct). Only listeners with TLS look: the
        //    plaintext-only path stays one read per packet.
        if let (Some(tls), Some(MaybeTls::Plain(tcp))) = (&ctx.tls, slot.as_ref()) {
            let mut first = [0u8; 1];
            match tcp.peek(&mut first).await {
                Ok(0) => return Ok(None),
                Ok(_) if first[0] == TLS_HANDSHAKE_RECORD => {
                    self.start_tls(slot, tls).await?;
                    let direct_ok = matches!(slot, Some(MaybeTls::Tls(s)) if s.get_ref().1.alpn_protocol() == Some(ALPN_POSTGRESQL));
                    if !direct_ok {
                        return Err(SessionError::Refused(
                            "direct TLS (sslnegotiation=direct) requires the ALPN protocol \"postgresql\"".into(),
                        ));
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(SessionError::ClientIo(e)),
            }
        }
        // 1. SSLRequest / GSSENCRequest / CancelRequest / StartupMessage.
        let packet = loop {
            let total = loop {
                if let Some(n) = check_startup(&cbuf, MAX_STARTUP_PACKET)? {
                    break n;
                }
                let client = slot.as_mut().ok_or(SessionError::ClientGone)?;
                if read_some(client, &mut cbuf)
                    .await
                    .map_err(SessionError::ClientIo)?
                    == 0
                {
                    return if cbuf.is_empty() {
                        Ok(None)
                    } else {
                        Err(SessionError::ClientGone)
                    };
                }
            };
            let packet = cbuf.split_to(total);
            match decode_startup(&packet)? {
                ref request @ (StartupPacket::SslRequest | StartupPacket::GssEncRequest) => {
                    // GSS encryption is not offered, nor TLS without
                    // [listener.tls]: 'N' makes clients continue in
                    // plaintext or give up, as they would with a server
                    // built without them.
                    if !cbuf.is_empty() {
                        // Bytes after an SSLRequest before our answer can only
                        // be an attempt to inject into the TLS handshake.
                        return Err(SessionError::ClientProtocol(ProtocolError::Malformed {
                            message: "SSLRequest",
                            reason: "unexpected data after the request",
                        }));
                    }
                    let client = slot.as_mut().ok_or(SessionError::ClientGone)?;
                    let tls = match (request, &ctx.tls) {
                        (StartupPacket::SslRequest, Some(tls)) => Some(tls),
                        _ => None,
                    };
                    match tls {
                        Some(_) if client.is_tls() => {
                            return Err(SessionError::ClientProtocol(ProtocolError::Malformed {
                                message: "SSLRequest",
                                reason: "the connection is already encrypted",
                            }));
                        }
                        Some(tls) => {
                            send(client, b"S").await.map_err(SessionError::ClientIo)?;
                            self.start_tls(slot, tls).await?;
                        }
                        None => send(client, &[be::NOT_SUPPORTED])
                            .await
                            .map_err(SessionError::ClientIo)?,
                    }
                }
                StartupPacket::Cancel {
                    process_id,
                    secret_key,
                } => {
                    self.forward_cancel(process_id, secret_key).await;
                    return Ok(None);
                }
                StartupPacket::Startup { .. } => break packet,
            }
        };
        let StartupPacket::Startup { params, .. } = decode_startup(&packet)? else {
            return Err(SessionError::Refused("unexpected startup packet".into()));
        };
        let mut user = None;
        let mut database = None;
        let mut application = None;
        let mut replication = false;
        for (k, v) in &params {
            match *k {
                "user" => user = Some(Arc::<str>::from(*v)),
                "database" => database = Some(Arc::<str>::from(*v)),
                "application_name" => application = Some(Arc::<str>::from(*v)),
                "replication" => replication = !matches!(*v, "false" | "off" | "0" | "no"),
                _ => {}
            }
        }
        let user = user.ok_or(SessionError::ClientProtocol(ProtocolError::Malformed {
            message: "StartupMessage",
            reason: "no user name specified",
        }))?;
        // Identity first, so that even a refused session is audited with it.
        self.ident.database = Some(database.unwrap_or_else(|| user.clone()));
        self.ident.user = Some(user);
        self.ident.application = application;
        let client = slot.as_mut().ok_or(SessionError::ClientGone)?;
        if let Some(tls) = &ctx.tls {
            if tls.settings().mode == TlsMode::Required && !client.is_tls() {
                tls.count_plaintext_refused();
                return Err(SessionError::TlsRequired);
            }
        }
        if replication {
            return Err(SessionError::Refused(
                "replication connections are not supported through danxia; connect replication clients to the server directly".into(),
            ));
        }
        drop(params);

        // 2. Backend connection; the client's startup packet goes through as sent.
        let mut backend = self.connect_backend().await?;
        send(&mut backend, &packet)
            .await
            .map_err(SessionError::BackendIo)?;
        ctx.metrics.backend_out.increment(packet.len() as u64);

        // 3. Authentication relay until ReadyForQuery.
        let mut bbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut out = BytesMut::with_capacity(1024);
        let mut registration = None;
        let lex = Arc::new(LexState::new(true, Some("UTF8")));
        let app = Arc::new(AppName::new(self.ident.application.clone()));
        let mut authenticated = false;
        // The server offered SCRAM: the client's next answer is a
        // SASLInitialResponse (see `scram.rs`).
        let mut sasl_initial = false;
        // A server that accepts the connection but never answers (hung,
        // overloaded, a half-dead host behind a load balancer) fails within
        // backend_connect_timeout as a connect failure, not as the client's
        // startup timeout.
        let first_wait = ctx.limits.backend_connect_timeout;
        let mut first = true;
        loop {
            let (tag, total) = if std::mem::take(&mut first) {
                match tokio::time::timeout(
                    first_wait,
                    read_backend_message(&mut backend, &mut bbuf),
                )
                .await
                {
                    Ok(r) => r?,
                    Err(_) => {
                        ctx.metrics.backend_silent.increment(1);
                        return Err(SessionError::BackendConnect {
                            addr: ctx.config.backend.clone(),
                            reason: format!(
                                "connected, but the server sent nothing within {first_wait:?}"
                            ),
                        });
                    }
                }
            } else {
                read_backend_message(&mut backend, &mut bbuf).await?
            };
            let body = &bbuf[HEADER_LEN..total];
            match tag {
                be::tag::AUTHENTICATION => {
                    let auth =
                        be::decode_authentication(body).map_err(SessionError::BackendProtocol)?;
                    let needs_answer = match auth {
                        Authentication::Ok => {
                            authenticated = true;
                            false
                        }
                        Authentication::CleartextPassword
                        | Authentication::Md5Password { .. }
                        | Authentication::Sasl { .. }
                        | Authentication::SaslContinue => true,
                        Authentication::SaslFinal => false,
                        // GSS (7), GSS continue (8), SSPI (9) also expect answers.
                        Authentication::Other(7..=9) => true,
                        Authentication::Other(_) => false,
                    };
                    match auth {
                        Authentication::Sasl { .. } => {
                            sasl_initial = true;
                            match super::scram::strip_channel_binding(body) {
                                Some(stripped) => out.extend_from_slice(&stripped),
                                None => out.extend_from_slice(&bbuf[..total]),
                            }
                        }
                        _ => out.extend_from_slice(&bbuf[..total]),
                    }
                    bbuf.advance(total);
                    flush_to(client, &mut out)
                        .await
                        .map_err(SessionError::ClientIo)?;
                    if needs_answer {
                        let answer = read_client_message(
                            client,
                            &mut cbuf,
                            ctx.limits.max_message_bytes as usize,
                        )
                        .await?;
                        if cbuf[0] != fe::tag::PASSWORD {
                            return Err(SessionError::ClientProtocol(ProtocolError::Malformed {
                                message: "authentication",
                                reason: "expected a password message",
                            }));
                        }
                        // A client on TLS that could bind but was not
                        // offered binding (flag 'y'): a TLS server rejects
                        // that as a downgrade, with a message that does not
                        // say what to do. Say it here.
                        if std::mem::take(&mut sasl_initial)
                            && backend.is_tls()
                            && super::scram::gs2_flag(&cbuf[HEADER_LEN..answer]) == Some(b'y')
                        {
                            ctx.metrics.auth_failures.increment(1);
                            return Err(SessionError::Refused(
                                super::scram::CHANNEL_BINDING_REFUSED.into(),
                            ));
                        }
                        send(&mut backend, &cbuf[..answer])
                            .await
                            .map_err(SessionError::BackendIo)?;
                        cbuf.advance(answer);
                    }
                    continue;
                }
                be::tag::ERROR_RESPONSE => {
                    let fields =
                        be::decode_error_fields(body).map_err(SessionError::BackendProtocol)?;
                    let code = fields.code.unwrap_or("").to_string();
                    let message = fields.message.unwrap_or("").to_string();
                    out.extend_from_slice(&bbuf[..total]);
                    let _ = flush_to(client, &mut out).await;
                    let kind = if !authenticated || code.starts_with("28") {
                        ctx.metrics.auth_failures.increment(1);
                        EventKind::AuthFailure
                    } else {
                        EventKind::SessionEnd
                    };
                    let mut ev = self.session_event(kind);
                    ev.outcome = Some(Outcome::Error);
                    ev.sqlstate = Some(code);
                    ev.error = Some(message);
                    ev.detail = Some("backend refused the session during startup".into());
                    self.audit(ev).await;
                    return Ok(None);
                }
                be::tag::BACKEND_KEY_DATA => {
                    let key =
                        be::decode_backend_key_data(body).map_err(SessionError::BackendProtocol)?;
                    let reg = ctx.cancels.register(CancelTarget {
                        backend_addr: ctx.config.backend.clone(),
                        backend_key: key,
                    });
                    be::encode_backend_key_data(&mut out, reg.key);
                    registration = Some(reg);
                    bbuf.advance(total);
                    continue;
                }
                be::tag::PARAMETER_STATUS => {
                    if let Ok((name, value)) = be::decode_parameter_status(body) {
                        lex.on_parameter(name, value);
                        if name == "application_name" {
                            app.set(value);
                            self.ident.application = Some(Arc::from(value));
                        }
                    }
                }
                be::tag::READY_FOR_QUERY => {
                    out.extend_from_slice(&bbuf[..total]);
                    bbuf.advance(total);
                    flush_to(client, &mut out)
                        .await
                        .map_err(SessionError::ClientIo)?;
                    break;
                }
                _ => {}
            }
            out.extend_from_slice(&bbuf[..total]);
            bbuf.advance(total);
        }
        let ev = self.session_event(EventKind::SessionStart);
        self.audit(ev).await;
        debug!(session = %self.ident.session, user = ?self.ident.user, "session started");
        Ok(Some(Started {
            backend,
            client_buf: cbuf,
            backend_buf: bbuf,
            registration,
            lex,
            app,
        }))
    }

    /// Runs the TLS handshake on the plaintext socket in `slot` (the
    /// caller has answered `S`, or the client started TLS directly), and
    /// records the version and client certificate in the identity.
    async fn start_tls(
        &mut self,
        slot: &mut Option<ClientStream>,
        tls: &ServerTls,
    ) -> Result<(), SessionError> {
        let Some(MaybeTls::Plain(tcp)) = slot.take() else {
            return Err(SessionError::ClientGone);
        };
        let left = self
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        let stream = tls
            .accept(tcp, left)
            .await
            .map_err(SessionError::ClientTls)?;
        let info = TlsInfo::of(stream.get_ref().1);
        self.ident.tls = Some(info.version);
        self.ident.tls_subject = info.subject();
        *slot = Some(MaybeTls::Tls(Box::new(stream)));
        Ok(())
    }

    async fn connect_backend(&self) -> Result<BackendStream, SessionError> {
        let ctx = &self.ctx;
        let addr = &ctx.config.backend;
        let r = tokio::time::timeout(
            ctx.limits.backend_connect_timeout,
            TcpStream::connect(addr.as_str()),
        )
        .await;
        let stream = match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                ctx.metrics.backend_connect_failures.increment(1);
                return Err(SessionError::BackendConnect {
                    addr: addr.clone(),
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                ctx.metrics.backend_connect_timeouts.increment(1);
                return Err(SessionError::BackendConnect {
                    addr: addr.clone(),
                    reason: format!("no answer within {:?}", ctx.limits.backend_connect_timeout),
                });
            }
        };
        let _ = stream.set_nodelay(true);
        match &ctx.backend_tls {
            None => Ok(MaybeTls::Plain(stream)),
            Some(c) => self
                .backend_tls(stream, c)
                .await
                .map(|s| MaybeTls::Tls(Box::new(s))),
        }
    }

    /// SSLRequest to the server, `S` expected, then the handshake with the
    /// configured verification. Never falls back to plaintext.
    async fn backend_tls(
        &self,
        mut stream: TcpStream,
        connector: &crate::tls::BackendConnector,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, SessionError> {
        let ctx = &self.ctx;
        let timeout = ctx.limits.backend_connect_timeout;
        let mut request = [0u8; 8];
        request[..4].copy_from_slice(&8u32.to_be_bytes());
        request[4..]
            .copy_from_slice(&danxia_protocols::pg::startup::SSL_REQUEST_CODE.to_be_bytes());
        let answer = tokio::time::timeout(timeout, async {
            stream.write_all(&request).await?;
            let mut b = [0u8; 1];
            // Exactly one byte: anything after it belongs to TLS.
            stream.read_exact(&mut b).await?;
            Ok::<u8, std::io::Error>(b[0])
        })
        .await;
        let fail = |result: &'static str, why: String| {
            crate::tls::client::count_backend_handshake(&ctx.name, result);
            warn!(listener = %ctx.name, backend = %ctx.config.backend, mode = connector.mode().as_str(), "backend TLS failed: {why}");
            SessionError::BackendTls(why)
        };
        match answer {
            Ok(Ok(b'S')) => {}
            Ok(Ok(b'N')) => {
                return Err(fail(
                    "refused",
                    "the server does not accept TLS (it answered N to SSLRequest; is ssl = off?); set backend_tls.mode = \"disable\" or enable TLS on the server".into(),
                ))
            }
            Ok(Ok(b)) => {
                return Err(fail(
                    "failed",
                    format!("unexpected answer {:?} to SSLRequest", b as char),
                ))
            }
            Ok(Err(e)) => return Err(SessionError::BackendIo(e)),
            Err(_) => {
                return Err(fail(
                    "timeout",
                    format!("no answer to SSLRequest within {timeout:?}"),
                ))
            }
        }
        connector
            .connect(stream, &ctx.name, timeout)
            .await
            .map_err(|e| {
                warn!(listener = %ctx.name, backend = %ctx.config.backend, mode = connector.mode().as_str(), error = %e, "backend TLS handshake failed");
                SessionError::BackendTls(e.to_string())
            })
    }

    /// A CancelRequest: map the proxy-issued key to the backend's and
    /// forward it on a fresh backend connection, as PostgreSQL expects.
    async fn forward_cancel(&self, pid: u32, secret: u32) {
        let ctx = &self.ctx;
        let Some(target) = ctx.cancels.lookup(pid, secret) else {
            ctx.metrics.cancel_unknown.increment(1);
            debug!(listener = %ctx.name, "cancel request with unknown key ignored");
            return;
        };
        ctx.metrics.cancel_forwarded.increment(1);
        send_cancel(&target, ctx.limits.backend_connect_timeout).await;
    }

    /// Ends a session that failed before the relay started: tell the client
    /// why (FATAL, the SQLSTATE PostgreSQL would use), audit, count.
    async fn fail_startup(&self, client: Option<&mut ClientStream>, e: SessionError) {
        let ctx = &self.ctx;
        let (code, message) = match &e {
            SessionError::ClientProtocol(ProtocolError::UnsupportedProtocol { major, minor }) => (
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "unsupported frontend protocol {major}.{minor}: danxia supports protocol 3.x"
                ),
            ),
            SessionError::ClientProtocol(p) => (
                sqlstate::PROTOCOL_VIOLATION,
                format!("danxia: invalid startup packet: {p}"),
            ),
            SessionError::BackendConnect { .. } => (
                sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                format!(
                    "danxia: cannot connect to the database server of listener \"{}\"",
                    ctx.name
                ),
            ),
            SessionError::StartupTimeout(d) => (
                sqlstate::PROTOCOL_VIOLATION,
                format!("danxia: startup not completed within {d:?}"),
            ),
            SessionError::Refused(why) => {
                (sqlstate::FEATURE_NOT_SUPPORTED, format!("danxia: {why}"))
            }
            SessionError::BackendProtocol(_) | SessionError::BackendIo(_) => (
                sqlstate::CONNECTION_FAILURE,
                "danxia: the database server closed the connection during startup".to_string(),
            ),
            SessionError::TlsRequired => (
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                "this listener requires TLS: connect with sslmode=require".to_string(),
            ),
            SessionError::BackendTls(why) => (
                sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                format!(
                    "danxia: cannot establish TLS to the database server of listener \"{}\": {why}",
                    ctx.name
                ),
            ),
            SessionError::ClientIo(_)
            | SessionError::ClientGone
            | SessionError::Masking(_)
            | SessionError::ClientTls(_) => ("", String::new()),
        };
        if let Some(kind) = e.protocol_kind() {
            ctx.metrics.protocol_error(kind);
        }
        match &e {
            SessionError::ClientIo(_) | SessionError::ClientGone => {
                debug!(session = %self.ident.session, error = %e, "client left during startup")
            }
            SessionError::BackendConnect { .. } => {
                warn!(listener = %ctx.name, error = %e, "backend unreachable")
            }
            _ => {
                info!(session = %self.ident.session, client = %self.ident.client, error = %e, "session refused during startup")
            }
        }
        if let (false, Some(client)) = (code.is_empty(), client) {
            let mut out = BytesMut::new();
            be::encode_error_response(&mut out, "FATAL", code, &message, None);
            let _ = tokio::time::timeout(FAREWELL_TIMEOUT, send(client, &out)).await;
        }
        let kind = if e.protocol_kind().is_some() {
            EventKind::ProtocolError
        } else {
            EventKind::SessionEnd
        };
        let mut ev = self.session_event(kind);
        ev.outcome = Some(Outcome::Refused);
        if !code.is_empty() {
            ev.sqlstate = Some(code.to_string());
        }
        ev.error = Some(e.to_string());
        ev.detail = Some("session ended during startup".into());
        self.audit(ev).await;
    }

    /// Steady state: both directions until one ends, then the clean end.
    async fn relay(&mut self, client: ClientStream, st: Started) {
        let ctx = self.ctx.clone();
        let (client_r, mut client_w) = client.into_split();
        let (backend_r, mut backend_w) = st.backend.into_split();
        let (tx, rx) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
        let enforcer = Enforcer::new(
            &ctx,
            self.ident.user.clone().unwrap_or_else(|| Arc::from("")),
            self.ident.database.clone().unwrap_or_else(|| Arc::from("")),
            Some(self.peer.ip()),
            st.app.clone(),
        );
        let mut enforcer = enforcer;
        if self.ident.tls_subject.is_some() {
            enforcer.set_tls_subject(self.ident.tls_subject.clone());
        }
        let mut up = Upstream {
            ctx: &ctx,
            reader: client_r,
            buf: st.client_buf,
            passthrough: 0,
            statements: Default::default(),
            portals: Default::default(),
            described: Default::default(),
            no_formats: Arc::from([]),
            tx,
            lex: &st.lex,
            lexing_touched: false,
            extended_bytes: 0,
            enforcer,
            out: BytesMut::new(),
        };
        let mut tracker = Tracker::new(self.ident.clone(), ctx.clone(), st.lex.clone());
        tracker.set_behaviour(up.enforcer.behaviour());
        if let Some(l) = &self.live {
            l.set_identity(
                self.ident.user.as_ref(),
                self.ident.database.as_ref(),
                self.ident.application.as_ref(),
                self.ident.tls_subject.as_ref(),
            );
        }
        tracker.set_live(self.live.clone());
        let live = self.live.clone();
        let killed = async move {
            match live {
                Some(l) => l.killed().await,
                None => std::future::pending().await,
            }
        };
        let mut down = Downstream {
            ctx: &ctx,
            reader: backend_r,
            buf: st.backend_buf,
            passthrough: 0,
            rx,
            lex: &st.lex,
            app: &st.app,
            shutting_down: false,
            out: BytesMut::new(),
            results: Results::new(&ctx.data, ctx.scanner.clone()),
            row_out: BytesMut::new(),
            cancel: st
                .registration
                .as_ref()
                .and_then(|r| ctx.cancels.lookup(r.key.process_id, r.key.secret_key)),
            dropped: 0,
            cancelled: false,
        };
        let end = tokio::select! {
            r = up.run(&mut backend_w) => End::Client(r),
            r = down.run(&mut client_w, &mut tracker) => End::Backend(r),
            _ = killed => End::Killed,
        };
        // Statements queued but not yet seen by the tracker.
        while let Ok(p) = down.rx.try_recv() {
            tracker.push(p);
        }
        let mid_message = down.passthrough > 0;
        let in_flight = tracker.in_flight();
        let mut farewell = BytesMut::new();
        let (reason, aborted_detail): (String, &str) = match &end {
            End::Client(Ok(ClientEnd::Terminated)) => (
                "client terminated the session".into(),
                "client terminated the session",
            ),
            End::Client(Ok(ClientEnd::Eof)) => (
                "client closed the connection".into(),
                "client closed the connection before the result",
            ),
            End::Client(Err(e)) => {
                if let Some(kind) = e.protocol_kind() {
                    ctx.metrics.protocol_error(kind);
                    let mut ev = self.session_event(EventKind::ProtocolError);
                    ev.outcome = Some(Outcome::Refused);
                    ev.sqlstate = Some(sqlstate::PROTOCOL_VIOLATION.into());
                    ev.error = Some(e.to_string());
                    tracker.record(ev);
                    if !mid_message {
                        be::encode_error_response(
                            &mut farewell,
                            "FATAL",
                            sqlstate::PROTOCOL_VIOLATION,
                            &format!("danxia: {e}"),
                            None,
                        );
                    }
                    info!(session = %self.ident.session, client = %self.ident.client, error = %e, "session ended: client protocol error");
                }
                (e.to_string(), "session ended by a client error")
            }
            End::Backend(Ok(BackendEnd::Closed { fatal_seen })) => {
                if !fatal_seen && !mid_message {
                    be::encode_error_response(
                        &mut farewell,
                        "FATAL",
                        sqlstate::CONNECTION_FAILURE,
                        "danxia: the database server closed the connection unexpectedly",
                        None,
                    );
                }
                (
                    "backend closed the connection".into(),
                    "backend closed the connection",
                )
            }
            End::Backend(Ok(BackendEnd::Shutdown { forced })) => {
                if !mid_message {
                    be::encode_error_response(
                        &mut farewell,
                        "FATAL",
                        sqlstate::ADMIN_SHUTDOWN,
                        "terminating connection because danxia is shutting down",
                        None,
                    );
                }
                if *forced {
                    (
                        "shutdown grace period expired".into(),
                        "shutdown grace period expired",
                    )
                } else {
                    ("danxia shutdown".into(), "danxia shutdown")
                }
            }
            End::Killed => {
                info!(session = %self.ident.session, client = %self.ident.client, "session killed through the admin API");
                if !mid_message {
                    be::encode_error_response(
                        &mut farewell,
                        "FATAL",
                        sqlstate::ADMIN_SHUTDOWN,
                        "terminating connection due to administrator command",
                        Some("the danxia administrator ended this session"),
                    );
                }
                (
                    "killed by the danxia administrator".into(),
                    "session killed by the danxia administrator",
                )
            }
            End::Backend(Err(SessionError::Masking(e))) => {
                ctx.metrics.protocol_error("masking");
                warn!(session = %self.ident.session, error = %e, "session ended: a result could not be masked");
                if !mid_message {
                    be::encode_error_response(
                        &mut farewell,
                        "FATAL",
                        sqlstate::PROGRAM_LIMIT_EXCEEDED,
                        &format!(
                            "danxia: {e}; the session is closed rather than return it unmasked"
                        ),
                        None,
                    );
                }
                (e.to_string(), "a result could not be masked")
            }
            End::Backend(Err(e)) => {
                if let Some(kind) = e.protocol_kind() {
                    ctx.metrics.protocol_error(kind);
                }
                warn!(session = %self.ident.session, error = %e, "session ended: backend error");
                if !mid_message {
                    be::encode_error_response(
                        &mut farewell,
                        "FATAL",
                        sqlstate::CONNECTION_FAILURE,
                        "danxia: lost the connection to the database server",
                        None,
                    );
                }
                (e.to_string(), "backend connection failed")
            }
        };
        // A query still running for a client that is gone (or that we are
        // ending) is cancelled, not left to run on.
        let client_gone = !matches!(end, End::Client(Ok(ClientEnd::Terminated)));
        let backend_lost = matches!(
            end,
            End::Backend(Ok(BackendEnd::Closed { .. }))
                | End::Backend(Err(SessionError::BackendIo(_)))
        );
        if backend_lost {
            ctx.metrics.backend_lost.increment(1);
        }
        if in_flight > 0 && client_gone && !backend_lost {
            if let Some(reg) = &st.registration {
                if let Some(t) = ctx.cancels.lookup(reg.key.process_id, reg.key.secret_key) {
                    send_cancel(&t, ctx.limits.backend_connect_timeout).await;
                    ctx.metrics.orphaned_query(orphan_reason(&end));
                }
            }
        }
        tracker.abort_all(aborted_detail);
        if !farewell.is_empty() {
            let _ = tokio::time::timeout(FAREWELL_TIMEOUT, send(&mut client_w, &farewell)).await;
        }
        if !matches!(end, End::Client(Ok(ClientEnd::Terminated))) {
            let mut x = BytesMut::new();
            fe::encode_terminate(&mut x);
            let _ = tokio::time::timeout(FAREWELL_TIMEOUT, send(&mut backend_w, &x)).await;
        }
        let _ = client_w.shutdown().await;
        let _ = backend_w.shutdown().await;
        let mut ev = self.session_event(EventKind::SessionEnd);
        ev.outcome = Some(match &end {
            End::Client(Ok(_)) | End::Backend(Ok(BackendEnd::Shutdown { forced: false })) => {
                Outcome::Ok
            }
            _ => Outcome::Aborted,
        });
        ev.duration_us = Some(self.started.elapsed().as_micros() as u64);
        ev.detail = Some(reason);
        tracker.record(ev);
        tracker.flush().await;
        drop(st.registration);
    }

    fn session_event(&self, kind: EventKind) -> AuditEvent {
        self.ident.event(kind)
    }

    async fn audit(&self, ev: AuditEvent) {
        if let Err(e) = self.ctx.auditor.record(ev).await {
            debug!(error = %e, "audit record failed");
        }
    }
}

/// The `reason` label of `danxia_orphaned_queries_total` for a session
/// that ended with a statement still running.
fn orphan_reason(end: &End) -> &'static str {
    match end {
        End::Client(Ok(_)) | End::Client(Err(SessionError::ClientIo(_))) => "client_gone",
        End::Killed => "killed",
        _ => "error",
    }
}

enum End {
    Client(Result<ClientEnd, SessionError>),
    Backend(Result<BackendEnd, SessionError>),
    /// An administrator killed the session (`DELETE /sessions/{id}`).
    Killed,
}

enum ClientEnd {
    Terminated,
    Eof,
}

enum BackendEnd {
    Closed { fatal_seen: bool },
    Shutdown { forced: bool },
}

/// Client → backend.
struct Upstream<'a> {
    ctx: &'a ListenerCtx,
    reader: ClientReadHalf,
    buf: BytesMut,
    /// Body bytes of a streamed message (CopyData) still to forward.
    passthrough: usize,
    /// Prepared statements by name ("" = unnamed), for Bind → Execute.
    /// Names are raw bytes: they are in the client encoding.
    statements: std::collections::HashMap<Box<[u8]>, Arc<Statement>>,
    /// Portals by name → the statement they were bound from.
    portals: std::collections::HashMap<Box<[u8]>, Portal>,
    /// Prepared statements described since their Parse: the backend side
    /// holds their RowDescription.
    described: std::collections::HashSet<Box<[u8]>>,
    tx: mpsc::Sender<Pending>,
    lex: &'a LexState,
    /// Set once the session runs a statement that changes a lexing setting;
    /// from then on transaction ends (which may revert SET LOCAL) count as
    /// such changes too.
    lexing_touched: bool,
    /// Bytes of Parse/Bind/Describe/Close/Sync/Flush since the last
    /// Execute, credited to the next Execute's `bytes_in`.
    extended_bytes: u64,
    enforcer: Enforcer,
    /// Bytes for the backend when a refused message had to be replaced;
    /// empty (and unused) otherwise, so the common path forwards the
    /// client's bytes untouched.
    out: BytesMut,
    /// Shared empty format list (all text), so most Binds allocate none.
    no_formats: Arc<[i16]>,
}

/// A bound portal, as the client side knows it.
struct Portal {
    stmt: Option<Arc<Statement>>,
    /// Digest of the Bind's parameter values.
    values: Option<u64>,
    /// The prepared statement's name.
    statement: Box<[u8]>,
    /// The Bind's result formats (empty: all text).
    formats: Arc<[i16]>,
    /// Described since its Bind.
    described: bool,
}

/// Named prepared statements tracked per session before tracking stops
/// (the statements still run; their audit events then lack the text).
const MAX_TRACKED_STATEMENTS: usize = 10_000;

impl Upstream<'_> {
    async fn run(&mut self, backend: &mut BackendWriteHalf) -> Result<ClientEnd, SessionError> {
        let max = self.ctx.limits.max_message_bytes as usize;
        loop {
            // Process what is buffered (startup may have left some).
            let mut pos = 0;
            // Start of the bytes not yet copied into `self.out` (only used
            // once a refused message has been replaced).
            let mut copied = 0;
            let mut terminated = false;
            if self.passthrough > 0 {
                let n = self.passthrough.min(self.buf.len());
                self.passthrough -= n;
                self.lex
                    .copy_in_bytes
                    .fetch_add(n as u64, Ordering::Relaxed);
                pos = n;
            }
            if self.passthrough == 0 {
                while let Some(h) = parse_header(&self.buf[pos..], max)? {
                    let total = h.total_len();
                    let avail = self.buf.len() - pos;
                    if avail < total {
                        if h.tag == fe::tag::COPY_DATA {
                            // Stream COPY data: never hold a whole chunk.
                            self.lex
                                .copy_in_bytes
                                .fetch_add(avail as u64, Ordering::Relaxed);
                            self.passthrough = total - avail;
                            pos = self.buf.len();
                        } else {
                            self.buf.reserve(total - avail);
                        }
                        break;
                    }
                    let body_start = pos + HEADER_LEN;
                    let body_end = pos + total;
                    let received = Instant::now();
                    let body = &self.buf[body_start..body_end];
                    // The poison that replaces a refused message, if any.
                    let mut replacement: Option<BytesMut> = None;
                    match h.tag {
                        fe::tag::QUERY => {
                            let text = cstr(body, 0, "Query")?.0;
                            let mut stmts =
                                analyse(self.ctx, self.lex, &mut self.lexing_touched, text);
                            self.enforcer.batch_failed = false;
                            if let Some(i) = self.enforcer.judge(self.ctx, &mut stmts) {
                                let (poison, reply) =
                                    refusal(self.ctx, &stmts[i], None, Some((i, stmts.len())));
                                replacement = Some(poison);
                                self.send(Pending::denied(
                                    stmts,
                                    i,
                                    true,
                                    received,
                                    total as u64,
                                    reply,
                                    true,
                                ))
                                .await;
                            } else {
                                // A lexing change is counted when the
                                // statement is sent to run (here, or at
                                // Execute); a Parse alone changes nothing.
                                for _ in stmts.iter().filter(|s| s.changes_lexing) {
                                    self.lex.change_sent();
                                }
                                self.send(Pending::query(stmts, received, total as u64))
                                    .await;
                            }
                        }
                        fe::tag::PARSE => {
                            let (name, next) = cstr(body, 0, "Parse")?;
                            let (text, _) = cstr(body, next, "Parse")?;
                            let mut stmts =
                                analyse(self.ctx, self.lex, &mut self.lexing_touched, text);
                            // A Parse holds one statement; if the text held
                            // more, the server refuses it (42601), and the
                            // event keeps the whole text.
                            let mut stmt = if stmts.len() == 1 {
                                stmts.remove(0)
                            } else {
                                self.ctx.analyzer.unanalysable(
                                    &decode_lossy(text),
                                    "Parse text holds no single statement",
                                )
                            };
                            let blocked = self
                                .enforcer
                                .judge(self.ctx, std::slice::from_mut(&mut stmt))
                                .is_some();
                            let stmt = Arc::new(stmt);
                            if name.is_empty()
                                || self.statements.len() < MAX_TRACKED_STATEMENTS
                                || self.statements.contains_key(name)
                            {
                                self.statements.insert(name.into(), stmt.clone());
                            }
                            self.described.remove(name);
                            self.extended_bytes += total as u64;
                            if blocked {
                                // A refused Parse is recorded even when the
                                // server will skip it (an earlier refusal
                                // in this batch): the client asked for it.
                                let (poison, reply) = refusal(self.ctx, &stmt, Some(name), None);
                                if !self.enforcer.batch_failed {
                                    self.enforcer.batch_failed = true;
                                    replacement = Some(poison);
                                }
                                self.send(Pending::denied(
                                    vec![(*stmt).clone()],
                                    0,
                                    false,
                                    received,
                                    0,
                                    reply,
                                    true,
                                ))
                                .await;
                            } else {
                                self.send(Pending::Parse {
                                    stmt,
                                    started: received,
                                })
                                .await;
                            }
                        }
                        fe::tag::BIND => {
                            let fe::BindResults {
                                portal,
                                statement,
                                result_formats: formats,
                                params: raw_params,
                                param_count,
                            } = fe::decode_bind_results(body)?;
                            // Behaviour baselines count distinct bound
                            // values per statement shape (enumeration).
                            let values = (param_count > 0 && self.enforcer.has_behaviour())
                                .then(|| {
                                    let mut d = danxia_detectors::ValueDigest::default();
                                    d.push(raw_params);
                                    d.finish()
                                })
                                .flatten();
                            let mut stmt = self.statements.get(statement).cloned();
                            if let Some(s) = stmt.take() {
                                let judged = self.enforcer.rejudge(self.ctx, s.clone());
                                if !Arc::ptr_eq(&judged, &s) {
                                    self.statements.insert(statement.into(), judged.clone());
                                }
                                // This execution's own view (quarantine,
                                // window budgets): not stored.
                                let judged = self.enforcer.amend(judged);
                                if judged.blocked() {
                                    // Refused at Parse in an earlier batch,
                                    // or by a policy loaded since.
                                    replacement = refuse_reference(
                                        self.ctx,
                                        &mut self.enforcer,
                                        &self.tx,
                                        &judged,
                                        received,
                                        0,
                                        true,
                                    )
                                    .await;
                                }
                                stmt = Some(judged);
                            }
                            if portal.is_empty()
                                || self.portals.len() < MAX_TRACKED_STATEMENTS
                                || self.portals.contains_key(portal)
                            {
                                let formats: Arc<[i16]> = if formats.is_empty() {
                                    self.no_formats.clone()
                                } else {
                                    Arc::from(formats)
                                };
                                self.portals.insert(
                                    portal.into(),
                                    Portal {
                                        stmt,
                                        values,
                                        statement: statement.into(),
                                        formats,
                                        described: false,
                                    },
                                );
                            }
                            self.extended_bytes += total as u64;
                        }
                        fe::tag::EXECUTE => {
                            let (portal, _) = cstr(body, 0, "Execute")?;
                            let stmt = self.portals.get(portal).and_then(|p| p.stmt.clone());
                            let values = self.portals.get(portal).and_then(|p| p.values);
                            let bytes_in = std::mem::take(&mut self.extended_bytes) + total as u64;
                            match stmt {
                                Some(s) if s.blocked() => {
                                    // Its Parse or Bind was refused: within
                                    // that batch the server skips this
                                    // Execute (already recorded); in a later
                                    // one the portal cannot exist, so refuse
                                    // it here with the policy's words.
                                    replacement = refuse_reference(
                                        self.ctx,
                                        &mut self.enforcer,
                                        &self.tx,
                                        &s,
                                        received,
                                        bytes_in,
                                        true,
                                    )
                                    .await;
                                }
                                stmt => {
                                    let stmt = stmt.map(|s| self.mark_lexing_change(s));
                                    if let Some(s) = &stmt {
                                        if s.changes_lexing {
                                            self.lex.change_sent();
                                        }
                                    }
                                    let portal: Box<[u8]> = portal.into();
                                    let (shape, inject) =
                                        self.execute_shape(&portal, stmt.as_deref());
                                    if inject {
                                        // Masking needs the column names and
                                        // the client described neither the
                                        // portal nor its statement: ask, and
                                        // swallow the answer.
                                        let mut r = BytesMut::new();
                                        describe_portal(&mut r, &portal);
                                        r.extend_from_slice(&self.buf[pos..pos + total]);
                                        replacement = Some(r);
                                        self.send(Pending::Describe {
                                            portal: true,
                                            name: portal,
                                            injected: true,
                                            keep: true,
                                        })
                                        .await;
                                    }
                                    self.send(Pending::Execute {
                                        stmt,
                                        started: received,
                                        bytes_in,
                                        shape,
                                        values,
                                    })
                                    .await;
                                }
                            }
                        }
                        fe::tag::CLOSE => {
                            let target = body.first().copied();
                            let (name, _) = cstr(body, 1, "Close")?;
                            match target {
                                Some(b'S') => {
                                    self.statements.remove(name);
                                    self.described.remove(name);
                                }
                                Some(b'P') => {
                                    self.portals.remove(name);
                                }
                                _ => {}
                            }
                            self.extended_bytes += total as u64;
                        }
                        fe::tag::SYNC => {
                            self.extended_bytes += total as u64;
                            self.enforcer.batch_failed = false;
                            self.send(Pending::Sync).await
                        }
                        fe::tag::FUNCTION_CALL => {
                            let oid = fe::decode_function_call(body)?;
                            self.send(Pending::FunctionCall {
                                oid,
                                started: received,
                                done: false,
                            })
                            .await;
                        }
                        fe::tag::COPY_DATA => {
                            self.lex
                                .copy_in_bytes
                                .fetch_add(total as u64, Ordering::Relaxed);
                        }
                        fe::tag::TERMINATE => {
                            terminated = true;
                        }
                        fe::tag::DESCRIBE => {
                            self.extended_bytes += total as u64;
                            let target = body.first().copied();
                            let (name, _) = cstr(body, 1, "Describe")?;
                            let stmt = match target {
                                Some(b'S') => self.statements.get(name).cloned(),
                                Some(b'P') => self.portals.get(name).and_then(|p| p.stmt.clone()),
                                _ => None,
                            };
                            if !stmt.as_ref().is_some_and(|s| s.blocked()) {
                                let portal = target == Some(b'P');
                                // Only a masked statement's column names are
                                // worth keeping (the rest is read from the
                                // Bind's formats): remember which.
                                let keep = stmt.as_deref().is_some_and(Statement::masked);
                                if !keep {
                                    if portal {
                                        if let Some(p) = self.portals.get_mut(name) {
                                            p.described = false;
                                        }
                                    } else {
                                        self.described.remove(name);
                                    }
                                } else if portal {
                                    if let Some(p) = self.portals.get_mut(name) {
                                        p.described = true;
                                    }
                                } else if self.described.len() < MAX_TRACKED_STATEMENTS
                                    || self.described.contains(name)
                                {
                                    self.described.insert(name.into());
                                }
                                if keep {
                                    // Unmasked statements need no shape: no
                                    // channel message per Describe.
                                    self.send(Pending::Describe {
                                        portal,
                                        name: name.into(),
                                        injected: false,
                                        keep,
                                    })
                                    .await;
                                }
                            }
                            if let Some(s) = stmt.filter(|s| s.blocked()) {
                                // A Describe runs nothing: refused, not audited.
                                replacement = refuse_reference(
                                    self.ctx,
                                    &mut self.enforcer,
                                    &self.tx,
                                    &s,
                                    received,
                                    0,
                                    false,
                                )
                                .await;
                            }
                        }
                        fe::tag::FLUSH => {
                            self.extended_bytes += total as u64;
                        }
                        _ => {}
                    }
                    if let Some(poison) = replacement {
                        self.out.extend_from_slice(&self.buf[copied..pos]);
                        self.out.extend_from_slice(&poison);
                        copied = pos + total;
                    }
                    pos += total;
                    if terminated {
                        break;
                    }
                }
            }
            if let Some(d) = self.enforcer.throttle_delay() {
                // A throttled identity: hold what it sent.
                tokio::time::sleep(d).await;
            }
            if !self.out.is_empty() {
                // A refused message was replaced: send the rebuilt bytes.
                let t0 = Instant::now();
                self.out.extend_from_slice(&self.buf[copied..pos]);
                send(backend, &self.out)
                    .await
                    .map_err(SessionError::BackendIo)?;
                self.ctx
                    .metrics
                    .backend_out
                    .increment(self.out.len() as u64);
                self.ctx
                    .metrics
                    .proxy_added
                    .record(t0.elapsed().as_secs_f64());
                self.out.clear();
                self.buf.advance(pos);
            } else if pos > 0 {
                let t0 = Instant::now();
                send(backend, &self.buf[..pos])
                    .await
                    .map_err(SessionError::BackendIo)?;
                self.ctx.metrics.backend_out.increment(pos as u64);
                self.ctx
                    .metrics
                    .proxy_added
                    .record(t0.elapsed().as_secs_f64());
                self.buf.advance(pos);
            }
            if terminated {
                return Ok(ClientEnd::Terminated);
            }
            if self.buf.is_empty() && self.buf.capacity() > MAX_RETAINED_BUFFER {
                self.buf = BytesMut::with_capacity(READ_CHUNK);
            }
            let n = read_some(&mut self.reader, &mut self.buf)
                .await
                .map_err(SessionError::ClientIo)?;
            if n == 0 {
                return Ok(ClientEnd::Eof);
            }
            self.ctx.metrics.client_in.increment(n as u64);
        }
    }

    /// What the backend side needs to read an Execute's rows, and whether a
    /// Describe must be injected first (masking needs names nobody asked
    /// for). `None` when the rows can be read without it: all-text results
    /// of a statement nobody masks.
    fn execute_shape(
        &mut self,
        portal: &[u8],
        stmt: Option<&Statement>,
    ) -> (Option<Box<ExecuteShape>>, bool) {
        let masked = stmt.is_some_and(Statement::masked);
        let Some(p) = self.portals.get_mut(portal) else {
            return (None, false);
        };
        let statement_described = self.described.contains(&p.statement);
        if !masked && p.formats.is_empty() && !p.described && !statement_described {
            return (None, false);
        }
        let inject = masked && !p.described && !statement_described;
        if inject {
            p.described = true;
        }
        let shape = ExecuteShape {
            portal: portal.into(),
            statement: p.statement.clone(),
            formats: p.formats.clone(),
            portal_described: p.described,
            statement_described,
        };
        (Some(Box::new(shape)), inject)
    }

    /// For an Execute: the statement, flagged as a lexing change when it is
    /// a transaction end in a session that has touched lexing settings.
    fn mark_lexing_change(&self, s: Arc<Statement>) -> Arc<Statement> {
        if self.lexing_touched && !s.changes_lexing && s.facts.operation == Operation::Transaction {
            let mut c = (*s).clone();
            c.changes_lexing = true;
            Arc::new(c)
        } else {
            s
        }
    }

    async fn send(&self, p: Pending) {
        // The receiver only goes away when the session is ending.
        let _ = self.tx.send(p).await;
    }
}

/// A Bind, Execute or Describe naming a refused statement or portal. The
/// first refusal of a batch is replaced by a poison (returned) and queued
/// for the tracker; later ones need nothing: the server already skips the
/// rest of the batch, and the refusal that started it is recorded.
async fn refuse_reference(
    ctx: &ListenerCtx,
    enforcer: &mut Enforcer,
    tx: &mpsc::Sender<Pending>,
    stmt: &Statement,
    started: Instant,
    bytes_in: u64,
    emit: bool,
) -> Option<BytesMut> {
    if enforcer.batch_failed {
        return None;
    }
    enforcer.batch_failed = true;
    // The unnamed statement carries the poison: the refused name itself
    // must stay undefined on the server.
    let (poison, reply) = refusal(ctx, stmt, Some(b""), None);
    // The receiver only goes away when the session is ending.
    let _ = tx
        .send(Pending::denied(
            vec![stmt.clone()],
            0,
            false,
            started,
            bytes_in,
            reply,
            emit,
        ))
        .await;
    Some(poison)
}

/// The poison to forward in place of a refused message (a Query, or a
/// Parse named `parse_name`) and the ErrorResponse the client gets.
fn refusal(
    ctx: &ListenerCtx,
    stmt: &Statement,
    parse_name: Option<&[u8]>,
    position: Option<(usize, usize)>,
) -> (BytesMut, BytesMut) {
    let mut poison = BytesMut::new();
    let Some(j) = &stmt.judgement else {
        // Unreachable: only judged statements are refused. Refuse anyway.
        enforce::poison_query(&mut poison, "unknown");
        return (poison, BytesMut::new());
    };
    let d = &j.decision;
    match parse_name {
        Some(name) => enforce::poison_parse(&mut poison, name, &d.rule_id),
        None => enforce::poison_query(&mut poison, &d.rule_id),
    }
    let sqlstate = ctx.policy.current().policy.deny_sqlstate().to_string();
    (poison, enforce::deny_error(d, &sqlstate, position))
}

/// Statements of one Query/Parse text, decoded with the session's
/// client encoding. While a statement that changes a lexing setting is
/// in flight, or when the encoding cannot be decoded, the text is kept
/// whole and marked unanalysable rather than risk splitting it
/// differently from the server.
fn analyse(ctx: &ListenerCtx, lex: &LexState, touched: &mut bool, bytes: &[u8]) -> Vec<Statement> {
    if lex.unsettled() {
        return vec![ctx.analyzer.unanalysable(
            &decode_lossy(bytes),
            "not analysed: sent while a change of client_encoding or standard_conforming_strings was in flight",
        )];
    }
    let text = match decode(bytes, lex.decoding()) {
        Ok(t) => t,
        Err(why) => return vec![ctx.analyzer.unanalysable(&decode_lossy(bytes), why)],
    };
    let mut stmts = ctx.analyzer.statements(
        &text,
        LexOptions {
            dialect: Dialect::Postgres,
            standard_conforming_strings: lex.standard_conforming_strings(),
            ..LexOptions::default()
        },
    );
    for s in &mut stmts {
        if s.changes_lexing {
            *touched = true;
        } else if *touched && s.facts.operation == Operation::Transaction {
            // COMMIT/ROLLBACK may revert a SET LOCAL of a lexing setting.
            s.changes_lexing = true;
        }
    }
    stmts
}

/// The NUL-terminated field of `body` starting at `at`, as raw bytes (it
/// is in the client encoding), and the offset after its terminator.
fn cstr<'b>(
    body: &'b [u8],
    at: usize,
    message: &'static str,
) -> Result<(&'b [u8], usize), ProtocolError> {
    let rest = body.get(at..).ok_or(ProtocolError::Malformed {
        message,
        reason: "message too short",
    })?;
    let n = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(ProtocolError::Malformed {
            message,
            reason: "missing NUL terminator",
        })?;
    Ok((&rest[..n], at + n + 1))
}

/// Text for an unanalysable statement's audit record.
fn decode_lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Backend → client.
struct Downstream<'a> {
    ctx: &'a ListenerCtx,
    reader: BackendReadHalf,
    buf: BytesMut,
    /// Body bytes of a streamed message (DataRow, CopyData, …) still to
    /// forward; non-zero means the client stream is mid-message.
    passthrough: usize,
    rx: mpsc::Receiver<Pending>,
    lex: &'a LexState,
    app: &'a AppName,
    shutting_down: bool,
    /// Bytes for the client when a refusal's error replaced the server's;
    /// empty otherwise.
    out: BytesMut,
    results: Results,
    /// A rewritten (masked) DataRow.
    row_out: BytesMut,
    /// This session's backend, for cancelling a cut result's query.
    cancel: Option<CancelTarget>,
    /// Rows withheld since the current result was cut.
    dropped: u64,
    /// A CancelRequest went to the backend for the current cut result.
    cancelled: bool,
}

/// Rows withheld after a cut before the backend query is cancelled: a
/// result still streaming this long after the cut is surely the cut
/// statement's (a cancel sent as it completes could hit the next one).
const CANCEL_AFTER_DROPPED_ROWS: u64 = 256;

impl Downstream<'_> {
    /// The error the client gets instead of a cut result's completion.
    fn cut_error(&self, l: &danxia_policies::Limit) -> BytesMut {
        let mut out = BytesMut::new();
        let policy = self.ctx.policy.current();
        let message = format!("danxia: {} (rule {})", l.message, l.rule_id);
        let what = match l.counted {
            danxia_policies::Counted::Values(k) => format!("{} values", k.tag()),
            c => c.name().to_string(),
        };
        let detail = format!(
            "The result reached {} {what}, the limit of policy rule \"{}\"; the rest of it was withheld.",
            l.threshold, l.rule_id
        );
        be::encode_error_response(
            &mut out,
            "ERROR",
            policy.policy.deny_sqlstate(),
            &message,
            Some(&detail),
        );
        out
    }

    async fn run(
        &mut self,
        client: &mut ClientWriteHalf,
        tracker: &mut Tracker,
    ) -> Result<BackendEnd, SessionError> {
        // Created once: re-creating the watch future every turn of the loop
        // costs a Notify registration per relayed batch.
        let mut shutdown_rx = self.ctx.shutdown.clone();
        let shutdown = shutdown_signalled(&mut shutdown_rx);
        tokio::pin!(shutdown);
        let mut deadline = None::<tokio::time::Instant>;
        let mut fatal_seen = false;
        loop {
            let n = tokio::select! {
                biased;
                r = read_some(&mut self.reader, &mut self.buf) => r.map_err(SessionError::BackendIo)?,
                p = self.rx.recv(), if tracker.in_flight() < MAX_IN_FLIGHT => {
                    if let Some(p) = p {
                        tracker.push(p);
                    }
                    continue;
                }
                _ = &mut shutdown, if !self.shutting_down => {
                    self.shutting_down = true;
                    deadline = Some(tokio::time::Instant::now() + self.ctx.limits.shutdown_grace);
                    drain(&mut self.rx, tracker);
                    if tracker.in_flight() == 0 && self.passthrough == 0 {
                        return Ok(BackendEnd::Shutdown { forced: false });
                    }
                    continue;
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    return Ok(BackendEnd::Shutdown { forced: true });
                }
            };
            if n == 0 {
                return Ok(BackendEnd::Closed { fatal_seen });
            }
            let t0 = Instant::now();
            self.ctx.metrics.backend_in.increment(n as u64);
            drain(&mut self.rx, tracker);
            let mut pos = 0;
            if self.passthrough > 0 {
                let k = self.passthrough.min(self.buf.len());
                self.passthrough -= k;
                tracker.bytes_out(k as u64);
                pos = k;
            }
            let mut ready = false;
            let mut copied = 0;
            if self.passthrough == 0 {
                while let Some(h) = parse_header(&self.buf[pos..], usize::MAX)
                    .map_err(SessionError::BackendProtocol)?
                {
                    let total = h.total_len();
                    let avail = self.buf.len() - pos;
                    let inspect = if h.tag == be::tag::DATA_ROW {
                        if !self.results.has_plan() {
                            let (stmt, exec) = tracker.current();
                            self.results.begin_execute(stmt, exec);
                        }
                        self.results.wants_row(total)?
                    } else if h.tag == be::tag::COPY_DATA {
                        self.results.wants_copy_data(total)
                    } else {
                        needs_inspection(h.tag)
                    };
                    if avail < total {
                        if inspect {
                            if h.tag != be::tag::DATA_ROW && total > MAX_INSPECTED_BACKEND_MESSAGE {
                                return Err(SessionError::BackendProtocol(
                                    ProtocolError::MessageTooLarge {
                                        len: total,
                                        max: MAX_INSPECTED_BACKEND_MESSAGE,
                                    },
                                ));
                            }
                            self.buf.reserve(total - avail);
                        } else {
                            if h.tag == be::tag::DATA_ROW {
                                self.results.on_streamed_row(total);
                            }
                            tracker.on_streamed(h.tag);
                            tracker.bytes_out(avail as u64);
                            self.passthrough = total - avail;
                            pos = self.buf.len();
                        }
                        break;
                    }
                    tracker.bytes_out(total as u64);
                    let mut replacement = None;
                    if inspect {
                        let body = &self.buf[pos + HEADER_LEN..pos + total];
                        if h.tag == be::tag::DATA_ROW {
                            tracker.on_streamed(h.tag);
                            match self.results.on_row(body, &mut self.row_out)? {
                                RowAction::Forward => {}
                                RowAction::Replaced => replacement = Some(self.row_out.split()),
                                RowAction::Drop => {
                                    replacement = Some(BytesMut::new());
                                    self.dropped += 1;
                                    if self.dropped >= CANCEL_AFTER_DROPPED_ROWS && !self.cancelled
                                    {
                                        // Stop the server producing what
                                        // nobody will read.
                                        if let Some(t) = self.cancel.clone() {
                                            self.cancelled = true;
                                            self.ctx.metrics.cut_cancels.increment(1);
                                            let timeout = self.ctx.limits.backend_connect_timeout;
                                            tokio::spawn(
                                                async move { send_cancel(&t, timeout).await },
                                            );
                                        }
                                    }
                                }
                            }
                        } else if h.tag == be::tag::COPY_DATA {
                            if self.results.on_copy_data(body) == RowAction::Drop {
                                replacement = Some(BytesMut::new());
                            }
                        } else if h.tag == be::tag::COPY_OUT_RESPONSE {
                            self.results.begin_copy(tracker.current().0, body);
                        } else if h.tag == be::tag::PARAMETER_STATUS {
                            if let Ok((name, value)) = be::decode_parameter_status(body) {
                                self.lex.on_parameter(name, value);
                                if name == "application_name" {
                                    self.app.set(value);
                                    tracker.set_application(value);
                                }
                            }
                        } else {
                            if h.tag == be::tag::ERROR_RESPONSE && is_fatal(body) {
                                fatal_seen = true;
                            }
                            if h.tag == be::tag::READY_FOR_QUERY {
                                ready = true;
                            }
                            if is_completion(h.tag) {
                                // The statement's result is complete: its
                                // summary goes into its audit event.
                                if let Some(l) = self.results.cut() {
                                    // Our cancel's own error is replaced too.
                                    if h.tag != be::tag::ERROR_RESPONSE
                                        || (self.cancelled && is_query_canceled(body))
                                    {
                                        replacement = Some(self.cut_error(l));
                                    }
                                }
                                self.dropped = 0;
                                self.cancelled = false;
                                let sum = self.results.finish();
                                if !sum.is_empty() {
                                    tracker.set_result(sum);
                                }
                            }
                            let mut handled = tracker.on_message(h.tag, body, || {
                                self.lex.copy_in_bytes.swap(0, Ordering::Relaxed)
                            });
                            if let Handled::NothingPending = handled {
                                // A completion with nothing pending: the
                                // Pending is still in the channel.
                                drain(&mut self.rx, tracker);
                                handled = tracker.on_message(h.tag, body, || {
                                    self.lex.copy_in_bytes.swap(0, Ordering::Relaxed)
                                });
                            }
                            match handled {
                                Handled::Replace(b) => replacement = Some(b),
                                Handled::Described {
                                    portal,
                                    name,
                                    injected,
                                    keep,
                                } => {
                                    if keep {
                                        let shape =
                                            (h.tag == be::tag::ROW_DESCRIPTION).then_some(body);
                                        self.results.described(portal, &name, shape);
                                    } else {
                                        self.results.forget(portal, &name);
                                    }
                                    if injected {
                                        replacement = Some(BytesMut::new());
                                    }
                                }
                                Handled::Forward
                                    if h.tag == be::tag::ROW_DESCRIPTION
                                        && tracker.front_is_query() =>
                                {
                                    self.results.begin_simple(tracker.current().0, body);
                                }
                                _ => {}
                            }
                        }
                    } else {
                        if h.tag == be::tag::DATA_ROW {
                            self.results.on_streamed_row(total);
                        }
                        tracker.on_streamed(h.tag);
                    }
                    if let Some(r) = replacement {
                        self.out.extend_from_slice(&self.buf[copied..pos]);
                        self.out.extend_from_slice(&r);
                        copied = pos + total;
                    }
                    pos += total;
                }
            }
            // Audit first, then deliver: with audit.on_full = "block" a
            // result is never acknowledged to the client before its event is
            // queued.
            tracker.flush().await;
            if !self.out.is_empty() {
                self.out.extend_from_slice(&self.buf[copied..pos]);
                send(client, &self.out)
                    .await
                    .map_err(SessionError::ClientIo)?;
                self.ctx.metrics.client_out.increment(self.out.len() as u64);
                self.out.clear();
                self.buf.advance(pos);
            } else if pos > 0 {
                send(client, &self.buf[..pos])
                    .await
                    .map_err(SessionError::ClientIo)?;
                self.ctx.metrics.client_out.increment(pos as u64);
                self.buf.advance(pos);
            }
            self.ctx
                .metrics
                .proxy_added
                .record(t0.elapsed().as_secs_f64());
            if self.buf.is_empty() && self.buf.capacity() > MAX_RETAINED_BUFFER {
                self.buf = BytesMut::with_capacity(READ_CHUNK);
            }
            if ready
                && self.shutting_down
                && tracker.in_flight() == 0
                && self.passthrough == 0
                && self.buf.is_empty()
            {
                return Ok(BackendEnd::Shutdown { forced: false });
            }
        }
    }
}

/// Moves queued statements from the client side into the tracker.
fn drain(rx: &mut mpsc::Receiver<Pending>, tracker: &mut Tracker) {
    while tracker.in_flight() < MAX_IN_FLIGHT {
        match rx.try_recv() {
            Ok(p) => tracker.push(p),
            Err(_) => break,
        }
    }
}

/// Resolves when shutdown has been signalled (the watch guard is dropped
/// inside, keeping callers' futures `Send`).
pub async fn shutdown_signalled(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A Describe of portal `name` (raw bytes: names are in the client
/// encoding, so they are not round-tripped through UTF-8).
fn describe_portal(out: &mut BytesMut, name: &[u8]) {
    use bytes::BufMut;
    out.put_u8(fe::tag::DESCRIBE);
    out.put_u32((4 + 1 + name.len() + 1) as u32);
    out.put_u8(b'P');
    out.put_slice(name);
    out.put_u8(0);
}

/// Messages that end a statement's result.
fn is_completion(tag: u8) -> bool {
    matches!(
        tag,
        be::tag::COMMAND_COMPLETE
            | be::tag::ERROR_RESPONSE
            | be::tag::PORTAL_SUSPENDED
            | be::tag::EMPTY_QUERY_RESPONSE
    )
}

/// Backend messages the tracker must see whole (DataRows are the results
/// module's call); everything else streams.
fn needs_inspection(tag: u8) -> bool {
    matches!(
        tag,
        be::tag::ROW_DESCRIPTION
            | be::tag::COPY_OUT_RESPONSE
            | be::tag::NO_DATA
            | be::tag::PARAMETER_DESCRIPTION
            | be::tag::COMMAND_COMPLETE
            | be::tag::ERROR_RESPONSE
            | be::tag::READY_FOR_QUERY
            | be::tag::EMPTY_QUERY_RESPONSE
            | be::tag::PORTAL_SUSPENDED
            | be::tag::PARSE_COMPLETE
            | be::tag::PARAMETER_STATUS
    )
}

fn is_fatal(body: &[u8]) -> bool {
    matches!(
        be::find_error_field(body, b'V').or_else(|_| be::find_error_field(body, b'S')),
        Ok(Some(b"FATAL")) | Ok(Some(b"PANIC"))
    )
}

/// Reads more bytes into `buf`, growing it by a chunk when it is full.
async fn read_some<R: AsyncReadExt + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_CHUNK);
    }
    r.read_buf(buf).await
}

async fn flush_to<W: AsyncWrite + Unpin>(w: &mut W, out: &mut BytesMut) -> std::io::Result<()> {
    if !out.is_empty() {
        send(w, out).await?;
        out.clear();
    }
    Ok(())
}

/// Writes all of `bytes` and flushes: TLS may hold the last records of a
/// write until flushed (a no-op on a plain socket).
async fn send<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

/// Reads one whole backend message during startup; returns (tag, total).
async fn read_backend_message<R: AsyncRead + Unpin>(
    s: &mut R,
    buf: &mut BytesMut,
) -> Result<(u8, usize), SessionError> {
    loop {
        if let Some(h) = parse_header(buf, MAX_INSPECTED_BACKEND_MESSAGE)
            .map_err(SessionError::BackendProtocol)?
        {
            if buf.len() >= h.total_len() {
                return Ok((h.tag, h.total_len()));
            }
            buf.reserve(h.total_len() - buf.len());
        }
        if read_some(s, buf).await.map_err(SessionError::BackendIo)? == 0 {
            return Err(SessionError::BackendIo(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
    }
}

/// Reads one whole client message during startup; returns its total length.
async fn read_client_message<R: AsyncRead + Unpin>(
    s: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<usize, SessionError> {
    loop {
        if let Some(h) = parse_header(buf, max)? {
            if buf.len() >= h.total_len() {
                return Ok(h.total_len());
            }
            buf.reserve(h.total_len() - buf.len());
        }
        if read_some(s, buf).await.map_err(SessionError::ClientIo)? == 0 {
            return Err(SessionError::ClientGone);
        }
    }
}

/// Sends a CancelRequest for `target` on a fresh backend connection.
pub async fn send_cancel(target: &CancelTarget, timeout: Duration) {
    let key: BackendKeyData = target.backend_key;
    let packet = encode_cancel(key.process_id, key.secret_key);
    let r = tokio::time::timeout(timeout, async {
        let mut s = TcpStream::connect(target.backend_addr.as_str()).await?;
        s.write_all(&packet).await?;
        // PostgreSQL closes the connection after reading the request.
        let mut b = [0u8; 1];
        let _ = s.read(&mut b).await;
        Ok::<_, std::io::Error>(())
    })
    .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "could not forward cancel request"),
        Err(_) => warn!("cancel request to backend timed out"),
    }
}

/// Whether an ErrorResponse body is SQLSTATE 57014 (query_canceled).
fn is_query_canceled(body: &[u8]) -> bool {
    be::decode_error_fields(body)
        .ok()
        .and_then(|f| f.code)
        .is_some_and(|c| c == "57014")
}
