//! The HTTP surface: the router and its OpenAPI document (built from the same route
//! declarations, so they cannot drift), health endpoints, and what every handler uses.

pub mod error;
pub mod etag;
pub mod json;
pub mod metrics;
pub mod paging;
pub mod patch;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::{api_keys, apply, data_planes, integrations, provider_accounts, subjects, traces, ui};

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse control plane", description = "Provider accounts, integrations, subjects and API keys of a Gatehouse gateway."),
    components(schemas(error::Problem, error::InvalidParam)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Every operation takes `Authorization: Bearer <API key>`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The API routes under `/api/v1` and the OpenAPI document describing exactly them.
pub fn api() -> (Router<AppState>, OpenApiDoc) {
    let routes = OpenApiRouter::new()
        .merge(provider_accounts::routes())
        .merge(integrations::routes())
        .merge(subjects::principals::routes())
        .merge(subjects::teams::routes())
        .merge(api_keys::routes())
        .merge(apply::routes())
        .merge(traces::routes())
        .merge(data_planes::routes());
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", routes)
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    (routes, doc)
}

/// The whole control-plane HTTP surface: the API, health endpoints and the dashboard; every
/// request is counted in `/metrics`.
pub fn router(state: AppState) -> Router {
    let dashboard = ui::routes(&state.public_gateway_url);
    let (api, doc) = api();
    let api = api.layer(axum::middleware::from_fn(with_request_id));
    let metrics = metrics::ApiMetrics::new();
    let exposition = metrics.clone();
    api.route(
        "/api/v1/openapi.json",
        get(move || async move { Json(doc) }),
    )
    .route("/api/v1/{*rest}", get(not_found).fallback(not_found))
    .route("/healthz", get(|| async { "ok" }))
    .route("/readyz", get(ready))
    .merge(dashboard)
    .route(
        "/metrics",
        get(move |State(state): State<AppState>| {
            std::future::ready(exposition.exposition(&state.db))
        }),
    )
    .layer(axum::middleware::from_fn_with_state(
        metrics,
        metrics::observe,
    ))
    .with_state(state)
}

/// Gives every API request an id: answered in `x-request-id`, and on every log line written
/// while it is handled (internal errors are logged, never answered, so this is how to find them),
/// the closing `api request` line included. Lines name the route template, not the path.
async fn with_request_id(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    let id = uuid::Uuid::new_v4();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), route);
    let started = std::time::Instant::now();
    let mut response = async move {
        let response = next.run(request).await;
        tracing::info!(
            status = response.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "api request"
        );
        response
    }
    .instrument(span)
    .await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn not_found() -> error::ApiError {
    error::ApiError::NotFound("resource")
}

/// Ready when the database answers.
async fn ready(State(state): State<AppState>) -> StatusCode {
    match sqlx::query("select 1").execute(&state.db).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
