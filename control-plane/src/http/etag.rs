//! Optimistic concurrency: every mutable resource answers with an `ETag` (its last-modified
//! instant, to the microsecond), and `If-Match` on an update or delete answers 412 when stale.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use chrono::{DateTime, Utc};

use super::error::{ApiError, ApiResult};

/// The entity tag of a resource last modified at `updated_at`.
pub fn etag(updated_at: DateTime<Utc>) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", updated_at.timestamp_micros()))
        .expect("a quoted integer is a valid header value")
}

/// The request's `If-Match`, if any.
pub struct IfMatch(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::IF_MATCH)
            .map(|v| v.to_str().map(str::to_owned))
            .transpose()
            .map_err(|_| ApiError::BadRequest("If-Match must be ASCII".into()))?;
        Ok(IfMatch(value))
    }
}

impl IfMatch {
    /// Passes when there is no `If-Match`, when it is `*`, or when one of its tags is current
    /// (weak tags compare by their opaque part, as RFC 9110 allows for If-Match only strongly:
    /// ours are strong, so `W/` tags never match).
    pub fn check(&self, updated_at: DateTime<Utc>) -> ApiResult<()> {
        let Some(wanted) = &self.0 else { return Ok(()) };
        let current = etag(updated_at);
        let current = current.to_str().unwrap_or_default();
        let matches = wanted
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag == current);
        if matches {
            Ok(())
        } else {
            Err(ApiError::PreconditionFailed)
        }
    }
}

/// A JSON body answered with its `ETag`.
pub struct Tagged<T>(pub DateTime<Utc>, pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Tagged<T> {
    fn into_response(self) -> axum::response::Response {
        ([(header::ETAG, etag(self.0))], axum::Json(self.1)).into_response()
    }
}
