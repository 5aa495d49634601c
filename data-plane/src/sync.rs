//! Following the control plane: LISTEN, then read a full snapshot, then apply (RELIABILITY P1);
//! reload on any newer version, coalescing bursts (P12); after any listener loss, a failed
//! heartbeat or start-up, reload in full (P4). A failed reload keeps the last good table (P7).
//! Each heartbeat also reports this data plane in to the `data_planes` table (P11), and, when
//! configured, every applied snapshot is sealed to disk and read back at a start without
//! database (P14).

pub mod snapshot;
pub mod snapshot_file;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shared::notify::{CHANNEL, ConfigNotification};
use shared::snapshot::Snapshot;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use uuid::Uuid;

pub use status::{StatusReport, SyncStatus, TableSource};

use crate::Gateway;
use crate::routing::RoutingTable;
use crate::upstream::Clients;
use snapshot_file::{SavedSnapshot, SnapshotFile};

/// Who this data plane is when it reports in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// New at every start.
    pub id: Uuid,
    pub hostname: String,
    pub addr: SocketAddr,
}

impl Identity {
    pub fn new(addr: SocketAddr) -> Identity {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Identity {
            id: Uuid::new_v4(),
            hostname,
            addr,
        }
    }
}

/// Runs until `shutdown` flips to true. Never gives up: while the database is away the last
/// good table keeps serving and connection attempts continue with capped backoff.
pub async fn run(gateway: Arc<Gateway>, pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    let file = match (&gateway.config.snapshot_file, &gateway.config.snapshot_key) {
        (Some(path), Some(key)) => Some(Arc::new(SnapshotFile::new(path.clone(), &key.0))),
        _ => None,
    };
    let (to_save, saver) = match &file {
        Some(file) => {
            let (to_save, latest) = watch::channel(None);
            let saver = tokio::spawn(save_snapshots(Arc::clone(file), latest));
            (Some(to_save), Some(saver))
        }
        None => (None, None),
    };
    let mut sync = Sync {
        clients: Clients::new(
            gateway.config.connect_timeout(),
            gateway.config.deny_upstream_ranges.clone(),
        ),
        gateway,
        pool,
        to_save,
    };
    let mut tried_file = false;
    let mut backoff = Duration::from_millis(100);
    while !*shutdown.borrow() {
        match sync.follow(&mut shutdown).await {
            Ok(()) => break,
            Err(e) => {
                sync.gateway.status.set_listener_connected(false);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "config listener lost");
            }
        }
        if let Some(file) = file.as_ref().filter(|_| !tried_file && !sync.ready()) {
            tried_file = true;
            sync.load_file(file).await;
        }
        sync.expire_if_too_old();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    // Closing the channel lets the saver finish the last write and end.
    drop(sync);
    if let Some(saver) = saver {
        let _ = saver.await;
    }
}

struct Sync {
    gateway: Arc<Gateway>,
    pool: PgPool,
    clients: Clients,
    /// The latest applied snapshot for the saver; it writes only the newest (coalescing).
    to_save: Option<watch::Sender<Option<Arc<SavedSnapshot>>>>,
}

impl Sync {
    /// One listener's life: LISTEN, full reload, then react to notifications and heartbeats
    /// until the connection fails (an error) or shutdown (`Ok`).
    async fn follow(&mut self, shutdown: &mut watch::Receiver<bool>) -> sqlx::Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        self.gateway.status.set_listener_connected(true);
        self.reload().await;
        // The first tick is immediate: the data plane reports in as soon as it is connected.
        let mut heartbeat = tokio::time::interval(self.gateway.config.poll_interval());
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    self.sign_off(&mut listener).await;
                    return Ok(());
                }
                received = listener.try_recv() => match received? {
                    Some(first) => {
                        // Coalesce a burst (P12): the first notification is acted on at once,
                        // and whatever else is already buffered is covered by the same reload.
                        let mut newest = version_of(first.payload());
                        while let Some(next) = listener.next_buffered() {
                            newest = newest.max(version_of(next.payload()));
                        }
                        if newest > self.gateway.status.applied_version() {
                            self.reload().await;
                        }
                    }
                    // The connection dropped and PgListener re-listened on a new one: whatever
                    // was notified in between is lost, so reload in full.
                    None => {
                        tracing::info!("config listener reconnected; full reload");
                        self.reload().await;
                    }
                },
                _ = heartbeat.tick() => self.heartbeat(&mut listener).await?,
            }
        }
    }

    /// Runs on the listening connection itself, so a deaf listener is found out (P9); reports
    /// this data plane in and reads the config version in one round trip, the version poll
    /// that backs up lost notifications.
    async fn heartbeat(&mut self, listener: &mut PgListener) -> sqlx::Result<()> {
        let identity = &self.gateway.identity;
        let applied = self.gateway.status.applied_version();
        let query = sqlx::query_scalar::<_, i64>(
            "with report as (
                 insert into data_planes (id, hostname, addr, applied_version, started_at, last_seen_at)
                 values ($1, $2, $3, $4, now(), now())
                 on conflict (id) do update
                 set applied_version = excluded.applied_version, last_seen_at = excluded.last_seen_at
             )
             select version from config_version",
        )
        .bind(identity.id)
        .bind(&identity.hostname)
        .bind(identity.addr.to_string())
        .bind(applied);
        let version = tokio::time::timeout(
            self.gateway.config.heartbeat_timeout(),
            query.fetch_one(&mut *listener),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
        if version > applied {
            tracing::info!(version, "heartbeat found a newer config version");
            self.reload().await;
            // Connected but unable to apply (a row that fails validation): the bound holds too.
            self.expire_if_too_old();
        } else {
            self.gateway.status.confirmed(now_unix_ms());
        }
        Ok(())
    }

    /// A data plane stopping on purpose leaves the list at once; a crashed one drops out of
    /// it by age. Best effort: shutdown does not wait on a slow database.
    async fn sign_off(&self, listener: &mut PgListener) {
        let query = sqlx::query("delete from data_planes where id = $1")
            .bind(self.gateway.identity.id)
            .execute(&mut *listener);
        let _ = tokio::time::timeout(self.gateway.config.heartbeat_timeout(), query).await;
    }

    /// Reads a snapshot, builds a table and swaps it in; on any failure the old table stays.
    async fn reload(&mut self) {
        let started = Instant::now();
        let timeout = self.gateway.config.reload_timeout();
        let snapshot = match tokio::time::timeout(timeout, snapshot::load(&self.pool)).await {
            Ok(Ok(snapshot)) => snapshot,
            Ok(Err(e)) => return self.failed(&format!("reading the snapshot: {e}")),
            Err(_) => return self.failed("reading the snapshot timed out"),
        };
        let synced = now_unix_ms();
        if let Err(e) = self.apply(&snapshot, synced, TableSource::Database) {
            return self.failed(&e.to_string());
        }
        let took = started.elapsed();
        self.gateway.status.reloaded(took);
        tracing::info!(
            version = snapshot.version,
            took_ms = took.as_millis() as u64,
            "routing table applied"
        );
        if let Some(to_save) = &self.to_save {
            to_save.send_replace(Some(Arc::new(SavedSnapshot {
                synced_unix_ms: synced,
                snapshot,
            })));
        }
    }

    /// Validate, then swap (P7). A snapshot older than the table in use is dropped (P8).
    fn apply(
        &mut self,
        snapshot: &Snapshot,
        synced_unix_ms: u64,
        source: TableSource,
    ) -> Result<(), crate::routing::BuildError> {
        let table = RoutingTable::build(
            snapshot,
            &self.gateway.config.encryption_keys,
            &mut self.clients,
            &self.gateway.metrics,
        )?;
        let status = &self.gateway.status;
        if table.version < status.applied_version() {
            return Ok(());
        }
        let version = table.version;
        self.gateway.table.store(Arc::new(table));
        self.gateway.ready.send_replace(true);
        status.applied(version, synced_unix_ms, source);
        Ok(())
    }

    fn failed(&self, error: &str) {
        self.gateway.status.reload_failed();
        tracing::error!(error, "reload failed; keeping the last good routing table");
    }

    fn ready(&self) -> bool {
        *self.gateway.ready.borrow()
    }

    /// A start without database: serve the last snapshot sealed to disk, if any.
    async fn load_file(&mut self, file: &Arc<SnapshotFile>) {
        let reader = Arc::clone(file);
        let saved = match tokio::task::spawn_blocking(move || reader.read()).await {
            Ok(Ok(saved)) => saved,
            Ok(Err(e)) => return tracing::warn!(error = %e, "no usable snapshot file"),
            Err(e) => return tracing::error!(error = %e, "reading the snapshot file panicked"),
        };
        match self.apply(
            &saved.snapshot,
            saved.synced_unix_ms,
            TableSource::SnapshotFile,
        ) {
            Ok(()) => tracing::warn!(
                version = saved.snapshot.version,
                path = %file.path().display(),
                "database unreachable; serving the snapshot file"
            ),
            Err(e) => self.failed(&e.to_string()),
        }
    }

    /// RELIABILITY P15: past `max_config_age` without confirming its table current, a data
    /// plane stops serving it (503, not ready) rather than honour keys that may be revoked.
    fn expire_if_too_old(&mut self) {
        let Some(max_age) = self.gateway.config.max_config_age() else {
            return;
        };
        let status = &self.gateway.status;
        let age_ms = now_unix_ms().saturating_sub(status.last_sync_unix_ms());
        if self.ready() && u128::from(age_ms) > max_age.as_millis() {
            self.gateway.table.store(Arc::new(RoutingTable::unloaded()));
            self.gateway.ready.send_replace(false);
            status.expired();
            tracing::error!(
                age_seconds = age_ms / 1000,
                max_age_seconds = max_age.as_secs(),
                "routing table older than max_config_age; no longer serving it"
            );
        }
    }
}

/// A payload that does not parse is still a hint that something changed.
fn version_of(payload: &str) -> i64 {
    serde_json::from_str::<ConfigNotification>(payload).map_or(i64::MAX, |n| n.version)
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes the newest applied snapshot to disk, off the sync task and the request path; a burst
/// of reloads costs one write of the last one.
async fn save_snapshots(
    file: Arc<SnapshotFile>,
    mut latest: watch::Receiver<Option<Arc<SavedSnapshot>>>,
) {
    while latest.changed().await.is_ok() {
        let Some(saved) = latest.borrow_and_update().clone() else {
            continue;
        };
        let file = Arc::clone(&file);
        match tokio::task::spawn_blocking(move || file.write(&saved)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "writing the snapshot file failed"),
            Err(e) => tracing::error!(error = %e, "writing the snapshot file panicked"),
        }
    }
}
