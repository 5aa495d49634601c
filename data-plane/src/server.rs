//! The listener: our own accept loop over hyper-util's HTTP/1 + HTTP/2 server with a timer
//! installed, so the header-read timeout (slowloris guard) actually fires, and a graceful
//! shutdown that lets in-flight requests and streams finish within a grace period. Each
//! connection is read through a [`framing::Guard`], which refuses ambiguous and malformed
//! request heads before hyper sees them.

mod framing;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::proxy::headers::X_REQUEST_ID;
use crate::proxy::{self, ProxyError, path::PREFIX};
use crate::{Gateway, admin};

pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(gateway.config.header_read_timeout());
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = Arc::clone(&gateway);
        // The caller's address as `X-Forwarded-For` text, made once per connection.
        let peer = HeaderValue::try_from(peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        let framing = Arc::new(framing::Connection::default());
        let io = TokioIo::new(framing::Guard::new(
            stream,
            Arc::clone(&framing),
            Some(gateway.config.header_read_timeout()),
        ));
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let gateway = Arc::clone(&gateway);
            let peer = peer.clone();
            // In hyper's order, before any later request is read.
            let dispatched = framing.dispatched();
            async move {
                let (start, request_id) = proxy::new_request_id();
                if let Some(refusal) = dispatched.refusal {
                    tracing::debug!(
                        request_id = request_id.to_str().unwrap_or_default(),
                        ?refusal,
                        "request head refused"
                    );
                    return Ok(ProxyError::from(refusal).into_response(request_id));
                }
                let connect = req.method() == http::Method::CONNECT;
                let response = if req.uri().path().starts_with(PREFIX) {
                    proxy::handle(&gateway, req, &peer, (start, request_id)).await
                } else {
                    match admin::respond(&gateway, req.uri().path()) {
                        Some(mut response) => {
                            response.headers_mut().insert(X_REQUEST_ID, request_id);
                            response
                        }
                        None => ProxyError::NotProxyPath.into_response(request_id),
                    }
                };
                dispatched.answered(connect, response.status());
                Ok::<_, Infallible>(response)
            }
        });
        let connection = builder.serve_connection_with_upgrades(io, service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = Duration::from_secs(gateway.config.shutdown_grace_seconds);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; closing remaining connections"),
    }
}
