//! Following the control plane: LISTEN, then read a full snapshot, then apply (RELIABILITY P1);
//! reload on any newer version; after any listener loss, a failed heartbeat or start-up, reload
//! in full (P4). A failed reload keeps the last good table (P7).

mod snapshot;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use shared::notify::{CHANNEL, ConfigNotification};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::Gateway;
use crate::routing::RoutingTable;
use crate::upstream::Clients;

/// Sync health, readable without locks (RELIABILITY P11).
#[derive(Default)]
pub struct SyncStatus {
    applied_version: AtomicI64,
    last_sync_unix_ms: AtomicU64,
    last_reload_ms: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    listener_connected: AtomicBool,
}

/// [`SyncStatus`] as the status endpoint shows it.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub applied_version: i64,
    pub last_sync_unix_ms: u64,
    pub last_reload_ms: u64,
    pub reloads: u64,
    pub reload_failures: u64,
    pub listener_connected: bool,
}

impl SyncStatus {
    pub fn report(&self) -> StatusReport {
        StatusReport {
            applied_version: self.applied_version.load(Ordering::Relaxed),
            last_sync_unix_ms: self.last_sync_unix_ms.load(Ordering::Relaxed),
            last_reload_ms: self.last_reload_ms.load(Ordering::Relaxed),
            reloads: self.reloads.load(Ordering::Relaxed),
            reload_failures: self.reload_failures.load(Ordering::Relaxed),
            listener_connected: self.listener_connected.load(Ordering::Relaxed),
        }
    }
}

/// Runs until `shutdown` flips to true. Never gives up: while the database is away the last
/// good table keeps serving and connection attempts continue with capped backoff.
pub async fn run(gateway: Arc<Gateway>, pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    let mut clients = Clients::new(
        gateway.config.connect_timeout(),
        gateway.config.deny_upstream_ranges.clone(),
    );
    let mut backoff = Duration::from_millis(100);
    while !*shutdown.borrow() {
        match follow(&gateway, &pool, &mut clients, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                gateway
                    .status
                    .listener_connected
                    .store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "config listener lost");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One listener's life: LISTEN, full reload, then react to notifications and heartbeats until
/// the connection fails (an error) or shutdown (`Ok`).
async fn follow(
    gateway: &Gateway,
    pool: &PgPool,
    clients: &mut Clients,
    shutdown: &mut watch::Receiver<bool>,
) -> sqlx::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    gateway
        .status
        .listener_connected
        .store(true, Ordering::Relaxed);
    reload(gateway, pool, clients).await;
    let mut heartbeat = tokio::time::interval(gateway.config.poll_interval());
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            received = listener.try_recv() => match received? {
                Some(notification) => {
                    let newer = serde_json::from_str::<ConfigNotification>(notification.payload())
                        .map_or(true, |n| n.version > applied(gateway));
                    if newer {
                        reload(gateway, pool, clients).await;
                    }
                }
                // The connection dropped and PgListener re-listened on a new one: whatever was
                // notified in between is lost, so reload in full.
                None => {
                    tracing::info!("config listener reconnected; full reload");
                    reload(gateway, pool, clients).await;
                }
            },
            _ = heartbeat.tick() => {
                // The heartbeat runs on the listening connection itself, so a deaf listener is
                // found out, and doubles as the version poll (RELIABILITY P9).
                let query = sqlx::query_scalar::<_, i64>("select version from config_version");
                let version = tokio::time::timeout(gateway.config.heartbeat_timeout(), query.fetch_one(&mut listener))
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)??;
                if version > applied(gateway) {
                    tracing::info!(version, "heartbeat found a newer config version");
                    reload(gateway, pool, clients).await;
                }
            }
        }
    }
}

fn applied(gateway: &Gateway) -> i64 {
    gateway.status.applied_version.load(Ordering::Relaxed)
}

/// Reads a snapshot, builds a table and swaps it in; on any failure the old table stays.
async fn reload(gateway: &Gateway, pool: &PgPool, clients: &mut Clients) {
    let started = Instant::now();
    let status = &gateway.status;
    let built = match snapshot::load(pool).await {
        Ok(snapshot) => RoutingTable::build(&snapshot, &gateway.config.encryption_keys, clients)
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("reading the snapshot: {e}")),
    };
    match built {
        // A concurrent older read can never win: versions only move forward (P8).
        Ok(table) if table.version >= applied(gateway) => {
            let version = table.version;
            let routes = table.route_count();
            gateway.table.store(Arc::new(table));
            gateway.ready.send_replace(true);
            status.applied_version.store(version, Ordering::Relaxed);
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            status.last_sync_unix_ms.store(now_ms, Ordering::Relaxed);
            let took = started.elapsed();
            status
                .last_reload_ms
                .store(took.as_millis() as u64, Ordering::Relaxed);
            status.reloads.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                version,
                routes,
                took_ms = took.as_millis() as u64,
                "routing table applied"
            );
        }
        Ok(_) => {}
        Err(e) => {
            status.reload_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "reload failed; keeping the last good routing table");
        }
    }
}
