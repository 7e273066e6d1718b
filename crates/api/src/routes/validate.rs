//! `POST /v1/validate`: the licensed software asks whether its license is valid and gets a
//! signed answer it can trust offline (CONTRACT §7). This is the hot path: rate limits are
//! checked in memory before anything else, the license is read in one indexed query, nothing
//! is written (usage goes to an in-memory buffer, [`crate::usage`]), and the signing key is
//! already decrypted in memory.
use std::collections::BTreeMap;
use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, post, web};
use licentia_domain::license_file::LicenseClaims;
use licentia_domain::license_record::{License, canonical_ip};
use licentia_domain::signing::KeyPair;
use licentia_domain::transfer::hash_secret;
use licentia_domain::validation::{self, Claims, ValidationCode};
use licentia_persistence::repo::licenses::registration_key_hash;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;

/// The longest registration key, fingerprint or host name accepted.
pub const MAX_FIELD_CHARS: usize = 256;

/// A validation request from the licensed software.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The license's registration key (1..256 characters).
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub registration_key: String,
    /// The machine's fingerprint; when given, it must be registered to the license.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub fingerprint: Option<String>,
    /// The address the software runs on; when given, it must be the license's.
    #[schema(value_type = Option<crate::openapi::types::IpAddress>)]
    pub ip: Option<String>,
}

/// The license as signed answers describe it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LicenseClaimsOut {
    pub id: Uuid,
    pub product_code: String,
    /// End of the paid term; null while `ordered`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    /// Quantity per option code.
    pub options: BTreeMap<String, u32>,
}

impl LicenseClaimsOut {
    pub fn new(license: &License, product_code: String) -> Self {
        Self {
            id: license.id.as_uuid(),
            product_code,
            valid_until: license.lifecycle.valid_until,
            options: license.options.clone(),
        }
    }
}

impl From<LicenseClaimsOut> for LicenseClaims {
    fn from(c: LicenseClaimsOut) -> Self {
        LicenseClaims {
            id: c.id,
            product_code: c.product_code,
            valid_until: c.valid_until,
            options: c.options,
        }
    }
}

/// A signed validation answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationOut {
    /// True exactly when `code` is `VALID`.
    pub valid: bool,
    /// `NOT_FOUND`, `NOT_ACTIVE`, `EXPIRED`, `SUSPENDED`, `IP_MISMATCH`, `NOT_REGISTERED` or
    /// `VALID`: the first that applies, in this order.
    #[schema(value_type = crate::openapi::types::ValidationCode, example = "VALID")]
    pub code: &'static str,
    /// The license; null for `NOT_FOUND`.
    pub license: Option<LicenseClaimsOut>,
    /// The id of the key that signed this answer (see `GET /v1/signing-keys`).
    pub key_id: String,
    /// When the answer was made.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// Standard base64 of the Ed25519 signature over the RFC 8785 (JCS) canonical JSON of
    /// this object without `signature`.
    pub signature: String,
}

/// Signs a response object: the signature covers its canonical form without `signature`.
pub fn sign_response<T: Serialize>(signer: &KeyPair, out: &T) -> ApiResult<String> {
    let value = serde_json::to_value(out)
        .map_err(|e| ApiError::internal_from("serializing a signed answer", e))?;
    signer
        .sign_object(&value)
        .map_err(|e| ApiError::internal_from("signing an answer", e))
}

/// Checks a text field of the licensed software's requests.
pub fn check_text(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_FIELD_CHARS || value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            format!("must be 1..{MAX_FIELD_CHARS} characters without control characters"),
        ));
    }
}

/// Parses an optional IP address field into its canonical form.
pub fn parse_ip(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<IpAddr> {
    match value.map(str::parse::<IpAddr>) {
        Some(Ok(ip)) => Some(canonical_ip(ip)),
        Some(Err(_)) => {
            errors.push(FieldError::new(field, "must be an IPv4 or IPv6 address"));
            None
        }
        None => None,
    }
}

/// Validate a license
///
/// Public: the licensed software authenticates with its registration key. Always 200 with a
/// signed answer, whatever the license's state; verify `signature` with the key named by
/// `key_id`. Rate limited per key (600/min) and per client address (6,000/min).
#[utoipa::path(
    operation_id = "validate_license",
    tag = "licensed-software",
    request_body = ValidateRequest,
    responses(
        (status = 200, description = "The signed answer", body = ValidationOut, headers(
            ("RateLimit-Limit" = u32, description = "Requests per minute allowed for this key (when rate limits are on)"),
            ("RateLimit-Remaining" = u32, description = "Requests left now"),
            ("RateLimit-Reset" = u64, description = "Seconds until the full allowance is back"),
        )),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 422, response = crate::openapi::Unprocessable),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    )
)]
#[post("/v1/validate")]
pub async fn validate_license(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: crate::extract::Json<ValidateRequest>,
) -> ApiResult<HttpResponse> {
    let enabled = state.limits.enabled;
    let limits = &state.limits.validate;
    if enabled
        && let Some(peer) = req.peer_addr()
        && let Some(refusal) = limits.per_ip.check(&canonical_ip(peer.ip())).refusal()
    {
        return Ok(refusal);
    }
    let body = body.into_inner()?;
    let ip = checked(&body)?;
    let decision = if enabled {
        let decision = limits.per_key.check(&hash_secret(&body.registration_key));
        if let Some(refusal) = decision.refusal() {
            return Ok(refusal);
        }
        Some(decision)
    } else {
        None
    };

    let key = body.registration_key.as_str();
    let view = crate::read::validation_view(
        &state,
        key,
        &registration_key_hash(key),
        body.fingerprint.as_deref(),
    )
    .await?;
    let now = state.clock.now();
    let (code, license) = match view {
        None => (ValidationCode::NotFound, None),
        Some(view) => {
            let claims = Claims {
                ip,
                fingerprint_registered: view.fingerprint_registered,
            };
            let code = validation::validate(&view.license.lifecycle, view.license.ip, claims, now);
            // A deleted license answers NOT_FOUND, without its claims.
            let license = if code == ValidationCode::NotFound {
                None
            } else {
                // Usage (CONTRACT §11): recorded in memory, written later in batches.
                state.usage.record(
                    view.license.id,
                    view.registration_id,
                    now,
                    ip.or_else(|| req.peer_addr().map(|peer| canonical_ip(peer.ip()))),
                );
                let product_code =
                    crate::read::product_code(&state, view.license.product_id).await?;
                Some(LicenseClaimsOut::new(&view.license, product_code))
            };
            (code, license)
        }
    };
    let signer = state.signing.signer();
    let mut out = ValidationOut {
        valid: code == ValidationCode::Valid,
        code: code.as_str(),
        license,
        key_id: signer.key_id().to_owned(),
        issued_at: now,
        signature: String::new(),
    };
    out.signature = sign_response(&signer, &out)?;
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(decision) = decision {
        for h in decision.headers() {
            res.insert_header(h);
        }
    }
    Ok(res.json(out))
}

/// The request's fields checked, all at once (422 naming each invalid one); answers the
/// address the software declares, if any.
fn checked(body: &ValidateRequest) -> ApiResult<Option<std::net::IpAddr>> {
    let mut errors = Vec::new();
    check_text("registration_key", &body.registration_key, &mut errors);
    if let Some(fingerprint) = &body.fingerprint {
        check_text("fingerprint", fingerprint, &mut errors);
    }
    let ip = parse_ip("ip", body.ip.as_deref(), &mut errors);
    if errors.is_empty() {
        Ok(ip)
    } else {
        Err(ApiError::validation(errors))
    }
}
