//! A guard between each accepted connection and hyper that refuses what hyper would accept or
//! answer bare (RELIABILITY S2): a request with both `Content-Length` and `Transfer-Encoding`,
//! conflicting lengths or another transfer coding than `chunked` — which hyper reads as chunked
//! after dropping the length — and malformed heads, which hyper answers with an empty 400.
//!
//! It holds each HTTP/1 request head back until it is complete and inspects it ([`head`]); then
//! it counts the body through ([`body`]) to find the next head, the body read straight into
//! hyper's buffer (only bytes that came in one read with a head pass through the guard's). A refused head is never shown to hyper: hyper gets a fixed synthetic
//! request in its place, and nothing after it, so earlier pipelined requests are answered first,
//! in order; the service recognises the synthetic request by its position on the connection
//! ([`Connection::dispatched`]) — nothing a client sends can mark a request as refused — and
//! answers it with the gateway's JSON error and `Connection: close`. The guard steps aside for
//! an HTTP/2 connection and once a request switches protocols.

mod body;
mod head;

#[cfg(test)]
mod tests;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::proxy::ProxyError;
use body::{Advance, Body};
pub use head::Refusal;
use head::{Head, MAX_HEAD_BYTES};

/// What hyper reads in place of a refused head: a request without a body, and the last one.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n";
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The first allocation of the buffer held heads are collected in, one per connection.
const HELD_INITIAL: usize = 4096;

/// What the guard and the service of one connection share.
#[derive(Debug, Default)]
pub struct Connection {
    /// Requests hyper has handed to the service so far.
    dispatched: AtomicU64,
    /// The position of the stand-in request, and why its head was refused.
    refused: OnceLock<(u64, Refusal)>,
    /// The position + 1 of the upgrade request whose outcome the guard waits for; 0: none.
    upgrade_at: AtomicU64,
    upgrade: Mutex<UpgradeOutcome>,
}

#[derive(Debug, Default)]
struct UpgradeOutcome {
    switched: Option<bool>,
    waker: Option<Waker>,
}

/// What the service must know about the request hyper just handed it.
#[derive(Debug)]
pub struct Dispatched {
    /// Set when this is the stand-in for a refused head: answer this error and nothing else.
    pub refusal: Option<Refusal>,
    /// Set when the guard waits to learn whether this request switches protocols.
    upgrade: Option<Arc<Connection>>,
}

impl Connection {
    /// Called by the service for each request, in the order hyper hands them over.
    pub fn dispatched(self: &Arc<Self>) -> Dispatched {
        let position = self.dispatched.fetch_add(1, Ordering::AcqRel);
        let refusal = self
            .refused
            .get()
            .and_then(|(at, refusal)| (*at == position).then_some(*refusal));
        let upgrade =
            (self.upgrade_at.load(Ordering::Acquire) == position + 1).then(|| Arc::clone(self));
        Dispatched { refusal, upgrade }
    }

    /// Whether the awaited upgrade request switched protocols, once the service has answered
    /// it; until then `waker` is woken when it has.
    fn upgrade_outcome(&self, waker: &Waker) -> Option<bool> {
        let mut outcome = self.upgrade.lock().unwrap_or_else(|e| e.into_inner());
        match outcome.switched.take() {
            Some(switched) => {
                self.upgrade_at.store(0, Ordering::Release);
                Some(switched)
            }
            None => {
                outcome.waker = Some(waker.clone());
                None
            }
        }
    }
}

impl Dispatched {
    /// Tells the guard how the request was answered: after a switch of protocols (`101`, or a
    /// `2xx` to `CONNECT`) the bytes that follow are not HTTP/1 any more.
    pub fn answered(&self, connect: bool, status: StatusCode) {
        let Some(connection) = &self.upgrade else {
            return;
        };
        let switched =
            status == StatusCode::SWITCHING_PROTOCOLS || (connect && status.is_success());
        let mut outcome = connection.upgrade.lock().unwrap_or_else(|e| e.into_inner());
        outcome.switched = Some(switched);
        if let Some(waker) = outcome.waker.take() {
            waker.wake();
        }
    }
}

impl From<Refusal> for ProxyError {
    fn from(refusal: Refusal) -> ProxyError {
        match refusal {
            Refusal::AmbiguousFraming => ProxyError::AmbiguousFraming,
            Refusal::Malformed => ProxyError::MalformedRequest,
            Refusal::TooLarge => ProxyError::HeadTooLarge,
            Refusal::TargetTooLong => ProxyError::TargetTooLong,
        }
    }
}

enum State {
    /// Collecting the next request head; `first` until the connection has shown whether it
    /// speaks HTTP/2.
    Head { first: bool },
    /// Counting the body of the message whose head was passed on.
    Body { body: Body, then: After },
    /// The message of an upgrade request has been passed on; its answer decides what follows.
    AwaitUpgrade,
    /// Nothing left to inspect: HTTP/2, a switched protocol, or a body hyper will refuse.
    Passthrough,
    /// A head was refused: hyper gets the stand-in (this much of it so far), then nothing.
    Refused { sent: usize },
}

/// What follows a message.
#[derive(Debug, Clone, Copy)]
enum After {
    Head,
    AwaitUpgrade,
}

/// The guarded connection hyper reads from and writes to.
pub struct Guard<S> {
    io: S,
    connection: Arc<Connection>,
    state: State,
    /// Bytes read but not yet given to hyper: a head being collected, or what followed the end
    /// of a message in the same read. `held[start..end]` is live.
    held: Vec<u8>,
    start: usize,
    end: usize,
    /// How many live held bytes are inspected and may go to hyper.
    cleared: usize,
    /// Request heads (stand-in included) given to hyper so far.
    heads: u64,
    /// How long the first head may take, and its deadline once waiting began: hyper's header
    /// read timeout starts only after hyper-util has seen enough bytes to pick HTTP/1 or /2,
    /// which a held-back head never shows it. `None` once the first head is in.
    first_head: Option<(Duration, Option<Pin<Box<Sleep>>>)>,
}

impl<S> Guard<S> {
    /// Guards `io`; with `first_head_timeout`, a first request head (or HTTP/2 preface) not in
    /// by then ends the connection.
    pub fn new(
        io: S,
        connection: Arc<Connection>,
        first_head_timeout: Option<Duration>,
    ) -> Guard<S> {
        Guard {
            io,
            connection,
            state: State::Head { first: true },
            held: Vec::new(),
            start: 0,
            end: 0,
            cleared: 0,
            heads: 0,
            first_head: first_head_timeout.map(|timeout| (timeout, None)),
        }
    }

    /// Hands cleared bytes to hyper.
    fn give(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.cleared.min(buf.remaining());
        buf.put_slice(&self.held[self.start..self.start + n]);
        self.cleared -= n;
        self.start += n;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
    }

    /// The head at the start of the live bytes was inspected: pass it on, or refuse it.
    fn on_head(&mut self, head: Result<Head, Refusal>) {
        self.first_head = None;
        let position = self.heads;
        self.heads += 1;
        match head {
            Ok(head) => {
                self.cleared = head.len;
                let then = if head.upgrade {
                    self.connection
                        .upgrade_at
                        .store(position + 1, Ordering::Release);
                    After::AwaitUpgrade
                } else {
                    After::Head
                };
                self.state = match head.body {
                    Some(body) => State::Body { body, then },
                    None => then.state(),
                };
            }
            Err(refusal) => {
                let _ = self.connection.refused.set((position, refusal));
                self.held = Vec::new();
                (self.start, self.end) = (0, 0);
                self.state = State::Refused { sent: 0 };
            }
        }
    }

    /// Keeps bytes that followed a message's end in hyper's buffer for the next inspection.
    fn hold(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.start, self.end);
        if self.held.len() < bytes.len() {
            self.held.resize(bytes.len().max(HELD_INITIAL), 0);
        }
        self.held[..bytes.len()].copy_from_slice(bytes);
        (self.start, self.end) = (0, bytes.len());
    }
}

impl After {
    fn state(self) -> State {
        match self {
            After::Head => State::Head { first: false },
            After::AwaitUpgrade => State::AwaitUpgrade,
        }
    }
}

impl<S: AsyncRead + Unpin> Guard<S> {
    /// Reads more of the connection into the held bytes; `Ok(0)` at its end.
    fn poll_hold(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // Callers keep the live bytes under MAX_HEAD_BYTES, so there is always room to make.
        debug_assert!(self.end - self.start < MAX_HEAD_BYTES);
        if self.end == self.held.len() {
            if self.start > 0 {
                self.held.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else {
                let grown = (self.held.len() * 2).clamp(HELD_INITIAL, MAX_HEAD_BYTES);
                self.held.resize(grown, 0);
            }
        }
        let mut buf = ReadBuf::new(&mut self.held[self.end..]);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        self.end += n;
        Poll::Ready(Ok(n))
    }
}

impl<S> Guard<S> {
    /// Pending, or the end of a connection whose first head is late.
    fn poll_first_head_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((timeout, deadline)) = &mut self.first_head else {
            return Poll::Pending;
        };
        let deadline = deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(*timeout)));
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no request head within the header read timeout",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.cleared > 0 {
                this.give(buf);
                return Poll::Ready(Ok(()));
            }
            match &mut this.state {
                State::Passthrough if this.start < this.end => this.cleared = this.end - this.start,
                State::Passthrough => return Pin::new(&mut this.io).poll_read(cx, buf),
                State::Refused { sent } if *sent < STAND_IN.len() => {
                    let n = (STAND_IN.len() - *sent).min(buf.remaining());
                    buf.put_slice(&STAND_IN[*sent..*sent + n]);
                    *sent += n;
                    return Poll::Ready(Ok(()));
                }
                // hyper closes the connection after answering the stand-in.
                State::Refused { .. } => return Poll::Pending,
                State::Head { first } => {
                    let first = *first;
                    let live = &this.held[this.start..this.end];
                    let preface = &live[..live.len().min(H2_PREFACE.len())];
                    if first && H2_PREFACE.starts_with(preface) {
                        if live.len() >= H2_PREFACE.len() {
                            this.first_head = None;
                            this.state = State::Passthrough;
                            continue;
                        }
                    } else {
                        match head::inspect(live) {
                            Ok(None) => {}
                            Ok(Some(head)) => {
                                this.on_head(Ok(head));
                                continue;
                            }
                            Err(refusal) => {
                                this.on_head(Err(refusal));
                                continue;
                            }
                        }
                    }
                    match this.poll_hold(cx)? {
                        // An incomplete head at the end of the connection is dropped: hyper
                        // sees the end, as if nothing had been sent.
                        Poll::Ready(0) => return Poll::Ready(Ok(())),
                        Poll::Ready(_) => {}
                        Poll::Pending => return this.poll_first_head_deadline(cx),
                    }
                }
                State::AwaitUpgrade => match this.connection.upgrade_outcome(cx.waker()) {
                    Some(true) => this.state = State::Passthrough,
                    Some(false) => this.state = State::Head { first: false },
                    // Meanwhile hold what arrives, so hyper still learns when the caller leaves.
                    None if this.end - this.start < MAX_HEAD_BYTES => {
                        if ready!(this.poll_hold(cx))? == 0 {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    None => return Poll::Pending,
                },
                State::Body { body, then } => {
                    let then = *then;
                    if this.start < this.end {
                        let n = (this.end - this.start).min(buf.remaining());
                        this.cleared = match body.advance(&this.held[this.start..this.start + n]) {
                            Advance::More => n,
                            Advance::Ended(at) => {
                                this.state = then.state();
                                at
                            }
                            Advance::Broken => {
                                this.state = State::Passthrough;
                                n
                            }
                        };
                        continue;
                    }
                    let before = buf.filled().len();
                    ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                    match body.advance(&buf.filled()[before..]) {
                        Advance::More => {}
                        Advance::Ended(at) => {
                            this.state = then.state();
                            let next = before + at;
                            this.hold(&buf.filled()[next..]);
                            buf.set_filled(next);
                        }
                        Advance::Broken => this.state = State::Passthrough,
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
