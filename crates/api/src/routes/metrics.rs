//! `GET /metrics`: the Prometheus scrape endpoint.
use actix_web::{HttpResponse, get, web};

use crate::state::AppState;

/// Prometheus metrics
///
/// The Prometheus text exposition format (version 0.0.4): request latency histograms by
/// route template and status, job queue depth and lag, webhook delivery failures, database
/// pool usage and the process's resident memory. Public, like the health probes.
#[utoipa::path(
    operation_id = "get_metrics",
    tag = "system",
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format",
         content_type = "text/plain; version=0.0.4", body = String),
    )
)]
#[get("/metrics")]
pub async fn get_metrics(state: web::Data<AppState>) -> HttpResponse {
    crate::metrics::refresh(state.db.conn(), state.config.db_max_connections.get()).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render())
}
