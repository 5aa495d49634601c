//! The control plane's REST API over blocking reqwest: bearer auth, JSON in and out, paged
//! lists followed to the end, and problem+json answers turned into one readable line.

use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use crate::args::Connection;
use crate::error::CliError;

pub struct Client {
    base: String,
    key: SecretString,
    http: Http,
}

impl Client {
    pub fn new(connection: &Connection) -> Result<Client, CliError> {
        let key = connection.api_key.clone().ok_or_else(|| {
            CliError::Usage("an API key is required: --api-key or GATEHOUSE_API_KEY".into())
        })?;
        let http = Http::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::Usage(format!("setting up HTTP: {e}")))?;
        Ok(Client {
            base: connection.url.trim_end_matches('/').to_owned(),
            key,
            http,
        })
    }

    /// `method` on `/api/v1{path}`; the JSON answer (`Null` when empty).
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let mut request = self.request(method, &format!("/api/v1{path}"));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request)?;
        let text = response
            .text()
            .map_err(|e| CliError::Protocol(e.to_string()))?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| CliError::Protocol(e.to_string()))
    }

    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        self.call(Method::GET, path, None)
    }

    /// Every item of a paged list, following `X-Next-Page-Token`.
    pub fn list(&self, path: &str) -> Result<Vec<Value>, CliError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self.request(Method::GET, &format!("/api/v1{path}"));
            request = request.query(&[("page_size", "100")]);
            if let Some(token) = &token {
                request = request.query(&[("page_token", token)]);
            }
            let response = self.send(request)?;
            token = response
                .headers()
                .get("x-next-page-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match response.json::<Value>() {
                Ok(Value::Array(page)) => items.extend(page),
                other => {
                    return Err(CliError::Protocol(format!(
                        "expected a list, got {other:?}"
                    )));
                }
            }
            if token.is_none() {
                return Ok(items);
            }
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.key.expose_secret())
    }

    /// Sends; a non-2xx answer becomes [`CliError::Api`] with its problem detail.
    fn send(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let response = request.send().map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            reason: innermost(&e),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let problem: Value = response.json().unwrap_or(Value::Null);
        Err(CliError::Api(problem_line(status.as_u16(), &problem)))
    }
}

/// `422: integration acme/svc: base_url: must not end with a slash`: the status, the problem's
/// `detail`, and its `field` when the detail does not already name it.
pub fn problem_line(status: u16, problem: &Value) -> String {
    let detail = problem["detail"].as_str().unwrap_or("no detail given");
    match problem["field"].as_str() {
        Some(field) if !detail.contains(field) => format!("{status}: {detail} (field {field})"),
        _ => format!("{status}: {detail}"),
    }
}

/// The most specific cause of a transport error ("connection refused" rather than "error
/// sending request").
fn innermost(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_lines_name_the_field_once() {
        let p = serde_json::json!({"detail": "base_url: must not end with a slash", "field": "base_url"});
        assert_eq!(
            problem_line(422, &p),
            "422: base_url: must not end with a slash"
        );
        let p = serde_json::json!({"detail": "bad", "field": "name"});
        assert_eq!(problem_line(422, &p), "422: bad (field name)");
        assert_eq!(problem_line(500, &Value::Null), "500: no detail given");
    }
}
