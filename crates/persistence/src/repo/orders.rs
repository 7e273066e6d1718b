//! Orders (invoices) and their items. Status changes are conditional updates, so two
//! concurrent payments of one order cannot both win.
use licentia_domain::ids::{AccountId, LicenseId, OrderId, OrderItemId};
use licentia_domain::period::Period;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::{order_items, orders};
use crate::error::{PersistenceError, Result};

/// An order's items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderItem {
    pub id: OrderItemId,
    pub order_id: OrderId,
    pub license_id: LicenseId,
    /// `license_order`, `renewal` or `configuration_change`.
    pub kind: String,
    pub period: Period,
    pub amount: i64,
    /// `pending`, `fulfilled` or `cancelled`.
    pub status: String,
    pub payload: serde_json::Value,
    pub created_at: OffsetDateTime,
}

/// An order with its items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub account_id: AccountId,
    /// `unpaid`, `paid` or `cancelled`.
    pub status: String,
    pub total: i64,
    pub currency: String,
    pub created_at: OffsetDateTime,
    pub paid_at: Option<OffsetDateTime>,
    pub items: Vec<OrderItem>,
}

fn item(m: order_items::Model) -> Result<OrderItem> {
    Ok(OrderItem {
        id: OrderItemId::from_uuid(m.id),
        order_id: OrderId::from_uuid(m.order_id),
        license_id: LicenseId::from_uuid(m.license_id),
        kind: m.kind,
        period: Period::new(i64::from(m.period_months))
            .map_err(|_| PersistenceError::Corrupt(format!("order item {} period", m.id)))?,
        amount: m.amount,
        status: m.status,
        payload: m.payload,
        created_at: m.created_at,
    })
}

async fn with_items(db: &impl ConnectionTrait, m: orders::Model) -> Result<Order> {
    let items = order_items::Entity::find()
        .filter(order_items::Column::OrderId.eq(m.id))
        .order_by_asc(order_items::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(item)
        .collect::<Result<Vec<_>>>()?;
    Ok(Order {
        id: OrderId::from_uuid(m.id),
        account_id: AccountId::from_uuid(m.account_id),
        status: m.status,
        total: m.total,
        currency: m.currency,
        created_at: m.created_at,
        paid_at: m.paid_at,
        items,
    })
}

/// Creates an empty unpaid order.
pub async fn create(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    currency: &str,
) -> Result<OrderId> {
    let id = OrderId::new();
    let row = orders::ActiveModel {
        id: Set(id.as_uuid()),
        account_id: Set(account_id.as_uuid()),
        status: Set("unpaid".into()),
        total: Set(0),
        currency: Set(currency.to_owned()),
        created_at: Set(crate::now()),
        paid_at: Set(None),
        cancelled_at: Set(None),
    };
    orders::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(id)
}

/// What an item to add needs.
#[derive(Clone, Debug)]
pub struct NewItem {
    pub license_id: LicenseId,
    pub kind: &'static str,
    pub period: Period,
    pub amount: i64,
    pub payload: serde_json::Value,
}

/// Adds a pending item to an unpaid order and raises its total; false when the order is not
/// (or no longer) unpaid.
pub async fn add_item(db: &impl ConnectionTrait, order_id: OrderId, new: NewItem) -> Result<bool> {
    let res = orders::Entity::update_many()
        .col_expr(
            orders::Column::Total,
            Expr::col(orders::Column::Total).add(new.amount),
        )
        .filter(orders::Column::Id.eq(order_id.as_uuid()))
        .filter(orders::Column::Status.eq("unpaid"))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(false);
    }
    let row = order_items::ActiveModel {
        id: Set(OrderItemId::new().as_uuid()),
        order_id: Set(order_id.as_uuid()),
        license_id: Set(new.license_id.as_uuid()),
        kind: Set(new.kind.to_owned()),
        period_months: Set(new.period.months() as i32),
        amount: Set(new.amount),
        status: Set("pending".into()),
        payload: Set(new.payload),
        created_at: Set(crate::now()),
    };
    order_items::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(true)
}

/// Finds an order, optionally only within one account.
pub async fn find(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    id: OrderId,
) -> Result<Option<Order>> {
    let mut q = orders::Entity::find_by_id(id.as_uuid());
    if let Some(account) = account {
        q = q.filter(orders::Column::AccountId.eq(account.as_uuid()));
    }
    match q.one(db).await? {
        Some(m) => Ok(Some(with_items(db, m).await?)),
        None => Ok(None),
    }
}

/// Locks the order row for the rest of the transaction.
pub async fn lock(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    id: OrderId,
) -> Result<Option<Order>> {
    let mut q = orders::Entity::find_by_id(id.as_uuid()).lock_exclusive();
    if let Some(account) = account {
        q = q.filter(orders::Column::AccountId.eq(account.as_uuid()));
    }
    match q.one(db).await? {
        Some(m) => Ok(Some(with_items(db, m).await?)),
        None => Ok(None),
    }
}

/// Moves an unpaid order to paid and its pending items to fulfilled; false when it was not unpaid.
pub async fn mark_paid(db: &impl ConnectionTrait, id: OrderId) -> Result<bool> {
    let res = orders::Entity::update_many()
        .col_expr(orders::Column::Status, Expr::value("paid"))
        .col_expr(orders::Column::PaidAt, Expr::value(crate::now()))
        .filter(orders::Column::Id.eq(id.as_uuid()))
        .filter(orders::Column::Status.eq("unpaid"))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(false);
    }
    order_items::Entity::update_many()
        .col_expr(order_items::Column::Status, Expr::value("fulfilled"))
        .filter(order_items::Column::OrderId.eq(id.as_uuid()))
        .filter(order_items::Column::Status.eq("pending"))
        .exec(db)
        .await?;
    Ok(true)
}

/// Cancels an unpaid order and its pending items; false when it was not unpaid.
pub async fn cancel(db: &impl ConnectionTrait, id: OrderId) -> Result<bool> {
    let res = orders::Entity::update_many()
        .col_expr(orders::Column::Status, Expr::value("cancelled"))
        .col_expr(orders::Column::CancelledAt, Expr::value(crate::now()))
        .filter(orders::Column::Id.eq(id.as_uuid()))
        .filter(orders::Column::Status.eq("unpaid"))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(false);
    }
    order_items::Entity::update_many()
        .col_expr(order_items::Column::Status, Expr::value("cancelled"))
        .filter(order_items::Column::OrderId.eq(id.as_uuid()))
        .filter(order_items::Column::Status.eq("pending"))
        .exec(db)
        .await?;
    Ok(true)
}

/// Cancels the license's pending items of unpaid orders, lowering their totals; an order left
/// with no pending item is cancelled. Returns the orders touched.
pub async fn cancel_items_of_license(
    db: &impl ConnectionTrait,
    license: LicenseId,
) -> Result<Vec<OrderId>> {
    let pending = order_items::Entity::find()
        .filter(order_items::Column::LicenseId.eq(license.as_uuid()))
        .filter(order_items::Column::Status.eq("pending"))
        .all(db)
        .await?;
    let mut touched = Vec::new();
    for it in pending {
        order_items::Entity::update_many()
            .col_expr(order_items::Column::Status, Expr::value("cancelled"))
            .filter(order_items::Column::Id.eq(it.id))
            .exec(db)
            .await?;
        orders::Entity::update_many()
            .col_expr(
                orders::Column::Total,
                Expr::col(orders::Column::Total).sub(it.amount),
            )
            .filter(orders::Column::Id.eq(it.order_id))
            .filter(orders::Column::Status.eq("unpaid"))
            .exec(db)
            .await?;
        let left = order_items::Entity::find()
            .filter(order_items::Column::OrderId.eq(it.order_id))
            .filter(order_items::Column::Status.eq("pending"))
            .one(db)
            .await?;
        if left.is_none() {
            cancel(db, OrderId::from_uuid(it.order_id)).await?;
        }
        touched.push(OrderId::from_uuid(it.order_id));
    }
    Ok(touched)
}

/// A keyset page of orders, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Order>> {
    let mut q = orders::Entity::find()
        .order_by_desc(orders::Column::Id)
        .limit(limit);
    if let Some(account) = account {
        q = q.filter(orders::Column::AccountId.eq(account.as_uuid()));
    }
    if let Some(status) = status {
        q = q.filter(orders::Column::Status.eq(status));
    }
    if let Some(after) = after {
        q = q.filter(orders::Column::Id.lt(after));
    }
    let mut out = Vec::new();
    for m in q.all(db).await? {
        out.push(with_items(db, m).await?);
    }
    Ok(out)
}

/// Every item ever ordered for the license (any status; only of `kind` when given), oldest
/// first.
pub async fn items_of_license(
    db: &impl ConnectionTrait,
    license: LicenseId,
    kind: Option<&str>,
) -> Result<Vec<OrderItem>> {
    let mut q =
        order_items::Entity::find().filter(order_items::Column::LicenseId.eq(license.as_uuid()));
    if let Some(kind) = kind {
        q = q.filter(order_items::Column::Kind.eq(kind));
    }
    q.order_by_asc(order_items::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(item)
        .collect()
}
