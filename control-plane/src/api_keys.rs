//! `/api/v1/api-keys`: keys for users (issued by themselves or an admin) and virtual accounts
//! (issued by an admin). The secret is returned once, at creation; only its digest is stored.
//! Deleting a key revokes it; revocation reaches every data plane through the usual propagation.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::api_key;
use shared::model::{Subject, SubjectKind};
use shared::validation::FieldError;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::bootstrap::insert_key;
use crate::db::{Operation, Touched, record_change_touching};
use crate::http::error::{ApiError, ApiResult, ReadErrors, WriteErrors};
use crate::http::etag::{IfMatch, Tagged};
use crate::http::json::ApiJson;
use crate::http::paging::PageQuery;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, revoke))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyInput {
    name: String,
    /// The owner; the caller itself when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "virtualaccount:ci-bot")]
    owner: Option<Subject>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    pub owner: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Updated at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl KeyView {
    /// A key changes once: when it is revoked.
    fn tagged(self) -> Tagged<KeyView> {
        Tagged(self.revoked_at.unwrap_or(self.created_at), self)
    }
}

/// The answer to a creation: the view plus the secret, this once.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedKey {
    #[serde(flatten)]
    key: KeyView,
    secret: String,
}

/// `$1` caller id, `$2` caller is admin, `$3` key id or null, `$4` id to continue after,
/// `$5` limit. Ids are UUIDv7, so id order is creation order.
const SELECT: &str =
    "select k.id, k.name, s.kind || ':' || s.name as owner, k.created_at, k.expires_at,
        k.revoked_at, k.last_used_at
     from api_keys k join subjects s on s.id = k.subject_id
     where ($2 or k.subject_id = $1) and ($3::uuid is null or k.id = $3)
       and ($4::uuid is null or k.id > $4)
     order by k.id
     limit $5";

#[utoipa::path(get, path = "/api-keys", tag = "api-keys", params(PageQuery),
    responses((status = 200, description = "All keys for admins; the caller's own otherwise. Never secrets.", body = [KeyView]), ReadErrors))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<(HeaderMap, Json<Vec<KeyView>>)> {
    let page = page.page()?;
    let after = page
        .after
        .as_deref()
        .map(|id| {
            id.parse::<Uuid>()
                .map_err(|_| FieldError::new("page_token", "is not a token this API issued"))
        })
        .transpose()?;
    let keys: Vec<KeyView> = sqlx::query_as(SELECT)
        .bind(caller.subject_id)
        .bind(caller.is_admin)
        .bind(None::<Uuid>)
        .bind(after)
        .bind(page.fetch_limit())
        .fetch_all(&state.db)
        .await?;
    let (headers, keys) = page.finish(keys, "/api/v1/api-keys", |k: &KeyView| k.id.to_string());
    Ok((headers, Json(keys)))
}

#[utoipa::path(get, path = "/api-keys/{id}", tag = "api-keys", params(("id" = Uuid, Path, description = "Key id")),
    responses((status = 200, description = "The key, without its secret", body = KeyView), ReadErrors))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Tagged<KeyView>> {
    let key: Option<KeyView> = sqlx::query_as(SELECT)
        .bind(caller.subject_id)
        .bind(caller.is_admin)
        .bind(id)
        .bind(None::<Uuid>)
        .bind(1_i64)
        .fetch_optional(&state.db)
        .await?;
    key.map(KeyView::tagged)
        .ok_or(ApiError::NotFound("API key"))
}

#[utoipa::path(post, path = "/api-keys", tag = "api-keys", request_body = KeyInput,
    responses((status = 201, description = "Created; `secret` is shown this once", body = CreatedKey), WriteErrors))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<KeyInput>,
) -> ApiResult<impl IntoResponse> {
    if input.name.trim().is_empty() || input.name.len() > 100 {
        return Err(FieldError::new("name", "must be 1 to 100 characters").into());
    }
    if input.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(FieldError::new("expires_at", "must be in the future").into());
    }
    let mut tx = state.db.begin().await?;
    let owner_id = match &input.owner {
        None if caller.is_user() || caller.is_admin => caller.subject_id,
        None => {
            return Err(ApiError::Forbidden(
                "virtual accounts get keys from an admin",
            ));
        }
        Some(owner) => {
            if owner.kind == SubjectKind::Team {
                return Err(
                    FieldError::new("owner", "keys belong to a user or a virtual account").into(),
                );
            }
            let id: Option<Uuid> =
                sqlx::query_scalar("select id from subjects where kind = $1 and name = $2")
                    .bind(owner.kind.as_str())
                    .bind(&owner.name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let id = id.ok_or_else(|| {
                FieldError::new("owner", format!("subject {owner} does not exist"))
            })?;
            if id != caller.subject_id && !caller.is_admin {
                return Err(ApiError::Forbidden("only admins issue keys for others"));
            }
            id
        }
    };
    let key = api_key::generate();
    let id = insert_key(&mut tx, owner_id, &input.name, &key.digest).await?;
    sqlx::query("update api_keys set expires_at = $2 where id = $1")
        .bind(id)
        .bind(input.expires_at)
        .execute(&mut *tx)
        .await?;
    record_change_touching(
        &mut tx,
        "api_key",
        &id.to_string(),
        Operation::Create,
        Touched::subjects(vec![owner_id]),
    )
    .await?;
    let view: KeyView = sqlx::query_as(SELECT)
        .bind(caller.subject_id)
        .bind(true)
        .bind(id)
        .bind(None::<Uuid>)
        .bind(1_i64)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: view,
            secret: key.secret,
        }),
    ))
}

#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", params(("id" = Uuid, Path, description = "Key id")),
    responses((status = 204, description = "Revoked, on every data plane within the propagation bound"), WriteErrors))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let current: Option<DateTime<Utc>> = sqlx::query_scalar(
        "select coalesce(revoked_at, created_at) from api_keys
         where id = $1 and ($3 or subject_id = $2) for update",
    )
    .bind(id)
    .bind(caller.subject_id)
    .bind(caller.is_admin)
    .fetch_optional(&mut *tx)
    .await?;
    if_match.check(current.ok_or(ApiError::NotFound("API key"))?)?;
    let owner: Option<Uuid> = sqlx::query_scalar(
        "update api_keys set revoked_at = coalesce(revoked_at, now())
         where id = $1 and ($3 or subject_id = $2)
         returning subject_id",
    )
    .bind(id)
    .bind(caller.subject_id)
    .bind(caller.is_admin)
    .fetch_optional(&mut *tx)
    .await?;
    let owner = owner.ok_or(ApiError::NotFound("API key"))?;
    record_change_touching(
        &mut tx,
        "api_key",
        &id.to_string(),
        Operation::Delete,
        Touched::subjects(vec![owner]),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
