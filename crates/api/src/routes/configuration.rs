//! `PUT /v1/licenses/{id}/configuration`: changing a license's option quantities, with the
//! prorated price difference charged (upgrade) or credited (downgrade).
use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, put, web};
use licentia_app::licenses::configure::{self, Configure, Configured};
use licentia_app::tx::finish;
use licentia_domain::auth::Scope;
use licentia_domain::license_fields::parse_quantities;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::licenses::{
    DryRunOut, DryRunQuery, LicenseOut, PaymentIn, check_if_match, visible_license, with_etag,
};
use super::orders::OrderOut;
use crate::auth::Principal;
use crate::error::{ApiResult, Errors};
use crate::state::AppState;

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
    let mut errors = Errors::default();
    let options = errors.check_all(parse_quantities(&body.options));
    errors.finish()?;
    let payment = body
        .payment
        .unwrap_or(PaymentIn(licentia_app::Payment::Balance {}));
    payment.authorize(&principal)?;
    let command = Configure {
        license: visible.id,
        owner: visible.account_id,
        product,
        options: options.unwrap_or_default(),
        payment: payment.0,
    };
    let txn = state.begin().await?;
    let Configured {
        license,
        product,
        order,
        delta,
    } = configure::configure(&state, &txn, &principal.caller(), command, |license| {
        check_if_match(&req, license.version)
    })
    .await?;
    if dry_run {
        // Every check ran inside the transaction; rolling back changes nothing.
        finish(txn, true).await?;
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
