//! Key rotation: `control-plane reseal` opens every stored header auth value with any key of the
//! keyring and seals it again with the current (first) key, in one transaction. After it, keys
//! other than the first can be dropped from the configuration of both planes.

use shared::crypto::{self, Keyring, open_header_auth, seal_header_auth};
use shared::model::HeaderAuth;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{Operation, record_change};

/// Re-seals what needs it and returns how many rows changed.
pub async fn reseal_all(pool: &PgPool, keyring: &Keyring) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let mut changed = 0;
    for table in [crypto::ACCOUNTS, crypto::INTEGRATIONS] {
        // Table names come from constants, never from input.
        let rows: Vec<(Uuid, Json<HeaderAuth>)> = sqlx::query_as(&format!(
            "select id, header_auth from {table} where header_auth is not null for update"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for (id, Json(sealed)) in rows {
            if !sealed.headers().values().any(|v| keyring.needs_rotation(v)) {
                continue;
            }
            let open = open_header_auth(keyring, table, id, &sealed)
                .map_err(|e| anyhow::anyhow!("{table} {id}: {e}"))?;
            let resealed = seal_header_auth(keyring, table, id, &open);
            sqlx::query(&format!(
                "update {table} set header_auth = $2 where id = $1"
            ))
            .bind(id)
            .bind(Json(resealed))
            .execute(&mut *tx)
            .await?;
            changed += 1;
        }
    }
    if changed > 0 {
        record_change(&mut tx, "keyring", "reseal", Operation::Update).await?;
    }
    tx.commit().await?;
    Ok(changed)
}
