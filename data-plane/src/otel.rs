//! `CustomEndpoint` spans (SPEC §3), exported over OTLP/HTTP when an endpoint is configured.
//!
//! A finished request becomes one span, built straight into the exporter's data from the
//! request's trace: no tracer, context or span object lives while the request runs, and when
//! no endpoint is configured nothing here exists. The span's id is the one the gateway put in
//! the `traceparent` it sent upstream; its trace and parent are the caller's. Spans go through a
//! bounded queue to a batching task on tokio (the OTLP client is async reqwest: the blocking
//! default must not run inside tokio); when the collector is slow or away they are dropped and
//! counted, the proxy never waits.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::Method;
use http::header::HeaderValue;
use metrics_exporter_prometheus::PrometheusRecorder;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, OtlpProtocol};
use crate::proxy::headers::TraceParent;
use crate::request_log::{Record, set_counter, set_gauge};

pub const SPAN_NAME: &str = "CustomEndpoint";
/// Spans that may wait for the collector.
const QUEUE: usize = 10_000;
/// Spans per export request.
const BATCH: usize = 512;

/// The producer side, shared by every request.
pub struct Spans {
    queue: mpsc::Sender<SpanData>,
    scope: InstrumentationScope,
    dropped: AtomicU64,
    exported: AtomicU64,
}

/// The consumer side: the queue and the OTLP client that [`export`] drives.
pub struct Exporter {
    queue: mpsc::Receiver<SpanData>,
    client: opentelemetry_otlp::SpanExporter,
}

impl Spans {
    /// Spans and their exporter when `config` names an OTLP endpoint; `None` otherwise.
    pub fn new(
        config: &Config,
    ) -> Result<Option<(Spans, Exporter)>, opentelemetry_otlp::ExporterBuildError> {
        let Some(url) = config.otlp_traces_url() else {
            return Ok(None);
        };
        let protocol = match config.otlp_protocol {
            OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
            OtlpProtocol::HttpJson => Protocol::HttpJson,
        };
        // The `reqwest-client` feature makes this an async reqwest client, bounded by the
        // export timeout (OTEL_EXPORTER_OTLP_TIMEOUT, default 10 s).
        let mut client = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_protocol(protocol)
            .build()?;
        client.set_resource(
            &Resource::builder()
                .with_service_name(config.otel_service_name.clone())
                .build(),
        );
        let (queue, receiver) = mpsc::channel(QUEUE);
        let spans = Spans {
            queue,
            scope: InstrumentationScope::builder("gatehouse-data-plane")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
        };
        Ok(Some((
            spans,
            Exporter {
                queue: receiver,
                client,
            },
        )))
    }

    /// Queues the span of a finished request, or drops and counts it. `caller` is the
    /// `traceparent` the caller sent. Unsampled traces (flags without the sampled bit) are
    /// continued upstream but not exported.
    pub fn record(&self, entry: &Record, caller: Option<&HeaderValue>) {
        let caller = caller.and_then(TraceParent::parse);
        let sent = entry.traceparent.and_then(TraceParent::parse);
        let Some(context) = this_hop(sent, caller) else {
            return;
        };
        if !context.is_sampled() {
            return;
        }
        let parent = caller
            .and_then(|c| SpanId::from_hex(c.parent_id).ok())
            .unwrap_or(SpanId::INVALID);
        let start_time = SystemTime::from(entry.started_at);
        let status = match entry.error_type {
            Some(kind) => Status::error(kind),
            None if entry.status >= 500 => Status::error(""),
            None => Status::Unset,
        };
        let span = SpanData {
            attributes: attributes(entry, context.trace_id()),
            span_context: context,
            parent_span_id: parent,
            parent_span_is_remote: parent != SpanId::INVALID,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed(SPAN_NAME),
            start_time,
            end_time: start_time + Duration::from_micros(entry.latency_us),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        };
        if self.queue.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Copies the figures into `recorder`, just before it is rendered at `/metrics`.
    pub fn publish(&self, recorder: &PrometheusRecorder) {
        set_counter(
            recorder,
            "gatehouse_spans_dropped_total",
            self.dropped.load(Ordering::Relaxed),
        );
        set_counter(
            recorder,
            "gatehouse_spans_exported_total",
            self.exported.load(Ordering::Relaxed),
        );
        let queued = self.queue.max_capacity() - self.queue.capacity();
        set_gauge(recorder, "gatehouse_span_queue_depth", queued as f64);
    }
}

/// This hop's span context: the one sent upstream; else, for a request that never got that
/// far, a new span in the caller's trace; else a new sampled trace.
fn this_hop(sent: Option<TraceParent>, caller: Option<TraceParent>) -> Option<SpanContext> {
    let (trace_id, span_id, flags) = match (sent, caller) {
        (Some(sent), _) => (
            TraceId::from_hex(sent.trace_id).ok()?,
            SpanId::from_hex(sent.parent_id).ok()?,
            u8::from_str_radix(sent.flags, 16).ok()?,
        ),
        (None, Some(caller)) => (
            TraceId::from_hex(caller.trace_id).ok()?,
            SpanId::from(rand::random::<u64>() | 1),
            u8::from_str_radix(caller.flags, 16).ok()?,
        ),
        (None, None) => (
            TraceId::from(rand::random::<u128>() | 1),
            SpanId::from(rand::random::<u64>() | 1),
            TraceFlags::SAMPLED.to_u8(),
        ),
    };
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        false,
        TraceState::NONE,
    ))
}

/// SPEC §3's attributes, under OpenTelemetry's semantic-convention names where one exists.
/// Names, subject and error type are shared, not copied; the path never carries the query.
fn attributes(entry: &Record, trace_id: TraceId) -> Vec<KeyValue> {
    let int = |v: u64| Value::I64(i64::try_from(v).unwrap_or(i64::MAX));
    let mut attributes = Vec::with_capacity(14);
    let mut add = |key: &'static str, value: Value| {
        attributes.push(KeyValue::new(Key::from_static_str(key), value));
    };
    add("gatehouse.request_id", entry.request_id.to_string().into());
    add("gatehouse.trace_id", trace_id.to_string().into());
    add("gatehouse.account", Arc::clone(entry.account).into());
    add("gatehouse.endpoint", Arc::clone(entry.endpoint).into());
    if let Some(subject) = entry.subject {
        add("gatehouse.subject", Arc::clone(subject).into());
    }
    if let Some(key_id) = entry.key_id {
        add("gatehouse.key_id", key_id.to_string().into());
    }
    add("http.request.method", method(entry.method));
    add("url.path", entry.path.path().to_owned().into());
    add("http.response.status_code", Value::I64(entry.status.into()));
    add("gatehouse.latency_us", int(entry.latency_us));
    if let Some(ttfb) = entry.upstream_ttfb_us {
        add("gatehouse.upstream_ttfb_us", int(ttfb));
    }
    add("gatehouse.bytes_in", int(entry.bytes_in));
    add("gatehouse.bytes_out", int(entry.bytes_out));
    if let Some(kind) = entry.error_type {
        add("error.type", kind.into());
    }
    attributes
}

/// The method's name, without an allocation for the standard ones.
fn method(method: &Method) -> Value {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    const NAMES: [&str; 9] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().position(|m| m == method) {
        Some(i) => NAMES[i].into(),
        None => method.as_str().to_owned().into(),
    }
}

/// Exports queued spans in batches until shutdown, then exports what is left once. A batch is
/// whatever queued while the previous export ran, so an idle gateway exports at once and a
/// busy one in large requests.
pub async fn export(spans: &Spans, mut exporter: Exporter, mut shutdown: watch::Receiver<bool>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            n = exporter.queue.recv_many(&mut batch, BATCH) => n,
            _ = shutdown.changed() => {
                exporter.queue.close();
                while exporter.queue.recv_many(&mut batch, BATCH).await > 0 {
                    send(spans, &exporter.client, &mut batch).await;
                }
                return;
            }
        };
        if received == 0 {
            return;
        }
        if !send(spans, &exporter.client, &mut batch).await {
            // The collector is away: don't spin on it; the queue absorbs (or drops) meanwhile.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Exports and empties `batch`; on failure the spans are dropped and counted.
async fn send(
    spans: &Spans,
    client: &opentelemetry_otlp::SpanExporter,
    batch: &mut Vec<SpanData>,
) -> bool {
    let count = batch.len() as u64;
    match client.export(std::mem::take(batch)).await {
        Ok(()) => {
            spans.exported.fetch_add(count, Ordering::Relaxed);
            true
        }
        Err(e) => {
            spans.dropped.fetch_add(count, Ordering::Relaxed);
            tracing::warn!(error = %e, dropped = count, "exporting spans failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(value: &'static str) -> HeaderValue {
        HeaderValue::from_static(value)
    }

    #[test]
    fn this_hop_is_the_span_sent_upstream_in_the_callers_trace() {
        let caller = parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let sent = parent("00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01");
        let hop = this_hop(TraceParent::parse(&sent), TraceParent::parse(&caller)).unwrap();
        assert_eq!(
            hop.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(hop.span_id().to_string(), "1111111111111111");
        assert!(hop.is_sampled());

        // Refused before forwarding: a new span in the caller's trace, its sampling kept.
        let unsampled = parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        let hop = this_hop(None, TraceParent::parse(&unsampled)).unwrap();
        assert_eq!(
            hop.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_ne!(hop.span_id().to_string(), "00f067aa0ba902b7");
        assert!(!hop.is_sampled());

        let fresh = this_hop(None, None).unwrap();
        assert!(fresh.is_valid() && fresh.is_sampled());
    }

    #[test]
    fn standard_methods_need_no_allocation() {
        assert_eq!(method(&Method::PATCH), Value::from("PATCH"));
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method(&custom), Value::from("PURGE".to_owned()));
    }
}
