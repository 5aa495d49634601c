//! A JSON body extractor whose failures are problem+json that name the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use shared::validation::FieldError;

use super::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let mime = ct.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::BadRequest(
                "expected a JSON body (content-type: application/json)".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        parse(&bytes).map(ApiJson)
    }
}

/// Deserialises, turning serde's complaint into a [`FieldError`] at the path where it arose.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(field_error)
}

/// [`parse`] for a value already parsed as JSON.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(field_error)
}

fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let message = e.inner().to_string();
    if e.inner().is_syntax() || e.inner().is_eof() {
        return ApiError::BadRequest(format!("malformed JSON: {message}"));
    }
    let path = e.path().to_string();
    // serde reports a missing field at its parent; name the field itself.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let field = match (path.as_str(), missing) {
        (".", Some(name)) => name.to_owned(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (".", None) => "body".to_owned(),
        (p, None) => p.to_owned(),
    };
    // Drop serde's "at line 1 column 42" suffix: the field says where.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    ApiError::Validation(FieldError::new(field, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
    }

    fn field_of(body: &str) -> String {
        match parse::<Outer>(body.as_bytes()) {
            Err(ApiError::Validation(e)) => e.field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_the_field() {
        assert_eq!(field_of(r#"{"inner":{"flag":true}}"#), "name");
        assert_eq!(field_of(r#"{"name":"x","inner":{}}"#), "inner.flag");
        assert_eq!(field_of(r#"{"name":"x","inner":{"flag":3}}"#), "inner.flag");
        assert!(matches!(parse::<Outer>(b"{"), Err(ApiError::BadRequest(_))));
    }
}
