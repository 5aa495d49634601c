//! The request path: authenticate, route, authorise, rewrite, forward, stream back. It reads the
//! routing table once per request, holds no lock across an await, touches no database, and
//! streams bodies in both directions frame by frame.

pub mod body;
mod error;
pub mod headers;
pub mod path;
mod upgrade;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response};
use http_body::Body as _;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

pub use error::{GATEWAY_ERROR_HEADER, ProxyError};

use crate::Gateway;
use crate::request_log::Trace;
use crate::routing::{Caller, Route, RoutingTable};
use crate::upstream::UpstreamClient;
use body::Relay;

/// Relayed upstream bodies, or small bodies the gateway makes itself.
pub type ProxyBody = Either<Relay, Full<Bytes>>;

/// When a request started, and its id, which says so (a UUIDv7 of that instant).
#[derive(Debug, Clone, Copy)]
pub struct RequestStart {
    pub id: Uuid,
    pub at: DateTime<Utc>,
}

/// A request starting now: its id, and the id's text as the value of `x-request-id`.
pub fn new_request_id() -> (RequestStart, HeaderValue) {
    let at = Utc::now();
    let id = shared::request_log::request_id(at, &rand::random());
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    let value = HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    (RequestStart { id, at }, value)
}

/// Forwards one `/proxy-api/...` request; every failure becomes the gateway's JSON error. Each
/// request is traced into the metrics and, when request logging is on, a record queued when its
/// bodies end.
pub async fn handle(
    gateway: &Gateway,
    req: Request<Incoming>,
    peer: &HeaderValue,
    (start, request_id): (RequestStart, HeaderValue),
) -> Response<ProxyBody> {
    let mut trace = Some(Trace::new(gateway, start, &req));
    // Shed load before doing any work (RELIABILITY S11).
    let result = match Arc::clone(&gateway.in_flight).try_acquire_owned() {
        Ok(permit) => forward(gateway, req, peer, &request_id, permit, &mut trace).await,
        Err(_) => Err(ProxyError::Overloaded),
    };
    result.unwrap_or_else(|e| {
        if let Some(trace) = &trace {
            let (status, kind) = e.status_and_kind();
            trace.failed(status.as_u16(), kind);
        }
        e.into_response(request_id)
    })
}

async fn forward(
    gateway: &Gateway,
    mut req: Request<Incoming>,
    peer: &HeaderValue,
    request_id: &HeaderValue,
    permit: OwnedSemaphorePermit,
    trace: &mut Option<Trace>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (route, uri) = {
        // The table is loaded once and released before any await.
        let table = gateway.table.load();
        if table.version < 0 {
            return Err(ProxyError::NotReady);
        }
        let path = path::split(req.uri().path());
        // Requests that never reach a route are logged under the names the caller used.
        let mut name_trace = || {
            if let (Some(trace), Some(path)) = (trace.as_mut(), &path) {
                trace.named(&path.account, &path.endpoint);
            }
        };
        let caller = authenticate(&table, req.headers()).inspect_err(|_| name_trace())?;
        let Some(path) = &path else {
            return Err(ProxyError::UnknownRoute);
        };
        let Some(route) = table.route(&path.account, &path.endpoint) else {
            name_trace();
            return Err(ProxyError::UnknownRoute);
        };
        if let Some(trace) = trace.as_mut() {
            trace.routed(route);
            trace.called_by(caller);
        }
        if !route.may_call(caller) {
            return Err(ProxyError::Forbidden);
        }
        if route.denied {
            return Err(ProxyError::UpstreamDenied);
        }
        // Host and base path come only from the route (RELIABILITY S3, S6).
        let uri = path::join(
            &route.scheme,
            &route.authority,
            &route.base_path,
            path.rest,
            req.uri().query(),
        )?;
        (Arc::clone(route), uri)
    };
    // A declared length over the limit is refused before anything is read or connected.
    if let Some(limit) = route.body_limit
        && req.body().size_hint().lower() > limit
    {
        return Err(ProxyError::BodyTooLarge);
    }
    let upgrade = upgrade::requested(&req);
    let caller_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let client = match upgrade {
        Some(_) => &route.clients.http1,
        None => &route.clients.any,
    };
    let (parts, body) = req.into_parts();
    let headers = headers::to_upstream(parts.headers, &route, peer, request_id, upgrade);
    // From here both bodies share the trace; the last one to finish queues its record.
    let trace = trace.take().map(|mut trace| {
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        trace.sent(path, headers.get(headers::TRACEPARENT).cloned());
        Arc::new(trace)
    });
    let result = relay(
        gateway,
        client,
        &route,
        parts.method,
        uri,
        headers,
        body,
        request_id,
        permit,
        caller_upgrade,
        trace.clone(),
    )
    .await;
    if let (Err(e), Some(trace)) = (&result, &trace) {
        let (status, kind) = e.status_and_kind();
        trace.failed(status.as_u16(), kind);
    }
    result
}

/// Sends the rewritten request upstream and streams the answer back.
#[allow(clippy::too_many_arguments)]
async fn relay(
    gateway: &Gateway,
    client: &UpstreamClient,
    route: &Route,
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Incoming,
    request_id: &HeaderValue,
    permit: OwnedSemaphorePermit,
    caller_upgrade: Option<hyper::upgrade::OnUpgrade>,
    trace: Option<Arc<Trace>>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let idle = gateway.config.body_idle_timeout();
    // A fresh request: only method, URI and rewritten headers cross over, never the caller's
    // version or extensions.
    let mut outgoing = Request::new(Relay::request(body, idle, route.body_limit, trace.clone()));
    *outgoing.method_mut() = method;
    *outgoing.uri_mut() = uri;
    *outgoing.headers_mut() = headers;
    let response =
        tokio::time::timeout(gateway.config.response_timeout(), client.request(outgoing))
            .await
            .map_err(|_| ProxyError::UpstreamTimeout)?
            .map_err(|e| {
                let error = ProxyError::from_upstream(&e);
                tracing::warn!(
                    request_id = request_id.to_str().unwrap_or_default(),
                    account = &*route.account,
                    endpoint = &*route.endpoint,
                    error = ?e,
                    kind = %error,
                    "forwarding failed"
                );
                error
            })?;
    if let Some(trace) = &trace {
        trace.answered(response.status().as_u16(), true);
    }
    if let Some(caller_upgrade) = caller_upgrade
        && response.status() == http::StatusCode::SWITCHING_PROTOCOLS
    {
        return Ok(upgrade::tunnel(
            response,
            caller_upgrade,
            request_id,
            permit,
            gateway.config.tunnel_idle_timeout(),
        ));
    }
    let (mut parts, body) = response.into_parts();
    parts.headers = headers::to_caller(std::mem::take(&mut parts.headers), request_id, None);
    Ok(Response::from_parts(
        parts,
        Either::Left(Relay::response(body, idle, permit, trace)),
    ))
}

/// The caller behind `Authorization: Bearer <key>`. Malformed keys never reach the table
/// (RELIABILITY S9); missing, unknown, revoked and expired keys all get the same error.
pub fn authenticate<'t>(
    table: &'t RoutingTable,
    headers: &http::HeaderMap,
) -> Result<&'t Arc<Caller>, ProxyError> {
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
