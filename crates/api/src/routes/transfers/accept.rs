//! `POST /v1/transfers/{id}/accept`: the receiver takes the license with the secret.
use actix_web::{HttpResponse, post, web};
use licentia_app::transfers::accept;
use licentia_domain::auth::Scope;
use licentia_domain::ids::TransferId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{TransferOut, transfer_out};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::routes::licenses::{LicenseOut, with_etag};
use crate::state::AppState;

/// The secret of the offer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptTransfer {
    /// The secret the sender received when offering the license. Any string; a wrong one
    /// counts as a failed attempt.
    pub secret: String,
}

/// The accepted transfer and the license, now the receiver's.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedTransfer {
    /// The transfer, now `accepted`.
    pub transfer: TransferOut,
    /// The license, now the receiver's: auto-renewal off, its version bumped.
    pub license: LicenseOut,
}

/// Accept a transfer
///
/// The receiving account takes the license: it moves to the receiver at once, with
/// auto-renewal off and its unpaid order items cancelled. A wrong secret answers 403
/// `invalid_secret` — the same for any wrong secret — and counts: the fifth expires the offer.
/// Only the receiver may accept; for anyone else the transfer does not exist (404).
#[utoipa::path(
    operation_id = "accept_transfer",
    tag = "transfers",
    params(("id" = Uuid, Path, description = "Transfer id")),
    request_body = AcceptTransfer,
    responses(
        (status = 200, description = "Accepted: the transfer and the license, now the receiver's", body = AcceptedTransfer,
         headers(("ETag" = String, description = "Strong ETag of the license's new version"))),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "Not allowed, or `invalid_secret`: the secret does not match (the attempt counts)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
        (status = 429, response = crate::openapi::TooManyRequests),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/transfers/{id}/accept")]
pub async fn accept_transfer(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    body: crate::extract::Json<AcceptTransfer>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::TransfersWrite)?;
    let id = TransferId::from_uuid(id.into_inner());
    // Counted in the database before the attempt is looked at, shared by every process.
    if state.limits.enabled
        && let Some(refusal) = crate::limits::TRANSFER_ACCEPTS
            .attempt(
                state.db.conn(),
                state.clock.now(),
                &principal.account_id().to_string(),
            )
            .await?
            .refusal()
    {
        return Ok(refusal);
    }
    let secret = body.into_inner()?.secret;
    let txn = state.begin().await?;
    let (txn, accepted) = accept::accept(&state, txn, &principal.caller(), id, &secret).await?;
    let version = accepted.license.version;
    let out = AcceptedTransfer {
        transfer: transfer_out(&state, accepted.transfer).await?,
        license: LicenseOut::new(accepted.license, &accepted.product),
    };
    crate::idempotency::commit(txn, with_etag(HttpResponse::Ok().json(out), version)).await
}
