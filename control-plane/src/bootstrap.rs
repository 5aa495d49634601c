//! The first admin: created at first start (key printed once) or from configuration, and by the
//! `create-admin` command.

use secrecy::{ExposeSecret, SecretString};
use shared::api_key::{self, KeyDigest};
use shared::names::validate_email;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::{Operation, record_change};

/// Makes sure an admin exists. With a configured key, that key belongs to the admin with
/// `email` (both created when missing). Without one, an admin and a fresh key are created only
/// when no user exists yet; the fresh secret is returned so the caller can print it once.
pub async fn ensure_admin(
    pool: &PgPool,
    email: &str,
    configured_key: Option<&SecretString>,
) -> anyhow::Result<Option<String>> {
    validate_email(email).map_err(|e| anyhow::anyhow!("bootstrap admin e-mail {e}"))?;
    let mut tx = pool.begin().await?;
    // Serialise concurrent first starts of several control planes.
    sqlx::query("select version from config_version for update")
        .execute(&mut *tx)
        .await?;
    let mut changed = false;
    let generated = match configured_key {
        Some(key) => {
            let digest = api_key::digest_of(key.expose_secret()).ok_or_else(|| {
                anyhow::anyhow!(
                    "GATEHOUSE_BOOTSTRAP_ADMIN_KEY must be gh_ followed by 48 lowercase hex digits"
                )
            })?;
            let known: bool =
                sqlx::query_scalar("select exists (select 1 from api_keys where digest = $1)")
                    .bind(&digest[..])
                    .fetch_one(&mut *tx)
                    .await?;
            if !known {
                let admin = upsert_admin(&mut tx, email).await?;
                insert_key(&mut tx, admin, "bootstrap", &digest).await?;
                changed = true;
            }
            None
        }
        None => {
            let any_user: bool =
                sqlx::query_scalar("select exists (select 1 from subjects where kind = 'user')")
                    .fetch_one(&mut *tx)
                    .await?;
            if any_user {
                None
            } else {
                let admin = upsert_admin(&mut tx, email).await?;
                let key = api_key::generate();
                insert_key(&mut tx, admin, "bootstrap", &key.digest).await?;
                changed = true;
                Some(key.secret)
            }
        }
    };
    if changed {
        record_change(&mut tx, "bootstrap", email, Operation::Create).await?;
    }
    tx.commit().await?;
    Ok(generated)
}

/// `create-admin`: the admin user with `email` (made admin if it existed) and a new key for it.
pub async fn create_admin(pool: &PgPool, email: &str, key_name: &str) -> anyhow::Result<String> {
    validate_email(email).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = pool.begin().await?;
    let admin = upsert_admin(&mut tx, email).await?;
    let key = api_key::generate();
    insert_key(&mut tx, admin, key_name, &key.digest).await?;
    record_change(&mut tx, "api_key", key_name, Operation::Create).await?;
    tx.commit().await?;
    Ok(key.secret)
}

async fn upsert_admin(conn: &mut PgConnection, email: &str) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "insert into subjects (id, kind, name, is_admin) values ($1, 'user', $2, true)
         on conflict on constraint subjects_kind_name_key do update set is_admin = true
         returning id",
    )
    .bind(Uuid::now_v7())
    .bind(email)
    .fetch_one(conn)
    .await
}

/// Stores a key's digest (never its secret) for a subject.
pub async fn insert_key(
    conn: &mut PgConnection,
    subject_id: Uuid,
    name: &str,
    digest: &KeyDigest,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "insert into api_keys (id, subject_id, name, digest) values ($1, $2, $3, $4) returning id",
    )
    .bind(Uuid::now_v7())
    .bind(subject_id)
    .bind(name)
    .bind(&digest[..])
    .fetch_one(conn)
    .await
}
