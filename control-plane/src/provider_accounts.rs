//! `/api/v1/provider-accounts`: create, list, read, replace, patch and delete provider accounts,
//! and their collaborators.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::crypto::{self, Keyring};
use shared::headers::validate_header_map;
use shared::model::{EndpointType, HeaderAuth, Role, Subject};
use shared::names::validate_account_name;
use shared::validation::FieldError;
use sqlx::types::Json as DbJson;
use sqlx::{PgConnection, Postgres, Transaction};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{ACCESS_LEVEL_SQL, AccountAccess, Caller};
use crate::db::{Operation, Touched, record_change_touching};
use crate::http::error::{ApiError, ApiResult, ReadErrors, WriteErrors};
use crate::http::etag::{IfMatch, Tagged};
use crate::http::json::ApiJson;
use crate::http::paging::PageQuery;
use crate::http::patch::patched;
use crate::secrets::{
    SecretValues, WithSecrets, masked_custom_headers, seal_for_store, validate_secret_names,
};
use crate::subjects::resolve_all;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, replace, patch, delete))
        .routes(routes!(read_collaborators, replace_collaborators))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Collaborator {
    #[schema(value_type = String, example = "team:ml")]
    pub subject: Subject,
    pub role: Role,
}

/// A provider account as written by a caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub name: String,
    #[serde(default)]
    pub endpoint_type: Option<EndpointType>,
    #[serde(default)]
    pub header_auth: Option<HeaderAuth>,
    #[serde(default)]
    pub custom_headers: BTreeMap<String, String>,
    /// Names of custom headers whose values are secret: sealed at rest, masked on reads.
    #[serde(default)]
    pub secret_custom_headers: Vec<String>,
    #[serde(default)]
    pub collaborators: Vec<Collaborator>,
}

impl AccountInput {
    pub(crate) fn validate(&self) -> Result<(), FieldError> {
        validate_account_name(&self.name)?;
        if let Some(auth) = &self.header_auth {
            auth.validate()?;
        }
        validate_header_map("custom_headers", &self.custom_headers)?;
        validate_secret_names(&self.custom_headers, &self.secret_custom_headers)
    }
}

/// A provider account as read: secrets masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub name: String,
    pub endpoint_type: Option<EndpointType>,
    pub header_auth: Option<HeaderAuth>,
    pub custom_headers: BTreeMap<String, String>,
    pub secret_custom_headers: Vec<String>,
    pub collaborators: Vec<Collaborator>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: Uuid,
    name: String,
    endpoint_type: Option<String>,
    header_auth: Option<DbJson<HeaderAuth>>,
    custom_headers: DbJson<BTreeMap<String, String>>,
    secret_custom_headers: Vec<String>,
    collaborators: DbJson<Vec<Collaborator>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    level: Option<i32>,
}

impl AccountRow {
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    /// The account as an input, its secrets as stored (sealed).
    pub(crate) fn input(&self) -> AccountInput {
        AccountInput {
            name: self.name.clone(),
            endpoint_type: self.endpoint_type.as_deref().and_then(EndpointType::parse),
            header_auth: self.header_auth.as_ref().map(|a| a.0.clone()),
            custom_headers: self.custom_headers.0.clone(),
            secret_custom_headers: self.secret_custom_headers.clone(),
            collaborators: self.collaborators.0.clone(),
        }
    }

    fn tagged(self) -> Tagged<AccountView> {
        Tagged(self.updated_at, self.view())
    }

    fn view(&self) -> AccountView {
        AccountView {
            id: self.id,
            name: self.name.clone(),
            endpoint_type: self.endpoint_type.as_deref().and_then(EndpointType::parse),
            header_auth: self.header_auth.as_ref().map(|a| a.0.masked()),
            custom_headers: masked_custom_headers(
                &self.custom_headers.0,
                &self.secret_custom_headers,
            ),
            secret_custom_headers: self.secret_custom_headers.clone(),
            collaborators: self.collaborators.0.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Columns of [`AccountRow`]; `$1` is the caller's subject id.
fn select_accounts(filter: &str) -> String {
    format!(
        "select a.id, a.name, a.endpoint_type, a.header_auth, a.custom_headers, a.secret_custom_headers,
                a.created_at, a.updated_at,
                coalesce((select json_agg(json_build_object('subject', s.kind || ':' || s.name, 'role', c.role)
                                          order by s.kind, s.name)
                          from collaborators c join subjects s on s.id = c.subject_id
                          where c.account_id = a.id), '[]') as collaborators,
                {ACCESS_LEVEL_SQL} as level
         from provider_accounts a
         {filter}"
    )
}

/// The account named `name`, whatever the caller's access (which the row's `level` tells).
async fn fetch(
    conn: &mut PgConnection,
    caller: &Caller,
    name: &str,
    lock: bool,
) -> ApiResult<AccountRow> {
    find(conn, caller, name, lock)
        .await?
        .ok_or(ApiError::NotFound("provider account"))
}

/// [`fetch`], with `None` for an account that does not exist.
async fn find(
    conn: &mut PgConnection,
    caller: &Caller,
    name: &str,
    lock: bool,
) -> ApiResult<Option<AccountRow>> {
    let sql = select_accounts(if lock {
        "where a.name = $2 for update of a"
    } else {
        "where a.name = $2"
    });
    Ok(sqlx::query_as(&sql)
        .bind(caller.subject_id)
        .bind(name)
        .fetch_optional(conn)
        .await?)
}

/// The account named `name`, locked, if it exists and `caller` may manage it; `None` when it
/// does not exist (and so may be created).
pub(crate) async fn find_managed(
    conn: &mut PgConnection,
    caller: &Caller,
    name: &str,
) -> ApiResult<Option<AccountRow>> {
    let Some(row) = find(conn, caller, name, true).await? else {
        return Ok(None);
    };
    match AccountAccess::from_level(caller.is_admin, row.level) {
        None => Err(ApiError::NotFound("provider account")),
        Some(AccountAccess::Read) => Err(manage_forbidden()),
        Some(AccountAccess::Manage) => Ok(Some(row)),
    }
}

fn manage_forbidden() -> ApiError {
    ApiError::Forbidden("managing this provider account needs the provider-account-manager role")
}

/// The account named `name` if `caller` may see it, with what the caller may do with it.
/// An account the caller may not see is "not found" (SPEC "Who may manage").
async fn load_visible(
    conn: &mut PgConnection,
    caller: &Caller,
    name: &str,
    lock: bool,
) -> ApiResult<(AccountRow, AccountAccess)> {
    let row = fetch(conn, caller, name, lock).await?;
    let access = AccountAccess::from_level(caller.is_admin, row.level)
        .ok_or(ApiError::NotFound("provider account"))?;
    Ok((row, access))
}

/// The account, locked, for a write by a manager whose `If-Match` (if any) is current.
async fn load_managed(
    conn: &mut PgConnection,
    caller: &Caller,
    name: &str,
    if_match: &IfMatch,
) -> ApiResult<AccountRow> {
    let (row, access) = load_visible(conn, caller, name, true).await?;
    if access < AccountAccess::Manage {
        return Err(manage_forbidden());
    }
    if_match.check(row.updated_at)?;
    Ok(row)
}

/// The id of account `name` and the caller's access, failing unless it reaches `needed`. With
/// `lock`, the account row is locked for the rest of the transaction.
pub async fn authorize(
    conn: &mut PgConnection,
    caller: &Caller,
    name: &str,
    needed: AccountAccess,
    lock: bool,
) -> ApiResult<Uuid> {
    let (row, access) = load_visible(conn, caller, name, lock).await?;
    if access < needed {
        return Err(manage_forbidden());
    }
    Ok(row.id)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only accounts of this endpoint type.
    endpoint_type: Option<EndpointType>,
}

#[utoipa::path(get, path = "/provider-accounts", tag = "provider-accounts",
    params(ListQuery, PageQuery),
    responses((status = 200, description = "The accounts the caller may see, by name", body = [AccountView]), ReadErrors))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
    Query(page): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = page.page()?;
    let sql = select_accounts(&format!(
        "where ($2 or {ACCESS_LEVEL_SQL} is not null)
           and ($3::text is null or a.endpoint_type = $3)
           and ($4::text is null or a.name > $4)
         order by a.name
         limit $5"
    ));
    let rows: Vec<AccountRow> = sqlx::query_as(&sql)
        .bind(caller.subject_id)
        .bind(caller.is_admin)
        .bind(query.endpoint_type.map(EndpointType::as_str))
        .bind(&page.after)
        .bind(page.fetch_limit())
        .fetch_all(&state.db)
        .await?;
    let views = rows.iter().map(AccountRow::view).collect();
    let (headers, views) = page.finish(views, "/api/v1/provider-accounts", |v: &AccountView| {
        v.name.clone()
    });
    Ok((headers, Json(views)))
}

#[utoipa::path(get, path = "/provider-accounts/{account}", tag = "provider-accounts",
    params(("account" = String, Path, description = "Provider account name")),
    responses((status = 200, description = "The account; header auth values masked", body = AccountView), ReadErrors))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
) -> ApiResult<Tagged<AccountView>> {
    let mut conn = state.db.acquire().await?;
    let (row, _) = load_visible(&mut conn, &caller, &account, false).await?;
    Ok(row.tagged())
}

#[utoipa::path(post, path = "/provider-accounts", tag = "provider-accounts",
    request_body = AccountInput,
    responses((status = 201, description = "Created; the caller manages it", body = AccountView), WriteErrors))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<AccountInput>,
) -> ApiResult<impl IntoResponse> {
    let mut tx = state.db.begin().await?;
    insert(&mut tx, &state.keyring, &caller, &input).await?;
    let row = fetch(&mut tx, &caller, &input.name, false).await?;
    tx.commit().await?;
    let location = format!("/api/v1/provider-accounts/{}", row.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        row.tagged(),
    ))
}

/// Creates the account `input` describes, inside `tx`; a non-admin creator becomes its manager.
/// Returns its id.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    keyring: &Keyring,
    caller: &Caller,
    input: &AccountInput,
) -> ApiResult<Uuid> {
    if !caller.is_user() {
        return Err(ApiError::Forbidden("only users create provider accounts"));
    }
    input.validate()?;
    let id = Uuid::now_v7();
    let SecretValues {
        header_auth,
        custom_headers,
    } = seal_for_store(keyring, crypto::ACCOUNTS, id, input.secret_fields(), None)?;
    sqlx::query(
        "insert into provider_accounts
             (id, name, endpoint_type, header_auth, custom_headers, secret_custom_headers)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&input.name)
    .bind(input.endpoint_type.map(EndpointType::as_str))
    .bind(header_auth.map(DbJson))
    .bind(DbJson(&custom_headers))
    .bind(&input.secret_custom_headers)
    .execute(&mut **tx)
    .await?;
    set_collaborators(tx, id, &input.collaborators).await?;
    // The creator manages what it created, unless it listed itself otherwise.
    if !caller.is_admin {
        sqlx::query(
            "insert into collaborators (account_id, subject_id, role)
             values ($1, $2, 'provider-account-manager') on conflict do nothing",
        )
        .bind(id)
        .bind(caller.subject_id)
        .execute(&mut **tx)
        .await?;
    }
    let touched = Touched::account(id);
    record_change_touching(
        tx,
        "provider_account",
        &input.name,
        Operation::Create,
        touched,
    )
    .await?;
    Ok(id)
}

#[utoipa::path(put, path = "/provider-accounts/{account}", tag = "provider-accounts",
    params(("account" = String, Path, description = "Provider account name")), request_body = AccountInput,
    responses((status = 200, description = "Replaced", body = AccountView), WriteErrors))]
async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    if_match: IfMatch,
    ApiJson(input): ApiJson<AccountInput>,
) -> ApiResult<Tagged<AccountView>> {
    write_replacement(&state, &caller, &account, &if_match, |_| Ok(input)).await
}

/// JSON merge patch (RFC 7396) over the account as read, then the same path as a replacement.
#[utoipa::path(patch, path = "/provider-accounts/{account}", tag = "provider-accounts",
    params(("account" = String, Path, description = "Provider account name")), request_body(content = Object, content_type = "application/merge-patch+json", description = "JSON merge patch (RFC 7396) of the account"),
    responses((status = 200, description = "Patched", body = AccountView), WriteErrors))]
async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    if_match: IfMatch,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> ApiResult<Tagged<AccountView>> {
    write_replacement(&state, &caller, &account, &if_match, |current| {
        patched(current, &["id", "created_at", "updated_at"], &patch)
    })
    .await
}

/// Replaces account `name` with what `build` makes of its current (masked) view.
async fn write_replacement(
    state: &AppState,
    caller: &Caller,
    name: &str,
    if_match: &IfMatch,
    build: impl FnOnce(&AccountView) -> ApiResult<AccountInput>,
) -> ApiResult<Tagged<AccountView>> {
    let mut tx = state.db.begin().await?;
    let row = load_managed(&mut tx, caller, name, if_match).await?;
    let input = build(&row.view())?;
    replace_stored(&mut tx, &state.keyring, &row, &input).await?;
    // Read back regardless of access: a manager may have just removed itself.
    let row = fetch(&mut tx, caller, &input.name, false).await?;
    tx.commit().await?;
    Ok(row.tagged())
}

/// Replaces the stored account `row` with `input` inside `tx`; masked secrets keep their
/// stored values.
pub(crate) async fn replace_stored(
    tx: &mut Transaction<'_, Postgres>,
    keyring: &Keyring,
    row: &AccountRow,
    input: &AccountInput,
) -> ApiResult<()> {
    input.validate()?;
    let stored = row.input();
    let SecretValues {
        header_auth,
        custom_headers,
    } = seal_for_store(
        keyring,
        crypto::ACCOUNTS,
        row.id,
        input.secret_fields(),
        Some(stored.secret_fields()),
    )?;
    sqlx::query(
        "update provider_accounts
         set name = $2, endpoint_type = $3, header_auth = $4, custom_headers = $5,
             secret_custom_headers = $6, updated_at = now()
         where id = $1",
    )
    .bind(row.id)
    .bind(&input.name)
    .bind(input.endpoint_type.map(EndpointType::as_str))
    .bind(header_auth.map(DbJson))
    .bind(DbJson(&custom_headers))
    .bind(&input.secret_custom_headers)
    .execute(&mut **tx)
    .await?;
    set_collaborators(tx, row.id, &input.collaborators).await?;
    let touched = Touched::account(row.id);
    record_change_touching(
        tx,
        "provider_account",
        &input.name,
        Operation::Update,
        touched,
    )
    .await?;
    Ok(())
}

#[utoipa::path(delete, path = "/provider-accounts/{account}", tag = "provider-accounts",
    params(("account" = String, Path, description = "Provider account name")),
    responses((status = 204, description = "Deleted with its integrations"), WriteErrors))]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = load_managed(&mut tx, &caller, &account, &if_match).await?;
    sqlx::query("delete from provider_accounts where id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    let touched = Touched::account(row.id);
    record_change_touching(
        &mut tx,
        "provider_account",
        &account,
        Operation::Delete,
        touched,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/provider-accounts/{account}/collaborators", tag = "provider-accounts",
    params(("account" = String, Path, description = "Provider account name")),
    responses((status = 200, description = "The account's collaborators", body = [Collaborator]), ReadErrors))]
async fn read_collaborators(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
) -> ApiResult<Json<Vec<Collaborator>>> {
    let mut conn = state.db.acquire().await?;
    let (row, _) = load_visible(&mut conn, &caller, &account, false).await?;
    Ok(Json(row.collaborators.0))
}

#[utoipa::path(put, path = "/provider-accounts/{account}/collaborators", tag = "provider-accounts",
    params(("account" = String, Path, description = "Provider account name")), request_body = [Collaborator],
    responses((status = 200, description = "Replaced", body = [Collaborator]), WriteErrors))]
async fn replace_collaborators(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    ApiJson(collaborators): ApiJson<Vec<Collaborator>>,
) -> ApiResult<Json<Vec<Collaborator>>> {
    let mut tx = state.db.begin().await?;
    let id = authorize(&mut tx, &caller, &account, AccountAccess::Manage, true).await?;
    set_collaborators(&mut tx, id, &collaborators).await?;
    sqlx::query("update provider_accounts set updated_at = now() where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let touched = Touched::account(id);
    record_change_touching(
        &mut tx,
        "collaborators",
        &account,
        Operation::Update,
        touched,
    )
    .await?;
    let row = fetch(&mut tx, &caller, &account, false).await?;
    tx.commit().await?;
    Ok(Json(row.collaborators.0))
}

/// Replaces the account's collaborators; unknown subjects are a 422 naming the entry.
async fn set_collaborators(
    tx: &mut Transaction<'_, Postgres>,
    account_id: Uuid,
    collaborators: &[Collaborator],
) -> ApiResult<()> {
    let subjects: Vec<Subject> = collaborators.iter().map(|c| c.subject.clone()).collect();
    let ids = resolve_all(tx, "collaborators", &subjects).await?;
    sqlx::query("delete from collaborators where account_id = $1")
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    for (id, collaborator) in ids.iter().zip(collaborators) {
        sqlx::query("insert into collaborators (account_id, subject_id, role) values ($1, $2, $3)")
            .bind(account_id)
            .bind(id)
            .bind(collaborator.role.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
