//! Liveness and readiness probes.
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the probe passes.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness
///
/// Answers while the process serves HTTP; touches nothing else.
#[utoipa::path(
    operation_id = "get_health",
    tag = "system",
    responses((status = 200, description = "The process is alive", body = Health))
)]
#[get("/healthz")]
pub async fn get_health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness
///
/// Answers 200 when the database is reachable, 503 otherwise.
#[utoipa::path(
    operation_id = "get_readiness",
    tag = "system",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    )
)]
#[get("/readyz")]
pub async fn get_readiness(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state.db.ping().await.map_err(|_| ApiError::Unavailable)?;
    Ok(HttpResponse::Ok().json(Health { status: "ok" }))
}
