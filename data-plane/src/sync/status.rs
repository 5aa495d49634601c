//! How stale this data plane may be (RELIABILITY P11): applied version, last sync, reload cost
//! and failures, listener state, and whether the database's schema is one it understands (P13). Kept as lock-free values for `/status` and the heartbeat, and
//! mirrored into Prometheus metrics for `/metrics`; the sync task is the only writer.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Level, Metadata, Recorder as _};
use metrics_exporter_prometheus::PrometheusRecorder;
use serde::Serialize;
use tokio::sync::watch;

/// Where the table being served came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableSource {
    /// Nothing loaded yet, or the table outlived `max_config_age`.
    None,
    Database,
    SnapshotFile,
}

pub struct SyncStatus {
    /// A signal as much as a value: waiters can ask for "applied version ≥ N".
    applied_version: watch::Sender<i64>,
    last_sync_unix_ms: AtomicU64,
    last_reload_ms: AtomicU64,
    reloads: AtomicU64,
    incremental_reloads: AtomicU64,
    reload_failures: AtomicU64,
    listener_connected: AtomicBool,
    source: AtomicU8,
    /// The database's schema (migration) version at the last read; 0 before any.
    schema_version: AtomicI64,
    schema_supported: AtomicBool,
    metrics: SyncMetrics,
}

/// [`SyncStatus`] as `/status` shows it.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub applied_version: i64,
    /// When the table was last confirmed current: a reload, or a heartbeat that found no newer
    /// version. For a table read from the snapshot file, when that snapshot was synced.
    pub last_sync_unix_ms: u64,
    pub last_reload_ms: u64,
    /// Tables swapped in after a database read, full or incremental.
    pub reloads: u64,
    /// Of `reloads`, those that applied only what the change log said had changed.
    pub incremental_reloads: u64,
    pub reload_failures: u64,
    pub listener_connected: bool,
    pub table_source: TableSource,
    /// The database's schema (migration) version at the last read.
    pub schema_version: i64,
    /// False while that schema is not one this data plane understands: it then keeps serving
    /// its last good table and applies nothing (RELIABILITY P13).
    pub schema_supported: bool,
}

struct SyncMetrics {
    applied_version: Gauge,
    last_sync: Gauge,
    reload_duration: Histogram,
    reloads: Counter,
    incremental_reloads: Counter,
    reload_failures: Counter,
    listener_connected: Gauge,
    schema_version: Gauge,
    schema_supported: Gauge,
}

/// Bucket bounds of the reload duration histogram, in seconds: the propagation target is
/// 100 ms, and a 100k-integration table takes about a second.
pub const RELOAD_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
pub const RELOAD_DURATION: &str = "gatehouse_config_reload_duration_seconds";

impl SyncStatus {
    /// Registers the sync metrics with this data plane's own recorder (not a global one, so
    /// that several data planes in one test process keep separate figures).
    pub fn new(recorder: &PrometheusRecorder) -> SyncStatus {
        let metadata = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
        let gauge = |name: &'static str, help: &'static str| {
            recorder.describe_gauge(name.into(), None, help.into());
            recorder.register_gauge(&Key::from_static_name(name), &metadata)
        };
        let counter = |name: &'static str, help: &'static str| {
            recorder.describe_counter(name.into(), None, help.into());
            recorder.register_counter(&Key::from_static_name(name), &metadata)
        };
        recorder.describe_histogram(
            RELOAD_DURATION.into(),
            Some(metrics::Unit::Seconds),
            "Wall time of a reload: database read, table build, swap.".into(),
        );
        let metrics = SyncMetrics {
            applied_version: gauge(
                "gatehouse_config_applied_version",
                "Config version of the routing table being served (-1: none).",
            ),
            last_sync: gauge(
                "gatehouse_config_last_sync_timestamp_seconds",
                "Unix time the routing table was last confirmed current.",
            ),
            reload_duration: recorder
                .register_histogram(&Key::from_static_name(RELOAD_DURATION), &metadata),
            reloads: counter(
                "gatehouse_config_reloads_total",
                "Routing tables built from the database and swapped in.",
            ),
            incremental_reloads: counter(
                "gatehouse_config_incremental_reloads_total",
                "Of those, the ones that applied only what the change log said had changed.",
            ),
            reload_failures: counter(
                "gatehouse_config_reload_failures_total",
                "Reloads that failed; the last good table kept serving.",
            ),
            listener_connected: gauge(
                "gatehouse_config_listener_connected",
                "1 while the LISTEN connection is up and its heartbeats answer.",
            ),
            schema_version: gauge(
                "gatehouse_config_schema_version",
                "The database's schema (migration) version at the last read.",
            ),
            schema_supported: gauge(
                "gatehouse_config_schema_supported",
                "0 while the database's schema is one this data plane does not understand.",
            ),
        };
        metrics.applied_version.set(-1.0);
        metrics.schema_supported.set(1.0);
        SyncStatus {
            applied_version: watch::Sender::new(-1),
            last_sync_unix_ms: AtomicU64::new(0),
            last_reload_ms: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            incremental_reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            listener_connected: AtomicBool::new(false),
            source: AtomicU8::new(TableSource::None as u8),
            schema_version: AtomicI64::new(0),
            schema_supported: AtomicBool::new(true),
            metrics,
        }
    }

    pub fn report(&self) -> StatusReport {
        StatusReport {
            applied_version: self.applied_version(),
            last_sync_unix_ms: self.last_sync_unix_ms(),
            last_reload_ms: self.last_reload_ms.load(Ordering::Relaxed),
            reloads: self.reloads.load(Ordering::Relaxed),
            incremental_reloads: self.incremental_reloads.load(Ordering::Relaxed),
            reload_failures: self.reload_failures.load(Ordering::Relaxed),
            listener_connected: self.listener_connected.load(Ordering::Relaxed),
            table_source: match self.source.load(Ordering::Relaxed) {
                s if s == TableSource::Database as u8 => TableSource::Database,
                s if s == TableSource::SnapshotFile as u8 => TableSource::SnapshotFile,
                _ => TableSource::None,
            },
            schema_version: self.schema_version.load(Ordering::Relaxed),
            schema_supported: self.schema_supported.load(Ordering::Relaxed),
        }
    }

    pub fn applied_version(&self) -> i64 {
        *self.applied_version.borrow()
    }

    /// Follows the applied version (for waiting until a data plane has applied a change).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.applied_version.subscribe()
    }

    pub fn last_sync_unix_ms(&self) -> u64 {
        self.last_sync_unix_ms.load(Ordering::Relaxed)
    }

    pub(super) fn applied(&self, version: i64, synced_unix_ms: u64, source: TableSource) {
        self.applied_version.send_replace(version);
        self.metrics.applied_version.set(version as f64);
        self.source.store(source as u8, Ordering::Relaxed);
        self.confirmed(synced_unix_ms);
    }

    pub(super) fn confirmed(&self, unix_ms: u64) {
        self.last_sync_unix_ms.store(unix_ms, Ordering::Relaxed);
        self.metrics.last_sync.set(unix_ms as f64 / 1000.0);
    }

    pub(super) fn reloaded(&self, took: Duration, incremental: bool) {
        self.last_reload_ms
            .store(took.as_millis() as u64, Ordering::Relaxed);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.metrics.reloads.increment(1);
        if incremental {
            self.incremental_reloads.fetch_add(1, Ordering::Relaxed);
            self.metrics.incremental_reloads.increment(1);
        }
        self.metrics.reload_duration.record(took.as_secs_f64());
    }

    pub(super) fn reload_failed(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
        self.metrics.reload_failures.increment(1);
    }

    /// The schema version a read found, and whether it is one this data plane understands.
    pub(super) fn schema(&self, version: i64, supported: bool) {
        self.schema_version.store(version, Ordering::Relaxed);
        self.schema_supported.store(supported, Ordering::Relaxed);
        self.metrics.schema_version.set(version as f64);
        self.metrics
            .schema_supported
            .set(if supported { 1.0 } else { 0.0 });
    }

    pub(super) fn set_listener_connected(&self, connected: bool) {
        self.listener_connected.store(connected, Ordering::Relaxed);
        self.metrics
            .listener_connected
            .set(if connected { 1.0 } else { 0.0 });
    }

    /// The table was dropped for age: nothing is served until the next reload.
    pub(super) fn expired(&self) {
        self.applied_version.send_replace(-1);
        self.metrics.applied_version.set(-1.0);
        self.source
            .store(TableSource::None as u8, Ordering::Relaxed);
    }
}
