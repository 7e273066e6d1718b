//! `POST /v1/transfers/{id}/reject` (the receiver) and `…/cancel` (the sender).
use actix_web::{HttpResponse, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::TransferId;
use licentia_domain::transfer::{TransferError, TransferState};
use licentia_persistence::PersistenceError;
use licentia_persistence::repo::transfers;
use uuid::Uuid;

use super::{TransferOut, transfer_out, viewer};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use licentia_app::transfers::{self as service, decide::Decided};

/// Which party may take a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Party {
    Sender,
    Receiver,
}

/// Applies `decide` to a pending transfer under its row lock, with its events. The other
/// party (and anyone else) gets 404: the action does not exist for them. A lapsed offer is
/// expired (and persisted) instead, answering 409.
async fn decide(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    party: Party,
    decide: fn(TransferState) -> Result<TransferState, TransferError>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::TransfersWrite)?;
    let id = TransferId::from_uuid(id);
    let found = transfers::find(state.db.conn(), viewer(principal), id)
        .await?
        .ok_or(ApiError::not_found())?;
    let side = match party {
        Party::Sender => found.from_account_id,
        Party::Receiver => found.to_account_id,
    };
    if !principal.is_admin() && side != principal.account_id() {
        return Err(ApiError::not_found());
    }
    let txn = state.db.begin().await?;
    let after =
        match service::decide::decide(&txn, id, decide, principal.actor(), state.clock.now())
            .await?
        {
            Decided::Settled(after) => after,
            Decided::Lapsed(expired) => {
                txn.commit().await.map_err(PersistenceError::from)?;
                return Err(TransferError::Expired(expired).into());
            }
        };
    // Settled, so no longer pending: building the answer reads nothing more.
    let out = transfer_out(state, after).await?;
    crate::idempotency::commit(txn, HttpResponse::Ok().json(out)).await
}

/// Reject a transfer
///
/// The receiver declines a pending offer; the license stays with the sender.
#[utoipa::path(
    operation_id = "reject_transfer",
    tag = "transfers",
    params(("id" = Uuid, Path, description = "Transfer id")),
    responses(
        (status = 200, description = "The rejected transfer", body = TransferOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/transfers/{id}/reject")]
pub async fn reject_transfer(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    decide(
        &state,
        &principal,
        id.into_inner(),
        Party::Receiver,
        TransferState::reject,
    )
    .await
}

/// Cancel a transfer
///
/// The sender withdraws a pending offer.
#[utoipa::path(
    operation_id = "cancel_transfer",
    tag = "transfers",
    params(("id" = Uuid, Path, description = "Transfer id")),
    responses(
        (status = 200, description = "The cancelled transfer", body = TransferOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/transfers/{id}/cancel")]
pub async fn cancel_transfer(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    decide(
        &state,
        &principal,
        id.into_inner(),
        Party::Sender,
        TransferState::cancel,
    )
    .await
}
