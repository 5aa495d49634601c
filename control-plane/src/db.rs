//! Database connection, migrations, and the config version every write bumps (RELIABILITY P3).

use secrecy::{ExposeSecret, SecretString};
use shared::notify::{CHANNEL, ConfigNotification};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres, Transaction};

/// Migrations embedded from the workspace's `migrations/` folder.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects and brings the schema up to date.
pub async fn connect_and_migrate(
    url: &SecretString,
    max_connections: u32,
) -> anyhow::Result<PgPool> {
    use anyhow::Context as _;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url.expose_secret())
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    Ok(pool)
}

/// What changed, recorded in the change log beside the new version.
#[derive(Debug, Clone, Copy)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// Bumps the single-row config version, logs the change and queues the NOTIFY, all inside the
/// caller's transaction: PostgreSQL delivers the notification at commit, in commit order, and
/// the row lock on the version serialises concurrent writers so versions follow commit order.
pub async fn record_change(
    tx: &mut Transaction<'_, Postgres>,
    kind: &str,
    object_name: &str,
    operation: Operation,
) -> sqlx::Result<i64> {
    let conn: &mut PgConnection = tx;
    let version: i64 =
        sqlx::query_scalar("update config_version set version = version + 1 returning version")
            .fetch_one(&mut *conn)
            .await?;
    sqlx::query(
        "insert into config_changes (version, kind, object_name, operation) values ($1, $2, $3, $4)",
    )
    .bind(version)
    .bind(kind)
    .bind(object_name)
    .bind(operation.as_str())
    .execute(&mut *conn)
    .await?;
    let payload = serde_json::to_string(&ConfigNotification { version })
        .expect("serialising a struct of one integer cannot fail");
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(&mut *conn)
        .await?;
    Ok(version)
}
