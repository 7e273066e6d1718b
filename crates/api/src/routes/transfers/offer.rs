//! Offering a license to another partner (the first step of the handshake).
#[allow(clippy::wildcard_imports)]
use super::*;

/// The receiving account: a partner that is not the license's owner, else 422.
async fn receiver(
    state: &AppState,
    owner: AccountId,
    to: Uuid,
    errors: &mut Vec<FieldError>,
) -> ApiResult<()> {
    let to = AccountId::from_uuid(to);
    if to == owner {
        errors.push(FieldError::new(
            "to_account_id",
            "is the account that owns the license; offer it to another partner",
        ));
        return Ok(());
    }
    match accounts::find(state.db.conn(), to).await? {
        Some(Account {
            kind: AccountKind::Partner,
            ..
        }) => {}
        _ => errors.push(FieldError::new("to_account_id", "no such partner account")),
    }
    Ok(())
}

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
    let mut errors = Vec::new();
    receiver(&state, license.account_id, body.to_account_id, &mut errors).await?;
    if let Some(secret) = &body.secret
        && let Err(message) = licentia_domain::transfer::validate_given_secret(secret)
    {
        errors.push(FieldError::new("secret", message));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let to = AccountId::from_uuid(body.to_account_id);
    let now = state.clock.now();
    let scope = if principal.is_admin() {
        LicenseScope::All
    } else {
        LicenseScope::Tenant(principal.account_id())
    };
    let txn = state
        .db
        .conn()
        .begin()
        .await
        .map_err(PersistenceError::from)?;
    // The license lock serializes the offer with a delete, an edit or a concurrent offer.
    let license = licenses::lock(&txn, scope, license.id)
        .await?
        .ok_or(ApiError::not_found())?;
    if license.account_id == to {
        return Err(ApiError::field(
            "to_account_id",
            "is the account that owns the license; offer it to another partner",
        ));
    }
    license.lifecycle.can_transfer()?;
    if license.trial {
        return Err(ApiError::trial_license(
            "a trial cannot be transferred; renew it to convert it first".into(),
        ));
    }
    let product = products::find(&txn, license.product_id)
        .await?
        .ok_or(ApiError::not_found())?;
    if !product.transferable {
        return Err(ApiError::invalid_transition(format!(
            "licenses of the product {} are not transferable",
            product.code
        )));
    }
    if let Some(pending) = transfers::lock_pending_of_license(&txn, license.id).await? {
        match pending.state.expire(now) {
            // A lapsed offer no longer blocks a new one.
            Ok(next) => {
                service::settle(&txn, &pending, next, Actor::SYSTEM, now).await?;
            }
            Err(_) => {
                return Err(ApiError::already_exists(format!(
                    "the license already has a pending transfer ({}); cancel it first",
                    pending.id
                )));
            }
        }
    }
    let preview = LicensePreview::of(&license, &product);
    let offer = TransferState::offer(now, state.policy.transfer_ttl);
    if dry_run {
        txn.rollback().await.map_err(PersistenceError::from)?;
        return Ok(HttpResponse::Ok().json(TransferPreview {
            license_id: license.id.as_uuid(),
            from_account_id: license.account_id.as_uuid(),
            to_account_id: to.as_uuid(),
            status: offer.status.as_str().to_owned(),
            expires_at: offer.expires_at,
            license: preview,
        }));
    }
    let secret = body
        .secret
        .unwrap_or_else(|| crate::crypto::random_token(32));
    let created = transfers::insert(
        &txn,
        NewTransfer {
            id: TransferId::new(),
            license_id: license.id,
            from_account_id: license.account_id,
            to_account_id: to,
            state: offer,
            secret_hash: hash_secret(&secret),
            license_preview: preview.to_json(),
            now,
        },
    )
    .await
    .map_err(|e| match e {
        PersistenceError::Unique(_) => {
            ApiError::already_exists("the license already has a pending transfer".into())
        }
        other => other.into(),
    })?;
    service::record_for_both(&txn, "transfer.created", None, &created, principal.actor()).await?;
    let res = HttpResponse::Created().json(CreatedTransfer {
        id: created.id.as_uuid(),
        license_id: created.license_id.as_uuid(),
        from_account_id: created.from_account_id.as_uuid(),
        to_account_id: created.to_account_id.as_uuid(),
        status: created.state.status.as_str().to_owned(),
        expires_at: created.state.expires_at,
        secret,
        license: preview,
        created_at: created.created_at,
    });
    crate::idempotency::commit(txn, res).await
}
