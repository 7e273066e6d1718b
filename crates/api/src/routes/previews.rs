//! Previews (CONTRACT §4): what ordering, renewing, changing the configuration of or offering a
//! license would do, after every check the real call makes (scope, the license, state, funds,
//! limits), changing nothing. Each is its own operation so that every operation of the document
//! has one success schema. Each runs the real operation's code with `dry_run` (the work happens
//! in a transaction that is rolled back), so a preview and its operation cannot disagree.
//!
//! Previews are exempt from `Idempotency-Key` ([`crate::idempotency::applies`]): they change
//! nothing, so there is nothing a retry could do twice; the header is ignored.
use actix_web::{HttpRequest, HttpResponse, post, web};
use uuid::Uuid;

use super::configuration::{ConfigurationIn, change_configuration};
use super::licenses::{CreateLicense, DryRunOut, order_license};
use super::renewals::{CreateRenewal, renew};
use super::transfers::{CreateTransfer, TransferPreview, offer_transfer};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::state::AppState;

/// Preview a license order
///
/// What `POST /v1/licenses` with this body would cost, and the `valid_until` the license would
/// get (null while its order would stay unpaid). Answers the same errors the order would
/// (402 when the payment would fall short), and orders nothing.
#[utoipa::path(
    operation_id = "preview_create_license",
    tag = "licenses",
    request_body = CreateLicense,
    responses(
        (status = 200, description = "What the order would do", body = DryRunOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 402, response = crate::openapi::PaymentRequired),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/preview")]
pub async fn preview_create_license(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::extract::Json<CreateLicense>,
) -> ApiResult<HttpResponse> {
    order_license(state, principal, body, true).await
}

/// Preview a renewal
///
/// What `POST /v1/licenses/{id}/renewals` with this body would cost, and the license's
/// `valid_until` afterwards (unchanged while the renewal's order would stay unpaid). Answers
/// the same errors the renewal would, and renews nothing. Accepts `If-Match`.
#[utoipa::path(
    operation_id = "preview_renew_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    request_body = CreateRenewal,
    responses(
        (status = 200, description = "What the renewal would do", body = DryRunOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 402, response = crate::openapi::PaymentRequired),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 412, response = crate::openapi::PreconditionFailed),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/{id}/renewals/preview")]
pub async fn preview_renew_license(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: crate::extract::Json<CreateRenewal>,
) -> ApiResult<HttpResponse> {
    renew(state, principal, req, id.into_inner(), body, true).await
}

/// Preview a configuration change
///
/// The prorated Δ that `PUT /v1/licenses/{id}/configuration` with this body would charge
/// (positive) or credit (negative), after the same checks; changes nothing. Accepts `If-Match`.
#[utoipa::path(
    operation_id = "preview_update_license_configuration",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    request_body = ConfigurationIn,
    responses(
        (status = 200, description = "What the change would do", body = DryRunOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 402, response = crate::openapi::PaymentRequired),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 412, response = crate::openapi::PreconditionFailed),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/{id}/configuration/preview")]
pub async fn preview_update_license_configuration(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: crate::extract::Json<ConfigurationIn>,
) -> ApiResult<HttpResponse> {
    change_configuration(state, principal, req, id.into_inner(), body, true).await
}

/// Preview a transfer offer
///
/// The offer the receiver would see if `POST /v1/licenses/{id}/transfers` were called with
/// this body, after the same checks (the license's state and product, a pending offer, the
/// receiver); creates nothing and shows no secret.
#[utoipa::path(
    operation_id = "preview_create_transfer",
    tag = "transfers",
    params(("id" = Uuid, Path, description = "License id")),
    request_body = CreateTransfer,
    responses(
        (status = 200, description = "The offer the receiver would see", body = TransferPreview),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/{id}/transfers/preview")]
pub async fn preview_create_transfer(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    body: crate::extract::Json<CreateTransfer>,
) -> ApiResult<HttpResponse> {
    offer_transfer(state, principal, id.into_inner(), body, true).await
}
