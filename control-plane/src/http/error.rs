//! The one error type of the REST API and its mapping to RFC 9457 `application/problem+json`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::validation::FieldError;
use utoipa::{IntoResponses, ToSchema};

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
    /// An error about one object of a manifest (`provider account acme`, `integration
    /// acme/svc`): the inner error's status, its detail prefixed with the object.
    #[error("{object}: {error}")]
    About {
        object: String,
        error: Box<ApiError>,
    },
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
    /// The error attributed to `object`. Internal errors stay as they are (their detail is
    /// never answered), and so does an error already attributed.
    pub fn about(self, object: &str) -> ApiError {
        match self {
            kept @ (ApiError::Database(_) | ApiError::Sealed(_) | ApiError::About { .. }) => kept,
            other => ApiError::About {
                object: object.to_owned(),
                error: Box::new(other),
            },
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::About { error, .. } => error.status(),
            ApiError::Database(_) | ApiError::Sealed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// RFC 9457 problem details: the body of every API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    kind: &'static str,
    #[schema(example = "Unprocessable Entity")]
    title: &'static str,
    #[schema(example = 422)]
    status: u16,
    #[schema(example = "base_url: must not end with a slash")]
    detail: String,
    /// The offending field of a 422, as a JSON path.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "base_url")]
    field: Option<String>,
    /// The manifest object the error is about, for `PUT /apply`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "integration acme/svc")]
    object: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    invalid_params: Vec<InvalidParam>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidParam {
    name: String,
    reason: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (field_error, object) = match &self {
            ApiError::Validation(e) => (Some(e), None),
            ApiError::About { object, error } => match &**error {
                ApiError::Validation(e) => (Some(e), Some(object.clone())),
                _ => (None, Some(object.clone())),
            },
            _ => (None, None),
        };
        let detail = match &self {
            // Internal details stay in the log, never in the answer.
            ApiError::Database(_) | ApiError::Sealed(_) => {
                tracing::error!(error = %self, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let invalid_params = field_error
            .map(|e| InvalidParam {
                name: e.field.clone(),
                reason: e.message.clone(),
            })
            .into_iter()
            .collect();
        let body = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            field: field_error.map(|e| e.field.clone()),
            object,
            invalid_params,
        };
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

/// The errors any authenticated read can answer, for the OpenAPI document.
#[derive(IntoResponses)]
pub enum ReadErrors {
    /// Missing, malformed, unknown, expired or revoked API key.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// No such object, or one the caller may not see.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
}

/// The errors any authenticated write can answer, for the OpenAPI document.
#[derive(IntoResponses)]
pub enum WriteErrors {
    /// Malformed JSON or a wrong content type.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// Missing, malformed, unknown, expired or revoked API key.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The caller may see the object but not change it.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such object, or one the caller may not see.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// A name already taken, or the last admin removed.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// `If-Match` does not match the current `ETag`.
    #[response(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Problem),
    /// A field breaks a rule; `field` names it.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
}

pub type ApiResult<T> = Result<T, ApiError>;
