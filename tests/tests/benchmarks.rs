//! Benchmarks behind `#[ignore]`, for the figures in `docs/propagation.md`:
//!
//! ```sh
//! cargo nextest run --release -p gatehouse-tests --test benchmarks --run-ignored only --no-capture
//! ```
//!
//! - propagation: 4 data planes, `GATEHOUSE_BENCH_WRITES` (default 1,000) sequential writes,
//!   per data plane p50/p99/max of "control plane 2xx → that data plane serves the change";
//! - propagation at scale: the same with one data plane serving 100k integrations
//!   (`GATEHOUSE_BENCH_SCALE`), where each change is applied incrementally;
//! - reload cost: wall time and peak extra memory of a full reload at 1k, 10k and 100k
//!   integrations (`GATEHOUSE_BENCH_SIZES`, comma-separated), and wall time of an incremental
//!   one (one integration changed).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use gatehouse_tests::upstream::EchoUpstream;
use gatehouse_tests::{ControlPlane, DataPlane, config_version, fresh_database, http_client};
use serde_json::json;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// p50, p99 and max of `samples` (sorted in place).
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99), at(1.0))
}

/// A control plane on `db` with account `acme` and its integration `svc` → a live upstream.
async fn acme_svc(db: &str) -> (ControlPlane, EchoUpstream) {
    let cp = ControlPlane::start(db).await;
    let upstream = EchoUpstream::start().await;
    let api = cp.admin();
    api.post("/provider-accounts", json!({"name": "acme"}))
        .await;
    let r = api
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "svc", "base_url": upstream.url()}),
        )
        .await;
    assert_eq!(r.status, 201);
    (cp, upstream)
}

/// Per data plane, "control plane 2xx → that data plane serves the change" for `writes`
/// sequential changes of acme/svc; after each, a request through each data plane checks that
/// the upstream sees the change (outside the timing).
async fn time_propagation(
    cp: &ControlPlane,
    upstream: &EchoUpstream,
    planes: &[DataPlane],
    writes: usize,
) -> Vec<Vec<Duration>> {
    let api = cp.admin();
    let client = http_client();
    let first = config_version(&cp.db).await;
    for plane in planes {
        plane.wait_applied(first, Duration::from_secs(120)).await;
    }
    let mut samples = vec![Vec::with_capacity(writes); planes.len()];
    for i in 0..writes {
        let r = api
            .patch(
                "/provider-accounts/acme/integrations/svc",
                json!({"custom_headers": {"X-Rev": i.to_string()}}),
            )
            .await;
        let acknowledged = Instant::now();
        assert_eq!(r.status, 200, "{}", r.text);
        // Writes are sequential and nothing else writes, so write i made version first + i + 1.
        let version = first + i as i64 + 1;
        let waits = planes.iter().map(|plane| async move {
            let mut applied = plane.gateway.status.subscribe();
            tokio::time::timeout(Duration::from_secs(5), applied.wait_for(|v| *v >= version))
                .await
                .expect("change applied within 5 s")
                .unwrap();
            acknowledged.elapsed()
        });
        for (plane, took) in join_all(waits).await.into_iter().enumerate() {
            samples[plane].push(took);
        }
        for plane in planes {
            client
                .get(plane.proxy("acme/svc/x"))
                .bearer_auth(&cp.admin_key)
                .send()
                .await
                .unwrap();
            assert_eq!(
                upstream.last().unwrap().header("x-rev"),
                Some(&*i.to_string())
            );
        }
    }
    assert_eq!(config_version(&cp.db).await, first + writes as i64);
    samples
}

/// Prints the per-plane and overall p50/p99/max and asserts the propagation target.
fn report_propagation(samples: &mut [Vec<Duration>]) {
    println!("| data plane | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (i, plane_samples) in samples.iter_mut().enumerate() {
        let (p50, p99, max) = percentiles(plane_samples);
        println!("| {} | {p50:.2?} | {p99:.2?} | {max:.2?} |", i + 1);
        assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    }
    let mut all: Vec<Duration> = samples.concat();
    let (p50, p99, max) = percentiles(&mut all);
    println!("| all | {p50:.2?} | {p99:.2?} | {max:.2?} |");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --run-ignored only"]
async fn propagation_to_four_data_planes() {
    let writes: usize = env_or("GATEHOUSE_BENCH_WRITES", 1000);
    let db = fresh_database().await;
    let (cp, upstream) = acme_svc(&db).await;
    let mut planes = Vec::new();
    for _ in 0..4 {
        planes.push(DataPlane::start_ready(&db).await);
    }
    let mut samples = time_propagation(&cp, &upstream, &planes, writes).await;
    println!("propagation, {writes} sequential writes, control plane 2xx → data plane serves:");
    report_propagation(&mut samples);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --run-ignored only"]
async fn propagation_at_scale() {
    let size: i64 = env_or("GATEHOUSE_BENCH_SCALE", 100_000);
    let writes: usize = env_or("GATEHOUSE_BENCH_WRITES", 1000).min(200);
    let (db, pool) = database_with(size).await;
    pool.close().await;
    let (cp, upstream) = acme_svc(&db).await;
    let plane = DataPlane::start(&db, &[]).await;
    let planes = [plane];
    let mut samples = time_propagation(&cp, &upstream, &planes, writes).await;
    let status = planes[0].status();
    println!(
        "propagation at {size} integrations, {writes} sequential writes \
         ({} of {} reloads incremental):",
        status.incremental_reloads, status.reloads
    );
    assert_eq!(status.incremental_reloads, writes as u64);
    report_propagation(&mut samples);
}

/// Resident set size now and its peak since the last reset, in KiB (Linux).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Fills a fresh database with `integrations` integrations (10 per account, each with header
/// auth and custom headers) and one user with a key per account, straight by SQL.
async fn database_with(integrations: i64) -> (String, sqlx::PgPool) {
    let url = fresh_database().await;
    let db = control_plane::db::connect_and_migrate(&url.clone().into(), 2)
        .await
        .unwrap();
    let accounts = (integrations / 10).max(1);
    for statement in [
        "insert into provider_accounts (id, name, header_auth, custom_headers)
         select gen_random_uuid(), 'acct-' || g,
                jsonb_build_object('type', 'header', 'headers', jsonb_build_object('X-Api-Key', 'secret-' || g)),
                '{\"X-Team\": \"t\"}'::jsonb
         from generate_series(1, $1) g",
        "insert into integrations (id, account_id, name, base_url, custom_headers)
         select gen_random_uuid(), a.id, 'svc-' || g, 'https://' || a.name || '.example.com/v1',
                '{\"X-Integration\": \"i\"}'::jsonb
         from provider_accounts a, generate_series(1, 10) g",
        "insert into subjects (id, kind, name)
         select gen_random_uuid(), 'user', 'user' || g || '@example.com' from generate_series(1, $1) g",
        "insert into api_keys (id, subject_id, name, digest)
         select gen_random_uuid(), id, 'k', sha256(name::bytea) from subjects",
        "insert into collaborators (account_id, subject_id, role)
         select a.id, s.id, 'provider-account-manager'
         from provider_accounts a join subjects s on s.name = 'user' || substr(a.name, 6) || '@example.com'",
        "update config_version set version = 1",
        "analyze",
    ] {
        let query = sqlx::query(statement);
        let query = if statement.contains("$1") {
            query.bind(accounts)
        } else {
            query
        };
        query.execute(&db).await.unwrap();
    }
    seal_header_auth(&db).await;
    (url, db)
}

/// Header auth is stored sealed (RELIABILITY S10); SQL wrote it in clear, so seal it here the
/// way the control plane would, in one statement.
async fn seal_header_auth(db: &sqlx::PgPool) {
    let keyring = shared::crypto::Keyring::parse(gatehouse_tests::TEST_ENCRYPTION_KEYS).unwrap();
    let rows: Vec<(uuid::Uuid, sqlx::types::Json<shared::model::HeaderAuth>)> = sqlx::query_as(
        "select id, header_auth from provider_accounts where header_auth is not null",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let (ids, sealed): (Vec<uuid::Uuid>, Vec<serde_json::Value>) = rows
        .into_iter()
        .map(|(id, auth)| {
            let sealed =
                shared::crypto::seal_header_auth(&keyring, shared::crypto::ACCOUNTS, id, &auth.0);
            (id, serde_json::to_value(sealed).unwrap())
        })
        .unzip();
    sqlx::query(
        "update provider_accounts a set header_auth = s.auth
         from unnest($1::uuid[], $2::jsonb[]) as s(id, auth) where a.id = s.id",
    )
    .bind(ids)
    .bind(sealed)
    .execute(db)
    .await
    .unwrap();
}

/// Changes one integration's custom headers and records it as the control plane would: a new
/// version whose change-log row names the account. Returns the new version.
async fn change_one_integration(db: &sqlx::PgPool, revision: usize) -> i64 {
    let mut tx = db.begin().await.unwrap();
    let account: uuid::Uuid = sqlx::query_scalar(
        "update integrations i set custom_headers = jsonb_build_object('X-Rev', $1::text)
         from provider_accounts a
         where a.id = i.account_id and a.name = 'acct-1' and i.name = 'svc-1'
         returning a.id",
    )
    .bind(revision.to_string())
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let version: i64 =
        sqlx::query_scalar("update config_version set version = version + 1 returning version")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    sqlx::query(
        "insert into config_changes (version, kind, object_name, operation, accounts, subjects)
         values ($1, 'integration', 'acct-1/svc-1', 'update', $2, '{}')",
    )
    .bind(version)
    .bind(vec![account])
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --run-ignored only"]
async fn reload_cost_by_table_size() {
    use data_plane::routing::RoutingTable;
    use data_plane::sync::snapshot::{self, Read};

    shared::process::install_crypto_provider();
    let sizes: Vec<i64> = std::env::var("GATEHOUSE_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let mut full_rows = Vec::new();
    let mut incremental_rows = Vec::new();
    for size in sizes {
        let (_, db) = database_with(size).await;
        let mut clients =
            data_plane::upstream::Clients::new(Duration::from_secs(5), Default::default());
        let keyring =
            shared::crypto::Keyring::parse(gatehouse_tests::TEST_ENCRYPTION_KEYS).unwrap();
        let mut reloads = Vec::new();
        let mut reads = Vec::new();
        let mut builds = Vec::new();
        let mut peak_kib = 0;
        let mut table = RoutingTable::unloaded();
        for _ in 0..5 {
            drop(table);
            // Reset the peak RSS (VmHWM) so that it measures this reload alone.
            std::fs::write("/proc/self/clear_refs", "5").unwrap();
            let (before, _) = rss_kib();
            let started = Instant::now();
            let snapshot = snapshot::load(&db).await.unwrap();
            let read = started.elapsed();
            table = RoutingTable::build(&snapshot, &keyring, &mut clients).unwrap();
            let total = started.elapsed();
            assert_eq!(table.route_count() as i64, size.max(10));
            drop(snapshot);
            let (_, peak) = rss_kib();
            peak_kib = peak_kib.max(peak.saturating_sub(before));
            reads.push(read);
            builds.push(total - read);
            reloads.push(total);
        }
        let (read, _, _) = percentiles(&mut reads);
        let (build, _, _) = percentiles(&mut builds);
        let (p50, _, max) = percentiles(&mut reloads);
        full_rows.push(format!(
            "| {size} | {read:.1?} | {build:.1?} | {p50:.1?} | {max:.1?} | {:.1} MiB |",
            peak_kib as f64 / 1024.0
        ));

        // Incremental: one integration changed, the change log read, the table updated.
        let (mut reloads, mut reads, mut builds) = (Vec::new(), Vec::new(), Vec::new());
        for revision in 0..20 {
            let version = change_one_integration(&db, revision).await;
            let started = Instant::now();
            let fetched = snapshot::read(&db, Some(table.version)).await.unwrap();
            let read = started.elapsed();
            let Read::Changes(delta) = fetched.read else {
                panic!("the change log covers the change: expected an incremental read")
            };
            table = table.updated(&delta, &keyring, &mut clients).unwrap();
            let total = started.elapsed();
            assert_eq!(table.version, version);
            assert_eq!(table.route_count() as i64, size.max(10));
            reads.push(read);
            builds.push(total - read);
            reloads.push(total);
        }
        let (read, _, _) = percentiles(&mut reads);
        let (build, _, _) = percentiles(&mut builds);
        let (p50, p99, max) = percentiles(&mut reloads);
        incremental_rows.push(format!(
            "| {size} | {read:.2?} | {build:.2?} | {p50:.2?} | {p99:.2?} | {max:.2?} |"
        ));
        db.close().await;
    }
    println!(
        "| integrations | snapshot read | table build | full reload p50 | max | peak extra memory |"
    );
    println!("|---|---|---|---|---|---|");
    full_rows.iter().for_each(|row| println!("{row}"));
    println!();
    println!("| integrations | change read | table update | incremental reload p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    incremental_rows.iter().for_each(|row| println!("{row}"));
}
