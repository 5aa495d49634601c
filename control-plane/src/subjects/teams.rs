//! `/api/v1/teams`: teams and their members. Any user may create a team and manages it; a team's
//! managers and admins manage its members; members and admins may read it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::names::validate_principal_name;
use shared::validation::FieldError;
use sqlx::PgConnection;
use sqlx::types::Json as DbJson;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::db::{Operation, Touched, record_change_touching, team_members};
use crate::http::error::{ApiError, ApiResult, ReadErrors, WriteErrors};
use crate::http::etag::{IfMatch, Tagged};
use crate::http::json::ApiJson;
use crate::http::paging::PageQuery;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, remove))
        .routes(routes!(read_members, replace_members, add_member))
        .routes(routes!(remove_member))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Member,
    Manager,
}

impl MemberRole {
    fn as_str(self) -> &'static str {
        match self {
            MemberRole::Member => "member",
            MemberRole::Manager => "manager",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The member's e-mail.
    pub user: String,
    #[serde(default = "default_role")]
    pub role: MemberRole,
}

fn default_role() -> MemberRole {
    MemberRole::Member
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TeamInput {
    name: String,
    #[serde(default)]
    members: Vec<Member>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    pub id: Uuid,
    pub subject: String,
    pub name: String,
    pub members: Vec<Member>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TeamRow {
    id: Uuid,
    name: String,
    members: DbJson<Vec<Member>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The caller's role in the team, if any.
    caller_role: Option<String>,
}

impl TeamRow {
    fn tagged(self) -> Tagged<TeamView> {
        Tagged(self.updated_at, self.view())
    }

    fn view(self) -> TeamView {
        TeamView {
            id: self.id,
            subject: format!("team:{}", self.name),
            name: self.name,
            members: self.members.0,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// `$1` caller id, `$2` team name or null for all, `$3` whether to include teams the caller is
/// not in, `$4` name to continue after, `$5` limit.
const SELECT: &str = "select t.id, t.name, t.created_at, t.updated_at,
        coalesce((select json_agg(json_build_object('user', u.name, 'role', m.role) order by u.name)
                  from team_members m join subjects u on u.id = m.user_id
                  where m.team_id = t.id), '[]') as members,
        (select role from team_members where team_id = t.id and user_id = $1) as caller_role
     from subjects t
     where t.kind = 'team' and ($2::text is null or t.name = $2)
       and ($3 or exists (select 1 from team_members where team_id = t.id and user_id = $1))
       and ($4::text is null or t.name > $4)
     order by t.name
     limit $5";

/// The team if the caller may see it (admin or member); with `manage`, only for its managers
/// and admins (others who can see it get 403, the rest 404).
async fn visible(
    conn: &mut PgConnection,
    caller: &Caller,
    name: &str,
    manage: bool,
) -> ApiResult<TeamRow> {
    let row: Option<TeamRow> = sqlx::query_as(SELECT)
        .bind(caller.subject_id)
        .bind(name)
        .bind(true)
        .bind(None::<String>)
        .bind(1_i64)
        .fetch_optional(conn)
        .await?;
    let row = row
        .filter(|r| caller.is_admin || r.caller_role.is_some())
        .ok_or(ApiError::NotFound("team"))?;
    if manage && !caller.is_admin && row.caller_role.as_deref() != Some("manager") {
        return Err(ApiError::Forbidden(
            "managing this team needs its manager role",
        ));
    }
    Ok(row)
}

#[utoipa::path(get, path = "/teams", tag = "subjects", params(PageQuery),
    responses((status = 200, description = "All teams for admins; the caller's teams otherwise", body = [TeamView]), ReadErrors))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<(HeaderMap, Json<Vec<TeamView>>)> {
    let page = page.page()?;
    let rows: Vec<TeamRow> = sqlx::query_as(SELECT)
        .bind(caller.subject_id)
        .bind(None::<String>)
        .bind(caller.is_admin)
        .bind(&page.after)
        .bind(page.fetch_limit())
        .fetch_all(&state.db)
        .await?;
    let views = rows.into_iter().map(TeamRow::view).collect();
    let (headers, views) = page.finish(views, "/api/v1/teams", |v: &TeamView| v.name.clone());
    Ok((headers, Json(views)))
}

#[utoipa::path(get, path = "/teams/{team}", tag = "subjects", params(("team" = String, Path, description = "Team name")),
    responses((status = 200, description = "The team and its members", body = TeamView), ReadErrors))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
) -> ApiResult<Tagged<TeamView>> {
    let mut conn = state.db.acquire().await?;
    Ok(visible(&mut conn, &caller, &team, false).await?.tagged())
}

#[utoipa::path(post, path = "/teams", tag = "subjects", request_body = TeamInput,
    responses((status = 201, description = "Created; the creator manages it", body = TeamView), WriteErrors))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<TeamInput>,
) -> ApiResult<impl IntoResponse> {
    if !caller.is_user() {
        return Err(ApiError::Forbidden("only users create teams"));
    }
    validate_principal_name(&input.name)?;
    let mut tx = state.db.begin().await?;
    let id = Uuid::now_v7();
    sqlx::query("insert into subjects (id, kind, name) values ($1, 'team', $2)")
        .bind(id)
        .bind(&input.name)
        .execute(&mut *tx)
        .await?;
    set_members(&mut tx, id, &input.members).await?;
    if !caller.is_admin {
        // The creator manages what it created.
        sqlx::query(
            "insert into team_members (team_id, user_id, role) values ($1, $2, 'manager')
             on conflict on constraint team_members_pkey do update set role = 'manager'",
        )
        .bind(id)
        .bind(caller.subject_id)
        .execute(&mut *tx)
        .await?;
    }
    // The members' callers gain the team.
    let touched = Touched::subjects(team_members(&mut tx, id).await?);
    record_change_touching(&mut tx, "team", &input.name, Operation::Create, touched).await?;
    let row: TeamRow = sqlx::query_as(SELECT)
        .bind(caller.subject_id)
        .bind(&input.name)
        .bind(true)
        .bind(None::<String>)
        .bind(1_i64)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, row.tagged()))
}

#[utoipa::path(delete, path = "/teams/{team}", tag = "subjects", params(("team" = String, Path, description = "Team name")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = visible(&mut tx, &caller, &team, true).await?;
    claim(&mut tx, &row, &if_match).await?;
    let touched = Touched::by_deleting_subject(&mut tx, row.id).await?;
    sqlx::query("delete from subjects where id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    record_change_touching(&mut tx, "team", &team, Operation::Delete, touched).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/teams/{team}/members", tag = "subjects", params(("team" = String, Path, description = "Team name")),
    responses((status = 200, description = "The members", body = [Member]), ReadErrors))]
async fn read_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
) -> ApiResult<Json<Vec<Member>>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        visible(&mut conn, &caller, &team, false).await?.members.0,
    ))
}

#[utoipa::path(put, path = "/teams/{team}/members", tag = "subjects", params(("team" = String, Path, description = "Team name")), request_body = [Member],
    responses((status = 200, description = "The new members", body = [Member]), WriteErrors))]
async fn replace_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
    if_match: IfMatch,
    ApiJson(members): ApiJson<Vec<Member>>,
) -> ApiResult<Json<Vec<Member>>> {
    change_members(
        &state,
        &caller,
        &team,
        &if_match,
        MemberChange::Replace(members),
    )
    .await
}

#[utoipa::path(post, path = "/teams/{team}/members", tag = "subjects", params(("team" = String, Path, description = "Team name")), request_body = Member,
    responses((status = 200, description = "The new members", body = [Member]), WriteErrors))]
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
    if_match: IfMatch,
    ApiJson(member): ApiJson<Member>,
) -> ApiResult<Json<Vec<Member>>> {
    change_members(&state, &caller, &team, &if_match, MemberChange::Add(member)).await
}

#[utoipa::path(delete, path = "/teams/{team}/members/{email}", tag = "subjects",
    params(("team" = String, Path, description = "Team name"), ("email" = String, Path, description = "The member's e-mail")),
    responses((status = 200, description = "The remaining members", body = [Member]), WriteErrors))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((team, email)): Path<(String, String)>,
    if_match: IfMatch,
) -> ApiResult<Json<Vec<Member>>> {
    change_members(
        &state,
        &caller,
        &team,
        &if_match,
        MemberChange::Remove(email),
    )
    .await
}

enum MemberChange {
    Replace(Vec<Member>),
    Add(Member),
    Remove(String),
}

/// Checks `If-Match` against what was read and, in the same step, locks the team row and marks
/// it modified: a concurrent writer that read the same version then finds it stale.
async fn claim(conn: &mut PgConnection, row: &TeamRow, if_match: &IfMatch) -> ApiResult<()> {
    if_match.check(row.updated_at)?;
    let claimed =
        sqlx::query("update subjects set updated_at = now() where id = $1 and updated_at = $2")
            .bind(row.id)
            .bind(row.updated_at)
            .execute(conn)
            .await?;
    if claimed.rows_affected() == 0 {
        return Err(ApiError::PreconditionFailed);
    }
    Ok(())
}

/// Authorises a member change, applies it, records it, and answers the new member list.
async fn change_members(
    state: &AppState,
    caller: &Caller,
    team: &str,
    if_match: &IfMatch,
    change: MemberChange,
) -> ApiResult<Json<Vec<Member>>> {
    let mut tx = state.db.begin().await?;
    let row = visible(&mut tx, caller, team, true).await?;
    claim(&mut tx, &row, if_match).await?;
    let id = row.id;
    // Users who join or leave: their callers' team lists change.
    let mut touched = team_members(&mut tx, id).await?;
    match change {
        MemberChange::Replace(members) => set_members(&mut tx, id, &members).await?,
        MemberChange::Add(member) => upsert_member(&mut tx, id, &member, "user").await?,
        MemberChange::Remove(email) => {
            let removed = sqlx::query(
                "delete from team_members m using subjects u
                 where m.team_id = $1 and m.user_id = u.id and u.kind = 'user' and u.name = $2",
            )
            .bind(id)
            .bind(&email)
            .execute(&mut *tx)
            .await?;
            if removed.rows_affected() == 0 {
                return Err(ApiError::NotFound("team member"));
            }
        }
    }
    touched.extend(team_members(&mut tx, id).await?);
    touched.sort_unstable();
    touched.dedup();
    let touched = Touched::subjects(touched);
    record_change_touching(&mut tx, "team_members", team, Operation::Update, touched).await?;
    // Read back without the visibility filter: a manager may have just removed itself.
    let row: TeamRow = sqlx::query_as(SELECT)
        .bind(caller.subject_id)
        .bind(team)
        .bind(true)
        .bind(None::<String>)
        .bind(1_i64)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(row.members.0))
}

async fn set_members(conn: &mut PgConnection, team_id: Uuid, members: &[Member]) -> ApiResult<()> {
    sqlx::query("delete from team_members where team_id = $1")
        .bind(team_id)
        .execute(&mut *conn)
        .await?;
    for (i, member) in members.iter().enumerate() {
        upsert_member(&mut *conn, team_id, member, &format!("members[{i}].user")).await?;
    }
    Ok(())
}

/// Adds or re-roles one member; an unknown user is a 422 at `field`.
async fn upsert_member(
    conn: &mut PgConnection,
    team_id: Uuid,
    member: &Member,
    field: &str,
) -> ApiResult<()> {
    let user: Option<Uuid> =
        sqlx::query_scalar("select id from subjects where kind = 'user' and name = $1")
            .bind(&member.user)
            .fetch_optional(&mut *conn)
            .await?;
    let user =
        user.ok_or_else(|| FieldError::new(field, format!("user {} does not exist", member.user)))?;
    sqlx::query(
        "insert into team_members (team_id, user_id, role) values ($1, $2, $3)
         on conflict on constraint team_members_pkey do update set role = excluded.role",
    )
    .bind(team_id)
    .bind(user)
    .bind(member.role.as_str())
    .execute(conn)
    .await?;
    Ok(())
}
