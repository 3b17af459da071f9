//! Matches the backend's answers to the statements the client sent, so that
//! each statement gets exactly one audit event with its rows, bytes,
//! duration and outcome. Owns the in-flight queue of one session; knows
//! nothing of sockets.
//!
//! PostgreSQL answers strictly in order. A simple Query is done at
//! ReadyForQuery and yields one CommandComplete (or EmptyQueryResponse, or
//! one ErrorResponse that ends the rest) per statement. In the extended
//! protocol each Parse gets ParseComplete, each Execute a CommandComplete,
//! EmptyQueryResponse or PortalSuspended, and after an error the backend
//! skips everything up to Sync, which gets ReadyForQuery.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use danxia_detectors::Operation;
use danxia_protocols::pg::backend::{self as be};

use super::encoding::LexState;
use super::results::{ExecuteShape, Summary};
use crate::analysis::Statement;
use crate::audit::statement::{add_summary, describe_statement, RESULT_CUT};
use crate::audit::{AuditEvent, EventKind, Outcome, StatementText};
use crate::listener::ListenerCtx;

/// Who a session is (the shared audit identity, protocol `postgres`).
pub type Identity = crate::audit::statement::SessionIdentity;

/// Something the client sent that the backend will answer.
#[derive(Debug)]
pub enum Pending {
    Query {
        stmts: VecDeque<Statement>,
        started: Instant,
        bytes_in: u64,
        /// Statements of this Query already completed (for the
        /// first-statement-gets-the-bytes rule and to know the split held).
        done: usize,
        errored: bool,
        /// When the previous statement of this Query completed: each
        /// statement's duration runs from there.
        last: Instant,
    },
    Parse {
        stmt: Arc<Statement>,
        started: Instant,
    },
    Execute {
        stmt: Option<Arc<Statement>>,
        started: Instant,
        /// Bytes of this Execute and the Parse/Bind/… messages before it.
        bytes_in: u64,
        /// How to read its rows (names and formats), for `results.rs`.
        shape: Option<Box<ExecuteShape>>,
        /// Digest of its Bind's parameter values (behaviour baselines
        /// count distinct values per statement shape).
        values: Option<u64>,
    },
    /// A Describe: its RowDescription (or NoData) is remembered as the
    /// shape of the statement or portal. `injected`: danxia sent it (to
    /// learn a masked portal's column names), so its answer is swallowed.
    Describe {
        portal: bool,
        name: Box<[u8]>,
        injected: bool,
        /// The answer is worth decoding and keeping (a masked statement).
        keep: bool,
    },
    Sync,
    FunctionCall {
        oid: u32,
        started: Instant,
        /// Already recorded (it failed); ReadyForQuery only removes it.
        done: bool,
    },
    /// A message the policy refused; the backend got a poison in its place
    /// (see `enforce.rs`) and answers it with an error the tracker swaps
    /// for `reply`.
    Denied {
        /// Every statement of the refused message (one for Parse/Bind).
        stmts: Vec<Statement>,
        /// Which of them the policy refused.
        index: usize,
        simple: bool,
        started: Instant,
        bytes_in: u64,
        /// The ErrorResponse the client gets instead of the server's.
        reply: bytes::BytesMut,
        /// Record audit events (false for a Describe of a refused name,
        /// which runs nothing).
        emit: bool,
        /// The error has been answered; a simple Query still waits for
        /// ReadyForQuery.
        answered: bool,
    },
}

/// What the relay does with a backend message after the tracker saw it.
#[derive(Debug)]
pub enum Handled {
    /// Forward it as it is.
    Forward,
    /// It completes something but nothing is pending yet: drain the queue
    /// from the client side and call again.
    NothingPending,
    /// Send these bytes to the client instead of the message.
    Replace(bytes::BytesMut),
    /// It answers a Describe (RowDescription or NoData): remember the
    /// shape; forward it unless danxia sent the Describe.
    Described {
        portal: bool,
        name: Box<[u8]>,
        injected: bool,
        keep: bool,
    },
}

impl Pending {
    pub fn query(stmts: Vec<Statement>, started: Instant, bytes_in: u64) -> Self {
        Pending::Query {
            stmts: stmts.into(),
            started,
            bytes_in,
            done: 0,
            errored: false,
            last: started,
        }
    }

    /// A refused message: `stmts[index]` was refused; `reply` is what the
    /// client gets instead of the server's error for the poison.
    pub fn denied(
        stmts: Vec<Statement>,
        index: usize,
        simple: bool,
        started: Instant,
        bytes_in: u64,
        reply: bytes::BytesMut,
        emit: bool,
    ) -> Self {
        Pending::Denied {
            stmts,
            index,
            simple,
            started,
            bytes_in,
            reply,
            emit,
            answered: false,
        }
    }
}

/// How a statement ended, as the backend said.
struct Completion<'a> {
    outcome: Outcome,
    rows: Option<u64>,
    sqlstate: Option<&'a str>,
    error: Option<&'a str>,
    detail: Option<&'static str>,
}

impl Completion<'_> {
    fn ok(rows: Option<u64>) -> Self {
        Completion {
            outcome: Outcome::Ok,
            rows,
            sqlstate: None,
            error: None,
            detail: None,
        }
    }

    fn aborted(detail: &'static str) -> Self {
        Completion {
            outcome: Outcome::Aborted,
            rows: None,
            sqlstate: None,
            error: None,
            detail: Some(detail),
        }
    }
}

const NOT_EXECUTED: &str = "not executed: an earlier statement in the same request failed";
const NOT_EXECUTED_DENIED: &str =
    "not executed: another statement in the same request was refused by policy";

pub struct Tracker {
    ident: Identity,
    ctx: Arc<ListenerCtx>,
    pending: VecDeque<Pending>,
    /// DataRows seen since the last completion.
    rows_seen: u64,
    /// Bytes sent to the client since the last completion.
    bytes_out: u64,
    events: Vec<AuditEvent>,
    text_mode: StatementText,
    lex: Arc<LexState>,
    /// What the result of the statement completing next came to (set by
    /// the relay just before the completion message).
    result: Option<Summary>,
    behaviour: Option<Arc<crate::behaviour::SessionBehaviour>>,
    /// Digest of the bound values of the Execute being completed.
    values: Option<u64>,
    /// `emit` raises the alert itself, after the behaviour layer.
    defer_alert: bool,
    /// The session in the admin API's registry (statement count).
    live: Option<Arc<crate::sessions::LiveSession>>,
}

/// Which protocol flow a statement came through; a Parse that failed is
/// recorded but never ran, so it settles no lexing change.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Simple,
    Extended,
    ParseOnly,
    /// A simple Query the policy refused: nothing of it ran.
    SimpleNotRun,
}

impl Flow {
    fn as_str(self) -> &'static str {
        match self {
            Flow::Simple | Flow::SimpleNotRun => "simple",
            Flow::Extended | Flow::ParseOnly => "extended",
        }
    }

    /// Whether the statement reached the server to run (and so settles a
    /// lexing change it announced).
    fn ran(self) -> bool {
        matches!(self, Flow::Simple | Flow::Extended)
    }
}

impl Tracker {
    pub fn new(ident: Identity, ctx: Arc<ListenerCtx>, lex: Arc<LexState>) -> Self {
        let text_mode = ctx.auditor.settings().statement_text;
        Self {
            ident,
            ctx,
            pending: VecDeque::new(),
            rows_seen: 0,
            bytes_out: 0,
            events: Vec::new(),
            text_mode,
            lex,
            result: None,
            behaviour: None,
            values: None,
            defer_alert: false,
            live: None,
        }
    }

    /// The session's entry in the admin API's registry.
    pub fn set_live(&mut self, l: Option<Arc<crate::sessions::LiveSession>>) {
        self.live = l;
    }

    /// The session's behaviour baseline view (see `behaviour`).
    pub fn set_behaviour(&mut self, b: Option<Arc<crate::behaviour::SessionBehaviour>>) {
        self.behaviour = b;
    }

    /// The result summary of the statement the next completion completes.
    pub fn set_result(&mut self, s: Summary) {
        self.result = Some(s);
    }

    /// A simple Query is being answered (a RowDescription now is its
    /// statement's; in the extended protocol it answers a Describe).
    pub fn front_is_query(&self) -> bool {
        matches!(self.pending.front(), Some(Pending::Query { .. }))
    }

    /// The statement whose rows are arriving now (the front request's), and
    /// for an Execute how to read them.
    pub fn current(&self) -> (Option<&Statement>, Option<&ExecuteShape>) {
        match self.pending.front() {
            Some(Pending::Query { stmts, .. }) => (stmts.front(), None),
            Some(Pending::Execute { stmt, shape, .. }) => (stmt.as_deref(), shape.as_deref()),
            _ => (None, None),
        }
    }

    /// The server reported a new `application_name`: later events carry it.
    pub fn set_application(&mut self, name: &str) {
        if self.ident.application.as_deref() != Some(name) {
            self.ident.application = Some(Arc::from(name));
        }
    }

    pub fn push(&mut self, p: Pending) {
        self.pending.push_back(p);
    }

    /// Requests the backend has not finished answering.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    pub fn bytes_out(&mut self, n: u64) {
        self.bytes_out += n;
    }

    /// A message the relay streams without decoding.
    pub fn on_streamed(&mut self, tag: u8) {
        if tag == be::tag::DATA_ROW {
            self.rows_seen += 1;
        }
    }

    /// A decoded backend message: what the relay should do with it.
    pub fn on_message(&mut self, tag: u8, body: &[u8], copy_in: impl FnOnce() -> u64) -> Handled {
        if matches!(
            tag,
            be::tag::ROW_DESCRIPTION | be::tag::NO_DATA | be::tag::PARAMETER_DESCRIPTION
        ) {
            return self.describe_answer(tag);
        }
        if tag == be::tag::ERROR_RESPONSE {
            if let Some(Pending::Denied { .. }) = self.pending.front() {
                return self.denied_answered(body);
            }
        }
        if self.on_message_inner(tag, body, copy_in) {
            Handled::Forward
        } else {
            Handled::NothingPending
        }
    }

    /// RowDescription, NoData or ParameterDescription: the answer to the
    /// front Describe, if that is what is pending (a simple Query's
    /// RowDescription is the relay's to read).
    fn describe_answer(&mut self, tag: u8) -> Handled {
        match self.pending.front() {
            // A simple Query's RowDescription may arrive before its Pending
            // was drained; untracked Describes (unmasked statements) leave
            // nothing pending either, and the retry finds nothing.
            None if tag == be::tag::ROW_DESCRIPTION => Handled::NothingPending,
            None => Handled::Forward,
            Some(Pending::Describe { injected, .. }) if tag == be::tag::PARAMETER_DESCRIPTION => {
                if *injected {
                    Handled::Replace(bytes::BytesMut::new())
                } else {
                    Handled::Forward
                }
            }
            Some(Pending::Describe { .. }) => match self.pending.pop_front() {
                Some(Pending::Describe {
                    portal,
                    name,
                    injected,
                    keep,
                }) => Handled::Described {
                    portal,
                    name,
                    injected,
                    keep,
                },
                _ => Handled::Forward,
            },
            _ => Handled::Forward,
        }
    }

    /// The backend's error for a poison (or, if the server had failed the
    /// message for a reason of its own first, that error).
    fn denied_answered(&mut self, body: &[u8]) -> Handled {
        let ours = super::enforce::is_poison_error(body);
        let server = (!ours).then(|| {
            let code = be::find_error_field(body, b'C')
                .ok()
                .flatten()
                .and_then(|c| std::str::from_utf8(c).ok())
                .map(str::to_string);
            let message = be::decode_error_fields(body)
                .ok()
                .and_then(|f| f.message.map(str::to_string));
            (code, message)
        });
        let Some(Pending::Denied {
            stmts,
            index,
            simple,
            started,
            bytes_in,
            reply,
            emit,
            answered,
        }) = self.pending.front_mut()
        else {
            return Handled::Forward;
        };
        let handled = if ours {
            Handled::Replace(std::mem::take(reply))
        } else {
            Handled::Forward
        };
        let (stmts, index, simple, started, bytes_in, emit) = (
            std::mem::take(stmts),
            *index,
            *simple,
            *started,
            *bytes_in,
            *emit,
        );
        *answered = true;
        if !simple {
            // Extended protocol: the error ends the message; the server now
            // skips to Sync. A simple Query's entry stays for its
            // ReadyForQuery.
            self.pending.pop_front();
        }
        self.emit_denied(&stmts, index, simple, started, bytes_in, emit, server);
        if !simple {
            self.skip_to_sync();
        }
        handled
    }

    /// Events for a refused message: the refused statement, and the others
    /// of the same message that therefore never ran.
    #[allow(clippy::too_many_arguments)]
    fn emit_denied(
        &mut self,
        stmts: &[Statement],
        index: usize,
        simple: bool,
        started: Instant,
        bytes_in: u64,
        emit: bool,
        server: Option<(Option<String>, Option<String>)>,
    ) {
        if !emit {
            return;
        }
        for (i, s) in stmts.iter().enumerate() {
            if i == index {
                let d = s.judgement.as_ref().map(|j| j.decision.clone());
                let (code, msg) = match (&server, &d) {
                    (Some((code, msg)), _) => (code.clone(), msg.clone()),
                    (None, Some(d)) => (
                        Some(self.ctx.policy.current().policy.deny_sqlstate().to_string()),
                        Some(format!("danxia: {} (rule {})", d.message, d.rule_id)),
                    ),
                    (None, None) => (None, None),
                };
                let detail = if server.is_some() {
                    "refused by policy; the server had already failed the request"
                } else {
                    "refused by policy"
                };
                self.emit(
                    Some(s),
                    if simple {
                        Flow::SimpleNotRun
                    } else {
                        Flow::ParseOnly
                    },
                    started,
                    Completion {
                        outcome: Outcome::Refused,
                        rows: None,
                        sqlstate: code.as_deref(),
                        error: msg.as_deref(),
                        detail: Some(detail),
                    },
                    0,
                    0,
                    bytes_in,
                );
            } else {
                self.emit(
                    Some(s),
                    if simple {
                        Flow::SimpleNotRun
                    } else {
                        Flow::ParseOnly
                    },
                    started,
                    Completion::aborted(NOT_EXECUTED_DENIED),
                    0,
                    0,
                    0,
                );
            }
        }
    }

    fn on_message_inner(&mut self, tag: u8, body: &[u8], copy_in: impl FnOnce() -> u64) -> bool {
        match tag {
            be::tag::COMMAND_COMPLETE => {
                if self.pending.is_empty() {
                    return false;
                }
                let rows = be::decode_command_complete(body)
                    .ok()
                    .and_then(|c| c.rows());
                let copy_bytes = copy_in();
                self.complete_front(Completion::ok(rows), copy_bytes);
            }
            be::tag::EMPTY_QUERY_RESPONSE => {
                if self.pending.is_empty() {
                    return false;
                }
                // An empty Query has no statements to complete; an Execute
                // of an empty statement is still a request worth an event.
                if matches!(self.pending.front(), Some(Pending::Execute { .. })) {
                    self.complete_front(Completion::ok(None), 0);
                }
            }
            be::tag::PORTAL_SUSPENDED => {
                if self.pending.is_empty() {
                    return false;
                }
                let mut c = Completion::ok(Some(self.rows_seen));
                c.detail = Some("portal suspended: more rows remain");
                self.complete_front(c, 0);
            }
            be::tag::ERROR_RESPONSE => {
                if self.pending.is_empty() {
                    return false;
                }
                let fields = be::decode_error_fields(body).ok();
                let code = be::find_error_field(body, b'C')
                    .ok()
                    .flatten()
                    .and_then(|c| std::str::from_utf8(c).ok());
                let message = fields.as_ref().and_then(|f| f.message);
                let copy_bytes = copy_in();
                self.complete_front(
                    Completion {
                        outcome: Outcome::Error,
                        rows: None,
                        sqlstate: code,
                        error: message,
                        detail: None,
                    },
                    copy_bytes,
                );
            }
            be::tag::PARSE_COMPLETE => {
                if self.pending.is_empty() {
                    return false;
                }
                if matches!(self.pending.front(), Some(Pending::Parse { .. })) {
                    self.pending.pop_front();
                }
            }
            be::tag::READY_FOR_QUERY => {
                if self.pending.is_empty() {
                    return false;
                }
                self.ready();
            }
            _ => {}
        }
        true
    }

    /// The front request got its completion (or error).
    fn complete_front(&mut self, c: Completion<'_>, copy_bytes: u64) {
        let rows_seen = std::mem::take(&mut self.rows_seen);
        let bytes_out = std::mem::take(&mut self.bytes_out);
        let is_error = c.outcome == Outcome::Error;
        if let Some(Pending::Describe { .. }) = self.pending.front() {
            // An error for a Describe (an unknown name): nothing ran.
            self.pending.pop_front();
            if is_error {
                self.result = None;
                self.skip_to_sync();
                return;
            }
        }
        let Some(front) = self.pending.front_mut() else {
            return;
        };
        match front {
            Pending::Query {
                stmts,
                bytes_in,
                done,
                errored,
                last,
                ..
            } => {
                let stmt = stmts.pop_front();
                let started = std::mem::replace(last, Instant::now());
                let bytes_in = if *done == 0 { *bytes_in } else { 0 } + copy_bytes;
                *done += 1;
                if is_error {
                    *errored = true;
                    // PostgreSQL skips the rest of a failed Query string.
                    let rest: Vec<Statement> = stmts.drain(..).collect();
                    self.emit(
                        stmt.as_ref(),
                        Flow::Simple,
                        started,
                        c,
                        rows_seen,
                        bytes_out,
                        bytes_in,
                    );
                    for s in &rest {
                        self.emit(
                            Some(s),
                            Flow::Simple,
                            started,
                            Completion::aborted(NOT_EXECUTED),
                            0,
                            0,
                            0,
                        );
                    }
                } else {
                    self.emit(
                        stmt.as_ref(),
                        Flow::Simple,
                        started,
                        c,
                        rows_seen,
                        bytes_out,
                        bytes_in,
                    );
                }
            }
            Pending::Parse { .. } => {
                // Only an error completes a Parse here (ParseComplete is
                // handled separately): the statement never ran.
                if let Some(Pending::Parse { stmt, started }) = self.pending.pop_front() {
                    self.emit(
                        Some(&stmt),
                        Flow::ParseOnly,
                        started,
                        c,
                        rows_seen,
                        bytes_out,
                        copy_bytes,
                    );
                }
                if is_error {
                    self.skip_to_sync();
                }
            }
            Pending::Execute { .. } => {
                if let Some(Pending::Execute {
                    stmt,
                    started,
                    bytes_in,
                    values,
                    ..
                }) = self.pending.pop_front()
                {
                    self.values = values;
                    self.emit(
                        stmt.as_deref(),
                        Flow::Extended,
                        started,
                        c,
                        rows_seen,
                        bytes_out,
                        bytes_in + copy_bytes,
                    );
                }
                if is_error {
                    self.skip_to_sync();
                }
            }
            Pending::FunctionCall { oid, started, done } => {
                let (oid, started) = (*oid, *started);
                *done = true;
                let ev = self.function_call_event(oid);
                self.finish_event(
                    ev,
                    Operation::Call,
                    started,
                    c,
                    rows_seen,
                    bytes_out,
                    copy_bytes,
                );
            }
            Pending::Sync | Pending::Denied { .. } | Pending::Describe { .. } => {
                // An error for a Bind/Describe with no Execute: no statement
                // ran, nothing to record beyond what the session logs. (A
                // refusal's own error is handled before it gets here.)
            }
        }
    }

    /// After an extended-protocol error the backend ignores everything up
    /// to Sync: those statements never run.
    fn skip_to_sync(&mut self) {
        while matches!(
            self.pending.front(),
            Some(
                Pending::Parse { .. }
                    | Pending::Execute { .. }
                    | Pending::Describe { .. }
                    | Pending::Denied { simple: false, .. }
            )
        ) {
            // Skipped Parses are setup, not executions: only the skipped
            // Executes (and refusals) are worth an event.
            match self.pending.pop_front() {
                Some(Pending::Execute {
                    stmt,
                    started,
                    bytes_in,
                    ..
                }) => {
                    self.emit(
                        stmt.as_deref(),
                        Flow::Extended,
                        started,
                        Completion::aborted(NOT_EXECUTED),
                        0,
                        0,
                        bytes_in,
                    );
                }
                Some(Pending::Denied {
                    stmts,
                    index,
                    started,
                    bytes_in,
                    emit,
                    ..
                }) => self.emit_denied(&stmts, index, false, started, bytes_in, emit, None),
                _ => {}
            }
        }
    }

    /// ReadyForQuery: the front Query, Sync or FunctionCall is done.
    fn ready(&mut self) {
        // Anything before the Sync that never got an answer was skipped.
        self.skip_to_sync();
        match self.pending.pop_front() {
            Some(Pending::Query { stmts, started, .. }) => {
                for s in &stmts {
                    self.emit(
                        Some(s),
                        Flow::Simple,
                        started,
                        Completion::aborted("no answer from the server for this statement"),
                        0,
                        0,
                        0,
                    );
                }
            }
            Some(Pending::Denied {
                stmts,
                index,
                started,
                bytes_in,
                emit,
                answered: false,
                ..
            }) => self.emit_denied(&stmts, index, true, started, bytes_in, emit, None),
            Some(Pending::FunctionCall {
                oid,
                started,
                done: false,
            }) => {
                let ev = self.function_call_event(oid);
                let (r, b) = (
                    std::mem::take(&mut self.rows_seen),
                    std::mem::take(&mut self.bytes_out),
                );
                self.finish_event(ev, Operation::Call, started, Completion::ok(None), r, b, 0);
            }
            _ => {}
        }
    }

    /// The event of a FunctionCall message (the fast-path interface, used
    /// e.g. by large-object clients): no statement text, the function's oid.
    fn function_call_event(&self, oid: u32) -> AuditEvent {
        let mut ev = self.ident.event(EventKind::Statement);
        ev.operation = Some(Operation::Call.as_str());
        ev.protocol_flow = Some("function_call");
        ev.detail = Some(format!("FunctionCall oid {oid}"));
        ev
    }

    /// Every request still pending will never be answered (session ending).
    pub fn abort_all(&mut self, detail: &'static str) {
        while let Some(p) = self.pending.pop_front() {
            match p {
                Pending::Query { stmts, started, .. } => {
                    for s in &stmts {
                        self.emit(
                            Some(s),
                            Flow::Simple,
                            started,
                            Completion::aborted(detail),
                            0,
                            0,
                            0,
                        );
                    }
                }
                Pending::Execute {
                    stmt,
                    started,
                    bytes_in,
                    ..
                } => {
                    self.emit(
                        stmt.as_deref(),
                        Flow::Extended,
                        started,
                        Completion::aborted(detail),
                        0,
                        0,
                        bytes_in,
                    );
                }
                Pending::Denied {
                    stmts,
                    index,
                    simple,
                    started,
                    bytes_in,
                    emit,
                    answered: false,
                    ..
                } => self.emit_denied(&stmts, index, simple, started, bytes_in, emit, None),
                _ => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        stmt: Option<&Statement>,
        flow: Flow,
        started: Instant,
        c: Completion<'_>,
        rows_seen: u64,
        bytes_out: u64,
        bytes_in: u64,
    ) {
        let mut ev = self.ident.event(EventKind::Statement);
        ev.protocol_flow = Some(flow.as_str());
        let summary = self.result.take();
        let (cut_message, cut_state);
        let mut c: Completion<'_> = c;
        let op = match stmt {
            Some(s) => {
                if s.changes_lexing && flow.ran() {
                    self.lex.change_done();
                }
                describe_statement(&mut ev, s, self.text_mode);
                s.facts.operation
            }
            None => {
                ev.operation = Some(Operation::Unknown.as_str());
                ev.detail =
                    Some("statement not tracked (unknown or untracked prepared statement)".into());
                Operation::Unknown
            }
        };
        if let Some(sum) = &summary {
            if let Some(l) = add_summary(&mut ev, sum, &self.ctx.metrics) {
                cut_message = format!("danxia: {} (rule {})", l.message, l.rule_id);
                c.outcome = Outcome::Refused;
                cut_state = self.ctx.policy.current().policy.deny_sqlstate().to_string();
                c.sqlstate = Some(&cut_state);
                c.error = Some(&cut_message);
                c.detail = Some(RESULT_CUT);
            }
        }
        let values = self.values.take();
        self.defer_alert = self.behaviour.is_some();
        self.finish_event(ev, op, started, c, rows_seen, bytes_out, bytes_in);
        if let (Some(b), Some(ev)) = (&self.behaviour, self.events.last_mut()) {
            if ev.kind == Some(EventKind::Statement) {
                b.after(stmt, ev, summary.as_ref(), values);
                if !ev.alerts.is_empty() {
                    let alert = crate::alerting::raise(&self.ctx, &self.ident, ev);
                    self.events.push(alert);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_event(
        &mut self,
        mut ev: AuditEvent,
        op: Operation,
        started: Instant,
        c: Completion<'_>,
        rows_seen: u64,
        bytes_out: u64,
        bytes_in: u64,
    ) {
        let elapsed = started.elapsed();
        ev.rows = c
            .rows
            .or(if rows_seen > 0 { Some(rows_seen) } else { None });
        ev.bytes_out = Some(bytes_out);
        ev.bytes_in = Some(bytes_in);
        ev.duration_us = Some(elapsed.as_micros() as u64);
        ev.outcome = Some(c.outcome);
        ev.sqlstate = c.sqlstate.map(str::to_string);
        ev.error = c.error.map(str::to_string);
        if let Some(d) = c.detail {
            ev.detail = Some(d.to_string());
        }
        let m = &self.ctx.metrics;
        m.statement(op, c.outcome);
        if let Some(l) = &self.live {
            l.statement_done();
        }
        if c.outcome != Outcome::Aborted {
            m.statement_duration.record(elapsed.as_secs_f64());
        }
        // With baselines on, the alert follows `after` (which may add
        // rules and evidence); see `emit`.
        if std::mem::take(&mut self.defer_alert) {
            self.events.push(ev);
            return;
        }
        let alert =
            (!ev.alerts.is_empty()).then(|| crate::alerting::raise(&self.ctx, &self.ident, &ev));
        self.events.push(ev);
        self.events.extend(alert);
    }

    /// An event built elsewhere in the session (protocol error, session end)
    /// that must be written in order with the statement events.
    pub fn record(&mut self, ev: AuditEvent) {
        self.events.push(ev);
    }

    /// Hands the collected events to the audit writer (waiting for queue
    /// space when `audit.on_full = "block"`).
    pub async fn flush(&mut self) {
        if self.events.is_empty() {
            return;
        }
        for ev in self.events.drain(..) {
            if self.ctx.auditor.record(ev).await.is_err() {
                // The writer counts and logs its own failures.
            }
        }
    }
}
