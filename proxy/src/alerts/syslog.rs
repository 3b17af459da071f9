//! The syslog sink: RFC 5424 messages over UDP (RFC 5426) or TCP with
//! octet-counting framing (RFC 6587 §3.4.1).
//!
//! Owns the alert message format and the one connection (or socket) to the
//! collector (`SyslogConn`, also used by the audit forwarder in
//! `audit/forward.rs`): resolved and (re)connected lazily, reconnected with doubling
//! backoff after an error, a failed message retried up to
//! `MAX_RESENDS` times and then dropped and counted.
//!
//! Must never write a header field outside RFC 5424's limits (PRINTUSASCII,
//! HOSTNAME ≤ 255, APP-NAME ≤ 48), never put a raw control character of the
//! title into MSG (a newline would split the alert in line-based collectors),
//! and never send a UDP datagram over `MAX_UDP_MESSAGE` bytes.

use std::io;
use std::mem::MaybeUninit;
use std::time::{Duration, SystemTime};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::config::{SyslogConfig, SyslogTransport, MAX_HOSTNAME_LEN};
use super::dedup::floor_char_boundary;
use super::{backoff_delay, AlertError, Outgoing, SinkQueue};

/// Largest UDP datagram sent; longer messages are cut at a char boundary.
/// RFC 5426 says receivers must accept 480 bytes and should accept 2048;
/// 8192 is what common collectors (rsyslog, syslog-ng) accept by default.
pub const MAX_UDP_MESSAGE: usize = 8192;

/// Resends of a message after its first attempt failed (each after a
/// reconnect).
pub const MAX_RESENDS: u32 = 5;

/// First reconnect delay; doubles per failed attempt up to `MAX_BACKOFF`.
pub const BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Limit for resolving and connecting to the collector.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Limit for writing one message: a collector that stops reading must not
/// hold the sink forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// RFC 5424 §6.2.5 and §6.2.6.
pub(crate) const MAX_APP_NAME_LEN: usize = 48;
pub(crate) const MAX_PROCID_LEN: usize = 128;

/// The private enterprise number in the SD-ID (`danxia@32473`; 32473 is the
/// number RFC 5612 reserves for documentation and examples).
pub(crate) const SD_ID: &str = "danxia@32473";

const NILVALUE: &str = "-";
pub(crate) const BOM: &str = "\u{feff}";

const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The fixed header fields of every message from this process.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    facility: u8,
    hostname: String,
    app_name: String,
    procid: String,
}

impl Header {
    pub fn new(cfg: &SyslogConfig) -> Self {
        let hostname = if cfg.hostname.is_empty() {
            machine_hostname()
        } else {
            cfg.hostname.clone()
        };
        Header {
            facility: cfg.facility.code(),
            hostname: header_field(&hostname, MAX_HOSTNAME_LEN),
            app_name: header_field(&cfg.app_name, MAX_APP_NAME_LEN),
            procid: header_field(&std::process::id().to_string(), MAX_PROCID_LEN),
        }
    }

    /// The full RFC 5424 message (no transport framing):
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID alert [SD] BOM title json`.
    pub fn format(&self, out: &Outgoing) -> String {
        let pri = u16::from(self.facility) * 8 + u16::from(out.risk.syslog_severity());
        let timestamp = format_timestamp(out.at);
        let json = serde_json::to_string(&out.body).unwrap_or_else(|_| "{}".into());
        let mut msg = String::with_capacity(128 + out.title.len() + json.len() + out.key.len());
        msg.push_str(&format!(
            "<{pri}>1 {timestamp} {} {} {} alert [{SD_ID} rule=\"",
            self.hostname, self.app_name, self.procid
        ));
        push_param_value(&mut msg, &out.rule);
        msg.push_str("\" risk=\"");
        msg.push_str(out.risk.as_str());
        msg.push_str("\" key=\"");
        push_param_value(&mut msg, &out.key);
        msg.push_str("\"] ");
        msg.push_str(BOM);
        msg.extend(
            out.title
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c }),
        );
        msg.push(' ');
        msg.push_str(&json);
        msg
    }
}

/// RFC 3339 UTC with microseconds, or the NILVALUE if it cannot be
/// formatted (a clock before year 0 or after 9999).
fn format_timestamp(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .format(TIMESTAMP)
        .unwrap_or_else(|_| NILVALUE.into())
}

/// PARAM-VALUE escaping, RFC 5424 §6.3.3: `"`, `\` and `]` get a backslash.
pub(crate) fn push_param_value(out: &mut String, value: &str) {
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A header field: printable ASCII only (others dropped), at most `max`
/// bytes, the NILVALUE when nothing is left.
pub(crate) fn header_field(value: &str, max: usize) -> String {
    let mut s: String = value.chars().filter(char::is_ascii_graphic).collect();
    s.truncate(max);
    if s.is_empty() {
        NILVALUE.into()
    } else {
        s
    }
}

/// This machine's host name. The crate forbids `unsafe`, so instead of
/// `gethostname(2)` read what the kernel reports (Linux), then
/// `/etc/hostname`; `-` when neither is readable.
pub(crate) fn machine_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| NILVALUE.into())
}

/// `msg` cut to at most `max` bytes at a char boundary.
fn truncate_utf8(msg: &str, max: usize) -> &str {
    &msg[..floor_char_boundary(msg, max)]
}

enum Conn {
    Udp(Option<UdpSocket>),
    Tcp(Option<TcpStream>),
}

/// One connection (or socket) to a collector: connected lazily, framed per
/// transport. Shared by the alert sink and the audit forwarder.
pub(crate) struct SyslogConn {
    address: String,
    conn: Conn,
}

impl SyslogConn {
    /// Nothing is resolved or connected until the first message.
    pub fn new(address: &str, transport: SyslogTransport) -> Self {
        SyslogConn {
            address: address.to_string(),
            conn: match transport {
                SyslogTransport::Udp => Conn::Udp(None),
                SyslogTransport::Tcp => Conn::Tcp(None),
            },
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Drops the connection: the next send starts from a new one.
    pub fn disconnect(&mut self) {
        match &mut self.conn {
            Conn::Udp(s) => *s = None,
            Conn::Tcp(s) => *s = None,
        }
    }

    /// Sends one message: a datagram cut at `MAX_UDP_MESSAGE` bytes, or an
    /// octet-counted frame on the TCP stream, (re)connecting first.
    pub async fn send_once(&mut self, msg: &str) -> Result<(), AlertError> {
        match &mut self.conn {
            Conn::Udp(slot) => {
                if slot.is_none() {
                    *slot = Some(connect_udp(&self.address).await?);
                }
                if let Some(sock) = slot {
                    let datagram = truncate_utf8(msg, MAX_UDP_MESSAGE);
                    sock.send(datagram.as_bytes()).await?;
                }
                Ok(())
            }
            Conn::Tcp(slot) => {
                if slot.as_ref().is_some_and(peer_closed) {
                    // The collector hung up since the last message: a write
                    // now would "succeed" into a dead socket and be lost.
                    *slot = None;
                }
                if slot.is_none() {
                    *slot = Some(connect_tcp(&self.address).await?);
                }
                if let Some(stream) = slot {
                    let mut frame = Vec::with_capacity(msg.len() + 8);
                    frame.extend_from_slice(msg.len().to_string().as_bytes());
                    frame.push(b' ');
                    frame.extend_from_slice(msg.as_bytes());
                    tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&frame))
                        .await
                        .map_err(|_| AlertError::Timeout(WRITE_TIMEOUT))??;
                }
                Ok(())
            }
        }
    }
}

pub(crate) struct SyslogSink {
    header: Header,
    conn: SyslogConn,
}

impl SyslogSink {
    /// Nothing is resolved or connected until the first alert.
    pub fn new(cfg: &SyslogConfig) -> Self {
        SyslogSink {
            header: Header::new(cfg),
            conn: SyslogConn::new(&cfg.address, cfg.transport),
        }
    }

    /// The sink's task: delivers queued alerts until every `Alerts` handle
    /// is gone and the queue is drained.
    pub async fn run(mut self, mut queue: SinkQueue) {
        while let Some(out) = queue.next().await {
            self.deliver(&out, &queue).await;
            queue.shared.done();
        }
    }

    async fn deliver(&mut self, out: &Outgoing, queue: &SinkQueue) {
        let counters = &queue.shared.counters;
        let msg = self.header.format(out);
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let err = match self.conn.send_once(&msg).await {
                Ok(()) => {
                    counters.ok();
                    return;
                }
                Err(e) => e,
            };
            // Whatever broke, the next attempt starts from a new connection.
            self.conn.disconnect();
            if attempts <= MAX_RESENDS {
                counters.retried();
                let delay = backoff_delay(BACKOFF, MAX_BACKOFF, attempts);
                tracing::debug!(sink = "syslog", endpoint = %self.conn.address(),
                    alert_id = %out.alert_id, attempts, error = %err, ?delay,
                    "alert delivery failed; reconnecting");
                tokio::time::sleep(delay).await;
                continue;
            }
            counters.failed();
            tracing::warn!(sink = "syslog", endpoint = %self.conn.address(), rule = %out.rule,
                alert_id = %out.alert_id, attempts, error = %err,
                "alert delivery failed; alert dropped");
            return;
        }
    }
}

async fn resolve(address: &str) -> Result<std::net::SocketAddr, AlertError> {
    let mut addrs = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(address))
        .await
        .map_err(|_| AlertError::Timeout(CONNECT_TIMEOUT))??;
    addrs.next().ok_or_else(|| {
        AlertError::Syslog(io::Error::new(
            io::ErrorKind::NotFound,
            "address resolved to nothing",
        ))
    })
}

async fn connect_udp(address: &str) -> Result<UdpSocket, AlertError> {
    let addr = resolve(address).await?;
    let local = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(addr).await?;
    Ok(sock)
}

async fn connect_tcp(address: &str) -> Result<TcpStream, AlertError> {
    let addr = resolve(address).await?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| AlertError::Timeout(CONNECT_TIMEOUT))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Whether the collector closed (or reset) the connection. A syslog
/// collector never sends anything, so readable means EOF or error; bytes it
/// did send are discarded. Reads the socket directly (non-blocking) rather
/// than through tokio, whose cached readiness may not have seen the FIN yet.
fn peer_closed(stream: &TcpStream) -> bool {
    let sock = socket2::SockRef::from(stream);
    let mut buf = [MaybeUninit::<u8>::uninit(); 512];
    // Bounded: a chatty peer cannot keep us here.
    for _ in 0..16 {
        match sock.recv(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::{is_print_us_ascii, Facility};
    use crate::alerts::Risk;
    use std::sync::Arc;

    fn cfg() -> SyslogConfig {
        SyslogConfig {
            address: "127.0.0.1:514".into(),
            transport: SyslogTransport::Udp,
            facility: Facility::Local4,
            app_name: "danxia".into(),
            hostname: "fw-1".into(),
        }
    }

    fn outgoing(rule: &str, key: &str, title: &str, risk: Risk) -> Outgoing {
        Outgoing {
            rule: Arc::from(rule),
            risk,
            key: key.into(),
            title: title.into(),
            alert_id: "abc-1".into(),
            body: serde_json::json!({"a": 1}),
            // 2024-01-02T03:04:05.123456Z
            at: SystemTime::UNIX_EPOCH + Duration::from_micros(1_704_164_645_123_456),
        }
    }

    #[test]
    fn message_layout() {
        let h = Header::new(&cfg());
        let msg = h.format(&outgoing("r1", "k", "who did what", Risk::High));
        let pid = std::process::id();
        assert_eq!(
            msg,
            format!(
                "<163>1 2024-01-02T03:04:05.123456Z fw-1 danxia {pid} alert \
                 [danxia@32473 rule=\"r1\" risk=\"high\" key=\"k\"] \u{feff}who did what {{\"a\":1}}"
            )
        );
    }

    #[test]
    fn pri_is_facility_times_8_plus_severity() {
        let mut c = cfg();
        for (facility, risk, want) in [
            (Facility::Kern, Risk::Critical, "<2>"),
            (Facility::Local4, Risk::Low, "<165>"),
            (Facility::Local7, Risk::Medium, "<188>"),
            (Facility::Auth, Risk::High, "<35>"),
        ] {
            c.facility = facility;
            let msg = Header::new(&c).format(&outgoing("r", "k", "t", risk));
            assert!(msg.starts_with(want), "{msg}");
        }
    }

    #[test]
    fn sd_params_are_escaped_and_title_controls_replaced() {
        let h = Header::new(&cfg());
        let msg = h.format(&outgoing(
            r#"r"1]\x"#,
            "a]b\"c",
            "line1\nline2\r",
            Risk::Low,
        ));
        assert!(
            msg.contains(r#"[danxia@32473 rule="r\"1\]\\x" risk="low" key="a\]b\"c"]"#),
            "{msg}"
        );
        assert!(msg.contains("\u{feff}line1 line2  {"), "{msg}");
    }

    #[test]
    fn header_fields_are_bounded_printable_ascii_or_nil() {
        assert_eq!(header_field("", 48), "-");
        assert_eq!(header_field("é ", 48), "-");
        assert_eq!(header_field("a b\tc", 48), "abc");
        assert_eq!(header_field(&"x".repeat(300), 255).len(), 255);
        let mut c = cfg();
        c.app_name = String::new();
        c.hostname = String::new();
        let h = Header::new(&c);
        assert_eq!(h.app_name, "-");
        assert!(h.hostname.len() <= 255 && is_print_us_ascii(&h.hostname));
    }

    #[test]
    fn udp_truncation_keeps_utf8() {
        let s = format!("ab{}", "中".repeat(5000));
        for max in [0, 1, 2, 3, 4, 5, 8192] {
            let t = truncate_utf8(&s, max);
            assert!(t.len() <= max && t.len() + 3 > max, "{max}: {}", t.len());
        }
        assert_eq!(truncate_utf8("short", 8192), "short");
    }
}
