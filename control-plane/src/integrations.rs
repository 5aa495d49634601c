//! `/api/v1/provider-accounts/{account}/integrations`: the endpoints of an account.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::address::DenyList;
use shared::base_url::BaseUrl;
use shared::crypto::{self, Keyring};
use shared::headers::validate_header_map;
use shared::model::{HeaderAuth, Subject, TlsSettings};
use shared::names::validate_integration_name;
use shared::validation::FieldError;
use sqlx::types::Json as DbJson;
use sqlx::{PgConnection, Postgres, Transaction};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{AccountAccess, Caller};
use crate::db::{Operation, Touched, record_change_touching};
use crate::http::error::{ApiError, ApiResult, ReadErrors, WriteErrors};
use crate::http::etag::{IfMatch, Tagged};
use crate::http::json::ApiJson;
use crate::http::paging::PageQuery;
use crate::http::patch::patched;
use crate::provider_accounts::authorize;
use crate::secrets::{
    SecretFields, WithSecrets, masked_custom_headers, seal_for_store, validate_secret_names,
};
use crate::subjects::resolve_all;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, replace, patch, delete))
}

/// An integration as written by a caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationInput {
    pub name: String,
    pub base_url: String,
    #[serde(default)]
    pub header_auth: Option<HeaderAuth>,
    #[serde(default)]
    pub custom_headers: BTreeMap<String, String>,
    /// Names of custom headers whose values are secret: sealed at rest, masked on reads.
    #[serde(default)]
    pub secret_custom_headers: Vec<String>,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["team:ml"]))]
    pub authorized_subjects: Vec<Subject>,
    /// Larger request bodies are refused with 413; none when absent.
    #[serde(default)]
    pub max_request_body_bytes: Option<u64>,
}

impl IntegrationInput {
    /// What to store for row `id`: sealed, masked values taken from `stored`.
    fn sealed(
        &self,
        keyring: &Keyring,
        id: Uuid,
        stored: Option<SecretFields<'_>>,
    ) -> ApiResult<IntegrationInput> {
        let sealed = seal_for_store(
            keyring,
            crypto::INTEGRATIONS,
            id,
            self.secret_fields(),
            stored,
        )?;
        Ok(self.with_secret_values(sealed))
    }

    pub(crate) fn validate(&self) -> Result<(), FieldError> {
        validate_integration_name(&self.name)?;
        BaseUrl::parse(&self.base_url)?;
        if let Some(auth) = &self.header_auth {
            auth.validate()?;
        }
        validate_header_map("custom_headers", &self.custom_headers)?;
        validate_secret_names(&self.custom_headers, &self.secret_custom_headers)?;
        if self
            .max_request_body_bytes
            .is_some_and(|n| n == 0 || i64::try_from(n).is_err())
        {
            return Err(FieldError::new(
                "max_request_body_bytes",
                "must be a positive number of bytes",
            ));
        }
        self.tls.validate()
    }
}

/// RELIABILITY S7 at write time: the base URL's host, as a literal or as it resolves now, must
/// not be in a denied range. A name that does not resolve (yet) passes: data planes check every
/// address again when they connect, which also defeats DNS rebinding.
async fn check_upstream_address(deny: &DenyList, base_url: &str) -> Result<(), FieldError> {
    if deny.is_empty() {
        return Ok(());
    }
    let base = BaseUrl::parse(base_url)?;
    let host = base.host();
    let denied = match host.parse::<IpAddr>() {
        Ok(ip) => deny.contains(ip),
        Err(_) => {
            let lookup = tokio::net::lookup_host((host, 0));
            match tokio::time::timeout(Duration::from_secs(2), lookup).await {
                Ok(Ok(mut addrs)) => addrs.any(|a| deny.contains(a.ip())),
                _ => false,
            }
        }
    };
    if denied {
        return Err(FieldError::new(
            "base_url",
            "points at an address in a range upstreams may not use",
        ));
    }
    Ok(())
}

/// An integration as read: secrets masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationView {
    pub id: Uuid,
    pub account: String,
    pub name: String,
    pub base_url: String,
    pub header_auth: Option<HeaderAuth>,
    pub custom_headers: BTreeMap<String, String>,
    pub secret_custom_headers: Vec<String>,
    pub tls: TlsSettings,
    #[schema(value_type = Vec<String>)]
    pub authorized_subjects: Vec<Subject>,
    pub max_request_body_bytes: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct IntegrationRow {
    id: Uuid,
    account: String,
    name: String,
    base_url: String,
    header_auth: Option<DbJson<HeaderAuth>>,
    custom_headers: DbJson<BTreeMap<String, String>>,
    secret_custom_headers: Vec<String>,
    tls_reject_unauthorized: bool,
    tls_ca_certs: Option<String>,
    authorized_subjects: DbJson<Vec<Subject>>,
    max_request_body_bytes: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl IntegrationRow {
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The integration as an input, its secrets as stored (sealed).
    pub(crate) fn input(&self) -> IntegrationInput {
        IntegrationInput {
            name: self.name.clone(),
            base_url: self.base_url.clone(),
            header_auth: self.header_auth.as_ref().map(|a| a.0.clone()),
            custom_headers: self.custom_headers.0.clone(),
            secret_custom_headers: self.secret_custom_headers.clone(),
            tls: self.tls(),
            authorized_subjects: self.authorized_subjects.0.clone(),
            max_request_body_bytes: self.max_request_body_bytes(),
        }
    }

    fn tls(&self) -> TlsSettings {
        TlsSettings {
            reject_unauthorized: self.tls_reject_unauthorized,
            ca_certs: self.tls_ca_certs.clone(),
        }
    }

    fn max_request_body_bytes(&self) -> Option<u64> {
        self.max_request_body_bytes.map(|n| n.max(0) as u64)
    }

    fn tagged(self) -> Tagged<IntegrationView> {
        Tagged(self.updated_at, self.view())
    }

    fn view(&self) -> IntegrationView {
        IntegrationView {
            id: self.id,
            account: self.account.clone(),
            name: self.name.clone(),
            base_url: self.base_url.clone(),
            header_auth: self.header_auth.as_ref().map(|a| a.0.masked()),
            custom_headers: masked_custom_headers(
                &self.custom_headers.0,
                &self.secret_custom_headers,
            ),
            secret_custom_headers: self.secret_custom_headers.clone(),
            tls: self.tls(),
            authorized_subjects: self.authorized_subjects.0.clone(),
            max_request_body_bytes: self.max_request_body_bytes(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Integrations of account `$1`, optionally only the one named `$2`.
const SELECT: &str =
    "select i.id, a.name as account, i.name, i.base_url, i.header_auth, i.custom_headers,
        i.secret_custom_headers,
        i.tls_reject_unauthorized, i.tls_ca_certs, i.max_request_body_bytes, i.created_at,
        i.updated_at,
        coalesce((select json_agg(s.kind || ':' || s.name order by s.kind, s.name)
                  from authorized_subjects x join subjects s on s.id = x.subject_id
                  where x.integration_id = i.id), '[]') as authorized_subjects
     from integrations i join provider_accounts a on a.id = i.account_id
     where i.account_id = $1 and ($2::text is null or i.name = $2)
       and ($3::text is null or i.name > $3)
     order by i.name
     limit $4";

async fn fetch(conn: &mut PgConnection, account_id: Uuid, name: &str) -> ApiResult<IntegrationRow> {
    let row: Option<IntegrationRow> = sqlx::query_as(SELECT)
        .bind(account_id)
        .bind(name)
        .bind(None::<String>)
        .bind(1_i64)
        .fetch_optional(conn)
        .await?;
    row.ok_or(ApiError::NotFound("integration"))
}

/// Every integration of account `account_id`, by name.
pub(crate) async fn fetch_all(
    conn: &mut PgConnection,
    account_id: Uuid,
) -> ApiResult<Vec<IntegrationRow>> {
    Ok(sqlx::query_as(SELECT)
        .bind(account_id)
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(i64::MAX)
        .fetch_all(conn)
        .await?)
}

#[utoipa::path(get, path = "/provider-accounts/{account}/integrations", tag = "integrations",
    params(("account" = String, Path, description = "Provider account name"), PageQuery),
    responses((status = 200, description = "The account's integrations, by name", body = [IntegrationView]), ReadErrors))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    Query(page): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = page.page()?;
    let mut conn = state.db.acquire().await?;
    let account_id = authorize(&mut conn, &caller, &account, AccountAccess::Read, false).await?;
    let rows: Vec<IntegrationRow> = sqlx::query_as(SELECT)
        .bind(account_id)
        .bind(None::<String>)
        .bind(&page.after)
        .bind(page.fetch_limit())
        .fetch_all(&mut *conn)
        .await?;
    let views = rows.iter().map(IntegrationRow::view).collect();
    let path = format!("/api/v1/provider-accounts/{account}/integrations");
    let (headers, views) = page.finish(views, &path, |v: &IntegrationView| v.name.clone());
    Ok((headers, Json(views)))
}

#[utoipa::path(get, path = "/provider-accounts/{account}/integrations/{endpoint}", tag = "integrations",
    params(("account" = String, Path, description = "Provider account name"), ("endpoint" = String, Path, description = "Integration name")),
    responses((status = 200, description = "The integration; header auth values masked", body = IntegrationView), ReadErrors))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<Tagged<IntegrationView>> {
    let mut conn = state.db.acquire().await?;
    let account_id = authorize(&mut conn, &caller, &account, AccountAccess::Read, false).await?;
    Ok(fetch(&mut conn, account_id, &endpoint).await?.tagged())
}

#[utoipa::path(post, path = "/provider-accounts/{account}/integrations", tag = "integrations",
    params(("account" = String, Path, description = "Provider account name")), request_body = IntegrationInput,
    responses((status = 201, description = "Created", body = IntegrationView), WriteErrors))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    ApiJson(input): ApiJson<IntegrationInput>,
) -> ApiResult<impl IntoResponse> {
    let mut tx = state.db.begin().await?;
    let account_id = authorize(&mut tx, &caller, &account, AccountAccess::Manage, true).await?;
    insert(&mut tx, &state, (account_id, &account), &input).await?;
    let row = fetch(&mut tx, account_id, &input.name).await?;
    tx.commit().await?;
    let location = format!(
        "/api/v1/provider-accounts/{account}/integrations/{}",
        row.name
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        row.tagged(),
    ))
}

/// Creates integration `input` in account `(id, name)` inside `tx`.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    state: &AppState,
    (account_id, account): (Uuid, &str),
    input: &IntegrationInput,
) -> ApiResult<()> {
    input.validate()?;
    check_upstream_address(&state.upstream_deny, &input.base_url).await?;
    let id = Uuid::now_v7();
    let input = input.sealed(&state.keyring, id, None)?;
    sqlx::query(
        "insert into integrations (id, account_id, name, base_url) values ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(account_id)
    .bind(&input.name)
    .bind(&input.base_url)
    .execute(&mut **tx)
    .await?;
    write_fields(tx, id, &input).await?;
    record_change_touching(
        tx,
        "integration",
        &format!("{account}/{}", input.name),
        Operation::Create,
        Touched::account(account_id),
    )
    .await?;
    Ok(())
}

#[utoipa::path(put, path = "/provider-accounts/{account}/integrations/{endpoint}", tag = "integrations",
    params(("account" = String, Path, description = "Provider account name"), ("endpoint" = String, Path, description = "Integration name")), request_body = IntegrationInput,
    responses((status = 200, description = "Replaced", body = IntegrationView), WriteErrors))]
async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
    if_match: IfMatch,
    ApiJson(input): ApiJson<IntegrationInput>,
) -> ApiResult<Tagged<IntegrationView>> {
    write_replacement(&state, &caller, &account, &endpoint, &if_match, |_| {
        Ok(input)
    })
    .await
}

/// JSON merge patch (RFC 7396) over the integration as read, then written as a replacement.
#[utoipa::path(patch, path = "/provider-accounts/{account}/integrations/{endpoint}", tag = "integrations",
    params(("account" = String, Path, description = "Provider account name"), ("endpoint" = String, Path, description = "Integration name")), request_body(content = Object, content_type = "application/merge-patch+json", description = "JSON merge patch (RFC 7396) of the integration"),
    responses((status = 200, description = "Patched", body = IntegrationView), WriteErrors))]
async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
    if_match: IfMatch,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> ApiResult<Tagged<IntegrationView>> {
    write_replacement(&state, &caller, &account, &endpoint, &if_match, |current| {
        patched(
            current,
            &["id", "account", "created_at", "updated_at"],
            &patch,
        )
    })
    .await
}

async fn write_replacement(
    state: &AppState,
    caller: &Caller,
    account: &str,
    endpoint: &str,
    if_match: &IfMatch,
    build: impl FnOnce(&IntegrationView) -> ApiResult<IntegrationInput>,
) -> ApiResult<Tagged<IntegrationView>> {
    let mut tx = state.db.begin().await?;
    let account_id = authorize(&mut tx, caller, account, AccountAccess::Manage, true).await?;
    let row = fetch(&mut tx, account_id, endpoint).await?;
    if_match.check(row.updated_at)?;
    let input = build(&row.view())?;
    replace_stored(&mut tx, state, account, &row, &input).await?;
    let row = fetch(&mut tx, account_id, &input.name).await?;
    tx.commit().await?;
    Ok(row.tagged())
}

/// Replaces the stored integration `row` of `account` with `input` inside `tx`; masked secrets
/// keep their stored values.
pub(crate) async fn replace_stored(
    tx: &mut Transaction<'_, Postgres>,
    state: &AppState,
    account: &str,
    row: &IntegrationRow,
    input: &IntegrationInput,
) -> ApiResult<()> {
    input.validate()?;
    check_upstream_address(&state.upstream_deny, &input.base_url).await?;
    let stored = row.input();
    let input = input.sealed(&state.keyring, row.id, Some(stored.secret_fields()))?;
    let account_id: Uuid = sqlx::query_scalar(
        "update integrations set name = $2, base_url = $3, updated_at = now() where id = $1
         returning account_id",
    )
    .bind(row.id)
    .bind(&input.name)
    .bind(&input.base_url)
    .fetch_one(&mut **tx)
    .await?;
    write_fields(tx, row.id, &input).await?;
    record_change_touching(
        tx,
        "integration",
        &format!("{account}/{}", input.name),
        Operation::Update,
        Touched::account(account_id),
    )
    .await?;
    Ok(())
}

/// Writes everything but the name and base URL, shared by create and replace.
async fn write_fields(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    input: &IntegrationInput,
) -> ApiResult<()> {
    sqlx::query(
        "update integrations
         set header_auth = $2, custom_headers = $3, tls_reject_unauthorized = $4, tls_ca_certs = $5,
             max_request_body_bytes = $6, secret_custom_headers = $7
         where id = $1",
    )
    .bind(id)
    .bind(input.header_auth.as_ref().map(DbJson))
    .bind(DbJson(&input.custom_headers))
    .bind(input.tls.reject_unauthorized)
    .bind(&input.tls.ca_certs)
    // validate() keeps it within i64.
    .bind(input.max_request_body_bytes.map(|n| n as i64))
    .bind(&input.secret_custom_headers)
    .execute(&mut **tx)
    .await?;
    let subjects = resolve_all(tx, "authorized_subjects", &input.authorized_subjects).await?;
    sqlx::query("delete from authorized_subjects where integration_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for subject_id in subjects {
        sqlx::query("insert into authorized_subjects (integration_id, subject_id) values ($1, $2)")
            .bind(id)
            .bind(subject_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[utoipa::path(delete, path = "/provider-accounts/{account}/integrations/{endpoint}", tag = "integrations",
    params(("account" = String, Path, description = "Provider account name"), ("endpoint" = String, Path, description = "Integration name")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let account_id = authorize(&mut tx, &caller, &account, AccountAccess::Manage, true).await?;
    let row = fetch(&mut tx, account_id, &endpoint).await?;
    if_match.check(row.updated_at)?;
    remove(&mut tx, &account, &row).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the stored integration `row` of `account` inside `tx`.
pub(crate) async fn remove(
    tx: &mut Transaction<'_, Postgres>,
    account: &str,
    row: &IntegrationRow,
) -> ApiResult<()> {
    let account_id: Uuid =
        sqlx::query_scalar("delete from integrations where id = $1 returning account_id")
            .bind(row.id)
            .fetch_one(&mut **tx)
            .await?;
    record_change_touching(
        tx,
        "integration",
        &format!("{account}/{}", row.name),
        Operation::Delete,
        Touched::account(account_id),
    )
    .await?;
    Ok(())
}
