//! `/v1/licenses`: the license resource (its wire shape, ETags, payment and dry-run inputs) and
//! one module per verb: ordering, reading, listing, and the state transitions.
use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use licentia_domain::auth::Scope;
use licentia_domain::ids::LicenseId;
use licentia_domain::license::{LicenseStatus, SuspensionReason};
use licentia_domain::license_record::{Cause, License};
use licentia_domain::product::Product;
use licentia_persistence::repo::licenses::{self, Scope as LicenseScope};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub use licentia_app::error::pricing_error;
pub use licentia_app::snapshot::license_snapshot;
use licentia_app::{AppError, AppResult, Payment};

use super::orders::OrderOut;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

mod list;
mod order;
mod payment;
mod read;
mod transition;

pub use list::*;
pub use order::*;
pub use read::*;
pub use transition::*;

/// A software license.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct LicenseOut {
    /// UUIDv7.
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    /// Canonical text of the licensed IPv4 or IPv6 address.
    #[schema(value_type = crate::openapi::types::IpAddress)]
    pub ip: String,
    pub product_id: Uuid,
    pub product_code: String,
    pub product_name: String,
    /// Length of the current term in months.
    #[schema(value_type = crate::openapi::types::PeriodMonths)]
    pub period_months: u32,
    /// End of the paid term; null while `ordered`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    /// `ordered`, `in_progress`, `active`, `suspended` or `deleted`.
    #[schema(value_type = crate::openapi::types::LicenseStatus)]
    pub status: LicenseStatus,
    /// `manual`, `expired` or `admin` while suspended; else null.
    #[schema(value_type = Option<crate::openapi::types::SuspensionReason>)]
    pub suspension_reason: Option<SuspensionReason>,
    /// Quantity per option code.
    pub options: BTreeMap<String, u32>,
    /// Renewal period for auto-renewal; null when off.
    #[schema(value_type = Option<crate::openapi::types::PeriodMonths>)]
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
    /// A free trial (`trial_days` of its product, no charge); its first paid renewal converts
    /// it (then false).
    pub trial: bool,
    /// Why it was disabled, as given with the disable; null unless it is suspended by that
    /// disable (cleared on enable).
    #[schema(value_type = Option<crate::openapi::types::LicenseCause>)]
    pub suspension_cause: Option<Cause>,
    /// The note given with the disable (≤ 500 characters); null like `suspension_cause`.
    pub suspension_note: Option<String>,
    /// Why it was deleted, as given with the delete; null otherwise.
    #[schema(value_type = Option<crate::openapi::types::LicenseCause>)]
    pub deletion_cause: Option<Cause>,
    /// The note given with the delete (≤ 500 characters).
    pub deletion_note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Bumped by every change; the `ETag` is derived from it.
    pub version: i64,
    /// When the licensed software last validated the license; null until it first does.
    /// Written in batches: it may lag by up to a minute. Usage, not an edit: it changes
    /// neither `version` nor `updated_at`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_validated_at: Option<OffsetDateTime>,
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
            status: l.lifecycle.status,
            suspension_reason: l.lifecycle.suspension_reason,
            options: l.options,
            auto_renew_months: l.auto_renew.map(|p| p.months()),
            registration_key: l.registration_key,
            registrations_count: l.registrations_count,
            provisioning_error: l.provisioning_error,
            external_id: l.external_id,
            metadata: l.metadata,
            trial: l.trial,
            suspension_cause: l.suspension.cause,
            suspension_note: l.suspension.note,
            deletion_cause: l.deletion.cause,
            deletion_note: l.deletion.note,
            created_at: l.created_at,
            updated_at: l.updated_at,
            version: l.version,
            last_validated_at: l.last_validated_at,
        }
    }
}

/// The strong ETag of a license version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// 412 unless `If-Match` (when sent) names the current version.
pub fn check_if_match(req: &HttpRequest, version: i64) -> AppResult<()> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(());
    };
    let value = value.to_str().map_err(|_| AppError::PreconditionFailed)?;
    let current = etag(version);
    let ok = value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == current);
    if ok {
        Ok(())
    } else {
        Err(AppError::PreconditionFailed)
    }
}

pub fn with_etag(mut res: HttpResponse, version: i64) -> HttpResponse {
    if let Ok(v) = header::HeaderValue::from_str(&etag(version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// How an order or renewal is paid: the use cases' [`Payment`] on the wire. Its schema (named
/// variants with a discriminator) is written in `payment.rs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct PaymentIn(pub Payment);

impl PaymentIn {
    /// 403 unless the caller may pay with it: paying an existing order now pays every item of
    /// that order, so it needs `billing:write` like `POST /v1/orders/{id}/pay` (CONTRACT §5).
    pub fn authorize(&self, principal: &Principal) -> ApiResult<()> {
        if self.0.pays_existing_order() {
            principal.require(Scope::BillingWrite)?;
        }
        Ok(())
    }
}

/// An order for a new license.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "product_id": "019a0c5e-6f21-7a3b-8c4d-5e6f7a8b9c0d",
    "name": "shop.example.com panel",
    "ip": "192.0.2.10",
    "period_months": 12,
    "options": {"extra_domains": 5},
    "external_id": "INV-2026-0042",
    "payment": {"method": "balance"}
})))]
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
    /// A period the product prices. Required, unless `trial` is true: a trial has no
    /// `period_months` (its term is the product's `trial_days`).
    #[schema(value_type = Option<crate::openapi::types::PeriodMonths>)]
    pub period_months: Option<i64>,
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
    /// How the order is paid. Required, unless `trial` is true: a trial is free and has no
    /// `payment`.
    pub payment: Option<PaymentIn>,
    /// A free trial of the product for its `trial_days` (422 when the product offers none),
    /// without `payment` and `period_months` (422 with either) and without
    /// `auto_renew_months`. One trial per product and account, and one per product and
    /// address across all accounts (409 `trial_used`). The license is `active` (through
    /// `in_progress`) until `valid_until`; a paid renewal converts it.
    #[serde(default)]
    pub trial: bool,
}

/// A new license with the order that carries it; `order` is null for a trial (nothing to pay).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedLicense {
    pub license: LicenseOut,
    pub order: Option<OrderOut>,
}

/// A license with the order that carries it.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct LicenseWithOrder {
    pub license: LicenseOut,
    pub order: OrderOut,
}

/// What a preview announces (`POST …/preview`): what the operation would cost and the
/// license's `valid_until` after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunOut {
    /// The amount the operation costs, in minor units (negative: a credit, for a downgrade).
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
        .ok_or(ApiError::not_found())
}
