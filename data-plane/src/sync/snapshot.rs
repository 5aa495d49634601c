//! Reading a snapshot: every config table and the version in one `REPEATABLE READ READ ONLY`
//! transaction, so the table never mixes two generations (RELIABILITY P6).

use shared::model::{HeaderAuth, TlsSettings};
use shared::snapshot::{
    AccountSnapshot, IntegrationSnapshot, KeySnapshot, Snapshot, SubjectSnapshot,
};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

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

pub async fn load(pool: &PgPool) -> sqlx::Result<Snapshot> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let version: i64 = sqlx::query_scalar("select version from config_version")
        .fetch_one(&mut *tx)
        .await?;
    let accounts: Vec<AccountRow> = sqlx::query_as(
        "select a.id, a.name, a.header_auth, a.custom_headers, a.secret_custom_headers,
                coalesce(array_agg(c.subject_id) filter (where c.subject_id is not null), '{}')
         from provider_accounts a left join collaborators c on c.account_id = a.id
         group by a.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let integrations: Vec<IntegrationRow> = sqlx::query_as(
        "select i.id, i.account_id, i.name, i.base_url, i.header_auth, i.custom_headers,
                i.tls_reject_unauthorized, i.tls_ca_certs,
                coalesce(array_agg(x.subject_id) filter (where x.subject_id is not null), '{}'),
                i.max_request_body_bytes, i.secret_custom_headers
         from integrations i left join authorized_subjects x on x.integration_id = i.id
         group by i.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let subjects: Vec<(Uuid, String, bool, Vec<Uuid>)> = sqlx::query_as(
        "select s.id, s.kind || ':' || s.name, s.is_admin,
                coalesce(array_agg(m.team_id) filter (where m.team_id is not null), '{}')
         from subjects s left join team_members m on m.user_id = s.id
         group by s.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    // Revoked and already expired keys never reach the table.
    let keys: Vec<(Uuid, Vec<u8>, Uuid, Option<i64>)> = sqlx::query_as(
        "select id, digest, subject_id, extract(epoch from expires_at)::bigint
         from api_keys
         where revoked_at is null and (expires_at is null or expires_at > now())",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
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
