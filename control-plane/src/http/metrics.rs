//! Prometheus metrics of the API at `/metrics` (SPEC §3): requests by route template, method
//! and status class, their latency, and the database pool. Labels are route templates
//! (`/api/v1/provider-accounts/{account}`), never raw paths, names, key or user ids.

use std::sync::Arc;
use std::time::Instant;

use ::metrics::{Key, Label, Level, Metadata, Recorder as _};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

const REQUESTS: &str = "gatehouse_api_requests_total";
const DURATION: &str = "gatehouse_api_request_duration_seconds";
/// API calls are short; a slow one is a database problem worth seeing.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The control plane's own recorder (not the process-global one, so that planes started in
/// one test process keep their figures apart).
#[derive(Clone)]
pub struct ApiMetrics(Arc<PrometheusRecorder>);

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

impl ApiMetrics {
    pub fn new() -> ApiMetrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), DURATION_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| unreachable!("the bucket list is a non-empty constant"));
        recorder.describe_counter(
            REQUESTS.into(),
            None,
            "API requests by route template, method and status class.".into(),
        );
        recorder.describe_histogram(
            DURATION.into(),
            Some(::metrics::Unit::Seconds),
            "From API request received to response headers.".into(),
        );
        ApiMetrics(Arc::new(recorder))
    }

    fn observe(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        let route = Label::new("route", route.to_owned());
        let method = Label::new("method", method_label(method));
        let class = Label::new("status_class", status_class(status));
        let requests = Key::from_parts(REQUESTS, vec![route.clone(), method.clone(), class]);
        self.0.register_counter(&requests, &metadata()).increment(1);
        let duration = Key::from_parts(DURATION, vec![route, method]);
        self.0
            .register_histogram(&duration, &metadata())
            .record(seconds);
    }

    /// The text exposition, with the pool figures of this moment.
    fn render(&self, db: &sqlx::PgPool) -> String {
        let gauge = |name: &'static str, value: f64| {
            self.0
                .register_gauge(&Key::from_static_name(name), &metadata())
                .set(value);
        };
        gauge("gatehouse_db_pool_connections", f64::from(db.size()));
        gauge("gatehouse_db_pool_idle_connections", db.num_idle() as f64);
        gauge(
            "gatehouse_db_pool_max_connections",
            f64::from(db.options().get_max_connections()),
        );
        self.0.handle().render()
    }

    /// The `GET /metrics` answer.
    pub fn exposition(&self, db: &sqlx::PgPool) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            self.render(db),
        )
            .into_response()
    }
}

impl Default for ApiMetrics {
    fn default() -> ApiMetrics {
        ApiMetrics::new()
    }
}

/// Counts and times every request under its route template; requests no route matched count
/// under `unmatched`.
pub async fn observe(State(metrics): State<ApiMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Standard methods by name; anything else as `other`, so callers cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(0), "5xx");
        assert_eq!(status_class(999), "5xx");
    }
}
