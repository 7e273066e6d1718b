//! `PUT /v1/licenses/{id}/configuration`: changing a license's option quantities, with the
//! prorated price difference charged (upgrade) or credited (downgrade).
use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, put, web};
use licentia_domain::auth::Scope;
use licentia_persistence::repo::ledger;
use licentia_persistence::repo::licenses::{self, Scope as LicenseScope};
use licentia_persistence::repo::orders::NewItem;
use licentia_persistence::repo::products;
use licentia_persistence::{PersistenceError, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::licenses::{
    DryRunOut, DryRunQuery, LicenseOut, PaymentIn, check_if_match, pricing_error, visible_license,
    with_etag,
};
use super::orders::OrderOut;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;
use licentia_app::licenses::renew::{
    CONFIGURATION_CHANGE, Checkout, PaymentPlan, apply_options, configuration_delta,
};

/// The new configuration of a license.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationIn {
    /// Quantity per option code; options left out get their minimum. Each must lie within
    /// the option's `min..=max`.
    #[schema(value_type = crate::openapi::types::OptionQuantities)]
    pub options: BTreeMap<String, i64>,
    /// How an upgrade is paid (default `{"method":"balance"}`); ignored for downgrades, which
    /// are credited to the balance.
    pub payment: Option<PaymentIn>,
}

/// The license after a configuration change, with the order that charged it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigurationOut {
    /// The license. Paid or free changes already show the new options (and an
    /// `active`/`suspended` license is `in_progress` while they are applied); an unpaid
    /// upgrade takes effect when its order is paid.
    pub license: LicenseOut,
    /// The order carrying the upgrade's `configuration_change` item; null when nothing was
    /// charged (a downgrade is credited to the balance as a `refund` ledger entry).
    pub order: Option<OrderOut>,
}

/// The answer to a configuration change: the change, or with `dry_run` its preview.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ConfigurationResult {
    Changed(Box<ConfigurationOut>),
    DryRun(DryRunOut),
}

/// Change a license's configuration
///
/// Sets the option quantities. The price difference is Δ = (cost of the new options − cost of
/// the old, both for the license's `period_months`) × (time left in the term ÷ term length),
/// the term being [`valid_until` − `period_months`, `valid_until`), rounded half-up (half away
/// from zero) to the minor unit. An upgrade (Δ > 0) is paid like `payment` (default
/// `balance`; 402 when short, and nothing changes); a downgrade credits |Δ| to the balance.
/// The license passes through `in_progress` while the provisioner applies the change. Refused
/// (409) for `ordered`, `in_progress` and `deleted` licenses. Accepts `If-Match`.
/// `POST /v1/licenses/{id}/configuration/preview` answers Δ (negative: a credit) after every
/// check, changing nothing.
#[utoipa::path(
    operation_id = "update_license_configuration",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    request_body = ConfigurationIn,
    responses(
        (status = 200, description = "The license and the order that charged the change", body = ConfigurationOut),
        (status = 400, response = crate::openapi::BadRequest),
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
#[put("/v1/licenses/{id}/configuration")]
pub async fn update_license_configuration(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    query: web::Query<DryRunQuery>,
    body: crate::extract::Json<ConfigurationIn>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    // Undocumented since the preview operation; still accepted for one release (CONTRACT §4).
    let dry_run = query.enabled()?;
    change_configuration(state, principal, req, id.into_inner(), body, dry_run).await
}

/// Changes a license's configuration; with `dry_run`, runs every check and answers Δ, keeping
/// nothing. The change and its preview share it.
pub(crate) async fn change_configuration(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Uuid,
    body: crate::extract::Json<ConfigurationIn>,
    dry_run: bool,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let (visible, product) = visible_license(&state, &principal, id).await?;
    let body = body.into_inner()?;
    let mut errors = Vec::new();
    let mut requested = BTreeMap::new();
    for (code, qty) in &body.options {
        match u32::try_from(*qty) {
            Ok(q) => {
                requested.insert(code.clone(), q);
            }
            Err(_) => errors.push(FieldError::new(
                format!("options.{code}"),
                "must be a non-negative integer",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let options = product
        .pricing
        .normalize_options(&requested)
        .map_err(|e| ApiError::validation(vec![pricing_error(e)]))?;
    let payment = body
        .payment
        .unwrap_or(PaymentIn(licentia_app::Payment::Balance {}));
    payment.authorize(&principal)?;

    let txn = state
        .db
        .conn()
        .begin()
        .await
        .map_err(PersistenceError::from)?;
    // Lock order: an existing order first, then the license (licentia_app::licenses::renew).
    let plan = PaymentPlan::resolve(&txn, visible.account_id, &payment.0).await?;
    let scope = if principal.is_admin() {
        LicenseScope::All
    } else {
        LicenseScope::Tenant(principal.account_id())
    };
    let license = licenses::lock(&txn, scope, visible.id)
        .await?
        .ok_or(ApiError::not_found())?;
    check_if_match(&req, license.version)?;
    if license.account_id != visible.account_id {
        return Err(ApiError::conflict(
            "the license changed owner during the request; retry".into(),
        ));
    }
    // A product switch committed between the read and the lock: price with the product the
    // license has now (serialized, not refused).
    let (product, options) = if license.product_id == product.id {
        (product, options)
    } else {
        let product = products::find(&txn, license.product_id)
            .await?
            .ok_or(ApiError::not_found())?;
        let options = product
            .pricing
            .normalize_options(&requested)
            .map_err(|e| ApiError::validation(vec![pricing_error(e)]))?;
        (product, options)
    };
    license.lifecycle.can_change_configuration()?;
    if license.trial {
        return Err(ApiError::trial_license(
            "a trial's configuration cannot change; renew it to convert it first".into(),
        ));
    }
    let now = state.clock.now();
    let delta = configuration_delta(&product, &license, &options, now)?;
    let checkout = Checkout {
        account: license.account_id,
        currency: state.currency.as_str(),
        actor: principal.actor(),
        provision_attempts: i32::try_from(state.config.provision_attempts).unwrap_or(10),
        now,
    };
    let (license, order) = if options == license.options {
        (license, None)
    } else if delta > 0 {
        let item = NewItem::for_license(
            &license,
            CONFIGURATION_CHANGE,
            license.period,
            delta,
            serde_json::json!({ "options": options }),
        );
        let order = plan.place(&txn, &checkout, item).await?;
        let license = licenses::find(&txn, LicenseScope::All, license.id)
            .await?
            .ok_or(ApiError::not_found())?;
        (license, Some(order))
    } else {
        let account = license.account_id;
        let saved = apply_options(
            &txn,
            license,
            options,
            checkout.actor,
            checkout.provision_attempts,
        )
        .await?;
        if delta < 0 {
            ledger::refund(
                &txn,
                account,
                -delta,
                &format!("configuration change of license {}", saved.id),
                saved.id,
                saved.product_id,
            )
            .await?;
        }
        (saved, None)
    };
    if dry_run {
        // Every check ran inside the transaction; rolling back changes nothing.
        txn.rollback().await.map_err(PersistenceError::from)?;
        return Ok(
            HttpResponse::Ok().json(ConfigurationResult::DryRun(DryRunOut {
                amount: delta,
                currency: state.currency.as_str().to_owned(),
                valid_until_after: license.lifecycle.valid_until,
            })),
        );
    }
    let version = license.version;
    let out = ConfigurationOut {
        license: LicenseOut::new(license, &product),
        order: order.map(OrderOut::from),
    };
    crate::idempotency::commit(
        txn,
        with_etag(
            HttpResponse::Ok().json(ConfigurationResult::Changed(Box::new(out))),
            version,
        ),
    )
    .await
}
