//! `/api/v1/traces`: the request logs the data planes write, filtered and paged, visible only for
//! accounts the caller may manage or use (SPEC §3) — and their retention.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use shared::request_log::RequestRecord;
use shared::validation::FieldError;
use sqlx::PgPool;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{ACCESS_LEVEL_SQL, Caller};
use crate::http::error::{ApiError, ApiResult, ReadErrors};
use crate::http::paging::PageQuery;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TraceFilter {
    /// Provider account name.
    account: Option<String>,
    /// Integration name.
    endpoint: Option<String>,
    /// Calling subject, such as `user:ada@example.com`.
    subject: Option<String>,
    /// An exact status (`404`) or a class (`5xx`).
    status: Option<String>,
    /// Only requests started at or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only requests started before this instant (RFC 3339).
    until: Option<DateTime<Utc>>,
}

/// Inclusive-exclusive status bounds from `404` or `4xx`.
fn status_range(status: &str) -> Result<(i16, i16), FieldError> {
    let err = || {
        FieldError::new(
            "status",
            "must be a status such as 404 or a class such as 4xx",
        )
    };
    if let Some(class) = status.strip_suffix("xx") {
        let class: i16 = class.parse().map_err(|_| err())?;
        if !(1..=5).contains(&class) {
            return Err(err());
        }
        return Ok((class * 100, class * 100 + 100));
    }
    let exact: i16 = status.parse().map_err(|_| err())?;
    if !(100..=599).contains(&exact) {
        return Err(err());
    }
    Ok((exact, exact + 1))
}

/// `$1` caller id, `$2` caller is admin: records of accounts the caller may manage or read, or of
/// integrations it may call.
fn visible_sql() -> String {
    format!(
        "($2 or r.account_id in (select a.id from provider_accounts a where {ACCESS_LEVEL_SQL} is not null)
             or r.integration_id in (
                 select x.integration_id from authorized_subjects x
                 where x.subject_id = $1
                    or x.subject_id in (select team_id from team_members where user_id = $1)))"
    )
}

const COLUMNS: &str =
    "r.request_id, r.started_at, r.account, r.endpoint, r.account_id, r.integration_id,
    r.subject, r.key_id, r.method, r.upstream_path, r.status, r.latency_us, r.upstream_ttfb_us,
    r.bytes_in, r.bytes_out, r.error_type, r.trace_id, r.data_plane";

#[derive(sqlx::FromRow)]
struct Row {
    request_id: Uuid,
    started_at: DateTime<Utc>,
    account: String,
    endpoint: String,
    account_id: Option<Uuid>,
    integration_id: Option<Uuid>,
    subject: Option<String>,
    key_id: Option<Uuid>,
    method: String,
    upstream_path: String,
    status: i16,
    latency_us: i64,
    upstream_ttfb_us: Option<i64>,
    bytes_in: i64,
    bytes_out: i64,
    error_type: Option<String>,
    trace_id: String,
    data_plane: String,
}

impl From<Row> for RequestRecord {
    fn from(r: Row) -> RequestRecord {
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        RequestRecord {
            request_id: r.request_id,
            started_at: r.started_at,
            account: r.account,
            endpoint: r.endpoint,
            account_id: r.account_id,
            integration_id: r.integration_id,
            subject: r.subject,
            key_id: r.key_id,
            method: r.method,
            upstream_path: r.upstream_path,
            status: u16::try_from(r.status).unwrap_or(0),
            latency_us: unsigned(r.latency_us),
            upstream_ttfb_us: r.upstream_ttfb_us.map(unsigned),
            bytes_in: unsigned(r.bytes_in),
            bytes_out: unsigned(r.bytes_out),
            error_type: r.error_type,
            trace_id: r.trace_id,
            data_plane: r.data_plane,
        }
    }
}

/// A cursor: the position of the last record of a page, newest first.
fn parse_cursor(after: &str) -> Result<(DateTime<Utc>, Uuid), FieldError> {
    let err = || FieldError::new("page_token", "is not a token this API issued");
    let (micros, id) = after.split_once('_').ok_or_else(err)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| err())?).ok_or_else(err)?;
    Ok((at, id.parse().map_err(|_| err())?))
}

#[utoipa::path(get, path = "/traces", tag = "traces", params(TraceFilter, PageQuery),
    responses((status = 200, description = "Request records, newest first", body = [RequestRecord]), ReadErrors))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<TraceFilter>,
    Query(page): Query<PageQuery>,
) -> ApiResult<(HeaderMap, Json<Vec<RequestRecord>>)> {
    let page = page.page()?;
    let cursor = page.after.as_deref().map(parse_cursor).transpose()?;
    let status = filter.status.as_deref().map(status_range).transpose()?;
    let sql = format!(
        "select {COLUMNS} from request_logs r
         where {visible}
           and ($3::text is null or r.account = $3)
           and ($4::text is null or r.endpoint = $4)
           and ($5::text is null or r.subject = $5)
           and ($6::smallint is null or (r.status >= $6 and r.status < $7))
           and ($8::timestamptz is null or r.started_at >= $8)
           and ($9::timestamptz is null or r.started_at < $9)
           and ($10::timestamptz is null or (r.started_at, r.request_id) < ($10, $11))
         order by r.started_at desc, r.request_id desc
         limit $12",
        visible = visible_sql()
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(caller.subject_id)
        .bind(caller.is_admin)
        .bind(&filter.account)
        .bind(&filter.endpoint)
        .bind(&filter.subject)
        .bind(status.map(|s| s.0))
        .bind(status.map(|s| s.1))
        .bind(filter.since)
        .bind(filter.until)
        .bind(cursor.map(|c| c.0))
        .bind(cursor.map(|c| c.1))
        .bind(page.fetch_limit())
        .fetch_all(&state.db)
        .await?;
    let records: Vec<RequestRecord> = rows.into_iter().map(RequestRecord::from).collect();
    let (headers, records) = page.finish(records, "/api/v1/traces", |r: &RequestRecord| {
        format!("{}_{}", r.started_at.timestamp_micros(), r.request_id)
    });
    Ok((headers, Json(records)))
}

#[utoipa::path(get, path = "/traces/{request_id}", tag = "traces",
    params(("request_id" = Uuid, Path, description = "The request's x-request-id")),
    responses((status = 200, description = "The request record", body = RequestRecord), ReadErrors))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(request_id): Path<Uuid>,
) -> ApiResult<Json<RequestRecord>> {
    // The id's own time narrows the search to one millisecond of the start-time index; an id
    // without one (records from before ids had it) is searched for in the whole table.
    let (by_id, started) = match shared::request_log::started_within(request_id) {
        Some(started) => (
            "r.started_at >= $4 and r.started_at < $5 and r.request_id = $3",
            Some(started),
        ),
        None => ("r.request_id = $3", None),
    };
    let sql = format!(
        "select {COLUMNS} from request_logs r where {by_id} and {visible}",
        visible = visible_sql()
    );
    let mut query = sqlx::query_as(&sql)
        .bind(caller.subject_id)
        .bind(caller.is_admin)
        .bind(request_id);
    if let Some((from, until)) = started {
        query = query.bind(from).bind(until);
    }
    let row: Option<Row> = query.fetch_optional(&state.db).await?;
    row.map(|r| Json(r.into()))
        .ok_or(ApiError::NotFound("request"))
}

/// Deletes records older than `retention` every `every`, until the task is dropped.
pub async fn enforce_retention(db: PgPool, retention: Duration, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = purge_older_than(&db, Utc::now() - retention).await {
            tracing::warn!(error = %e, "request log retention failed; will retry");
        }
    }
}

/// Deletes records started before `cutoff`, in batches so no statement holds locks for long.
pub async fn purge_older_than(db: &PgPool, cutoff: DateTime<Utc>) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            // By row address: request_id has no index of its own (migration 0010).
            "delete from request_logs where ctid = any(array(
               select ctid from request_logs where started_at < $1 limit 10000))",
        )
        .bind(cutoff)
        .execute(db)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Ok(total);
        }
        total += deleted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filters() {
        assert_eq!(status_range("404").unwrap(), (404, 405));
        assert_eq!(status_range("5xx").unwrap(), (500, 600));
        for bad in ["", "6xx", "0xx", "abc", "99", "600", "4x"] {
            assert!(status_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        let token = format!("{}_{id}", at.timestamp_micros());
        assert_eq!(parse_cursor(&token).unwrap(), (at, id));
        assert!(parse_cursor("nope").is_err());
    }
}
