//! `POST /v1/licenses/{id}/disable`, `…/enable` and `DELETE /v1/licenses/{id}`, the first and
//! the last with an optional cause and note (CONTRACT §12).

use actix_web::{HttpRequest, HttpResponse, delete, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::LicenseId;
use licentia_domain::license_record::{Annotation, Cause, MAX_NOTE_CHARS};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{LicenseOut, check_if_match, visible_license, with_etag};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;
use licentia_app::licenses::transition::{self as lifecycle, Transition};

/// The optional body of `POST /v1/licenses/{id}/disable`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableLicense {
    /// Why the license is disabled; shown as `suspension_cause` until it is enabled.
    #[schema(value_type = Option<crate::openapi::types::LicenseCause>)]
    pub cause: Option<Cause>,
    /// A note for later readers (at most 500 characters); shown as `suspension_note`.
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// The optional query of `DELETE /v1/licenses/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteLicenseQuery {
    /// Why the license is deleted; shown as `deletion_cause`.
    #[param(value_type = Option<crate::openapi::types::LicenseCause>)]
    pub cause: Option<String>,
    /// A note for later readers (at most 500 characters); shown as `deletion_note`.
    #[param(max_length = 500)]
    pub note: Option<String>,
}

/// A cause and note as given: `cause` one of the known causes, `note` at most 500 characters
/// (empty ones mean none); 422 naming the field otherwise.
fn annotation(cause: Option<&str>, note: Option<String>) -> ApiResult<Annotation> {
    let mut errors = Vec::new();
    let cause = match cause.filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => match raw.parse::<Cause>() {
            Ok(cause) => Some(cause),
            Err(_) => {
                errors.push(FieldError::new(
                    "cause",
                    "must be one of customer_request, non_payment, abuse, other",
                ));
                None
            }
        },
    };
    let note = note.filter(|n| !n.trim().is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        errors.push(FieldError::new(
            "note",
            format!("at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    if errors.is_empty() {
        Ok(Annotation { cause, note })
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Applies a state transition under the row lock (shared with bulk operations:
/// [`licentia_app::licenses::transition::transition`]) and answers the license (204 for a deletion).
/// `annotation` (a disable's body, a delete's query) is checked after the license was found:
/// 404 comes before 422.
async fn transition(
    state: &AppState,
    principal: &Principal,
    req: &HttpRequest,
    id: Uuid,
    transition: Transition,
    annotation: impl FnOnce() -> ApiResult<Annotation>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let (_, product) = visible_license(state, principal, id).await?;
    let annotation = annotation()?;
    let txn = state.db.begin().await?;
    let attempts = state.policy.provision_attempts;
    let saved = lifecycle::transition(
        &txn,
        &principal.caller(),
        LicenseId::from_uuid(id),
        transition,
        annotation,
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
/// An `active` license becomes `suspended` (`manual` by a partner, `admin` by an admin). The
/// optional body records why: `cause` and `note`, shown as `suspension_cause` and
/// `suspension_note` until the license is enabled, and in the `license.suspended` event.
#[utoipa::path(
    operation_id = "disable_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id")),
    request_body(content = Option<DisableLicense>, description = "Optional: why the license is disabled"),
    responses(
        (status = 400, response = crate::openapi::BadRequest),
        (status = 422, response = crate::openapi::Unprocessable),
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
    body: crate::extract::OptionalJson<DisableLicense>,
) -> ApiResult<HttpResponse> {
    transition(
        &state,
        &principal,
        &req,
        id.into_inner(),
        Transition::Disable,
        || {
            let body = body.into_inner()?.unwrap_or_default();
            annotation(body.cause.map(Cause::as_str), body.note)
        },
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
        || Ok(Annotation::default()),
    )
    .await
}

/// Delete a license
///
/// Soft delete: the license answers `GET` with status `deleted` and is listed only when asked
/// for; its unpaid order items are cancelled. `cause` and `note` record why (shown as
/// `deletion_cause` and `deletion_note`, and in the `license.deleted` event).
#[utoipa::path(
    operation_id = "delete_license",
    tag = "licenses",
    params(("id" = Uuid, Path, description = "License id"), DeleteLicenseQuery),
    responses(
        (status = 422, response = crate::openapi::Unprocessable),
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
    let query = req.query_string().to_owned();
    transition(
        &state,
        &principal,
        &req,
        id.into_inner(),
        Transition::Delete,
        || {
            let q: DeleteLicenseQuery = crate::extract::parse_query(&query)?;
            annotation(q.cause.as_deref(), q.note)
        },
    )
    .await
}
