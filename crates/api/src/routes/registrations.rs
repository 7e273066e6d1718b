//! Machines registered to a license: the licensed software registers itself with the
//! registration key (`POST /v1/registrations`, public) and gives its seat back
//! (`POST /v1/deregistrations`); the owner lists them, frees one seat
//! (`DELETE /v1/licenses/{id}/registrations/{registration_id}`) or every seat at once
//! (`DELETE /v1/licenses/{id}/registrations`).
//!
//! The seat check counts the license's registrations while its row is locked, so concurrent
//! registrations never exceed the product's `max_registrations`.
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use licentia_app::registrations::{self as machines, Register};
use licentia_domain::auth::Scope;
use licentia_domain::ids::{LicenseId, RegistrationId};
use licentia_domain::license_record::canonical_ip;
use licentia_persistence::repo::licenses::Scope as LicenseScope;
use licentia_persistence::repo::registrations::{self, Registration};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::ListQuery;
use super::licenses::visible_license;
use super::validate::{check_text, parse_ip};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::pagination::{CursorKey, Page, page_of};
use crate::state::AppState;

/// The longest host name accepted (DNS names are at most 253 characters).
const MAX_HOSTNAME_CHARS: usize = 253;

/// A machine asking for a seat of the license.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
    /// The license's registration key.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub registration_key: String,
    /// A stable identifier of the machine, chosen by the software (1..256 characters without
    /// control characters).
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub fingerprint: String,
    /// The machine's host name, for the owner's list (1..253 characters without control
    /// characters).
    #[schema(
        min_length = 1,
        max_length = 253,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub hostname: Option<String>,
    /// The machine's IPv4 or IPv6 address, for the owner's list.
    #[schema(value_type = Option<crate::openapi::types::IpAddress>)]
    pub ip: Option<String>,
}

/// A machine registered to a license.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct RegistrationOut {
    pub id: Uuid,
    pub fingerprint: String,
    pub hostname: Option<String>,
    /// Canonical text of the address the machine registered with.
    #[schema(value_type = Option<crate::openapi::types::IpAddress>)]
    pub ip: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The last validation or registration that named this machine's fingerprint. Written
    /// in batches: it may lag by up to a minute.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<OffsetDateTime>,
    /// The address that last validation or registration came from: the `ip` it reported,
    /// else the address of its connection.
    #[schema(value_type = Option<crate::openapi::types::IpAddress>)]
    pub last_ip: Option<String>,
}

impl From<Registration> for RegistrationOut {
    fn from(r: Registration) -> Self {
        Self {
            id: r.id.as_uuid(),
            fingerprint: r.fingerprint,
            hostname: r.hostname,
            ip: r.ip.map(|ip| ip.to_string()),
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            last_ip: r.last_ip.map(|ip| ip.to_string()),
        }
    }
}

/// Register a machine
///
/// Public: the licensed software authenticates with the registration key. A fingerprint
/// already registered answers 200 with its registration; a new one takes a seat (201), or
/// 409 `registration_limit` when the product's `max_registrations` are all taken.
#[utoipa::path(
    operation_id = "create_registration",
    tag = "licensed-software",
    request_body = RegistrationRequest,
    responses(
        (status = 201, description = "Registered", body = RegistrationOut),
        (status = 200, description = "Already registered", body = RegistrationOut),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    )
)]
#[post("/v1/registrations")]
pub async fn create_registration(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: crate::extract::Json<RegistrationRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner()?;
    let ip = checked(&body)?;
    let seen_from = ip.or_else(|| req.peer_addr().map(|peer| canonical_ip(peer.ip())));
    let registered = machines::register(
        &state,
        Register {
            registration_key: body.registration_key,
            fingerprint: body.fingerprint,
            hostname: body.hostname,
            ip,
            seen_from,
        },
    )
    .await?;
    let out = RegistrationOut::from(registered.registration);
    Ok(if registered.created {
        HttpResponse::Created().json(out)
    } else {
        HttpResponse::Ok().json(out)
    })
}

/// The request's fields checked, all at once (422 naming each invalid one); answers the
/// machine's declared address, if any.
fn checked(body: &RegistrationRequest) -> ApiResult<Option<std::net::IpAddr>> {
    let mut errors = Vec::new();
    check_text("registration_key", &body.registration_key, &mut errors);
    check_text("fingerprint", &body.fingerprint, &mut errors);
    if let Some(host) = &body.hostname
        && (host.is_empty()
            || host.chars().count() > MAX_HOSTNAME_CHARS
            || host.chars().any(char::is_control))
    {
        errors.push(FieldError::new(
            "hostname",
            format!("must be 1..{MAX_HOSTNAME_CHARS} characters without control characters"),
        ));
    }
    let ip = parse_ip("ip", body.ip.as_deref(), &mut errors);
    if errors.is_empty() {
        Ok(ip)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// List a license's registrations
#[utoipa::path(
    operation_id = "list_registrations",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id"), ListQuery),
    responses(
        (status = 200, description = "The machines registered to the license, oldest first", body = Page<RegistrationOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/licenses/{id}/registrations")]
pub async fn list_registrations(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let (license, _) = visible_license(&state, &principal, id.into_inner()).await?;
    let scope = format!("{}|registrations|{}", principal.account_id(), license.id);
    let (limit, after) = query.keyset(&state, &scope)?;
    let rows = registrations::list(state.db.conn(), license.id, after, limit + 1).await?;
    let page = page_of(
        rows,
        limit,
        &state.cursors,
        &scope,
        |r| CursorKey {
            id: r.id.as_uuid(),
            value: None,
        },
        RegistrationOut::from,
    );
    Ok(HttpResponse::Ok().json(page))
}

/// Delete every registration of a license
///
/// Frees every seat; the machines must register again.
#[utoipa::path(
    operation_id = "delete_registrations",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    responses(
        (status = 204, description = "Every registration deleted"),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[delete("/v1/licenses/{id}/registrations")]
pub async fn delete_registrations(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let scope = if principal.is_admin() {
        LicenseScope::All
    } else {
        LicenseScope::Tenant(principal.account_id())
    };
    let license = LicenseId::from_uuid(id.into_inner());
    machines::remove_all(&state, scope, principal.actor(), license).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Delete one registration of a license
///
/// Frees that machine's seat (e.g. a server that was replaced); the machine must register
/// again to validate with its fingerprint. Emits `license.registration_deleted`.
#[utoipa::path(
    operation_id = "delete_registration",
    tag = "licenses",
    params(
        ("id" = Uuid, Path, description = "License id"),
        ("registration_id" = Uuid, Path, description = "Registration id"),
    ),
    responses(
        (status = 204, description = "The registration is deleted"),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[delete("/v1/licenses/{id}/registrations/{registration_id}")]
pub async fn delete_registration(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let (id, registration_id) = path.into_inner();
    let scope = if principal.is_admin() {
        LicenseScope::All
    } else {
        LicenseScope::Tenant(principal.account_id())
    };
    machines::remove(
        &state,
        scope,
        principal.actor(),
        LicenseId::from_uuid(id),
        RegistrationId::from_uuid(registration_id),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A machine giving its seat back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeregistrationRequest {
    /// The license's registration key.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub registration_key: String,
    /// The fingerprint the machine registered with.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub fingerprint: String,
}

/// Release a machine's seat
///
/// Public: the licensed software authenticates with the registration key and gives back the
/// seat its fingerprint holds (e.g. on uninstall). 404 when the key or the fingerprint is not
/// registered. Emits `license.registration_deleted`. Rate limited like validation: per key
/// (600/min) and per client address (6,000/min).
#[utoipa::path(
    operation_id = "create_deregistration",
    tag = "licensed-software",
    request_body = DeregistrationRequest,
    responses(
        (status = 204, description = "The seat is free", headers(
            ("RateLimit-Limit" = u32, description = "Requests per minute allowed for this key (when rate limits are on)"),
            ("RateLimit-Remaining" = u32, description = "Requests left now"),
            ("RateLimit-Reset" = u64, description = "Seconds until the full allowance is back"),
        )),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Unprocessable),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
#[post("/v1/deregistrations")]
pub async fn create_deregistration(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: crate::extract::Json<DeregistrationRequest>,
) -> ApiResult<HttpResponse> {
    let enabled = state.limits.enabled;
    let limits = &state.limits.deregister;
    if enabled
        && let Some(peer) = req.peer_addr()
        && let Some(refusal) = limits.per_ip.check(&canonical_ip(peer.ip())).refusal()
    {
        return Ok(refusal);
    }
    let body = body.into_inner()?;
    let mut errors = Vec::new();
    check_text("registration_key", &body.registration_key, &mut errors);
    check_text("fingerprint", &body.fingerprint, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let decision = if enabled {
        let decision = limits
            .per_key
            .check(&licentia_domain::transfer::hash_secret(
                &body.registration_key,
            ));
        if let Some(refusal) = decision.refusal() {
            return Ok(refusal);
        }
        Some(decision)
    } else {
        None
    };
    machines::deregister(&state, &body.registration_key, &body.fingerprint).await?;
    let mut res = HttpResponse::NoContent();
    if let Some(decision) = decision {
        for h in decision.headers() {
            res.insert_header(h);
        }
    }
    Ok(res.finish())
}
