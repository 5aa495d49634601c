//! The HTTP surface: the router, health endpoints, and the pieces every handler uses.

pub mod error;
pub mod json;
pub mod patch;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::AppState;
use crate::{data_planes, integrations, provider_accounts};

/// The whole control-plane API.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(provider_accounts::routes())
        .merge(integrations::routes())
        .merge(data_planes::routes())
        .fallback(|| async { error::ApiError::NotFound("resource") });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

/// Ready when the database answers.
async fn ready(State(state): State<AppState>) -> StatusCode {
    match sqlx::query("select 1").execute(&state.db).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
