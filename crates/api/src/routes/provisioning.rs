//! `POST /v1/licenses/{id}/provisioning/retry`: an admin re-queues provisioning of a license
//! whose attempts ran out.
use actix_web::{HttpResponse, post, web};
use licentia_domain::license::LicenseStatus;
use uuid::Uuid;

use super::licenses::{LicenseOut, visible_license, with_etag};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use licentia_app::provisioning;

/// Retry provisioning
///
/// For a license left `in_progress` after its provisioning attempts ran out (see
/// `provisioning_error` and the `license.provisioning_failed` event): queues a fresh series of
/// attempts. Provider administrators only.
#[utoipa::path(
    operation_id = "retry_provisioning",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    responses(
        (status = 200, description = "Provisioning queued again", body = LicenseOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/{id}/provisioning/retry")]
pub async fn retry_provisioning(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let (license, product) = visible_license(&state, &principal, id.into_inner()).await?;
    if license.lifecycle.status != LicenseStatus::InProgress {
        return Err(ApiError::invalid_transition(format!(
            "only an in_progress license is provisioned; this one is {}",
            license.lifecycle.status.as_str()
        )));
    }
    let attempts = state.policy.provision_attempts;
    provisioning::enqueue(state.db.conn(), license.id, attempts).await?;
    let version = license.version;
    Ok(with_etag(
        HttpResponse::Ok().json(LicenseOut::new(license, &product)),
        version,
    ))
}
