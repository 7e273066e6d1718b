//! `POST /v1/licenses`: ordering a license with its order and payment.
use actix_web::{HttpResponse, post, web};
use licentia_app::licenses::order::{self, OrderLicense, Term};
use licentia_app::tx::finish;
use licentia_domain::auth::Scope;
use licentia_domain::ids::{AccountId, ProductId};
use licentia_domain::license_fields::{
    AdminPasswordText, ExternalId, LicenseName, Metadata, parse_ip, parse_quantities,
};
use licentia_domain::period::Period;

use super::{
    CreateLicense, CreatedLicense, DryRunOut, DryRunQuery, LicenseOut, PaymentIn, with_etag,
};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Errors};
use crate::routes::orders::OrderOut;
use crate::state::AppState;

/// Order a license
///
/// Creates the license and its order. Paid at once (`balance`, or `pay_now`), the license
/// goes to `in_progress` and then `active`; unpaid, it stays `ordered` until its order is paid.
/// With `"trial": true` (and neither `payment` nor `period_months`), a free trial of the
/// product's `trial_days`: `active` (through `in_progress`) at once, `order` null, one per
/// product and account and one per product and address (409 `trial_used`).
/// `POST /v1/licenses/preview` answers what it would cost after every check, changing nothing.
#[utoipa::path(
    operation_id = "create_license",
    tag = "licenses",
    request_body = CreateLicense,
    responses(
        (status = 201, description = "Ordered: the license and its order (null for a trial)", body = CreatedLicense),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 402, response = crate::openapi::PaymentRequired),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses")]
pub async fn create_license(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<DryRunQuery>,
    body: crate::extract::Json<CreateLicense>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    // `?dry_run=true` is no longer documented (the preview operation replaces it); it is
    // still accepted, with the preview's answer, for one release (CONTRACT §4).
    let dry_run = query.enabled()?;
    order_license(state, principal, body, dry_run).await
}

/// Orders a license; with `dry_run`, runs every check and answers what the order would do,
/// keeping nothing. `POST /v1/licenses` and its preview share it, so they cannot disagree.
pub(crate) async fn order_license(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::extract::Json<CreateLicense>,
    dry_run: bool,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let body = body.into_inner()?;
    if let Some(payment) = &body.payment {
        payment.authorize(&principal)?;
    }
    let named_account = body.account_id.is_some();
    let command = command(body, &principal)?;
    if principal.is_admin()
        && named_account
        && crate::routes::accounts::visible_account(
            &state,
            &principal,
            command.account_id.as_uuid(),
        )
        .await
        .is_err()
    {
        return Err(ApiError::field("account_id", "no such account"));
    }
    let txn = state.begin().await?;
    let ordered = order::order(&state, &txn, principal.actor(), command).await?;
    if dry_run {
        // Every check ran inside the transaction; rolling it back keeps nothing.
        finish(txn, true).await?;
        return Ok(HttpResponse::Ok().json(DryRunOut {
            amount: ordered.cost,
            currency: state.currency.as_str().to_owned(),
            valid_until_after: ordered.license.lifecycle.valid_until,
        }));
    }
    let version = ordered.license.version;
    let out = CreatedLicense {
        license: LicenseOut::new(ordered.license, &ordered.product),
        order: ordered.order.map(OrderOut::from),
    };
    crate::idempotency::commit(txn, with_etag(HttpResponse::Created().json(out), version)).await
}

/// The order the body asks for, every field parsed; 422 naming each invalid field.
fn command(body: CreateLicense, principal: &Principal) -> ApiResult<OrderLicense> {
    let mut errors = Errors::default();
    let account_id = match body.account_id {
        Some(id) if principal.is_admin() => AccountId::from_uuid(id),
        Some(_) => {
            errors.push(
                "account_id",
                "only the provider's administrators may order for another account",
            );
            principal.account_id()
        }
        None => principal.account_id(),
    };
    let name = errors.check("name", LicenseName::parse(&body.name));
    let ip = errors.check("ip", parse_ip(&body.ip));
    let term = term(&mut errors, body.trial, body.period_months, body.payment);
    let auto_renew = match body.auto_renew_months.map(Period::new).transpose() {
        Err(_) => errors.fail(
            "auto_renew_months",
            "must be one of 1, 3, 6, 12, 24, 36, or null",
        ),
        Ok(Some(_)) if body.trial => errors.fail(
            "auto_renew_months",
            "cannot be set on a trial; set it once a paid renewal has converted the license",
        ),
        Ok(period) => Some(period),
    };
    let admin_password = body
        .admin_password
        .map(|p| errors.check("admin_password", AdminPasswordText::parse(p)));
    let external_id = body
        .external_id
        .map(|e| errors.check("external_id", ExternalId::parse(e)));
    let metadata = errors.check_all(Metadata::parse(body.metadata));
    let options = errors.check_all(parse_quantities(&body.options));
    match (name, ip, term, auto_renew, metadata, options) {
        (Some(name), Some(ip), Some(term), Some(auto_renew), Some(metadata), Some(options))
            if errors.is_empty() =>
        {
            Ok(OrderLicense {
                account_id,
                product_id: ProductId::from_uuid(body.product_id),
                name,
                ip,
                term,
                options,
                auto_renew,
                admin_password: admin_password.flatten(),
                external_id: external_id.flatten(),
                metadata,
            })
        }
        _ => Err(errors.into_error()),
    }
}

/// The term the body asks for. A trial has neither a period nor a payment: its term is the
/// product's trial days, and it is free.
fn term(
    errors: &mut Errors,
    trial: bool,
    period_months: Option<i64>,
    payment: Option<PaymentIn>,
) -> Option<Term> {
    match (trial, period_months, payment) {
        (true, period, payment) => {
            if period.is_some() {
                errors.push(
                    "period_months",
                    "a trial has no period_months: its term is the product's trial_days",
                );
            }
            if payment.is_some() {
                errors.push(
                    "payment",
                    "a trial is free: send no payment (a renewal converts it later)",
                );
            }
            Some(Term::Trial)
        }
        (false, period, payment) => {
            let period = match period {
                None => errors.fail("period_months", "is required"),
                Some(months) => errors.check(
                    "period_months",
                    Period::new(months).map_err(|_| "must be one of 1, 3, 6, 12, 24, 36"),
                ),
            };
            let payment = payment.or_else(|| errors.fail("payment", "is required"));
            period.zip(payment).map(|(period, payment)| Term::Paid {
                period,
                payment: payment.0,
            })
        }
    }
}
