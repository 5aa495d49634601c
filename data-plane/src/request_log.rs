//! Request traces and logs (SPEC §3): every proxied request is traced into the metrics, and, when
//! request logging is on, one record per request is handed to a bounded queue without
//! waiting and written to PostgreSQL in batches by a background task. When the database is slow
//! or down the queue fills and records are dropped and counted; the proxy never blocks on it.

mod copy;

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{Method, Request};
use metrics::{Key, Level, Metadata, Recorder as _};
use metrics_exporter_prometheus::PrometheusRecorder;
use sqlx::PgPool;
use sqlx::postgres::PgPoolCopyExt as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::Gateway;
use crate::otel::Spans;
use crate::proxy::RequestStart;
use crate::proxy::headers::{TRACEPARENT, TraceParent};
use crate::request_metrics::GatewayMetrics;
use crate::routing::{Caller, Route};

/// One finished request, as queued: names are shared with the routing table and bytes with the
/// request, so making an entry copies no strings; the writer formats it off the request path.
#[derive(Debug, Clone)]
pub struct Entry {
    pub request_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub account: Arc<str>,
    pub endpoint: Arc<str>,
    pub account_id: Option<Uuid>,
    pub integration_id: Option<Uuid>,
    pub subject: Option<Arc<str>>,
    pub key_id: Option<Uuid>,
    pub method: Method,
    /// Path (and query, dropped when written: it may carry secrets) of the upstream request, or
    /// of the caller's when it never got that far.
    pub path: http::uri::PathAndQuery,
    pub status: u16,
    pub latency_us: u64,
    pub upstream_ttfb_us: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub error_type: Option<&'static str>,
    /// The `traceparent` sent upstream.
    pub traceparent: Option<HeaderValue>,
}

/// A request being traced. Filled in along the request path; shared by the request and response
/// bodies, which count bytes into it; queued as an [`Entry`] when the last of them lets go.
pub struct Trace {
    /// `None` when request logging is off; metrics are always kept.
    log: Option<Arc<RequestLog>>,
    /// `None` when no OTLP endpoint is configured.
    spans: Option<Arc<Spans>>,
    /// The caller's `traceparent`, kept only for the span.
    caller_traceparent: Option<HeaderValue>,
    metrics: Arc<GatewayMetrics>,
    started: Instant,
    started_at: DateTime<Utc>,
    request_id: Uuid,
    method: Method,
    path: http::uri::PathAndQuery,
    /// Account and endpoint as the caller named them, for requests that found no route.
    names: Option<(Arc<str>, Arc<str>)>,
    route: Option<Arc<Route>>,
    caller: Option<Arc<Caller>>,
    traceparent: Option<HeaderValue>,
    status: AtomicU16,
    upstream_ttfb_us: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    error_type: OnceLock<&'static str>,
}

impl Trace {
    /// Starts tracing `request` as `gateway` is set up to: metrics always, a log record and a
    /// span when those are on.
    pub fn new<B>(gateway: &Gateway, start: RequestStart, request: &Request<B>) -> Trace {
        let spans = gateway.spans.clone();
        let caller_traceparent = spans
            .as_ref()
            .and_then(|_| request.headers().get(TRACEPARENT).cloned());
        Trace {
            log: gateway.request_log.clone(),
            spans,
            caller_traceparent,
            metrics: Arc::clone(&gateway.request_metrics),
            started: Instant::now(),
            started_at: start.at,
            request_id: start.id,
            method: request.method().clone(),
            path: request
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
            names: None,
            route: None,
            caller: None,
            traceparent: None,
            status: AtomicU16::new(0),
            upstream_ttfb_us: AtomicU64::new(u64::MAX),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            error_type: OnceLock::new(),
        }
    }

    pub fn named(&mut self, account: &str, endpoint: &str) {
        self.names = Some((account.into(), endpoint.into()));
    }

    pub fn routed(&mut self, route: &Arc<Route>) {
        self.route = Some(Arc::clone(route));
    }

    pub fn called_by(&mut self, caller: &Arc<Caller>) {
        self.caller = Some(Arc::clone(caller));
    }

    /// The upstream request as sent: its path and trace context.
    pub fn sent(&mut self, path: http::uri::PathAndQuery, traceparent: Option<HeaderValue>) {
        self.path = path;
        self.traceparent = traceparent;
    }

    /// The response head: its status, and how long the upstream took to send it.
    pub fn answered(&self, status: u16, from_upstream: bool) {
        self.status.store(status, Ordering::Relaxed);
        if from_upstream {
            let ttfb = self.started.elapsed().as_micros() as u64;
            self.upstream_ttfb_us.store(ttfb, Ordering::Relaxed);
        }
    }

    pub fn failed(&self, status: u16, error_type: &'static str) {
        self.status.store(status, Ordering::Relaxed);
        let _ = self.error_type.set(error_type);
    }

    pub fn received(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn sent_bytes(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let latency = self.started.elapsed();
        let status = self.status.load(Ordering::Relaxed);
        // Debug: at the default level this costs one check, not a formatted line per request.
        tracing::debug!(
            request_id = %self.request_id,
            method = %self.method,
            status,
            latency_us = latency.as_micros() as u64,
            error_type = self.error_type.get().copied(),
            "proxied request finished"
        );
        let ttfb = self.upstream_ttfb_us.load(Ordering::Relaxed);
        let ttfb = (ttfb != u64::MAX).then_some(ttfb);
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        let bytes_out = self.bytes_out.load(Ordering::Relaxed);
        self.metrics.observe(
            self.route.as_deref(),
            status,
            latency.as_secs_f64(),
            ttfb.map(|us| us as f64 / 1e6),
            (bytes_in, bytes_out),
        );
        if self.log.is_none() && self.spans.is_none() {
            return;
        }
        let (account, endpoint) = match (&self.route, &self.names) {
            (Some(route), _) => (Arc::clone(&route.account), Arc::clone(&route.endpoint)),
            (None, Some((account, endpoint))) => (Arc::clone(account), Arc::clone(endpoint)),
            (None, None) => (Arc::from(""), Arc::from("")),
        };
        let entry = Entry {
            request_id: self.request_id,
            started_at: self.started_at,
            account,
            endpoint,
            account_id: self.route.as_ref().map(|r| r.account_id),
            integration_id: self.route.as_ref().map(|r| r.integration_id),
            subject: self.caller.as_ref().map(|c| Arc::clone(&c.subject)),
            key_id: self.caller.as_ref().map(|c| c.key_id),
            method: std::mem::take(&mut self.method),
            path: self.path.clone(),
            status,
            latency_us: latency.as_micros() as u64,
            upstream_ttfb_us: ttfb,
            bytes_in,
            bytes_out,
            error_type: self.error_type.get().copied(),
            traceparent: self.traceparent.take(),
        };
        if let Some(spans) = &self.spans {
            spans.record(&entry, self.caller_traceparent.as_ref());
        }
        if let Some(log) = &self.log {
            log.record(entry);
        }
    }
}

/// Records per write, at most.
const BATCH: usize = 5000;

/// The producer side, shared by every request.
pub struct RequestLog {
    queue: mpsc::Sender<Entry>,
    dropped: AtomicU64,
    written: AtomicU64,
}

impl RequestLog {
    /// A log with room for `capacity` queued records, and the receiver its writer drains.
    pub fn new(capacity: usize) -> (RequestLog, mpsc::Receiver<Entry>) {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let log = RequestLog {
            queue,
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        };
        (log, receiver)
    }

    /// Queues a record, or drops and counts it when the queue is full. Never waits.
    pub fn record(&self, record: Entry) {
        if self.queue.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Records waiting to be written.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Copies the figures into `recorder`, just before it is rendered at `/metrics`.
    pub fn publish(&self, recorder: &PrometheusRecorder) {
        set_counter(
            recorder,
            "gatehouse_request_log_dropped_total",
            self.dropped(),
        );
        set_counter(
            recorder,
            "gatehouse_request_log_written_total",
            self.written(),
        );
        set_gauge(
            recorder,
            "gatehouse_request_log_queue_depth",
            self.queued() as f64,
        );
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

/// Sets counter `name` to a total kept elsewhere (a pipeline's own atomics).
pub fn set_counter(recorder: &PrometheusRecorder, name: &'static str, total: u64) {
    recorder
        .register_counter(&Key::from_static_name(name), &metadata())
        .absolute(total);
}

pub fn set_gauge(recorder: &PrometheusRecorder, name: &'static str, value: f64) {
    recorder
        .register_gauge(&Key::from_static_name(name), &metadata())
        .set(value);
}

/// How long the writer waits for a batch to fill once a record is in: fewer, larger writes
/// cost PostgreSQL less per record; records become visible this much later.
const LINGER: Duration = Duration::from_millis(100);

/// Starts the writer on a thread of its own, with its own two connections: encoding and
/// sending a batch never stalls the request threads' event loops, and a slow log write never
/// delays a snapshot read. Request logs are telemetry: a commit need not wait for its WAL flush
/// (a crash may lose the last fraction of a second of records, never corrupt anything).
pub fn spawn_writer(
    log: Arc<RequestLog>,
    queue: mpsc::Receiver<Entry>,
    database: PgConnectOptions,
    data_plane: Arc<str>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("request-log".into())
        .spawn(move || {
            runtime.block_on(async move {
                let pool = PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(1))
                    // No ping before each batch: a dead connection fails its COPY, the batch
                    // is counted as dropped, and the pool replaces the connection.
                    .test_before_acquire(false)
                    .connect_lazy_with(
                        database
                            .application_name("gatehouse-request-log")
                            .options([("synchronous_commit", "off")]),
                    );
                write(&log, queue, pool, data_plane, shutdown).await;
            });
        })
}

/// Drains the queue in batches until shutdown, then writes what is left once.
pub async fn write(
    log: &RequestLog,
    mut queue: mpsc::Receiver<Entry>,
    pool: PgPool,
    data_plane: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut writer = Writer {
        log,
        pool,
        data_plane,
        batch: Vec::with_capacity(BATCH),
        buffer: Vec::new(),
    };
    loop {
        let received = tokio::select! {
            n = queue.recv_many(&mut writer.batch, BATCH) => n,
            _ = shutdown.changed() => {
                queue.close();
                while queue.recv_many(&mut writer.batch, BATCH).await > 0 {
                    writer.flush().await;
                }
                return;
            }
        };
        if received == 0 {
            return;
        }
        if writer.batch.len() < BATCH {
            // Sleep rather than wait on the queue: a waiting receiver would be woken by every
            // record sent meanwhile, a cost paid per request.
            tokio::time::sleep(LINGER).await;
            if !queue.is_empty() {
                let room = BATCH - writer.batch.len();
                queue.recv_many(&mut writer.batch, room).await;
            }
        }
        if !writer.flush().await {
            // The database is away: don't spin on it; the queue absorbs (or drops) meanwhile.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The writer's state: the batch being filled and the COPY buffer, both reused.
struct Writer<'l> {
    log: &'l RequestLog,
    pool: PgPool,
    data_plane: Arc<str>,
    batch: Vec<Entry>,
    buffer: Vec<u8>,
}

impl Writer<'_> {
    /// Writes and empties the batch; on failure the records are dropped and counted.
    async fn flush(&mut self) -> bool {
        let count = self.batch.len() as u64;
        copy::encode(&mut self.buffer, &self.data_plane, &self.batch);
        self.batch.clear();
        match self.copy().await {
            Ok(()) => {
                self.log.written.fetch_add(count, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.log.dropped.fetch_add(count, Ordering::Relaxed);
                tracing::warn!(error = %e, dropped = count, "writing request logs failed");
                false
            }
        }
    }

    /// One binary `COPY` per batch: PostgreSQL's cheapest way in for many rows.
    async fn copy(&self) -> sqlx::Result<()> {
        let mut copy = self.pool.copy_in_raw(copy::STATEMENT).await?;
        match copy.send(self.buffer.as_slice()).await {
            Ok(_) => copy.finish().await.map(drop),
            Err(e) => {
                let _ = copy.abort("sending the batch failed").await;
                Err(e)
            }
        }
    }
}

/// The trace id of a `traceparent`, or empty.
fn trace_id(traceparent: Option<&HeaderValue>) -> &str {
    traceparent
        .and_then(TraceParent::parse)
        .map_or("", |t| t.trace_id)
}
