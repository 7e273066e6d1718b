//! `/v1/orders`: invoices — list, get, pay from the balance, cancel.
use actix_web::{HttpResponse, get, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::{AccountId, OrderId};
use licentia_persistence::repo::orders::{self, Order, OrderItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{CursorKey, Page, page_of, parse_limit};
use crate::state::AppState;
use licentia_app::orders as billing;
use licentia_domain::order::{ItemKind, ItemStatus, OrderStatus};

/// One line of an order.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct OrderItemOut {
    pub id: Uuid,
    /// `license_order`, `renewal` or `configuration_change`.
    #[schema(value_type = crate::openapi::types::OrderItemKind)]
    pub kind: ItemKind,
    pub license_id: Uuid,
    #[schema(value_type = crate::openapi::types::PeriodMonths)]
    pub period_months: u32,
    /// Minor units.
    pub amount: i64,
    /// `pending`, `fulfilled` or `cancelled`.
    #[schema(value_type = crate::openapi::types::OrderItemStatus)]
    pub status: ItemStatus,
}

/// An order (invoice).
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct OrderOut {
    pub id: Uuid,
    pub account_id: Uuid,
    /// `unpaid`, `paid` or `cancelled`.
    #[schema(value_type = crate::openapi::types::OrderStatus)]
    pub status: OrderStatus,
    pub items: Vec<OrderItemOut>,
    /// Sum of the items not cancelled, in minor units.
    pub total: i64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub paid_at: Option<OffsetDateTime>,
}

impl From<OrderItem> for OrderItemOut {
    fn from(i: OrderItem) -> Self {
        Self {
            id: i.id.as_uuid(),
            kind: i.kind,
            license_id: i.license_id.as_uuid(),
            period_months: i.period.months(),
            amount: i.amount,
            status: i.status,
        }
    }
}

impl From<Order> for OrderOut {
    fn from(o: Order) -> Self {
        Self {
            id: o.id.as_uuid(),
            account_id: o.account_id.as_uuid(),
            status: o.status,
            items: o.items.into_iter().map(OrderItemOut::from).collect(),
            total: o.total,
            currency: o.currency,
            created_at: o.created_at,
            paid_at: o.paid_at,
        }
    }
}

/// Order list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// `unpaid`, `paid` or `cancelled`.
    #[param(value_type = Option<crate::openapi::types::OrderStatus>)]
    pub status: Option<String>,
    /// Page size, 1..200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn tenant(principal: &Principal) -> Option<AccountId> {
    (!principal.is_admin()).then(|| principal.account_id())
}

/// List orders
#[utoipa::path(
    operation_id = "list_orders",
    tag = "orders",
    params(OrderQuery),
    responses(
        (status = 200, description = "A page of orders, newest first", body = Page<OrderOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/orders")]
pub async fn list_orders(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<OrderQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::BillingRead)?;
    let limit = parse_limit(query.limit.as_deref()).map_err(|e| ApiError::validation(vec![e]))?;
    if let Some(s) = query.status.as_deref()
        && s.parse::<OrderStatus>().is_err()
    {
        return Err(ApiError::field(
            "status",
            "must be unpaid, paid or cancelled",
        ));
    }
    let scope = format!(
        "{}|orders|{}",
        principal.account_id(),
        query.status.as_deref().unwrap_or("")
    );
    let after = match &query.cursor {
        Some(c) => Some(state.cursors.decode(&scope, c)?.id),
        None => None,
    };
    let rows = orders::list(
        state.db.conn(),
        tenant(&principal),
        query.status.as_deref(),
        after,
        limit + 1,
    )
    .await?;
    let page = page_of(
        rows,
        limit,
        &state.cursors,
        &scope,
        |o| CursorKey {
            id: o.id.as_uuid(),
            value: None,
        },
        OrderOut::from,
    );
    Ok(HttpResponse::Ok().json(page))
}

/// Get an order
#[utoipa::path(
    operation_id = "get_order",
    tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/orders/{id}")]
pub async fn get_order(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::BillingRead)?;
    let order = orders::find(
        state.db.conn(),
        tenant(&principal),
        OrderId::from_uuid(id.into_inner()),
    )
    .await?
    .ok_or(ApiError::not_found())?;
    Ok(HttpResponse::Ok().json(OrderOut::from(order)))
}

/// Pay an order
///
/// Pays the whole order from the balance (402 when balance + credit limit fall short, and
/// nothing changes) and fulfils its items: ordered licenses start their activation.
#[utoipa::path(
    operation_id = "pay_order",
    tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The paid order", body = OrderOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 402, response = crate::openapi::PaymentRequired),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/orders/{id}/pay")]
pub async fn pay_order(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::BillingWrite)?;
    let id = OrderId::from_uuid(id.into_inner());
    let txn = state.db.begin().await?;
    let attempts = state.policy.provision_attempts;
    let order = billing::pay_order(
        &txn,
        tenant(&principal),
        id,
        principal.actor(),
        attempts,
        state.clock.now(),
    )
    .await?;
    crate::idempotency::commit(txn, HttpResponse::Ok().json(OrderOut::from(order))).await
}

/// Cancel an order
///
/// Only unpaid orders can be cancelled (409 otherwise); licenses the order was buying are deleted.
#[utoipa::path(
    operation_id = "cancel_order",
    tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The cancelled order", body = OrderOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/orders/{id}/cancel")]
pub async fn cancel_order(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::BillingWrite)?;
    let id = OrderId::from_uuid(id.into_inner());
    let txn = state.db.begin().await?;
    let order = billing::cancel_order(&txn, tenant(&principal), id, principal.actor()).await?;
    crate::idempotency::commit(txn, HttpResponse::Ok().json(OrderOut::from(order))).await
}
