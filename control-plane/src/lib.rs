//! The Gatehouse control plane: a REST API over PostgreSQL. Every write commits its change, a
//! new config version and a NOTIFY in one transaction; data planes do the rest.
//!
//! - [`config`]: flags and environment.
//! - [`db`]: pool, migrations, the config version bump.
//! - [`http`]: router, error type, JSON extraction, merge patch.
//! - [`auth`]: the caller behind an API key, and who may manage what.
//! - [`bootstrap`]: the first admin and `create-admin`.
//! - [`provider_accounts`], [`integrations`], [`subjects`], [`api_keys`]: the resources.
//! - [`apply`]: `PUT /apply`, reconciling accounts with a manifest in one transaction.
//! - [`traces`]: the request logs data planes write, and their retention.
//! - [`data_planes`]: the data planes that reported in, and their applied versions.
//! - [`secrets`]: masking and write-only handling of header auth.
//! - [`reseal`]: re-sealing stored credentials under a rotated key.
//! - [`ui`]: the dashboard at `/ui/`, static files embedded in the binary.

pub mod api_keys;
pub mod apply;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod data_planes;
pub mod db;
pub mod http;
pub mod integrations;
pub mod provider_accounts;
pub mod reseal;
pub mod secrets;
pub mod subjects;
pub mod traces;
pub mod ui;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use shared::crypto::Keyring;
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use config::Config;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    /// Seals header auth values before they are stored.
    pub keyring: Arc<Keyring>,
    /// Address ranges base URLs may not point at (RELIABILITY S7).
    pub upstream_deny: Arc<shared::address::DenyList>,
    /// What the dashboard's usage snippets call (`GATEHOUSE_PUBLIC_GATEWAY_URL`).
    pub public_gateway_url: Arc<str>,
}

/// Connects, migrates, makes sure an admin exists (printing a generated bootstrap key once, on
/// stdout), binds, and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let keyring = config
        .encryption_keys
        .clone()
        .context("GATEHOUSE_ENCRYPTION_KEYS is required to serve (id:64-hex-digits)")?;
    let db = db::connect_and_migrate(&config.database_url, config.database_max_connections).await?;
    if let Some(key) = bootstrap::ensure_admin(
        &db,
        &config.bootstrap_admin_email,
        config.bootstrap_admin_key.as_ref(),
    )
    .await
    .context("creating the bootstrap admin")?
    {
        println!(
            "Created admin {} with API key (shown once, store it now): {key}",
            config.bootstrap_admin_email
        );
    }
    let retention = std::time::Duration::from_secs(config.request_log_retention_hours * 3600);
    // Dropped with the runtime when serving ends.
    tokio::spawn(traces::enforce_retention(
        db.clone(),
        retention,
        std::time::Duration::from_secs(600),
    ));
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let state = AppState {
        db,
        keyring: Arc::new(keyring),
        upstream_deny: Arc::new(config.deny_upstream_ranges),
        public_gateway_url: config.public_gateway_url.into(),
    };
    serve(listener, state, shutdown).await
}

/// Serves the API on an already bound listener (tests bind port 0).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "control plane listening");
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the API")
}
