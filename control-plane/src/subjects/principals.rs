//! `/api/v1/users` and `/api/v1/virtual-accounts`: subjects that hold API keys. Only admins
//! manage them; a user may read itself.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::model::SubjectKind;
use shared::names::{validate_email, validate_principal_name};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::db::{Operation, Touched, record_change_touching};
use crate::http::error::{ApiError, ApiResult, ReadErrors, WriteErrors};
use crate::http::etag::{IfMatch, Tagged};
use crate::http::json::ApiJson;
use crate::http::paging::{Page, PageQuery};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(read_user, update_user, delete_user))
        .routes(routes!(list_virtual_accounts, create_virtual_account))
        .routes(routes!(read_virtual_account, delete_virtual_account))
}

/// A user or virtual account as read.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct PrincipalView {
    pub id: Uuid,
    /// `user:<email>` or `virtualaccount:<name>`.
    pub subject: String,
    pub name: String,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PrincipalView {
    fn tagged(self) -> Tagged<PrincipalView> {
        Tagged(self.updated_at, self)
    }
}

const SELECT: &str =
    "select id, kind || ':' || name as subject, name, is_admin, created_at, updated_at
     from subjects
     where kind = $1 and ($2::text is null or name = $2) and ($3::uuid is null or id = $3)
       and ($4::text is null or name > $4)
     order by name
     limit $5";

async fn fetch_all(
    conn: &mut PgConnection,
    kind: SubjectKind,
    name: Option<&str>,
    only: Option<Uuid>,
) -> sqlx::Result<Vec<PrincipalView>> {
    fetch_page(conn, kind, name, only, &Page::single()).await
}

async fn fetch_page(
    conn: &mut PgConnection,
    kind: SubjectKind,
    name: Option<&str>,
    only: Option<Uuid>,
    page: &Page,
) -> sqlx::Result<Vec<PrincipalView>> {
    sqlx::query_as(SELECT)
        .bind(kind.as_str())
        .bind(name)
        .bind(only)
        .bind(&page.after)
        .bind(page.fetch_limit())
        .fetch_all(conn)
        .await
}

fn require_admin(caller: &Caller) -> ApiResult<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only admins manage users and virtual accounts",
        ))
    }
}

/// Admins see every principal of `kind`; anyone else sees only itself.
async fn list(
    state: &AppState,
    caller: &Caller,
    kind: SubjectKind,
    page: PageQuery,
    path: &str,
) -> ApiResult<(HeaderMap, Json<Vec<PrincipalView>>)> {
    let page = page.page()?;
    let only = (!caller.is_admin).then_some(caller.subject_id);
    let mut conn = state.db.acquire().await?;
    let views = fetch_page(&mut conn, kind, None, only, &page).await?;
    let (headers, views) = page.finish(views, path, |v: &PrincipalView| v.name.clone());
    Ok((headers, Json(views)))
}

async fn read(
    state: &AppState,
    caller: &Caller,
    kind: SubjectKind,
    name: &str,
) -> ApiResult<Tagged<PrincipalView>> {
    let only = (!caller.is_admin).then_some(caller.subject_id);
    let mut conn = state.db.acquire().await?;
    let found = fetch_all(&mut conn, kind, Some(name), only).await?.pop();
    found
        .map(PrincipalView::tagged)
        .ok_or(ApiError::NotFound("subject"))
}

async fn create(
    state: &AppState,
    caller: &Caller,
    kind: SubjectKind,
    name: &str,
    is_admin: bool,
) -> ApiResult<impl IntoResponse + use<>> {
    require_admin(caller)?;
    let mut tx = state.db.begin().await?;
    let id = Uuid::now_v7();
    sqlx::query("insert into subjects (id, kind, name, is_admin) values ($1, $2, $3, $4)")
        .bind(id)
        .bind(kind.as_str())
        .bind(name)
        .bind(is_admin)
        .execute(&mut *tx)
        .await?;
    let touched = Touched::subjects(vec![id]);
    record_change_touching(&mut tx, kind.as_str(), name, Operation::Create, touched).await?;
    let view = fetch_all(&mut tx, kind, Some(name), None).await?.pop();
    tx.commit().await?;
    let view = view.ok_or(ApiError::NotFound("subject"))?;
    Ok((StatusCode::CREATED, view.tagged()))
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    kind: SubjectKind,
    name: &str,
    if_match: &IfMatch,
) -> ApiResult<StatusCode> {
    require_admin(caller)?;
    let mut tx = state.db.begin().await?;
    let id = lock_current(&mut tx, kind, name, if_match).await?;
    let touched = Touched::by_deleting_subject(&mut tx, id).await?;
    let deleted: Option<bool> =
        sqlx::query_scalar("delete from subjects where kind = $1 and name = $2 returning is_admin")
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    match deleted {
        None => return Err(ApiError::NotFound("subject")),
        Some(true) => ensure_an_admin_remains(&mut tx).await?,
        Some(false) => {}
    }
    record_change_touching(&mut tx, kind.as_str(), name, Operation::Delete, touched).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Locks the principal's row, checks `If-Match` against it and answers its id.
async fn lock_current(
    conn: &mut PgConnection,
    kind: SubjectKind,
    name: &str,
    if_match: &IfMatch,
) -> ApiResult<Uuid> {
    let current: Option<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "select id, updated_at from subjects where kind = $1 and name = $2 for update",
    )
    .bind(kind.as_str())
    .bind(name)
    .fetch_optional(conn)
    .await?;
    let (id, updated_at) = current.ok_or(ApiError::NotFound("subject"))?;
    if_match.check(updated_at)?;
    Ok(id)
}

/// Nobody could manage anything any more: refuse.
async fn ensure_an_admin_remains(conn: &mut PgConnection) -> ApiResult<()> {
    let admins: i64 = sqlx::query_scalar("select count(*) from subjects where is_admin")
        .fetch_one(conn)
        .await?;
    if admins == 0 {
        return Err(ApiError::Conflict(
            "the last admin cannot be removed or demoted".into(),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserInput {
    email: String,
    #[serde(default)]
    is_admin: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    is_admin: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct VirtualAccountInput {
    name: String,
}

#[utoipa::path(get, path = "/users", tag = "subjects", params(PageQuery),
    responses((status = 200, description = "All users for admins; the caller alone otherwise", body = [PrincipalView]), ReadErrors))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<(HeaderMap, Json<Vec<PrincipalView>>)> {
    list(&state, &caller, SubjectKind::User, page, "/api/v1/users").await
}

#[utoipa::path(get, path = "/users/{email}", tag = "subjects", params(("email" = String, Path, description = "The user's e-mail")),
    responses((status = 200, description = "The user", body = PrincipalView), ReadErrors))]
async fn read_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> ApiResult<Tagged<PrincipalView>> {
    read(&state, &caller, SubjectKind::User, &email).await
}

#[utoipa::path(post, path = "/users", tag = "subjects", request_body = UserInput,
    responses((status = 201, description = "Created (admins only)", body = PrincipalView), WriteErrors))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<UserInput>,
) -> ApiResult<impl IntoResponse> {
    validate_email(&input.email)?;
    create(
        &state,
        &caller,
        SubjectKind::User,
        &input.email,
        input.is_admin,
    )
    .await
}

#[utoipa::path(patch, path = "/users/{email}", tag = "subjects", params(("email" = String, Path, description = "The user's e-mail")), request_body = UserPatch,
    responses((status = 200, description = "Updated (admins only)", body = PrincipalView), WriteErrors))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
    if_match: IfMatch,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<Tagged<PrincipalView>> {
    require_admin(&caller)?;
    let mut tx = state.db.begin().await?;
    let id = lock_current(&mut tx, SubjectKind::User, &email, &if_match).await?;
    let updated = sqlx::query(
        "update subjects set is_admin = $2, updated_at = now() where kind = 'user' and name = $1",
    )
    .bind(&email)
    .bind(patch.is_admin)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::NotFound("subject"));
    }
    ensure_an_admin_remains(&mut tx).await?;
    let touched = Touched::subjects(vec![id]);
    record_change_touching(&mut tx, "user", &email, Operation::Update, touched).await?;
    let view = fetch_all(&mut tx, SubjectKind::User, Some(&email), None)
        .await?
        .pop();
    tx.commit().await?;
    view.map(PrincipalView::tagged)
        .ok_or(ApiError::NotFound("subject"))
}

#[utoipa::path(delete, path = "/users/{email}", tag = "subjects", params(("email" = String, Path, description = "The user's e-mail")),
    responses((status = 204, description = "Deleted with its keys (admins only)"), WriteErrors))]
async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    delete(&state, &caller, SubjectKind::User, &email, &if_match).await
}

#[utoipa::path(get, path = "/virtual-accounts", tag = "subjects", params(PageQuery),
    responses((status = 200, description = "All virtual accounts for admins", body = [PrincipalView]), ReadErrors))]
async fn list_virtual_accounts(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<(HeaderMap, Json<Vec<PrincipalView>>)> {
    let path = "/api/v1/virtual-accounts";
    list(&state, &caller, SubjectKind::VirtualAccount, page, path).await
}

#[utoipa::path(get, path = "/virtual-accounts/{name}", tag = "subjects", params(("name" = String, Path, description = "Virtual account name")),
    responses((status = 200, description = "The virtual account", body = PrincipalView), ReadErrors))]
async fn read_virtual_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Tagged<PrincipalView>> {
    read(&state, &caller, SubjectKind::VirtualAccount, &name).await
}

#[utoipa::path(post, path = "/virtual-accounts", tag = "subjects", request_body = VirtualAccountInput,
    responses((status = 201, description = "Created (admins only)", body = PrincipalView), WriteErrors))]
async fn create_virtual_account(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<VirtualAccountInput>,
) -> ApiResult<impl IntoResponse> {
    validate_principal_name(&input.name)?;
    create(
        &state,
        &caller,
        SubjectKind::VirtualAccount,
        &input.name,
        false,
    )
    .await
}

#[utoipa::path(delete, path = "/virtual-accounts/{name}", tag = "subjects", params(("name" = String, Path, description = "Virtual account name")),
    responses((status = 204, description = "Deleted with its keys (admins only)"), WriteErrors))]
async fn delete_virtual_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    delete(
        &state,
        &caller,
        SubjectKind::VirtualAccount,
        &name,
        &if_match,
    )
    .await
}
