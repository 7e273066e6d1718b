//! The OpenAPI document: one derive for the frame (info, tags, security schemes, reusable
//! error responses); paths and schemas are collected from the routes themselves.
use actix_web::App;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse};
use utoipa_actix_web::AppExt;

use crate::error::{FieldError, Problem};

/// 400: the body is not valid JSON, or the request is otherwise malformed.
#[derive(ToResponse)]
#[response(
    description = "Malformed request (e.g. invalid JSON)",
    content_type = "application/problem+json"
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct BadRequest(Problem);

/// 401: missing or invalid credentials.
#[derive(ToResponse)]
#[response(
    description = "Missing or invalid credentials",
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "The Bearer challenge; `error=\"invalid_token\"` when a token was presented and refused"))
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct Unauthorized(Problem);

/// 403: authenticated but not allowed.
#[derive(ToResponse)]
#[response(
    description = "Authenticated but not allowed",
    content_type = "application/problem+json"
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct Forbidden(Problem);

/// 404: unknown, or another tenant's.
#[derive(ToResponse)]
#[response(
    description = "Unknown resource, or another tenant's",
    content_type = "application/problem+json"
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct NotFound(Problem);

/// 409: the resource's state does not allow the operation.
#[derive(ToResponse)]
#[response(
    description = "State conflict",
    content_type = "application/problem+json"
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct Conflict(Problem);

/// 422: well-formed but invalid; `errors` names each field.
#[derive(ToResponse)]
#[response(
    description = "Validation failed; `errors` names each invalid field",
    content_type = "application/problem+json"
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct Unprocessable(Problem);

/// 402: balance plus credit limit do not cover the charge; nothing changed.
#[derive(ToResponse)]
#[response(
    description = "Insufficient funds; nothing changed",
    content_type = "application/problem+json"
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct PaymentRequired(Problem);

/// 412: `If-Match` does not match the current `ETag`.
#[derive(ToResponse)]
#[response(
    description = "If-Match does not match the current ETag",
    content_type = "application/problem+json"
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct PreconditionFailed(Problem);

/// 429: rate limited.
#[derive(ToResponse)]
#[response(
    description = "Rate limited",
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct TooManyRequests(Problem);

/// 503: the database is unavailable.
#[derive(ToResponse)]
#[response(
    description = "The database is unavailable",
    content_type = "application/problem+json"
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct ServiceUnavailable(Problem);

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Licentia",
        description = "Software license lifecycle for a hosting provider and its partners: ordering, paying, \
activating, editing, renewing, suspending, deleting and transferring licenses, and the endpoints the \
licensed software calls to register and validate.\n\nErrors are RFC 9457 `application/problem+json` \
documents with a stable `code`. Amounts are integers in minor units of the deployment's currency."
    ),
    modifiers(&SecuritySchemes),
    components(
        schemas(Problem, FieldError),
        responses(BadRequest, Unauthorized, PaymentRequired, Forbidden, NotFound, Conflict, PreconditionFailed, Unprocessable, TooManyRequests, ServiceUnavailable)
    ),
    tags(
        (name = "auth", description = "Log in, rotate refresh tokens, log out, who am I"),
        (name = "accounts", description = "The provider and its partner accounts"),
        (name = "api-keys", description = "API keys for partner integrations"),
        (name = "users", description = "Users of an account"),
        (name = "billing", description = "Balances, credits and the ledger"),
        (name = "products", description = "The software catalog"),
        (name = "licenses", description = "Ordering and managing licenses"),
        (name = "orders", description = "Orders (invoices) and their payment"),
        (name = "system", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

/// The whole document, as served at `/openapi.json` and printed by `licentia openapi`.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes::configure)
        .split_for_parts();
    api
}

/// The document as deterministic, pretty-printed JSON with a trailing newline: object keys
/// are sorted whatever map type serde_json was built with.
pub fn document_json() -> String {
    let value = sorted(serde_json::to_value(document()).unwrap_or_default());
    let mut out = serde_json::to_string_pretty(&value).unwrap_or_default();
    out.push('\n');
    out
}

fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}
