//! `/v1/licenses`: ordering, reading, listing, enabling, disabling and deleting licenses.
use std::collections::BTreeMap;
use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::{AccountId, LicenseId, OrderId, ProductId};
use licentia_domain::license::Lifecycle;
use licentia_domain::license_record::{License, canonical_ip};
use licentia_domain::period::Period;
use licentia_domain::pricing::PricingError;
use licentia_domain::product::Product;
use licentia_persistence::TransactionTrait;
use licentia_persistence::repo::events::{self, NewEvent};
use licentia_persistence::repo::licenses::{self, Scope as LicenseScope};
use licentia_persistence::repo::{orders, products};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::orders::OrderOut;
use crate::auth::Principal;
use crate::crypto;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::service::billing;
use crate::service::lifecycle::{self, Caller, Transition};
use crate::state::AppState;

/// A software license.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseOut {
    /// UUIDv7.
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    /// Canonical text of the licensed IPv4 or IPv6 address.
    pub ip: String,
    pub product_id: Uuid,
    pub product_code: String,
    pub product_name: String,
    /// Length of the current term in months.
    pub period_months: u32,
    /// End of the paid term; null while `ordered`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    /// `ordered`, `in_progress`, `active`, `suspended` or `deleted`.
    pub status: String,
    /// `manual`, `expired` or `admin` while suspended; else null.
    pub suspension_reason: Option<String>,
    /// Quantity per option code.
    pub options: BTreeMap<String, u32>,
    /// Renewal period for auto-renewal; null when off.
    pub auto_renew_months: Option<u32>,
    /// The key the licensed software registers and validates with.
    pub registration_key: String,
    pub registrations_count: u32,
    /// Why provisioning failed; null unless it did.
    pub provisioning_error: Option<String>,
    /// The partner's own billing reference.
    pub external_id: Option<String>,
    /// Free-form string map (≤ 16 keys).
    pub metadata: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Bumped by every change; the `ETag` is derived from it.
    pub version: i64,
}

impl LicenseOut {
    pub fn new(l: License, product: &Product) -> Self {
        Self {
            id: l.id.as_uuid(),
            account_id: l.account_id.as_uuid(),
            name: l.name,
            ip: l.ip.to_string(),
            product_id: l.product_id.as_uuid(),
            product_code: product.code.clone(),
            product_name: product.name.clone(),
            period_months: l.period.months(),
            valid_until: l.lifecycle.valid_until,
            status: l.lifecycle.status.as_str().to_owned(),
            suspension_reason: l.lifecycle.suspension_reason.map(|r| r.as_str().to_owned()),
            options: l.options,
            auto_renew_months: l.auto_renew.map(|p| p.months()),
            registration_key: l.registration_key,
            registrations_count: l.registrations_count,
            provisioning_error: l.provisioning_error,
            external_id: l.external_id,
            metadata: l.metadata,
            created_at: l.created_at,
            updated_at: l.updated_at,
            version: l.version,
        }
    }
}

/// What events record of a license before and after a change.
pub fn license_snapshot(l: &License) -> serde_json::Value {
    serde_json::json!({
        "status": l.lifecycle.status.as_str(),
        "suspension_reason": l.lifecycle.suspension_reason.map(|r| r.as_str()),
        "valid_until": l.lifecycle.valid_until.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        "name": l.name,
        "ip": l.ip.to_string(),
        "product_id": l.product_id,
        "period_months": l.period.months(),
        "options": l.options,
        "auto_renew_months": l.auto_renew.map(|p| p.months()),
        "account_id": l.account_id,
        "version": l.version,
    })
}

/// The strong ETag of a license version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// 412 unless `If-Match` (when sent) names the current version.
pub fn check_if_match(req: &HttpRequest, version: i64) -> ApiResult<()> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(());
    };
    let value = value.to_str().map_err(|_| ApiError::PreconditionFailed)?;
    let current = etag(version);
    let ok = value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == current);
    if ok {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed)
    }
}

pub fn with_etag(mut res: HttpResponse, version: i64) -> HttpResponse {
    if let Ok(v) = header::HeaderValue::from_str(&etag(version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// How an order or renewal is paid.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaymentIn {
    /// Charge the account now; 402 when balance + credit limit do not cover it.
    // A struct variant, not a unit one: serde ignores unknown fields next to the tag of a
    // unit variant even with `deny_unknown_fields`.
    Balance {},
    /// Add the item to an unpaid order of the account.
    ExistingOrder {
        order_id: Uuid,
        /// Pay the whole order from the balance now.
        #[serde(default)]
        pay_now: bool,
    },
    /// Create a new unpaid order (an invoice).
    NewOrder {
        /// Pay the order from the balance now.
        #[serde(default)]
        pay_now: bool,
    },
}

impl PaymentIn {
    /// 403 unless the caller may pay with it: paying an existing order now pays every item of
    /// that order, so it needs `billing:write` like `POST /v1/orders/{id}/pay` (CONTRACT §5).
    pub fn authorize(&self, principal: &Principal) -> ApiResult<()> {
        match self {
            PaymentIn::ExistingOrder { pay_now: true, .. } => {
                principal.require(Scope::BillingWrite)
            }
            _ => Ok(()),
        }
    }
}

/// An order for a new license.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLicense {
    pub product_id: Uuid,
    /// 1..200 characters, not only white space.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: String,
    /// IPv4 or IPv6 address.
    #[schema(value_type = crate::openapi::types::IpAddress)]
    pub ip: String,
    /// A period the product prices.
    #[schema(value_type = crate::openapi::types::PeriodMonths)]
    pub period_months: i64,
    /// Quantity per option code; missing options get their minimum.
    #[serde(default)]
    #[schema(value_type = crate::openapi::types::OptionQuantities)]
    pub options: BTreeMap<String, i64>,
    /// Auto-renewal period (one the product prices), or null for off.
    #[schema(value_type = Option<crate::openapi::types::PeriodMonths>)]
    pub auto_renew_months: Option<i64>,
    /// Write-only; stored encrypted; at most 256 characters.
    #[schema(max_length = 256)]
    pub admin_password: Option<String>,
    /// 1..128 characters.
    #[schema(min_length = 1, max_length = 128)]
    pub external_id: Option<String>,
    /// ≤ 16 keys.
    #[serde(default)]
    #[schema(value_type = crate::openapi::types::Metadata)]
    pub metadata: BTreeMap<String, String>,
    /// The account to order for (admins only).
    pub account_id: Option<Uuid>,
    pub payment: PaymentIn,
}

/// A license with the order that carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseWithOrder {
    pub license: LicenseOut,
    pub order: OrderOut,
}

/// What a dry run would do.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunOut {
    /// The amount the operation costs, in minor units.
    pub amount: i64,
    pub currency: String,
    /// The license's `valid_until` afterwards (null while unpaid).
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_until_after: Option<OffsetDateTime>,
}

/// `?dry_run=true`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DryRunQuery {
    /// Run every check, change nothing, answer 200 with what would happen.
    #[param(value_type = Option<bool>)]
    pub dry_run: Option<String>,
}

impl DryRunQuery {
    pub fn enabled(&self) -> ApiResult<bool> {
        match self.dry_run.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::field("dry_run", "must be true or false")),
        }
    }
}

pub fn validate_metadata(metadata: &BTreeMap<String, String>, errors: &mut Vec<FieldError>) {
    if metadata.len() > 16 {
        errors.push(FieldError::new("metadata", "at most 16 keys"));
    }
    for (k, v) in metadata {
        if k.is_empty() || k.chars().count() > 64 {
            errors.push(FieldError::new(
                format!("metadata.{k}"),
                "keys are 1..64 characters",
            ));
        }
        if v.chars().count() > 512 {
            errors.push(FieldError::new(
                format!("metadata.{k}"),
                "values are at most 512 characters",
            ));
        }
    }
}

pub fn pricing_error(err: PricingError) -> FieldError {
    match err {
        PricingError::PeriodNotOffered(p) => FieldError::new(
            "period_months",
            format!("the product does not offer {} months", p.months()),
        ),
        PricingError::UnknownOption(code) => {
            FieldError::new(format!("options.{code}"), "the product has no such option")
        }
        PricingError::OptionOutOfBounds { code, min, max, .. } => FieldError::new(
            format!("options.{code}"),
            format!("must be from {min} to {max}"),
        ),
        // Too large to compute, or beyond the bound: 422 `amount_too_large`.
        PricingError::Overflow | PricingError::AmountTooLarge => {
            FieldError::amount_too_large("options")
        }
    }
}

/// Encrypts a secret for storage with AES-256-GCM (nonce ‖ ciphertext).
pub fn seal(state: &AppState, plain: &str) -> ApiResult<Vec<u8>> {
    crypto::seal(&state.encryption_key, plain.as_bytes()).map_err(ApiError::Internal)
}

/// Order a license
///
/// Creates the license and its order. Paid at once (`balance`, or `pay_now`), the license
/// goes to `in_progress` and then `active`; unpaid, it stays `ordered` until its order is paid.
/// With `?dry_run=true`, answers what it would cost after every check, changing nothing.
#[utoipa::path(
    operation_id = "create_license",
    tag = "licenses",
    params(DryRunQuery),
    request_body = CreateLicense,
    responses(
        (status = 201, description = "Ordered", body = LicenseWithOrder),
        (status = 200, description = "Dry run: what the order would do", body = DryRunOut),
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
    let dry_run = query.enabled()?;
    let body = body.into_inner()?;
    body.payment.authorize(&principal)?;
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
    let period = Period::new(body.period_months);
    if period.is_err() {
        errors.push(FieldError::new(
            "period_months",
            "must be one of 1, 3, 6, 12, 24, 36",
        ));
    }
    let auto_renew = body.auto_renew_months.map(Period::new).transpose();
    if auto_renew.is_err() {
        errors.push(FieldError::new(
            "auto_renew_months",
            "must be one of 1, 3, 6, 12, 24, 36, or null",
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
    let options = product.pricing.normalize_options(&options).map_err(|e| {
        errors.push(pricing_error(e));
    });
    let cost = options
        .as_ref()
        .ok()
        .map(|o| product.pricing.cost(period, o));
    let cost = match cost {
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
        && super::accounts::visible_account(&state, &principal, account_id.as_uuid())
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
        lifecycle: Lifecycle::ordered(),
        options,
        auto_renew,
        registration_key: format!("LK-{}", crypto::random_token(24)),
        registrations_count: 0,
        provisioning_error: None,
        external_id: body.external_id,
        metadata: body.metadata,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let license = licenses::insert(&txn, &license, sealed).await?;
    let (order_id, pay_now) = match body.payment {
        PaymentIn::Balance {} => (
            orders::create(&txn, account_id, state.currency.as_str()).await?,
            true,
        ),
        PaymentIn::NewOrder { pay_now } => (
            orders::create(&txn, account_id, state.currency.as_str()).await?,
            pay_now,
        ),
        PaymentIn::ExistingOrder { order_id, pay_now } => {
            let id = OrderId::from_uuid(order_id);
            match orders::lock(&txn, Some(account_id), id).await? {
                Some(o) if o.status == "unpaid" => (id, pay_now),
                Some(o) => {
                    return Err(ApiError::field(
                        "payment.order_id",
                        format!("the order is {}, not unpaid", o.status),
                    ));
                }
                None => return Err(ApiError::field("payment.order_id", "no such order")),
            }
        }
    };
    let item = orders::NewItem::for_license(
        &license,
        "license_order",
        period,
        cost,
        serde_json::json!({}),
    );
    if !orders::add_item(&txn, order_id, item).await? {
        return Err(ApiError::field(
            "payment.order_id",
            "the order is no longer unpaid",
        ));
    }
    events::record(
        &txn,
        NewEvent {
            event_type: "license.ordered",
            account_id,
            license_id: Some(license.id),
            actor: principal.actor(),
            before: None,
            after: Some(license_snapshot(&license)),
        },
    )
    .await?;
    let attempts = i32::try_from(state.config.provision_attempts).unwrap_or(10);
    let order = if pay_now {
        billing::pay_order(
            &txn,
            Some(account_id),
            order_id,
            principal.actor(),
            attempts,
            state.clock.now(),
        )
        .await?
    } else {
        orders::find(&txn, None, order_id)
            .await?
            .ok_or(ApiError::NotFound)?
    };
    let license = licenses::find(&txn, LicenseScope::All, license.id)
        .await?
        .ok_or(ApiError::NotFound)?;
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
    let out = LicenseWithOrder {
        license: LicenseOut::new(license, &product),
        order: OrderOut::from(order),
    };
    crate::idempotency::commit(txn, with_etag(HttpResponse::Created().json(out), version)).await
}

/// Loads a license the caller may see (404 otherwise) with its product.
pub async fn visible_license(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> ApiResult<(License, Product)> {
    let scope = if principal.is_admin() {
        LicenseScope::All
    } else {
        LicenseScope::Tenant(principal.account_id())
    };
    licenses::find_with_product(state.db.conn(), scope, LicenseId::from_uuid(id))
        .await?
        .ok_or(ApiError::NotFound)
}

/// Get a license
#[utoipa::path(
    operation_id = "get_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    responses(
        (status = 200, description = "The license", body = LicenseOut, headers(("ETag" = String, description = "Strong ETag of this version"))),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/licenses/{id}")]
pub async fn get_license(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let (license, product) = visible_license(&state, &principal, id.into_inner()).await?;
    let version = license.version;
    Ok(with_etag(
        HttpResponse::Ok().json(LicenseOut::new(license, &product)),
        version,
    ))
}

/// Applies a state transition under the row lock (shared with bulk operations:
/// [`crate::service::lifecycle::transition`]) and answers the license (204 for a deletion).
async fn transition(
    state: &AppState,
    principal: &Principal,
    req: &HttpRequest,
    id: Uuid,
    transition: Transition,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let (_, product) = visible_license(state, principal, id).await?;
    let txn = state
        .db
        .conn()
        .begin()
        .await
        .map_err(licentia_persistence::PersistenceError::from)?;
    let attempts = i32::try_from(state.config.provision_attempts).unwrap_or(10);
    let saved = lifecycle::transition(
        &txn,
        &Caller::of(principal),
        LicenseId::from_uuid(id),
        transition,
        state.clock.now(),
        attempts,
        |license| check_if_match(req, license.version),
    )
    .await?;
    let version = saved.version;
    let res = if transition == Transition::Delete {
        HttpResponse::NoContent().finish()
    } else {
        with_etag(
            HttpResponse::Ok().json(LicenseOut::new(saved, &product)),
            version,
        )
    };
    crate::idempotency::commit(txn, res).await
}

/// Disable a license
///
/// An `active` license becomes `suspended` (`manual` by a partner, `admin` by an admin).
#[utoipa::path(
    operation_id = "disable_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    responses(
        (status = 200, description = "The suspended license", body = LicenseOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 412, response = crate::openapi::PreconditionFailed),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/{id}/disable")]
pub async fn disable_license(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    transition(
        &state,
        &principal,
        &req,
        id.into_inner(),
        Transition::Disable,
    )
    .await
}

/// Enable a license
///
/// A `suspended` license goes through `in_progress` back to `active`. An administrative
/// suspension is lifted by admins only (403); a license past its term answers 409
/// `license_expired` — renew it instead.
#[utoipa::path(
    operation_id = "enable_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    responses(
        (status = 200, description = "The license, on its way back to active", body = LicenseOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 412, response = crate::openapi::PreconditionFailed),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/{id}/enable")]
pub async fn enable_license(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    transition(
        &state,
        &principal,
        &req,
        id.into_inner(),
        Transition::Enable,
    )
    .await
}

/// Delete a license
///
/// Soft delete: the license answers `GET` with status `deleted` and is listed only when asked
/// for; its unpaid order items are cancelled.
#[utoipa::path(
    operation_id = "delete_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 412, response = crate::openapi::PreconditionFailed),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[delete("/v1/licenses/{id}")]
pub async fn delete_license(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    transition(
        &state,
        &principal,
        &req,
        id.into_inner(),
        Transition::Delete,
    )
    .await
}

/// Filters, sort and paging of the license list; every filter is optional, combined with AND.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LicenseQuery {
    /// Exact license id.
    #[param(value_type = Option<Uuid>)]
    pub id: Option<String>,
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
    /// An exact address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
    #[param(value_type = Option<crate::openapi::types::IpOrCidr>)]
    pub ip: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub product_id: Option<String>,
    #[param(value_type = Option<crate::openapi::types::PeriodMonths>)]
    pub period_months: Option<String>,
    /// Comma-separated statuses; `deleted` only appears when listed here.
    #[param(
        pattern = "^(ordered|in_progress|active|suspended|deleted)(,(ordered|in_progress|active|suspended|deleted))*$"
    )]
    pub status: Option<String>,
    /// `valid_until` on or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub valid_until_from: Option<String>,
    /// `valid_until` on or before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub valid_until_to: Option<String>,
    pub external_id: Option<String>,
    /// Admins only.
    #[param(value_type = Option<Uuid>)]
    pub account_id: Option<String>,
    /// `created_at`, `-created_at` (default), `valid_until`, `-valid_until`, `name`, `-name`.
    #[param(pattern = "^-?(created_at|valid_until|name)$")]
    pub sort: Option<String>,
    /// Page size, 1..200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn parse_time(field: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| errors.push(FieldError::new(field, "must be an RFC 3339 date-time")))
        .ok()
}

fn cidr_range(raw: &str) -> Option<([u8; 16], [u8; 16])> {
    use licentia_domain::license_record::ip_key;
    if let Ok(ip) = raw.parse::<IpAddr>() {
        let key = ip_key(ip);
        return Some((key, key));
    }
    let net: ipnet::IpNet = raw.parse().ok()?;
    Some((ip_key(net.network()), ip_key(net.broadcast())))
}

/// The list filters as text: the query of `GET /v1/licenses`, or a bulk operation's `filter`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FilterText<'a> {
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub product_id: Option<&'a str>,
    pub period_months: Option<&'a str>,
    pub status: Option<&'a str>,
    pub valid_until_from: Option<&'a str>,
    pub valid_until_to: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub account_id: Option<&'a str>,
}

/// Parses the license list's filters; every bad value adds an error naming
/// `<prefix><parameter>`, and `account_id` is refused to everyone but admins.
pub fn parse_filter(
    principal: &Principal,
    f: FilterText<'_>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> licentia_persistence::repo::licenses::Filter {
    let mut filter = licentia_persistence::repo::licenses::Filter::default();
    if let Some(id) = f.id {
        match id.parse::<Uuid>() {
            Ok(id) => filter.id = Some(LicenseId::from_uuid(id)),
            Err(_) => errors.push(FieldError::new(format!("{prefix}id"), "must be a UUID")),
        }
    }
    if let Some(name) = f.name {
        filter.name = Some(name.to_lowercase());
    }
    if let Some(ip) = f.ip {
        match cidr_range(ip) {
            Some(range) => filter.ip_range = Some(range),
            None => errors.push(FieldError::new(
                format!("{prefix}ip"),
                "must be an IP address or CIDR block",
            )),
        }
    }
    if let Some(p) = f.product_id {
        match p.parse::<Uuid>() {
            Ok(id) => filter.product_id = Some(ProductId::from_uuid(id)),
            Err(_) => errors.push(FieldError::new(
                format!("{prefix}product_id"),
                "must be a UUID",
            )),
        }
    }
    if let Some(p) = f.period_months {
        match p.parse::<i64>().ok().and_then(|n| Period::new(n).ok()) {
            Some(p) => filter.period_months = Some(p.months()),
            None => errors.push(FieldError::new(
                format!("{prefix}period_months"),
                "must be one of 1, 3, 6, 12, 24, 36",
            )),
        }
    }
    if let Some(list) = f.status {
        for s in list.split(',').map(str::trim) {
            if s.parse::<licentia_domain::license::LicenseStatus>().is_ok() {
                filter.statuses.push(s.to_owned());
            } else {
                errors.push(FieldError::new(
                    format!("{prefix}status"),
                    format!("unknown status {s:?}"),
                ));
            }
        }
    }
    if let Some(t) = f.valid_until_from {
        filter.valid_until_from = parse_time(&format!("{prefix}valid_until_from"), t, errors);
    }
    if let Some(t) = f.valid_until_to {
        filter.valid_until_to = parse_time(&format!("{prefix}valid_until_to"), t, errors);
    }
    filter.external_id = f.external_id.map(str::to_owned);
    if let Some(a) = f.account_id {
        if !principal.is_admin() {
            errors.push(FieldError::new(
                format!("{prefix}account_id"),
                "only the provider's administrators may filter by account",
            ));
        } else {
            match a.parse::<Uuid>() {
                Ok(id) => filter.account_id = Some(AccountId::from_uuid(id)),
                Err(_) => errors.push(FieldError::new(
                    format!("{prefix}account_id"),
                    "must be a UUID",
                )),
            }
        }
    }
    filter
}

/// List licenses
///
/// Keyset-paged; filters combine with AND. An unknown parameter or a bad value is 422
/// naming it.
#[utoipa::path(
    operation_id = "list_licenses",
    tag = "licenses",
    params(LicenseQuery),
    responses(
        (status = 200, description = "A page of licenses", body = crate::pagination::Page<LicenseOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/licenses")]
pub async fn list_licenses(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<LicenseQuery>,
) -> ApiResult<HttpResponse> {
    use licentia_persistence::repo::licenses::{After, Sort};
    principal.require(Scope::LicensesRead)?;
    let q = query.into_inner();
    let mut errors = Vec::new();
    let limit = crate::pagination::parse_limit(q.limit.as_deref())
        .map_err(|e| errors.push(e))
        .unwrap_or(1);
    let filter = parse_filter(
        &principal,
        FilterText {
            id: q.id.as_deref(),
            name: q.name.as_deref(),
            ip: q.ip.as_deref(),
            product_id: q.product_id.as_deref(),
            period_months: q.period_months.as_deref(),
            status: q.status.as_deref(),
            valid_until_from: q.valid_until_from.as_deref(),
            valid_until_to: q.valid_until_to.as_deref(),
            external_id: q.external_id.as_deref(),
            account_id: q.account_id.as_deref(),
        },
        "",
        &mut errors,
    );
    let sort_text = q.sort.clone().unwrap_or_else(|| "-created_at".into());
    let sort = match sort_text.as_str() {
        "created_at" => Sort::CreatedAt { desc: false },
        "-created_at" => Sort::CreatedAt { desc: true },
        "valid_until" => Sort::ValidUntil { desc: false },
        "-valid_until" => Sort::ValidUntil { desc: true },
        "name" => Sort::Name { desc: false },
        "-name" => Sort::Name { desc: true },
        _ => {
            errors.push(FieldError::new(
                "sort",
                "must be one of created_at, valid_until, name, optionally prefixed by -",
            ));
            Sort::CreatedAt { desc: true }
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // The cursor is bound to the caller and to the exact filter and sort it came from.
    let scope_key = format!(
        "{}|licenses|{sort_text}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        principal.account_id(),
        q.id,
        q.name,
        q.ip,
        q.product_id,
        q.period_months,
        q.status,
        q.valid_until_from,
        q.valid_until_to,
        q.external_id,
        q.account_id
    );
    let after = match &q.cursor {
        None => None,
        Some(c) => {
            let key = state.cursors.decode(&scope_key, c)?;
            Some(match sort {
                Sort::CreatedAt { .. } => After::Id(key.id),
                Sort::ValidUntil { .. } => After::ValidUntil(
                    key.value.as_deref().and_then(|v| {
                        OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                            .ok()
                    }),
                    key.id,
                ),
                Sort::Name { .. } => After::Name(key.value.unwrap_or_default(), key.id),
            })
        }
    };
    let scope = if principal.is_admin() {
        LicenseScope::All
    } else {
        LicenseScope::Tenant(principal.account_id())
    };
    let search = state.db.begin_search().await?;
    let rows = licenses::list(&search, scope, &filter, sort, after, limit + 1).await?;
    // One statement for the page's products, however many licenses refer to them.
    let product_ids: Vec<ProductId> = rows
        .iter()
        .map(|l| l.product_id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let catalog: BTreeMap<ProductId, Product> = products::find_many(&search, &product_ids)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    search
        .commit()
        .await
        .map_err(licentia_persistence::PersistenceError::from)?;
    let key_of = |l: &License| crate::pagination::CursorKey {
        id: l.id.as_uuid(),
        value: match sort {
            Sort::CreatedAt { .. } => None,
            Sort::ValidUntil { .. } => l.lifecycle.valid_until.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
            Sort::Name { .. } => Some(l.name.to_lowercase()),
        },
    };
    let mut items = Vec::new();
    let page = crate::pagination::page_of(rows, limit, &state.cursors, &scope_key, key_of, |l| l);
    for l in page.items {
        if let Some(p) = catalog.get(&l.product_id) {
            items.push(LicenseOut::new(l, p));
        }
    }
    Ok(HttpResponse::Ok().json(crate::pagination::Page {
        items,
        next_cursor: page.next_cursor,
    }))
}
