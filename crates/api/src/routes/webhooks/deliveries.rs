//! An endpoint's deliveries: the log, redelivery and pings.
#[allow(clippy::wildcard_imports)]
use super::*;

/// List an endpoint's deliveries
///
/// The delivery log, newest first: each event sent (or being sent) to the endpoint, with its
/// attempts, the last answer or error, and when the next attempt runs.
#[utoipa::path(
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook endpoint id"), ListQuery),
    responses(
        (status = 200, description = "A page of deliveries, newest first", body = Page<WebhookDeliveryOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/webhook-endpoints/{id}/deliveries")]
pub async fn list_webhook_deliveries(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let endpoint = webhooks::find(state.db.conn(), visible(&principal), id.into_inner())
        .await?
        .ok_or(ApiError::not_found())?;
    let scope = format!(
        "{}|webhook-deliveries|{}",
        principal.account_id(),
        endpoint.id
    );
    let (limit, after) = query.keyset(&state, &scope)?;
    let rows = webhooks::list_deliveries(state.db.conn(), endpoint.id, after, limit + 1).await?;
    let page = page_of(
        rows,
        limit,
        &state.cursors,
        &scope,
        |d| CursorKey {
            id: d.id,
            value: None,
        },
        WebhookDeliveryOut::from,
    );
    Ok(HttpResponse::Ok().json(page))
}

/// The endpoint, when the caller may change it (`account:admin`; 403 before the look-up), and
/// it can receive deliveries (409 while it is disabled).
async fn deliverable_endpoint(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> ApiResult<Endpoint> {
    principal.require(Scope::AccountAdmin)?;
    let endpoint = webhooks::find(state.db.conn(), visible(principal), id)
        .await?
        .ok_or(ApiError::not_found())?;
    Ok(endpoint)
}

fn require_enabled(endpoint: &Endpoint) -> ApiResult<()> {
    if endpoint.enabled {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "the endpoint is disabled; enable it (PATCH enabled: true) first".into(),
        ))
    }
}

/// Redeliver a webhook delivery
///
/// Sends the delivery's event to the endpoint again, as a new delivery (retried like any
/// other): the same event id (`Licentia-Event-Id`) and the same body, with a fresh
/// `Licentia-Signature`. For a receiver that was down, or lost what it received. Needs the
/// permission that changing the endpoint needs (`account:admin`); 409 while the endpoint is
/// disabled.
#[utoipa::path(
    operation_id = "redeliver_webhook_delivery",
    tag = "webhooks",
    params(
        ("id" = Uuid, Path, description = "Webhook endpoint id"),
        ("delivery_id" = Uuid, Path, description = "The delivery to send again"),
    ),
    responses(
        (status = 202, description = "Queued: the new delivery", body = WebhookDeliveryOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver")]
pub async fn redeliver_webhook_delivery(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (id, delivery_id) = path.into_inner();
    let endpoint = deliverable_endpoint(&state, &principal, id).await?;
    let txn = state.db.begin().await?;
    let original = webhooks::find_delivery(&txn, endpoint.id, delivery_id)
        .await?
        .ok_or(ApiError::not_found())?;
    require_enabled(&endpoint)?;
    let queued = webhooks::queue_delivery(
        &txn,
        endpoint.id,
        original.event_id,
        original.event_type,
        licentia_persistence::now(),
    )
    .await?;
    let res = HttpResponse::Accepted().json(WebhookDeliveryOut::from(queued));
    crate::idempotency::commit(txn, res).await
}

/// Ping a webhook endpoint
///
/// Records a `webhook.ping` event (`after`: `{endpoint_id}`) and delivers it to this endpoint
/// only, whatever event types it subscribes to: a signed test delivery for an integration
/// under construction. Needs the permission that changing the endpoint needs
/// (`account:admin`); 409 while the endpoint is disabled.
#[utoipa::path(
    operation_id = "ping_webhook_endpoint",
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook endpoint id")),
    responses(
        (status = 202, description = "Queued: the ping's delivery", body = WebhookDeliveryOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/webhook-endpoints/{id}/ping")]
pub async fn ping_webhook_endpoint(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let endpoint = deliverable_endpoint(&state, &principal, id.into_inner()).await?;
    require_enabled(&endpoint)?;
    let txn = state.db.begin().await?;
    let (event_id, at) = events::record_undelivered(
        &txn,
        NewEvent {
            event_type: service::PING,
            account_id: endpoint.account_id,
            license_id: None,
            actor: principal.actor(),
            before: None,
            after: Some(serde_json::json!({ "endpoint_id": endpoint.id })),
        },
    )
    .await?;
    let queued = webhooks::queue_delivery(&txn, endpoint.id, event_id, service::PING, at).await?;
    let res = HttpResponse::Accepted().json(WebhookDeliveryOut::from(queued));
    crate::idempotency::commit(txn, res).await
}
