//! Forwarding of audit records to the SOC's syslog collector
//! (`[audit.syslog]`): RFC 5424 messages whose MSG is the record's JSON line,
//! `seq` and `hash` included, so the SOC can correlate with the files.
//!
//! The file is the source of truth: the writer offers a record only after it
//! is written, and only with `try_send` into a bounded queue, so a slow or
//! dead collector never slows the writer or the traffic. Records that do not
//! fit are dropped and counted; failed sends are counted; both are logged at
//! most every `LOG_INTERVAL`. One thread of its own delivers, reusing the
//! alert sink's connection code (`alerts::syslog::SyslogConn`).
//!
//! Must never block the writer, and never send a message longer than
//! `max_message_bytes`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::Counter;
use tokio::sync::mpsc;

use super::event::{AuditEvent, EventKind};
use super::settings::AuditSyslogSettings;
use super::AuditError;
use crate::alerts::syslog::{
    header_field, machine_hostname, push_param_value, SyslogConn, BOM, MAX_APP_NAME_LEN,
    MAX_PROCID_LEN, SD_ID,
};
use crate::alerts::SyslogTransport;

const METRIC_SYSLOG: &str = "danxia_audit_syslog_events_total";
const THREAD_NAME: &str = "danxia-audit-syslog";
/// At most one log line per this interval about drops and failures.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// First pause after a failed send (and its immediate retry on a new
/// connection); doubles per further failure up to `MAX_BACKOFF`.
const BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// RFC 5424 §6.2.4 and §6.2.7.
const MAX_HOSTNAME_LEN: usize = 255;
const MAX_MSGID_LEN: usize = 32;
/// Room kept for the header and structured data when cutting a record.
const HEADER_ROOM: usize = 512;

/// RFC 5424 severities used.
const WARNING: u8 = 4;
const NOTICE: u8 = 5;
const INFORMATIONAL: u8 = 6;

/// One record waiting for the collector.
struct Item {
    severity: u8,
    kind: &'static str,
    line: Vec<u8>,
}

/// Counters of the forwarder, also exported as metrics.
struct Counters {
    sent: Counter,
    dropped: Counter,
    failed: Counter,
    dropped_n: AtomicU64,
    failed_n: AtomicU64,
    last_log: std::sync::Mutex<Option<Instant>>,
}

impl Counters {
    /// True at most once per `LOG_INTERVAL`.
    fn may_log(&self) -> bool {
        let mut last = self
            .last_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < LOG_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// The writer's handle to the forwarding thread. Dropping it lets the
/// thread send what is queued and end.
pub(crate) struct Forwarder {
    tx: mpsc::Sender<Item>,
    kinds: Vec<String>,
    decisions: Vec<String>,
    counters: Arc<Counters>,
}

impl Forwarder {
    /// Starts the delivery thread; nothing is connected before the first
    /// record.
    pub(crate) fn start(s: &AuditSyslogSettings) -> Result<Forwarder, AuditError> {
        let Some((tcp, address)) = s.transport() else {
            return Err(AuditError::InvalidSettings(format!(
                "audit.syslog.target {:?} is not udp://host:port or tcp://host:port",
                s.target
            )));
        };
        metrics::describe_counter!(
            METRIC_SYSLOG,
            "Audit records forwarded to syslog, by result: sent, dropped (queue full), failed (send error)."
        );
        let counters = Arc::new(Counters {
            sent: metrics::counter!(METRIC_SYSLOG, "result" => "sent"),
            dropped: metrics::counter!(METRIC_SYSLOG, "result" => "dropped"),
            failed: metrics::counter!(METRIC_SYSLOG, "result" => "failed"),
            dropped_n: AtomicU64::new(0),
            failed_n: AtomicU64::new(0),
            last_log: std::sync::Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(s.queue_capacity);
        let transport = if tcp {
            SyslogTransport::Tcp
        } else {
            SyslogTransport::Udp
        };
        let delivery = Delivery {
            header: Header::new(s),
            conn: SyslogConn::new(address, transport),
            max: s.max_message_bytes,
            counters: Arc::clone(&counters),
        };
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || delivery.run(rx))
            .map_err(|source| AuditError::Spawn { source })?;
        Ok(Forwarder {
            tx,
            kinds: s.kinds.clone(),
            decisions: s.decisions.clone(),
            counters,
        })
    }

    /// Whether `event` is forwarded: every record when both filters are
    /// empty, else those whose kind is in `kinds` or whose verdict is in
    /// `decisions` (`kinds = ["alert"]`, `decisions = ["denied"]`: denies
    /// and alerts).
    pub(crate) fn wants(&self, event: &AuditEvent) -> bool {
        if self.kinds.is_empty() && self.decisions.is_empty() {
            return true;
        }
        let kind = event.kind.map_or("", EventKind::as_str);
        self.kinds.iter().any(|k| k == kind)
            || event
                .verdict
                .is_some_and(|v| self.decisions.iter().any(|d| d == v))
    }

    /// Queues one written record (its line, newline included) without
    /// waiting; a full queue drops it and counts it.
    pub(crate) fn offer(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let (kind, severity) = classify(line);
        let item = Item {
            severity,
            kind,
            line: line.to_vec(),
        };
        if self.tx.try_send(item).is_err() {
            self.counters.dropped.increment(1);
            let n = self.counters.dropped_n.fetch_add(1, Ordering::Relaxed) + 1;
            if self.counters.may_log() {
                tracing::warn!(
                    dropped_total = n,
                    "audit syslog forwarding cannot keep up (collector slow or down): records dropped; they are still in the audit files"
                );
            }
        }
    }
}

/// The record's kind and the syslog severity for it, from the line's bytes
/// (the writer lays out `kind` and `verdict` the same way every time).
fn classify(line: &[u8]) -> (&'static str, u8) {
    let has = |needle: &[u8]| memchr::memmem::find(line, needle).is_some();
    let kind = super::event::KIND_NAMES
        .iter()
        .copied()
        .find(|k| has(format!("\"kind\":\"{k}\"").as_bytes()))
        .unwrap_or("audit");
    let severity = match kind {
        "alert" | "auth_failure" | "protocol_error" => WARNING,
        _ if has(b"\"verdict\":\"denied\"") => WARNING,
        "audit_recovery" | "audit_pruned" | "admin" => NOTICE,
        _ => INFORMATIONAL,
    };
    (kind, severity)
}

/// The fixed header fields of this process's audit messages.
struct Header {
    facility: u8,
    hostname: String,
    app_name: String,
    procid: String,
}

impl Header {
    fn new(s: &AuditSyslogSettings) -> Header {
        let hostname = if s.hostname.is_empty() {
            machine_hostname()
        } else {
            s.hostname.clone()
        };
        Header {
            facility: s.facility.code(),
            hostname: header_field(&hostname, MAX_HOSTNAME_LEN),
            app_name: header_field(&s.app_name, MAX_APP_NAME_LEN),
            procid: header_field(&std::process::id().to_string(), MAX_PROCID_LEN),
        }
    }

    /// `<PRI>1 TS HOST APP PROCID KIND [danxia@32473 seq="N"] BOM{record}`,
    /// TS being the record's `ts`; a record too long for `max` bytes has its
    /// statement cut (and says so) so the JSON stays valid.
    fn format(&self, item: &Item, max: usize) -> String {
        let line = String::from_utf8_lossy(&item.line);
        let head: Option<Head> = serde_json::from_str(&line).ok();
        let (seq, ts) = head
            .as_ref()
            .map_or((0, "-".to_string()), |h| (h.seq, h.ts.clone()));
        let pri = u16::from(self.facility) * 8 + u16::from(item.severity);
        let mut msg = format!(
            "<{pri}>1 {} {} {} {} {} [{SD_ID} seq=\"{seq}\" kind=\"",
            header_field(&ts, 64),
            self.hostname,
            self.app_name,
            self.procid,
            header_field(item.kind, MAX_MSGID_LEN),
        );
        push_param_value(&mut msg, item.kind);
        msg.push_str("\"] ");
        msg.push_str(BOM);
        if msg.len() + line.len() <= max {
            msg.push_str(&line);
        } else {
            msg.push_str(&shorten(&line, max.saturating_sub(msg.len())));
        }
        msg
    }
}

#[derive(serde::Deserialize)]
struct Head {
    seq: u64,
    ts: String,
}

/// The record with its longest text fields cut so that it fits `budget`
/// bytes, plus `"truncated": <original bytes>`; if that is not enough, only
/// its chain and identity fields.
fn shorten(line: &str, budget: usize) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return String::from("{\"truncated\":true}");
    };
    map.insert("truncated".into(), serde_json::Value::from(line.len()));
    let room = budget.saturating_sub(HEADER_ROOM / 4);
    for field in [
        "statement",
        "params",
        "error",
        "detail",
        "evidence",
        "parse_error",
    ] {
        let now = serde_json::to_string(&map).map_or(usize::MAX, |s| s.len());
        if now <= room {
            break;
        }
        let Some(value) = map.get_mut(field) else {
            continue;
        };
        let text = match &*value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let keep = text.len().saturating_sub(now - room + 16);
        let cut = crate::alerts::dedup::floor_char_boundary(&text, keep);
        *value = serde_json::Value::String(format!("{}…", &text[..cut]));
    }
    let text = serde_json::to_string(&map).unwrap_or_default();
    if text.len() <= budget {
        return text;
    }
    let keep = [
        "seq",
        "ts",
        "kind",
        "session",
        "listener",
        "client",
        "user",
        "database",
        "verdict",
        "rule",
        "outcome",
        "prev",
        "hash",
        "truncated",
    ];
    map.retain(|k, _| keep.contains(&k.as_str()));
    serde_json::to_string(&map).unwrap_or_default()
}

/// The delivery thread's state.
struct Delivery {
    header: Header,
    conn: SyslogConn,
    max: usize,
    counters: Arc<Counters>,
}

impl Delivery {
    fn run(mut self, rx: mpsc::Receiver<Item>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the audit syslog forwarder: records are not forwarded");
                return;
            }
        };
        runtime.block_on(self.deliver_all(rx));
    }

    async fn deliver_all(&mut self, mut rx: mpsc::Receiver<Item>) {
        let mut backoff = BACKOFF;
        while let Some(item) = rx.recv().await {
            let msg = self.header.format(&item, self.max);
            let mut result = self.conn.send_once(&msg).await;
            if result.is_err() {
                // The collector may have restarted: one more try on a new
                // connection before the record counts as failed.
                self.conn.disconnect();
                result = self.conn.send_once(&msg).await;
            }
            match result {
                Ok(()) => {
                    self.counters.sent.increment(1);
                    backoff = BACKOFF;
                }
                Err(err) => {
                    self.conn.disconnect();
                    self.counters.failed.increment(1);
                    let n = self.counters.failed_n.fetch_add(1, Ordering::Relaxed) + 1;
                    if self.counters.may_log() {
                        tracing::warn!(endpoint = %self.conn.address(), error = %err, failed_total = n, retry_in = ?backoff,
                            "audit syslog forwarding failed; records are still in the audit files");
                    }
                    // Records arriving meanwhile wait in the bounded queue
                    // (and are dropped when it is full).
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AuditSyslogSettings {
        AuditSyslogSettings {
            target: "udp://127.0.0.1:514".into(),
            hostname: "fw-1".into(),
            ..Default::default()
        }
    }

    const LINE: &str = r#"{"seq":7,"ts":"2026-11-26T03:04:05.123456Z","kind":"statement","user":"alice","statement":"select 1","verdict":"denied","prev":"00","hash":"ab"}"#;

    #[test]
    fn messages_are_rfc5424_with_the_record_as_msg() {
        let h = Header::new(&settings());
        let (kind, severity) = classify(LINE.as_bytes());
        assert_eq!((kind, severity), ("statement", WARNING));
        let item = Item {
            severity,
            kind,
            line: LINE.as_bytes().to_vec(),
        };
        let msg = h.format(&item, 8192);
        let pid = std::process::id();
        assert_eq!(
            msg,
            format!(
                "<164>1 2026-11-26T03:04:05.123456Z fw-1 danxia {pid} statement [danxia@32473 seq=\"7\" kind=\"statement\"] \u{feff}{LINE}"
            )
        );
    }

    #[test]
    fn long_records_are_cut_and_stay_json() {
        let h = Header::new(&settings());
        let long = LINE.replace("select 1", &format!("select '{}'", "中".repeat(3000)));
        let item = Item {
            severity: INFORMATIONAL,
            kind: "statement",
            line: long.as_bytes().to_vec(),
        };
        let msg = h.format(&item, 2048);
        assert!(msg.len() <= 2048, "{}", msg.len());
        let json = msg.split_once(BOM).expect("BOM").1;
        let v: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["hash"], "ab");
        assert_eq!(v["truncated"], long.len());
        assert!(v["statement"]
            .as_str()
            .expect("kept")
            .starts_with("select '中"));
    }

    #[test]
    fn filters_and_severities() {
        let (tx, _rx) = mpsc::channel(1);
        let counters = Arc::new(Counters {
            sent: Counter::noop(),
            dropped: Counter::noop(),
            failed: Counter::noop(),
            dropped_n: AtomicU64::new(0),
            failed_n: AtomicU64::new(0),
            last_log: std::sync::Mutex::new(None),
        });
        let f = Forwarder {
            tx,
            kinds: vec!["alert".into()],
            decisions: vec!["denied".into()],
            counters,
        };
        let ev = |kind, verdict| AuditEvent {
            kind: Some(kind),
            verdict,
            ..Default::default()
        };
        assert!(f.wants(&ev(EventKind::Statement, Some("denied"))));
        assert!(!f.wants(&ev(EventKind::Statement, Some("allowed"))));
        assert!(!f.wants(&ev(EventKind::SessionStart, None)));
        assert!(f.wants(&ev(EventKind::Alert, Some("allowed"))));
        // A full queue drops and counts, never blocks.
        f.offer(LINE.as_bytes());
        f.offer(LINE.as_bytes());
        assert_eq!(f.counters.dropped_n.load(Ordering::Relaxed), 1);
        assert_eq!(
            classify(br#"{"seq":1,"kind":"session_start"}"#),
            ("session_start", INFORMATIONAL)
        );
        assert_eq!(
            classify(br#"{"seq":1,"kind":"audit_pruned"}"#),
            ("audit_pruned", NOTICE)
        );
    }
}
