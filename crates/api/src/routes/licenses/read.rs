//! `GET /v1/licenses/{id}`.

use actix_web::{HttpResponse, get, web};
use licentia_domain::auth::Scope;
use uuid::Uuid;

use super::{LicenseOut, visible_license, with_etag};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::state::AppState;

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
