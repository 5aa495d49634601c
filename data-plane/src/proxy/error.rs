//! Errors the proxy produces itself, and their one mapping to HTTP (SPEC §2).

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use serde::Serialize;

use super::ProxyBody;
use super::headers::X_REQUEST_ID;

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
    #[error("the request has conflicting framing headers")]
    AmbiguousFraming,
    #[error("a valid API key is required (Authorization: Bearer <key>)")]
    Unauthorized,
    #[error("this API key may not call this endpoint")]
    Forbidden,
    #[error("no such provider account or endpoint")]
    UnknownRoute,
    #[error("the gateway has not loaded its configuration yet")]
    NotReady,
    #[error("the upstream could not be reached")]
    UpstreamUnreachable,
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
    fn status_and_kind(&self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::NotProxyPath => (StatusCode::NOT_FOUND, "not_found"),
            ProxyError::DotSegment => (StatusCode::BAD_REQUEST, "bad_path"),
            ProxyError::InvalidPath => (StatusCode::BAD_REQUEST, "bad_path"),
            ProxyError::AmbiguousFraming => (StatusCode::BAD_REQUEST, "bad_request"),
            ProxyError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ProxyError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ProxyError::UnknownRoute => (StatusCode::NOT_FOUND, "not_found"),
            ProxyError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ProxyError::UpstreamUnreachable => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            ProxyError::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        }
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
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        // After ambiguous framing the rest of the stream can't be trusted (RELIABILITY S2).
        if matches!(self, ProxyError::AmbiguousFraming) {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
