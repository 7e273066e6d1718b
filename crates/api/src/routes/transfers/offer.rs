//! Offering a license to another partner (the first step of the handshake).
use licentia_app::transfers::offer::{self, Offer};
use licentia_app::tx::finish;

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::error::Errors;

/// Offer a license to another partner
///
/// Only the license's owner, for an `active` license or one `suspended` by the partner or for
/// expiry, of a transferable product, and one pending offer per license. The answer carries
/// the secret the receiver accepts with; it is shown only here.
/// `POST /v1/licenses/{id}/transfers/preview` answers the preview the receiver would see after
/// every check, creating nothing.
#[utoipa::path(
    operation_id = "create_transfer",
    tag = "transfers",
    params(("id" = Uuid, Path, description = "License id")),
    request_body = CreateTransfer,
    responses(
        (status = 201, description = "The offer, with its secret", body = CreatedTransfer),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/{id}/transfers")]
pub async fn create_transfer(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    query: web::Query<DryRunQuery>,
    body: crate::extract::Json<CreateTransfer>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::TransfersWrite)?;
    // Undocumented since the preview operation; still accepted for one release (CONTRACT §4).
    let dry_run = query.enabled()?;
    offer_transfer(state, principal, id.into_inner(), body, dry_run).await
}

/// Offers a license; with `dry_run`, runs every check and answers the receiver's preview,
/// creating nothing. The offer and its preview share it.
pub(crate) async fn offer_transfer(
    state: web::Data<AppState>,
    principal: Principal,
    id: Uuid,
    body: crate::extract::Json<CreateTransfer>,
    dry_run: bool,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::TransfersWrite)?;
    let (license, _) = visible_license(&state, &principal, id).await?;
    let body = body.into_inner()?;
    let mut errors = Errors::default();
    if let Some(secret) = &body.secret
        && let Err(message) = licentia_domain::transfer::validate_given_secret(secret)
    {
        errors.push("secret", message);
    }
    errors.finish()?;
    let command = Offer {
        license: license.id,
        owner: license.account_id,
        to: AccountId::from_uuid(body.to_account_id),
        secret: body.secret,
    };
    let txn = state.begin().await?;
    let offered = offer::offer(&state, &txn, &principal.caller(), command, dry_run).await?;
    let Some((created, secret)) = offered.created else {
        finish(txn, true).await?;
        return Ok(HttpResponse::Ok().json(TransferPreview {
            license_id: offered.license.id.as_uuid(),
            from_account_id: offered.license.account_id.as_uuid(),
            to_account_id: body.to_account_id,
            status: offered.state.status,
            expires_at: offered.state.expires_at,
            license: offered.preview,
        }));
    };
    let res = HttpResponse::Created().json(CreatedTransfer {
        id: created.id.as_uuid(),
        license_id: created.license_id.as_uuid(),
        from_account_id: created.from_account_id.as_uuid(),
        to_account_id: created.to_account_id.as_uuid(),
        status: created.state.status,
        expires_at: created.state.expires_at,
        secret,
        license: offered.preview,
        created_at: created.created_at,
    });
    crate::idempotency::commit(txn, res).await
}
