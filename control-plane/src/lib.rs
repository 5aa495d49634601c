//! The Gatehouse control plane: a REST API over PostgreSQL. Every write commits its change, a
//! new config version and a NOTIFY in one transaction; data planes do the rest.
//!
//! - [`config`]: flags and environment.
//! - [`db`]: pool, migrations, the config version bump.
//! - [`http`]: router, error type, JSON extraction, merge patch.
//! - [`auth`]: the caller behind an API key, and who may manage what.
//! - [`bootstrap`]: the first admin and `create-admin`.
//! - [`provider_accounts`], [`integrations`], [`subjects`]: the resources.
//! - [`data_planes`]: the data planes that reported in, and their applied versions.
//! - [`secrets`]: masking and write-only handling of header auth.

pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod data_planes;
pub mod db;
pub mod http;
pub mod integrations;
pub mod provider_accounts;
pub mod secrets;
pub mod subjects;

use std::future::Future;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use config::Config;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
}

/// Connects, migrates, makes sure an admin exists (printing a generated bootstrap key once, on
/// stdout), binds, and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    serve(listener, AppState { db }, shutdown).await
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
