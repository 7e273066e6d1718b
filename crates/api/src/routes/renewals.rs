//! `/v1/licenses/{id}/renewal-quote` and `/v1/licenses/{id}/renewals`: extending a license's
//! term by any period its product prices, paid like an order.
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use licentia_domain::auth::Scope;
use licentia_persistence::PersistenceError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::licenses::{
    DryRunOut, DryRunQuery, LicenseOut, LicenseWithOrder, PaymentIn, check_if_match,
    visible_license, with_etag,
};
use super::orders::OrderOut;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use licentia_app::licenses::renew::{
    self, RenewLicense, Renewed, offered_period, renewal_cost, renewed_until,
};

/// `?period_months=N`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuoteQuery {
    /// The renewal period: one the product prices.
    #[param(value_type = crate::openapi::types::PeriodMonths, required = true)]
    pub period_months: Option<String>,
}

/// What a renewal would cost now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenewalQuote {
    /// The renewal period.
    #[schema(value_type = crate::openapi::types::PeriodMonths)]
    pub period_months: u32,
    /// Product price for the period plus each option's quantity × unit price, minor units.
    pub amount: i64,
    /// The deployment's currency (ISO 4217).
    pub currency: String,
    /// `valid_until` once the renewal is paid now: calendar months from max(`valid_until`,
    /// now), clamped to the end of the month.
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until_after: OffsetDateTime,
}

/// A renewal order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRenewal {
    /// The renewal period: one the product prices; the license's `period_months` becomes it.
    #[schema(value_type = crate::openapi::types::PeriodMonths)]
    pub period_months: i64,
    pub payment: PaymentIn,
}

/// Quote a renewal
///
/// What renewing for `period_months` would cost now and the `valid_until` it would give.
/// Refused (409) like the renewal itself for `ordered`, `in_progress` and `deleted` licenses.
#[utoipa::path(
    operation_id = "get_renewal_quote",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id"), QuoteQuery),
    responses(
        (status = 200, description = "The quote", body = RenewalQuote),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/licenses/{id}/renewal-quote")]
pub async fn get_renewal_quote(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    query: web::Query<QuoteQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let (license, product) = visible_license(&state, &principal, id.into_inner()).await?;
    let months = query
        .period_months
        .as_deref()
        .ok_or_else(|| ApiError::field("period_months", "is required"))?
        .parse::<i64>()
        .map_err(|_| ApiError::field("period_months", "must be one of 1, 3, 6, 12, 24, 36"))?;
    let period = offered_period(&product, months)?;
    let amount = renewal_cost(&product, &license, period)?;
    license.lifecycle.can_renew()?;
    Ok(HttpResponse::Ok().json(RenewalQuote {
        period_months: period.months(),
        amount,
        currency: state.currency.as_str().to_owned(),
        valid_until_after: renewed_until(&license, period, state.clock.now()),
    }))
}

/// Renew a license
///
/// Orders a renewal for `period_months` (any period the product prices), paid like an order
/// (`payment`). Once paid, `valid_until` moves by that many calendar months from
/// max(`valid_until`, now) (a day past the end of the target month clamps to its last day),
/// `period_months` becomes the period, and an `expired` suspension lifts through
/// `in_progress` → `active`. Unpaid (`new_order`/`existing_order` without `pay_now`), the
/// renewal takes effect when its order is paid. 402 when the balance falls short, and nothing
/// changes. Refused (409) for `ordered`, `in_progress` and `deleted` licenses. Accepts
/// `If-Match`. `POST /v1/licenses/{id}/renewals/preview` answers what it would cost after
/// every check, changing nothing.
#[utoipa::path(
    operation_id = "renew_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    request_body = CreateRenewal,
    responses(
        (status = 201, description = "The license and the renewal's order", body = LicenseWithOrder),
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
#[post("/v1/licenses/{id}/renewals")]
pub async fn renew_license(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    query: web::Query<DryRunQuery>,
    body: crate::extract::Json<CreateRenewal>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    // Undocumented since the preview operation; still accepted for one release (CONTRACT §4).
    let dry_run = query.enabled()?;
    renew(state, principal, req, id.into_inner(), body, dry_run).await
}

/// Renews a license; with `dry_run`, runs every check and answers what the renewal would do,
/// keeping nothing. The renewal and its preview share it.
pub(crate) async fn renew(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Uuid,
    body: crate::extract::Json<CreateRenewal>,
    dry_run: bool,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let (visible, product) = visible_license(&state, &principal, id).await?;
    let body = body.into_inner()?;
    body.payment.authorize(&principal)?;
    // Checked before anything is locked; the use case checks again with the product the
    // license has under the lock.
    offered_period(&product, body.period_months)?;
    let txn = state.db.begin().await?;
    let Renewed {
        license,
        product,
        order,
        amount,
    } = renew::renew(
        &txn,
        &state,
        &principal.caller(),
        RenewLicense {
            license: visible.id,
            account: visible.account_id,
            period_months: body.period_months,
            payment: body.payment.0,
        },
        |license| check_if_match(&req, license.version),
    )
    .await?;
    if dry_run {
        // Every check ran inside the transaction; rolling back changes nothing.
        txn.rollback().await.map_err(PersistenceError::from)?;
        return Ok(HttpResponse::Ok().json(DryRunOut {
            amount,
            currency: state.currency.as_str().to_owned(),
            valid_until_after: license.lifecycle.valid_until,
        }));
    }
    let version = license.version;
    let out = LicenseWithOrder {
        license: LicenseOut::new(license, &product),
        order: OrderOut::from(order),
    };
    crate::idempotency::commit(txn, with_etag(HttpResponse::Created().json(out), version)).await
}
