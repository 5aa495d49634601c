//! Liveness, readiness, sync status and Prometheus metrics, served on the proxy's own port.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::Gateway;
use crate::proxy::ProxyBody;
use crate::request_metrics::{DURATION_BUCKETS, REQUEST_DURATION, UPSTREAM_TTFB};
use crate::sync::status::{RELOAD_BUCKETS, RELOAD_DURATION};

/// A recorder of this data plane's own; `/metrics` renders it.
pub fn recorder() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(RELOAD_DURATION.to_owned()), RELOAD_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), DURATION_BUCKETS)
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(UPSTREAM_TTFB.to_owned()), DURATION_BUCKETS)
        })
        .map(PrometheusBuilder::build_recorder)
        .unwrap_or_else(|_| unreachable!("the bucket lists are non-empty constants"))
}

/// The answer for an admin path, `None` for any other path.
pub fn respond(gateway: &Gateway, path: &str) -> Option<Response<ProxyBody>> {
    match path {
        // Liveness never touches the database.
        "/healthz" => Some(text(StatusCode::OK, "ok")),
        // Ready once a table is loaded, and from then on, database or not (RELIABILITY P10).
        "/readyz" => Some(if *gateway.ready.borrow() {
            text(StatusCode::OK, "ready")
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no routing table loaded yet",
            )
        }),
        "/status" => {
            let report = serde_json::to_vec(&gateway.status.report()).unwrap_or_default();
            Some(body(report, "application/json"))
        }
        "/metrics" => {
            if let Some(log) = &gateway.request_log {
                log.publish(&gateway.metrics);
            }
            if let Some(spans) = &gateway.spans {
                spans.publish(&gateway.metrics);
            }
            gateway.publish_in_flight();
            Some(body(
                gateway.metrics.handle().render().into_bytes(),
                "text/plain; version=0.0.4; charset=utf-8",
            ))
        }
        _ => None,
    }
}

fn body(bytes: Vec<u8>, content_type: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(bytes))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
