//! Following the control plane: LISTEN, then read a full snapshot, then apply (RELIABILITY P1);
//! on any newer version, apply what the change log says changed since the applied one,
//! coalescing bursts (P12). After any listener loss, a failed heartbeat, start-up, a failed
//! reload, a change log that cannot say what changed, and every `--sync-full-resync-seconds`,
//! reload in full (P4). A failed reload keeps the last good table (P7), and so does a database
//! schema this data plane does not understand (P13). Each heartbeat also reports this data
//! plane in to the `data_planes` table (P11), and, when configured, every applied version is
//! sealed to disk and read back at a start without database (P14).

pub mod snapshot;
pub mod snapshot_file;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shared::notify::{CHANNEL, ConfigNotification};
use shared::snapshot::Delta;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

pub use status::{StatusReport, SyncStatus, TableSource};

use crate::Gateway;
use crate::routing::RoutingTable;
use crate::upstream::Clients;
use snapshot::{Read, ReadError};
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
            let (to_save, applied) = mpsc::unbounded_channel();
            let saver = tokio::spawn(save_snapshots(Arc::clone(file), applied));
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
        last_full: None,
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
    /// Every applied snapshot or delta, in order, for the saver; it writes only the newest
    /// state (coalescing).
    to_save: Option<mpsc::UnboundedSender<Applied>>,
    /// When the table last came whole from this database on the current listener. `None`
    /// (nothing yet, or after a failure) means the next reload is a full one.
    last_full: Option<Instant>,
}

/// What a reload applied, for the snapshot file.
enum Applied {
    Full(SavedSnapshot),
    Changes { delta: Delta, synced_unix_ms: u64 },
}

impl Sync {
    /// One listener's life: LISTEN, full reload, then react to notifications and heartbeats
    /// until the connection fails (an error) or shutdown (`Ok`).
    async fn follow(&mut self, shutdown: &mut watch::Receiver<bool>) -> sqlx::Result<()> {
        self.last_full = None;
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
                        self.last_full = None;
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
            if self
                .last_full
                .is_some_and(|at| at.elapsed() >= self.gateway.config.full_resync_interval())
            {
                self.last_full = None;
                self.reload().await;
            }
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

    /// Reads what changed since the table in use (or everything, when the last full reload is
    /// not known good on this listener), builds a table and swaps it in; on any failure the
    /// old table stays and the next reload is a full one.
    async fn reload(&mut self) {
        let started = Instant::now();
        let current = self.gateway.table.load_full();
        let since = self.last_full.map(|_| current.version);
        let timeout = self.gateway.config.reload_timeout();
        let fetched = match tokio::time::timeout(timeout, snapshot::read(&self.pool, since)).await {
            Ok(Ok(fetched)) => fetched,
            Ok(Err(ReadError::UnsupportedSchema { found, supported })) => {
                self.gateway.status.schema(found, false);
                return self.failed(&format!(
                    "database schema version {found} is not one this data plane understands \
                     ({}..={}); not applying it",
                    supported.start(),
                    supported.end()
                ));
            }
            Ok(Err(e)) => return self.failed(&format!("reading the configuration: {e}")),
            Err(_) => return self.failed("reading the configuration timed out"),
        };
        self.gateway.status.schema(fetched.schema, true);
        let synced = now_unix_ms();
        let gateway = Arc::clone(&self.gateway);
        let keyring = &gateway.config.encryption_keys;
        let (built, applied) = match fetched.read {
            Read::Full(snapshot) => (
                RoutingTable::build(&snapshot, keyring, &mut self.clients),
                Applied::Full(SavedSnapshot {
                    synced_unix_ms: synced,
                    snapshot,
                }),
            ),
            Read::Changes(delta) => (
                current.updated(&delta, keyring, &mut self.clients),
                Applied::Changes {
                    delta,
                    synced_unix_ms: synced,
                },
            ),
        };
        let table = match built {
            Ok(table) => table,
            Err(e) => return self.failed(&e.to_string()),
        };
        let version = table.version;
        self.swap(table, synced, TableSource::Database);
        let took = started.elapsed();
        let incremental = matches!(applied, Applied::Changes { .. });
        if !incremental {
            self.last_full = Some(started);
        }
        self.gateway.status.reloaded(took, incremental);
        tracing::info!(
            version,
            incremental,
            took_ms = took.as_millis() as u64,
            "routing table applied"
        );
        if let Some(to_save) = &self.to_save {
            // The saver ends only after this sender is dropped.
            let _ = to_save.send(applied);
        }
    }

    /// Swaps `table` in (P7: it is whole), unless it is older than the one in use (P8).
    fn swap(&self, table: RoutingTable, synced_unix_ms: u64, source: TableSource) {
        let status = &self.gateway.status;
        if table.version < status.applied_version() {
            return;
        }
        let version = table.version;
        self.gateway.table.store(Arc::new(table));
        self.gateway.ready.send_replace(true);
        status.applied(version, synced_unix_ms, source);
    }

    fn failed(&mut self, error: &str) {
        self.last_full = None;
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
        let gateway = Arc::clone(&self.gateway);
        let keyring = &gateway.config.encryption_keys;
        match RoutingTable::build(&saved.snapshot, keyring, &mut self.clients) {
            Ok(table) => {
                self.swap(table, saved.synced_unix_ms, TableSource::SnapshotFile);
                tracing::warn!(
                    version = saved.snapshot.version,
                    path = %file.path().display(),
                    "database unreachable; serving the snapshot file"
                );
            }
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
            self.last_full = None;
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

/// Writes the newest applied state to disk, off the sync task and the request path: it keeps
/// its own copy of the snapshot, brings it up to date with each delta, and writes once for
/// whatever arrived during the previous write.
async fn save_snapshots(file: Arc<SnapshotFile>, mut applied: mpsc::UnboundedReceiver<Applied>) {
    let mut latest: Option<SavedSnapshot> = None;
    while let Some(first) = applied.recv().await {
        let mut next = Some(first);
        while let Some(change) = next.take().or_else(|| applied.try_recv().ok()) {
            latest = match (change, latest) {
                (Applied::Full(saved), _) => Some(saved),
                (
                    Applied::Changes {
                        delta,
                        synced_unix_ms,
                    },
                    Some(mut saved),
                ) if saved.snapshot.version == delta.from_version => {
                    saved.snapshot.apply(&delta);
                    saved.synced_unix_ms = synced_unix_ms;
                    Some(saved)
                }
                // Cannot happen (a delta always follows what the sync task applied before):
                // write nothing until the next full snapshot rather than a wrong one.
                (Applied::Changes { .. }, _) => None,
            };
        }
        let Some(saved) = latest.take() else {
            continue;
        };
        let file = Arc::clone(&file);
        latest = match tokio::task::spawn_blocking(move || (file.write(&saved), saved)).await {
            Ok((Ok(()), saved)) => Some(saved),
            Ok((Err(e), saved)) => {
                tracing::error!(error = %e, "writing the snapshot file failed");
                Some(saved)
            }
            Err(e) => {
                tracing::error!(error = %e, "writing the snapshot file panicked");
                None
            }
        };
    }
}
