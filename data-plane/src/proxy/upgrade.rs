//! Protocol upgrades (WebSocket) passed through: the upgrade request goes upstream like any
//! other, with the same access checks and credential injection; on `101 Switching Protocols`
//! both connections are taken over and bytes are copied both ways until either side closes.

use std::mem;

use http::header::{CONNECTION, HeaderValue, UPGRADE};
use http::{Request, Response, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::OwnedSemaphorePermit;

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
) -> Response<ProxyBody> {
    let upstream = hyper::upgrade::on(&mut response);
    let (mut parts, _) = response.into_parts();
    let protocol = parts.headers.get(UPGRADE).cloned();
    parts.headers = headers::to_caller(mem::take(&mut parts.headers), request_id, protocol);
    let request_id = request_id.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let result = match tokio::try_join!(caller, upstream) {
            Ok((caller, upstream)) => {
                let (mut caller, mut upstream) = (TokioIo::new(caller), TokioIo::new(upstream));
                tokio::io::copy_bidirectional(&mut caller, &mut upstream)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
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
