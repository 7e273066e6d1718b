//! `POST /v1/licenses/{id}/disable`, `…/enable` and `DELETE /v1/licenses/{id}`.

use actix_web::{HttpRequest, HttpResponse, delete, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::LicenseId;
use licentia_persistence::TransactionTrait;
use uuid::Uuid;

use super::{LicenseOut, check_if_match, visible_license, with_etag};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::service::lifecycle::{self, Caller, Transition};
use crate::state::AppState;

/// Applies a state transition under the row lock (shared with bulk operations:
/// [`crate::service::lifecycle::transition`]) and answers the license (204 for a deletion).
async fn transition(
    state: &AppState,
    principal: &Principal,
    req: &HttpRequest,
    id: Uuid,
    transition: Transition,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let (_, product) = visible_license(state, principal, id).await?;
    let txn = state
        .db
        .conn()
        .begin()
        .await
        .map_err(licentia_persistence::PersistenceError::from)?;
    let attempts = i32::try_from(state.config.provision_attempts).unwrap_or(10);
    let saved = lifecycle::transition(
        &txn,
        &Caller::of(principal),
        LicenseId::from_uuid(id),
        transition,
        state.clock.now(),
        attempts,
        |license| check_if_match(req, license.version),
    )
    .await?;
    let version = saved.version;
    let res = if transition == Transition::Delete {
        HttpResponse::NoContent().finish()
    } else {
        with_etag(
            HttpResponse::Ok().json(LicenseOut::new(saved, &product)),
            version,
        )
    };
    crate::idempotency::commit(txn, res).await
}

/// Disable a license
///
/// An `active` license becomes `suspended` (`manual` by a partner, `admin` by an admin).
#[utoipa::path(
    operation_id = "disable_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    responses(
        (status = 200, description = "The suspended license", body = LicenseOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 412, response = crate::openapi::PreconditionFailed),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/{id}/disable")]
pub async fn disable_license(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    transition(
        &state,
        &principal,
        &req,
        id.into_inner(),
        Transition::Disable,
    )
    .await
}

/// Enable a license
///
/// A `suspended` license goes through `in_progress` back to `active`. An administrative
/// suspension is lifted by admins only (403); a license past its term answers 409
/// `license_expired` — renew it instead.
#[utoipa::path(
    operation_id = "enable_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    responses(
        (status = 200, description = "The license, on its way back to active", body = LicenseOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 412, response = crate::openapi::PreconditionFailed),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/{id}/enable")]
pub async fn enable_license(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    transition(
        &state,
        &principal,
        &req,
        id.into_inner(),
        Transition::Enable,
    )
    .await
}

/// Delete a license
///
/// Soft delete: the license answers `GET` with status `deleted` and is listed only when asked
/// for; its unpaid order items are cancelled.
#[utoipa::path(
    operation_id = "delete_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 412, response = crate::openapi::PreconditionFailed),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[delete("/v1/licenses/{id}")]
pub async fn delete_license(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    transition(
        &state,
        &principal,
        &req,
        id.into_inner(),
        Transition::Delete,
    )
    .await
}
