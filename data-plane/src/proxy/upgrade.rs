//! Protocol upgrades (WebSocket) passed through: the upgrade request goes upstream like any
//! other, with the same access checks and credential injection; on `101 Switching Protocols`
//! both connections are taken over and bytes are copied both ways until either side closes, or
//! until no byte has moved either way for the tunnel idle timeout (RELIABILITY S11).

use std::io;
use std::mem;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::header::{CONNECTION, HeaderValue, UPGRADE};
use http::{Request, Response, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{ProxyBody, headers};

/// The caller's `Upgrade` value when it asks for a protocol upgrade (HTTP/1.1 only: HTTP/2 has
/// no `Connection` header).
pub fn requested(req: &Request<Incoming>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11
        || !headers::lists_token(req.headers(), &CONNECTION, "upgrade")
    {
        return None;
    }
    req.headers().get(UPGRADE).cloned()
}

/// Answers the caller with the upstream's 101 and tunnels the two upgraded connections in a
/// task that holds the in-flight permit until the tunnel closes.
pub fn tunnel(
    mut response: Response<Incoming>,
    caller: OnUpgrade,
    request_id: &HeaderValue,
    permit: OwnedSemaphorePermit,
    idle: Duration,
) -> Response<ProxyBody> {
    let upstream = hyper::upgrade::on(&mut response);
    let (mut parts, _) = response.into_parts();
    let protocol = parts.headers.get(UPGRADE).cloned();
    parts.headers = headers::to_caller(mem::take(&mut parts.headers), request_id, protocol);
    let request_id = request_id.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let result = match tokio::try_join!(caller, upstream) {
            Ok((caller, upstream)) => pipe(TokioIo::new(caller), TokioIo::new(upstream), idle)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = result {
            tracing::debug!(
                request_id = request_id.to_str().unwrap_or_default(),
                %error,
                "upgraded connection ended with an error"
            );
        }
    });
    Response::from_parts(parts, Either::Right(Full::default()))
}

/// Copies bytes both ways until either side closes, or until none has moved either way for
/// `idle`; returning drops, and so closes, both connections.
async fn pipe<C, U>(caller: C, upstream: U, idle: Duration) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let mut caller = Watched {
        io: caller,
        activity: &activity,
    };
    let mut upstream = Watched {
        io: upstream,
        activity: &activity,
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut caller, &mut upstream) => copied.map(|_| ()),
        () = activity.idle_for(idle) => Err(io::Error::new(io::ErrorKind::TimedOut, "tunnel idle")),
    }
}

/// When bytes last moved through a tunnel, in milliseconds since it opened.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let now = self.start.elapsed().as_millis();
        self.last_ms
            .store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = self.start + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One side of a tunnel, noting every byte read from or written to it.
struct Watched<'a, T> {
    io: T,
    activity: &'a Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        if written > 0 {
            this.activity.touch();
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// With time paused: traffic either way keeps the tunnel open past the idle timeout; then
    /// silence closes both sides within it.
    #[tokio::test(start_paused = true)]
    async fn a_tunnel_closes_after_idle_silence_and_not_before() {
        let idle = Duration::from_secs(10);
        let (caller, mut caller_end) = tokio::io::duplex(64);
        let (upstream, mut upstream_end) = tokio::io::duplex(64);
        let opened = Instant::now();
        let tunnel = tokio::spawn(pipe(caller, upstream, idle));
        let mut byte = [0u8; 1];
        for i in 0..6 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            if i % 2 == 0 {
                caller_end.write_all(b"c").await.unwrap();
                upstream_end.read_exact(&mut byte).await.unwrap();
            } else {
                upstream_end.write_all(b"u").await.unwrap();
                caller_end.read_exact(&mut byte).await.unwrap();
            }
        }
        let last_traffic = opened.elapsed();
        let error = tunnel.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(opened.elapsed() - last_traffic, idle);
        assert_eq!(
            caller_end.read(&mut byte).await.unwrap(),
            0,
            "caller side closed"
        );
        assert_eq!(
            upstream_end.read(&mut byte).await.unwrap(),
            0,
            "upstream side closed"
        );
    }
}
