//! `GET /api/v1/data-planes`: the data planes that reported in lately and how far behind the
//! current config version each one is (RELIABILITY P11). Data planes write their row on every
//! heartbeat; this only reads. Admins only.

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::http::error::{ApiError, ApiResult, ReadErrors};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only data planes seen within this many seconds (default one hour): each restart is a
    /// new row, and stopped data planes should fall out of view.
    #[serde(default = "one_hour")]
    pub seen_within_seconds: i64,
}

fn one_hour() -> i64 {
    3600
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DataPlanes {
    /// The control plane's current config version.
    pub config_version: i64,
    pub data_planes: Vec<DataPlaneView>,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct DataPlaneView {
    pub id: Uuid,
    pub hostname: String,
    pub addr: String,
    pub applied_version: i64,
    /// Config versions not yet applied when it last reported in.
    pub versions_behind: i64,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

#[utoipa::path(get, path = "/data-planes", tag = "data-planes", params(ListQuery),
    responses((status = 200, description = "Data planes seen lately and their applied versions (admins only)", body = DataPlanes), ReadErrors))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<DataPlanes>> {
    if !caller.is_admin {
        return Err(ApiError::Forbidden("only admins may list data planes"));
    }
    let mut tx = state.db.begin().await?;
    let config_version: i64 = sqlx::query_scalar("select version from config_version")
        .fetch_one(&mut *tx)
        .await?;
    let data_planes = sqlx::query_as(
        "select id, hostname, addr, applied_version,
                greatest($1 - applied_version, 0) as versions_behind, started_at, last_seen_at
         from data_planes
         where last_seen_at > now() - make_interval(secs => $2)
         order by hostname, addr, started_at",
    )
    .bind(config_version)
    .bind(query.seen_within_seconds as f64)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(DataPlanes {
        config_version,
        data_planes,
    }))
}
