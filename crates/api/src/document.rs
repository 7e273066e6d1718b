//! The OpenAPI document: one derive for the frame (info, tags, security schemes, reusable
//! error responses); paths and schemas are collected from the routes themselves.
use actix_web::App;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::error::Problem;
use crate::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PaymentRequired,
    PreconditionFailed, ServiceUnavailable, TooManyRequests, Unauthorized, Unprocessable,
    UnsupportedMediaType, sdk, text,
};

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

/// Declares the answers every operation of a kind can give, whatever its handler does, so
/// that no handler can forget them: a body that is not JSON, too large or of another media
/// type (400, 413, 415) on operations with a request body; two credentials at once (400) on
/// protected operations; the database being unreachable (503) on every operation but the
/// liveness probe, which touches nothing.
pub struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};

        for operation in crate::openapi::operations(openapi) {
            let mut add = Vec::new();
            if operation.request_body.is_some() {
                add.extend([
                    ("400", "BadRequest"),
                    ("413", "PayloadTooLarge"),
                    ("415", "UnsupportedMediaType"),
                ]);
            }
            if operation.security.is_some() {
                add.push(("400", "BadRequest"));
            }
            if operation.operation_id.as_deref() != Some("get_health") {
                add.push(("503", "ServiceUnavailable"));
            }
            for (status, response) in add {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response)));
            }
        }
    }
}

/// States what every request body of this API enforces (`#[serde(deny_unknown_fields)]` on each
/// of them): an object accepts only its declared properties. utoipa writes
/// `additionalProperties: false` for no schema, not even for the variants of an enum, so this
/// walks every schema a request body reaches and closes each object that declares properties
/// and says nothing about others. Maps (`additionalProperties` set) and `allOf` parts (which a
/// closed part would break) are left alone.
pub struct ClosedRequestBodies;

impl ClosedRequestBodies {
    fn close(schema: &mut RefOr<Schema>, refs: &mut Vec<String>) {
        match schema {
            RefOr::Ref(r) => {
                if let Some(name) = r.ref_location.strip_prefix("#/components/schemas/") {
                    refs.push(name.to_owned());
                }
            }
            RefOr::T(schema) => Self::close_schema(schema, refs),
        }
    }

    fn close_schema(schema: &mut Schema, refs: &mut Vec<String>) {
        use utoipa::openapi::schema::{AdditionalProperties, ArrayItems};
        match schema {
            Schema::Object(object) => {
                if !object.properties.is_empty() && object.additional_properties.is_none() {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
                for property in object.properties.values_mut() {
                    Self::close(property, refs);
                }
                if let Some(extra) = object.additional_properties.as_deref_mut()
                    && let AdditionalProperties::RefOr(extra) = extra
                {
                    Self::close(extra, refs);
                }
            }
            Schema::Array(array) => {
                if let ArrayItems::RefOrSchema(items) = &mut array.items {
                    Self::close(items, refs);
                }
            }
            Schema::OneOf(one_of) => one_of
                .items
                .iter_mut()
                .for_each(|item| Self::close(item, refs)),
            Schema::AnyOf(any_of) => any_of
                .items
                .iter_mut()
                .for_each(|item| Self::close(item, refs)),
            _ => {}
        }
    }
}

impl Modify for ClosedRequestBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut refs = Vec::new();
        for operation in crate::openapi::operations_with_body(openapi) {
            let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
                continue;
            };
            for content in body.content.values_mut() {
                if let RefOr::T(content) = content
                    && let Some(schema) = content.schema.as_mut()
                {
                    Self::close(schema, &mut refs);
                }
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let mut done = std::collections::BTreeSet::new();
        while let Some(name) = refs.pop() {
            if !done.insert(name.clone()) {
                continue;
            }
            if let Some(schema) = components.schemas.get_mut(&name) {
                Self::close(schema, &mut refs);
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
documents with a stable `code`. Amounts are integers in minor units of the deployment's currency. \
Integers are written as JSON integers (`72`, never `72.0` or `7.2e1`); a request body is a JSON object."
    ),
    modifiers(&SecuritySchemes),
    components(
        schemas(Problem, crate::error::FieldErrorSchema),
        responses(BadRequest, Unauthorized, PaymentRequired, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, ServiceUnavailable)
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
        (name = "events", description = "The audit log of every state change, and its live stream (`GET /v1/events/stream`, Server-Sent Events)"),
        (name = "webhooks", description = "Endpoints that receive events as signed HTTP POSTs, and their delivery logs. \
Each delivery is `{id, type, created_at, data: {account_id, license_id, before, after}}` with the headers \
`Licentia-Event-Id` (receivers dedupe by it: delivery is at least once) and `Licentia-Signature: t=<unix seconds>,v1=<hex \
HMAC-SHA256>`, keyed with the UTF-8 bytes of the endpoint's secret over `<t>.<raw body>`. Event types: \
`license.ordered`, `license.activated`, `license.updated`, `license.suspended`, `license.enabled`, `license.renewed`, \
`license.expiring_soon`, `license.expired`, `license.deleted`, `license.provisioning_failed`, `license.auto_renew_failed`, \
`license.registration_created`, `license.registration_deleted` (one machine's seat was freed, by the owner or by the \
licensed software; `before` is the registration, `after` holds `registrations_count` and `released_by`: `owner` or \
`software`), `license.registrations_deleted`, `transfer.created`, `transfer.accepted`, \
`transfer.rejected`, `transfer.cancelled`, `transfer.expired`, `order.paid`, `order.item_cancelled` (an unpaid item \
went stale: its license changed in a way that alters the item's price or meaning; `after` holds `order_id`, \
`item_id` and `reason: \"stale\"`), `balance.low` (a charge left the \
account unable to pay the same amount again: balance + credit limit below the amount charged), \
`webhook.ping` (sent by `POST /v1/webhook-endpoints/{id}/ping` to that endpoint only, whatever it \
subscribes to; `after` holds `endpoint_id`). A delivery can be sent again with \
`POST /v1/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver`: the same event id and body, \
a fresh signature."),
        (name = "licensed-software", description = "What the licensed software calls with its registration key: register, validate (signed), offline license files; the signing keys that verify them"),
        (name = "bulk", description = "One action over every license a filter matches, run in the background"),
        (name = "reports", description = "Counts of licenses by status and product, licenses expiring soon, and revenue from the ledger by period and product"),
        (name = "system", description = "Health, readiness and metrics"),
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
    CommonResponses.modify(&mut api);
    ClosedRequestBodies.modify(&mut api);
    text::PlainText.modify(&mut api);
    sdk::SdkShape.modify(&mut api);
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
