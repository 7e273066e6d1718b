//! `POST /v1/licenses`: ordering a license with its order and payment.
use std::collections::BTreeMap;
use std::net::IpAddr;

use actix_web::{HttpResponse, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::{AccountId, LicenseId, ProductId};
use licentia_domain::license::Lifecycle;
use licentia_domain::license_record::{Annotation, License, canonical_ip};
use licentia_domain::period::Period;
use licentia_persistence::repo::events::{self, NewEvent};
use licentia_persistence::repo::licenses::{self, Scope as LicenseScope};
use licentia_persistence::repo::trials;
use licentia_persistence::repo::{orders, products};
use licentia_persistence::{DatabaseTransaction, TransactionTrait};

use super::{
    CreateLicense, CreatedLicense, DryRunOut, DryRunQuery, LicenseOut, PaymentIn, license_snapshot,
    pricing_error, seal, validate_metadata, with_etag,
};
use crate::auth::Principal;
use crate::crypto;
use crate::error::{ApiError, ApiResult, AppError, FieldError};
use crate::routes::orders::OrderOut;
use crate::state::AppState;
use licentia_app::licenses::renew::{Checkout, PaymentPlan};
use licentia_app::provisioning;

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
    let db = state.db.conn();
    let mut errors = Vec::new();
    let account_id = match body.account_id {
        Some(id) if principal.is_admin() => AccountId::from_uuid(id),
        Some(_) => {
            errors.push(FieldError::new(
                "account_id",
                "only the provider's administrators may order for another account",
            ));
            principal.account_id()
        }
        None => principal.account_id(),
    };
    let product = products::find(db, ProductId::from_uuid(body.product_id)).await?;
    match &product {
        None => errors.push(FieldError::new("product_id", "no such product")),
        Some(p) if p.archived => {
            errors.push(FieldError::new("product_id", "the product is archived"))
        }
        Some(p) if body.trial && p.trial_days == 0 => {
            errors.push(FieldError::new("trial", "the product offers no trial"))
        }
        _ => {}
    }
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1..200 characters"));
    }
    let ip = body.ip.parse::<IpAddr>().map(canonical_ip);
    if ip.is_err() {
        errors.push(FieldError::new("ip", "must be an IPv4 or IPv6 address"));
    }
    // A trial has neither: its term is the product's trial days, and it is free.
    let period = match (body.trial, body.period_months) {
        (true, None) => Ok(None),
        (true, Some(_)) => Err(FieldError::new(
            "period_months",
            "a trial has no period_months: its term is the product's trial_days",
        )),
        (false, None) => Err(FieldError::new("period_months", "is required")),
        (false, Some(months)) => Period::new(months)
            .map(Some)
            .map_err(|_| FieldError::new("period_months", "must be one of 1, 3, 6, 12, 24, 36")),
    }
    .map_err(|e| errors.push(e));
    match (body.trial, &body.payment) {
        (true, Some(_)) => errors.push(FieldError::new(
            "payment",
            "a trial is free: send no payment (a renewal converts it later)",
        )),
        (false, None) => errors.push(FieldError::new("payment", "is required")),
        _ => {}
    }
    let auto_renew = body.auto_renew_months.map(Period::new).transpose();
    if auto_renew.is_err() {
        errors.push(FieldError::new(
            "auto_renew_months",
            "must be one of 1, 3, 6, 12, 24, 36, or null",
        ));
    } else if body.trial && body.auto_renew_months.is_some() {
        errors.push(FieldError::new(
            "auto_renew_months",
            "cannot be set on a trial; set it once a paid renewal has converted the license",
        ));
    }
    if body
        .admin_password
        .as_ref()
        .is_some_and(|p| p.chars().count() > 256)
    {
        errors.push(FieldError::new("admin_password", "at most 256 characters"));
    }
    if body
        .external_id
        .as_ref()
        .is_some_and(|e| e.is_empty() || e.chars().count() > 128)
    {
        errors.push(FieldError::new("external_id", "must be 1..128 characters"));
    }
    validate_metadata(&body.metadata, &mut errors);
    let mut options = BTreeMap::new();
    for (code, qty) in &body.options {
        match u32::try_from(*qty) {
            Ok(q) => {
                options.insert(code.clone(), q);
            }
            Err(_) => errors.push(FieldError::new(
                format!("options.{code}"),
                "must be a non-negative integer",
            )),
        }
    }
    let (Some(product), Ok(ip), Ok(period), Ok(auto_renew)) = (product, ip, period, auto_renew)
    else {
        return Err(ApiError::validation(errors));
    };
    // A trial's term is as long as the product's shortest priced period says it lasts.
    let Some(period) = period.or_else(|| product.pricing.prices.iter().map(|p| p.period).min())
    else {
        return Err(ApiError::field("product_id", "the product has no prices"));
    };
    let options = product.pricing.normalize_options(&options).map_err(|e| {
        errors.push(pricing_error(e));
    });
    let cost = options
        .as_ref()
        .ok()
        .map(|o| product.pricing.cost(period, o));
    let cost = match cost {
        // Trial days are free.
        Some(Ok(_)) if body.trial => Some(0),
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            errors.push(pricing_error(e));
            None
        }
        None => None,
    };
    if auto_renew.is_some_and(|p| product.pricing.price_for(p).is_none()) {
        errors.push(FieldError::new(
            "auto_renew_months",
            "the product does not offer this period",
        ));
    }
    let (Ok(options), Some(cost), true) = (options, cost, errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    if principal.is_admin()
        && body.account_id.is_some()
        && crate::routes::accounts::visible_account(&state, &principal, account_id.as_uuid())
            .await
            .is_err()
    {
        return Err(ApiError::field("account_id", "no such account"));
    }
    let sealed = body
        .admin_password
        .as_deref()
        .map(|p| seal(&state, p))
        .transpose()?;

    let now = state.clock.now();
    let attempts = i32::try_from(state.config.provision_attempts).unwrap_or(10);
    let txn = db
        .begin()
        .await
        .map_err(licentia_persistence::PersistenceError::from)?;
    let license = License {
        id: LicenseId::new(),
        account_id,
        product_id: product.id,
        name,
        ip,
        period,
        lifecycle: if body.trial {
            Lifecycle::trial(now + time::Duration::days(i64::from(product.trial_days)))
        } else {
            Lifecycle::ordered()
        },
        options,
        auto_renew,
        registration_key: format!("LK-{}", crypto::random_token(24)),
        registrations_count: 0,
        provisioning_error: None,
        external_id: body.external_id,
        metadata: body.metadata,
        trial: body.trial,
        suspension: Annotation::default(),
        deletion: Annotation::default(),
        version: 1,
        created_at: now,
        updated_at: now,
        last_validated_at: None,
    };
    let license = licenses::insert(&txn, &license, sealed).await?;
    let order = match &body.payment {
        Some(payment) if !body.trial => {
            Some(place_order(&state, &principal, &txn, &license, payment, cost, attempts).await?)
        }
        _ => {
            // One trial per product and account, and per product and address: unique keys
            // written in this transaction, so a concurrent second request finds them taken.
            if !trials::claim(&txn, product.id, account_id, license.id, ip).await? {
                return Err(AppError::TrialUsed.into());
            }
            provisioning::enqueue(&txn, license.id, attempts).await?;
            record_ordered(&txn, &principal, &license).await?;
            None
        }
    };
    let license = licenses::find(&txn, LicenseScope::All, license.id)
        .await?
        .ok_or(ApiError::not_found())?;
    if dry_run {
        // Every check ran inside the transaction; dropping it rolls everything back.
        txn.rollback()
            .await
            .map_err(licentia_persistence::PersistenceError::from)?;
        return Ok(HttpResponse::Ok().json(DryRunOut {
            amount: cost,
            currency: state.currency.as_str().to_owned(),
            valid_until_after: license.lifecycle.valid_until,
        }));
    }
    let version = license.version;
    let out = CreatedLicense {
        license: LicenseOut::new(license, &product),
        order: order.map(OrderOut::from),
    };
    crate::idempotency::commit(txn, with_etag(HttpResponse::Created().json(out), version)).await
}

async fn record_ordered(
    txn: &DatabaseTransaction,
    principal: &Principal,
    license: &License,
) -> ApiResult<()> {
    events::record(
        txn,
        NewEvent {
            event_type: "license.ordered",
            account_id: license.account_id,
            license_id: Some(license.id),
            actor: principal.actor(),
            before: None,
            after: Some(license_snapshot(license)),
        },
    )
    .await?;
    Ok(())
}

/// The order of a new (not trial) license: its `license_order` item in a new or an existing
/// order, paid at once when the payment says so (the renewal's [`PaymentPlan`]).
async fn place_order(
    state: &AppState,
    principal: &Principal,
    txn: &DatabaseTransaction,
    license: &License,
    payment: &PaymentIn,
    cost: i64,
    attempts: i32,
) -> ApiResult<orders::Order> {
    let plan = PaymentPlan::resolve(txn, license.account_id, &payment.0).await?;
    let item = orders::NewItem::for_license(
        license,
        "license_order",
        license.period,
        cost,
        serde_json::json!({}),
    );
    record_ordered(txn, principal, license).await?;
    let checkout = Checkout {
        account: license.account_id,
        currency: state.currency.as_str(),
        actor: principal.actor(),
        provision_attempts: attempts,
        now: state.clock.now(),
    };
    Ok(plan.place(txn, &checkout, item).await?)
}
