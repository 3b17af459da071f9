//! End-to-end tests of alert delivery over real loopback sockets: a raw
//! HTTP/1.1 server for the webhook, a UDP socket and a TCP listener for
//! syslog. Nothing of the code under test is mocked.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

fn alert(key: &str, rule: &str, risk: Risk, body: Value) -> Alert {
    Alert {
        key: key.into(),
        rule: Arc::from(rule),
        risk,
        title: format!("alice read 5000 rows of {key}"),
        body,
    }
}

fn webhook_config(addr: SocketAddr, retries: u32, backoff: Duration) -> AlertsConfig {
    let mut headers = BTreeMap::new();
    headers.insert("X-Token".to_string(), "t0ken-value".to_string());
    AlertsConfig {
        webhook: Some(WebhookConfig {
            url: format!("http://{addr}/danxia"),
            timeout: Duration::from_secs(2),
            retries,
            backoff,
            max_backoff: Duration::from_secs(1),
            headers,
        }),
        ..Default::default()
    }
}

fn syslog_config(addr: SocketAddr, transport: SyslogTransport) -> AlertsConfig {
    AlertsConfig {
        syslog: Some(SyslogConfig {
            address: addr.to_string(),
            transport,
            facility: Facility::Local4,
            app_name: "danxia".into(),
            hostname: "fw-test".into(),
        }),
        ..Default::default()
    }
}

/// One HTTP request as the test server saw it.
#[derive(Debug)]
struct HttpRequest {
    method: String,
    path: String,
    /// Lowercased names.
    headers: BTreeMap<String, String>,
    body: Value,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A minimal HTTP/1.1 server: answers each request with the next status of
/// `statuses` (200 once they run out) and reports every request. Keeps
/// connections open (the client pools them).
async fn http_server(statuses: Vec<u16>) -> (SocketAddr, mpsc::UnboundedReceiver<HttpRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(VecDeque::from(statuses)));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                while let Some(req) = read_request(&mut stream).await {
                    let _ = tx.send(req);
                    let status = script.lock().expect("script").pop_front().unwrap_or(200);
                    let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                    if stream.get_mut().write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn read_request(stream: &mut BufReader<TcpStream>) -> Option<HttpRequest> {
    let mut line = String::new();
    stream.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        stream.read_line(&mut h).await.ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await.ok()?;
    Some(HttpRequest {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).ok()?,
    })
}

/// A server that accepts and reads but never answers: every delivery hangs
/// until the client's timeout.
async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

async fn next_request(rx: &mut mpsc::UnboundedReceiver<HttpRequest>) -> HttpRequest {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("request in time")
        .expect("server alive")
}

fn webhook_stats(a: &Alerts) -> SinkStats {
    a.stats().webhook.expect("webhook sink")
}

#[tokio::test]
async fn webhook_delivers_one_json_post() {
    let (addr, mut rx) = http_server(vec![200]).await;
    let alerts = Alerts::start(&webhook_config(addr, 5, Duration::from_millis(10))).expect("start");
    let sent = alerts.send(alert(
        "r1|alice|orders",
        "r1",
        Risk::High,
        json!({"rule": "r1", "rows": 5000}),
    ));
    assert_eq!(sent, Sent::Queued);
    assert!(alerts.flush(WAIT).await, "flush");
    let req = next_request(&mut rx).await;
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/danxia");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-token"), Some("t0ken-value"));
    assert_eq!(req.body["rule"], "r1");
    assert_eq!(req.body["rows"], 5000);
    assert_eq!(req.body["suppressed"], 0);
    let id = req.body["alert_id"].as_str().expect("alert_id is a string");
    let (tag, n) = id.split_once('-').expect("hex-counter");
    assert!(u128::from_str_radix(tag, 16).is_ok(), "{id}");
    assert!(n.parse::<u64>().is_ok(), "{id}");
    assert_eq!(
        webhook_stats(&alerts),
        SinkStats {
            ok: 1,
            ..Default::default()
        }
    );
    assert!(rx.try_recv().is_err(), "exactly one request");
}

#[tokio::test]
async fn alert_ids_are_unique() {
    let (addr, mut rx) = http_server(vec![]).await;
    let alerts = Alerts::start(&webhook_config(addr, 0, Duration::from_millis(10))).expect("start");
    for i in 0..5 {
        alerts.send(alert(&format!("k{i}"), "r", Risk::Low, json!({})));
    }
    assert!(alerts.flush(WAIT).await);
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let req = next_request(&mut rx).await;
        ids.insert(req.body["alert_id"].as_str().expect("id").to_string());
    }
    assert_eq!(ids.len(), 5);
}

#[tokio::test]
async fn webhook_retries_503_then_delivers_once() {
    let (addr, mut rx) = http_server(vec![503, 503, 200]).await;
    let alerts = Alerts::start(&webhook_config(addr, 5, Duration::from_millis(10))).expect("start");
    assert_eq!(
        alerts.send(alert("k", "r", Risk::Medium, json!({"n": 1}))),
        Sent::Queued
    );
    assert!(alerts.flush(WAIT).await);
    let first = next_request(&mut rx).await;
    for _ in 0..2 {
        let again = next_request(&mut rx).await;
        assert_eq!(again.body, first.body, "a retry resends the same document");
    }
    assert!(rx.try_recv().is_err(), "three attempts in all");
    assert_eq!(
        webhook_stats(&alerts),
        SinkStats {
            ok: 1,
            retried: 2,
            failed: 0,
            dropped: 0
        }
    );
}

#[tokio::test]
async fn webhook_429_and_408_are_retried() {
    let (addr, mut rx) = http_server(vec![429, 408, 204]).await;
    let alerts = Alerts::start(&webhook_config(addr, 5, Duration::from_millis(10))).expect("start");
    alerts.send(alert("k", "r", Risk::Medium, json!({})));
    assert!(alerts.flush(WAIT).await);
    for _ in 0..3 {
        next_request(&mut rx).await;
    }
    let s = webhook_stats(&alerts);
    assert_eq!((s.ok, s.retried, s.failed), (1, 2, 0));
}

#[tokio::test]
async fn webhook_400_is_permanent() {
    let (addr, mut rx) = http_server(vec![400, 200]).await;
    let alerts = Alerts::start(&webhook_config(addr, 5, Duration::from_millis(10))).expect("start");
    alerts.send(alert("k", "r", Risk::Critical, json!({})));
    assert!(alerts.flush(WAIT).await);
    next_request(&mut rx).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err(), "a 400 is not retried");
    assert_eq!(
        webhook_stats(&alerts),
        SinkStats {
            failed: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn dead_endpoint_gives_up_and_counts_failed() {
    let addr = closed_port().await;
    let alerts = Alerts::start(&webhook_config(addr, 2, Duration::from_millis(10))).expect("start");
    let started = Instant::now();
    assert_eq!(
        alerts.send(alert("k", "r", Risk::High, json!({}))),
        Sent::Queued
    );
    assert!(alerts.flush(WAIT).await);
    // Backoff 10 ms then 20 ms: the retries did wait.
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(
        webhook_stats(&alerts),
        SinkStats {
            retried: 2,
            failed: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn send_never_blocks_on_a_full_queue() {
    const N: usize = 10_000;
    const CAPACITY: usize = 10;
    let addr = silent_server().await;
    let mut cfg = webhook_config(addr, 0, Duration::from_millis(10));
    cfg.queue_capacity = CAPACITY;
    let alerts = Alerts::start(&cfg).expect("start");
    let batch: Vec<Alert> = (0..N)
        .map(|i| alert(&format!("rule|user{i}|t"), "r", Risk::High, json!({"i": i})))
        .collect();
    let started = Instant::now();
    let mut dropped = 0u64;
    let mut queued = 0u64;
    for a in batch {
        match alerts.send(a) {
            Sent::Dropped => dropped += 1,
            Sent::Queued => queued += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    eprintln!("{N} sends: {elapsed:?}, {queued} queued, {dropped} dropped");
    assert!(
        elapsed < Duration::from_millis(100),
        "{N} sends took {elapsed:?}"
    );
    // The queue holds CAPACITY; the task may have taken one more in flight.
    assert!(queued <= CAPACITY as u64 + 1, "queued {queued}");
    assert_eq!(queued + dropped, N as u64);
    assert_eq!(webhook_stats(&alerts).dropped, dropped);
    // The hanging delivery keeps the sink busy: flush gives up in time.
    let started = Instant::now();
    assert!(!alerts.flush(Duration::from_millis(50)).await);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn suppression_window_makes_one_incident_one_alert() {
    let (addr, mut rx) = http_server(vec![]).await;
    let mut cfg = webhook_config(addr, 0, Duration::from_millis(10));
    cfg.suppress = Duration::from_millis(200);
    let alerts = Alerts::start(&cfg).expect("start");
    let a = |key: &str| alert(key, "r1", Risk::High, json!({"key": key}));
    assert_eq!(alerts.send(a("k1")), Sent::Queued);
    assert_eq!(alerts.send(a("k1")), Sent::Suppressed);
    assert_eq!(alerts.send(a("k1")), Sent::Suppressed);
    assert_eq!(alerts.send(a("k2")), Sent::Queued, "keys are independent");
    assert!(alerts.flush(WAIT).await);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(alerts.send(a("k1")), Sent::Queued);
    assert_eq!(alerts.send(a("k1")), Sent::Suppressed);
    assert!(alerts.flush(WAIT).await);
    let got: Vec<(String, u64)> = (0..3)
        .map(|_| rx.try_recv().expect("delivered"))
        .map(|r| {
            (
                r.body["key"].as_str().unwrap_or_default().to_string(),
                r.body["suppressed"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("k1".into(), 0), ("k2".into(), 0), ("k1".into(), 2)]
    );
    assert!(rx.try_recv().is_err());
    let stats = alerts.stats();
    assert_eq!(stats.alerts, 6);
    assert_eq!(stats.suppressed, 3);
    assert_eq!(webhook_stats(&alerts).ok, 3);
}

#[tokio::test]
async fn zero_suppress_sends_every_alert() {
    let (addr, mut rx) = http_server(vec![]).await;
    let mut cfg = webhook_config(addr, 0, Duration::from_millis(10));
    cfg.suppress = Duration::ZERO;
    let alerts = Alerts::start(&cfg).expect("start");
    for _ in 0..3 {
        assert_eq!(
            alerts.send(alert("k", "r", Risk::Low, json!({}))),
            Sent::Queued
        );
    }
    assert!(alerts.flush(WAIT).await);
    for _ in 0..3 {
        assert_eq!(next_request(&mut rx).await.body["suppressed"], 0);
    }
}

#[tokio::test]
async fn below_min_risk_and_disabled_are_counted_not_sent() {
    let (addr, mut rx) = http_server(vec![]).await;
    let mut cfg = webhook_config(addr, 0, Duration::from_millis(10));
    cfg.min_risk = Risk::High;
    let alerts = Alerts::start(&cfg).expect("start");
    assert_eq!(
        alerts.send(alert("k", "r", Risk::Medium, json!({}))),
        Sent::Disabled
    );
    // The filtered one did not open a suppression window for its key.
    assert_eq!(
        alerts.send(alert("k", "r", Risk::Critical, json!({"sent": true}))),
        Sent::Queued
    );
    assert!(alerts.flush(WAIT).await);
    assert_eq!(next_request(&mut rx).await.body["sent"], true);
    assert!(rx.try_recv().is_err());
    assert_eq!(alerts.stats().alerts, 2);

    let off = Alerts::disabled();
    for _ in 0..2 {
        assert_eq!(
            off.send(alert("k", "r", Risk::Critical, json!({}))),
            Sent::Disabled
        );
    }
    assert!(off.flush(Duration::from_millis(10)).await);
    assert_eq!(
        off.stats(),
        AlertStats {
            alerts: 2,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn non_object_body_is_wrapped() {
    let (addr, mut rx) = http_server(vec![]).await;
    let alerts = Alerts::start(&webhook_config(addr, 0, Duration::from_millis(10))).expect("start");
    alerts.send(alert("k", "r", Risk::Low, json!([1, 2])));
    assert!(alerts.flush(WAIT).await);
    let body = next_request(&mut rx).await.body;
    assert_eq!(body["detail"], json!([1, 2]));
    assert_eq!(body["suppressed"], 0);
    assert!(body["alert_id"].is_string());
}

/// An RFC 5424 message split into its fields.
#[derive(Debug)]
struct Syslog {
    pri: u16,
    version: String,
    timestamp: String,
    hostname: String,
    app_name: String,
    procid: String,
    msgid: String,
    sd_id: String,
    /// Unescaped PARAM-VALUEs.
    params: BTreeMap<String, String>,
    msg: String,
}

fn parse_syslog(text: &str) -> Syslog {
    let rest = text.strip_prefix('<').expect("<PRI>");
    let (pri, rest) = rest.split_once('>').expect("PRI>");
    let mut fields = rest.splitn(7, ' ');
    let mut next = || fields.next().expect("header field").to_string();
    let (version, timestamp, hostname, app_name, procid, msgid) =
        (next(), next(), next(), next(), next(), next());
    let sd = next();
    let sd = sd.strip_prefix('[').expect("[SD");
    let (sd_id, mut rest) = sd.split_once(' ').expect("SD-ID");
    let mut params = BTreeMap::new();
    loop {
        let (name, after) = rest.split_once("=\"").expect("PARAM-NAME=\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => value.push(chars.next().expect("escaped").1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        params.insert(name.to_string(), value);
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(' ') {
            rest = r;
        } else {
            rest = rest.strip_prefix("] ").expect("end of SD");
            break;
        }
    }
    Syslog {
        pri: pri.parse().expect("PRI number"),
        version,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd_id: sd_id.to_string(),
        params,
        msg: rest.to_string(),
    }
}

#[tokio::test]
async fn syslog_udp_rfc5424() {
    let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = server.local_addr().expect("addr");
    let alerts = Alerts::start(&syslog_config(addr, SyslogTransport::Udp)).expect("start");
    let rule = r#"pii"export]\v2"#;
    let key = "pii|bob|customers]";
    let sent = alerts.send(Alert {
        key: key.into(),
        rule: Arc::from(rule),
        risk: Risk::High,
        title: "bob read 5000 phone numbers from customers".into(),
        body: json!({"rows": 5000}),
    });
    assert_eq!(sent, Sent::Queued);
    let mut buf = vec![0u8; 65_536];
    let n = tokio::time::timeout(WAIT, server.recv(&mut buf))
        .await
        .expect("datagram in time")
        .expect("recv");
    let text = std::str::from_utf8(&buf[..n]).expect("UTF-8");
    let m = parse_syslog(text);
    assert_eq!(m.pri, 20 * 8 + 3, "local4.err");
    assert_eq!(m.version, "1");
    let ts =
        time::OffsetDateTime::parse(&m.timestamp, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    assert_eq!(ts.offset(), time::UtcOffset::UTC);
    assert!(m.timestamp.ends_with('Z'));
    let frac = m.timestamp.split_once('.').expect("fraction").1;
    assert_eq!(frac.len(), 7, "6 digits and Z: {}", m.timestamp);
    assert_eq!(m.hostname, "fw-test");
    assert_eq!(m.app_name, "danxia");
    assert_eq!(m.procid, std::process::id().to_string());
    assert_eq!(m.msgid, "alert");
    assert_eq!(m.sd_id, "danxia@32473");
    assert!(text.contains(r#"rule="pii\"export\]\\v2""#), "{text}");
    assert_eq!(m.params.get("rule").map(String::as_str), Some(rule));
    assert_eq!(m.params.get("risk").map(String::as_str), Some("high"));
    assert_eq!(m.params.get("key").map(String::as_str), Some(key));
    let msg = m.msg.strip_prefix('\u{feff}').expect("BOM");
    let (title, json_text) = msg
        .split_once(" {")
        .map(|(t, j)| (t, format!("{{{j}")))
        .expect("title and JSON");
    assert_eq!(title, "bob read 5000 phone numbers from customers");
    let body: Value = serde_json::from_str(&json_text).expect("JSON");
    assert_eq!(body["rows"], 5000);
    assert_eq!(body["suppressed"], 0);
    assert!(body["alert_id"].is_string());

    // A 20 000-byte body is cut at 8192 bytes, at a char boundary.
    let big = "中".repeat(20_000 / 3);
    alerts.send(alert("big", "r", Risk::Low, json!({"text": big})));
    let n = tokio::time::timeout(WAIT, server.recv(&mut buf))
        .await
        .expect("datagram in time")
        .expect("recv");
    assert!(n <= 8192 && n > 8192 - 3, "datagram of {n} bytes");
    let text = std::str::from_utf8(&buf[..n]).expect("cut at a char boundary");
    assert!(text.ends_with('中'));
    assert_eq!(parse_syslog(text).pri, 20 * 8 + 5, "local4.notice");
    assert!(alerts.flush(WAIT).await);
    let s = alerts.stats().syslog.expect("syslog sink");
    assert_eq!((s.ok, s.failed, s.dropped), (2, 0, 0));
}

/// Reads one octet-counted frame (RFC 6587 §3.4.1: `LEN SP MSG`).
async fn read_frame(stream: &mut BufReader<TcpStream>) -> String {
    let mut len = Vec::new();
    tokio::time::timeout(WAIT, stream.read_until(b' ', &mut len))
        .await
        .expect("frame in time")
        .expect("read");
    let len: usize = std::str::from_utf8(&len[..len.len() - 1])
        .expect("ASCII length")
        .parse()
        .expect("decimal length");
    let mut msg = vec![0; len];
    tokio::time::timeout(WAIT, stream.read_exact(&mut msg))
        .await
        .expect("frame in time")
        .expect("read");
    String::from_utf8(msg).expect("UTF-8")
}

async fn accept(listener: &TcpListener) -> BufReader<TcpStream> {
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("connection in time")
        .expect("accept");
    BufReader::new(stream)
}

fn title_of(frame: &str) -> String {
    let m = parse_syslog(frame);
    let msg = m.msg.strip_prefix('\u{feff}').expect("BOM");
    msg.split_once(" {").expect("title").0.to_string()
}

#[tokio::test]
async fn syslog_tcp_octet_counting_and_reconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let alerts = Alerts::start(&syslog_config(addr, SyslogTransport::Tcp)).expect("start");
    let a = |key: &str| Alert {
        key: key.into(),
        rule: Arc::from("r"),
        risk: Risk::Critical,
        title: format!("title {key}"),
        body: json!({"key": key, "text": "multi\nline ]\""}),
    };
    assert_eq!(alerts.send(a("one")), Sent::Queued);
    assert_eq!(alerts.send(a("two")), Sent::Queued);
    let mut conn = accept(&listener).await;
    assert_eq!(title_of(&read_frame(&mut conn).await), "title one");
    let second = read_frame(&mut conn).await;
    assert_eq!(title_of(&second), "title two");
    assert_eq!(parse_syslog(&second).pri, 20 * 8 + 2, "local4.crit");
    assert!(alerts.flush(WAIT).await);
    // The collector drops the connection; the next alert reconnects.
    drop(conn);
    assert_eq!(alerts.send(a("three")), Sent::Queued);
    let mut conn = accept(&listener).await;
    assert_eq!(title_of(&read_frame(&mut conn).await), "title three");
    assert!(alerts.flush(WAIT).await);
    let s = alerts.stats().syslog.expect("syslog sink");
    // The hang-up was seen before writing: no failed attempt, no backoff.
    assert_eq!(
        s,
        SinkStats {
            ok: 3,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn both_sinks_get_each_alert_and_one_full_queue_does_not_drop_it() {
    let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let slow = silent_server().await;
    let mut cfg = webhook_config(slow, 0, Duration::from_millis(10));
    cfg.syslog = syslog_config(server.local_addr().expect("addr"), SyslogTransport::Udp).syslog;
    cfg.queue_capacity = 1;
    let alerts = Alerts::start(&cfg).expect("start");
    let mut buf = vec![0u8; 65_536];
    for i in 0..5 {
        // The webhook hangs, so its queue fills; syslog still takes each one.
        assert_eq!(
            alerts.send(alert(&format!("k{i}"), "r", Risk::High, json!({"i": i}))),
            Sent::Queued
        );
        let n = tokio::time::timeout(WAIT, server.recv(&mut buf))
            .await
            .expect("datagram in time")
            .expect("recv");
        assert!(std::str::from_utf8(&buf[..n])
            .expect("UTF-8")
            .contains(&format!("\"i\":{i}")));
    }
    let stats = alerts.stats();
    assert!(stats.webhook.expect("webhook").dropped >= 3);
    assert_eq!(stats.syslog.expect("syslog").ok, 5);
}

#[tokio::test]
async fn start_rejects_bad_config_naming_the_key() {
    let https = AlertsConfig {
        webhook: Some(WebhookConfig {
            url: "https://soc.example:443/hook".into(),
            ..webhook_config(closed_port().await, 0, Duration::from_millis(10))
                .webhook
                .expect("webhook")
        }),
        ..Default::default()
    };
    match Alerts::start(&https) {
        Err(AlertError::Config(msg)) => {
            assert!(msg.contains("alerts.webhook.url"), "{msg}");
            assert!(
                msg.contains("TLS step") && msg.contains("http relay on loopback"),
                "{msg}"
            );
        }
        other => panic!("expected a config error, got {:?}", other.err()),
    }
    for bad in ["127.0.0.1", "127.0.0.1:x", "host:0", ""] {
        let mut cfg = syslog_config(closed_port().await, SyslogTransport::Udp);
        if let Some(s) = cfg.syslog.as_mut() {
            s.address = bad.into();
        }
        match Alerts::start(&cfg) {
            Err(AlertError::Config(msg)) => {
                assert!(msg.starts_with("alerts.syslog.address"), "{msg}")
            }
            other => panic!("{bad:?}: expected a config error, got {:?}", other.err()),
        }
    }
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let cfg = syslog_config("127.0.0.1:514".parse().expect("addr"), SyslogTransport::Udp);
    assert!(matches!(Alerts::start(&cfg), Err(AlertError::NoRuntime)));
}

#[test]
fn alerts_is_send_sync_and_cheap_to_clone() {
    fn send_sync<T: Send + Sync + Clone + 'static>() {}
    send_sync::<Alerts>();
    let a = Alerts::disabled();
    let b = a.clone();
    assert!(Arc::ptr_eq(&a.inner, &b.inner));
}

#[test]
fn risk_order_names_and_severities() {
    assert!(Risk::Low < Risk::Medium && Risk::Medium < Risk::High && Risk::High < Risk::Critical);
    let table = [
        (Risk::Low, "low", 5),
        (Risk::Medium, "medium", 4),
        (Risk::High, "high", 3),
        (Risk::Critical, "critical", 2),
    ];
    for (risk, name, severity) in table {
        assert_eq!(risk.as_str(), name);
        assert_eq!(risk.syslog_severity(), severity);
        assert_eq!(
            serde_json::to_value(risk).expect("serialise"),
            Value::String(name.into())
        );
    }
}

#[test]
fn backoff_doubles_and_caps() {
    let b = Duration::from_millis(500);
    let max = Duration::from_secs(30);
    let got: Vec<u128> = (1..=9)
        .map(|r| backoff_delay(b, max, r).as_millis())
        .collect();
    assert_eq!(
        got,
        vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    );
    assert_eq!(backoff_delay(b, max, 200), max);
}
