//! Request traces and logs (SPEC §3): every proxied request is traced into the metrics, and, when
//! request logging is on, one record per request is appended to a bounded buffer without
//! waiting and written to PostgreSQL in batches by a background task. When the database is slow
//! or down the buffer fills and records are dropped and counted; the proxy never blocks on it.

mod copy;

use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{Method, Request};
use metrics::{Key, Level, Metadata, Recorder as _};
use metrics_exporter_prometheus::PrometheusRecorder;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::postgres::{PgCopyIn, PgPoolCopyExt as _};
use sqlx::{PgPool, Postgres};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::Gateway;
use crate::otel::Spans;
use crate::proxy::RequestStart;
use crate::proxy::headers::{TRACEPARENT, TraceParent};
use crate::request_metrics::GatewayMetrics;
use crate::routing::{Caller, Route};

/// One finished request, as recorded: borrowed from its trace (names from the routing table,
/// bytes from the request), so recording it copies bytes into a buffer and allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub request_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub account: &'a Arc<str>,
    pub endpoint: &'a Arc<str>,
    pub account_id: Option<Uuid>,
    pub integration_id: Option<Uuid>,
    pub subject: Option<&'a Arc<str>>,
    pub key_id: Option<Uuid>,
    pub method: &'a Method,
    /// Path (and query, dropped when written: it may carry secrets) of the upstream request, or
    /// of the caller's when it never got that far.
    pub path: &'a PathAndQuery,
    pub status: u16,
    pub latency_us: u64,
    pub upstream_ttfb_us: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub error_type: Option<&'static str>,
    /// The `traceparent` sent upstream.
    pub traceparent: Option<&'a HeaderValue>,
}

/// A request being traced. Filled in along the request path; shared by the request and response
/// bodies, which count bytes into it; recorded as a [`Record`] when the last of them lets go.
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
            (Some(route), _) => (&route.account, &route.endpoint),
            (None, Some((account, endpoint))) => (account, endpoint),
            (None, None) => (&*UNNAMED, &*UNNAMED),
        };
        let record = Record {
            request_id: self.request_id,
            started_at: self.started_at,
            account,
            endpoint,
            account_id: self.route.as_ref().map(|r| r.account_id),
            integration_id: self.route.as_ref().map(|r| r.integration_id),
            subject: self.caller.as_ref().map(|c| &c.subject),
            key_id: self.caller.as_ref().map(|c| c.key_id),
            method: &self.method,
            path: &self.path,
            status,
            latency_us: latency.as_micros() as u64,
            upstream_ttfb_us: ttfb,
            bytes_in,
            bytes_out,
            error_type: self.error_type.get().copied(),
            traceparent: self.traceparent.as_ref(),
        };
        if let Some(spans) = &self.spans {
            spans.record(&record, self.caller_traceparent.as_ref());
        }
        if let Some(log) = &self.log {
            log.record(&record);
        }
    }
}

/// The account and endpoint of a request whose path named none.
static UNNAMED: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));

/// The producer side, shared by every request: records are encoded straight into the buffer of
/// the calling thread's shard (behind a lock the writer takes only to swap buffers), so a record
/// costs no allocation, no channel and no work on another thread; the writer swaps each shard's
/// buffer for an empty one and sends it as it is.
pub struct RequestLog {
    shards: Box<[Shard]>,
    /// Records a shard holds at most; more are dropped.
    shard_capacity: usize,
    /// This data plane's name, written in every record.
    data_plane: Box<str>,
    /// Wakes the writer before its time when a shard is half full.
    filling: Notify,
    dropped: AtomicU64,
    written: AtomicU64,
}

/// Aligned so that shards used by different threads share no cache line.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Rows>);

/// Records encoded as `COPY` rows, and how many.
#[derive(Default)]
struct Rows {
    count: usize,
    data: Vec<u8>,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Rows> {
        // Encoding into a Vec cannot leave it half-written in a way that matters to readers.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RequestLog {
    /// A log holding at most about `capacity` unwritten records, in `shards` buffers (one per
    /// request thread is best), each record naming `data_plane`.
    pub fn new(capacity: usize, shards: usize, data_plane: &str) -> RequestLog {
        let shards = shards.max(1);
        RequestLog {
            shards: (0..shards).map(|_| Shard::default()).collect(),
            shard_capacity: capacity.div_ceil(shards).max(1),
            data_plane: data_plane.into(),
            filling: Notify::new(),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }

    /// Appends a record, or drops and counts it when its shard is full. Never waits.
    pub fn record(&self, record: &Record) {
        let shard = &self.shards[shard_index() % self.shards.len()];
        let mut rows = shard.lock();
        if rows.count >= self.shard_capacity {
            drop(rows);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        copy::encode_row(&mut rows.data, &self.data_plane, record);
        rows.count += 1;
        let half_full = rows.count == self.shard_capacity.div_ceil(2);
        drop(rows);
        if half_full {
            self.filling.notify_one();
        }
    }

    /// Swaps each shard's rows into `spares` (cleared first, one per shard), returning how many
    /// records were taken.
    fn take(&self, spares: &mut [Vec<u8>]) -> u64 {
        let mut taken = 0;
        for (shard, spare) in self.shards.iter().zip(spares) {
            spare.clear();
            let mut rows = shard.lock();
            std::mem::swap(&mut rows.data, spare);
            taken += std::mem::take(&mut rows.count) as u64;
        }
        taken
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Records waiting to be written.
    pub fn queued(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().count).sum()
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

/// How often the writer sends what the shards hold: fewer, larger writes cost PostgreSQL less
/// per record; records become visible up to this much later.
const LINGER: Duration = Duration::from_millis(100);

/// Starts the writer as a task of the calling runtime, with a connection of its own, so that a
/// slow log write never delays a snapshot read. It runs beside the request tasks, not on a thread
/// of its own: it only hands finished buffers to the socket, and a process with one thread pays
/// no atomic file reference count on each of the request path's system calls. Request logs are
/// telemetry: a commit need not wait for its WAL flush (a crash may lose the last fraction of a
/// second of records, never corrupt anything).
pub fn spawn_writer(
    log: Arc<RequestLog>,
    database: PgConnectOptions,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(1))
        // No ping before each batch: a dead connection fails its COPY, the batch is counted as
        // dropped, and the pool replaces the connection.
        .test_before_acquire(false)
        .connect_lazy_with(
            database
                .application_name("gatehouse-request-log")
                .options([("synchronous_commit", "off")]),
        );
    tokio::spawn(async move { write(&log, pool, shutdown).await })
}

/// Writes what the shards hold every `LINGER` (sooner when one is half full) until shutdown,
/// then once more.
pub async fn write(log: &RequestLog, pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    let mut spares = vec![Vec::new(); log.shards.len()];
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(LINGER) => false,
            _ = log.filling.notified() => false,
            _ = shutdown.changed() => true,
        };
        let count = log.take(&mut spares);
        if count > 0 {
            match copy(&pool, &spares).await {
                Ok(()) => {
                    log.written.fetch_add(count, Ordering::Relaxed);
                }
                Err(e) => {
                    log.dropped.fetch_add(count, Ordering::Relaxed);
                    tracing::warn!(error = %e, dropped = count, "writing request logs failed");
                    if !stopping {
                        // The database is away: don't spin on it; the shards absorb (or drop)
                        // meanwhile.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// One binary `COPY` for the rows of every shard: PostgreSQL's cheapest way in for many rows.
async fn copy(pool: &PgPool, parts: &[Vec<u8>]) -> sqlx::Result<()> {
    let mut copy = pool.copy_in_raw(copy::STATEMENT).await?;
    match send(&mut copy, parts).await {
        Ok(()) => copy.finish().await.map(drop),
        Err(e) => {
            let _ = copy.abort("sending the batch failed").await;
            Err(e)
        }
    }
}

/// The `COPY` data of `parts`, in pieces with a yield between them: the writer shares its
/// thread with requests, and one large write would hold them up while the kernel copies it to
/// PostgreSQL's socket.
async fn send(
    copy: &mut PgCopyIn<PoolConnection<Postgres>>,
    parts: &[Vec<u8>],
) -> sqlx::Result<()> {
    copy.send(copy::HEADER).await?;
    for piece in parts.iter().flat_map(|part| part.chunks(SEND_PIECE)) {
        copy.send(piece).await?;
        tokio::task::yield_now().await;
    }
    copy.send(copy::TRAILER.as_slice()).await?;
    Ok(())
}

/// Bytes of `COPY` data sent at a time: about 250 records.
const SEND_PIECE: usize = 64 * 1024;

/// This thread's shard: threads are numbered in the order they first record.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|index| *index)
}

/// The trace id of a `traceparent`, or empty.
fn trace_id(traceparent: Option<&HeaderValue>) -> &str {
    traceparent
        .and_then(TraceParent::parse)
        .map_or("", |t| t.trace_id)
}
