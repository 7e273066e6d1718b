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
    #[schema(value_type = crate::openapi::types::HealthStatus, example = "ok")]
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

/// Where the service can read from.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` when every configured database answers; `degraded` when one of the primary and the
    /// read replica is unreachable (validations keep answering from the other).
    #[schema(value_type = crate::openapi::types::ReadinessStatus, example = "ok")]
    pub status: &'static str,
    /// Whether the primary answers.
    pub primary: bool,
    /// Whether the read replica answers; null when none is configured.
    pub replica: Option<bool>,
}

/// Readiness
///
/// 200 while the primary or the read replica can serve (`status` `ok`, or `degraded` when one
/// of them is unreachable), 503 when neither can.
#[utoipa::path(
    operation_id = "get_readiness",
    tag = "system",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    )
)]
#[get("/readyz")]
pub async fn get_readiness(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let health = state.db.read_health().await;
    let status = match (health.primary, health.replica) {
        (true, None | Some(true)) => "ok",
        (true, Some(false)) | (false, Some(true)) => "degraded",
        (false, _) => return Err(ApiError::unavailable()),
    };
    Ok(HttpResponse::Ok().json(Readiness {
        status,
        primary: health.primary,
        replica: health.replica,
    }))
}
