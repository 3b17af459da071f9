//! One MySQL / MariaDB client session: the handshake relayed with the
//! capabilities danxia cannot inspect stripped, authentication relayed
//! packet by packet (whatever the plugin), then one command at a time:
//! each statement analysed, decided, forwarded or refused, its results
//! counted, masked and limited, and audited.
//!
//! The protocol is strictly request/response, so the session is one task
//! that reads a command, answers it completely, and only then reads the
//! next (a client that pipelines simply finds its next command waiting in
//! the socket). That makes pairing results with statements exact: a
//! multi-statement COM_QUERY's results follow its statements in order, a
//! CALL's result sets end with its OK.
//!
//! A refusal is an ERR packet (`listener.deny_error_code`, default 1142,
//! SQLSTATE 42000, the rule id in the message) sent instead of forwarding
//! the command: the server never sees it, and the session, and any
//! transaction, go on as after any other error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use danxia_detectors::{Dialect, LexOptions, Operation};
use danxia_protocols::mysql::command as cmd;
use danxia_protocols::mysql::execute::{parse_execute, render_params, LAST_PREPARED_STMT_ID};
use danxia_protocols::mysql::handshake::{
    offer_greeting_capabilities, parse_greeting, parse_handshake_response,
    set_response_capabilities, strip_greeting_capabilities, strip_response_capabilities,
    SSL_REQUEST_LEN,
};
use danxia_protocols::mysql::packet::{take_packet, write_frame, Packet};
use danxia_protocols::mysql::response::{
    self as resp, encode_err, is_terminator, parse_err, parse_ok, parse_prepare_ok,
    terminator_status, SessionChange,
};
use danxia_protocols::mysql::{caps, status};
use danxia_protocols::ProtocolError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use super::charset;
use super::results::{self as myresults, BinaryRows, Columns, TextRows};
use crate::analysis::Statement;
use crate::audit::statement::{add_summary, describe_statement, SessionIdentity, RESULT_CUT};
use crate::audit::{AuditEvent, EventKind, Outcome, StatementText};
use crate::enforce::{AppName, Enforcer};
use crate::error::SessionError;
use crate::listener::ListenerCtx;
use crate::pg::encoding::{decode, Decoding};
use crate::results::{Inspector, RowAction};
use crate::tls::{BackendStream, ClientStream, MaybeTls, TlsMode};

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;
/// Handshake-phase packets (greeting, response, auth data) are small.
const MAX_HANDSHAKE_PACKET: usize = 64 * 1024;
/// Output buffered before it is written even though more rows follow.
const FLUSH_AT: usize = 64 * 1024;
/// How long the proxy tries to deliver its own last words.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);
/// Client bytes read ahead while a statement runs. The session watches the
/// client socket during a statement so that a client that vanishes is
/// noticed at once (and its statement stopped, see `end`); a client that
/// pipelines its next command has it buffered, up to this much, before the
/// watch pauses until the response is complete.
const MAX_CLIENT_READAHEAD: usize = 64 * 1024;
/// Largest buffer kept across an idle period.
const MAX_RETAINED_BUFFER: usize = 256 * 1024;
/// Columns of one result: MySQL allows 4096 per table; a result of more is
/// a broken server, not something to allocate for.
const MAX_COLUMNS: u64 = 65_535;
/// Prepared statements a session remembers (the server's own limit,
/// `max_prepared_stmt_count`, is 16382 by default).
const MAX_PREPARED: usize = 65_536;
/// Longest parameter rendering kept in an audit event.
const MAX_AUDITED_PARAMS: usize = 4096;
/// SQLSTATE of a policy refusal.
const DENY_SQLSTATE: &str = "42000";
/// ER_UNKNOWN_COM_ERROR: a command danxia does not relay.
const UNKNOWN_COMMAND: u16 = 1047;
/// ER_CON_COUNT_ERROR.
const TOO_MANY_CONNECTIONS: u16 = 1040;
/// ER_UNKNOWN_ERROR, for the proxy's own failures.
const PROXY_ERROR: u16 = 1105;
/// ER_NET_PACKET_TOO_LARGE.
const PACKET_TOO_LARGE: u16 = 1153;
/// ER_CONNECTION_KILLED (MariaDB's "Connection was killed"), the answer
/// to a session an administrator killed.
const CONNECTION_KILLED: u16 = 1927;
/// ER_SECURE_TRANSPORT_REQUIRED (MySQL 5.7+): a plaintext client on a
/// listener that requires TLS.
const SECURE_TRANSPORT_REQUIRED: u16 = 3159;

const NOT_EXECUTED: &str = "not executed: an earlier statement in the same request failed";
const NOT_EXECUTED_DENIED: &str =
    "not executed: another statement in the same request was refused by policy";

/// Runs one client connection to completion. Never panics on peer input;
/// every way out is audited and counted.
pub async fn run(ctx: &Arc<ListenerCtx>, client: TcpStream, peer: SocketAddr, id: Arc<str>) {
    let live = ctx.sessions.live.get(&id);
    let mut ident = SessionIdentity {
        session: id,
        listener: ctx.name.clone(),
        protocol: "mysql",
        client: Arc::from(peer.to_string()),
        user: None,
        database: None,
        application: None,
        tls_subject: None,
        tls: None,
    };
    let mut client: ClientConn = Conn::new(MaybeTls::Plain(client));
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + ctx.limits.startup_timeout;
    // The sequence id of danxia's answer to a failure: 0 before the
    // greeting went out (clients take that as the server's refusal), then
    // the one after the client's last packet.
    let mut reply_seq = 0u8;
    macro_rules! fail {
        ($e:expr) => {{
            fail_startup(ctx, Some(&mut client), &ident, $e, reply_seq).await;
            return;
        }};
    }
    // 1. Greeting out, the client's first packet in.
    let opened =
        match tokio::time::timeout_at(deadline, open(ctx, &mut client, &mut reply_seq)).await {
            Ok(Ok(Some(o))) => o,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => fail!(e),
            Err(_) => fail!(SessionError::StartupTimeout(ctx.limits.startup_timeout)),
        };
    let mut response = opened.first.clone();
    let first = match parse_handshake_response(&response.payload) {
        Ok(r) => r,
        Err(e) => fail!(SessionError::ClientProtocol(e)),
    };
    // 2. TLS towards the client: an SSLRequest is followed by the
    //    handshake, then by the full response over TLS (its sequence id
    //    continuing from the SSLRequest's).
    let mut client_shift = 0u8;
    if first.ssl_request {
        let Some(tls) = ctx.tls.clone() else {
            fail!(SessionError::Refused(
                "TLS was requested but this listener has no [listener.tls]".into()
            ))
        };
        if !client.buf.is_empty() {
            // Bytes sent before the handshake would be taken as if they
            // had come over TLS (the CVE-2021-23222 kind of injection).
            fail!(SessionError::ClientProtocol(ProtocolError::Malformed {
                message: "SSLRequest",
                reason: "data sent after the SSL request, before the TLS handshake",
            }))
        }
        let Conn { stream, buf } = client;
        let MaybeTls::Plain(tcp) = stream else {
            return;
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tls.accept(tcp, left).await {
            Ok(s) => {
                client = Conn {
                    stream: MaybeTls::Tls(Box::new(s)),
                    buf,
                }
            }
            Err(e) => {
                fail_startup(ctx, None, &ident, SessionError::ClientTls(e), 0).await;
                return;
            }
        }
        if let Some(info) = client.stream.tls_info() {
            ident.tls = Some(info.version);
            ident.tls_subject = info.subject();
        }
        response = match tokio::time::timeout_at(
            deadline,
            read_packet(&mut client, MAX_HANDSHAKE_PACKET, true),
        )
        .await
        {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => fail!(e),
            Err(_) => fail!(SessionError::StartupTimeout(ctx.limits.startup_timeout)),
        };
        reply_seq = response.seq.wrapping_add(1);
        client_shift = 1;
    } else if let Some(tls) = &ctx.tls {
        if tls.settings().mode == TlsMode::Required {
            tls.count_plaintext_refused();
            fail!(SessionError::TlsRequired)
        }
    }
    // 3. The response relayed (over TLS to the server when configured),
    //    then authentication.
    let hs = tokio::time::timeout_at(
        deadline,
        handshake(
            ctx,
            &mut client,
            opened,
            response,
            client_shift,
            &mut ident,
            peer,
            &mut reply_seq,
        ),
    )
    .await;
    let ready = match hs {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => fail!(e),
        Err(_) => fail!(SessionError::StartupTimeout(ctx.limits.startup_timeout)),
    };
    let mut s = Session {
        ctx: ctx.clone(),
        ident,
        started,
        client,
        backend: ready.backend,
        out: BytesMut::new(),
        row_out: BytesMut::new(),
        caps: ready.caps,
        server_status: ready.status,
        decoding: ready.decoding,
        handshake_decoding: ready.decoding,
        ansi_quotes: false,
        enforcer: ready.enforcer,
        inspector: Inspector::new(&ctx.data, ctx.scanner.clone()),
        prepared: HashMap::new(),
        last_prepared: None,
        events: Vec::new(),
        text_mode: ctx.auditor.settings().statement_text,
        deny_code: ctx.config.mysql_deny_code(),
        seq_shift: 0,
        swallow: false,
        stmt_bytes_out: 0,
        command_read_at: Instant::now(),
        backend_read_at: None,
        live: live.clone(),
        in_flight: None,
        reply_seq: 1,
        cleartext_guard: ready.cleartext_guard,
    };
    s.live_identity();
    let ev = s.ident.event(EventKind::SessionStart);
    s.events.push(ev);
    s.flush_events().await;
    // A kill ends the session even mid-command: the backend connection is
    // then closed under the running statement (see `end`).
    let end = tokio::select! {
        e = s.serve() => e,
        _ = async {
            match &live {
                Some(l) => l.killed().await,
                None => std::future::pending().await,
            }
        } => End::Killed,
    };
    s.end(end).await;
}

/// Sends the "too many connections" answer MySQL itself gives before its
/// greeting.
pub async fn refuse_too_many(mut stream: TcpStream) {
    let mut out = BytesMut::new();
    encode_err(
        &mut out,
        0,
        TOO_MANY_CONNECTIONS,
        "08004",
        "danxia: too many client connections (limits.max_connections reached)",
    );
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, stream.write_all(&out)).await;
}

/// One side's socket (plain or TLS) and read buffer.
struct Conn<S> {
    stream: S,
    buf: BytesMut,
}

/// The client side of a session.
type ClientConn = Conn<ClientStream>;
/// The server side of a session.
type BackendConn = Conn<BackendStream>;

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Reads more bytes; 0 at end of stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK {
            self.buf.reserve(READ_CHUNK);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    fn shrink(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > MAX_RETAINED_BUFFER {
            self.buf = BytesMut::new();
        }
    }
}

/// How the session ended.
enum End {
    /// COM_QUIT.
    Quit,
    /// The client closed the connection between commands.
    ClientClosed,
    Shutdown,
    Error(SessionError),
    /// An administrator killed the session (`DELETE /sessions/{id}`).
    Killed,
}

/// A prepared statement the session knows.
struct Prepared {
    stmt: Arc<Statement>,
    num_params: usize,
    /// Parameter types the client bound last (sent once, then reused).
    types: Option<Vec<(u8, bool)>>,
    /// Parameters sent with COM_STMT_SEND_LONG_DATA since the last execute.
    long_data: Vec<bool>,
    /// The result's columns, as the last execute described them (a cursor's
    /// COM_STMT_FETCH rows come without a description).
    columns: Option<Arc<Columns>>,
}

/// What kind of command produced a response, for the audit flow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Query,
    Prepare,
    Prepared,
    Fetch,
    Command,
}

impl Flow {
    fn as_str(self) -> &'static str {
        match self {
            Flow::Query => "query",
            Flow::Prepare => "prepare",
            Flow::Prepared => "prepared",
            Flow::Fetch => "fetch",
            Flow::Command => "command",
        }
    }
}

/// What one statement's completion says.
struct Completion {
    outcome: Outcome,
    rows: Option<u64>,
    error: Option<(u16, String, String)>,
    detail: Option<&'static str>,
}

impl Completion {
    fn ok(rows: Option<u64>) -> Self {
        Completion {
            outcome: Outcome::Ok,
            rows,
            error: None,
            detail: None,
        }
    }

    fn aborted(detail: &'static str) -> Self {
        Completion {
            outcome: Outcome::Aborted,
            rows: None,
            error: None,
            detail: Some(detail),
        }
    }
}

/// Statements sent to the server whose audit events are not yet written.
struct InFlight {
    stmts: Vec<Arc<Statement>>,
    /// Index of the first statement not yet audited.
    next: usize,
    flow: Flow,
    started: Instant,
}

/// The steady-state session.
struct Session {
    ctx: Arc<ListenerCtx>,
    ident: SessionIdentity,
    started: Instant,
    client: ClientConn,
    backend: BackendConn,
    out: BytesMut,
    row_out: BytesMut,
    /// Capabilities both sides agreed on (after stripping).
    caps: u64,
    /// The last server status flags seen.
    server_status: u16,
    /// How statement text is decoded now, and the handshake's (restored by
    /// COM_RESET_CONNECTION).
    decoding: Decoding,
    handshake_decoding: Decoding,
    ansi_quotes: bool,
    enforcer: Enforcer,
    inspector: Inspector,
    prepared: HashMap<u32, Prepared>,
    last_prepared: Option<u32>,
    events: Vec<AuditEvent>,
    text_mode: StatementText,
    deny_code: u16,
    /// Packets withheld from the current response so far: later packets'
    /// sequence ids are shifted down by this so the client sees no gap.
    seq_shift: u8,
    /// The current response is being read but no longer forwarded (after a
    /// result was cut and replaced by an ERR).
    swallow: bool,
    /// Bytes sent to the client for the current statement.
    stmt_bytes_out: u64,
    /// When the current command was read (for `danxia_proxy_added_seconds`
    /// of the client → server direction).
    command_read_at: Instant,
    /// When server bytes not yet written on to the client were read.
    backend_read_at: Option<Instant>,
    /// This session in the admin API's registry (statement count, kill).
    live: Option<Arc<crate::sessions::LiveSession>>,
    /// The statements of the command being answered, until each is
    /// audited: what `end` records as aborted when the session ends under
    /// them (client gone, backend lost, kill).
    in_flight: Option<InFlight>,
    /// The sequence id of the next packet to the client in the current
    /// response (an ERR danxia adds mid-response must carry it).
    reply_seq: u8,
    /// Refuse requests for a cleartext password (COM_CHANGE_USER).
    cleartext_guard: bool,
}

/// What the handshake hands to the session.
struct Ready {
    backend: BackendConn,
    caps: u64,
    status: u16,
    decoding: Decoding,
    enforcer: Enforcer,
    /// See [`cleartext_guard`].
    cleartext_guard: bool,
}

/// How an authentication exchange ended.
enum AuthEnd {
    Ok,
    /// The server refused: its error number, SQLSTATE and message.
    Failed(u16, String, String),
}

/// The connection phase up to the client's first packet.
struct Opened {
    backend: Conn<TcpStream>,
    server_caps: u64,
    server_status: u16,
    /// The backend is on a loopback address (a cleartext password may go
    /// there without TLS: it never crosses a network).
    backend_loopback: bool,
    /// The client's first packet: its handshake response or SSLRequest.
    first: Packet,
}

/// Connects to the server, relays its greeting (what danxia cannot read
/// stripped, `CLIENT_SSL` offered exactly when the listener has TLS) and
/// reads the client's first packet. `Ok(None)` when the client left.
async fn open(
    ctx: &Arc<ListenerCtx>,
    client: &mut ClientConn,
    reply_seq: &mut u8,
) -> Result<Option<Opened>, SessionError> {
    let tcp = connect_backend(ctx).await?;
    let backend_loopback = tcp.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let mut backend = Conn::new(tcp);
    // The server's greeting (or its refusal, forwarded as it is).
    // A server that accepts the connection but never greets (hung,
    // overloaded, a half-dead host) fails within backend_connect_timeout as
    // a connect failure, not as the client's handshake timeout.
    let wait = ctx.limits.backend_connect_timeout;
    let greeting =
        match tokio::time::timeout(wait, read_packet(&mut backend, MAX_HANDSHAKE_PACKET, false))
            .await
        {
            Ok(r) => r?.ok_or_else(|| SessionError::BackendIo(eof()))?,
            Err(_) => {
                ctx.metrics.backend_silent.increment(1);
                return Err(SessionError::BackendConnect {
                    addr: ctx.config.backend.clone(),
                    reason: format!("connected, but the server sent no greeting within {wait:?}"),
                });
            }
        };
    let mut out = BytesMut::new();
    if greeting.payload.first() == Some(&resp::ERR_HEADER) {
        write_frame(&mut out, greeting.seq, &greeting.payload);
        let _ = client.stream.write_all(&out).await;
        let why = parse_err(&greeting.payload)
            .map(|e| String::from_utf8_lossy(e.message).into_owned())
            .unwrap_or_default();
        return Err(SessionError::Refused(format!(
            "the database server refused the connection: {why}"
        )));
    }
    let g = parse_greeting(&greeting.payload).map_err(SessionError::BackendProtocol)?;
    let server_caps = g.capabilities;
    let server_status = g.status;
    if let Some(b) = &ctx.backend_tls {
        if server_caps & caps::CLIENT_SSL == 0 {
            crate::tls::client::count_backend_handshake(&ctx.name, "refused");
            return Err(SessionError::BackendTls(format!(
                "the database server at {} does not offer TLS, and backend_tls.mode = \"{}\" requires it",
                ctx.config.backend,
                b.mode().as_str()
            )));
        }
    }
    // What danxia cannot read is not offered at all (the client then never
    // uses it); TLS is danxia's own to offer, whatever the server says.
    let mut payload = greeting.payload.to_vec();
    strip_greeting_capabilities(&mut payload, STRIPPED).map_err(SessionError::BackendProtocol)?;
    if ctx.tls.is_some() {
        offer_greeting_capabilities(&mut payload, caps::CLIENT_SSL as u16)
            .map_err(SessionError::BackendProtocol)?;
    }
    write_frame(&mut out, greeting.seq, &payload);
    send(&mut client.stream, &mut out, &ctx.metrics.client_out)
        .await
        .map_err(SessionError::ClientIo)?;
    *reply_seq = 2;
    let Some(first) = read_first_packet(client).await? else {
        return Ok(None);
    };
    *reply_seq = first.seq.wrapping_add(1);
    Ok(Some(Opened {
        backend,
        server_caps,
        server_status,
        backend_loopback,
        first,
    }))
}

/// Reads the client's first packet byte-exactly (header, then payload):
/// after an SSLRequest the client sends its TLS ClientHello at once, with
/// no answer to wait for, and those bytes must stay in the socket for the
/// TLS handshake. `Ok(None)` when the client left first.
async fn read_first_packet(c: &mut ClientConn) -> Result<Option<Packet>, SessionError> {
    let mut head = [0u8; 4];
    match c.stream.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(SessionError::ClientIo(e)),
    }
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    if len > MAX_HANDSHAKE_PACKET {
        return Err(SessionError::ClientProtocol(
            ProtocolError::MessageTooLarge {
                len,
                max: MAX_HANDSHAKE_PACKET,
            },
        ));
    }
    let mut payload = vec![0u8; len];
    match c.stream.read_exact(&mut payload).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(SessionError::ClientGone)
        }
        Err(e) => return Err(SessionError::ClientIo(e)),
    }
    c.buf.extend_from_slice(&head);
    c.buf.extend_from_slice(&payload);
    take_packet(&mut c.buf, MAX_HANDSHAKE_PACKET).map_err(SessionError::ClientProtocol)
}

/// Capabilities never forwarded: what danxia cannot follow, and TLS, which
/// each link negotiates on its own.
const STRIPPED: u64 = caps::UNSUPPORTED | caps::CLIENT_SSL;

/// The client's handshake response relayed (over TLS to the server when
/// `[listener.backend_tls]` says so) and authentication, whatever the
/// plugin. `client_shift`: 1 when the client's link went through an
/// SSLRequest (its sequence ids run one ahead of a plaintext link's).
/// `Ok(None)` when the session legitimately ends here (client gone, auth
/// refused: already answered and audited).
#[allow(clippy::too_many_arguments)]
async fn handshake(
    ctx: &Arc<ListenerCtx>,
    client: &mut ClientConn,
    opened: Opened,
    response: Packet,
    client_shift: u8,
    ident: &mut SessionIdentity,
    peer: SocketAddr,
    reply_seq: &mut u8,
) -> Result<Option<Ready>, SessionError> {
    let Opened {
        backend,
        server_caps,
        server_status,
        backend_loopback,
        ..
    } = opened;
    let hr = parse_handshake_response(&response.payload)?;
    if hr.ssl_request {
        return Err(SessionError::ClientProtocol(ProtocolError::Malformed {
            message: "handshake response",
            reason: "a second SSL request",
        }));
    }
    let user: Arc<str> = Arc::from(String::from_utf8_lossy(&hr.user).as_ref());
    let database: Arc<str> = Arc::from(
        hr.database
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .as_ref(),
    );
    let application = hr
        .attributes
        .iter()
        .find(|(k, _)| k == "program_name")
        .map(|(_, v)| Arc::<str>::from(v.as_str()));
    ident.user = Some(user.clone());
    ident.database = Some(database.clone());
    ident.application = application.clone();
    let negotiated = (server_caps & !STRIPPED) & hr.capabilities;
    let mut payload = response.payload.to_vec();
    strip_response_capabilities(&mut payload, STRIPPED)?;
    let mut out = BytesMut::new();
    // TLS to the server: an SSLRequest made of the response's fixed part,
    // then the handshake, then the response with CLIENT_SSL set.
    let Conn { stream: tcp, buf } = backend;
    let (mut backend, backend_shift) = match &ctx.backend_tls {
        Some(connector) => {
            set_response_capabilities(&mut payload, caps::CLIENT_SSL as u32)?;
            let fixed = payload
                .get(..SSL_REQUEST_LEN)
                .ok_or(SessionError::ClientProtocol(ProtocolError::Malformed {
                    message: "handshake response",
                    reason: "shorter than its fixed part",
                }))?;
            write_frame(&mut out, 1, fixed);
            let mut tcp = tcp;
            send(&mut tcp, &mut out, &ctx.metrics.backend_out)
                .await
                .map_err(SessionError::BackendIo)?;
            if !buf.is_empty() {
                return Err(SessionError::BackendProtocol(ProtocolError::Malformed {
                    message: "SSLRequest",
                    reason: "the server sent data before the TLS handshake",
                }));
            }
            let tls = connector
                .connect(tcp, &ctx.name, ctx.limits.backend_connect_timeout)
                .await
                .map_err(|e| SessionError::BackendTls(e.to_string()))?;
            (
                Conn {
                    stream: MaybeTls::Tls(Box::new(tls)),
                    buf,
                },
                1u8,
            )
        }
        None => (
            Conn {
                stream: MaybeTls::Plain(tcp),
                buf,
            },
            0u8,
        ),
    };
    let shift = client_shift.wrapping_sub(backend_shift);
    let guard = cleartext_guard(
        client.stream.is_tls(),
        backend.stream.is_tls(),
        backend_loopback,
    );
    if guard {
        if let Some(why) = cleartext_in_response(&hr) {
            return Err(SessionError::Refused(cleartext_refusal(why)));
        }
    }
    write_frame(&mut out, response.seq.wrapping_sub(shift), &payload);
    send(&mut backend.stream, &mut out, &ctx.metrics.backend_out)
        .await
        .map_err(SessionError::BackendIo)?;
    // Authentication, whatever the plugin.
    match relay_auth(ctx, client, &mut backend, shift, guard, reply_seq).await? {
        AuthEnd::Ok => {}
        AuthEnd::Failed(code, state, message) => {
            ctx.metrics.auth_failures.increment(1);
            let mut ev = ident.event(EventKind::AuthFailure);
            ev.outcome = Some(Outcome::Error);
            ev.error_code = Some(code);
            ev.sqlstate = Some(state);
            ev.error = Some(message);
            ev.detail = Some("backend refused the session during authentication".into());
            let _ = ctx.auditor.record(ev).await;
            return Ok(None);
        }
    }
    debug!(session = %ident.session, user = ?ident.user, tls = ?ident.tls, "session started");
    let decoding = charset::decoding_for_collation(u16::from(hr.charset));
    let app = Arc::new(AppName::new(application));
    let mut enforcer = Enforcer::new(ctx, user, database, Some(peer.ip()), app);
    enforcer.set_tls_subject(ident.tls_subject.clone());
    Ok(Some(Ready {
        backend,
        caps: negotiated,
        status: server_status,
        decoding,
        enforcer,
        cleartext_guard: guard,
    }))
}

/// Whether danxia must refuse to pass a cleartext password on: the client
/// protected it with TLS, and danxia's link to the server is plaintext
/// over a network (not loopback). Forwarding it would strip the client's
/// protection without the client knowing.
fn cleartext_guard(client_tls: bool, backend_tls: bool, backend_loopback: bool) -> bool {
    client_tls && !backend_tls && !backend_loopback
}

/// Plugins whose first packet over TLS is the password in cleartext.
const CLEARTEXT_PLUGINS: [&[u8]; 2] = [b"mysql_clear_password", b"sha256_password"];

/// Why a handshake response already carries a cleartext password, if it
/// does.
fn cleartext_in_response(
    hr: &danxia_protocols::mysql::handshake::HandshakeResponse,
) -> Option<&'static str> {
    let plugin = hr.auth_plugin.as_deref()?;
    (CLEARTEXT_PLUGINS.contains(&plugin) && !hr.auth_response.is_empty())
        .then_some("the client's authentication plugin sends the password in cleartext")
}

/// Why the server's authentication packet `payload` asks the client (on
/// TLS) for its password in cleartext, if it does: a switch to
/// `mysql_clear_password` or `sha256_password`, or
/// `caching_sha2_password`'s "perform full authentication" (0x01 0x04).
fn cleartext_request(payload: &[u8]) -> Option<&'static str> {
    match payload {
        [0x01, 0x04] => Some(
            "caching_sha2_password full authentication sends the password in cleartext over TLS",
        ),
        [0xFE, rest @ ..] => {
            let plugin = rest.split(|b| *b == 0).next().unwrap_or(&[]);
            CLEARTEXT_PLUGINS
                .contains(&plugin)
                .then_some("the server switched to a plugin that sends the password in cleartext")
        }
        _ => None,
    }
}

fn cleartext_refusal(why: &str) -> String {
    format!(
        "{why}, and danxia's link to the database server is neither TLS nor loopback: \
         configure [listener.backend_tls] (or use mysql_native_password / ed25519)"
    )
}

/// Relays an authentication exchange (after a handshake response or a
/// COM_CHANGE_USER) until the server's OK or ERR, which is forwarded too.
/// Every plugin's exchange is a sequence of server packets (auth switch
/// 0xFE, more data 0x01) each answered by the client, except the
/// caching_sha2 "fast auth succeeded" notice (0x01 0x03), after which the
/// server sends its OK unprompted.
///
/// `shift`: how far the client's sequence ids run ahead of the server's
/// (the links' SSLRequests differ). `guard`: refuse a request for a
/// cleartext password (see [`cleartext_guard`]). `reply_seq` follows the
/// client's packets, for an error answer.
async fn relay_auth(
    ctx: &ListenerCtx,
    client: &mut ClientConn,
    backend: &mut BackendConn,
    shift: u8,
    guard: bool,
    reply_seq: &mut u8,
) -> Result<AuthEnd, SessionError> {
    let mut out = BytesMut::new();
    // An exchange is a handful of packets: a longer one is a broken peer.
    for _ in 0..16 {
        let p = read_packet(backend, MAX_HANDSHAKE_PACKET, false)
            .await?
            .ok_or_else(|| SessionError::BackendIo(eof()))?;
        if guard {
            if let Some(why) = cleartext_request(&p.payload) {
                *reply_seq = p.seq.wrapping_add(shift);
                return Err(SessionError::Refused(cleartext_refusal(why)));
            }
        }
        write_frame(&mut out, p.seq.wrapping_add(shift), &p.payload);
        send(&mut client.stream, &mut out, &ctx.metrics.client_out)
            .await
            .map_err(SessionError::ClientIo)?;
        match p.payload.first() {
            Some(&resp::OK_HEADER) => return Ok(AuthEnd::Ok),
            Some(&resp::ERR_HEADER) => {
                let (code, state, msg) = err_fields(&p.payload);
                return Ok(AuthEnd::Failed(code, state, msg));
            }
            Some(0x01) if p.payload.get(1) == Some(&0x03) && p.payload.len() == 2 => continue,
            Some(0x01) | Some(0xFE) => {
                let Some(c) = read_packet(client, MAX_HANDSHAKE_PACKET, true).await? else {
                    return Err(SessionError::ClientGone);
                };
                *reply_seq = c.seq.wrapping_add(1);
                write_frame(&mut out, c.seq.wrapping_sub(shift), &c.payload);
                send(&mut backend.stream, &mut out, &ctx.metrics.backend_out)
                    .await
                    .map_err(SessionError::BackendIo)?;
            }
            _ => {
                return Err(SessionError::BackendProtocol(ProtocolError::Malformed {
                    message: "authentication",
                    reason: "unexpected packet during authentication",
                }))
            }
        }
    }
    Err(SessionError::BackendProtocol(ProtocolError::Malformed {
        message: "authentication",
        reason: "authentication exchange did not end",
    }))
}

/// Reads one logical packet from `c`. `Ok(None)` at a clean end of stream
/// (nothing buffered); an end mid-packet is an error of that side.
async fn read_packet<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    max: usize,
    client: bool,
) -> Result<Option<Packet>, SessionError> {
    loop {
        match take_packet(&mut c.buf, max) {
            Ok(Some(p)) => return Ok(Some(p)),
            Ok(None) => {}
            Err(e) if client => return Err(SessionError::ClientProtocol(e)),
            Err(e) => return Err(SessionError::BackendProtocol(e)),
        }
        let n = c.fill().await.map_err(|e| {
            if client {
                SessionError::ClientIo(e)
            } else {
                SessionError::BackendIo(e)
            }
        })?;
        if n == 0 {
            if c.buf.is_empty() {
                return Ok(None);
            }
            return Err(if client {
                SessionError::ClientGone
            } else {
                SessionError::BackendIo(eof())
            });
        }
    }
}

/// Writes and clears `out`, counting the bytes.
async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &mut BytesMut,
    counter: &metrics::Counter,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    w.write_all(out).await?;
    counter.increment(out.len() as u64);
    out.clear();
    Ok(())
}

fn eof() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "connection closed mid-exchange",
    )
}

/// An ERR packet's number, SQLSTATE and message (lossy).
fn err_fields(payload: &[u8]) -> (u16, String, String) {
    match parse_err(payload) {
        Ok(e) => (
            e.code,
            e.sqlstate
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .unwrap_or_else(|| "HY000".into()),
            String::from_utf8_lossy(e.message).into_owned(),
        ),
        Err(_) => (0, "HY000".into(), "malformed error packet".into()),
    }
}

async fn connect_backend(ctx: &ListenerCtx) -> Result<TcpStream, SessionError> {
    let addr = &ctx.config.backend;
    let r = tokio::time::timeout(
        ctx.limits.backend_connect_timeout,
        TcpStream::connect(addr.as_str()),
    )
    .await;
    match r {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => {
            ctx.metrics.backend_connect_failures.increment(1);
            Err(SessionError::BackendConnect {
                addr: addr.clone(),
                reason: e.to_string(),
            })
        }
        Err(_) => {
            ctx.metrics.backend_connect_timeouts.increment(1);
            Err(SessionError::BackendConnect {
                addr: addr.clone(),
                reason: format!("no answer within {:?}", ctx.limits.backend_connect_timeout),
            })
        }
    }
}

/// Ends a session that failed before the command phase: tell the client why
/// (an ERR packet; sequence 0 before the greeting was sent, which clients
/// accept as the server's refusal), audit, count.
async fn fail_startup(
    ctx: &ListenerCtx,
    client: Option<&mut ClientConn>,
    ident: &SessionIdentity,
    e: SessionError,
    seq: u8,
) {
    let (code, state, message) = match &e {
        SessionError::BackendConnect { .. } => (
            PROXY_ERROR,
            "08S01",
            format!(
                "danxia: cannot connect to the database server of listener \"{}\"",
                ctx.name
            ),
        ),
        SessionError::StartupTimeout(d) => (
            PROXY_ERROR,
            "08S01",
            format!("danxia: handshake not completed within {d:?}"),
        ),
        SessionError::Refused(why) => (PROXY_ERROR, "08004", format!("danxia: {why}")),
        SessionError::TlsRequired => (
            SECURE_TRANSPORT_REQUIRED,
            "08004",
            "danxia: this listener requires TLS: connect with --ssl (MySQL clients: --ssl-mode=REQUIRED)"
                .into(),
        ),
        SessionError::BackendTls(why) => (
            PROXY_ERROR,
            "08S01",
            format!(
                "danxia: no TLS connection to the database server of listener \"{}\": {why}",
                ctx.name
            ),
        ),
        SessionError::ClientProtocol(p) => (
            PROXY_ERROR,
            "08S01",
            format!("danxia: invalid handshake packet: {p}"),
        ),
        SessionError::BackendProtocol(_) | SessionError::BackendIo(_) => (
            PROXY_ERROR,
            "08S01",
            "danxia: the database server closed the connection during the handshake".into(),
        ),
        _ => (0, "", String::new()),
    };
    if let Some(kind) = e.protocol_kind() {
        ctx.metrics.protocol_error(kind);
    }
    match &e {
        SessionError::ClientIo(_) | SessionError::ClientGone => {
            debug!(session = %ident.session, error = %e, "client left during handshake")
        }
        SessionError::BackendConnect { .. } => {
            warn!(listener = %ctx.name, error = %e, "backend unreachable")
        }
        SessionError::BackendTls(_) => {
            warn!(listener = %ctx.name, error = %e, "no TLS to the backend")
        }
        _ => {
            info!(session = %ident.session, client = %ident.client, error = %e, "session refused during handshake")
        }
    }
    if let (true, Some(client)) = (code != 0, client) {
        let mut out = BytesMut::new();
        encode_err(&mut out, seq, code, state, &message);
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, client.stream.write_all(&out)).await;
    }
    let kind = if e.protocol_kind().is_some() {
        EventKind::ProtocolError
    } else {
        EventKind::SessionEnd
    };
    let mut ev = ident.event(kind);
    ev.outcome = Some(Outcome::Refused);
    if code != 0 {
        ev.error_code = Some(code);
        ev.sqlstate = Some(state.to_string());
    }
    ev.error = Some(e.to_string());
    ev.detail = Some("session ended during the handshake".into());
    let _ = ctx.auditor.record(ev).await;
}

impl Session {
    /// Commands until the session ends.
    async fn serve(&mut self) -> End {
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            self.client.shrink();
            self.backend.shrink();
            let packet = if self.client.buf.is_empty() {
                tokio::select! {
                    r = read_packet(&mut self.client, self.ctx.limits.max_message_bytes as usize, true) => r,
                    _ = crate::pg::session::shutdown_signalled(&mut shutdown) => return End::Shutdown,
                }
            } else {
                read_packet(
                    &mut self.client,
                    self.ctx.limits.max_message_bytes as usize,
                    true,
                )
                .await
            };
            let packet = match packet {
                Ok(Some(p)) => p,
                Ok(None) => return End::ClientClosed,
                Err(SessionError::ClientProtocol(ProtocolError::MessageTooLarge { len, max })) => {
                    // Answer as the server does (ER_NET_PACKET_TOO_LARGE),
                    // then end: the rest of the packet cannot be skipped
                    // without reading it.
                    let mut out = BytesMut::new();
                    encode_err(
                        &mut out,
                        1,
                        PACKET_TOO_LARGE,
                        "08S01",
                        &format!("danxia: a packet of {len} bytes exceeds limits.max_message_bytes ({max})"),
                    );
                    let _ =
                        tokio::time::timeout(FAREWELL_TIMEOUT, self.client.stream.write_all(&out))
                            .await;
                    self.discard_client_bytes(len).await;
                    return End::Error(SessionError::ClientProtocol(
                        ProtocolError::MessageTooLarge { len, max },
                    ));
                }
                Err(e) => return End::Error(e),
            };
            self.ctx
                .metrics
                .client_in
                .increment(packet.payload.len() as u64 + 4);
            let r = self.command(packet).await;
            if r.is_ok() {
                // Between commands an unsolicited ERR (a kill) answers the
                // client's next command.
                self.reply_seq = 1;
            }
            self.flush_events().await;
            match r {
                Ok(true) => {}
                Ok(false) => return End::Quit,
                Err(e) => return End::Error(e),
            }
        }
    }

    /// Reads and drops what the client still sends of a refused oversized
    /// packet (up to `len` bytes, for at most FAREWELL_TIMEOUT, in a fixed
    /// buffer): a client still writing it would otherwise get a broken pipe
    /// before it reads the ERR that says which limit it hit.
    async fn discard_client_bytes(&mut self, len: usize) {
        let deadline = tokio::time::Instant::now() + FAREWELL_TIMEOUT;
        let mut left = len.saturating_sub(self.client.buf.len());
        self.client.buf = BytesMut::new();
        let mut scratch = vec![0u8; READ_CHUNK];
        while left > 0 {
            match tokio::time::timeout_at(deadline, self.client.stream.read(&mut scratch)).await {
                Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
                _ => break,
            }
        }
    }

    /// Answers one command completely. `Ok(false)` after COM_QUIT.
    async fn command(&mut self, p: Packet) -> Result<bool, SessionError> {
        self.seq_shift = 0;
        self.swallow = false;
        self.stmt_bytes_out = 0;
        self.reply_seq = p.last_seq().wrapping_add(1);
        let started = Instant::now();
        self.command_read_at = started;
        let Some(&code) = p.payload.first() else {
            // An empty packet is not a command: the server would drop us.
            return Err(SessionError::ClientProtocol(ProtocolError::Malformed {
                message: "command",
                reason: "empty command packet",
            }));
        };
        match code {
            cmd::COM_QUERY => self.query(&p, started).await?,
            cmd::COM_STMT_PREPARE => self.prepare(&p, started).await?,
            cmd::COM_STMT_EXECUTE => self.execute(&p, started).await?,
            cmd::COM_STMT_FETCH => self.fetch(&p, started).await?,
            cmd::COM_STMT_SEND_LONG_DATA => {
                if let Ok((id, param, _)) = cmd::parse_send_long_data(&p.payload) {
                    if let Some(ps) = self.prepared.get_mut(&id) {
                        if let Some(f) = ps.long_data.get_mut(usize::from(param)) {
                            *f = true;
                        }
                    }
                }
                self.forward_command(&p).await?;
            }
            cmd::COM_STMT_CLOSE => {
                if let Ok(id) = cmd::stmt_id(&p.payload) {
                    self.prepared.remove(&id);
                }
                self.forward_command(&p).await?;
            }
            cmd::COM_STMT_RESET => {
                if let Ok(id) = cmd::stmt_id(&p.payload) {
                    if let Some(ps) = self.prepared.get_mut(&id) {
                        ps.long_data.iter_mut().for_each(|f| *f = false);
                    }
                }
                self.forward_command(&p).await?;
                self.simple_response().await?;
            }
            cmd::COM_QUIT => {
                self.forward_command(&p).await?;
                return Ok(false);
            }
            cmd::COM_PING | cmd::COM_STATISTICS | cmd::COM_DEBUG => {
                self.forward_command(&p).await?;
                self.simple_response().await?;
            }
            cmd::COM_SET_OPTION => {
                self.forward_command(&p).await?;
                self.simple_response().await?;
            }
            cmd::COM_RESET_CONNECTION => {
                self.forward_command(&p).await?;
                if self.simple_response().await? {
                    self.prepared.clear();
                    self.last_prepared = None;
                    self.decoding = self.handshake_decoding;
                    self.ansi_quotes = false;
                }
            }
            cmd::COM_CHANGE_USER => self.change_user(&p).await?,
            cmd::COM_INIT_DB
            | cmd::COM_FIELD_LIST
            | cmd::COM_PROCESS_KILL
            | cmd::COM_REFRESH
            | cmd::COM_SHUTDOWN
            | cmd::COM_CREATE_DB
            | cmd::COM_DROP_DB => self.legacy_command(&p, started).await?,
            _ => {
                // Replication, COM_MULTI, bulk execute (their capabilities
                // are not offered) and unknown commands: refused, the
                // session goes on.
                let name = cmd::command_name(code);
                let mut ev = self.ident.event(EventKind::Statement);
                ev.protocol_flow = Some(Flow::Command.as_str());
                ev.operation = Some(Operation::Unknown.as_str());
                ev.statement = Some(format!("COM_{} (0x{code:02x})", name.to_ascii_uppercase()));
                ev.outcome = Some(Outcome::Refused);
                let msg =
                    format!("danxia: the {name} command is not relayed by the database firewall");
                ev.error_code = Some(UNKNOWN_COMMAND);
                ev.sqlstate = Some("08S01".into());
                ev.error = Some(msg.clone());
                self.ctx
                    .metrics
                    .statement(Operation::Unknown, Outcome::Refused);
                self.events.push(ev);
                encode_err(
                    &mut self.out,
                    p.last_seq().wrapping_add(1),
                    UNKNOWN_COMMAND,
                    "08S01",
                    &msg,
                );
                self.flush_client().await?;
            }
        }
        self.flush_client().await?;
        Ok(true)
    }

    /// COM_QUERY: every statement of the text decided; all forwarded or
    /// none.
    async fn query(&mut self, p: &Packet, started: Instant) -> Result<(), SessionError> {
        let text = p.payload.get(1..).unwrap_or_default();
        let mut stmts = self.analyse(text);
        if let Some(i) = self.enforcer.judge(&self.ctx, &mut stmts) {
            return self.refuse(p, &stmts, i, started, Flow::Query).await;
        }
        let stmts: Vec<Arc<Statement>> = stmts.into_iter().map(Arc::new).collect();
        self.forward_command(p).await?;
        self.relay_results(
            &stmts,
            None,
            Flow::Query,
            started,
            p.payload.len() as u64,
            None,
        )
        .await?;
        Ok(())
    }

    /// Statement text of one COM_QUERY / COM_STMT_PREPARE, analysed in the
    /// connection's character set and SQL mode. A statement that follows
    /// one changing either in the same text is not analysed: the server
    /// reads it under settings the proxy has not seen take effect.
    fn analyse(&self, bytes: &[u8]) -> Vec<Statement> {
        let text = match decode(bytes, self.decoding) {
            Ok(t) => t,
            Err(why) => {
                return vec![self
                    .ctx
                    .analyzer
                    .unanalysable(&String::from_utf8_lossy(bytes), why)]
            }
        };
        let opts = LexOptions {
            no_backslash_escapes: self.server_status & status::SERVER_STATUS_NO_BACKSLASH_ESCAPES
                != 0,
            ansi_quotes: self.ansi_quotes,
            ..LexOptions::for_dialect(Dialect::MySql)
        };
        let mut stmts = self.ctx.analyzer.statements(&text, opts);
        let mut changed = false;
        for s in &mut stmts {
            if changed {
                *s = self.ctx.analyzer.unanalysable(
                    &s.text,
                    "follows a statement that changes the character set or SQL mode in the same request",
                );
                continue;
            }
            changed =
                s.facts.operation == Operation::Set && charset::changes_lexing(&s.facts.normalized);
        }
        stmts
    }

    /// Refuses a command because statement `index` of `stmts` is denied:
    /// an ERR to the client, nothing to the server.
    async fn refuse(
        &mut self,
        p: &Packet,
        stmts: &[Statement],
        index: usize,
        started: Instant,
        flow: Flow,
    ) -> Result<(), SessionError> {
        let n = stmts.len();
        let mut message = String::new();
        for (i, s) in stmts.iter().enumerate() {
            if i == index {
                let d = s.judgement.as_ref().map(|j| j.decision.clone());
                message = match &d {
                    Some(d) if n > 1 => format!(
                        "danxia: {} (rule {}); statement {} of {n} in this request was refused, none of them ran",
                        d.message,
                        d.rule_id,
                        i + 1
                    ),
                    Some(d) => format!("danxia: {} (rule {})", d.message, d.rule_id),
                    None => "danxia: refused by policy".to_string(),
                };
                let c = Completion {
                    outcome: Outcome::Refused,
                    rows: None,
                    error: Some((self.deny_code, DENY_SQLSTATE.into(), message.clone())),
                    detail: Some("refused by policy"),
                };
                self.emit(Some(s), flow, started, c, p.payload.len() as u64, None);
            } else {
                self.emit(
                    Some(s),
                    flow,
                    started,
                    Completion::aborted(NOT_EXECUTED_DENIED),
                    0,
                    None,
                );
            }
        }
        encode_err(
            &mut self.out,
            p.last_seq().wrapping_add(1),
            self.deny_code,
            DENY_SQLSTATE,
            &message,
        );
        self.flush_client().await
    }

    /// COM_STMT_PREPARE: decided on its text; remembered with its shape.
    async fn prepare(&mut self, p: &Packet, started: Instant) -> Result<(), SessionError> {
        let text = p.payload.get(1..).unwrap_or_default();
        let mut stmts = self.analyse(text);
        if let Some(i) = self.enforcer.judge(&self.ctx, &mut stmts) {
            return self.refuse(p, &stmts, i, started, Flow::Prepare).await;
        }
        // The server prepares one statement; several are its syntax error.
        let stmt = Arc::new(if stmts.len() == 1 {
            stmts.remove(0)
        } else {
            let text = decode(text, self.decoding).unwrap_or_default();
            let mut s = self
                .ctx
                .analyzer
                .unanalysable(&text, "not a single statement");
            self.enforcer.judge(&self.ctx, std::slice::from_mut(&mut s));
            s
        });
        if stmt.blocked() {
            let s = (*stmt).clone();
            return self
                .refuse(p, std::slice::from_ref(&s), 0, started, Flow::Prepare)
                .await;
        }
        self.forward_command(p).await?;
        let first = self.backend_packet().await?;
        match first.payload.first() {
            Some(&resp::ERR_HEADER) => {
                self.forward(&first);
                let c = self.err_completion(&first.payload);
                self.emit(
                    Some(&stmt),
                    Flow::Prepare,
                    started,
                    c,
                    p.payload.len() as u64,
                    None,
                );
                Ok(())
            }
            Some(&resp::OK_HEADER) => {
                let ok = parse_prepare_ok(&first.payload).map_err(SessionError::BackendProtocol)?;
                self.forward(&first);
                let deprecate_eof = self.caps & caps::CLIENT_DEPRECATE_EOF != 0;
                for _ in 0..ok.num_params {
                    let d = self.backend_packet().await?;
                    self.forward(&d);
                }
                if ok.num_params > 0 && !deprecate_eof {
                    let e = self.backend_packet().await?;
                    self.forward(&e);
                }
                let names = Inspector::needs_names(Some(&stmt));
                let mut cols = Columns::default();
                for _ in 0..ok.num_columns {
                    let d = self.backend_packet().await?;
                    if let Ok(c) = myresults::parse_col(&d.payload, names) {
                        cols.push(c);
                    }
                    self.forward(&d);
                }
                if ok.num_columns > 0 && !deprecate_eof {
                    let e = self.backend_packet().await?;
                    self.forward(&e);
                }
                if self.prepared.len() >= MAX_PREPARED && !self.prepared.contains_key(&ok.stmt_id) {
                    self.prepared.clear();
                }
                let n = usize::from(ok.num_params);
                self.prepared.insert(
                    ok.stmt_id,
                    Prepared {
                        stmt,
                        num_params: n,
                        types: None,
                        long_data: vec![false; n],
                        columns: (ok.num_columns > 0).then(|| Arc::new(cols)),
                    },
                );
                self.last_prepared = Some(ok.stmt_id);
                Ok(())
            }
            _ => Err(SessionError::BackendProtocol(ProtocolError::Malformed {
                message: "COM_STMT_PREPARE response",
                reason: "neither OK nor ERR",
            })),
        }
    }

    /// COM_STMT_EXECUTE: decided again if the policy changed since the
    /// prepare; parameters decoded for the audit.
    async fn execute(&mut self, p: &Packet, started: Instant) -> Result<(), SessionError> {
        let mut id = cmd::stmt_id(&p.payload).unwrap_or(0);
        if id == LAST_PREPARED_STMT_ID {
            id = self.last_prepared.unwrap_or(id);
        }
        let Some(ps) = self.prepared.get_mut(&id) else {
            // Unknown to danxia (so unknown to the server too, unless it
            // was prepared before a COM_RESET… the server will answer).
            self.forward_command(p).await?;
            return self
                .relay_results(
                    &[],
                    Some(None),
                    Flow::Prepared,
                    started,
                    p.payload.len() as u64,
                    None,
                )
                .await;
        };
        let stmt = self.enforcer.rejudge(&self.ctx, ps.stmt.clone());
        ps.stmt = stmt.clone();
        // This execution's own view (quarantine, window budgets).
        let stmt = self.enforcer.amend(stmt);
        let params = match parse_execute(
            &p.payload,
            ps.num_params,
            ps.types.as_deref(),
            &ps.long_data,
        ) {
            Ok(e) => {
                if e.types.is_some() {
                    ps.types = e.types;
                }
                Some(render_params(&e.params, MAX_AUDITED_PARAMS))
            }
            Err(_) => None,
        };
        ps.long_data.iter_mut().for_each(|f| *f = false);
        if stmt.blocked() {
            let s = (*stmt).clone();
            return self
                .refuse(p, std::slice::from_ref(&s), 0, started, Flow::Prepared)
                .await;
        }
        self.forward_command(p).await?;
        self.relay_results(
            std::slice::from_ref(&stmt),
            Some(Some(id)),
            Flow::Prepared,
            started,
            p.payload.len() as u64,
            params,
        )
        .await
    }

    /// COM_STMT_FETCH: rows of a cursor opened by an execute, in the shape
    /// that execute described.
    async fn fetch(&mut self, p: &Packet, started: Instant) -> Result<(), SessionError> {
        let id = cmd::stmt_id(&p.payload).unwrap_or(0);
        let (stmt, cols) = match self.prepared.get(&id) {
            Some(ps) => (Some(ps.stmt.clone()), ps.columns.clone()),
            None => (None, None),
        };
        self.forward_command(p).await?;
        let cols = cols.unwrap_or_default();
        if let Some(s) = &stmt {
            myresults::begin(&mut self.inspector, Some(s), &cols, true);
        }
        let mut rows = 0u64;
        loop {
            let r = self.backend_packet().await?;
            match r.payload.first() {
                Some(&resp::ERR_HEADER) => {
                    self.forward(&r);
                    let c = self.err_completion(&r.payload);
                    self.emit(
                        stmt.as_deref(),
                        Flow::Fetch,
                        started,
                        c,
                        p.payload.len() as u64,
                        None,
                    );
                    return Ok(());
                }
                Some(_) if is_terminator(&r.payload) => {
                    self.server_status = terminator_status(&r.payload, self.caps);
                    self.end_rows(&r);
                    let c = Completion::ok(Some(rows));
                    self.emit(
                        stmt.as_deref(),
                        Flow::Fetch,
                        started,
                        c,
                        p.payload.len() as u64,
                        None,
                    );
                    return Ok(());
                }
                _ => {
                    rows += 1;
                    self.row(&r, Some(&cols.types))?;
                }
            }
            self.maybe_flush().await?;
        }
    }

    /// COM_INIT_DB, COM_FIELD_LIST and the other commands that do what a
    /// statement could: decided and audited as that statement.
    async fn legacy_command(&mut self, p: &Packet, started: Instant) -> Result<(), SessionError> {
        let arg = p.payload.get(1..).unwrap_or_default();
        let text = decode(arg, self.decoding).unwrap_or_default();
        let name = text.split('\0').next().unwrap_or("");
        let quoted = format!("`{}`", name.replace('`', "``"));
        let code = p.payload.first().copied().unwrap_or(0);
        let sql = match code {
            cmd::COM_INIT_DB => format!("USE {quoted}"),
            cmd::COM_FIELD_LIST => format!("SHOW COLUMNS FROM {quoted}"),
            cmd::COM_PROCESS_KILL => format!(
                "KILL {}",
                arg.get(..4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0)
            ),
            cmd::COM_REFRESH => "FLUSH PRIVILEGES".to_string(),
            cmd::COM_SHUTDOWN => "SHUTDOWN".to_string(),
            cmd::COM_CREATE_DB => format!("CREATE DATABASE {quoted}"),
            _ => format!("DROP DATABASE {quoted}"),
        };
        let mut stmts = self
            .ctx
            .analyzer
            .statements(&sql, LexOptions::for_dialect(Dialect::MySql));
        if stmts.is_empty() {
            stmts.push(self.ctx.analyzer.unanalysable(&sql, "empty command"));
        }
        stmts.truncate(1);
        if let Some(i) = self.enforcer.judge(&self.ctx, &mut stmts) {
            return self.refuse(p, &stmts, i, started, Flow::Command).await;
        }
        let stmt = stmts.remove(0);
        self.forward_command(p).await?;
        if code == cmd::COM_FIELD_LIST {
            // Column definitions up to an EOF (or an ERR).
            loop {
                let r = self.backend_packet().await?;
                self.forward(&r);
                match r.payload.first() {
                    Some(&resp::ERR_HEADER) => {
                        let c = self.err_completion(&r.payload);
                        self.emit(
                            Some(&stmt),
                            Flow::Command,
                            started,
                            c,
                            p.payload.len() as u64,
                            None,
                        );
                        return Ok(());
                    }
                    Some(_) if is_terminator(&r.payload) => break,
                    _ => {}
                }
                self.maybe_flush().await?;
            }
            self.emit(
                Some(&stmt),
                Flow::Command,
                started,
                Completion::ok(None),
                p.payload.len() as u64,
                None,
            );
            return Ok(());
        }
        let r = self.backend_packet().await?;
        self.forward(&r);
        let c = match r.payload.first() {
            Some(&resp::ERR_HEADER) => self.err_completion(&r.payload),
            _ => {
                if let Ok(ok) = parse_ok(&r.payload, self.caps) {
                    self.server_status = ok.status;
                }
                if code == cmd::COM_INIT_DB {
                    self.set_database(name);
                }
                Completion::ok(None)
            }
        };
        self.emit(
            Some(&stmt),
            Flow::Command,
            started,
            c,
            p.payload.len() as u64,
            None,
        );
        Ok(())
    }

    /// COM_CHANGE_USER: a new authentication on the same connection; on
    /// success the session is the new user's (statements, character set
    /// and prepared statements start afresh).
    async fn change_user(&mut self, p: &Packet) -> Result<(), SessionError> {
        let cu = cmd::parse_change_user(&p.payload, self.caps)?;
        self.forward_command(p).await?;
        let ctx = self.ctx.clone();
        let mut reply_seq = 0;
        let guard = self.cleartext_guard;
        match relay_auth(
            &ctx,
            &mut self.client,
            &mut self.backend,
            0,
            guard,
            &mut reply_seq,
        )
        .await?
        {
            AuthEnd::Ok => {
                let user: Arc<str> = Arc::from(String::from_utf8_lossy(&cu.user).as_ref());
                let db: Arc<str> = Arc::from(String::from_utf8_lossy(&cu.database).as_ref());
                self.ident.user = Some(user.clone());
                self.ident.database = Some(db.clone());
                self.enforcer.set_identity(user, db);
                self.prepared.clear();
                self.last_prepared = None;
                self.ansi_quotes = false;
                if let Some(c) = cu.charset {
                    self.decoding = charset::decoding_for_collation(c);
                    self.handshake_decoding = self.decoding;
                }
                self.live_identity();
                let mut ev = self.ident.event(EventKind::SessionStart);
                ev.detail = Some("COM_CHANGE_USER".into());
                self.events.push(ev);
            }
            AuthEnd::Failed(code, state, message) => {
                self.ctx.metrics.auth_failures.increment(1);
                let mut ev = self.ident.event(EventKind::AuthFailure);
                ev.outcome = Some(Outcome::Error);
                ev.error_code = Some(code);
                ev.sqlstate = Some(state);
                ev.error = Some(message);
                ev.detail = Some(format!(
                    "COM_CHANGE_USER to {:?} refused by the server",
                    String::from_utf8_lossy(&cu.user)
                ));
                self.events.push(ev);
            }
        }
        Ok(())
    }

    /// Tells the admin API's registry who the session is now.
    fn live_identity(&self) {
        if let Some(l) = &self.live {
            l.set_identity(
                self.ident.user.as_ref(),
                self.ident.database.as_ref(),
                self.ident.application.as_ref(),
                self.ident.tls_subject.as_ref(),
            );
        }
    }

    fn set_database(&mut self, name: &str) {
        let db: Arc<str> = Arc::from(name);
        self.ident.database = Some(db.clone());
        let user = self.ident.user.clone().unwrap_or_else(|| Arc::from(""));
        self.enforcer.set_identity(user, db);
        self.live_identity();
    }

    /// A one-packet answer (OK, ERR, EOF or a string), forwarded. Returns
    /// whether it was an OK.
    async fn simple_response(&mut self) -> Result<bool, SessionError> {
        let r = self.backend_packet().await?;
        self.forward(&r);
        let ok = r.payload.first() == Some(&resp::OK_HEADER);
        if ok {
            if let Ok(o) = parse_ok(&r.payload, self.caps) {
                self.server_status = o.status;
            }
        } else if is_terminator(&r.payload) {
            self.server_status = terminator_status(&r.payload, self.caps);
        }
        Ok(ok)
    }
}

impl Session {
    /// Relays the response to a COM_QUERY (`binary` None) or COM_STMT_EXECUTE
    /// (`binary` Some(prepared id, if known)): each result (OK, ERR, result
    /// set) completes the next statement, except a CALL's result sets,
    /// which its final OK completes.
    async fn relay_results(
        &mut self,
        stmts: &[Arc<Statement>],
        binary: Option<Option<u32>>,
        flow: Flow,
        started: Instant,
        bytes_in: u64,
        params: Option<String>,
    ) -> Result<(), SessionError> {
        self.in_flight = Some(InFlight {
            stmts: stmts.to_vec(),
            next: 0,
            flow,
            started,
        });
        let r = self
            .relay_response(stmts, binary, flow, started, bytes_in, params)
            .await;
        if r.is_ok() {
            self.in_flight = None;
        }
        r
    }

    /// The server's response to one command, relayed (see `relay_results`).
    #[allow(clippy::too_many_arguments)]
    async fn relay_response(
        &mut self,
        stmts: &[Arc<Statement>],
        binary: Option<Option<u32>>,
        flow: Flow,
        started: Instant,
        bytes_in: u64,
        params: Option<String>,
    ) -> Result<(), SessionError> {
        let mut params = params;
        let mut i = 0usize;
        let mut rows = 0u64;
        let deprecate_eof = self.caps & caps::CLIENT_DEPRECATE_EOF != 0;
        loop {
            let stmt = stmts.get(i).cloned();
            let stmt = stmt.as_deref();
            let bytes = if i == 0 { bytes_in } else { 0 };
            let r = self.backend_packet().await?;
            match r.payload.first() {
                Some(&resp::OK_HEADER) => {
                    let ok =
                        parse_ok(&r.payload, self.caps).map_err(SessionError::BackendProtocol)?;
                    let (st, affected) = (ok.status, ok.affected_rows);
                    let changes = if ok.session_state.is_empty() {
                        Vec::new()
                    } else {
                        resp::session_track(ok.session_state)
                    };
                    self.server_status = st;
                    self.forward(&r);
                    self.after_success(stmt, &changes);
                    let n = if rows > 0 { rows } else { affected };
                    self.emit(
                        stmt,
                        flow,
                        started,
                        Completion::ok(Some(n)),
                        bytes,
                        params.take(),
                    );
                    rows = 0;
                    i += 1;
                    if st & status::SERVER_STATUS_MORE_RESULTS_EXISTS == 0 {
                        break;
                    }
                }
                Some(&resp::ERR_HEADER) => {
                    self.response_failed(&r, stmts, i, flow, started, bytes, params.take());
                    break;
                }
                Some(&resp::LOCAL_INFILE_HEADER) => {
                    if let Some((c, more)) = self.local_infile(&r, stmt).await? {
                        self.emit(stmt, flow, started, c, bytes, params.take());
                        i += 1;
                        if !more {
                            break;
                        }
                    }
                }
                _ => {
                    let n = resp::parse_column_count(&r.payload)
                        .map_err(SessionError::BackendProtocol)?;
                    if n > MAX_COLUMNS {
                        return Err(SessionError::BackendProtocol(ProtocolError::Malformed {
                            message: "result set",
                            reason: "more columns than any server sends",
                        }));
                    }
                    self.forward(&r);
                    let names = Inspector::needs_names(stmt);
                    let mut cols = Columns::default();
                    for _ in 0..n {
                        let d = self.backend_packet().await?;
                        let c = myresults::parse_col(&d.payload, names)
                            .map_err(SessionError::BackendProtocol)?;
                        cols.push(c);
                        self.forward(&d);
                    }
                    if !deprecate_eof {
                        let e = self.backend_packet().await?;
                        self.server_status = terminator_status(&e.payload, self.caps);
                        self.forward(&e);
                    }
                    let cols = Arc::new(cols);
                    if let Some(Some(id)) = binary {
                        if let Some(ps) = self.prepared.get_mut(&id) {
                            ps.columns = Some(cols.clone());
                        }
                    }
                    let cursor = !deprecate_eof
                        && binary.is_some()
                        && self.server_status & status::SERVER_STATUS_CURSOR_EXISTS != 0;
                    if cursor {
                        // A cursor: the rows come with COM_STMT_FETCH.
                        self.emit(
                            stmt,
                            flow,
                            started,
                            Completion::ok(None),
                            bytes,
                            params.take(),
                        );
                        break;
                    }
                    myresults::begin(&mut self.inspector, stmt, &cols, binary.is_some());
                    let types = binary.map(|_| cols.types.as_slice());
                    loop {
                        let r = self.backend_packet().await?;
                        if r.payload.first() == Some(&resp::ERR_HEADER) {
                            self.response_failed(&r, stmts, i, flow, started, bytes, params.take());
                            return Ok(());
                        }
                        if is_terminator(&r.payload) {
                            self.server_status = terminator_status(&r.payload, self.caps);
                            self.end_rows(&r);
                            break;
                        }
                        rows += 1;
                        self.row(&r, types)?;
                        self.maybe_flush().await?;
                    }
                    self.inspector.end_result();
                    let more = self.server_status & status::SERVER_STATUS_MORE_RESULTS_EXISTS != 0;
                    let call = stmt.is_some_and(|s| s.facts.operation == Operation::Call);
                    if !call || !more {
                        self.after_success(stmt, &[]);
                        self.emit(
                            stmt,
                            flow,
                            started,
                            Completion::ok(Some(rows)),
                            bytes,
                            params.take(),
                        );
                        rows = 0;
                        i += 1;
                    }
                    if !more {
                        break;
                    }
                }
            }
            self.maybe_flush().await?;
        }
        Ok(())
    }

    /// The server's ERR `r` ended the response at statement `i` (before
    /// or amid its rows): forwarded, statement `i` recorded as failed (its
    /// partial result summarised by `emit`), the later ones as not run.
    #[allow(clippy::too_many_arguments)]
    fn response_failed(
        &mut self,
        r: &Packet,
        stmts: &[Arc<Statement>],
        i: usize,
        flow: Flow,
        started: Instant,
        bytes: u64,
        params: Option<String>,
    ) {
        self.forward(r);
        let c = self.err_completion(&r.payload);
        self.emit(stmts.get(i).map(|s| &**s), flow, started, c, bytes, params);
        for s in stmts.iter().skip(i + 1) {
            self.emit(
                Some(s),
                flow,
                started,
                Completion::aborted(NOT_EXECUTED),
                0,
                None,
            );
        }
    }

    /// One result row: inspected within the budget, forwarded, rewritten
    /// or withheld.
    fn row(&mut self, r: &Packet, binary_types: Option<&[u8]>) -> Result<(), SessionError> {
        if self.swallow {
            return Ok(());
        }
        let len = r.payload.len();
        if !self.inspector.wants_row(len)? {
            self.inspector.on_streamed_row(len);
            self.forward(r);
            return Ok(());
        }
        self.row_out.clear();
        let mut row_out = std::mem::take(&mut self.row_out);
        let action = match binary_types {
            None => self.inspector.on_row(&TextRows, &r.payload, &mut row_out),
            Some(t) => self
                .inspector
                .on_row(&BinaryRows(t), &r.payload, &mut row_out),
        };
        let action = match action {
            Ok(a) => a,
            Err(e) => {
                self.row_out = row_out;
                return Err(SessionError::Masking(e));
            }
        };
        match action {
            RowAction::Forward => self.forward(r),
            RowAction::Replaced => {
                let seq = r.seq.wrapping_sub(self.seq_shift);
                let before = self.out.len();
                let last = write_frame(&mut self.out, seq, &row_out);
                self.stmt_bytes_out += (self.out.len() - before) as u64;
                // A rewrite longer than a frame takes more sequence ids.
                let extra = last
                    .wrapping_sub(seq)
                    .wrapping_sub(r.frames.saturating_sub(1) as u8);
                self.seq_shift = self.seq_shift.wrapping_sub(extra);
            }
            RowAction::Drop => self.seq_shift = self.seq_shift.wrapping_add(r.frames as u8),
        }
        self.row_out = row_out;
        Ok(())
    }

    /// The end of a result set's rows: forwarded, or, when a limit cut the
    /// result, replaced by the refusal (the rest of the response is then
    /// read but not forwarded: for the client the ERR ends it).
    fn end_rows(&mut self, r: &Packet) {
        if self.swallow {
            return;
        }
        if let Some(l) = self.inspector.cut() {
            let msg = format!("danxia: {} (rule {})", l.message, l.rule_id);
            let seq = r.seq.wrapping_sub(self.seq_shift);
            let before = self.out.len();
            encode_err(&mut self.out, seq, self.deny_code, DENY_SQLSTATE, &msg);
            self.stmt_bytes_out += (self.out.len() - before) as u64;
            self.swallow = true;
            return;
        }
        self.forward(r);
    }

    /// The server asks for a local file (LOAD DATA LOCAL INFILE). Relayed
    /// only for a statement the policy allowed as exactly that; otherwise
    /// the server gets an empty file, the client an ERR, and the statement
    /// is recorded as refused: `Some((completion, more results follow))`.
    async fn local_infile(
        &mut self,
        r: &Packet,
        stmt: Option<&Statement>,
    ) -> Result<Option<(Completion, bool)>, SessionError> {
        let announced = stmt.is_some_and(|s| {
            s.facts.operation == Operation::CopyIn
                && !s.blocked()
                && s.facts.normalized.to_ascii_lowercase().contains("local")
        });
        if announced {
            self.forward(r);
            self.flush_client().await?;
            let max = self.ctx.limits.max_message_bytes as usize;
            let mut o = BytesMut::new();
            loop {
                let Some(c) = read_packet(&mut self.client, max, true).await? else {
                    return Err(SessionError::ClientGone);
                };
                self.ctx
                    .metrics
                    .client_in
                    .increment(c.payload.len() as u64 + 4);
                write_frame(&mut o, c.seq, &c.payload);
                send(
                    &mut self.backend.stream,
                    &mut o,
                    &self.ctx.metrics.backend_out,
                )
                .await
                .map_err(SessionError::BackendIo)?;
                if c.payload.is_empty() {
                    return Ok(None);
                }
            }
        }
        let mut o = BytesMut::new();
        write_frame(&mut o, r.seq.wrapping_add(1), &[]);
        send(
            &mut self.backend.stream,
            &mut o,
            &self.ctx.metrics.backend_out,
        )
        .await
        .map_err(SessionError::BackendIo)?;
        let answer = self.backend_packet().await?;
        let st = match answer.payload.first() {
            Some(&resp::OK_HEADER) => parse_ok(&answer.payload, self.caps)
                .map(|o| o.status)
                .unwrap_or(0),
            _ => 0,
        };
        self.server_status = st;
        let msg = "danxia: the server asked for a client file that this statement did not announce as LOAD DATA LOCAL INFILE; refused";
        if !self.swallow {
            let seq = r.seq.wrapping_sub(self.seq_shift);
            encode_err(&mut self.out, seq, self.deny_code, DENY_SQLSTATE, msg);
            self.swallow = true;
        }
        warn!(session = %self.ident.session, "unannounced LOCAL INFILE request refused");
        let c = Completion {
            outcome: Outcome::Refused,
            rows: None,
            error: Some((self.deny_code, DENY_SQLSTATE.into(), msg.into())),
            detail: Some("unannounced LOCAL INFILE request"),
        };
        Ok(Some((
            c,
            st & status::SERVER_STATUS_MORE_RESULTS_EXISTS != 0,
        )))
    }

    /// What a statement that succeeded changes in the session: the
    /// database (`USE`), the character set (`SET NAMES` …), ANSI_QUOTES,
    /// and whatever the server's session tracking reports.
    fn after_success(&mut self, stmt: Option<&Statement>, changes: &[SessionChange]) {
        if let Some(s) = stmt {
            if s.facts.operation == Operation::Set {
                let t = s.text.trim();
                if t.len() > 4 && t[..4].eq_ignore_ascii_case("use ") {
                    let db = t[4..].trim().trim_end_matches(';').trim();
                    let db = db
                        .strip_prefix('`')
                        .and_then(|d| d.strip_suffix('`'))
                        .map(|d| d.replace("``", "`"))
                        .unwrap_or_else(|| db.to_string());
                    self.set_database(&db);
                } else if charset::changes_lexing(&s.facts.normalized) {
                    if let Some(name) = charset::charset_set_by(&s.text) {
                        self.decoding = if name == "default" {
                            self.handshake_decoding
                        } else {
                            charset::decoding_for(&name)
                        };
                    }
                    if let Some(a) = charset::ansi_quotes_set_by(&s.text) {
                        self.ansi_quotes = a;
                    }
                }
            }
        }
        for c in changes {
            match c {
                SessionChange::SystemVariable { name, value } => match name.as_str() {
                    "character_set_client" => self.decoding = charset::decoding_for(value),
                    "sql_mode" => {
                        let v = value.to_ascii_uppercase();
                        self.ansi_quotes = v.split(',').any(|m| m == "ANSI_QUOTES" || m == "ANSI");
                    }
                    _ => {}
                },
                SessionChange::Schema(db) => {
                    if self.ident.database.as_deref() != Some(db.as_str()) {
                        self.set_database(db);
                    }
                }
                SessionChange::Other(_) => {}
            }
        }
    }

    fn err_completion(&self, payload: &[u8]) -> Completion {
        let (code, state, msg) = err_fields(payload);
        Completion {
            outcome: Outcome::Error,
            rows: None,
            error: Some((code, state, msg)),
            detail: None,
        }
    }

    /// Records one statement's event (and its alert).
    fn emit(
        &mut self,
        stmt: Option<&Statement>,
        flow: Flow,
        started: Instant,
        c: Completion,
        bytes_in: u64,
        params: Option<String>,
    ) {
        let mut c = c;
        if let Some(f) = self.in_flight.as_mut() {
            f.next += 1;
        }
        let mut ev = self.ident.event(EventKind::Statement);
        ev.protocol_flow = Some(flow.as_str());
        let op = match stmt {
            Some(s) => {
                describe_statement(&mut ev, s, self.text_mode);
                s.facts.operation
            }
            None => {
                ev.operation = Some(Operation::Unknown.as_str());
                ev.detail = Some("statement not tracked (unknown prepared statement)".into());
                Operation::Unknown
            }
        };
        let summary = self.inspector.finish();
        if !summary.is_empty() {
            if let Some(l) = add_summary(&mut ev, &summary, &self.ctx.metrics) {
                c.outcome = Outcome::Refused;
                c.error = Some((
                    self.deny_code,
                    DENY_SQLSTATE.into(),
                    format!("danxia: {} (rule {})", l.message, l.rule_id),
                ));
                c.detail = Some(RESULT_CUT);
            }
        }
        let elapsed = started.elapsed();
        ev.rows = c.rows;
        ev.bytes_out = Some(std::mem::take(&mut self.stmt_bytes_out));
        ev.bytes_in = Some(bytes_in);
        ev.duration_us = Some(elapsed.as_micros() as u64);
        ev.outcome = Some(c.outcome);
        if let Some((code, state, msg)) = c.error {
            ev.error_code = Some(code);
            ev.sqlstate = Some(state);
            ev.error = Some(msg);
        }
        if let Some(d) = c.detail {
            ev.detail = Some(d.to_string());
        }
        // Behaviour baselines count distinct bound values per shape.
        let values = params.as_deref().map(|p| {
            let mut d = danxia_detectors::ValueDigest::default();
            d.push(p.as_bytes());
            d
        });
        ev.params = params;
        let m = &self.ctx.metrics;
        m.statement(op, c.outcome);
        if let Some(l) = &self.live {
            l.statement_done();
        }
        if c.outcome != Outcome::Aborted {
            m.statement_duration.record(elapsed.as_secs_f64());
        }
        if let Some(b) = self.enforcer.behaviour() {
            b.after(
                stmt,
                &mut ev,
                Some(&summary),
                values.and_then(|d| d.finish()),
            );
        }
        let alert =
            (!ev.alerts.is_empty()).then(|| crate::alerting::raise(&self.ctx, &self.ident, &ev));
        self.events.push(ev);
        self.events.extend(alert);
    }

    /// Forwards a client command to the server as it came.
    async fn forward_command(&mut self, p: &Packet) -> Result<(), SessionError> {
        if let Some(d) = self.enforcer.throttle_delay() {
            // A throttled identity: hold its command.
            tokio::time::sleep(d).await;
        }
        let mut o = BytesMut::with_capacity(p.payload.len() + 4);
        write_frame(&mut o, p.seq, &p.payload);
        send(
            &mut self.backend.stream,
            &mut o,
            &self.ctx.metrics.backend_out,
        )
        .await
        .map_err(SessionError::BackendIo)?;
        self.ctx
            .metrics
            .proxy_added
            .record(self.command_read_at.elapsed().as_secs_f64());
        Ok(())
    }

    /// Queues a server packet for the client (its sequence id shifted past
    /// any withheld packets), unless the response is being swallowed.
    fn forward(&mut self, p: &Packet) {
        if self.swallow {
            return;
        }
        let before = self.out.len();
        write_frame(
            &mut self.out,
            p.seq.wrapping_sub(self.seq_shift),
            &p.payload,
        );
        self.reply_seq = p.last_seq().wrapping_sub(self.seq_shift).wrapping_add(1);
        self.stmt_bytes_out += (self.out.len() - before) as u64;
    }

    /// The next server packet; what is queued for the client is written
    /// first whenever the server has nothing more buffered, so rows stream.
    async fn backend_packet(&mut self) -> Result<Packet, SessionError> {
        let max = self.ctx.limits.max_message_bytes as usize;
        loop {
            match take_packet(&mut self.backend.buf, max) {
                Ok(Some(p)) => {
                    self.ctx
                        .metrics
                        .backend_in
                        .increment(p.payload.len() as u64 + 4);
                    return Ok(p);
                }
                Ok(None) => {}
                Err(e) => return Err(SessionError::BackendProtocol(e)),
            }
            self.flush_client().await?;
            let watch = self.client.buf.len() < MAX_CLIENT_READAHEAD;
            let n = tokio::select! {
                n = self.backend.fill() => n.map_err(SessionError::BackendIo)?,
                c = self.client.fill(), if watch => {
                    match c {
                        // The client vanished under a running statement.
                        Ok(0) => return Err(SessionError::ClientGone),
                        Ok(_) => continue, // its next command, kept for later
                        Err(e) => return Err(SessionError::ClientIo(e)),
                    }
                }
            };
            if n == 0 {
                return Err(SessionError::BackendIo(eof()));
            }
            self.backend_read_at.get_or_insert_with(Instant::now);
        }
    }

    async fn maybe_flush(&mut self) -> Result<(), SessionError> {
        if self.out.len() >= FLUSH_AT {
            self.flush_client().await?;
        }
        Ok(())
    }

    /// Sends what is buffered for the client, after handing the events
    /// collected so far to the audit writer: a statement's final OK/EOF/ERR
    /// is never delivered before its event is queued (and, with
    /// `audit.fsync = "every"`, on disk).
    async fn flush_client(&mut self) -> Result<(), SessionError> {
        self.flush_events().await;
        let wrote = !self.out.is_empty();
        send(
            &mut self.client.stream,
            &mut self.out,
            &self.ctx.metrics.client_out,
        )
        .await
        .map_err(SessionError::ClientIo)?;
        if wrote {
            if let Some(t) = self.backend_read_at.take() {
                self.ctx
                    .metrics
                    .proxy_added
                    .record(t.elapsed().as_secs_f64());
            }
        }
        if self.out.capacity() > MAX_RETAINED_BUFFER {
            self.out = BytesMut::new();
        }
        Ok(())
    }

    async fn flush_events(&mut self) {
        for ev in self.events.drain(..) {
            // The writer counts and logs its own failures.
            let _ = self.ctx.auditor.record(ev).await;
        }
    }

    /// The clean end: the client told why where it can be, the server told
    /// goodbye, the session's end audited.
    async fn end(&mut self, end: End) {
        let ctx = self.ctx.clone();
        let mut farewell = BytesMut::new();
        let (outcome, reason) = match &end {
            End::Quit => (Outcome::Ok, "client quit".to_string()),
            End::ClientClosed => (Outcome::Ok, "client closed the connection".to_string()),
            End::Shutdown => (Outcome::Ok, "danxia shutdown".to_string()),
            End::Killed => {
                info!(session = %self.ident.session, client = %self.ident.client, "session killed through the admin API");
                encode_err(
                    &mut farewell,
                    self.last_seq_hint(),
                    CONNECTION_KILLED,
                    "70100",
                    "Connection was killed by the danxia administrator",
                );
                (
                    Outcome::Aborted,
                    "killed by the danxia administrator".to_string(),
                )
            }
            End::Error(e @ (SessionError::BackendIo(_) | SessionError::BackendProtocol(_))) => {
                // The server went away under the session (terminated,
                // restarted, crashed, network cut): say so in the response
                // the client is reading, never leave it a result that looks
                // complete or a bare close.
                ctx.metrics.backend_lost.increment(1);
                if let Some(kind) = e.protocol_kind() {
                    ctx.metrics.protocol_error(kind);
                }
                warn!(session = %self.ident.session, error = %e, "session ended: backend connection lost");
                encode_err(
                    &mut farewell,
                    self.last_seq_hint(),
                    PROXY_ERROR,
                    "08S01",
                    &format!("danxia: lost the connection to the database server ({e})"),
                );
                (Outcome::Aborted, e.to_string())
            }
            End::Error(e) => {
                if let SessionError::Masking(_) = e {
                    ctx.metrics.protocol_error("masking");
                    warn!(session = %self.ident.session, error = %e, "session ended: a result could not be masked");
                    encode_err(
                        &mut farewell,
                        self.last_seq_hint(),
                        PROXY_ERROR,
                        "HY000",
                        &format!(
                            "danxia: {e}; the session is closed rather than return it unmasked"
                        ),
                    );
                } else if let Some(kind) = e.protocol_kind() {
                    ctx.metrics.protocol_error(kind);
                    let mut ev = self.ident.event(EventKind::ProtocolError);
                    ev.outcome = Some(Outcome::Refused);
                    ev.error = Some(e.to_string());
                    self.events.push(ev);
                    info!(session = %self.ident.session, error = %e, "session ended: protocol error");
                } else {
                    debug!(session = %self.ident.session, error = %e, "session ended");
                }
                (Outcome::Aborted, e.to_string())
            }
        };
        if !farewell.is_empty() {
            let _ = tokio::time::timeout(FAREWELL_TIMEOUT, self.client.stream.write_all(&farewell))
                .await;
        }
        let orphaned = self.in_flight.is_some() && orphan_reason(&end).is_some();
        if let Some(f) = self.in_flight.take() {
            self.abort_in_flight(f, &end);
        }
        // Not after a kill, nor under a statement still running: the server
        // takes a connection with unread bytes (a COM_QUIT it has not read
        // yet) for a live one and would let the statement run on, while a
        // closed socket stops it (MariaDB checks the connection of a
        // waiting statement, SLEEP or a lock wait, every 5 s, and fails
        // the next write of a result; see docs/mysql.md).
        if let (true, Some(reason)) = (orphaned, orphan_reason(&end)) {
            ctx.metrics.orphaned_query(reason);
        }
        if !matches!(end, End::Quit | End::Killed) && !orphaned {
            let mut q = BytesMut::new();
            write_frame(&mut q, 0, &[cmd::COM_QUIT]);
            let _ = tokio::time::timeout(FAREWELL_TIMEOUT, self.backend.stream.write_all(&q)).await;
        }
        let _ = self.client.stream.shutdown().await;
        let _ = self.backend.stream.shutdown().await;
        let mut ev = self.ident.event(EventKind::SessionEnd);
        ev.outcome = Some(outcome);
        ev.duration_us = Some(self.started.elapsed().as_micros() as u64);
        ev.detail = Some(reason);
        self.events.push(ev);
        self.flush_events().await;
    }

    /// A sequence id for an unsolicited ERR: one past the last packet of
    /// the response being sent (clients read it as the response's end), or
    /// 1 between commands (the answer to the client's next one).
    fn last_seq_hint(&self) -> u8 {
        self.reply_seq
    }

    /// Audits the statements of the command the session ended under as
    /// aborted, saying why.
    fn abort_in_flight(&mut self, f: InFlight, end: &End) {
        let detail = match end {
            End::Killed => "session killed by the danxia administrator while the statement ran",
            End::Error(SessionError::ClientGone | SessionError::ClientIo(_)) => {
                "client closed the connection before the result"
            }
            End::Error(SessionError::BackendIo(_) | SessionError::BackendProtocol(_)) => {
                "lost the connection to the database server during the statement"
            }
            End::Shutdown => "danxia shutdown",
            _ => "session ended during the statement",
        };
        let first = f.next.min(f.stmts.len());
        if f.stmts.is_empty() && f.next == 0 {
            self.emit(
                None,
                f.flow,
                f.started,
                Completion::aborted(detail),
                0,
                None,
            );
        }
        for s in &f.stmts[first..] {
            self.emit(
                Some(&**s),
                f.flow,
                f.started,
                Completion::aborted(detail),
                0,
                None,
            );
        }
    }
}

/// The `reason` label of `danxia_orphaned_queries_total` when the session
/// ends with a statement running: `None` when the server is gone with it.
fn orphan_reason(end: &End) -> Option<&'static str> {
    match end {
        End::Killed => Some("killed"),
        End::Error(SessionError::ClientGone | SessionError::ClientIo(_)) | End::ClientClosed => {
            Some("client_gone")
        }
        End::Error(SessionError::BackendIo(_) | SessionError::BackendProtocol(_)) => None,
        End::Quit => None,
        End::Shutdown | End::Error(_) => Some("error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use danxia_protocols::mysql::handshake::HandshakeResponse;

    #[test]
    fn orphaned_statements_are_counted_unless_the_server_is_gone() {
        assert_eq!(orphan_reason(&End::Killed), Some("killed"));
        assert_eq!(
            orphan_reason(&End::Error(SessionError::ClientGone)),
            Some("client_gone")
        );
        assert_eq!(
            orphan_reason(&End::Error(SessionError::BackendIo(eof()))),
            None,
            "nothing left to stop on a server that is gone"
        );
        assert_eq!(orphan_reason(&End::Quit), None);
    }

    #[test]
    fn cleartext_guard_only_when_tls_would_be_lost_on_a_network() {
        // (client TLS, backend TLS, backend loopback) -> guard
        assert!(cleartext_guard(true, false, false));
        assert!(!cleartext_guard(true, true, false));
        assert!(!cleartext_guard(true, false, true));
        assert!(
            !cleartext_guard(false, false, false),
            "the client chose plaintext"
        );
    }

    #[test]
    fn cleartext_requests_are_recognised() {
        assert!(
            cleartext_request(&[0x01, 0x04]).is_some(),
            "full authentication"
        );
        assert!(
            cleartext_request(&[0x01, 0x03]).is_none(),
            "fast auth succeeded"
        );
        assert!(cleartext_request(b"\x01-----BEGIN PUBLIC KEY").is_none());
        assert!(cleartext_request(b"\xfemysql_clear_password\0").is_some());
        assert!(cleartext_request(b"\xfesha256_password\0scramble-20-bytes...\0").is_some());
        assert!(cleartext_request(b"\xfemysql_native_password\0scramble\0").is_none());
        assert!(cleartext_request(b"\xfeclient_ed25519\0scramble").is_none());
        assert!(cleartext_request(&[0xFE]).is_none(), "old-password switch");
        assert!(cleartext_request(&[0x00, 0, 0]).is_none(), "OK");

        let resp = |plugin: &[u8], auth: &[u8]| HandshakeResponse {
            auth_plugin: Some(plugin.to_vec()),
            auth_response: auth.to_vec(),
            ..HandshakeResponse::default()
        };
        assert!(cleartext_in_response(&resp(b"mysql_clear_password", b"secret\0")).is_some());
        assert!(cleartext_in_response(&resp(b"sha256_password", b"secret\0")).is_some());
        assert!(cleartext_in_response(&resp(b"sha256_password", b"")).is_none());
        assert!(cleartext_in_response(&resp(b"caching_sha2_password", b"x")).is_none());
        assert!(cleartext_in_response(&HandshakeResponse::default()).is_none());
    }
}
