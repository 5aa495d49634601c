//! Errors the proxy produces itself, and their one mapping to HTTP (SPEC §2).

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use serde::Serialize;

use super::ProxyBody;
use super::body::RelayError;
use super::headers::X_REQUEST_ID;
use crate::upstream::DeniedAddress;

/// Marks a response as made by the gateway, not relayed from an upstream.
pub const GATEWAY_ERROR_HEADER: &str = "x-gatehouse-error";

/// What went wrong, and on which side.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the path must be /proxy-api/{{account}}/{{endpoint}}/{{path}}")]
    NotProxyPath,
    #[error("the upstream path contains a '.' or '..' segment")]
    DotSegment,
    #[error("the upstream path is not a valid URI path")]
    InvalidPath,
    #[error(
        "the request's framing is ambiguous: Content-Length with Transfer-Encoding, conflicting \
         lengths, or a transfer coding other than chunked"
    )]
    AmbiguousFraming,
    #[error("the request line or headers are malformed")]
    MalformedRequest,
    #[error("the request headers are too large")]
    HeadTooLarge,
    #[error("the request target is too long")]
    TargetTooLong,
    #[error("a valid API key is required (Authorization: Bearer <key>)")]
    Unauthorized,
    #[error("this API key may not call this endpoint")]
    Forbidden,
    #[error("no such provider account or endpoint")]
    UnknownRoute,
    #[error("the gateway has not loaded its configuration yet")]
    NotReady,
    #[error("the gateway is at its limit of requests in flight")]
    Overloaded,
    #[error("the request body is larger than this endpoint accepts")]
    BodyTooLarge,
    #[error("the request body stalled")]
    CallerIdle,
    #[error("the request body ended abruptly")]
    CallerAborted,
    #[error("the upstream could not be reached")]
    UpstreamUnreachable,
    #[error("the upstream's TLS certificate or handshake was refused")]
    UpstreamTls,
    #[error("the upstream's address is in a range the gateway may not reach")]
    UpstreamDenied,
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: String,
    request_id: &'a str,
}

impl ProxyError {
    /// The status and machine-readable type of each error: the one place they are decided.
    pub fn status_and_kind(&self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::NotProxyPath => (StatusCode::NOT_FOUND, "not_found"),
            ProxyError::DotSegment => (StatusCode::BAD_REQUEST, "bad_path"),
            ProxyError::InvalidPath => (StatusCode::BAD_REQUEST, "bad_path"),
            ProxyError::AmbiguousFraming => (StatusCode::BAD_REQUEST, "ambiguous_framing"),
            ProxyError::MalformedRequest => (StatusCode::BAD_REQUEST, "malformed_request"),
            ProxyError::HeadTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            ProxyError::TargetTooLong => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ProxyError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ProxyError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ProxyError::UnknownRoute => (StatusCode::NOT_FOUND, "not_found"),
            ProxyError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ProxyError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ProxyError::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ProxyError::CallerIdle => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ProxyError::CallerAborted => (StatusCode::BAD_REQUEST, "bad_request"),
            ProxyError::UpstreamUnreachable => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            ProxyError::UpstreamTls => (StatusCode::BAD_GATEWAY, "upstream_tls"),
            ProxyError::UpstreamDenied => (StatusCode::BAD_GATEWAY, "upstream_denied"),
            ProxyError::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        }
    }

    /// What a failed upstream exchange means, from the error's cause chain: the caller's body
    /// failing (our [`RelayError`]), a denied address, a timeout, a TLS refusal, or else an
    /// unreachable upstream.
    pub fn from_upstream(error: &(dyn std::error::Error + 'static)) -> ProxyError {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(relay) = e.downcast_ref::<RelayError>() {
                return match relay {
                    RelayError::Idle(_) => ProxyError::CallerIdle,
                    RelayError::TooLarge(_) => ProxyError::BodyTooLarge,
                    RelayError::Broken(_) => ProxyError::CallerAborted,
                };
            }
            if e.is::<DeniedAddress>() {
                return ProxyError::UpstreamDenied;
            }
            // hyper-rustls reports a refused handshake as rustls's error inside io::Errors.
            if e.is::<rustls::Error>() {
                return ProxyError::UpstreamTls;
            }
            cause = match e.downcast_ref::<std::io::Error>() {
                Some(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                    return ProxyError::UpstreamTimeout;
                }
                // `io::Error::source` skips the error it wraps; step into it instead.
                Some(io) => io
                    .get_ref()
                    .map(|inner| inner as &(dyn std::error::Error + 'static)),
                None => e.source(),
            };
        }
        ProxyError::UpstreamUnreachable
    }

    /// The gateway's JSON error, tagged with [`GATEWAY_ERROR_HEADER`] and the request id.
    pub fn into_response(self, request_id: HeaderValue) -> Response<ProxyBody> {
        let (status, kind) = self.status_and_kind();
        let body = Body {
            error: Detail {
                kind,
                message: self.to_string(),
                request_id: request_id.to_str().unwrap_or_default(),
            },
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(Either::Right(Full::new(Bytes::from(json))));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(GATEWAY_ERROR_HEADER, HeaderValue::from_static(kind));
        headers.insert(X_REQUEST_ID, request_id);
        // The rest of the body is never read, or where the next request starts is unknown: the
        // connection cannot be reused.
        if matches!(
            self,
            ProxyError::BodyTooLarge
                | ProxyError::AmbiguousFraming
                | ProxyError::MalformedRequest
                | ProxyError::HeadTooLarge
                | ProxyError::TargetTooLong
        ) {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
