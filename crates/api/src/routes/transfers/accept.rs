//! `POST /v1/transfers/{id}/accept`: the receiver takes the license with the secret.
use actix_web::{HttpResponse, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::TransferId;
use licentia_domain::license_record::License;
use licentia_domain::transfer::{TransferError, secret_matches};
use licentia_persistence::repo::events::{self, Actor, NewEvent};
use licentia_persistence::repo::licenses::{self, Scope as LicenseScope};
use licentia_persistence::repo::products;
use licentia_persistence::repo::transfers::{self, Viewer};
use licentia_persistence::{PersistenceError, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{LicensePreview, TransferOut, transfer_out, viewer};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::routes::licenses::{LicenseOut, license_snapshot, with_etag};
use crate::state::AppState;
use licentia_app::transfers as service;

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
    if state.config.rate_limit_enabled()
        && let Some(refusal) = crate::rate_limit::TRANSFER_ACCEPTS
            .attempt(&state, &principal.account_id().to_string())
            .await?
            .refusal()
    {
        return Ok(refusal);
    }
    let found = transfers::find(state.db.conn(), viewer(&principal), id)
        .await?
        .ok_or(ApiError::not_found())?;
    if !principal.is_admin() && found.to_account_id != principal.account_id() {
        return Err(ApiError::not_found());
    }
    let secret = body.into_inner()?.secret;
    let now = state.clock.now();
    let txn = state
        .db
        .conn()
        .begin()
        .await
        .map_err(PersistenceError::from)?;
    // Lock order, as in the sweeps: the orders whose items get cancelled, the license, then
    // the transfer. Concurrent accepts (and a cancel) queue here; the first decides.
    let license = licenses::lock(&txn, LicenseScope::All, found.license_id)
        .await?
        .ok_or(ApiError::not_found())?;
    let t = transfers::lock(&txn, Viewer::All, id)
        .await?
        .ok_or(ApiError::not_found())?;
    let matches = secret_matches(&secret, &t.secret_hash);
    let next = match t.state.accept(matches, now) {
        Ok(next) => next,
        // The attempt changed the transfer (a counted wrong secret, or the offer found lapsed):
        // that is kept although the request fails.
        Err(err @ (TransferError::Expired(next) | TransferError::InvalidSecret(next))) => {
            let actor = match err {
                TransferError::Expired(_) => Actor::SYSTEM,
                _ => principal.actor(),
            };
            service::settle(&txn, &t, next, actor, now).await?;
            txn.commit().await.map_err(PersistenceError::from)?;
            return Err(err.into());
        }
        Err(err) => return Err(err.into()),
    };
    // The secret was right; the license itself must still be one that may change hands.
    if license.account_id != t.from_account_id {
        return Err(ApiError::invalid_transition(
            "the license no longer belongs to the sender".into(),
        ));
    }
    license.lifecycle.can_transfer()?;
    if license.trial {
        return Err(ApiError::trial_license(
            "a trial cannot be transferred".into(),
        ));
    }
    let product = products::find(&txn, license.product_id)
        .await?
        .ok_or(ApiError::not_found())?;
    if !product.transferable {
        return Err(ApiError::invalid_transition(format!(
            "licenses of the product {} are no longer transferable",
            product.code
        )));
    }
    let before = license_snapshot(&license);
    let moved = licenses::save(
        &txn,
        &License {
            account_id: t.to_account_id,
            auto_renew: None,
            // The sender's reasons for disabling it are the sender's own.
            suspension: Default::default(),
            ..license
        },
        None,
    )
    .await?;
    let accepted = service::settle(&txn, &t, next, principal.actor(), now)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_transition("the transfer changed meanwhile; read it again".into())
        })?;
    let preview = serde_json::to_value(LicensePreview::of(&moved, &product)).unwrap_or_default();
    transfers::set_preview(&txn, accepted.id, preview.clone()).await?;
    events::record(
        &txn,
        NewEvent {
            event_type: "license.updated",
            account_id: moved.account_id,
            license_id: Some(moved.id),
            actor: principal.actor(),
            before: Some(before),
            after: Some(license_snapshot(&moved)),
        },
    )
    .await?;
    let version = moved.version;
    let out = AcceptedTransfer {
        transfer: transfer_out(
            &state,
            transfers::Transfer {
                license_preview: preview,
                ..accepted
            },
        )
        .await?,
        license: LicenseOut::new(moved, &product),
    };
    crate::idempotency::commit(txn, with_etag(HttpResponse::Ok().json(out), version)).await
}
