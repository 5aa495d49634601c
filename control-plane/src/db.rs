//! Database connection, migrations, and the config version every write bumps (RELIABILITY P3).

use secrecy::{ExposeSecret, SecretString};
use shared::notify::{CHANNEL, ConfigNotification};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

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

/// What a write touched, recorded with its change so that data planes re-read only that
/// (SPEC §4). Whatever a write changes that reaches a data plane's table must be named here:
/// a data plane keeps everything else as it was.
#[derive(Debug, Clone, Default)]
pub struct Touched {
    /// Provider accounts whose routes changed: their own fields, collaborators, or any of their
    /// integrations (with authorized subjects). A deleted one is named too.
    pub accounts: Vec<Uuid>,
    /// Subjects whose callers changed: name, admin flag, team memberships, keys. A deleted or
    /// revoked one is named too.
    pub subjects: Vec<Uuid>,
}

impl Touched {
    pub fn account(id: Uuid) -> Touched {
        Touched {
            accounts: vec![id],
            subjects: Vec::new(),
        }
    }

    pub fn subjects(ids: Vec<Uuid>) -> Touched {
        Touched {
            accounts: Vec::new(),
            subjects: ids,
        }
    }

    /// What deleting subject `id` touches: the subject and, for a team, its members (their
    /// team lists change), plus every account that names it as collaborator or authorized
    /// subject (the cascade changes who may call there). Locks the subject row first, so that
    /// no reference can be added between this read and the delete.
    pub async fn by_deleting_subject(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Touched> {
        sqlx::query("select 1 from subjects where id = $1 for update")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        let accounts = sqlx::query_scalar(
            "select account_id from collaborators where subject_id = $1
             union
             select i.account_id from authorized_subjects x join integrations i on i.id = x.integration_id
             where x.subject_id = $1",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        let mut subjects = team_members(conn, id).await?;
        subjects.push(id);
        Ok(Touched { accounts, subjects })
    }
}

/// The users in team `team` (none for any other subject).
pub async fn team_members(conn: &mut PgConnection, team: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("select user_id from team_members where team_id = $1")
        .bind(team)
        .fetch_all(conn)
        .await
}

/// Records a change whose extent the writer does not name: data planes reload in full. For
/// writes that touch everything (key rotation) or happen once (bootstrap).
pub async fn record_change(
    tx: &mut Transaction<'_, Postgres>,
    kind: &str,
    object_name: &str,
    operation: Operation,
) -> sqlx::Result<i64> {
    insert_change(tx, kind, object_name, operation, None).await
}

/// Records a change that touched only `touched`: data planes re-read just that.
pub async fn record_change_touching(
    tx: &mut Transaction<'_, Postgres>,
    kind: &str,
    object_name: &str,
    operation: Operation,
    touched: Touched,
) -> sqlx::Result<i64> {
    insert_change(tx, kind, object_name, operation, Some(touched)).await
}

/// Bumps the single-row config version, logs the change and queues the NOTIFY, all inside the
/// caller's transaction: PostgreSQL delivers the notification at commit, in commit order, and
/// the row lock on the version serialises concurrent writers so versions follow commit order.
async fn insert_change(
    tx: &mut Transaction<'_, Postgres>,
    kind: &str,
    object_name: &str,
    operation: Operation,
    touched: Option<Touched>,
) -> sqlx::Result<i64> {
    let conn: &mut PgConnection = tx;
    let version: i64 =
        sqlx::query_scalar("update config_version set version = version + 1 returning version")
            .fetch_one(&mut *conn)
            .await?;
    let (accounts, subjects) = touched.map(|t| (t.accounts, t.subjects)).unzip();
    sqlx::query(
        "insert into config_changes (version, kind, object_name, operation, accounts, subjects)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(version)
    .bind(kind)
    .bind(object_name)
    .bind(operation.as_str())
    .bind(accounts)
    .bind(subjects)
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
