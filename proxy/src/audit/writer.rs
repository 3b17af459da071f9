//! The audit writer: a bounded queue from the sessions to one dedicated
//! thread that chains, writes, rotates and syncs the audit files.
//!
//! Owns the queue policy (`on_full`), the disk-failure policy (`on_error`),
//! durability (`fsync`) and rotation. Must never block a tokio worker on file
//! I/O (all I/O happens on its own thread), never write a partial record
//! where a later record follows it, and never skip a seq: events lost to a
//! failing disk (with `on_error = "continue"`) are rolled out of the chain and
//! counted in an `audit_recovery` record once writing works again.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::anchor::{self, Anchor};
use super::chain::{self, Chain};
use super::event::{AuditEvent, EventKind};
use super::files;
use super::forward::Forwarder;
use super::prune;
use super::resume::{self, Resume, ResumeFile};
use super::settings::{AuditSettings, Fsync, OnError, OnFull, StatementText};
use super::AuditError;

/// Lock file in the audit directory: held (flock) by the one writer of the
/// chain, so a second danxia or `danxia audit prune` cannot fork it.
const LOCK_FILE: &str = "audit.lock";

/// Most events taken from the queue per wake-up: bounds the time between
/// two queue-depth updates and between a batch's first event and its write.
const MAX_BATCH_EVENTS: usize = 1024;

/// Encoded bytes kept in memory before they are written, even mid-batch:
/// bounds memory when events carry large statements.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// First wait before retrying a failed write with `on_error = "block"`.
const RETRY_BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest wait between two retries: the disk is checked at least this often.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Once shutdown is requested, how long a failing write is still retried
/// (with `on_error = "block"`) before the remaining events are given up, so
/// a dead disk cannot hold the process forever.
const SHUTDOWN_RETRY_WINDOW: Duration = Duration::from_secs(5);

/// At most one log line per this interval for repeated conditions (queue
/// full, writer stopped, failures with `on_error = "continue"`).
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How often `AuditTask::shutdown` retries to queue its close message while
/// the queue is full.
const CLOSE_RETRY: Duration = Duration::from_millis(1);

const THREAD_NAME: &str = "danxia-audit";
/// After a partial batch, the writer sleeps this long before looking again
/// (except with `fsync = "every"`). Under load this turns one thread wake-up
/// per statement (a futex call by a session plus a context switch on a
/// 2-core machine) into one per ~linger; the cost is up to this much extra
/// delay before an event reaches the page cache, never a lost event.
const BATCH_LINGER: Duration = Duration::from_millis(10);

const METRIC_WRITTEN: &str = "danxia_audit_events_written_total";
const METRIC_DROPPED: &str = "danxia_audit_events_dropped_total";
const METRIC_WRITE_FAILURES: &str = "danxia_audit_write_failures_total";
const METRIC_ROTATED: &str = "danxia_audit_files_rotated_total";
const METRIC_QUEUE_DEPTH: &str = "danxia_audit_queue_depth";
const METRIC_HEALTHY: &str = "danxia_audit_healthy";
const METRIC_PRUNED: &str = "danxia_audit_pruned_files_total";
const METRIC_OLDEST: &str = "danxia_audit_oldest_record_timestamp_seconds";

/// Counts of one writer's life, returned by `AuditTask::shutdown`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records written, including the writer's own `audit_recovery` records.
    pub written: u64,
    /// Events lost: write errors with `on_error = "continue"` (or at a
    /// shutdown that gave up), events that could not be encoded, and events
    /// offered after the writer stopped.
    pub failed: u64,
    /// Events dropped because the queue was full (`on_full = "drop"`, or
    /// `Auditor::try_record`).
    pub dropped: u64,
    /// Failed write, open or fsync attempts, retries included.
    pub write_errors: u64,
    /// Files closed because of size or day rotation.
    pub files_rotated: u64,
    /// Files removed or archived by retention.
    pub pruned_files: u64,
}

/// An event with the time it was recorded: the record's `ts` is when the
/// session handed it over, not when the writer got to it.
struct Stamped {
    ts: OffsetDateTime,
    event: AuditEvent,
    /// With `fsync = "every"`: told once the event is written and fsynced
    /// (or given up under `on_error = "continue"`), so the session forwards
    /// the statement's result only after its record is on disk. `None` in
    /// the other modes, which cost no more than before.
    done: Option<oneshot::Sender<()>>,
}

// Boxing the event would cost an allocation per record; `Close` is sent once.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Event(Stamped),
    /// Sent by `AuditTask::shutdown`: close the queue, drain it, stop.
    Close,
    /// Prune files whose newest record is older than this, now
    /// (`danxia audit prune`).
    Prune(OffsetDateTime),
}

/// Metric handles, registered once at start (install the recorder first).
#[derive(Clone)]
struct Metrics {
    written: Counter,
    dropped: Counter,
    write_failures: Counter,
    rotated: Counter,
    queue_depth: Gauge,
    healthy: Gauge,
    pruned: Counter,
    oldest: Gauge,
}

impl Metrics {
    fn register() -> Metrics {
        metrics::describe_counter!(METRIC_WRITTEN, "Audit records written to disk.");
        metrics::describe_counter!(
            METRIC_DROPPED,
            "Audit events dropped because the queue was full (audit.on_full = \"drop\")."
        );
        metrics::describe_counter!(
            METRIC_WRITE_FAILURES,
            "Failed audit write, open or fsync attempts, retries included."
        );
        metrics::describe_counter!(METRIC_ROTATED, "Audit files closed by rotation.");
        metrics::describe_gauge!(METRIC_QUEUE_DEPTH, "Events waiting for the audit writer.");
        metrics::describe_gauge!(
            METRIC_HEALTHY,
            "1 while audit writes succeed, 0 while they fail."
        );
        metrics::describe_counter!(
            METRIC_PRUNED,
            "Audit files removed or archived because they were older than audit.retention."
        );
        metrics::describe_gauge!(
            METRIC_OLDEST,
            "Unix time of the oldest audit record still in audit.dir: how far back the log reaches."
        );
        Metrics {
            pruned: metrics::counter!(METRIC_PRUNED),
            oldest: metrics::gauge!(METRIC_OLDEST),
            written: metrics::counter!(METRIC_WRITTEN),
            dropped: metrics::counter!(METRIC_DROPPED),
            write_failures: metrics::counter!(METRIC_WRITE_FAILURES),
            rotated: metrics::counter!(METRIC_ROTATED),
            queue_depth: metrics::gauge!(METRIC_QUEUE_DEPTH),
            healthy: metrics::gauge!(METRIC_HEALTHY),
        }
    }
}

/// Allows one log line per `LOG_INTERVAL`, lock-free, from any thread.
struct RateLimit {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last allowed line; `u64::MAX` for
    /// never.
    last_ms: AtomicU64,
}

impl RateLimit {
    fn new() -> RateLimit {
        RateLimit {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
        }
    }

    fn allow(&self) -> bool {
        let interval = u64::try_from(LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != u64::MAX && now.saturating_sub(last) < interval {
            return false;
        }
        self.last_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// State shared by the `Auditor` clones, the task handle and the thread.
struct Shared {
    healthy: AtomicBool,
    /// Set by `shutdown`, read by the retry loop.
    closing: AtomicBool,
    /// `danxia audit prune`'s writer: prunes only on request.
    manual_prune: AtomicBool,
    dropped: AtomicU64,
    /// Events offered after the writer stopped.
    rejected: AtomicU64,
    drop_log: RateLimit,
    stop_log: RateLimit,
    metrics: Metrics,
    /// Test hook: the writer waits here before each receive while closed.
    #[cfg(test)]
    gate: test_gate::Gate,
}

impl Shared {
    fn new(metrics: Metrics) -> Shared {
        metrics.healthy.set(1.0);
        Shared {
            healthy: AtomicBool::new(true),
            closing: AtomicBool::new(false),
            manual_prune: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            drop_log: RateLimit::new(),
            stop_log: RateLimit::new(),
            metrics,
            #[cfg(test)]
            gate: test_gate::Gate::default(),
        }
    }

    /// Sets the health flag and gauge; returns the previous value.
    fn set_healthy(&self, healthy: bool) -> bool {
        self.metrics.healthy.set(if healthy { 1.0 } else { 0.0 });
        self.healthy.swap(healthy, Ordering::SeqCst)
    }
}

/// The sessions' handle: cheap to clone, one per session is fine.
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    settings: Arc<AuditSettings>,
}

impl Auditor {
    /// Queues one event, stamped with the current time. With
    /// `on_full = "block"` it waits for queue space (nothing is lost; a slow
    /// disk slows the session); with `"drop"` a full queue drops the event,
    /// counts it and answers `Err(QueueFull)`. Answers `Err(WriterStopped)`
    /// (counted and logged, rate-limited) once the writer has stopped, so
    /// the caller can end the session. Never panics. If the future is
    /// dropped while waiting for space, the event is not recorded.
    ///
    /// With `fsync = "every"` it also waits until the writer has written
    /// and fsynced the event: a session that records a statement's event
    /// before forwarding its completion then never acknowledges a statement
    /// whose record a crash (kill -9) could still lose. The writer answers
    /// every event of a batch after the batch's one fsync (group commit),
    /// so concurrent sessions share fsyncs; the other modes return as soon
    /// as the event is queued.
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let (done, written) = if self.settings.fsync == Fsync::Every {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let msg = Msg::Event(Stamped {
            ts: OffsetDateTime::now_utc(),
            event,
            done,
        });
        match self.settings.on_full {
            OnFull::Block => self.tx.send(msg).await.map_err(|_| self.stopped())?,
            OnFull::Drop => self.offer(msg)?,
        }
        match written {
            // The writer drops the sender unanswered only when it stops
            // (or panics) with the event still queued.
            Some(rx) => rx.await.map_err(|_| self.stopped()),
            None => Ok(()),
        }
    }

    /// Queues one event without waiting, for code that cannot await (`Drop`
    /// impls): a full queue drops the event and counts it, whatever
    /// `on_full` says.
    pub fn try_record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.offer(Msg::Event(Stamped {
            ts: OffsetDateTime::now_utc(),
            event,
            done: None,
        }))
    }

    /// Events waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// False while writes are failing and after the writer stopped: wire it
    /// into readiness so a load balancer stops sending traffic.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::SeqCst)
    }

    pub fn settings(&self) -> &AuditSettings {
        &self.settings
    }

    fn offer(&self, msg: Msg) -> Result<(), AuditError> {
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.shared.metrics.dropped.increment(1);
                if self.shared.drop_log.allow() {
                    tracing::warn!(
                        dropped_total = dropped,
                        capacity = self.settings.queue_capacity,
                        "audit queue full: events are being dropped"
                    );
                }
                Err(AuditError::QueueFull {
                    capacity: self.settings.queue_capacity,
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.stopped()),
        }
    }

    fn stopped(&self) -> AuditError {
        let rejected = self.shared.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared.metrics.write_failures.increment(1);
        if self.shared.stop_log.allow() {
            tracing::error!(
                rejected_total = rejected,
                dir = %self.settings.dir.display(),
                "audit writer has stopped: events cannot be recorded"
            );
        }
        AuditError::WriterStopped
    }
}

/// The writer thread's handle. Call `shutdown` before the process exits:
/// dropping it instead leaves the thread running until every `Auditor` is
/// gone, and nobody learns whether the last records reached the disk.
pub struct AuditTask {
    control: mpsc::Sender<Msg>,
    thread: JoinHandle<WriterStats>,
    shared: Arc<Shared>,
    dir: PathBuf,
}

impl AuditTask {
    /// Closes the queue (later `record` calls answer `WriterStopped`), writes
    /// everything still queued, fsyncs (unless `fsync = "none"`) and joins
    /// the thread. Blocks until then: from async code run it on the blocking
    /// pool (`tokio::task::spawn_blocking(move || task.shutdown())`). With
    /// `on_error = "block"` and a failing disk it keeps retrying for about
    /// `SHUTDOWN_RETRY_WINDOW` more, then gives up and counts what is left
    /// in `failed`.
    pub fn shutdown(self) -> Result<WriterStats, AuditError> {
        let AuditTask {
            control,
            thread,
            shared,
            dir,
        } = self;
        shared.closing.store(true, Ordering::SeqCst);
        // Polls rather than `blocking_send`, which panics if this is called
        // on a runtime thread by mistake; the writer frees space quickly.
        let mut close = Msg::Close;
        loop {
            match control.try_send(close) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(msg)) => {
                    close = msg;
                    std::thread::sleep(CLOSE_RETRY);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::warn!(dir = %dir.display(), "audit writer had already stopped");
                    break;
                }
            }
        }
        drop(control);
        match thread.join() {
            Ok(mut stats) => {
                stats.dropped = shared.dropped.load(Ordering::Relaxed);
                stats.failed += shared.rejected.load(Ordering::Relaxed);
                Ok(stats)
            }
            Err(_) => Err(AuditError::WriterPanicked { dir }),
        }
    }
}

/// Validates the settings, creates the directory, continues the chain found
/// on disk (cutting a torn tail, see `resume.rs`) and starts the writer
/// thread. Install the metrics recorder before calling it: the metric
/// handles are registered here, once.
pub fn start(settings: AuditSettings) -> Result<(Auditor, AuditTask), AuditError> {
    launch(settings, Arc::new(Shared::new(Metrics::register())))
}

fn launch(
    settings: AuditSettings,
    shared: Arc<Shared>,
) -> Result<(Auditor, AuditTask), AuditError> {
    settings.validate().map_err(AuditError::InvalidSettings)?;
    let lock = lock_dir(&settings.dir)?;
    let mut resume = resume::resume(&settings.dir, settings.hash)?;
    let anchored = match anchor::read(&settings.dir) {
        Ok(a) => a,
        Err(e) => {
            resume.notes.push(format!(
                "the anchor file is unusable ({e}); it is rewritten at the next rotation"
            ));
            None
        }
    };
    if let Some(a) = &anchored {
        let reached = resume.chain.next_seq.saturating_sub(1);
        if reached < a.seq {
            resume.notes.push(format!(
                "the files end at seq {reached}, but {} written {} saw seq {}: records were removed while danxia was stopped",
                anchor::ANCHOR_FILE, a.written, a.seq
            ));
        }
    }
    let forwarder = match &settings.syslog {
        Some(s) => Some(Forwarder::start(s)?),
        None => None,
    };
    let (tx, rx) = mpsc::channel(settings.queue_capacity);
    let settings = Arc::new(settings);
    let mut sink = Sink::new(Arc::clone(&settings), Arc::clone(&shared), resume);
    sink._lock = Some(lock);
    sink.first_kept = anchored.and_then(|a| a.first_kept_seq);
    sink.forwarder = forwarder;
    let thread = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || sink.run(rx))
        .map_err(|source| AuditError::Spawn { source })?;
    let task = AuditTask {
        control: tx.clone(),
        thread,
        shared: Arc::clone(&shared),
        dir: settings.dir.clone(),
    };
    Ok((
        Auditor {
            tx,
            shared,
            settings,
        },
        task,
    ))
}

/// Takes the directory's lock file, creating the directory first.
fn lock_dir(dir: &Path) -> Result<File, AuditError> {
    std::fs::create_dir_all(dir).map_err(|source| AuditError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| AuditError::Open {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AuditError::Locked {
            dir: dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(AuditError::Open { path, source }),
    }
}

/// `danxia audit prune`: a writer of its own prunes the directory up to
/// `before` and stops; answers how many files went.
pub(crate) fn prune_with_writer(
    settings: AuditSettings,
    before: OffsetDateTime,
) -> Result<usize, AuditError> {
    let shared = Arc::new(Shared::new(Metrics::register()));
    // Only what the operator asked for: no retention run of its own.
    shared.manual_prune.store(true, Ordering::SeqCst);
    let (auditor, task) = launch(settings, shared)?;
    let sent = auditor.tx.try_send(Msg::Prune(before)).is_ok();
    drop(auditor);
    let stats = task.shutdown()?;
    if !sent {
        return Err(AuditError::WriterStopped);
    }
    Ok(usize::try_from(stats.pruned_files).unwrap_or(usize::MAX))
}

/// The file records are appended to.
struct Current {
    path: PathBuf,
    /// Start time from the file name: daily rotation compares its UTC day.
    created: OffsetDateTime,
    /// Closed after an error and reopened (and repaired) on the next try.
    file: Option<File>,
    /// Bytes of complete records in the file.
    len: u64,
    /// Created by this writer and its directory entry not yet fsynced.
    new_entry: bool,
}

impl Current {
    /// The open file; reopens it after an error, cutting any bytes a failed
    /// write left after the last complete record (they belong to records
    /// that will be written again, or were given up).
    fn file(&mut self) -> Result<&mut File, AuditError> {
        let file = match self.file.take() {
            Some(file) => file,
            None => self.reopen()?,
        };
        Ok(self.file.insert(file))
    }

    fn reopen(&mut self) -> Result<File, AuditError> {
        let path = &self.path;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AuditError::Open {
                path: path.clone(),
                source,
            })?;
        let on_disk = file
            .metadata()
            .map_err(|source| AuditError::Read {
                path: path.clone(),
                source,
            })?
            .len();
        if on_disk > self.len {
            file.set_len(self.len)
                .map_err(|source| AuditError::Truncate {
                    path: path.clone(),
                    source,
                })?;
        } else if on_disk < self.len {
            tracing::error!(
                file = %path.display(),
                expected = self.len,
                found = on_disk,
                "audit file shrank while danxia was writing it: records were removed by something else; verify will report them"
            );
            self.len = on_disk;
        }
        Ok(file)
    }
}

/// A period of failing writes, reported in the chain once writes work again.
struct Outage {
    since: OffsetDateTime,
    attempts: u64,
    lost: u64,
    last_error: String,
}

/// The writer thread's state.
struct Sink {
    settings: Arc<AuditSettings>,
    shared: Arc<Shared>,
    /// The chain after the last record known to be in the file.
    committed: Chain,
    /// The chain after the last record in `pending`.
    tentative: Chain,
    current: Option<Current>,
    /// Encoded records not yet written: kept until the write succeeds, so a
    /// retry writes exactly the same bytes.
    pending: Vec<u8>,
    pending_records: u64,
    /// Session events in `pending` (the rest are the writer's own records).
    pending_events: u64,
    /// `pending` starts with the record describing `outage`.
    pending_outage_note: bool,
    /// Scratch buffer for one record, reused.
    record: Vec<u8>,
    /// Start-up notes, written as the first records.
    notes: Vec<String>,
    outage: Option<Outage>,
    last_sync: Instant,
    /// Written bytes not yet fsynced.
    unsynced: bool,
    /// When this thread first saw `closing`.
    closing_seen: Option<Instant>,
    /// A shutdown stopped retrying: every further failure is final.
    gave_up: bool,
    fail_log: RateLimit,
    stats: WriterStats,
    /// The directory lock, held for the writer's life.
    _lock: Option<File>,
    /// When retention last ran; `None` runs it at start.
    last_prune: Option<Instant>,
    /// The first seq the last pruning kept (carried into every anchor).
    first_kept: Option<u64>,
    /// Syslog forwarding of written records.
    forwarder: Option<Forwarder>,
    /// Byte ranges in `pending` of the records to forward once written.
    pending_forward: Vec<(usize, usize)>,
    /// `fsync = "every"`: sessions waiting for events in `pending` to be
    /// written and fsynced. Answered together after the one fsync that
    /// covers them all (group commit), so concurrent sessions share an
    /// fsync instead of queueing behind one each.
    durable_waiters: Vec<oneshot::Sender<()>>,
}

/// What placing one record into `pending` did.
enum Placed {
    Yes,
    /// Rotation needed a write that failed and was given up: the chain was
    /// rolled back, so the record must be encoded again.
    Again,
    /// The record could not be encoded.
    No,
}

/// Marks the writer unhealthy when its thread ends, even by a panic.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.set_healthy(false);
        self.0.metrics.queue_depth.set(0.0);
    }
}

impl Sink {
    fn new(settings: Arc<AuditSettings>, shared: Arc<Shared>, resume: Resume) -> Sink {
        let current = resume
            .current
            .map(|ResumeFile { path, created, len }| Current {
                path,
                created,
                file: None,
                len,
                new_entry: false,
            });
        Sink {
            settings,
            shared,
            committed: resume.chain.clone(),
            tentative: resume.chain,
            current,
            pending: Vec::new(),
            pending_records: 0,
            pending_events: 0,
            pending_outage_note: false,
            durable_waiters: Vec::new(),
            record: Vec::new(),
            notes: resume.notes,
            outage: None,
            last_sync: Instant::now(),
            unsynced: false,
            closing_seen: None,
            gave_up: false,
            fail_log: RateLimit::new(),
            stats: WriterStats::default(),
            _lock: None,
            last_prune: None,
            first_kept: None,
            forwarder: None,
            pending_forward: Vec::new(),
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Msg>) -> WriterStats {
        let _guard = StopGuard(Arc::clone(&self.shared));
        // A timer for `fsync = "batch"`: records written at the end of a
        // burst are synced within `fsync_interval` even if no event follows.
        // Also wakes the writer for retention when no event comes.
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| {
                tracing::warn!(error = %e, "no timer for the audit writer: records are synced and files pruned with the next batch instead");
            })
            .ok();

        let now = OffsetDateTime::now_utc();
        for note in std::mem::take(&mut self.notes) {
            self.add_record(now, &recovery_event(note), false);
        }
        self.commit(self.settings.fsync != Fsync::None);
        self.maybe_prune();

        let mut batch = Vec::with_capacity(MAX_BATCH_EVENTS);
        loop {
            #[cfg(test)]
            self.shared.gate.wait_open();
            let received = self.receive(&mut rx, timer.as_ref(), &mut batch);
            if received == 0 {
                break; // closed and drained
            }
            for msg in batch.drain(..) {
                match msg {
                    Msg::Event(stamped) => self.push_event(stamped),
                    Msg::Close => rx.close(),
                    Msg::Prune(before) => {
                        self.prune(before);
                    }
                }
            }
            self.end_batch();
            self.maybe_prune();
            self.shared.metrics.queue_depth.set(rx.len() as f64);
            if received < MAX_BATCH_EVENTS && self.settings.fsync != Fsync::Every && !rx.is_closed()
            {
                std::thread::sleep(BATCH_LINGER);
            }
        }
        self.finish();
        self.stats
    }

    /// Waits for the next batch; in `batch` mode, wakes up to fsync when
    /// `fsync_interval` passes with written records not yet synced.
    fn receive(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        timer: Option<&tokio::runtime::Runtime>,
        batch: &mut Vec<Msg>,
    ) -> usize {
        loop {
            // An interval too large for the clock means "no timer".
            let sync_at = match (self.settings.fsync, self.unsynced) {
                (Fsync::Batch, true) => self.last_sync.checked_add(self.settings.fsync_interval),
                _ => None,
            };
            let prune_at = self
                .last_prune
                .and_then(|t| t.checked_add(self.settings.prune_interval()))
                .filter(|_| !self.shared.manual_prune.load(Ordering::Relaxed));
            let deadline = match (timer, sync_at.into_iter().chain(prune_at).min()) {
                (Some(timer), Some(deadline)) => Some((timer, deadline)),
                _ => None,
            };
            let Some((timer, deadline)) = deadline else {
                return rx.blocking_recv_many(batch, MAX_BATCH_EVENTS);
            };
            let now = Instant::now();
            if now < deadline {
                // The timeout's timer must be created inside the runtime.
                let received = timer.block_on(async {
                    tokio::time::timeout(deadline - now, rx.recv_many(batch, MAX_BATCH_EVENTS))
                        .await
                });
                if let Ok(n) = received {
                    return n;
                }
            }
            if sync_at.is_some_and(|t| t <= Instant::now()) {
                self.sync();
            }
            self.maybe_prune();
        }
    }

    fn push_event(&mut self, mut stamped: Stamped) {
        if self.settings.statement_text == StatementText::None {
            stamped.event.statement = None;
        }
        self.add_record(stamped.ts, &stamped.event, true);
        match self.settings.fsync {
            Fsync::Every => {
                self.durable_waiters.extend(stamped.done);
                if self.pending.len() >= MAX_PENDING_BYTES {
                    self.commit_and_answer();
                }
            }
            Fsync::None | Fsync::Batch if self.pending.len() >= MAX_PENDING_BYTES => {
                self.commit(false);
            }
            Fsync::None | Fsync::Batch => {}
        }
    }

    fn end_batch(&mut self) {
        let sync = match self.settings.fsync {
            Fsync::None => false,
            Fsync::Every => return self.commit_and_answer(),
            Fsync::Batch => self.last_sync.elapsed() >= self.settings.fsync_interval,
        };
        self.commit(sync);
    }

    /// `fsync = "every"`: writes and fsyncs everything pending, then tells
    /// each waiting session its event is on disk, or was given up
    /// (`on_error = "continue"`, counted): either way the session may go
    /// on. A session that stopped waiting is no error.
    fn commit_and_answer(&mut self) {
        self.commit(true);
        for done in self.durable_waiters.drain(..) {
            let _ = done.send(());
        }
    }

    fn finish(&mut self) {
        if self.outage.is_some() && !self.pending_outage_note {
            let note = self.outage_event();
            if let Placed::Yes = self.place(OffsetDateTime::now_utc(), &note, false) {
                self.pending_outage_note = true;
            }
        }
        self.commit(self.settings.fsync != Fsync::None);
        // Answered only now that the last commit is done; any left
        // unanswered are dropped, which their sessions see as "stopped".
        for done in self.durable_waiters.drain(..) {
            let _ = done.send(());
        }
        self.write_anchor();
        // Dropping the forwarder lets its thread send what is queued and end.
        self.forwarder = None;
    }

    /// Runs retention when `prune_interval` has passed since the last run
    /// (or it never ran).
    fn maybe_prune(&mut self) {
        if self.shared.manual_prune.load(Ordering::Relaxed) {
            return;
        }
        let due = self
            .last_prune
            .is_none_or(|t| t.elapsed() >= self.settings.prune_interval());
        if !due {
            return;
        }
        self.last_prune = Some(Instant::now());
        let cutoff = OffsetDateTime::now_utc()
            - time::Duration::try_from(self.settings.retention).unwrap_or(time::Duration::MAX);
        self.prune(cutoff);
    }

    /// Prunes the files whose newest record is older than `cutoff`: first
    /// an `audit_pruned` record and the anchor reach the disk, then the
    /// files go. Returns how many went.
    fn prune(&mut self, cutoff: OffsetDateTime) -> usize {
        let sync = self.settings.fsync != Fsync::None;
        if !self.commit(sync) {
            return 0;
        }
        let keep = self.current.as_ref().map(|c| c.path.clone());
        let plan = match prune::plan(&self.settings.dir, cutoff, keep.as_deref()) {
            Ok(plan) => plan,
            Err(err) => {
                tracing::error!(error = %err, "audit retention: cannot plan pruning");
                return 0;
            }
        };
        let Some(range) = prune::range(&plan, self.settings.retention_action) else {
            self.update_oldest();
            return 0;
        };
        let event = AuditEvent {
            kind: Some(EventKind::AuditPruned),
            detail: Some(format!(
                "{} {} audit files whose newest record is older than {} (seq {}..{}); the chain continues from seq {}",
                range.action,
                range.files.len(),
                prune::record_ts(cutoff),
                range.first_seq,
                range.last_seq,
                range.last_seq.saturating_add(1)
            )),
            pruned: Some(range.clone()),
            ..Default::default()
        };
        let before = self.committed.next_seq;
        self.add_record(OffsetDateTime::now_utc(), &event, false);
        if !self.commit(sync) || self.committed.next_seq == before {
            tracing::error!(
                "audit retention: the audit_pruned record could not be written; nothing pruned"
            );
            return 0;
        }
        // A crash from here on leaves the record without its removal: the
        // next run plans the same files again.
        self.first_kept = Some(range.last_seq.saturating_add(1));
        if !self.write_anchor() {
            return 0;
        }
        let removed = match prune::execute(&plan, &self.settings) {
            Ok(bytes) => {
                tracing::info!(files = plan.len(), bytes, first_seq = range.first_seq, last_seq = range.last_seq, action = %range.action, "audit retention: pruned");
                plan.len()
            }
            Err(err) => {
                tracing::error!(error = %err, "audit retention: pruning stopped; the files left still verify");
                plan.iter().filter(|c| !c.file.path.exists()).count()
            }
        };
        self.stats.pruned_files += removed as u64;
        self.shared.metrics.pruned.increment(removed as u64);
        self.update_oldest();
        removed
    }

    /// Sets the oldest-record gauge from the oldest file's name.
    fn update_oldest(&self) {
        if let Ok(files) = files::list(&self.settings.dir) {
            if let Some(oldest) = files.first() {
                self.shared
                    .metrics
                    .oldest
                    .set(oldest.created.unix_timestamp() as f64);
            }
        }
    }

    /// Replaces the anchor with the last committed record. False (logged)
    /// when it could not be written.
    fn write_anchor(&mut self) -> bool {
        let Some(seq) = self.committed.next_seq.checked_sub(1).filter(|&s| s > 0) else {
            return true;
        };
        let a = Anchor {
            seq,
            hash: chain::to_hex(&self.committed.prev),
            written: prune::record_ts(OffsetDateTime::now_utc()),
            first_kept_seq: self.first_kept,
        };
        match anchor::write(&self.settings.dir, &a, self.settings.fsync != Fsync::None) {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(error = %err, dir = %self.settings.dir.display(), "cannot write the audit anchor file");
                false
            }
        }
    }

    /// Adds one record to `pending`, preceded by the record of a past
    /// outage when one is due.
    fn add_record(&mut self, ts: OffsetDateTime, event: &AuditEvent, counted: bool) {
        // A second attempt starts with `pending` empty, so `place` needs no
        // write and cannot answer `Again`; the note waits for the next record.
        for attempt in 0..2 {
            if attempt == 0 && self.pending.is_empty() && self.outage.is_some() {
                let note = self.outage_event();
                if let Placed::Yes = self.place(OffsetDateTime::now_utc(), &note, false) {
                    self.pending_outage_note = true;
                }
            }
            match self.place(ts, event, counted) {
                Placed::Yes | Placed::No => return,
                Placed::Again => {}
            }
        }
        tracing::error!("audit event lost: the writes before it keep failing");
        if counted {
            self.stats.failed += 1;
            if let Some(outage) = self.outage.as_mut() {
                outage.lost += 1;
            }
        }
    }

    /// Encodes one record and appends it to `pending`, rotating first when
    /// it would not fit the current file or starts a new day.
    fn place(&mut self, ts: OffsetDateTime, event: &AuditEvent, counted: bool) -> Placed {
        let before = self.tentative.clone();
        self.record.clear();
        if let Err(err) = self.tentative.append(ts, event, &mut self.record) {
            tracing::error!(error = %err, "audit event dropped");
            if counted {
                self.stats.failed += 1;
            }
            return Placed::No;
        }
        if self.needs_rotation(ts, self.record.len()) {
            // Write what is pending to the old file first; the chain of
            // `pending` ends before this record.
            let after = std::mem::replace(&mut self.tentative, before);
            if !self.pending.is_empty() && !self.commit(false) {
                return Placed::Again;
            }
            let first_seq = self.tentative.next_seq;
            self.tentative = after;
            self.rotate(ts, first_seq);
        }
        if let Some(fwd) = &self.forwarder {
            if fwd.wants(event) {
                let start = self.pending.len();
                self.pending_forward
                    .push((start, start + self.record.len()));
            }
        }
        self.pending.extend_from_slice(&self.record);
        self.pending_records += 1;
        if counted {
            self.pending_events += 1;
        }
        Placed::Yes
    }

    fn needs_rotation(&self, ts: OffsetDateTime, record_len: usize) -> bool {
        let Some(current) = &self.current else {
            return true;
        };
        let used = current.len + self.pending.len() as u64;
        if used == 0 {
            return false; // never leave an empty file behind
        }
        let too_big = used + record_len as u64 > self.settings.rotate_bytes;
        let new_day = self.settings.rotate_daily && ts.date() > current.created.date();
        too_big || new_day
    }

    /// Leaves the current file (synced, unless `fsync = "none"`) for a new
    /// one named after `first_seq`; the file is created by the next write.
    fn rotate(&mut self, ts: OffsetDateTime, first_seq: u64) {
        let ts = ts.to_offset(time::UtcOffset::UTC);
        if self.current.is_some() {
            if self.settings.fsync != Fsync::None {
                self.sync();
            }
            self.write_anchor();
            self.stats.files_rotated += 1;
            self.shared.metrics.rotated.increment(1);
        }
        self.current = Some(Current {
            path: self.settings.dir.join(files::file_name(ts, first_seq)),
            created: ts,
            file: None,
            len: 0,
            new_entry: true,
        });
    }

    /// Writes `pending` (applying `on_error`), then fsyncs if `sync`.
    /// Returns false when the records were given up: they are counted as
    /// failed and rolled out of the chain.
    fn commit(&mut self, sync: bool) -> bool {
        if self.pending.is_empty() {
            if sync {
                self.sync();
            }
            return true;
        }
        let attempts_before = self.stats.write_errors;
        match self.retry(Sink::write_pending) {
            Ok(()) => {
                if let Some(current) = self.current.as_mut() {
                    current.len += self.pending.len() as u64;
                }
                self.committed = self.tentative.clone();
                if let Some(fwd) = &self.forwarder {
                    for &(start, end) in &self.pending_forward {
                        if let Some(line) = self.pending.get(start..end) {
                            fwd.offer(line);
                        }
                    }
                }
                self.stats.written += self.pending_records;
                self.shared.metrics.written.increment(self.pending_records);
                if self.pending_outage_note && self.stats.write_errors == attempts_before {
                    self.outage = None;
                }
                self.clear_pending();
                self.unsynced = true;
                if sync {
                    self.sync();
                }
                true
            }
            Err(_) => {
                self.stats.failed += self.pending_events;
                if let Some(outage) = self.outage.as_mut() {
                    outage.lost += self.pending_events;
                }
                self.tentative = self.committed.clone();
                self.clear_pending();
                false
            }
        }
    }

    fn clear_pending(&mut self) {
        self.pending.clear();
        // One huge statement must not pin its buffer for the process's life.
        if self.pending.capacity() > 2 * MAX_PENDING_BYTES {
            self.pending.shrink_to(MAX_PENDING_BYTES);
        }
        if self.record.capacity() > 2 * MAX_PENDING_BYTES {
            self.record = Vec::new();
        }
        self.pending_records = 0;
        self.pending_events = 0;
        self.pending_outage_note = false;
        self.pending_forward.clear();
    }

    fn write_pending(&mut self) -> Result<(), AuditError> {
        let Some(current) = self.current.as_mut() else {
            return Err(AuditError::Write {
                path: self.settings.dir.clone(),
                source: std::io::Error::other("no audit file is open"),
            });
        };
        let file = current.file()?;
        if let Err(source) = file.write_all(&self.pending) {
            current.file = None; // reopen and cut the partial write
            return Err(AuditError::Write {
                path: current.path.clone(),
                source,
            });
        }
        Ok(())
    }

    /// Fsyncs the current file if it has unsynced records.
    fn sync(&mut self) {
        if !self.unsynced {
            return;
        }
        // A failure is counted and, with `block`, retried; what a failed
        // fsync lost cannot be known, so the outage record says it.
        let _ = self.retry(Sink::sync_current);
        self.unsynced = false;
        self.last_sync = Instant::now();
    }

    fn sync_current(&mut self) -> Result<(), AuditError> {
        let Some(current) = self.current.as_mut() else {
            return Ok(());
        };
        let path = current.path.clone();
        current
            .file()?
            .sync_data()
            .map_err(|source| AuditError::Sync { path, source })?;
        if current.new_entry {
            sync_dir(&self.settings.dir)?;
            current.new_entry = false;
        }
        Ok(())
    }

    /// Runs `op` under the `on_error` policy: `continue` fails at once;
    /// `block` retries with backoff until it succeeds (or a shutdown has
    /// waited `SHUTDOWN_RETRY_WINDOW`). Every failure is counted, logged and
    /// makes the writer unhealthy until the next success.
    fn retry(
        &mut self,
        mut op: impl FnMut(&mut Sink) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        let mut backoff = RETRY_BACKOFF_START;
        loop {
            let err = match op(self) {
                Ok(()) => {
                    if !self.shared.set_healthy(true) {
                        tracing::info!(dir = %self.settings.dir.display(), "audit writes work again");
                    }
                    return Ok(());
                }
                Err(err) => err,
            };
            self.stats.write_errors += 1;
            self.shared.metrics.write_failures.increment(1);
            self.shared.set_healthy(false);
            let outage = self.outage.get_or_insert_with(|| Outage {
                since: OffsetDateTime::now_utc(),
                attempts: 0,
                lost: 0,
                last_error: String::new(),
            });
            outage.attempts += 1;
            outage.last_error = err.to_string();

            if self.settings.on_error == OnError::Continue || self.gave_up {
                if self.fail_log.allow() {
                    tracing::error!(error = %err, "audit write failed; the events are lost (audit.on_error = \"continue\")");
                }
                return Err(err);
            }
            if self.shutdown_window_over() {
                self.gave_up = true;
                tracing::error!(error = %err, "audit write still failing at shutdown; giving up: the remaining events are lost");
                return Err(err);
            }
            tracing::error!(error = %err, retry_in = ?backoff, "audit write failed; retrying (audit.on_error = \"block\": sessions wait)");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }

    fn shutdown_window_over(&mut self) -> bool {
        if !self.shared.closing.load(Ordering::SeqCst) {
            return false;
        }
        let seen = *self.closing_seen.get_or_insert_with(Instant::now);
        seen.elapsed() >= SHUTDOWN_RETRY_WINDOW
    }

    fn outage_event(&self) -> AuditEvent {
        let detail = match &self.outage {
            Some(o) => format!(
                "audit writes failed from {} until now: {} failed attempts, {} events lost; last error: {}",
                o.since, o.attempts, o.lost, o.last_error
            ),
            None => "audit writes failed".into(),
        };
        recovery_event(detail)
    }
}

fn recovery_event(detail: String) -> AuditEvent {
    AuditEvent {
        kind: Some(EventKind::AuditRecovery),
        detail: Some(detail),
        ..Default::default()
    }
}

/// Makes a new file's directory entry durable: without it a power cut can
/// lose a whole fsynced file.
fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| AuditError::Sync {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod test_gate {
    use std::sync::{Condvar, Mutex, PoisonError};

    /// Lets a test hold the writer before it receives, to fill the queue.
    #[derive(Default)]
    pub(super) struct Gate {
        closed: Mutex<bool>,
        changed: Condvar,
    }

    impl Gate {
        pub(super) fn set_closed(&self, closed: bool) {
            *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = closed;
            self.changed.notify_all();
        }

        pub(super) fn wait_open(&self) {
            let mut closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
            while *closed {
                closed = self
                    .changed
                    .wait(closed)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::verify_dir;

    fn settings(dir: &Path) -> AuditSettings {
        AuditSettings {
            dir: dir.to_path_buf(),
            fsync_interval: Duration::from_millis(20),
            ..Default::default()
        }
    }

    fn statement(i: usize) -> AuditEvent {
        AuditEvent {
            kind: Some(EventKind::Statement),
            session: Some("s-1".into()),
            statement: Some(format!(
                "select {i} from t where pad = '{}'",
                "x".repeat(100)
            )),
            fingerprint: Some("0123456789abcdef".into()),
            ..Default::default()
        }
    }

    /// Starts a writer that waits before its first receive until
    /// `shared.gate` opens, so a test can fill the queue.
    fn start_paused(settings: AuditSettings) -> (Auditor, AuditTask) {
        let shared = Arc::new(Shared::new(Metrics::register()));
        shared.gate.set_closed(true);
        launch(settings, shared).expect("starts")
    }

    /// Every record in the directory, in chain order.
    fn records(dir: &Path) -> Vec<serde_json::Value> {
        files::list(dir)
            .expect("lists")
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(&f.path).expect("read");
                text.lines()
                    .map(|l| serde_json::from_str(l).expect("JSON"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn statements(dir: &Path) -> Vec<String> {
        records(dir)
            .iter()
            .filter(|r| r["kind"] == "statement")
            .map(|r| r["statement"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    async fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Shuts down from async code the way the server does.
    async fn shutdown(task: AuditTask) -> WriterStats {
        tokio::task::spawn_blocking(move || task.shutdown())
            .await
            .expect("joins")
            .expect("shuts down")
    }

    async fn write_events(settings: AuditSettings, range: std::ops::Range<usize>) -> WriterStats {
        let (auditor, task) = start(settings).expect("starts");
        for i in range {
            auditor.record(statement(i)).await.expect("recorded");
        }
        shutdown(task).await
    }

    #[tokio::test]
    async fn events_written_in_every_fsync_mode_verify() {
        for fsync in [Fsync::None, Fsync::Batch, Fsync::Every] {
            let dir = tempfile::tempdir().expect("tempdir");
            let stats = write_events(
                AuditSettings {
                    fsync,
                    ..settings(dir.path())
                },
                0..50,
            )
            .await;
            assert_eq!(
                (
                    stats.written,
                    stats.failed,
                    stats.dropped,
                    stats.write_errors
                ),
                (50, 0, 0, 0),
                "{fsync:?}"
            );
            let report = verify_dir(dir.path()).expect("verifies");
            assert!(report.is_ok(), "{fsync:?}: {report}");
            assert_eq!(
                (report.records, report.first_seq, report.last_seq),
                (50, Some(1), Some(50))
            );
            let want: Vec<String> = (0..50)
                .map(|i| statement(i).statement.unwrap_or_default())
                .collect();
            assert_eq!(statements(dir.path()), want, "{fsync:?}");
        }
    }

    #[tokio::test]
    async fn a_restart_continues_the_same_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = write_events(settings(dir.path()), 0..30).await;
        let second = write_events(settings(dir.path()), 30..50).await;
        assert_eq!((first.written, second.written), (30, 20));
        let report = verify_dir(dir.path()).expect("verifies");
        assert!(report.is_ok(), "{report}");
        assert_eq!(
            (report.files, report.records, report.last_seq),
            (1, 50, Some(50))
        );
        assert_eq!(statements(dir.path()).len(), 50);
    }

    #[tokio::test]
    async fn size_rotation_spreads_one_chain_over_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rotate_bytes = crate::audit::settings::MIN_ROTATE_BYTES;
        let stats = write_events(
            AuditSettings {
                rotate_bytes,
                ..settings(dir.path())
            },
            0..100,
        )
        .await;
        let listed = files::list(dir.path()).expect("lists");
        assert!(listed.len() > 2, "{} files", listed.len());
        assert_eq!(stats.files_rotated, listed.len() as u64 - 1);
        let mut next_seq = 1;
        for f in &listed {
            let len = std::fs::metadata(&f.path).expect("stat").len();
            assert!(len <= rotate_bytes, "{} is {len} bytes", f.path.display());
            assert_eq!(
                f.first_seq,
                next_seq,
                "{} is named after its first seq",
                f.path.display()
            );
            let lines = std::fs::read_to_string(&f.path)
                .expect("read")
                .lines()
                .count();
            next_seq += lines as u64;
        }
        let report = verify_dir(dir.path()).expect("verifies");
        assert!(report.is_ok(), "{report}");
        assert_eq!((report.files, report.records), (listed.len(), 100));
    }

    #[test]
    fn a_new_utc_day_starts_a_new_file() {
        let day1 = time::macros::datetime!(2025-01-01 23:59:59.5 UTC);
        let day2 = time::macros::datetime!(2025-01-02 00:00:00.1 UTC);
        for (rotate_daily, want_files) in [(true, 2), (false, 1)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let settings = Arc::new(AuditSettings {
                rotate_daily,
                ..settings(dir.path())
            });
            let resume = resume::resume(dir.path(), settings.hash).expect("resumes");
            let shared = Arc::new(Shared::new(Metrics::register()));
            let mut sink = Sink::new(settings, shared, resume);
            for ts in [day1, day1, day2] {
                sink.push_event(Stamped {
                    ts,
                    event: statement(0),
                    done: None,
                });
            }
            sink.finish();
            let listed = files::list(dir.path()).expect("lists");
            assert_eq!(listed.len(), want_files, "rotate_daily = {rotate_daily}");
            assert_eq!(listed[0].created.date(), day1.date());
            if rotate_daily {
                assert_eq!(listed[1].created.date(), day2.date());
                assert_eq!(listed[1].first_seq, 3);
            }
            let report = verify_dir(dir.path()).expect("verifies");
            assert_eq!((report.records, report.is_ok()), (3, true), "{report}");
        }
    }

    #[test]
    fn continue_on_a_dead_disk_loses_events_without_looping() {
        // The directory's parent is a regular file: no audit file can ever
        // be created. The outage note and a day change force a write before
        // each rotation, which keeps failing.
        let root = tempfile::tempdir().expect("tempdir");
        let blocker = root.path().join("blocker");
        std::fs::write(&blocker, b"").expect("write");
        let settings = Arc::new(AuditSettings {
            on_error: OnError::Continue,
            ..settings(&blocker.join("audit"))
        });
        let resume = Resume {
            chain: Chain::genesis(settings.hash),
            current: None,
            notes: Vec::new(),
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let shared = Arc::new(Shared::new(Metrics::register()));
            let mut sink = Sink::new(settings, shared, resume);
            let day1 = time::macros::datetime!(2025-01-01 12:00 UTC);
            let day2 = time::macros::datetime!(2025-01-02 12:00 UTC);
            sink.push_event(Stamped {
                ts: day1,
                event: statement(0),
                done: None,
            });
            sink.end_batch();
            for ts in [day1, day2, day2] {
                sink.push_event(Stamped {
                    ts,
                    event: statement(1),
                    done: None,
                });
            }
            sink.finish();
            let _ = done_tx.send((sink.stats, sink.committed.next_seq));
        });
        let (stats, next_seq) = done_rx
            .recv_timeout(Duration::from_secs(3))
            .expect("the writer must not loop");
        assert_eq!((stats.written, stats.failed), (0, 4), "{stats:?}");
        assert!(stats.write_errors >= 2, "{stats:?}");
        assert_eq!(next_seq, 1, "lost events leave no gap in the chain");
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_recorded_on_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_events(settings(dir.path()), 0..10).await;
        let newest = files::list(dir.path())
            .expect("lists")
            .pop()
            .expect("a file");
        let torn = b"{\"seq\":11,\"ts\":\"2025-01-01T00:00";
        let mut f = OpenOptions::new()
            .append(true)
            .open(&newest.path)
            .expect("open");
        f.write_all(torn).expect("append");
        drop(f);

        let stats = write_events(settings(dir.path()), 10..15).await;
        assert_eq!(stats.written, 6, "5 events and one recovery record");
        let report = verify_dir(dir.path()).expect("verifies");
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.records, 16);
        let all = records(dir.path());
        assert_eq!(all[10]["kind"], "audit_recovery");
        assert_eq!(all[10]["seq"], 11);
        let detail = all[10]["detail"].as_str().expect("detail");
        let name = newest.path.file_name().expect("name").to_string_lossy();
        assert!(
            detail.contains(&format!("cut {} bytes", torn.len())) && detail.contains(&*name),
            "{detail}"
        );
        assert_eq!(statements(dir.path()).len(), 15);
    }

    #[tokio::test]
    async fn on_full_drop_drops_and_counts_when_the_queue_is_full() {
        let dir = tempfile::tempdir().expect("tempdir");
        let capacity = 2;
        let (auditor, task) = start_paused(AuditSettings {
            queue_capacity: capacity,
            on_full: OnFull::Drop,
            ..settings(dir.path())
        });
        let mut accepted = 0;
        let mut full = 0;
        for i in 0..5 {
            match auditor.record(statement(i)).await {
                Ok(()) => accepted += 1,
                Err(AuditError::QueueFull { capacity: c }) if c == capacity => full += 1,
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert!(matches!(
            auditor.try_record(statement(5)),
            Err(AuditError::QueueFull { .. })
        ));
        assert_eq!((accepted, full), (capacity, 5 - capacity));
        assert_eq!(auditor.queue_depth(), capacity);

        auditor.shared.gate.set_closed(false);
        let stats = shutdown(task).await;
        assert_eq!((stats.written, stats.dropped, stats.failed), (2, 4, 0));
        let report = verify_dir(dir.path()).expect("verifies");
        assert_eq!((report.records, report.is_ok()), (2, true), "{report}");
    }

    #[tokio::test]
    async fn on_full_block_waits_for_space_and_loses_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (auditor, task) = start_paused(AuditSettings {
            queue_capacity: 1,
            ..settings(dir.path())
        });
        auditor.record(statement(0)).await.expect("queued");
        let waiting = tokio::spawn({
            let auditor = auditor.clone();
            async move { auditor.record(statement(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "record must wait while the queue is full"
        );
        // `try_record` never waits, whatever `on_full` says.
        assert!(matches!(
            auditor.try_record(statement(2)),
            Err(AuditError::QueueFull { .. })
        ));

        auditor.shared.gate.set_closed(false);
        waiting.await.expect("joins").expect("recorded");
        let stats = shutdown(task).await;
        assert_eq!((stats.written, stats.dropped), (2, 1));
        assert_eq!(statements(dir.path()).len(), 2);
    }

    /// Replaces the audit directory by a regular file, which makes creating
    /// the next file fail even for root; returns where the directory went.
    fn break_dir(dir: &Path) -> PathBuf {
        let moved = dir.with_extension("moved");
        std::fs::rename(dir, &moved).expect("move the dir away");
        std::fs::write(dir, b"not a directory").expect("file in its place");
        moved
    }

    fn repair_dir(dir: &Path, moved: &Path) {
        std::fs::remove_file(dir).expect("remove the file");
        std::fs::rename(moved, dir).expect("move the dir back");
    }

    fn line_count(dir: &Path) -> usize {
        files::list(dir)
            .map(|l| {
                l.iter()
                    .map(|f| std::fs::read_to_string(&f.path).map_or(0, |t| t.lines().count()))
                    .sum()
            })
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn on_error_continue_counts_lost_events_and_keeps_the_chain_whole() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("audit");
        let (auditor, task) = start(AuditSettings {
            on_error: OnError::Continue,
            rotate_bytes: crate::audit::settings::MIN_ROTATE_BYTES,
            ..settings(&dir)
        })
        .expect("starts");
        for i in 0..5 {
            auditor.record(statement(i)).await.expect("recorded");
        }
        wait_for("the first records", || line_count(&dir) == 5).await;

        // The open file keeps taking records; the rotation cannot create
        // the next file.
        let moved = break_dir(&dir);
        for i in 5..45 {
            auditor.record(statement(i)).await.expect("queued");
        }
        wait_for("writes to fail", || !auditor.healthy()).await;
        let stats = shutdown(task).await;
        assert!(stats.failed > 0 && stats.write_errors > 0, "{stats:?}");
        assert_eq!(stats.written + stats.failed, 45, "{stats:?}");

        repair_dir(&dir, &moved);
        let report = verify_dir(&dir).expect("verifies");
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.records, stats.written);
    }

    #[tokio::test]
    async fn on_error_block_retries_until_the_disk_is_back() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("audit");
        let (auditor, task) = start(AuditSettings {
            rotate_bytes: crate::audit::settings::MIN_ROTATE_BYTES,
            ..settings(&dir)
        })
        .expect("starts");
        for i in 0..5 {
            auditor.record(statement(i)).await.expect("recorded");
        }
        wait_for("the first records", || line_count(&dir) == 5).await;

        let moved = break_dir(&dir);
        for i in 5..45 {
            auditor.record(statement(i)).await.expect("queued");
        }
        wait_for("writes to fail", || !auditor.healthy()).await;
        repair_dir(&dir, &moved);
        wait_for("writes to work again", || auditor.healthy()).await;
        let stats = shutdown(task).await;

        assert_eq!(stats.failed, 0, "{stats:?}");
        assert!(stats.write_errors > 0, "{stats:?}");
        let want: Vec<String> = (0..45)
            .map(|i| statement(i).statement.unwrap_or_default())
            .collect();
        assert_eq!(statements(&dir), want);
        let report = verify_dir(&dir).expect("verifies");
        assert!(report.is_ok(), "{report}");
        let notes: Vec<String> = records(&dir)
            .iter()
            .filter(|r| r["kind"] == "audit_recovery")
            .map(|r| r["detail"].as_str().unwrap_or_default().to_string())
            .collect();
        assert!(
            !notes.is_empty() && notes.iter().all(|n| n.contains(" 0 events lost")),
            "{notes:?}"
        );
    }

    #[tokio::test]
    async fn statement_text_none_is_enforced_by_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_events(
            AuditSettings {
                statement_text: StatementText::None,
                ..settings(dir.path())
            },
            0..3,
        )
        .await;
        let all = records(dir.path());
        assert_eq!(all.len(), 3);
        for r in all {
            assert!(r.get("statement").is_none(), "{r}");
            assert_eq!(r["fingerprint"], "0123456789abcdef");
        }
    }

    #[tokio::test]
    async fn recording_after_shutdown_reports_the_stopped_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (auditor, task) = start(settings(dir.path())).expect("starts");
        let survivor = auditor.clone();
        drop(auditor);
        shutdown(task).await;
        assert!(matches!(
            survivor.record(statement(0)).await,
            Err(AuditError::WriterStopped)
        ));
        assert!(matches!(
            survivor.try_record(statement(0)),
            Err(AuditError::WriterStopped)
        ));
        assert!(!survivor.healthy());
        assert_eq!(survivor.shared.rejected.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn invalid_settings_are_refused_before_anything_starts() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("audit");
        let err = start(AuditSettings {
            queue_capacity: 0,
            ..settings(&dir)
        })
        .err()
        .expect("refused");
        assert!(err.to_string().contains("audit.queue_capacity"), "{err}");
        assert!(!dir.exists(), "nothing created for invalid settings");
    }
}
