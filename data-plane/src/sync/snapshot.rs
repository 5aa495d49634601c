//! Reading the configuration: every config table and the version in one `REPEATABLE READ READ
//! ONLY` transaction, so the table never mixes two generations (RELIABILITY P6). Either all of
//! it (a full snapshot) or, when the change log covers every version since the one applied,
//! only what those changes touched (a [`Delta`]). Both first check that the database schema is
//! one this data plane understands (P13).

use std::ops::RangeInclusive;

use shared::model::{HeaderAuth, TlsSettings};
use shared::snapshot::{
    AccountSnapshot, Delta, IntegrationSnapshot, KeySnapshot, Snapshot, SubjectSnapshot,
};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A change log row's touched accounts and subjects; null when the write did not say.
type ChangeRow = (Option<Vec<Uuid>>, Option<Vec<Uuid>>);
type AccountRow = (
    Uuid,
    String,
    Option<Json<HeaderAuth>>,
    Json<std::collections::BTreeMap<String, String>>,
    Vec<String>,
    Vec<Uuid>,
);
type IntegrationRow = (
    Uuid,
    Uuid,
    String,
    String,
    Option<Json<HeaderAuth>>,
    Json<std::collections::BTreeMap<String, String>>,
    bool,
    Option<String>,
    Vec<Uuid>,
    Option<i64>,
    Vec<String>,
);

/// The oldest schema (sqlx migration version) this data plane's reads work with: 9 added the
/// change log's touched accounts and subjects.
const OLDEST_SCHEMA: i64 = 9;

/// The migrations this data plane was built with: the newest is the newest schema it knows.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Schema versions (sqlx migration versions) whose configuration this data plane applies. A
/// newer schema may mean things this build does not know (RELIABILITY P13: expand, roll the
/// data planes, then contract), so it is refused too.
pub fn supported_schemas() -> RangeInclusive<i64> {
    let newest = MIGRATIONS.iter().map(|m| m.version).max();
    OLDEST_SCHEMA..=newest.unwrap_or(OLDEST_SCHEMA)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// RELIABILITY P13: nothing read from a schema this data plane does not understand is used.
    #[error(
        "database schema version {found} is not one this data plane understands ({}..={})",
        supported.start(), supported.end()
    )]
    UnsupportedSchema {
        found: i64,
        supported: RangeInclusive<i64>,
    },
}

/// What [`read`] found.
#[derive(Debug)]
pub struct Fetched {
    /// The database's schema (migration) version, one this data plane understands.
    pub schema: i64,
    pub read: Read,
}

#[derive(Debug)]
pub enum Read {
    Full(Snapshot),
    Changes(Delta),
}

/// A full snapshot.
pub async fn load(pool: &PgPool) -> Result<Snapshot, ReadError> {
    let (mut tx, _, version) = begin(pool).await?;
    let snapshot = rows(&mut tx, version, None).await?;
    tx.commit().await?;
    Ok(snapshot)
}

/// What changed since version `since`, or a full snapshot when asked for one (`None`) or when
/// the change log cannot say: a version in between without its log row, or a change that does
/// not name what it touched.
pub async fn read(pool: &PgPool, since: Option<i64>) -> Result<Fetched, ReadError> {
    let (mut tx, schema, version) = begin(pool).await?;
    let changes = match since {
        Some(applied) => changes(&mut tx, applied, version).await?,
        None => None,
    };
    let read = match changes {
        Some((accounts, subjects)) => {
            let snapshot = rows(&mut tx, version, Some((&accounts, &subjects))).await?;
            Read::Changes(Delta {
                from_version: since.unwrap_or_default(),
                accounts,
                subjects,
                snapshot,
            })
        }
        None => Read::Full(rows(&mut tx, version, None).await?),
    };
    tx.commit().await?;
    Ok(Fetched { schema, read })
}

/// The accounts and subjects touched by the changes after `applied` up to `version`, if the
/// change log says (RELIABILITY P4: any doubt, and the caller reads everything).
async fn changes(
    conn: &mut PgConnection,
    applied: i64,
    version: i64,
) -> sqlx::Result<Option<(Vec<Uuid>, Vec<Uuid>)>> {
    let changes: Vec<ChangeRow> = sqlx::query_as(
        "select accounts, subjects from config_changes
         where version > $1 and version <= $2 order by version",
    )
    .bind(applied)
    .bind(version)
    .fetch_all(conn)
    .await?;
    let doubt = if version < applied {
        Some("the database's version is behind the applied one")
    } else if changes.len() as i64 != version - applied {
        Some("the change log does not cover every version since the applied one")
    } else {
        None
    };
    let (mut accounts, mut subjects) = (Vec::new(), Vec::new());
    for change in changes {
        match change {
            (Some(a), Some(s)) => {
                accounts.extend(a);
                subjects.extend(s);
            }
            _ => {
                tracing::info!("a change does not name what it touched; reading in full");
                return Ok(None);
            }
        }
    }
    if let Some(doubt) = doubt {
        tracing::warn!(applied, version, "{doubt}; reading in full");
        return Ok(None);
    }
    for ids in [&mut accounts, &mut subjects] {
        ids.sort_unstable();
        ids.dedup();
    }
    Ok(Some((accounts, subjects)))
}

/// Opens the consistent read, checks the schema and reads the schema and config versions.
async fn begin(pool: &PgPool) -> Result<(Transaction<'static, Postgres>, i64, i64), ReadError> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let (version, schema): (i64, Option<i64>) = sqlx::query_as(
        "select (select version from config_version),
                (select max(version) from _sqlx_migrations where success)",
    )
    .fetch_one(&mut *tx)
    .await?;
    let supported = supported_schemas();
    match schema {
        Some(found) if supported.contains(&found) => Ok((tx, found, version)),
        found => Err(ReadError::UnsupportedSchema {
            found: found.unwrap_or(0),
            supported,
        }),
    }
}

/// Runs `select`, restricted by `filter` to the ids given when there are some (an empty list
/// reads nothing), then `group`.
async fn select<T>(
    conn: &mut PgConnection,
    select: &str,
    (filter, ids): (&str, Option<&[Uuid]>),
    group: &str,
) -> sqlx::Result<Vec<T>>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    match ids {
        None => {
            sqlx::query_as(&format!("{select} {group}"))
                .fetch_all(conn)
                .await
        }
        Some([]) => Ok(Vec::new()),
        Some(ids) => {
            sqlx::query_as(&format!("{select} {filter} {group}"))
                .bind(ids)
                .fetch_all(conn)
                .await
        }
    }
}

/// The rows of version `version`: all of them, or only those of the given accounts (with all
/// their integrations) and subjects (with all their usable keys).
async fn rows(
    conn: &mut PgConnection,
    version: i64,
    only: Option<(&[Uuid], &[Uuid])>,
) -> sqlx::Result<Snapshot> {
    let (accounts_only, subjects_only) = only.unzip();
    let accounts: Vec<AccountRow> = select(
        conn,
        "select a.id, a.name, a.header_auth, a.custom_headers, a.secret_custom_headers,
                coalesce(array_agg(c.subject_id) filter (where c.subject_id is not null), '{}')
         from provider_accounts a left join collaborators c on c.account_id = a.id",
        ("where a.id = any($1)", accounts_only),
        "group by a.id",
    )
    .await?;
    let integrations: Vec<IntegrationRow> = select(
        conn,
        "select i.id, i.account_id, i.name, i.base_url, i.header_auth, i.custom_headers,
                i.tls_reject_unauthorized, i.tls_ca_certs,
                coalesce(array_agg(x.subject_id) filter (where x.subject_id is not null), '{}'),
                i.max_request_body_bytes, i.secret_custom_headers
         from integrations i left join authorized_subjects x on x.integration_id = i.id",
        ("where i.account_id = any($1)", accounts_only),
        "group by i.id",
    )
    .await?;
    let subjects: Vec<(Uuid, String, bool, Vec<Uuid>)> = select(
        conn,
        "select s.id, s.kind || ':' || s.name, s.is_admin,
                coalesce(array_agg(m.team_id order by m.team_id) filter (where m.team_id is not null), '{}')
         from subjects s left join team_members m on m.user_id = s.id",
        ("where s.id = any($1)", subjects_only),
        "group by s.id",
    )
    .await?;
    // Revoked and already expired keys never reach the table.
    let keys: Vec<(Uuid, Vec<u8>, Uuid, Option<i64>)> = select(
        conn,
        "select id, digest, subject_id, extract(epoch from expires_at)::bigint
         from api_keys
         where revoked_at is null and (expires_at is null or expires_at > now())",
        ("and subject_id = any($1)", subjects_only),
        "",
    )
    .await?;
    Ok(Snapshot {
        version,
        accounts: accounts
            .into_iter()
            .map(
                |(id, name, header_auth, custom_headers, secret, collaborators)| AccountSnapshot {
                    id,
                    name,
                    header_auth: header_auth.map(|j| j.0),
                    custom_headers: custom_headers.0,
                    secret_custom_headers: secret,
                    collaborators,
                },
            )
            .collect(),
        integrations: integrations
            .into_iter()
            .map(
                |(
                    id,
                    account_id,
                    name,
                    base_url,
                    header_auth,
                    custom_headers,
                    verify,
                    ca_certs,
                    authorized,
                    body_limit,
                    secret,
                )| {
                    IntegrationSnapshot {
                        id,
                        account_id,
                        name,
                        base_url,
                        header_auth: header_auth.map(|j| j.0),
                        custom_headers: custom_headers.0,
                        secret_custom_headers: secret,
                        tls: TlsSettings {
                            reject_unauthorized: verify,
                            ca_certs,
                        },
                        authorized_subjects: authorized,
                        // The schema keeps it positive.
                        max_request_body_bytes: body_limit.map(|n| n.max(1) as u64),
                    }
                },
            )
            .collect(),
        subjects: subjects
            .into_iter()
            .map(|(id, name, is_admin, teams)| SubjectSnapshot {
                id,
                name,
                is_admin,
                teams,
            })
            .collect(),
        keys: keys
            .into_iter()
            .map(|(id, digest, subject_id, expires_at)| KeySnapshot {
                id,
                digest,
                subject_id,
                expires_at,
            })
            .collect(),
    })
}
