//! End-to-end test harness: a fresh PostgreSQL database per test, the real control plane and
//! data planes started in-process on port 0, and real upstream HTTP servers on 127.0.0.1.
//!
//! - [`upstream`]: a recording echo server (also the `echo-upstream` demo binary), and any axum
//!   router served on 127.0.0.1.
//! - [`raw`]: a raw TCP client and upstream, for what HTTP libraries would normalise away.
//! - [`pattern`]: a checkable byte stream for large bodies.
//! - [`tls`]: a TLS upstream with a test CA (HTTP/1.1 and HTTP/2 by ALPN).
//! - [`fault`]: a TCP fault proxy (black-hole, refuse, cut) to put in front of PostgreSQL.
//! - [`pg_cluster`]: a throwaway PostgreSQL cluster a test may stop and restart.
//! - [`browser`]: headless Chromium driven over WebDriver, for the dashboard.
//! - this module: databases, planes, an API client, a one-integration gateway, and waiting with
//!   a deadline.

#![allow(clippy::unwrap_used)]

pub mod browser;
pub mod fault;
pub mod pattern;
pub mod pg_cluster;
pub mod raw;
pub mod tls;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The sealing keys every plane of a test shares.
pub const TEST_ENCRYPTION_KEYS: &str =
    "test:5f1d3c7a9b2e4f6081a3c5e7092b4d6f8a1c3e5f7092b4d6f8a1c3e5f7092b4d";

/// A database of its own for one test, created from `DATABASE_URL` (which the README's test
/// command provides). LISTEN/NOTIFY channels are per database, so tests cannot hear each other.
pub async fn fresh_database() -> String {
    let base = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must point at a PostgreSQL server: run the tests with ./scripts/test",
    );
    fresh_database_on(&base).await
}

/// Test databases are named `gatehouse_test_{unix seconds}_{random}`; those older than this are
/// left over from earlier runs and dropped. Thousands of them on a developer's server slow every
/// cluster-wide chore (the autovacuum launcher visits each) and skew benchmarks.
const LEFTOVER_AFTER: Duration = Duration::from_secs(6 * 3600);

/// A new, empty database on the server of `base` (a PostgreSQL URL).
pub async fn fresh_database_on(base: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let name = format!(
        "gatehouse_test_{}_{}",
        now.as_secs(),
        uuid::Uuid::new_v4().simple()
    );
    let admin = sqlx::PgPool::connect(base)
        .await
        .expect("connecting to DATABASE_URL");
    drop_leftover_databases(&admin, now).await;
    sqlx::query(&format!("create database {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let mut url = url::Url::parse(base).unwrap();
    url.set_path(&name);
    url.to_string()
}

/// Drops the test databases created more than [`LEFTOVER_AFTER`] before `now`.
async fn drop_leftover_databases(admin: &sqlx::PgPool, now: Duration) {
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname like 'gatehouse_test_%'")
            .fetch_all(admin)
            .await
            .unwrap_or_default();
    let cutoff = now.saturating_sub(LEFTOVER_AFTER).as_secs();
    for name in names {
        let created = name
            .strip_prefix("gatehouse_test_")
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(secs, _)| secs.parse::<u64>().ok());
        if created.is_some_and(|created| created < cutoff) {
            // Another run may be dropping it too: whatever happens, it is not this test's concern.
            let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                .execute(admin)
                .await;
        }
    }
}

/// A control plane serving on 127.0.0.1:0 with an admin key ready.
pub struct ControlPlane {
    pub url: String,
    pub admin_key: String,
    pub db: sqlx::PgPool,
    stop: watch::Sender<bool>,
}

impl ControlPlane {
    pub async fn start(database_url: &str) -> ControlPlane {
        ControlPlane::start_with(database_url, &[]).await
    }

    /// [`ControlPlane::start`] with further command-line flags.
    pub async fn start_with(database_url: &str, extra: &[&str]) -> ControlPlane {
        shared::process::install_crypto_provider();
        let mut args = vec![
            "control-plane",
            "--database-url",
            database_url,
            "--encryption-keys",
            TEST_ENCRYPTION_KEYS,
        ];
        args.extend_from_slice(extra);
        let config = control_plane::config::Cli::try_parse_from(args)
            .unwrap()
            .config;
        let db = control_plane::db::connect_and_migrate(&config.database_url, 5)
            .await
            .unwrap();
        let admin_key = control_plane::bootstrap::create_admin(&db, "admin@test.local", "test")
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, mut stopped) = watch::channel(false);
        let state = control_plane::AppState {
            db: db.clone(),
            keyring: std::sync::Arc::new(config.encryption_keys.clone().unwrap()),
            upstream_deny: std::sync::Arc::new(config.deny_upstream_ranges),
            public_gateway_url: config.public_gateway_url.into(),
        };
        tokio::spawn(control_plane::serve(listener, state, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        ControlPlane {
            url,
            admin_key,
            db,
            stop,
        }
    }

    /// An API client authenticated with the admin key.
    pub fn admin(&self) -> Api {
        self.client(&self.admin_key)
    }

    pub fn client(&self, key: &str) -> Api {
        Api {
            base: format!("{}/api/v1", self.url),
            key: key.to_owned(),
            http: http_client(),
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A data plane on 127.0.0.1:0; `extra` are further command-line flags.
pub struct DataPlane {
    pub url: String,
    pub addr: SocketAddr,
    pub database_url: String,
    /// Its state, for reading sync status and waiting on the applied version.
    pub gateway: Arc<data_plane::Gateway>,
    stop: watch::Sender<bool>,
    /// Taken by [`DataPlane::stop`] to await its tasks.
    running: Option<data_plane::DataPlane>,
}

impl DataPlane {
    pub async fn start(database_url: &str, extra: &[&str]) -> DataPlane {
        shared::process::install_crypto_provider();
        let mut args = vec![
            "data-plane",
            "--database-url",
            database_url,
            "--encryption-keys",
            TEST_ENCRYPTION_KEYS,
        ];
        args.extend_from_slice(extra);
        let config = data_plane::Config::try_parse_from(args).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, shutdown) = watch::channel(false);
        let plane = data_plane::start(config, listener, shutdown).await.unwrap();
        let addr = plane.addr;
        DataPlane {
            url: format!("http://{addr}"),
            addr,
            database_url: database_url.to_owned(),
            gateway: Arc::clone(&plane.gateway),
            stop,
            running: Some(plane),
        }
    }

    /// Stops it and waits until every task has ended (files written, connections closed).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(running) = self.running.take() {
            running.join().await.unwrap();
        }
    }

    /// Starts and waits until the first routing table is loaded.
    pub async fn start_ready(database_url: &str) -> DataPlane {
        DataPlane::start_ready_with(database_url, &[]).await
    }

    /// [`DataPlane::start_ready`] with further command-line flags.
    pub async fn start_ready_with(database_url: &str, extra: &[&str]) -> DataPlane {
        let plane = DataPlane::start(database_url, extra).await;
        let client = http_client();
        let ready = format!("{}/readyz", plane.url);
        wait_until(Duration::from_secs(10), "data plane ready", || async {
            client
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        plane
    }

    pub fn status(&self) -> data_plane::sync::StatusReport {
        self.gateway.status.report()
    }

    /// Waits until this data plane has applied `version` or a later one; how long it took.
    pub async fn wait_applied(&self, version: i64, deadline: Duration) -> Duration {
        let started = Instant::now();
        let mut applied = self.gateway.status.subscribe();
        tokio::time::timeout(deadline, applied.wait_for(|v| *v >= version))
            .await
            .unwrap_or_else(|_| panic!("version {version} not applied within {deadline:?}"))
            .unwrap();
        started.elapsed()
    }

    /// Proxied requests still holding an in-flight permit (streams and tunnels included).
    pub fn in_flight(&self) -> usize {
        self.gateway.config.max_in_flight as usize - self.gateway.in_flight.available_permits()
    }

    /// Waits until no proxied request is in flight: nothing leaked (RELIABILITY S12).
    pub async fn wait_idle(&self) {
        wait_until(Duration::from_secs(3), "no request in flight", || async {
            self.in_flight() == 0
        })
        .await;
    }

    /// `/proxy-api/{path}` on this data plane.
    pub fn proxy(&self, path: &str) -> String {
        format!("{}/proxy-api/{path}", self.url)
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The upstream credential every [`Gateway`] injects, as `X-Upstream-Key`.
pub const UPSTREAM_KEY: &str = "upstream-secret";

/// A control plane and a ready data plane serving one integration, `acme/svc`, whose account
/// injects [`UPSTREAM_KEY`].
pub struct Gateway {
    pub cp: ControlPlane,
    pub dp: DataPlane,
    /// The admin's API key, to call the proxy with.
    pub key: String,
}

impl Gateway {
    /// `GET` of `rest` (the upstream path) through the data plane, with the admin's key.
    pub async fn get(&self, rest: &str) -> reqwest::Response {
        http_client()
            .get(self.url(rest))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
    }

    /// `integration` holds further integration fields (`tls`, ...); `flags` go to the data plane.
    pub async fn start(base_url: &str, integration: Value, flags: &[&str]) -> Gateway {
        let db = fresh_database().await;
        let cp = ControlPlane::start(&db).await;
        let api = cp.admin();
        let r = api
            .post(
                "/provider-accounts",
                serde_json::json!({"name": "acme", "header_auth": {"type": "header",
                    "headers": {"X-Upstream-Key": UPSTREAM_KEY}}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let mut body = serde_json::json!({"name": "svc", "base_url": base_url});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), integration) {
            body.extend(extra);
        }
        let r = api.post("/provider-accounts/acme/integrations", body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let dp = DataPlane::start_ready_with(&db, flags).await;
        let key = cp.admin_key.clone();
        Gateway { cp, dp, key }
    }

    /// `/proxy-api/acme/svc{rest}` on the data plane.
    pub fn url(&self, rest: &str) -> String {
        format!("{}/proxy-api/acme/svc{rest}", self.dp.url)
    }
}

/// reqwest set up as a proxy test needs it: no redirects followed, no system proxy, no total
/// timeout that would cut a stream.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A JSON client for the control plane's `/api/v1`.
pub struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

/// Status and parsed body (`Null` when empty) of an API call.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub json: Value,
}

impl Api {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            text,
            json,
        }
    }

    /// Every item of a paged list, following `X-Next-Page-Token` with pages of `page_size`;
    /// also returns how many pages it took.
    pub async fn all_pages(&self, path: &str, page_size: u32) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for pages in 1.. {
            let mut url = format!("{}{path}?page_size={page_size}", self.base);
            if let Some(token) = &token {
                url.push_str(&format!("&page_token={token}"));
            }
            let response = self
                .http
                .get(url)
                .bearer_auth(&self.key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            token = response
                .headers()
                .get("x-next-page-token")
                .map(|v| v.to_str().unwrap().to_owned());
            let page: Vec<Value> = response.json().await.unwrap();
            assert!(page.len() <= page_size as usize);
            items.extend(page);
            if token.is_none() {
                return (items, pages);
            }
        }
        unreachable!("the loop returns when no page follows")
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(reqwest::Method::POST, path, Some(&body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(reqwest::Method::PUT, path, Some(&body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(reqwest::Method::PATCH, path, Some(&body)).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// Polls `condition` until it holds; panics naming `what` after `deadline`. Returns how long
/// it took.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return started.elapsed();
        }
        if started.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// GET requests sent back to back to one URL until stopped, each answered or counted failed.
pub struct ConstantLoad {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<LoadFigures>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LoadFigures {
    pub ok: u64,
    /// Anything but a 200: a connection error, a gateway error, a timeout.
    pub failed: u64,
}

impl ConstantLoad {
    pub fn start(url: String, key: String) -> ConstantLoad {
        let (stop, stopped) = watch::channel(false);
        let client = http_client();
        let task = tokio::spawn(async move {
            let mut figures = LoadFigures::default();
            while !*stopped.borrow() {
                let sent = client
                    .get(&url)
                    .bearer_auth(&key)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => figures.ok += 1,
                    _ => figures.failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            figures
        });
        ConstantLoad { stop, task }
    }

    pub async fn finish(self) -> LoadFigures {
        let _ = self.stop.send(true);
        self.task.await.unwrap()
    }
}

/// Commits `statements` as a control-plane write would: in one transaction with a config
/// version bump and its notification. Returns the new version. For what the API cannot do
/// (rows that fail validation) or does not have yet (key revocation).
pub async fn commit_by_sql(db: &sqlx::PgPool, statements: &[&str]) -> i64 {
    let mut tx = db.begin().await.unwrap();
    for statement in statements {
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
    }
    let version: i64 =
        sqlx::query_scalar("update config_version set version = version + 1 returning version")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    // A change log row that does not name what it touched: data planes reload in full.
    sqlx::query(
        "insert into config_changes (version, kind, object_name, operation)
         values ($1, 'sql', 'test', 'update')",
    )
    .bind(version)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("select pg_notify($1, $2)")
        .bind(shared::notify::CHANNEL)
        .bind(format!("{{\"version\":{version}}}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    version
}

pub async fn config_version(db: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("select version from config_version")
        .fetch_one(db)
        .await
        .unwrap()
}

/// What a plane serves at `/metrics`, scraped once.
pub struct Metrics(pub String);

impl Metrics {
    pub async fn scrape(base_url: &str) -> Metrics {
        let response = http_client()
            .get(format!("{base_url}/metrics"))
            .send()
            .await
            .unwrap();
        Metrics(response.text().await.unwrap())
    }

    /// The value of the first sample whose line starts with `line_start` (name and labels).
    pub fn find(&self, line_start: &str) -> Option<f64> {
        self.0
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// As [`Metrics::find`], for a sample that must be there.
    pub fn value(&self, line_start: &str) -> f64 {
        self.find(line_start)
            .unwrap_or_else(|| panic!("no {line_start} in\n{}", self.0))
    }
}

/// The text itself, for `contains` checks and messages.
impl std::ops::Deref for Metrics {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
