//! The Gatehouse data plane: a stateless proxy. It follows the control plane's writes through
//! PostgreSQL LISTEN/NOTIFY, keeps an immutable routing table behind one `ArcSwap`, and forwards
//! `/proxy-api/{account}/{endpoint}/{path}?{query}` upstream with credentials injected.
//!
//! - [`config`]: flags and environment.
//! - [`routing`]: the immutable table built from a snapshot.
//! - [`sync`]: LISTEN, snapshot reads, validate-then-swap, reporting in, the snapshot file.
//! - [`upstream`]: HTTP clients, one per TLS profile.
//! - [`proxy`]: the request path: auth, routing, header rewriting, errors.
//! - [`request_log`]: per-request traces; records queued and written in batches off the request path.
//! - [`request_metrics`]: request figures for `/metrics`, registered per route on its first request.
//! - [`otel`]: `CustomEndpoint` spans exported over OTLP when an endpoint is configured.
//! - [`admin`]: health, readiness, sync status and Prometheus metrics.
//! - [`server`]: the accept loop and graceful shutdown.

pub mod admin;
pub mod config;
pub mod otel;
pub mod proxy;
pub mod request_log;
pub mod request_metrics;
pub mod routing;
pub mod server;
pub mod sync;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusRecorder;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;

/// What the request path and the sync task share.
pub struct Gateway {
    pub config: Config,
    /// The current routing table; requests load it once each.
    pub table: ArcSwap<routing::RoutingTable>,
    /// Becomes true with the first table and stays true (RELIABILITY P10), unless the table
    /// outlives `--max-config-age-seconds` (P15).
    pub ready: watch::Sender<bool>,
    pub status: sync::SyncStatus,
    /// One permit per proxied request in flight, held until its response body or tunnel ends.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// This data plane's metrics, rendered at `/metrics`.
    pub metrics: Arc<PrometheusRecorder>,
    /// How it reports in to the `data_planes` table.
    pub identity: sync::Identity,
    /// Where finished requests are queued for the request-log writer; `None` when logging is off.
    pub request_log: Option<Arc<request_log::RequestLog>>,
    /// Figures of requests that found no route.
    pub request_metrics: Arc<request_metrics::GatewayMetrics>,
    /// Where finished requests' spans are queued for export; `None` when OTLP is off.
    pub spans: Option<Arc<otel::Spans>>,
}

impl Gateway {
    /// Sets the in-flight gauge (requests, streams and tunnels not finished), for `/metrics`.
    pub fn publish_in_flight(&self) {
        use metrics::Recorder as _;
        let in_flight = self.config.max_in_flight as usize - self.in_flight.available_permits();
        let metadata = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        self.metrics
            .register_gauge(
                &metrics::Key::from_static_name("gatehouse_requests_in_flight"),
                &metadata,
            )
            .set(in_flight as f64);
    }
}

/// A running data plane: its address, and the tasks to await after signalling shutdown.
pub struct DataPlane {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    server: tokio::task::JoinHandle<()>,
    sync: tokio::task::JoinHandle<()>,
    /// The request-log writer, and what tells it to write its last batch and end.
    request_log: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    span_exporter: Option<tokio::task::JoinHandle<()>>,
}

impl DataPlane {
    /// Waits for the server (after draining) and the sync task to end, reporting which failed.
    pub async fn join(self) -> anyhow::Result<()> {
        self.server.await.context("server task")?;
        self.sync.await.context("sync task")?;
        if let Some((stop, writer)) = self.request_log {
            // Only now, with every request finished and recorded, the writer's last batch.
            stop.send_replace(true);
            writer.await.context("request log writer")?;
        }
        if let Some(exporter) = self.span_exporter {
            exporter.await.context("span exporter")?;
        }
        Ok(())
    }
}

/// Binds `listener` and starts serving and syncing; both stop when `shutdown` turns true.
/// The proxy answers 503 until the first table is loaded; the database may be down at start.
pub async fn start(
    config: Config,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<DataPlane> {
    let options: PgConnectOptions = config
        .database_url
        .expose_secret()
        .parse()
        .context("parsing DATABASE_URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(config.database_max_connections + 1)
        .acquire_timeout(config.heartbeat_timeout())
        .connect_lazy_with(options.clone().application_name("gatehouse-data-plane"));
    let addr = listener.local_addr()?;
    let metrics = Arc::new(admin::recorder());
    let identity = sync::Identity::new(addr);
    let request_log = match config.request_log_queue {
        0 => None,
        capacity => {
            let threads = config.worker_threads.map(usize::from).unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let name = format!("{}/{}", identity.hostname, addr);
            Some(Arc::new(request_log::RequestLog::new(
                capacity, threads, &name,
            )))
        }
    };
    let request_metrics = Arc::new(request_metrics::GatewayMetrics::register(&metrics));
    let (spans, span_exporter) = match otel::Spans::new(&config).context("OTLP exporter")? {
        Some((spans, exporter)) => (Some(Arc::new(spans)), Some(exporter)),
        None => (None, None),
    };
    let gateway = Arc::new(Gateway {
        table: ArcSwap::from_pointee(routing::RoutingTable::unloaded()),
        ready: watch::Sender::new(false),
        status: sync::SyncStatus::new(&metrics),
        metrics,
        identity,
        in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight as usize)),
        request_log,
        request_metrics,
        spans,
        config,
    });
    let request_log = gateway.request_log.clone().map(|log| {
        let (stop, stopped) = watch::channel(false);
        (stop, request_log::spawn_writer(log, options, stopped))
    });
    let span_exporter = gateway
        .spans
        .clone()
        .zip(span_exporter)
        .map(|(spans, exporter)| {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { otel::export(&spans, exporter, shutdown).await })
        });
    tracing::info!(%addr, "data plane listening");
    let sync = tokio::spawn(sync::run(Arc::clone(&gateway), pool, shutdown.clone()));
    let server = tokio::spawn(server::serve(listener, Arc::clone(&gateway), shutdown));
    Ok(DataPlane {
        request_log,
        span_exporter,
        addr,
        gateway,
        server,
        sync,
    })
}
