//! The streamed body in both directions: frames are passed on one by one as they arrive (no
//! buffering, so back-pressure reaches the sender), with an idle timeout between frames
//! and an optional size limit (RELIABILITY S11), and, on responses, the in-flight permit that
//! lives as long as the stream.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use crate::request_log::Trace;

/// Why a relayed body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("no body data for {0:?}")]
    Idle(Duration),
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the body stream broke: {0}")]
    Broken(#[from] hyper::Error),
}

/// An [`Incoming`] body relayed frame by frame.
pub struct Relay {
    inner: Incoming,
    idle: Duration,
    /// Created at the first wait, so bodies that never wait (most GETs) allocate nothing.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs for the current wait; the clock starts when we start waiting,
    /// not when the last frame left, so a slow reader on the other side never trips it.
    waiting: bool,
    /// The limit, and how many bytes may still pass under it.
    limit: Option<(u64, u64)>,
    _permit: Option<OwnedSemaphorePermit>,
    /// The request's trace, counting what this body relays (in or out).
    trace: Option<(Arc<Trace>, Direction)>,
}

#[derive(Clone, Copy)]
enum Direction {
    In,
    Out,
}

impl Relay {
    /// A response body, holding the in-flight `permit` until it ends.
    pub fn response(
        inner: Incoming,
        idle: Duration,
        permit: OwnedSemaphorePermit,
        trace: Option<Arc<Trace>>,
    ) -> Relay {
        Relay::new(
            inner,
            idle,
            None,
            Some(permit),
            trace.map(|t| (t, Direction::Out)),
        )
    }

    /// A request body, cut with [`RelayError::TooLarge`] past `limit` bytes.
    pub fn request(
        inner: Incoming,
        idle: Duration,
        limit: Option<u64>,
        trace: Option<Arc<Trace>>,
    ) -> Relay {
        Relay::new(inner, idle, limit, None, trace.map(|t| (t, Direction::In)))
    }

    fn new(
        inner: Incoming,
        idle: Duration,
        limit: Option<u64>,
        permit: Option<OwnedSemaphorePermit>,
        trace: Option<(Arc<Trace>, Direction)>,
    ) -> Relay {
        Relay {
            inner,
            idle,
            timer: None,
            waiting: false,
            limit: limit.map(|l| (l, l)),
            _permit: permit,
            trace,
        }
    }
}

impl Body for Relay {
    type Data = Bytes;
    type Error = RelayError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RelayError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                let len = match &frame {
                    Some(Ok(frame)) => frame.data_ref().map_or(0, |d| d.len() as u64),
                    _ => 0,
                };
                if let Some((limit, left)) = &mut this.limit {
                    *left = left.checked_sub(len).ok_or(RelayError::TooLarge(*limit))?;
                }
                match &this.trace {
                    Some((trace, Direction::In)) => trace.received(len),
                    Some((trace, Direction::Out)) => trace.sent_bytes(len),
                    None => {}
                }
                Poll::Ready(frame.map(|f| f.map_err(RelayError::Broken)))
            }
            Poll::Pending => {
                if !this.waiting {
                    let deadline = Instant::now() + this.idle;
                    match &mut this.timer {
                        Some(timer) => timer.as_mut().reset(deadline),
                        None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    this.waiting = true;
                }
                if let Some(timer) = &mut this.timer
                    && timer.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Some(Err(RelayError::Idle(this.idle))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
