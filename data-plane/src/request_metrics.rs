//! Request metrics (SPEC §3) for `/metrics`. Handles are registered once per route, on its first
//! request, and kept with the route, so later requests only bump atomics: no label formatting, no
//! lookups.
//! Labels are account and endpoint names and status classes: never key or user ids, never paths.

use std::sync::Arc;

use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder as _};
use metrics_exporter_prometheus::PrometheusRecorder;

use crate::routing::Route;

pub const REQUEST_DURATION: &str = "gatehouse_request_duration_seconds";
pub const UPSTREAM_TTFB: &str = "gatehouse_upstream_ttfb_seconds";
/// From a fast local upstream to a long streamed completion.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

/// Requests by status class, one counter per class.
#[derive(Debug)]
struct ByClass([Counter; 5]);

impl ByClass {
    fn register(recorder: &PrometheusRecorder, labels: &[Label]) -> ByClass {
        ByClass(CLASSES.map(|class| {
            let mut labels = labels.to_vec();
            labels.push(Label::new("status_class", class));
            let key = Key::from_parts("gatehouse_requests_total", labels);
            recorder.register_counter(&key, &metadata())
        }))
    }

    fn count(&self, status: u16) {
        // Status 0 (no answer at all) counts as a server-side failure.
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].increment(1);
    }
}

/// The figures of one route.
#[derive(Debug)]
pub struct RouteMetrics {
    requests: ByClass,
    duration: Histogram,
    ttfb: Histogram,
    bytes_in: Counter,
    bytes_out: Counter,
}

impl RouteMetrics {
    pub fn register(recorder: &PrometheusRecorder, account: &str, endpoint: &str) -> RouteMetrics {
        let labels = [
            Label::new("account", account.to_owned()),
            Label::new("endpoint", endpoint.to_owned()),
        ];
        let key = |name: &'static str| Key::from_parts(name, labels.to_vec());
        RouteMetrics {
            requests: ByClass::register(recorder, &labels),
            duration: recorder.register_histogram(&key(REQUEST_DURATION), &metadata()),
            ttfb: recorder.register_histogram(&key(UPSTREAM_TTFB), &metadata()),
            bytes_in: recorder.register_counter(&key("gatehouse_request_bytes_total"), &metadata()),
            bytes_out: recorder
                .register_counter(&key("gatehouse_response_bytes_total"), &metadata()),
        }
    }

    pub fn observe(
        &self,
        status: u16,
        seconds: f64,
        ttfb_seconds: Option<f64>,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        self.requests.count(status);
        self.duration.record(seconds);
        if let Some(ttfb) = ttfb_seconds {
            self.ttfb.record(ttfb);
        }
        self.bytes_in.increment(bytes_in);
        self.bytes_out.increment(bytes_out);
    }
}

/// Figures of requests that found no route, and authentication failures.
#[derive(Debug)]
pub struct GatewayMetrics {
    unrouted: ByClass,
    auth_failures: Counter,
    /// Where routes register their figures on first use.
    recorder: Arc<PrometheusRecorder>,
}

impl GatewayMetrics {
    pub fn register(recorder: &Arc<PrometheusRecorder>) -> GatewayMetrics {
        recorder.describe_counter(
            "gatehouse_requests_total".into(),
            None,
            "Proxied requests by account, endpoint and status class (empty names: no route)."
                .into(),
        );
        recorder.describe_histogram(
            REQUEST_DURATION.into(),
            Some(metrics::Unit::Seconds),
            "From request received to response body finished.".into(),
        );
        recorder.describe_histogram(
            UPSTREAM_TTFB.into(),
            Some(metrics::Unit::Seconds),
            "From request received to the upstream's response headers.".into(),
        );
        let labels = [Label::new("account", ""), Label::new("endpoint", "")];
        GatewayMetrics {
            unrouted: ByClass::register(recorder, &labels),
            auth_failures: recorder.register_counter(
                &Key::from_static_name("gatehouse_auth_failures_total"),
                &metadata(),
            ),
            recorder: Arc::clone(recorder),
        }
    }

    /// Counts a finished request: under its route's figures when it had one.
    pub fn observe(
        &self,
        route: Option<&Route>,
        status: u16,
        seconds: f64,
        ttfb: Option<f64>,
        bytes: (u64, u64),
    ) {
        if matches!(status, 401 | 403) {
            self.auth_failures.increment(1);
        }
        match route {
            Some(route) => route
                .metrics(&self.recorder)
                .observe(status, seconds, ttfb, bytes.0, bytes.1),
            None => self.unrouted.count(status),
        }
    }
}
