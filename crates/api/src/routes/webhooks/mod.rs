//! `/v1/webhook-endpoints`: where a partner's integration receives its account's events, the
//! log of each delivery, and the tools to test and repair an integration (ping, redeliver).
//! Writes need `account:admin`, reads `licenses:read`. A partner sees only its own endpoints
//! (others answer 404); the provider's administrators see all, and the endpoints they register
//! receive every account's events.
use actix_web::{HttpResponse, delete, get, patch, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::AccountId;
use licentia_persistence::repo::events::{self, NewEvent};
use licentia_persistence::repo::webhooks::{
    self, Delivery, Endpoint, EndpointChanges, NewEndpoint,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::ListQuery;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::pagination::{CursorKey, Page, page_of};
use crate::service::webhooks::{self as service, ALL_TYPES};
use crate::state::AppState;
use licentia_app::crypto;

mod deliveries;
pub use deliveries::*;

/// The most endpoints one account may register.
pub const MAX_ENDPOINTS: u64 = 20;

/// A new webhook endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpoint {
    /// Where to POST events: an absolute `http` or `https` URL without credentials, at most
    /// 2048 characters, whose host is a public address (loopback, private, link-local, shared
    /// and metadata addresses are refused with 422 `invalid_webhook_url`).
    #[schema(
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]",
        example = "https://billing.example.com/licentia/events"
    )]
    pub url: String,
    /// The event types to receive (see the `webhooks` tag), or `["*"]` for all of them.
    #[schema(
        value_type = Vec<crate::openapi::types::WebhookEventType>,
        min_items = 1,
        example = json!(["license.activated", "license.suspended"])
    )]
    pub event_types: Vec<String>,
}

/// Changes to a webhook endpoint; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookEndpoint {
    /// A new URL, checked like at creation.
    #[schema(max_length = 2048, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]")]
    pub url: Option<String>,
    /// A new list of event types (replaces the old one).
    #[schema(
        value_type = Option<Vec<crate::openapi::types::WebhookEventType>>,
        min_items = 1
    )]
    pub event_types: Option<Vec<String>>,
    /// `false` stops deliveries: no new ones are queued, and pending ones are given up.
    pub enabled: Option<bool>,
}

/// A webhook endpoint (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointOut {
    pub id: Uuid,
    /// The account that owns the endpoint.
    pub account_id: Uuid,
    /// The URL events are POSTed to, normalized.
    pub url: String,
    /// The event types it receives; `*` is all of them.
    #[schema(value_type = Vec<crate::openapi::types::WebhookEventType>)]
    pub event_types: Vec<String>,
    /// Whether deliveries are made.
    pub enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Endpoint> for WebhookEndpointOut {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id,
            account_id: e.account_id.as_uuid(),
            url: e.url,
            event_types: e.event_types,
            enabled: e.enabled,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// A newly registered endpoint: the only time `secret` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookEndpoint {
    #[serde(flatten)]
    pub endpoint: WebhookEndpointOut,
    /// The signing secret. Store it now: it is never shown again. Each delivery carries
    /// `Licentia-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` computed with the UTF-8
    /// bytes of this string as the key over `"<t>.<raw body>"`.
    #[schema(example = "whsec_hR1b7mZ0Qz9yKk3Jc2VnUu8xTqL5aWsD4fGpEoNrYiA")]
    pub secret: String,
}

/// One event's delivery to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryOut {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The event delivered (also the `Licentia-Event-Id` header; receivers dedupe by it).
    pub event_id: Uuid,
    #[schema(value_type = crate::openapi::types::EventType, example = "license.activated")]
    pub event_type: licentia_domain::event::EventType,
    /// `pending` (retries remain), `delivered` (a 2xx answer) or `failed` (given up).
    #[schema(value_type = crate::openapi::types::DeliveryStatus, example = "delivered")]
    pub status: licentia_domain::event::DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// The HTTP status of the last answer; null when there was none (refused address,
    /// timeout, connection error).
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed; null after success.
    pub last_error: Option<String>,
    /// When the next attempt runs; null once delivered or failed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When a 2xx answer was received.
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Delivery> for WebhookDeliveryOut {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id.as_uuid(),
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_at,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// The account whose endpoints the caller sees; `None` for the provider's administrators.
fn visible(principal: &Principal) -> Option<AccountId> {
    (!principal.is_admin()).then(|| principal.account_id())
}

/// Known event types or `*`, without repeats; 422 naming each unknown entry.
fn event_types(raw: &[String]) -> ApiResult<Vec<String>> {
    let mut errors = Vec::new();
    let mut out: Vec<String> = Vec::new();
    if raw.is_empty() {
        errors.push(FieldError::new(
            "event_types",
            "at least one event type, or \"*\"",
        ));
    }
    for (i, t) in raw.iter().enumerate() {
        if t != ALL_TYPES
            && !t
                .parse::<licentia_domain::event::EventType>()
                .is_ok_and(licentia_domain::event::EventType::is_delivered)
        {
            errors.push(FieldError::new(
                format!("event_types[{i}]"),
                "unknown event type",
            ));
        } else if !out.contains(t) {
            out.push(t.clone());
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Register a webhook endpoint
///
/// The URL is refused (422 `invalid_webhook_url`) unless it is `http`/`https` and its host is,
/// and resolves only to, public addresses. Events are POSTed as `{id, type, created_at,
/// data}` with the headers `Licentia-Event-Id` and `Licentia-Signature`; failed deliveries
/// are retried with exponential backoff for more than 24 hours; redirects are not followed.
#[utoipa::path(
    operation_id = "create_webhook_endpoint",
    tag = "webhooks",
    request_body = CreateWebhookEndpoint,
    responses(
        (status = 201, description = "Registered; `secret` is shown only here", body = CreatedWebhookEndpoint),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/webhook-endpoints")]
pub async fn create_webhook_endpoint(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::extract::Json<CreateWebhookEndpoint>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::AccountAdmin)?;
    let body = body.into_inner()?;
    let event_types = event_types(&body.event_types)?;
    let url = service::check_url(&state, &body.url).await?;
    let account = principal.account_id();
    let secret = service::generate_secret();
    let secret_enc =
        crypto::seal(&state.encryption_key, secret.as_bytes()).map_err(ApiError::internal)?;
    let txn = state.db.begin().await?;
    let new = NewEndpoint {
        account_id: account,
        all_accounts: principal.is_admin(),
        url,
        event_types,
        secret_enc,
    };
    let Some(stored) = webhooks::insert_within(&txn, new, MAX_ENDPOINTS).await? else {
        return Err(ApiError::conflict(format!(
            "an account may register at most {MAX_ENDPOINTS} webhook endpoints; delete one first"
        )));
    };
    let res = HttpResponse::Created().json(CreatedWebhookEndpoint {
        endpoint: stored.into(),
        secret,
    });
    crate::idempotency::commit(txn, res).await
}

/// List webhook endpoints
#[utoipa::path(
    operation_id = "list_webhook_endpoints",
    tag = "webhooks",
    params(ListQuery),
    responses(
        (status = 200, description = "The endpoints, oldest first", body = Page<WebhookEndpointOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/webhook-endpoints")]
pub async fn list_webhook_endpoints(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let scope = format!("{}|webhook-endpoints", principal.account_id());
    let (limit, after) = query.keyset(&state, &scope)?;
    let rows = webhooks::list(state.db.conn(), visible(&principal), after, limit + 1).await?;
    let page = page_of(
        rows,
        limit,
        &state.cursors,
        &scope,
        |e| CursorKey {
            id: e.id,
            value: None,
        },
        WebhookEndpointOut::from,
    );
    Ok(HttpResponse::Ok().json(page))
}

/// Get a webhook endpoint
#[utoipa::path(
    operation_id = "get_webhook_endpoint",
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookEndpointOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/webhook-endpoints/{id}")]
pub async fn get_webhook_endpoint(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let endpoint = webhooks::find(state.db.conn(), visible(&principal), id.into_inner())
        .await?
        .ok_or(ApiError::not_found())?;
    Ok(HttpResponse::Ok().json(WebhookEndpointOut::from(endpoint)))
}

/// Update a webhook endpoint
///
/// Change the URL (checked like at creation), the event types, or pause and resume
/// deliveries with `enabled`.
#[utoipa::path(
    operation_id = "update_webhook_endpoint",
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook endpoint id")),
    request_body = UpdateWebhookEndpoint,
    responses(
        (status = 200, description = "The updated endpoint", body = WebhookEndpointOut),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[patch("/v1/webhook-endpoints/{id}")]
pub async fn update_webhook_endpoint(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    body: crate::extract::Json<UpdateWebhookEndpoint>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::AccountAdmin)?;
    let id = id.into_inner();
    let scope = visible(&principal);
    webhooks::find(state.db.conn(), scope, id)
        .await?
        .ok_or(ApiError::not_found())?;
    let body = body.into_inner()?;
    let event_types = body.event_types.as_deref().map(event_types).transpose()?;
    let url = match &body.url {
        Some(raw) => Some(service::check_url(&state, raw).await?),
        None => None,
    };
    let changes = EndpointChanges {
        url,
        event_types,
        enabled: body.enabled,
    };
    let updated = webhooks::update(state.db.conn(), scope, id, changes)
        .await?
        .ok_or(ApiError::not_found())?;
    Ok(HttpResponse::Ok().json(WebhookEndpointOut::from(updated)))
}

/// Delete a webhook endpoint
///
/// Effective at once: pending deliveries are dropped with the endpoint's delivery log.
#[utoipa::path(
    operation_id = "delete_webhook_endpoint",
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[delete("/v1/webhook-endpoints/{id}")]
pub async fn delete_webhook_endpoint(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::AccountAdmin)?;
    if !webhooks::delete(state.db.conn(), visible(&principal), id.into_inner()).await? {
        return Err(ApiError::not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}
