//! The one error type of the REST API and its mapping to RFC 9457 `application/problem+json`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::validation::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, malformed, unknown, expired or revoked key: one answer for all.
    #[error("a valid API key is required (Authorization: Bearer <key>)")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    /// Also what a caller gets for an object it may not see, so existence does not leak.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the resource changed since it was read (If-Match does not match its ETag)")]
    PreconditionFailed,
    #[error(transparent)]
    Validation(#[from] FieldError),
    #[error(transparent)]
    Database(sqlx::Error),
    /// A stored secret that does not open: corruption or a missing key, never the caller's doing.
    #[error("a stored secret could not be opened: {0}")]
    Sealed(#[from] shared::crypto::CryptoError),
}

impl From<sqlx::Error> for ApiError {
    /// Unique and foreign-key violations are the caller's doing; they are told apart by the
    /// constraint names the migrations give.
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error() {
            match db.constraint() {
                Some("provider_accounts_name_key") => {
                    return ApiError::Conflict("a provider account with this name exists".into());
                }
                Some("integrations_account_name_key") => {
                    return ApiError::Conflict(
                        "an integration with this name exists in this account".into(),
                    );
                }
                Some("subjects_kind_name_key") => {
                    return ApiError::Conflict("a subject with this name exists".into());
                }
                _ => {}
            }
        }
        ApiError::Database(e)
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Database(_) | ApiError::Sealed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
        });
        match &self {
            // Internal details stay in the log, never in the answer.
            ApiError::Database(_) | ApiError::Sealed(_) => {
                tracing::error!(error = %self, "internal error");
                body["detail"] = json!("internal error");
            }
            ApiError::Validation(e) => {
                body["detail"] = json!(e.to_string());
                body["field"] = json!(e.field);
                body["invalid_params"] = json!([{ "name": e.field, "reason": e.message }]);
            }
            other => body["detail"] = json!(other.to_string()),
        }
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
