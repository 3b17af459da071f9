//! Hostile clients on every listener — `pg`, `mysql`, `http`, `https` and
//! the admin endpoint — from raw sockets, so nothing depends on the codec
//! under test: slow clients (slowloris), a flood of 10,000 connections
//! against `max_connections`, a process out of file descriptors, oversized
//! headers, invalid UTF-8, wrong protocol versions and random garbage.
//!
//! Every test asserts the client-visible answer, the metric, the audit
//! record where danxia writes one, that danxia's memory stayed bounded
//! (`VmHWM`), and that a normal client of every listener is served
//! afterwards. Figures are printed (`--no-capture`) and recorded in
//! docs/hardening-hostile.md.
//!
//! The MySQL listener opens its backend connection before it greets the
//! client, so slow or flooding MySQL clients would hold connections to the
//! shared MariaDB (151 at most). They go to a second MySQL listener,
//! `mysqlx`, whose "backend" is a [`GreetingServer`] replaying MariaDB's
//! real greeting; the normal MySQL client uses the real `mysql` listener.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use danxia_e2e::tls::TestPki;
use danxia_e2e::wire::{self, RawSession};
use danxia_e2e::*;

const WAIT: Duration = Duration::from_secs(20);
const USER: &str = "postgres";
const DB: &str = "test";
/// `limits.startup_timeout` and `[listener.http] header_timeout` in these
/// tests.
const SLOW_TIMEOUT: Duration = Duration::from_secs(2);
/// How much later than its timeout a slow client may be closed: the
/// machine has 2 cores shared with other test runs.
const CLOSE_MARGIN: Duration = Duration::from_secs(5);
/// danxia's peak resident set (`VmHWM`) must stay under this in every
/// test here (it idles at ~20 MiB).
const MAX_PEAK_RSS_KIB: u64 = 256 * 1024;
/// The admin listener's header timeout (a constant in proxy/src/admin.rs).
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A fake MySQL server that sends every connection MariaDB's own greeting
/// (captured once from 127.0.0.1:3306) and then holds it open without
/// reading: enough for clients that never finish their handshake.
struct GreetingServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl GreetingServer {
    fn start() -> GreetingServer {
        let mut real = TcpStream::connect(("127.0.0.1", MYSQL_DIRECT_PORT)).expect("MariaDB");
        real.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut h = [0u8; 4];
        real.read_exact(&mut h).expect("greeting header");
        let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
        let mut greeting = h.to_vec();
        greeting.resize(4 + len, 0);
        real.read_exact(&mut greeting[4..]).expect("greeting");
        drop(real);
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        l.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(&greeting);
                        held.push(s);
                        // Forget the ones danxia has closed.
                        if held.len() % 256 == 0 {
                            held.retain(|s: &TcpStream| {
                                let _ = s.set_nonblocking(true);
                                let mut b = [0u8; 64];
                                !matches!((&*s).read(&mut b), Ok(0))
                            });
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        GreetingServer { port, stop }
    }
}

impl Drop for GreetingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// danxia with every kind of listener: `pg`, `mysql` (real MariaDB),
/// `mysqlx` (the greeting server), `api` (HTTP) and `apis` (HTTPS), both in
/// front of the synthetic citizens API, plus the admin endpoint.
struct World {
    d: Danxia,
    http_port: u16,
    https_port: u16,
    mysqlx_port: u16,
    key: String,
    ca: PathBuf,
    _up: Upstream,
    _greeter: GreetingServer,
    _tmp: tempfile::TempDir,
}

/// `limits` are extra `[limits]` keys (after `startup_timeout` =
/// [`SLOW_TIMEOUT`]); `header_timeout` is both HTTP listeners'.
fn world(limits: &[(&str, &str)], header_timeout: Duration) -> World {
    require_postgres();
    require_mariadb();
    let tmp = tempfile::Builder::new()
        .prefix("danxia-hostile-")
        .tempdir()
        .expect("tempdir");
    let up = Upstream::start(29);
    let greeter = GreetingServer::start();
    let pki = TestPki::new(&tmp.path().join("pki"), "hostile");
    let server = pki.server("server", "danxia-api");
    let keys_file = tmp.path().join("keys.toml");
    let key = api_key_add(&keys_file, "dept-health").0;
    let (http_port, https_port, mysqlx_port) = (free_port(), free_port(), free_port());
    let policy = toml_str(
        &workspace_root()
            .join("policies/packs/api-example")
            .display()
            .to_string(),
    );
    let keys = toml_str(&keys_file.display().to_string());
    let timeout = format!("{}s", header_timeout.as_secs());
    let http = |name: &str, port: u16, tls: &str| {
        format!(
            "[[listener]]\nname = \"{name}\"\nprotocol = \"http\"\nlisten = \"127.0.0.1:{port}\"\n\
             api_policy = {policy}\n\
             [[listener.upstream]]\nprefix = \"/api/\"\nurl = \"{up}\"\n\
             [listener.auth]\napi_key_header = \"x-api-key\"\nkeys_file = {keys}\n\
             [listener.http]\nheader_timeout = \"{timeout}\"\n{tls}\n",
            up = up.url(),
        )
    };
    let extra_toml = format!(
        "[[listener]]\nname = \"mysqlx\"\nprotocol = \"mysql\"\nlisten = \"127.0.0.1:{mysqlx_port}\"\n\
         backend = \"127.0.0.1:{gp}\"\n\n{}\n{}\n[api]\nstore = \"memory\"\ntimezone = \"{tz}\"\n",
        http("api", http_port, ""),
        http(
            "apis",
            https_port,
            &format!("[listener.tls]\n{}", pki.listener_tls(&server, ""))
        ),
        gp = greeter.port,
        tz = daytime_zone(),
    );
    let mut all: Vec<(String, String)> = vec![(
        "startup_timeout".into(),
        format!("\"{}s\"", SLOW_TIMEOUT.as_secs()),
    )];
    all.extend(limits.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let d = Danxia::start_with(Options {
        mysql: true,
        limits: all,
        extra_toml,
        ..Options::default()
    });
    let w = World {
        d,
        http_port,
        https_port,
        mysqlx_port,
        key,
        ca: pki.ca_cert.clone(),
        _up: up,
        _greeter: greeter,
        _tmp: tmp,
    };
    let deadline = Instant::now() + WAIT;
    for port in [http_port, https_port, mysqlx_port] {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "listener on {port} never bound");
            thread::sleep(Duration::from_millis(50));
        }
    }
    w
}

impl World {
    /// A normal client of every listener is served; returns how long the
    /// five took together.
    fn serves_everyone(&self, when: &str) -> Duration {
        let t = Instant::now();
        let mut s = RawSession::connect(self.d.pg_port, USER, DB)
            .unwrap_or_else(|e| panic!("{when}: pg session: {e}\n{}", self.d.stderr()));
        let msgs = s.simple_query("select 41 + 1").expect("pg query");
        assert_eq!(msgs[1].data_row(), vec![Some("42".to_string())], "{when}");
        s.terminate();
        let out = run_ok(
            self.d
                .mariadb("root", None, "test")
                .arg("-e")
                .arg("select 41 + 1"),
        );
        assert!(out.contains("42"), "{when}: mysql: {out}");
        let h = format!("x-api-key: {}", self.key);
        let out = curl(&["-H", &h, &self.url("/api/v1/persons/1")]);
        assert_eq!(out.status, 200, "{when}: http: {}", out.stderr);
        let ca = self.ca.display().to_string();
        let url = format!("https://localhost:{}/api/v1/persons/1", self.https_port);
        let out = curl(&["--cacert", &ca, "-H", &h, &url]);
        assert_eq!(out.status, 200, "{when}: https: {}", out.stderr);
        assert_eq!(self.d.http_get("/readyz").0, 200, "{when}: admin");
        self.alive(when);
        t.elapsed()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// danxia is running, never panicked, and its peak RSS is bounded.
    fn alive(&self, when: &str) {
        let pid = self.d.pid();
        assert!(
            fd_count(pid).is_some(),
            "{when}: danxia is gone\n{}",
            self.d.stderr()
        );
        let log = self.d.stderr();
        assert!(!log.contains("panicked"), "{when}: danxia panicked:\n{log}");
        let peak = peak_rss_kib(pid).unwrap_or(0);
        assert!(
            peak < MAX_PEAK_RSS_KIB,
            "{when}: peak RSS {peak} KiB ≥ {MAX_PEAK_RSS_KIB} KiB"
        );
    }

    fn metric0(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.d.metric_opt(name, labels).unwrap_or(0.0)
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Sends `bytes` one per second; returns how long until danxia closed the
/// connection (`None`: still open after `give_up`) and what it sent.
fn dribble(port: u16, bytes: &[u8], give_up: Duration) -> (Option<Duration>, Vec<u8>) {
    let mut s = connect(port);
    let t = Instant::now();
    let mut got = Vec::new();
    let mut next = 0;
    let mut buf = [0u8; 4096];
    while t.elapsed() < give_up {
        if next < bytes.len() {
            if s.write_all(&bytes[next..next + 1]).is_err() {
                return (Some(t.elapsed()), got);
            }
            next += 1;
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (Some(t.elapsed()), got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    break
                }
                Err(_) => return (Some(t.elapsed()), got),
            }
        }
    }
    (None, got)
}

/// Asserts a slow client was closed within `timeout` + margin, not before.
fn assert_cut(what: &str, took: Option<Duration>, timeout: Duration) -> Duration {
    let took = took.unwrap_or_else(|| panic!("{what}: never closed"));
    assert!(
        took + Duration::from_millis(600) >= timeout,
        "{what}: closed too early ({took:?})"
    );
    assert!(
        took <= timeout + CLOSE_MARGIN,
        "{what}: closed after {took:?}, timeout {timeout:?}"
    );
    took
}

/// Case 1: Slowloris: one byte per second on each listener's handshake or
/// headers. Expected: each is closed within its timeout (+ margin), PG and
/// MySQL with a FATAL / ERR naming the timeout and a `protocol_error` audit
/// record, every one counted; 500 slow clients at once do not stop a
/// normal client of every listener from being served promptly.
#[test]
fn slowloris_on_every_listener_is_cut_after_its_timeout() {
    let w = world(&[], SLOW_TIMEOUT);
    let startup = wire::startup(USER, DB, &[("application_name", "slowloris")]);
    let mut handshake = vec![0x40, 0x00, 0x00, 0x01];
    handshake.extend_from_slice(&[0x85; 64]);
    let http_head =
        b"GET /api/v1/persons/1 HTTP/1.1\r\nHost: x\r\nx-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let admin_head = b"GET /readyz HTTP/1.1\r\nHost: x\r\nx-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let give_up = ADMIN_HEADER_TIMEOUT + CLOSE_MARGIN + Duration::from_secs(2);
    let cases: Vec<(&str, u16, Vec<u8>, Duration)> = vec![
        ("pg startup", w.d.pg_port, startup, SLOW_TIMEOUT),
        ("mysql handshake", w.mysqlx_port, handshake, SLOW_TIMEOUT),
        (
            "http headers",
            w.http_port,
            http_head.to_vec(),
            SLOW_TIMEOUT,
        ),
        (
            "https: no ClientHello",
            w.https_port,
            Vec::new(),
            SLOW_TIMEOUT,
        ),
        (
            "admin headers",
            w.d.admin_port,
            admin_head.to_vec(),
            ADMIN_HEADER_TIMEOUT,
        ),
    ];
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(what, port, bytes, timeout)| {
            thread::spawn(move || {
                let (took, got) = dribble(port, &bytes, give_up);
                (what, took, got, timeout)
            })
        })
        .collect();
    for h in handles {
        let (what, took, got, timeout) = h.join().expect("dribbler");
        let took = assert_cut(what, took, timeout);
        println!("slowloris {what}: closed after {took:?} (timeout {timeout:?})");
        let text = String::from_utf8_lossy(&got);
        match what {
            "pg startup" => {
                let m = wire::read_msg(&mut &got[..]).expect("a FATAL before the close");
                assert_eq!(m.sqlstate().as_deref(), Some("08P01"), "{text}");
                assert!(text.contains("startup not completed"), "{text}");
            }
            "mysql handshake" => {
                assert!(
                    text.contains("handshake not completed"),
                    "an ERR naming the timeout after the greeting: {text}"
                )
            }
            _ => {}
        }
    }
    for listener in ["pg", "mysqlx"] {
        assert_eq!(
            w.metric0(
                "danxia_protocol_errors_total",
                &[("listener", listener), ("kind", "startup_timeout")]
            ),
            1.0,
            "{listener}"
        );
        w.d.wait_audit(WAIT, |e| {
            e["kind"] == "protocol_error"
                && e["listener"] == listener
                && e["outcome"] == "refused"
                && e["error"].as_str().is_some_and(|s| s.contains("within"))
        });
    }
    assert_eq!(
        w.metric0(
            "danxia_protocol_errors_total",
            &[("listener", "api"), ("kind", "header_timeout")]
        ),
        1.0
    );
    assert_eq!(
        w.metric0(
            "danxia_tls_handshakes_total",
            &[("listener", "apis"), ("result", "timeout")]
        ),
        1.0
    );
    assert_eq!(w.metric0("danxia_admin_header_timeouts_total", &[]), 1.0);

    // 500 slow clients at once (they stop after a partial handshake or
    // header), then a normal client of every listener.
    let opened = Instant::now();
    let mut slow: Vec<TcpStream> = Vec::new();
    for i in 0..500 {
        let (port, bytes): (u16, &[u8]) = match i % 4 {
            0 => (w.d.pg_port, &[0u8, 0, 0][..]),
            1 => (w.mysqlx_port, &[0x40u8, 0, 0][..]),
            2 => (w.http_port, &b"GET / HTTP/1.1\r\nHo"[..]),
            _ => (w.https_port, &[0x16u8, 0x03][..]),
        };
        let mut s = connect(port);
        s.write_all(bytes).expect("partial");
        slow.push(s);
    }
    let served = w.serves_everyone("with 500 slow clients");
    println!("500 slow clients open: every listener served in {served:?}");
    assert!(
        served < Duration::from_secs(10),
        "a normal client of every listener took {served:?}"
    );
    for (i, s) in slow.iter_mut().enumerate() {
        let left = (SLOW_TIMEOUT + CLOSE_MARGIN + Duration::from_secs(3))
            .saturating_sub(opened.elapsed())
            .max(Duration::from_millis(100));
        assert!(wire::wait_closed(s, left), "slow client {i} still open");
    }
    println!(
        "500 slow clients: all closed {:?} after opening",
        opened.elapsed()
    );
    for (listener, kind, n) in [
        ("pg", "startup_timeout", 126.0),
        ("mysqlx", "startup_timeout", 126.0),
        ("api", "header_timeout", 126.0),
    ] {
        w.d.wait_metric(
            WAIT,
            "danxia_protocol_errors_total",
            &[("listener", listener), ("kind", kind)],
            |v| v == n,
        );
    }
    w.d.wait_metric(
        WAIT,
        "danxia_tls_handshakes_total",
        &[("listener", "apis"), ("result", "timeout")],
        |v| v == 126.0,
    );
    w.d.wait_audit_count(WAIT, 252, |e| {
        e["kind"] == "protocol_error" && e["error"].as_str().is_some_and(|s| s.contains("within"))
    });
    println!(
        "slowloris: peak RSS {} KiB",
        peak_rss_kib(w.d.pid()).unwrap_or(0)
    );
    w.serves_everyone("after the slow clients");
}

/// Recognises what a refused client read before the close.
type Refusal = dyn Fn(&[u8]) -> bool;

/// What one listener answered a flood of connections.
struct Flood {
    opened: usize,
    connect_errors: usize,
    refused_clearly: usize,
    took: Duration,
    peak_fds: usize,
    cpu_ticks: u64,
}

/// Opens `n` connections to `port` as fast as possible and keeps them;
/// waits until danxia has counted every one over `limit` as refused and
/// checks what each refused client read (`refusal` recognises it).
fn flood(
    w: &World,
    listener: &str,
    port: u16,
    n: usize,
    limit: usize,
    refusal: impl Fn(&[u8]) -> bool,
) -> Flood {
    let pid = w.d.pid();
    let cpu0 = cpu_ticks(pid).unwrap_or(0);
    let before = w.metric0(
        "danxia_connections_rejected_total",
        &[("listener", listener), ("reason", "max_connections")],
    );
    let t = Instant::now();
    let mut socks = Vec::with_capacity(n);
    let mut connect_errors = 0;
    let mut peak_fds = 0;
    for i in 0..n {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => socks.push(s),
            Err(_) => connect_errors += 1,
        }
        if i % 500 == 0 {
            peak_fds = peak_fds.max(fd_count(pid).unwrap_or(0));
        }
    }
    let opened = socks.len();
    let over = (opened.saturating_sub(limit)) as f64;
    w.d.wait_metric(
        Duration::from_secs(60),
        "danxia_connections_rejected_total",
        &[("listener", listener), ("reason", "max_connections")],
        |v| v - before >= over,
    );
    let took = t.elapsed();
    // The refusals are written and their sockets closed: danxia holds the
    // admitted connections (and, for MySQL, their backends) and little else.
    let bound = 2 * limit + 64;
    let deadline = Instant::now() + WAIT;
    loop {
        let fds = fd_count(pid).unwrap_or(0);
        peak_fds = peak_fds.max(fds);
        if fds <= bound {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{listener}: danxia holds {fds} descriptors, more than {bound}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let cpu = cpu_ticks(pid).unwrap_or(0) - cpu0;
    let rejected = w.metric0(
        "danxia_connections_rejected_total",
        &[("listener", listener), ("reason", "max_connections")],
    ) - before;
    assert_eq!(
        rejected, over,
        "{listener}: every connection over the limit"
    );
    let mut refused_clearly = 0;
    let mut buf = vec![0u8; 4096];
    for s in &mut socks {
        s.set_read_timeout(Some(Duration::from_millis(1)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut eof = false;
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    eof = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if eof && refusal(&got) {
            refused_clearly += 1;
        }
    }
    drop(socks);
    w.d.wait_metric(
        Duration::from_secs(60),
        "danxia_connections_active",
        &[("listener", listener)],
        |v| v == 0.0,
    );
    Flood {
        opened,
        connect_errors,
        refused_clearly,
        took,
        peak_fds,
        cpu_ticks: cpu,
    }
}

/// Case 2: 10,000 connections, kept open, on the pg, mysql and http listeners
/// with `max_connections = 200`. Expected: 200 are admitted and every other
/// one is refused at once and clearly — PG FATAL 53300, MySQL ERR 1040, HTTP
/// closed (hyper has no refusal message; an HTTP client sees a reset) —
/// counted exactly in `danxia_connections_rejected_total{reason=
/// "max_connections"}`; danxia's descriptors stay ≤ 2 × 200 + 64; after
/// they are closed, a normal client of every listener is served.
#[test]
fn ten_thousand_connections_meet_max_connections() {
    const N: usize = 10_000;
    const LIMIT: usize = 200;
    // The admitted ones must stay open while the test counts.
    let w = world(
        &[("max_connections", "200"), ("startup_timeout", "\"60s\"")],
        Duration::from_secs(60),
    );
    let pg_refusal = |b: &[u8]| {
        wire::read_msg(&mut &b[..]).is_ok_and(|m| m.sqlstate().as_deref() == Some("53300"))
    };
    let mysql_refusal =
        |b: &[u8]| b.len() > 7 && b[4] == 0xff && u16::from_le_bytes([b[5], b[6]]) == 1040;
    let http_refusal = |b: &[u8]| b.is_empty();
    let cases: [(&str, u16, &Refusal); 3] = [
        ("pg", w.d.pg_port, &pg_refusal),
        ("mysqlx", w.mysqlx_port, &mysql_refusal),
        ("api", w.http_port, &http_refusal),
    ];
    for (listener, port, refusal) in cases {
        let f = flood(&w, listener, port, N, LIMIT, refusal);
        println!(
            "{listener}: {} connections opened ({} connect errors) in {:?}; {} refused clearly; \
             danxia peak {} fds; {} CPU ticks; peak RSS {} KiB",
            f.opened,
            f.connect_errors,
            f.took,
            f.refused_clearly,
            f.peak_fds,
            f.cpu_ticks,
            peak_rss_kib(w.d.pid()).unwrap_or(0)
        );
        assert!(f.opened >= N - 100, "{listener}: only {} opened", f.opened);
        assert_eq!(
            f.refused_clearly,
            f.opened - LIMIT,
            "{listener}: each refused client reads the refusal, then EOF"
        );
        w.serves_everyone(&format!("after the {listener} flood"));
    }
}

/// Case 2b: danxia out of file descriptors: its soft and hard `RLIMIT_NOFILE`
/// are lowered (prlimit) to 40 above what it has open, then 300 clients
/// connect. Expected: accept fails with EMFILE and danxia backs off (a
/// warning every 50 ms, well under 30 % of a core — a spinning accept loop
/// would use 100 %), and once the clients are gone a normal client of
/// every listener is served again.
#[test]
fn accept_backs_off_when_out_of_descriptors() {
    let w = world(&[("startup_timeout", "\"60s\"")], Duration::from_secs(60));
    let pid = w.d.pid();
    let cap = fd_count(pid).expect("fds") + 40;
    let limits = format!("--nofile={cap}:{cap}");
    run_ok(
        std::process::Command::new("prlimit")
            .arg(format!("--pid={pid}"))
            .arg(&limits),
    );
    let socks: Vec<TcpStream> = (0..300).map(|_| connect(w.d.pg_port)).collect();
    let deadline = Instant::now() + WAIT;
    while !w.d.stderr().contains("accept failed") {
        assert!(Instant::now() < deadline, "no EMFILE: {}", w.d.stderr());
        thread::sleep(Duration::from_millis(100));
    }
    // A measurement window, not a synchronisation.
    let window = Duration::from_secs(3);
    let (cpu0, log0) = (cpu_ticks(pid).unwrap_or(0), w.d.stderr().len());
    thread::sleep(window);
    let cpu = cpu_ticks(pid).unwrap_or(0) - cpu0;
    let warnings = w.d.stderr()[log0..].matches("accept failed").count();
    println!(
        "EMFILE: {cpu} CPU ticks (1/100 s) in {window:?}, {warnings} 'accept failed' warnings; \
         {} fds held (cap {cap})",
        fd_count(pid).unwrap_or(0)
    );
    assert!(
        cpu < 90,
        "danxia used {cpu} ticks in 3 s while out of descriptors"
    );
    assert!(
        (10..=200).contains(&warnings),
        "backed off accepts: {warnings} warnings in 3 s"
    );
    assert!(w.d.stderr().contains("Too many open files"), "EMFILE named");
    drop(socks);
    w.d.wait_metric(
        Duration::from_secs(60),
        "danxia_connections_active",
        &[("listener", "pg")],
        |v| v == 0.0,
    );
    w.serves_everyone("after EMFILE");
}

/// danxia raises its soft `RLIMIT_NOFILE` to the hard limit at start
/// (`max_connections` defaults to 10,000 per listener; the usual soft
/// limit of 1024 would make EMFILE the real limit). Started with soft
/// 1024 and hard = this process's hard limit; expected: its
/// `/proc/<pid>/limits` shows soft = hard.
#[test]
fn danxia_raises_its_soft_descriptor_limit_to_the_hard_one() {
    require_postgres();
    let me = std::process::id();
    let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
    let hard = nofile(&limits).1;
    assert!(hard > 1024, "this test needs a hard limit above 1024");
    let set = |soft: u64| {
        run_ok(
            std::process::Command::new("prlimit")
                .arg(format!("--pid={me}"))
                .arg(format!("--nofile={soft}:{hard}")),
        )
    };
    let soft_before = nofile(&limits).0;
    set(1024);
    let d = Danxia::start_with(Options::default());
    set(soft_before);
    let theirs = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).expect("limits");
    assert_eq!(nofile(&theirs), (hard, hard), "{theirs}");
    assert!(
        d.stderr().contains("RLIMIT_NOFILE") || d.stderr().contains("open files"),
        "the raise is logged: {}",
        d.stderr()
    );
}

/// (soft, hard) "Max open files" of a `/proc/<pid>/limits` text.
fn nofile(limits: &str) -> (u64, u64) {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let f: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    (f[0], f[1])
}

/// Sends `bytes` (then half-closes if `close`), reads until danxia closes
/// or `wait` passes; returns what it answered and whether it closed.
fn exchange(port: u16, bytes: &[u8], close: bool, wait: Duration) -> (Vec<u8>, Option<Duration>) {
    let mut s = connect(port);
    let t = Instant::now();
    let _ = s.write_all(bytes);
    if close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = wait.saturating_sub(t.elapsed());
        if left.is_zero() {
            return (got, None);
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => return (got, Some(t.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (got, None)
            }
            Err(_) => return (got, Some(t.elapsed())),
        }
    }
}

/// The first line of an answer, for messages.
fn first_line(b: &[u8]) -> String {
    let t = String::from_utf8_lossy(b);
    t.lines().next().unwrap_or("").chars().take(120).collect()
}

/// The status code of an HTTP answer (`None`: no status line).
fn status(b: &[u8]) -> Option<u16> {
    let t = String::from_utf8_lossy(b);
    let rest = t
        .strip_prefix("HTTP/1.1 ")
        .or(t.strip_prefix("HTTP/1.0 "))?;
    rest.get(..3)?.parse().ok()
}

/// Case 3: Oversized headers: a 1 MB header line on the HTTP API listener and on
/// the admin listener. Expected: 431 without buffering it (RSS bounded), the
/// connection closed. (PG and MySQL oversized messages: pg_protocol.rs
/// `oversized_*`, mysql_hostile.rs `mysql_oversized_command_*`.)
#[test]
fn oversized_headers_get_431() {
    let w = world(&[], SLOW_TIMEOUT);
    let pad = "a".repeat(1 << 20);
    for (what, port) in [("http", w.http_port), ("admin", w.d.admin_port)] {
        let req = format!(
            "GET /api/v1/persons/1 HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\nx-pad: {pad}\r\n\r\n",
            w.key
        );
        let (got, closed) = exchange(port, req.as_bytes(), false, WAIT);
        assert_eq!(status(&got), Some(431), "{what}: {}", first_line(&got));
        assert!(closed.is_some(), "{what}: closed after the 431");
    }
    w.serves_everyone("after oversized headers");
}

/// A minimal TLS 1.2/1.3 ClientHello record (random, no extensions).
fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x5a; 32]);
    body.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    let mut hs = vec![0x01, 0x00, 0x00, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01, 0x00, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

/// Case 5: Wrong protocol versions. Expected: HTTP/1.0 is served; an HTTP/0.9
/// request line, `HTTP/9.9` and an h2 preface followed by junk get a 4xx/5xx
/// or a close within the header timeout; an `Upgrade: h2c` with a junk
/// `HTTP2-Settings` is ignored (served as HTTP/1.1); a TLS ClientHello on
/// the plaintext pg, mysql and http listeners is refused (PG FATAL 08P01,
/// MySQL ERR or a close at the startup timeout, HTTP 400) and plain HTTP on
/// the HTTPS listener gets the 400 that says to use https://. (PG protocol
/// versions: pg_protocol.rs; a MySQL response without CLIENT_PROTOCOL_41:
/// mysql_hostile.rs `mysql_garbage_handshake_response_is_refused_clearly`.)
#[test]
fn wrong_protocol_versions_get_clear_answers() {
    let w = world(&[], SLOW_TIMEOUT);
    let bound = SLOW_TIMEOUT + CLOSE_MARGIN;
    let key = &w.key;
    let req = |version: &str, extra: &str| {
        format!("GET /api/v1/persons/1 {version}\r\nHost: x\r\nx-api-key: {key}\r\n{extra}Connection: close\r\n\r\n")
    };
    let (got, _) = exchange(w.http_port, req("HTTP/1.0", "").as_bytes(), false, WAIT);
    assert_eq!(status(&got), Some(200), "HTTP/1.0: {}", first_line(&got));
    let h2c = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: !!junk!!\r\n";
    let (got, _) = exchange(w.http_port, req("HTTP/1.1", h2c).as_bytes(), false, WAIT);
    assert_eq!(status(&got), Some(200), "h2c junk: {}", first_line(&got));
    for (what, bytes) in [
        ("HTTP/0.9", b"GET /api/v1/persons/1\r\n\r\n".to_vec()),
        ("HTTP/9.9", req("HTTP/9.9", "").into_bytes()),
        (
            "h2 preface + junk",
            [&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], &[0xffu8; 64][..]].concat(),
        ),
        ("ClientHello on http", client_hello()),
    ] {
        let (got, closed) = exchange(w.http_port, &bytes, false, bound);
        println!("{what}: {:?} after {closed:?}", first_line(&got));
        assert!(closed.is_some(), "{what}: closed within {bound:?}");
        if let Some(code) = status(&got) {
            assert!(code >= 400, "{what}: {}", first_line(&got));
        }
    }
    let (got, closed) = exchange(w.d.pg_port, &client_hello(), false, bound);
    assert!(closed.is_some(), "ClientHello on pg: closed");
    let m = wire::read_msg(&mut &got[..]).expect("ClientHello on pg: an ErrorResponse");
    assert_eq!(
        m.sqlstate().as_deref(),
        Some("08P01"),
        "{}",
        first_line(&got)
    );
    let (got, closed) = exchange(w.mysqlx_port, &client_hello(), false, bound);
    println!(
        "ClientHello on mysql: {:?} after {closed:?}",
        first_line(&got)
    );
    assert!(closed.is_some(), "ClientHello on mysql: closed");
    let plain = req("HTTP/1.1", "");
    let (got, _) = exchange(w.https_port, plain.as_bytes(), false, WAIT);
    assert_eq!(
        status(&got),
        Some(400),
        "plain on https: {}",
        first_line(&got)
    );
    assert!(String::from_utf8_lossy(&got).contains("https://"));
    w.d.wait_metric(
        WAIT,
        "danxia_protocol_errors_total",
        &[("listener", "pg")],
        |v| v >= 1.0,
    );
    w.serves_everyone("after wrong protocol versions");
}

/// A seeded xorshift64* generator: the same garbage on every run.
struct Rng(u64);

impl Rng {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }
}

/// Case 6: Garbage on every listener: 64 KiB of seeded random bytes, 1 byte,
/// 4 KiB of 0xff, and a length header promising 1 GB followed by a close.
/// Expected: each connection gets an error or a close within its timeout
/// (admin: its header timeout), less than 64 KiB back, no panic in the
/// log, danxia alive, and a normal client of every listener served after.
#[test]
fn garbage_on_every_listener_gets_a_bounded_answer() {
    let w = world(&[], SLOW_TIMEOUT);
    let mut rng = Rng(0x5eed_da4c_1a00_0006);
    let promise_1g: [(&str, Vec<u8>); 5] = [
        (
            "pg",
            [&0x4000_0000i32.to_be_bytes()[..], &b"\x00\x03\x00\x00"[..]].concat(),
        ),
        ("mysqlx", vec![0xff, 0xff, 0xff, 0x01, 0x85]),
        (
            "api",
            b"POST /api/v1/persons HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n"
                .to_vec(),
        ),
        ("apis", vec![0x16, 0x03, 0x01, 0xff, 0xff]),
        (
            "admin",
            b"POST /policy/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n"
                .to_vec(),
        ),
    ];
    let ports = [
        w.d.pg_port,
        w.mysqlx_port,
        w.http_port,
        w.https_port,
        w.d.admin_port,
    ];
    let mut handles = Vec::new();
    for ((listener, promise), port) in promise_1g.into_iter().zip(ports) {
        let timeout = if listener == "admin" {
            ADMIN_HEADER_TIMEOUT
        } else {
            SLOW_TIMEOUT
        };
        let kinds = [
            ("64 KiB random", rng.bytes(64 * 1024), false),
            ("1 byte", rng.bytes(1), false),
            ("4 KiB 0xff", vec![0xff; 4096], false),
            ("1 GB promised, then closed", promise, true),
        ];
        for (kind, bytes, close) in kinds {
            handles.push(thread::spawn(move || {
                let (got, closed) = exchange(port, &bytes, close, timeout + CLOSE_MARGIN);
                (listener, kind, got, closed)
            }));
        }
    }
    for h in handles {
        let (listener, kind, got, closed) = h.join().expect("garbage thread");
        println!(
            "garbage {listener} / {kind}: {} bytes back ({:?}), closed after {closed:?}",
            got.len(),
            first_line(&got)
        );
        assert!(closed.is_some(), "{listener} / {kind}: not closed in time");
        assert!(
            got.len() < 64 * 1024,
            "{listener} / {kind}: {} bytes",
            got.len()
        );
    }
    for listener in ["pg", "mysqlx"] {
        let n = w.metric0("danxia_protocol_errors_total", &[("listener", listener)]);
        assert!(n >= 3.0, "{listener}: {n} protocol errors counted");
    }
    w.serves_everyone("after garbage");
}

/// Case 4: Invalid UTF-8 everywhere text is expected. Expected: PG startup
/// parameters with invalid UTF-8 get an ErrorResponse and a close; a PG
/// Query with invalid UTF-8 (client_encoding UTF8) gets the server's own
/// error (22021, as directly) and is audited; a MySQL COM_QUERY with invalid
/// UTF-8 under utf8mb4 gets the same answer as directly and is audited;
/// HTTP paths, queries and headers with invalid UTF-8 (raw and
/// percent-encoded) get an HTTP answer. Nothing panics, every audit record
/// is valid JSON and `danxia audit verify` passes.
#[test]
fn invalid_utf8_is_answered_and_audited_as_valid_json() {
    let mut w = world(&[], SLOW_TIMEOUT);
    // PG startup: user and database names that are not UTF-8.
    let startup = wire::startup_packet(
        wire::PROTOCOL_3_0,
        b"user\0\xff\xfeuser\0database\0t\xc3\x28st\0\0",
    );
    let answer = |port: u16| {
        let (got, closed) = exchange(port, &startup, false, WAIT);
        assert!(closed.is_some(), "startup with invalid UTF-8: closed");
        // The server's trust authentication may say AuthenticationOk first.
        let mut r = &got[..];
        loop {
            let m = wire::read_msg(&mut r)
                .unwrap_or_else(|_| panic!("an ErrorResponse: {}", first_line(&got)));
            if m.tag_char() == 'E' {
                return m.sqlstate().unwrap_or_default();
            }
        }
    };
    let (direct, proxied) = (answer(DIRECT_PORT), answer(w.d.pg_port));
    println!("PG startup with invalid UTF-8: direct {direct}, danxia {proxied}");
    // danxia refuses it itself, before the server sees it (the server
    // would look the name up and answer 28000).
    assert_eq!(proxied, "08P01", "a clear protocol error");
    // PG Query: the same error as the server's.
    let query = wire::message(b'Q', b"select 'caf\xe9' as x\0");
    let run_query = |port: u16| {
        let mut s = RawSession::connect(port, USER, DB).expect("session");
        s.send(&query).expect("send");
        let msgs = s.read_until_ready().expect("answer");
        let err = msgs.iter().find(|m| m.tag_char() == 'E').expect("an error");
        let st = err.sqlstate().unwrap_or_default();
        s.terminate();
        st
    };
    assert_eq!(run_query(w.d.pg_port), run_query(DIRECT_PORT));
    w.d.wait_audit(WAIT, |e| e["listener"] == "pg" && e["sqlstate"] == "22021");
    // MySQL COM_QUERY with invalid UTF-8 under utf8mb4.
    let script = |port: u16| {
        format!(
            "import pymysql\n\
             c = pymysql.connect(host='127.0.0.1', port={port}, user='root', database='test', charset='utf8mb4', use_unicode=False)\n\
             try:\n\
             \x20   c.query(b\"select 'caf\\xe9 \\xff\\xfe' as x\")\n\
             \x20   print('OK', c._result.rows)\n\
             except Exception as e:\n\
             \x20   print('ERR', type(e).__name__, e.args[0] if e.args else '')\n"
        )
    };
    let direct = run_ok(python().arg("-c").arg(script(MYSQL_DIRECT_PORT)));
    let proxied = run_ok(python().arg("-c").arg(script(w.d.mysql_port)));
    println!("MySQL invalid UTF-8: direct {direct:?}, danxia {proxied:?}");
    assert_eq!(proxied, direct);
    w.d.wait_audit(WAIT, |e| {
        e["listener"] == "mysql"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.starts_with("select 'caf"))
    });
    // HTTP: raw and percent-encoded invalid UTF-8.
    let key = w.key.clone();
    for (what, target, header) in [
        ("raw path", &b"/api/v1/persons/\xff\xfe"[..], &b""[..]),
        ("percent path", &b"/api/v1/persons/%FF%FE"[..], &b""[..]),
        (
            "percent query",
            &b"/api/v1/persons/1?q=%C3%28&r=%FF"[..],
            &b""[..],
        ),
        ("raw query", &b"/api/v1/persons/1?q=\xc3\x28"[..], &b""[..]),
        (
            "raw header",
            &b"/api/v1/persons/1"[..],
            &b"x-note: caf\xe9\xff\r\n"[..],
        ),
    ] {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-api-key: ");
        req.extend_from_slice(key.as_bytes());
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(header);
        req.extend_from_slice(b"\r\n");
        let (got, _) = exchange(w.http_port, &req, false, WAIT);
        println!("HTTP {what}: {}", first_line(&got));
        assert!(status(&got).is_some(), "{what}: an HTTP answer");
    }
    w.serves_everyone("after invalid UTF-8");
    // Every record so far is JSON (read_audit_dir panics otherwise), and
    // the chain verifies after a clean stop.
    let n = read_audit_dir(&w.d.audit_dir).len();
    assert!(n > 5, "{n} records");
    assert!(w.d.shutdown().success());
    let out = w.d.audit_verify();
    assert!(
        out.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The admin endpoint's connection cap (`ADMIN_MAX_CONNECTIONS`, 256 in
/// proxy/src/admin.rs). Expected: of 300 silent connections, the 44 over
/// the cap are closed at once without a byte, the rest stay open (until
/// their header timeout); once they are gone the 44 are counted in
/// `danxia_admin_connections_rejected_total` and the endpoint answers.
#[test]
fn admin_endpoint_caps_its_connections() {
    const CAP: usize = 256;
    let w = world(&[], SLOW_TIMEOUT);
    let socks: Vec<TcpStream> = (0..CAP + 44).map(|_| connect(w.d.admin_port)).collect();
    for s in &socks {
        s.set_nonblocking(true).expect("nonblocking");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 64];
    let closed = loop {
        let closed = socks
            .iter()
            .filter(|s| matches!((&**s).read(&mut buf), Ok(0)))
            .count();
        if closed >= 44 || Instant::now() > deadline {
            break closed;
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(closed, 44, "the connections over the cap, closed at once");
    drop(socks);
    w.d.wait_metric(WAIT, "danxia_admin_connections_rejected_total", &[], |v| {
        v == 44.0
    });
    w.serves_everyone("after the admin cap");
}
