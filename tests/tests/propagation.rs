//! Propagation you can bet on (issue 5): staleness made visible, bursts coalesced, deaf
//! listeners found out, deletions made while cut off applied after recovery, invalid rows
//! refused without harm, and database outages (a black-holed connection, a restart from the
//! encrypted snapshot file, the server stopped for real) ridden out with zero failed requests.
//! Each test prints its figures.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use data_plane::sync::TableSource;
use gatehouse_tests::fault::{Fault, FaultProxy};
use gatehouse_tests::pg_cluster::PgCluster;
use gatehouse_tests::upstream::EchoUpstream;
use gatehouse_tests::{
    ConstantLoad, ControlPlane, DataPlane, Metrics, commit_by_sql, config_version, fresh_database,
    fresh_database_on, http_client, wait_until,
};
use serde_json::json;

/// A control plane on `db` with account `acme` and its integration `svc` → a live upstream.
async fn gateway_with_one_route(db: &str) -> (ControlPlane, EchoUpstream) {
    let cp = ControlPlane::start(db).await;
    let upstream = EchoUpstream::start().await;
    let api = cp.admin();
    assert_eq!(
        api.post("/provider-accounts", json!({"name": "acme"}))
            .await
            .status,
        201
    );
    let r = api
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "svc", "base_url": upstream.url()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (cp, upstream)
}

async fn status_of(client: &reqwest::Client, url: &str, key: &str) -> u16 {
    client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn get_status(client: &reqwest::Client, url: String) -> u16 {
    client
        .get(url)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test]
async fn staleness_is_visible_in_metrics_status_and_the_data_plane_list() {
    let db = fresh_database().await;
    let (cp, _upstream) = gateway_with_one_route(&db).await;
    let plane = DataPlane::start_ready(&db).await;
    let client = http_client();
    let version = config_version(&cp.db).await;
    plane.wait_applied(version, Duration::from_secs(5)).await;

    let metrics = Metrics::scrape(&plane.url).await;
    for expected in [
        format!("gatehouse_config_applied_version {version}"),
        "gatehouse_config_listener_connected 1".to_owned(),
        "gatehouse_config_reloads_total 1".to_owned(),
        "gatehouse_config_reload_failures_total 0".to_owned(),
        "gatehouse_config_reload_duration_seconds_bucket{le=\"0.1\"}".to_owned(),
        "gatehouse_config_last_sync_timestamp_seconds ".to_owned(),
    ] {
        assert!(metrics.contains(&expected), "{expected} in\n{metrics}");
    }
    let status: serde_json::Value = client
        .get(format!("{}/status", plane.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["applied_version"], version);
    assert_eq!(status["listener_connected"], true);
    assert_eq!(status["table_source"], "database");

    // The data plane reports in on its first heartbeat, right after connecting.
    let api = cp.admin();
    wait_until(Duration::from_secs(5), "data plane listed", || async {
        let r = api.get("/data-planes").await;
        r.json["data_planes"]
            .as_array()
            .is_some_and(|l| l.len() == 1 && l[0]["applied_version"] == version)
    })
    .await;
    let r = api.get("/data-planes").await;
    assert_eq!(r.status, 200);
    let listed = &r.json["data_planes"][0];
    assert_eq!(listed["addr"], plane.addr.to_string());
    assert_eq!(listed["versions_behind"], 0);
    assert_eq!(r.json["config_version"], version);

    // Admins only.
    let user = shared::api_key::generate();
    sqlx::query(
        "with u as (insert into subjects (id, kind, name) values (gen_random_uuid(), 'user', 'u@x.io') returning id)
         insert into api_keys (id, subject_id, name, digest) select gen_random_uuid(), id, 'k', $1 from u",
    )
    .bind(&user.digest[..])
    .execute(&cp.db)
    .await
    .unwrap();
    assert_eq!(
        cp.client(&user.secret).get("/data-planes").await.status,
        403
    );

    // A data plane shut down on purpose leaves the list.
    drop(plane);
    wait_until(Duration::from_secs(5), "data plane signed off", || async {
        api.get("/data-planes").await.json["data_planes"] == json!([])
    })
    .await;
}

#[tokio::test]
async fn a_burst_is_coalesced_and_the_first_change_applied_at_once() {
    let db = fresh_database().await;
    let (cp, _upstream) = gateway_with_one_route(&db).await;
    let plane = DataPlane::start_ready(&db).await;
    plane
        .wait_applied(config_version(&cp.db).await, Duration::from_secs(5))
        .await;

    // One change after a quiet spell is applied at once: no batching delay.
    let version = commit_by_sql(&cp.db, &[]).await;
    let took = plane.wait_applied(version, Duration::from_secs(1)).await;
    println!("single change applied in {took:?}");
    assert!(took < Duration::from_millis(100));

    let reloads_before = plane.status().reloads;
    let mut last = 0;
    for _ in 0..200 {
        last = commit_by_sql(&cp.db, &[]).await;
    }
    let took = plane.wait_applied(last, Duration::from_secs(5)).await;
    let reloads = plane.status().reloads - reloads_before;
    println!("burst of 200 commits: {reloads} reloads, last applied {took:?} after commit");
    assert!(reloads < 200, "{reloads} reloads for 200 commits");
}

#[tokio::test]
async fn a_blackholed_database_is_detected_and_ridden_out() {
    let db = fresh_database().await;
    let (cp, upstream) = gateway_with_one_route(&db).await;
    let fault = FaultProxy::in_front_of(&db).await;
    // Default heartbeat settings: the detection figure is the one a deployment gets.
    let plane = DataPlane::start_ready(&fault.url_for(&db)).await;
    let client = http_client();
    let key = cp.admin_key.clone();
    let load = ConstantLoad::start(plane.proxy("acme/svc/x"), key.clone());
    // Cut just after a heartbeat (its report-in is visible), so detection takes close to the
    // worst case: a poll interval plus a heartbeat timeout.
    wait_until(Duration::from_secs(5), "first heartbeat", || async {
        sqlx::query_scalar::<_, i64>("select count(*) from data_planes")
            .fetch_one(&cp.db)
            .await
            .unwrap()
            == 1
    })
    .await;

    fault.set(Fault::Blackhole);
    let cut_at = Instant::now();
    let detection = wait_until(
        Duration::from_secs(15),
        "deaf listener detected",
        || async { !plane.status().listener_connected },
    )
    .await;
    assert_eq!(
        get_status(&client, format!("{}/readyz", plane.url)).await,
        200
    );
    // A change made during the partition.
    let r = cp
        .admin()
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "new", "base_url": upstream.url()}),
        )
        .await;
    assert_eq!(r.status, 201);
    let version = config_version(&cp.db).await;
    tokio::time::sleep(Duration::from_secs(1)).await; // let the load run through the outage
    fault.set(Fault::None);
    let healed_at = Instant::now();
    plane.wait_applied(version, Duration::from_secs(15)).await;
    let converged = healed_at.elapsed();
    assert_eq!(
        status_of(&client, &plane.proxy("acme/new/x"), &key).await,
        200
    );
    let figures = load.finish().await;
    println!(
        "black-hole: detected in {detection:?}, outage {:?}, converged {converged:?} after \
         healing, requests ok {} failed {}",
        healed_at - cut_at,
        figures.ok,
        figures.failed
    );
    assert_eq!(figures.failed, 0);
    assert!(figures.ok > 0);
}

#[tokio::test]
async fn deletions_made_while_the_listener_is_cut_apply_after_recovery() {
    let db = fresh_database().await;
    let (cp, _upstream) = gateway_with_one_route(&db).await;
    let second_key = control_plane::bootstrap::create_admin(&cp.db, "second@test.local", "k")
        .await
        .unwrap();
    let fault = FaultProxy::in_front_of(&db).await;
    let plane = DataPlane::start_ready_with(
        &fault.url_for(&db),
        &[
            "--sync-poll-interval-ms",
            "200",
            "--sync-heartbeat-timeout-ms",
            "200",
        ],
    )
    .await;
    let client = http_client();
    let url = plane.proxy("acme/svc/x");
    assert_eq!(status_of(&client, &url, &second_key).await, 200);

    fault.set(Fault::Cut);
    wait_until(Duration::from_secs(5), "listener down", || async {
        !plane.status().listener_connected
    })
    .await;
    assert_eq!(
        cp.admin()
            .delete("/provider-accounts/acme/integrations/svc")
            .await
            .status,
        204
    );
    let digest = shared::api_key::digest_of(&second_key).unwrap();
    let revoke = format!(
        "update api_keys set revoked_at = now() where digest = '\\x{}'",
        hex_of(&digest)
    );
    let version = commit_by_sql(&cp.db, &[&revoke]).await;
    // Still cut off: the last good table keeps serving.
    assert_eq!(status_of(&client, &url, &second_key).await, 200);

    fault.set(Fault::None);
    let took = plane.wait_applied(version, Duration::from_secs(10)).await;
    assert_eq!(status_of(&client, &url, &cp.admin_key).await, 404);
    let revoked = status_of(&client, &plane.proxy("acme/other/x"), &second_key).await;
    assert_eq!(revoked, 401);
    let stale = plane.gateway.table.load().route_count();
    println!("converged {took:?} after reconnecting; stale routes {stale}");
    assert_eq!(stale, 0);
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_killed_listener_misses_none_of_five_commits_made_before_it_reconnects() {
    let db = fresh_database().await;
    let (cp, upstream) = gateway_with_one_route(&db).await;
    let fault = FaultProxy::in_front_of(&db).await;
    let plane = DataPlane::start_ready(&fault.url_for(&db)).await;
    let client = http_client();

    // New connections are refused, so the killed listener cannot come back before the commits.
    fault.set(Fault::Refuse);
    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and application_name = 'gatehouse-data-plane'",
    )
    .fetch_all(&cp.db)
    .await
    .unwrap();
    assert!(!killed.is_empty());
    wait_until(Duration::from_secs(5), "listener down", || async {
        !plane.status().listener_connected
    })
    .await;
    let api = cp.admin();
    for i in 0..5 {
        let r = api
            .post(
                "/provider-accounts/acme/integrations",
                json!({"name": format!("svc{i}"), "base_url": upstream.url()}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    fault.set(Fault::None);
    let started = Instant::now();
    for i in 0..5 {
        let url = plane.proxy(&format!("acme/svc{i}/x"));
        wait_until(Duration::from_secs(10), "commit served", || async {
            status_of(&client, &url, &cp.admin_key).await == 200
        })
        .await;
    }
    let routes = plane.gateway.table.load().route_count();
    println!(
        "all 5 commits served {:?} after the listener could reconnect; {routes} routes",
        started.elapsed()
    );
    assert_eq!(routes, 6, "svc and svc0..svc4, nothing stale");
}

#[tokio::test]
async fn an_invalid_row_keeps_the_last_good_table_until_healed() {
    let db = fresh_database().await;
    let (cp, _upstream) = gateway_with_one_route(&db).await;
    let plane = DataPlane::start_ready(&db).await;
    let good = config_version(&cp.db).await;
    plane.wait_applied(good, Duration::from_secs(5)).await;
    let load = ConstantLoad::start(plane.proxy("acme/svc/x"), cp.admin_key.clone());

    // The API would refuse this base URL; SQL does not.
    commit_by_sql(
        &cp.db,
        &["insert into integrations (id, account_id, name, base_url)
           select gen_random_uuid(), id, 'broken', 'not a url' from provider_accounts"],
    )
    .await;
    wait_until(Duration::from_secs(5), "failure counted", || async {
        plane.status().reload_failures > 0
    })
    .await;
    assert_eq!(plane.status().applied_version, good, "P8: not advanced");

    let healed = commit_by_sql(&cp.db, &["delete from integrations where name = 'broken'"]).await;
    plane.wait_applied(healed, Duration::from_secs(5)).await;
    let figures = load.finish().await;
    let failures = plane.status().reload_failures;
    println!(
        "invalid row: {failures} reload failures, requests ok {} failed {}",
        figures.ok, figures.failed
    );
    assert_eq!(figures.failed, 0);
}

#[tokio::test]
async fn a_restart_during_an_outage_serves_from_the_snapshot_file() {
    let db = fresh_database().await;
    let (cp, _upstream) = gateway_with_one_route(&db).await;
    let fault = FaultProxy::in_front_of(&db).await;
    let dir = std::env::temp_dir().join(format!("gatehouse-snap-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("snapshot");
    let file_flag = file.to_str().unwrap();
    let key = "11".repeat(32);
    let flags = ["--snapshot-file", file_flag, "--snapshot-key", &key];
    let database_url = fault.url_for(&db);
    let plane = DataPlane::start_ready_with(&database_url, &flags).await;
    wait_until(Duration::from_secs(5), "snapshot file written", || async {
        file.exists()
    })
    .await;
    let sealed = std::fs::read(&file).unwrap();
    assert!(
        !sealed.windows(4).any(|w| w == b"acme"),
        "the file is encrypted"
    );
    plane.stop().await;

    fault.set(Fault::Refuse);
    let started = Instant::now();
    let plane = DataPlane::start_ready_with(&database_url, &flags).await;
    let ready_in = started.elapsed();
    assert_eq!(plane.status().table_source, TableSource::SnapshotFile);
    let load = ConstantLoad::start(plane.proxy("acme/svc/x"), cp.admin_key.clone());
    wait_until(Duration::from_secs(5), "requests served", || async {
        status_of(&http_client(), &plane.proxy("acme/svc/x"), &cp.admin_key).await == 200
    })
    .await;

    fault.set(Fault::None);
    wait_until(Duration::from_secs(10), "back on the database", || async {
        plane.status().table_source == TableSource::Database
    })
    .await;
    let figures = load.finish().await;
    println!(
        "restart without database: ready from the snapshot file in {ready_in:?}; requests ok {} \
         failed {}",
        figures.ok, figures.failed
    );
    assert_eq!(figures.failed, 0);
    // Stopped first: its last snapshot write could otherwise land while the folder is removed.
    plane.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_table_older_than_max_config_age_stops_being_served() {
    let db = fresh_database().await;
    let (cp, _upstream) = gateway_with_one_route(&db).await;
    let fault = FaultProxy::in_front_of(&db).await;
    let plane = DataPlane::start_ready_with(
        &fault.url_for(&db),
        &[
            "--max-config-age-seconds",
            "1",
            "--sync-poll-interval-ms",
            "100",
            "--sync-heartbeat-timeout-ms",
            "100",
        ],
    )
    .await;
    let client = http_client();
    let url = plane.proxy("acme/svc/x");
    assert_eq!(status_of(&client, &url, &cp.admin_key).await, 200);

    fault.set(Fault::Cut);
    let took = wait_until(Duration::from_secs(10), "table expired", || async {
        status_of(&client, &url, &cp.admin_key).await == 503
    })
    .await;
    assert_eq!(
        get_status(&client, format!("{}/readyz", plane.url)).await,
        503
    );
    println!("stopped serving {took:?} after the cut (max_config_age 1 s)");

    fault.set(Fault::None);
    wait_until(Duration::from_secs(10), "serving again", || async {
        status_of(&client, &url, &cp.admin_key).await == 200
    })
    .await;
}

#[tokio::test]
async fn max_config_age_also_bounds_a_table_that_cannot_be_rebuilt() {
    let db = fresh_database().await;
    let (cp, _upstream) = gateway_with_one_route(&db).await;
    let plane = DataPlane::start_ready_with(
        &db,
        &[
            "--max-config-age-seconds",
            "1",
            "--sync-poll-interval-ms",
            "100",
        ],
    )
    .await;
    let client = http_client();
    let url = plane.proxy("acme/svc/x");
    commit_by_sql(
        &cp.db,
        &["insert into integrations (id, account_id, name, base_url)
           select gen_random_uuid(), id, 'broken', 'not a url' from provider_accounts"],
    )
    .await;
    wait_until(Duration::from_secs(10), "table expired", || async {
        status_of(&client, &url, &cp.admin_key).await == 503
    })
    .await;
    commit_by_sql(&cp.db, &["delete from integrations where name = 'broken'"]).await;
    wait_until(Duration::from_secs(5), "serving again", || async {
        status_of(&client, &url, &cp.admin_key).await == 200
    })
    .await;
}

/// `pg_ctl stop -m immediate` on a cluster of the test's own, under constant load.
/// `GATEHOUSE_OUTAGE_SECONDS` sets the outage (default 5; the published figure uses 30).
#[tokio::test]
async fn the_database_stopped_for_real_costs_no_request() {
    let Some(cluster) = PgCluster::start() else {
        println!("skipped: no PostgreSQL server binaries");
        return;
    };
    let outage = Duration::from_secs(
        std::env::var("GATEHOUSE_OUTAGE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let db = fresh_database_on(&cluster.url()).await;
    let (cp, upstream) = gateway_with_one_route(&db).await;
    let plane = DataPlane::start_ready(&db).await;
    let client = http_client();
    let load = ConstantLoad::start(plane.proxy("acme/svc/x"), cp.admin_key.clone());
    wait_until(Duration::from_secs(5), "load flowing", || async {
        upstream.requests().len() > 10
    })
    .await;

    let metric = |name: &'static str| {
        let url = plane.url.clone();
        async move { Metrics::scrape(&url).await.find(name).unwrap_or(0.0) }
    };
    cluster.stop_immediate();
    let stopped_at = Instant::now();
    wait_until(Duration::from_secs(15), "listener loss noticed", || async {
        !plane.status().listener_connected
    })
    .await;
    while stopped_at.elapsed() < outage {
        assert_eq!(
            get_status(&client, format!("{}/readyz", plane.url)).await,
            200
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Request logs could not be written meanwhile: dropped and counted, never waited for.
    let dropped = metric("gatehouse_request_log_dropped_total").await;
    assert!(dropped > 0.0, "drops are counted");
    cluster.restart();
    let restarted_at = Instant::now();
    let r = cp
        .admin()
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "after", "base_url": upstream.url()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let version = config_version(&cp.db).await;
    plane.wait_applied(version, Duration::from_secs(15)).await;
    let converged = restarted_at.elapsed();
    let figures = load.finish().await;
    println!(
        "database stopped {outage:?}: requests ok {} failed {}; converged {converged:?} after \
         restart",
        figures.ok, figures.failed
    );
    assert_eq!(figures.failed, 0);
    assert_eq!(
        status_of(&client, &plane.proxy("acme/after/x"), &cp.admin_key).await,
        200
    );
    // And logging resumes once the database is back: requests made now get written.
    let written = metric("gatehouse_request_log_written_total").await;
    wait_until(
        Duration::from_secs(10),
        "request logs written again",
        || async {
            status_of(&client, &plane.proxy("acme/after/x"), &cp.admin_key).await;
            metric("gatehouse_request_log_written_total").await > written
        },
    )
    .await;
    println!("request log records dropped during the outage: {dropped}");
}
