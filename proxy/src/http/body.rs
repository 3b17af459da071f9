//! The response body a caller receives when it is too large to inspect
//! before the status line: the upstream's body pulled frame by frame
//! through the inspection pipeline. An inspection failure (malformed JSON
//! mid-way, a gzip bomb) ends the body with an error, which makes hyper
//! abort the response: the caller sees a truncated transfer, never the
//! rest of an unscanned document. The exchange is completed (audited) when
//! the body ends, fails, or is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::audit::Outcome;

use super::exchange::{record_all, Exchange};
use super::inspect::Pipeline;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed, inspected response body.
pub struct InspectedBody {
    inner: Incoming,
    /// `None`: passed through uninspected (bytes counted only).
    pipeline: Option<Pipeline>,
    /// Output of the buffering phase, sent first.
    head: Option<Bytes>,
    exchange: Option<Exchange>,
    bytes_out: u64,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    finished: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Aborted(String);

impl InspectedBody {
    pub fn new(
        inner: Incoming,
        pipeline: Option<Pipeline>,
        head: Bytes,
        exchange: Exchange,
        idle: Duration,
    ) -> InspectedBody {
        InspectedBody {
            inner,
            pipeline,
            head: (!head.is_empty()).then_some(head),
            exchange: Some(exchange),
            bytes_out: 0,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            finished: false,
        }
    }

    /// Completes the exchange and writes its events in the background (a
    /// body cannot wait for audit queue space).
    fn complete(&mut self, outcome: Outcome, error: Option<(&'static str, String)>) {
        self.finished = true;
        let Some(mut x) = self.exchange.take() else {
            return;
        };
        if let Some((rule, detail)) = error {
            x.ev.rule = Some(rule.into());
            x.ev.error = Some(detail);
            if outcome == Outcome::Refused {
                x.ev.verdict = Some("denied");
            }
        }
        let findings = self.pipeline.as_ref().map(|p| p.findings().clone());
        let events = x.complete(outcome, findings.as_ref(), self.bytes_out);
        let auditor = x.hx.lx.auditor.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move { record_all(&auditor, events).await });
            }
            Err(_) => {
                for ev in events {
                    let _ = auditor.try_record(ev);
                }
            }
        }
    }
}

impl Body for InspectedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(h) = this.head.take() {
            this.bytes_out += h.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(h))));
        }
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if this.timer.as_mut().poll(cx).is_ready() {
                        let msg = format!(
                            "the API sent nothing for {:?} in the middle of its response",
                            this.idle
                        );
                        this.complete(Outcome::Error, Some(("api.upstream-timeout", msg.clone())));
                        return Poll::Ready(Some(Err(Box::new(Aborted(msg)))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    let tail = match &mut this.pipeline {
                        Some(p) => match p.finish() {
                            Ok(b) => b,
                            Err(e) => {
                                let msg = e.to_string();
                                this.complete(Outcome::Refused, Some((e.rule(), msg.clone())));
                                return Poll::Ready(Some(Err(Box::new(Aborted(msg)))));
                            }
                        },
                        None => Bytes::new(),
                    };
                    this.bytes_out += tail.len() as u64;
                    this.complete(Outcome::Ok, None);
                    if tail.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(tail))));
                }
                Poll::Ready(Some(Err(e))) => {
                    let msg = format!("the API's response ended abnormally: {e}");
                    this.complete(Outcome::Error, Some(("api.upstream-aborted", msg.clone())));
                    return Poll::Ready(Some(Err(Box::new(Aborted(msg)))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = tokio::time::Instant::now() + this.idle;
                    this.timer.as_mut().reset(deadline);
                    let Ok(data) = frame.into_data() else {
                        // Trailers are not relayed.
                        continue;
                    };
                    let out = match &mut this.pipeline {
                        Some(p) => match p.feed(data) {
                            Ok(b) => b,
                            Err(e) => {
                                let msg = e.to_string();
                                this.complete(Outcome::Refused, Some((e.rule(), msg.clone())));
                                return Poll::Ready(Some(Err(Box::new(Aborted(msg)))));
                            }
                        },
                        None => data,
                    };
                    if out.is_empty() {
                        continue;
                    }
                    this.bytes_out += out.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.head.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for InspectedBody {
    fn drop(&mut self) {
        if !self.finished {
            self.complete(
                Outcome::Aborted,
                Some((
                    "api.client-gone",
                    "the caller closed the connection before the response ended".into(),
                )),
            );
        }
    }
}

use std::future::Future;
