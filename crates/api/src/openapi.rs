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

/// Declares the `Idempotency-Key` header on every operation the idempotency middleware
/// protects (the same [`crate::idempotency::applies`] decides both), with the 409 and 422 it
/// can answer. It walks the paths, so it runs on the finished document (see [`document`]):
/// the derive's `modifiers(..)` run before utoipa-actix-web adds the routes' paths.
pub struct IdempotencyKeys;

const IDEMPOTENCY_KEY_DESCRIPTION: &str = "Optional; 1 to 255 printable ASCII characters, \
chosen by the client (a UUID is a good choice). Within 24 hours, a retry with the same key and \
the same request (method, path, query and body) from the same caller (user or API key) does \
not run again: it replays the first response (status, headers and body) with the header \
`Idempotent-Replayed: true`. Responses 2xx and 4xx are kept (except 401, 408 and 429); after a \
5xx the key is released and a retry runs. The same key with another request answers 422 \
`idempotency_key_reused`; while the first request is still running, 409 \
`request_in_progress`. Without the header there is no replay protection.";

impl Modify for IdempotencyKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use actix_web::http::Method;
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{Ref, RefOr, Required};

        let parameter = ParameterBuilder::new()
            .name(crate::idempotency::HEADER)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(IDEMPOTENCY_KEY_DESCRIPTION))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(crate::idempotency::MAX_KEY_LEN))
                    .pattern(Some("^[\\x20-\\x7E]+$")),
            ))
            .build();
        for (path, item) in &mut openapi.paths.paths {
            for (method, operation) in [
                (Method::POST, item.post.as_mut()),
                (Method::PUT, item.put.as_mut()),
            ] {
                let Some(operation) = operation else { continue };
                if !crate::idempotency::applies(&method, path) {
                    continue;
                }
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(RefOr::T(parameter.clone()));
                for (status, response) in [("409", "Conflict"), ("422", "Unprocessable")] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response)));
                }
            }
        }
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
        (name = "transfers", description = "Handing licenses over between partners: offer, accept with the secret, reject, cancel"),
        (name = "events", description = "The audit log of every state change"),
        (name = "licensed-software", description = "What the licensed software calls with its registration key: register, validate (signed), offline license files; the signing keys that verify them"),
        (name = "system", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

/// The whole document, as served at `/openapi.json` and printed by `licentia openapi`.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes::configure)
        .split_for_parts();
    IdempotencyKeys.modify(&mut api);
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
