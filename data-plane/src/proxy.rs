//! The request path: authenticate, route, authorise, rewrite, forward, stream back. It reads the
//! routing table once per request, holds no lock across an await, touches no database, and
//! streams bodies in both directions frame by frame.

mod error;
pub mod headers;
pub mod path;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

pub use error::{GATEWAY_ERROR_HEADER, ProxyError};

use crate::Gateway;
use crate::routing::{Caller, Route, RoutingTable};

/// Relayed upstream bodies, or small bodies the gateway makes itself.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// A fresh request id, as the value of `x-request-id`.
pub fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Forwards one `/proxy-api/...` request; every failure becomes the gateway's JSON error.
pub async fn handle(
    gateway: &Gateway,
    req: Request<Incoming>,
    peer: IpAddr,
    request_id: HeaderValue,
) -> Response<ProxyBody> {
    match forward(gateway, req, peer, &request_id).await {
        Ok(response) => response,
        Err(e) => e.into_response(request_id),
    }
}

async fn forward(
    gateway: &Gateway,
    req: Request<Incoming>,
    peer: IpAddr,
    request_id: &HeaderValue,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    // RELIABILITY S2: hyper would let Transfer-Encoding win; a proxy must refuse instead.
    if parts.headers.contains_key(header::TRANSFER_ENCODING)
        && parts.headers.contains_key(header::CONTENT_LENGTH)
    {
        return Err(ProxyError::AmbiguousFraming);
    }
    let (route, uri) = {
        // The table is loaded once and released before any await.
        let table = gateway.table.load();
        if table.version < 0 {
            return Err(ProxyError::NotReady);
        }
        let caller = authenticate(&table, &parts.headers)?;
        let path = path::split(parts.uri.path()).ok_or(ProxyError::UnknownRoute)?;
        let route = table
            .route(&path.account, &path.endpoint)
            .ok_or(ProxyError::UnknownRoute)?;
        if !route.may_call(caller) {
            return Err(ProxyError::Forbidden);
        }
        if path::has_dot_segment(path.rest) {
            return Err(ProxyError::DotSegment);
        }
        let uri = upstream_uri(route, path.rest, parts.uri.query())?;
        (Arc::clone(route), uri)
    };
    headers::to_upstream(&mut parts.headers, &route, peer, request_id);
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.extensions = http::Extensions::new();
    let upstream = route.client.request(Request::from_parts(parts, body));
    let response = tokio::time::timeout(gateway.config.response_timeout(), upstream)
        .await
        .map_err(|_| ProxyError::UpstreamTimeout)?
        .map_err(|e| {
            tracing::warn!(
                request_id = request_id.to_str().unwrap_or_default(),
                account = &*route.account,
                endpoint = &*route.endpoint,
                error = %e,
                "upstream request failed"
            );
            ProxyError::UpstreamUnreachable
        })?;
    let (mut parts, body) = response.into_parts();
    headers::to_caller(&mut parts.headers, request_id);
    Ok(Response::from_parts(parts, Either::Left(body)))
}

/// The caller behind `Authorization: Bearer <key>`. Malformed keys never reach the table
/// (RELIABILITY S9); missing, unknown, revoked and expired keys all get the same error.
fn authenticate<'t>(
    table: &'t RoutingTable,
    headers: &http::HeaderMap,
) -> Result<&'t Caller, ProxyError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ProxyError::Unauthorized)?;
    let digest = shared::api_key::digest_of(presented.trim()).ok_or(ProxyError::Unauthorized)?;
    let caller = table.caller(&digest).ok_or(ProxyError::Unauthorized)?;
    if let Some(expires_at) = caller.expires_at {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if now >= expires_at {
            return Err(ProxyError::Unauthorized);
        }
    }
    Ok(caller)
}

/// Base path + the caller's raw rest + the raw query: concatenation, never resolution
/// (RELIABILITY S3). Host and base path come only from the route, so the invariant "same host,
/// under the base path" holds by construction once dot-segments are refused.
fn upstream_uri(route: &Route, rest: &str, query: Option<&str>) -> Result<Uri, ProxyError> {
    let mut target = String::with_capacity(
        route.base_path.len() + rest.len() + query.map_or(0, |q| q.len() + 1) + 1,
    );
    target.push_str(&route.base_path);
    target.push_str(rest);
    if target.is_empty() {
        target.push('/');
    }
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(target))
        .map_err(|_| ProxyError::InvalidPath)?;
    Uri::builder()
        .scheme(route.scheme.clone())
        .authority(route.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| ProxyError::InvalidPath)
}
