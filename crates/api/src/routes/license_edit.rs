//! `PATCH /v1/licenses/{id}`: editing a license. Unprovisioned fields change in any status but
//! `deleted`; provisioned ones (`ip`, `product_id`, `registration_key`) pass an `active` or
//! `suspended` license through `in_progress` while the provisioner applies them.
use std::collections::BTreeMap;
use std::net::IpAddr;

use actix_web::{HttpRequest, HttpResponse, patch, web};
use licentia_domain::auth::Scope;
use licentia_domain::calendar::sub_months;
use licentia_domain::ids::{LicenseId, ProductId};
use licentia_domain::license::{LicenseStatus, ProvisionedField};
use licentia_domain::license_record::{canonical_ip, valid_registration_key};
use licentia_domain::period::Period;
use licentia_domain::pricing::prorate;
use licentia_persistence::repo::events::{self, NewEvent};
use licentia_persistence::repo::ledger;
use licentia_persistence::repo::licenses::{self, Scope as LicenseScope};
use licentia_persistence::repo::{orders, products, trials};
use licentia_persistence::{PersistenceError, TransactionTrait};
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::licenses::{
    LicenseOut, check_if_match, license_snapshot, pricing_error, seal, validate_metadata,
    visible_license, with_etag,
};
use crate::auth::Principal;
use crate::crypto;
use crate::error::{ApiError, ApiResult, AppError, FieldError};
use crate::state::AppState;
use licentia_app::orders as billing;
use licentia_app::provisioning;

/// `Some(None)` when the field is present and null, `None` when absent.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a license; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicensePatch {
    /// 1..200 characters, not only white space.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: Option<String>,
    /// IPv4 or IPv6 address.
    #[schema(value_type = Option<crate::openapi::types::IpAddress>)]
    pub ip: Option<String>,
    /// Another product offering the license's period and options; the prorated price
    /// difference for the rest of the term is charged (upgrade) or credited (downgrade).
    pub product_id: Option<Uuid>,
    /// Write-only, stored encrypted; null clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub admin_password: Option<Option<String>>,
    /// `"rotate"` for a fresh random key, or a key of 16..128 characters `[A-Za-z0-9_-]`.
    #[schema(pattern = "^(rotate|[A-Za-z0-9_-]{16,128})$")]
    pub registration_key: Option<String>,
    /// Delete every registration of the license (e.g. with a new key for another customer).
    pub delete_registrations: Option<bool>,
    /// Auto-renewal period; null turns it off.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<crate::openapi::types::PeriodMonths>)]
    pub auto_renew_months: Option<Option<i64>>,
    /// The partner's billing reference (1..128 characters); null clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 128)]
    pub external_id: Option<Option<String>>,
    /// Replaces the metadata (≤ 16 keys).
    #[schema(value_type = Option<crate::openapi::types::Metadata>)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Admins only: set the end of the term.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
}

/// Edit a license
///
/// Accepts `If-Match` (412 on mismatch). The response already shows the new values; an
/// `active`/`suspended` license whose `ip`, `product_id` or `registration_key` changed is
/// `in_progress` until the provisioner has applied them.
#[utoipa::path(
    operation_id = "update_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    request_body = LicensePatch,
    responses(
        (status = 200, description = "The updated license", body = LicenseOut),
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
#[patch("/v1/licenses/{id}")]
pub async fn update_license(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: crate::extract::Json<LicensePatch>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let id = id.into_inner();
    let (_, old_product) = visible_license(&state, &principal, id).await?;
    let patch = body.into_inner()?;
    let db = state.db.conn();

    // Validation (422) first, all fields at once.
    let mut errors = Vec::new();
    if let Some(name) = &patch.name
        && (name.trim().is_empty() || name.chars().count() > 200)
    {
        errors.push(FieldError::new("name", "must be 1..200 characters"));
    }
    let ip = match patch.ip.as_deref().map(str::parse::<IpAddr>) {
        Some(Ok(ip)) => Some(canonical_ip(ip)),
        Some(Err(_)) => {
            errors.push(FieldError::new("ip", "must be an IPv4 or IPv6 address"));
            None
        }
        None => None,
    };
    let new_key = match patch.registration_key.as_deref() {
        Some("rotate") => Some(format!("LK-{}", crypto::random_token(24))),
        Some(key) if valid_registration_key(key) => Some(key.to_owned()),
        Some(_) => {
            errors.push(FieldError::new(
                "registration_key",
                "must be \"rotate\" or 16..128 characters of A-Z a-z 0-9 _ -",
            ));
            None
        }
        None => None,
    };
    let auto_renew = match patch.auto_renew_months {
        Some(Some(n)) => match Period::new(n) {
            Ok(p) => Some(Some(p)),
            Err(_) => {
                errors.push(FieldError::new(
                    "auto_renew_months",
                    "must be one of 1, 3, 6, 12, 24, 36, or null",
                ));
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    if let Some(Some(pw)) = &patch.admin_password
        && pw.chars().count() > 256
    {
        errors.push(FieldError::new("admin_password", "at most 256 characters"));
    }
    if let Some(Some(ext)) = &patch.external_id
        && (ext.is_empty() || ext.chars().count() > 128)
    {
        errors.push(FieldError::new("external_id", "must be 1..128 characters"));
    }
    if let Some(metadata) = &patch.metadata {
        validate_metadata(metadata, &mut errors);
    }
    if patch.valid_until.is_some() && !principal.is_admin() {
        errors.push(FieldError::new(
            "valid_until",
            "only the provider's administrators may set valid_until",
        ));
    }
    let new_product = match patch.product_id {
        Some(pid) if pid != old_product.id.as_uuid() => {
            match products::find(db, ProductId::from_uuid(pid)).await? {
                Some(p) if !p.archived => Some(p),
                Some(_) => {
                    errors.push(FieldError::new("product_id", "the product is archived"));
                    None
                }
                None => {
                    errors.push(FieldError::new("product_id", "no such product"));
                    None
                }
            }
        }
        _ => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let sealed = match &patch.admin_password {
        Some(Some(pw)) => Some(Some(seal(&state, pw)?)),
        Some(None) => Some(None),
        None => None,
    };

    let txn = db.begin().await.map_err(PersistenceError::from)?;
    let scope = if principal.is_admin() {
        LicenseScope::All
    } else {
        LicenseScope::Tenant(principal.account_id())
    };
    let license = licenses::lock(&txn, scope, LicenseId::from_uuid(id))
        .await?
        .ok_or(ApiError::not_found())?;
    check_if_match(&req, license.version)?;
    // A product switch committed between the read and the lock: the old price is the
    // product's the license has now (serialized, not refused).
    let old_product = if license.product_id == old_product.id {
        old_product
    } else {
        products::find(&txn, license.product_id)
            .await?
            .ok_or(ApiError::not_found())?
    };
    license.lifecycle.can_edit_unprovisioned()?;
    let before = license_snapshot(&license);
    let mut next = license.clone();
    let mut provisioned = Vec::new();
    if let Some(ip) = ip
        && ip != license.ip
    {
        provisioned.push(ProvisionedField::Ip);
        next.ip = ip;
    }
    if license.trial {
        // A trial keeps its product (convert it first), and may move only to an address that
        // has not had a trial of the product: it claims that address too.
        if new_product.is_some() {
            return Err(ApiError::trial_license(
                "a trial's product cannot change; renew it to convert it first".into(),
            ));
        }
        if let Some(Some(_)) = auto_renew {
            return Err(ApiError::field(
                "auto_renew_months",
                "cannot be set on a trial; a paid renewal converts it first",
            ));
        }
        if next.ip != license.ip {
            license
                .lifecycle
                .can_edit_provisioned(ProvisionedField::Ip)?;
            if !trials::claim_address(&txn, license.product_id, license.id, next.ip).await? {
                return Err(AppError::TrialUsed.into());
            }
        }
    }
    if let Some(key) = new_key {
        provisioned.push(ProvisionedField::RegistrationKey);
        next.registration_key = key;
    }
    let now = state.clock.now();
    let mut price_change = 0;
    if let Some(product) = &new_product {
        license
            .lifecycle
            .can_edit_provisioned(ProvisionedField::ProductId)?;
        provisioned.push(ProvisionedField::ProductId);
        // The new product must offer the license's period and options.
        if product.pricing.price_for(license.period).is_none() {
            return Err(ApiError::field(
                "product_id",
                "the product does not offer the license's period",
            ));
        }
        let options = product
            .pricing
            .normalize_options(&license.options)
            .map_err(|e| {
                let mut err = pricing_error(e);
                err.field = format!("product_id ({})", err.field);
                ApiError::validation(vec![err])
            })?;
        let new_cost = product
            .pricing
            .cost(license.period, &options)
            .map_err(|e| ApiError::validation(vec![pricing_error(e)]))?;
        let old_cost = old_product
            .pricing
            .cost(license.period, &license.options)
            .map_err(|_| {
                ApiError::conflict(
                    "the license's current options are no longer offered by its product".into(),
                )
            })?;
        if let Some(until) = license.lifecycle.valid_until {
            let start = sub_months(until, license.period.months()).unwrap_or(until);
            let diff = new_cost
                .checked_sub(old_cost)
                .ok_or_else(|| ApiError::field("product_id", "the price overflows"))?;
            price_change = prorate(diff, start, until, now)
                .map_err(|_| ApiError::field("product_id", "the price overflows"))?;
        }
        next.product_id = product.id;
        next.options = options;
    }
    for field in &provisioned {
        license.lifecycle.can_edit_provisioned(*field)?;
    }
    if let Some(first) = provisioned.first() {
        next.lifecycle = license.lifecycle.clone().edit_provisioned(*first)?;
    }
    if let Some(name) = patch.name {
        next.name = name.trim().to_owned();
    }
    if let Some(auto) = auto_renew {
        let product = new_product.as_ref().unwrap_or(&old_product);
        if auto.is_some_and(|p| product.pricing.price_for(p).is_none()) {
            return Err(ApiError::field(
                "auto_renew_months",
                "the product does not offer this period",
            ));
        }
        next.auto_renew = auto;
    }
    if let Some(ext) = patch.external_id {
        next.external_id = ext;
    }
    if let Some(metadata) = patch.metadata {
        next.metadata = metadata;
    }
    if patch.delete_registrations == Some(true) {
        licentia_persistence::repo::registrations::delete_all(&txn, license.id).await?;
        next.registrations_count = 0;
    }
    if let Some(until) = patch.valid_until {
        if license.lifecycle.valid_until.is_none()
            || license.lifecycle.status == LicenseStatus::Deleted
        {
            return Err(ApiError::invalid_transition(
                "valid_until can only change once the license is paid".into(),
            ));
        }
        next.lifecycle.valid_until = Some(licentia_persistence::truncate(until));
    }
    let saved = match licenses::save(&txn, &next, sealed).await {
        Err(PersistenceError::Unique(_)) => return Err(AppError::RegistrationKeyTaken.into()),
        other => other?,
    };
    if price_change > 0 {
        let order = orders::create(&txn, saved.account_id, state.currency.as_str()).await?;
        orders::add_item(
            &txn,
            order,
            orders::NewItem::for_license(
                &saved,
                "configuration_change",
                saved.period,
                price_change,
                serde_json::json!({"product_id": saved.product_id}),
            ),
        )
        .await?;
        orders::mark_paid(&txn, order).await?;
        billing::charge(
            &txn,
            saved.account_id,
            price_change,
            &format!("product change of license {}", saved.id),
            Some(order),
        )
        .await?;
    } else if price_change < 0 {
        ledger::refund(
            &txn,
            saved.account_id,
            -price_change,
            &format!("product change of license {}", saved.id),
            saved.id,
            saved.product_id,
        )
        .await?;
    }
    if saved.lifecycle.status == LicenseStatus::InProgress
        && license.lifecycle.status != LicenseStatus::InProgress
    {
        let attempts = i32::try_from(state.config.provision_attempts).unwrap_or(10);
        provisioning::enqueue(&txn, saved.id, attempts).await?;
    }
    events::record(
        &txn,
        NewEvent {
            event_type: "license.updated",
            account_id: saved.account_id,
            license_id: Some(saved.id),
            actor: principal.actor(),
            before: Some(before),
            after: Some(license_snapshot(&saved)),
        },
    )
    .await?;
    txn.commit().await.map_err(PersistenceError::from)?;
    let product = new_product.unwrap_or(old_product);
    let version = saved.version;
    Ok(with_etag(
        HttpResponse::Ok().json(LicenseOut::new(saved, &product)),
        version,
    ))
}
