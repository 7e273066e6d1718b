//! Offline license files (CONTRACT §7): the signed license payload for one registered machine,
//! valid until `expires_at` (the configured TTL, never past the license's `valid_until`).
//! The licensed software asks with its registration key; the owner with its credentials.
use actix_web::{HttpResponse, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::license_file::{self, LicenseFilePayload};
use licentia_domain::license_record::License;
use licentia_domain::validation::{self, Claims, ValidationCode};
use licentia_persistence::repo::licenses::registration_key_hash;
use licentia_persistence::repo::registrations;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use super::licenses::visible_license;
use super::validate::{LicenseClaimsOut, check_text};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, AppError};
use crate::state::AppState;

/// A license file for the machine with `fingerprint`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseFileRequest {
    /// The license's registration key.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub registration_key: String,
    /// A fingerprint registered to the license.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub fingerprint: String,
}

/// A license file for one of the license's machines, asked for by the owner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerLicenseFileRequest {
    /// A fingerprint registered to the license.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub fingerprint: String,
}

/// An offline license file.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseFileOut {
    /// The file: `-----BEGIN LICENSE FILE-----`, standard base64 (64 characters a line) of the
    /// RFC 8785 canonical JSON `{license, fingerprint, issued_at, expires_at, key_id,
    /// signature}`, `-----END LICENSE FILE-----`. `signature` is the Ed25519 signature of the
    /// canonical JSON of the other members.
    pub file: String,
    /// The id of the key that signed the file.
    pub key_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// The file is not valid from this instant on.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Issues the file when the license validates as `VALID` for `fingerprint`.
fn issue(
    state: &AppState,
    license: &License,
    product_code: String,
    fingerprint: String,
    registered: bool,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let claims = Claims {
        ip: None,
        fingerprint_registered: Some(registered),
    };
    match validation::validate(&license.lifecycle, license.ip, claims, now) {
        ValidationCode::Valid => {}
        ValidationCode::NotFound => return Err(ApiError::not_found()),
        ValidationCode::NotRegistered => return Err(AppError::FingerprintNotRegistered.into()),
        code => {
            return Err(AppError::LicenseNotValid {
                code: code.as_str(),
            }
            .into());
        }
    }
    let ttl_days = i64::try_from(state.config.license_file_ttl_days.get()).unwrap_or(i64::MAX);
    let by_ttl = now.checked_add(Duration::days(ttl_days.min(36_500)));
    let expires_at = match (by_ttl, license.lifecycle.valid_until) {
        (Some(ttl), Some(until)) => ttl.min(until),
        (None, Some(until)) => until,
        (Some(ttl), None) => ttl,
        (None, None) => now,
    };
    let signer = state.signing.signer();
    let payload = LicenseFilePayload {
        license: LicenseClaimsOut::new(license, product_code).into(),
        fingerprint,
        issued_at: now,
        expires_at,
        key_id: signer.key_id().to_owned(),
    };
    let file = license_file::issue(&signer, &payload)
        .map_err(|e| ApiError::internal_from("signing a license file", e))?;
    Ok(HttpResponse::Created().json(LicenseFileOut {
        file,
        key_id: payload.key_id,
        issued_at: now,
        expires_at,
    }))
}

/// Get an offline license file
///
/// Public: the licensed software authenticates with the registration key. Only for a license
/// that validates as `VALID` (else 409 `license_not_valid`) and a registered fingerprint
/// (else 409 `fingerprint_not_registered`).
#[utoipa::path(
    operation_id = "create_license_file",
    tag = "licensed-software",
    request_body = LicenseFileRequest,
    responses(
        (status = 201, description = "The license file", body = LicenseFileOut),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    )
)]
#[post("/v1/license-files")]
pub async fn create_license_file(
    state: web::Data<AppState>,
    body: crate::extract::Json<LicenseFileRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner()?;
    let mut errors = Vec::new();
    check_text("registration_key", &body.registration_key, &mut errors);
    check_text("fingerprint", &body.fingerprint, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let key = body.registration_key.as_str();
    let view = crate::read::validation_view(
        &state,
        key,
        &registration_key_hash(key),
        Some(&body.fingerprint),
    )
    .await?
    .ok_or(ApiError::not_found())?;
    let registered = view.fingerprint_registered == Some(true);
    let product_code = crate::read::product_code(&state, view.license.product_id).await?;
    issue(
        &state,
        &view.license,
        product_code,
        body.fingerprint,
        registered,
    )
}

/// Get an offline license file for a machine of a license
///
/// The same file the licensed software gets from `POST /v1/license-files`, for the owner.
#[utoipa::path(
    operation_id = "create_owner_license_file",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    request_body = OwnerLicenseFileRequest,
    responses(
        (status = 201, description = "The license file", body = LicenseFileOut),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/{id}/license-file")]
pub async fn create_owner_license_file(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    body: crate::extract::Json<OwnerLicenseFileRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let (license, product) = visible_license(&state, &principal, id.into_inner()).await?;
    let body = body.into_inner()?;
    let mut errors = Vec::new();
    check_text("fingerprint", &body.fingerprint, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let registered = registrations::find(state.db.conn(), license.id, &body.fingerprint)
        .await?
        .is_some();
    issue(&state, &license, product.code, body.fingerprint, registered)
}
