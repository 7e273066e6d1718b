//! What the routes' OpenAPI annotations refer to: the reusable error responses, the schema
//! types of closed sets (`types`), and the document's post-processing for SDKs and plain-text
//! bodies (`sdk`, `text`). The document itself is assembled above the routes, in
//! [`crate::document`]; nothing here imports a route.
use utoipa::ToResponse;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};

use crate::error::Problem;

pub mod sdk;
pub mod text;
pub mod types;

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

/// 413: the request body is over the configured limit.
#[derive(ToResponse)]
#[response(
    description = "The request body is too large",
    content_type = "application/problem+json"
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct PayloadTooLarge(Problem);

/// 415: the request body is not `application/json`.
#[derive(ToResponse)]
#[response(
    description = "The request body is not `application/json`",
    content_type = "application/problem+json"
)]
#[expect(
    dead_code,
    reason = "documents a response; only its OpenAPI form is used"
)]
pub struct UnsupportedMediaType(Problem);

/// Every operation of the document (GET, POST, PUT, PATCH, DELETE of each path, in that
/// order), for the passes that finish the document.
pub(crate) fn operations(openapi: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi
        .paths
        .paths
        .values_mut()
        .flat_map(|item| of_path(item, true))
}

/// The operations that may carry a request body (POST, PUT, PATCH, DELETE).
pub(crate) fn operations_with_body(openapi: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi
        .paths
        .paths
        .values_mut()
        .flat_map(|item| of_path(item, false))
}

fn of_path(item: &mut PathItem, with_get: bool) -> impl Iterator<Item = &mut Operation> {
    [
        if with_get { item.get.as_mut() } else { None },
        item.post.as_mut(),
        item.put.as_mut(),
        item.patch.as_mut(),
        item.delete.as_mut(),
    ]
    .into_iter()
    .flatten()
}
