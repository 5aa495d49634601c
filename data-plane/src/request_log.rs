//! Request logs (SPEC §3): one record per proxied request, handed to a bounded queue without
//! waiting and written to PostgreSQL in batches by a background task. When the database is slow
//! or down the queue fills and records are dropped and counted; the proxy never blocks on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shared::request_log::RequestRecord;
use sqlx::{PgPool, Postgres, QueryBuilder};
use tokio::sync::{mpsc, watch};

/// Records per INSERT: well under PostgreSQL's 65,535 bind parameters at 18 columns each.
const BATCH: usize = 1000;

/// The producer side, shared by every request.
pub struct RequestLog {
    queue: mpsc::Sender<RequestRecord>,
    dropped: AtomicU64,
    written: AtomicU64,
}

impl RequestLog {
    /// A log with room for `capacity` queued records, and the receiver its writer drains.
    pub fn new(capacity: usize) -> (RequestLog, mpsc::Receiver<RequestRecord>) {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let log = RequestLog {
            queue,
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        };
        (log, receiver)
    }

    /// Queues a record, or drops and counts it when the queue is full. Never waits.
    pub fn record(&self, record: RequestRecord) {
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
}

/// Drains the queue in batches until shutdown, then writes what is left once.
pub async fn write(
    log: &RequestLog,
    mut queue: mpsc::Receiver<RequestRecord>,
    pool: PgPool,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            n = queue.recv_many(&mut batch, BATCH) => n,
            _ = shutdown.changed() => {
                queue.close();
                while queue.recv_many(&mut batch, BATCH).await > 0 {
                    flush(log, &pool, &mut batch).await;
                }
                return;
            }
        };
        if received == 0 {
            return;
        }
        if !flush(log, &pool, &mut batch).await {
            // The database is away: don't spin on it; the queue absorbs (or drops) meanwhile.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Writes and empties `batch`; on failure the records are dropped and counted.
async fn flush(log: &RequestLog, pool: &PgPool, batch: &mut Vec<RequestRecord>) -> bool {
    let count = batch.len() as u64;
    let result = insert(pool, batch).await;
    batch.clear();
    match result {
        Ok(()) => {
            log.written.fetch_add(count, Ordering::Relaxed);
            true
        }
        Err(e) => {
            log.dropped.fetch_add(count, Ordering::Relaxed);
            tracing::warn!(error = %e, dropped = count, "writing request logs failed");
            false
        }
    }
}

async fn insert(pool: &PgPool, batch: &[RequestRecord]) -> sqlx::Result<()> {
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(
        "insert into request_logs (request_id, started_at, account, endpoint, account_id,
            integration_id, subject, key_id, method, upstream_path, status, latency_us,
            upstream_ttfb_us, bytes_in, bytes_out, error_type, trace_id, data_plane) ",
    );
    query.push_values(batch, |mut row, r| {
        row.push_bind(r.request_id)
            .push_bind(r.started_at)
            .push_bind(&r.account)
            .push_bind(&r.endpoint)
            .push_bind(r.account_id)
            .push_bind(r.integration_id)
            .push_bind(&r.subject)
            .push_bind(r.key_id)
            .push_bind(&r.method)
            .push_bind(&r.upstream_path)
            .push_bind(r.status as i16)
            .push_bind(as_i64(r.latency_us))
            .push_bind(r.upstream_ttfb_us.map(as_i64))
            .push_bind(as_i64(r.bytes_in))
            .push_bind(as_i64(r.bytes_out))
            .push_bind(&r.error_type)
            .push_bind(&r.trace_id)
            .push_bind(&r.data_plane);
    });
    query.push(" on conflict (request_id) do nothing");
    query.build().execute(pool).await?;
    Ok(())
}
