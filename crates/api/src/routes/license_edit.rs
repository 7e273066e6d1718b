//! `PATCH /v1/licenses/{id}`: editing a license. Unprovisioned fields change in any status but
//! `deleted`; provisioned ones (`ip`, `product_id`, `registration_key`) pass an `active` or
//! `suspended` license through `in_progress` while the provisioner applies them.
use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, patch, web};
use licentia_app::licenses::edit::{self, EditLicense};
use licentia_domain::auth::Scope;
use licentia_domain::ids::{LicenseId, ProductId};
use licentia_domain::license_fields::{
    AdminPasswordText, ExternalId, KeyChoice, LicenseName, Metadata, parse_ip,
};
use licentia_domain::period::Period;
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::licenses::{LicenseOut, check_if_match, visible_license, with_etag};
use crate::auth::Principal;
use crate::error::{ApiResult, Errors};
use crate::state::AppState;

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
    let (_, current) = visible_license(&state, &principal, id).await?;
    let command = command(body.into_inner()?, &principal)?;
    let edited = edit::edit(
        &state,
        &principal.caller(),
        LicenseId::from_uuid(id),
        current,
        command,
        |license| check_if_match(&req, license.version),
    )
    .await?;
    let version = edited.license.version;
    Ok(with_etag(
        HttpResponse::Ok().json(LicenseOut::new(edited.license, &edited.product)),
        version,
    ))
}

/// The changes the patch asks for, every field parsed; 422 naming each invalid field.
fn command(patch: LicensePatch, principal: &Principal) -> ApiResult<EditLicense> {
    let mut errors = Errors::default();
    let name = patch
        .name
        .map(|n| errors.check("name", LicenseName::parse(&n)));
    let ip = patch.ip.map(|ip| errors.check("ip", parse_ip(&ip)));
    let registration_key = patch
        .registration_key
        .map(|k| errors.check("registration_key", KeyChoice::parse(&k)));
    let auto_renew = patch.auto_renew_months.map(|months| {
        months.map_or(Some(None), |n| {
            errors.check(
                "auto_renew_months",
                Period::new(n)
                    .map(Some)
                    .map_err(|_| "must be one of 1, 3, 6, 12, 24, 36, or null"),
            )
        })
    });
    let admin_password = patch.admin_password.map(|pw| {
        pw.map_or(Some(None), |pw| {
            errors
                .check("admin_password", AdminPasswordText::parse(pw))
                .map(Some)
        })
    });
    let external_id = patch.external_id.map(|ext| {
        ext.map_or(Some(None), |ext| {
            errors
                .check("external_id", ExternalId::parse(ext))
                .map(Some)
        })
    });
    let metadata = patch.metadata.map(|m| errors.check_all(Metadata::parse(m)));
    if patch.valid_until.is_some() && !principal.is_admin() {
        errors.push(
            "valid_until",
            "only the provider's administrators may set valid_until",
        );
    }
    errors.finish()?;
    // Every `None` inside below was recorded as an error, answered above.
    Ok(EditLicense {
        name: name.flatten(),
        ip: ip.flatten(),
        product_id: patch.product_id.map(ProductId::from_uuid),
        admin_password: admin_password.flatten(),
        registration_key: registration_key.flatten(),
        delete_registrations: patch.delete_registrations == Some(true),
        auto_renew: auto_renew.flatten(),
        external_id: external_id.flatten(),
        metadata: metadata.flatten(),
        valid_until: patch.valid_until,
    })
}
