//! Orders (invoices) and their items. Status changes are conditional updates, so two
//! concurrent payments of one order cannot both win.
use licentia_domain::event::EventType;
use licentia_domain::ids::{AccountId, LicenseId, OrderId, OrderItemId};
use licentia_domain::license_record::License;
use licentia_domain::order::{ItemKind, ItemStatus, OrderStatus};
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
    pub kind: ItemKind,
    pub period: Period,
    pub amount: i64,
    pub status: ItemStatus,
    pub payload: serde_json::Value,
    pub created_at: OffsetDateTime,
}

/// An order with its items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub account_id: AccountId,
    pub status: OrderStatus,
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
        kind: crate::error::parse("order_item.kind", &m.kind)?,
        period: Period::new(i64::from(m.period_months))
            .map_err(|_| PersistenceError::Corrupt(format!("order item {} period", m.id)))?,
        amount: m.amount,
        status: crate::error::parse("order_item.status", &m.status)?,
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
        status: crate::error::parse("order.status", &m.status)?,
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
        status: Set(OrderStatus::Unpaid.as_str().to_owned()),
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
    pub kind: ItemKind,
    pub period: Period,
    pub amount: i64,
    /// The item's own data (e.g. the new options of a configuration change); the license's
    /// [`basis`] is added to it.
    pub payload: serde_json::Value,
    /// [`basis`] of the license the item was priced for.
    pub basis: serde_json::Value,
}

impl NewItem {
    /// An item for `license` as it is now: the price is for this state of the license.
    pub fn for_license(
        license: &License,
        kind: ItemKind,
        period: Period,
        amount: i64,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            license_id: license.id,
            kind,
            period,
            amount,
            payload,
            basis: basis(license),
        }
    }
}

/// The largest total an order may reach, in minor units (CONTRACT §5).
pub const MAX_TOTAL: i64 = 1_000_000_000_000_000;

/// What an item's price and meaning depend on (CONTRACT §5 "Pending items never drift"): the
/// license's owner, product, term length, options and the end of its term. A pending item
/// whose basis no longer equals its license's is stale: it is cancelled, never applied.
pub fn basis(license: &License) -> serde_json::Value {
    serde_json::json!({
        "account_id": license.account_id,
        "product_id": license.product_id,
        "period_months": license.period.months(),
        "options": license.options,
        "valid_until": license
            .lifecycle
            .valid_until
            .map(|t| t.unix_timestamp_nanos() / 1_000),
    })
}

/// Whether the pending `item` no longer fits `license` (see [`basis`]); a deleted license
/// makes every item stale. Items stored without a basis are stale unless they order the license.
pub fn is_stale(item: &OrderItem, license: &License) -> bool {
    if license.lifecycle.status == licentia_domain::license::LicenseStatus::Deleted {
        return true;
    }
    match item.payload.get("basis") {
        Some(b) => *b != basis(license),
        None => item.kind != ItemKind::LicenseOrder,
    }
}

/// Adds a pending item to an unpaid order and raises its total; false when the order is not
/// (or no longer) unpaid.
///
/// A total that would pass [`MAX_TOTAL`] is refused with [`PersistenceError::AmountTooLarge`].
pub async fn add_item(db: &impl ConnectionTrait, order_id: OrderId, new: NewItem) -> Result<bool> {
    if !(0..=MAX_TOTAL).contains(&new.amount) {
        return Err(PersistenceError::AmountTooLarge);
    }
    let res = orders::Entity::update_many()
        .col_expr(
            orders::Column::Total,
            Expr::col(orders::Column::Total).add(new.amount),
        )
        .filter(orders::Column::Id.eq(order_id.as_uuid()))
        .filter(orders::Column::Status.eq(OrderStatus::Unpaid.as_str()))
        .filter(Expr::col(orders::Column::Total).lte(MAX_TOTAL - new.amount))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        let total = orders::Entity::find_by_id(order_id.as_uuid())
            .filter(orders::Column::Status.eq(OrderStatus::Unpaid.as_str()))
            .select_only()
            .column(orders::Column::Total)
            .into_tuple::<i64>()
            .one(db)
            .await?;
        return match total {
            Some(_) => Err(PersistenceError::AmountTooLarge),
            None => Ok(false),
        };
    }
    let mut payload = match new.payload {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    payload.insert("basis".into(), new.basis);
    let payload = serde_json::Value::Object(payload);
    let row = order_items::ActiveModel {
        id: Set(OrderItemId::new().as_uuid()),
        order_id: Set(order_id.as_uuid()),
        license_id: Set(new.license_id.as_uuid()),
        kind: Set(new.kind.as_str().to_owned()),
        period_months: Set(new.period.months() as i32),
        amount: Set(new.amount),
        status: Set(ItemStatus::Pending.as_str().to_owned()),
        payload: Set(payload),
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

/// Locks the order row for the rest of the transaction, after its account
/// ([`super::accounts::lock`]: account, then orders, then licenses).
pub async fn lock(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    id: OrderId,
) -> Result<Option<Order>> {
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        let mut q = orders::Entity::find_by_id(id.as_uuid())
            .select_only()
            .column(orders::Column::AccountId);
        if let Some(account) = account {
            q = q.filter(orders::Column::AccountId.eq(account.as_uuid()));
        }
        let Some(owner) = q.into_tuple::<Uuid>().one(db).await? else {
            return Ok(None);
        };
        super::accounts::lock(db, AccountId::from_uuid(owner)).await?;
    }
    let mut q = orders::Entity::find_by_id(id.as_uuid()).lock_exclusive();
    if let Some(account) = account {
        q = q.filter(orders::Column::AccountId.eq(account.as_uuid()));
    }
    match q.one(db).await? {
        Some(m) => Ok(Some(with_items(db, m).await?)),
        None => Ok(None),
    }
}

/// Moves one pending item of an unpaid order to fulfilled (its order is being paid); false
/// when it was no longer pending.
pub async fn fulfil_item(db: &impl ConnectionTrait, item: OrderItemId) -> Result<bool> {
    let res = order_items::Entity::update_many()
        .col_expr(
            order_items::Column::Status,
            Expr::value(ItemStatus::Fulfilled.as_str()),
        )
        .filter(order_items::Column::Id.eq(item.as_uuid()))
        .filter(order_items::Column::Status.eq(ItemStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Moves an unpaid order to paid and its pending items to fulfilled; false when it was not unpaid.
pub async fn mark_paid(db: &impl ConnectionTrait, id: OrderId) -> Result<bool> {
    let res = orders::Entity::update_many()
        .col_expr(
            orders::Column::Status,
            Expr::value(OrderStatus::Paid.as_str()),
        )
        .col_expr(orders::Column::PaidAt, Expr::value(crate::now()))
        .filter(orders::Column::Id.eq(id.as_uuid()))
        .filter(orders::Column::Status.eq(OrderStatus::Unpaid.as_str()))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(false);
    }
    order_items::Entity::update_many()
        .col_expr(
            order_items::Column::Status,
            Expr::value(ItemStatus::Fulfilled.as_str()),
        )
        .filter(order_items::Column::OrderId.eq(id.as_uuid()))
        .filter(order_items::Column::Status.eq(ItemStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(true)
}

/// Cancels an unpaid order and its pending items; false when it was not unpaid.
pub async fn cancel(db: &impl ConnectionTrait, id: OrderId) -> Result<bool> {
    let res = orders::Entity::update_many()
        .col_expr(
            orders::Column::Status,
            Expr::value(OrderStatus::Cancelled.as_str()),
        )
        .col_expr(orders::Column::CancelledAt, Expr::value(crate::now()))
        .filter(orders::Column::Id.eq(id.as_uuid()))
        .filter(orders::Column::Status.eq(OrderStatus::Unpaid.as_str()))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(false);
    }
    order_items::Entity::update_many()
        .col_expr(
            order_items::Column::Status,
            Expr::value(ItemStatus::Cancelled.as_str()),
        )
        .filter(order_items::Column::OrderId.eq(id.as_uuid()))
        .filter(order_items::Column::Status.eq(ItemStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(true)
}

/// A pending item cancelled because it went stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelledItem {
    pub order_id: OrderId,
    pub item_id: OrderItemId,
    /// Whether its order was left with nothing to pay and was cancelled too.
    pub order_cancelled: bool,
}

/// Cancels one pending item, lowering its unpaid order's total; an order left with no pending
/// or fulfilled item is cancelled. Returns what happened, or `None` when the item was no longer
/// pending.
pub async fn cancel_item(
    db: &impl ConnectionTrait,
    item: &OrderItem,
) -> Result<Option<CancelledItem>> {
    let res = order_items::Entity::update_many()
        .col_expr(
            order_items::Column::Status,
            Expr::value(ItemStatus::Cancelled.as_str()),
        )
        .filter(order_items::Column::Id.eq(item.id.as_uuid()))
        .filter(order_items::Column::Status.eq(ItemStatus::Pending.as_str()))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(None);
    }
    orders::Entity::update_many()
        .col_expr(
            orders::Column::Total,
            Expr::col(orders::Column::Total).sub(item.amount),
        )
        .filter(orders::Column::Id.eq(item.order_id.as_uuid()))
        .filter(orders::Column::Status.eq(OrderStatus::Unpaid.as_str()))
        .exec(db)
        .await?;
    let left = order_items::Entity::find()
        .filter(order_items::Column::OrderId.eq(item.order_id.as_uuid()))
        .filter(
            order_items::Column::Status
                .is_in([ItemStatus::Pending.as_str(), ItemStatus::Fulfilled.as_str()]),
        )
        .one(db)
        .await?;
    let order_cancelled = left.is_none() && cancel(db, item.order_id).await?;
    Ok(Some(CancelledItem {
        order_id: item.order_id,
        item_id: item.id,
        order_cancelled,
    }))
}

/// Cancels the license's pending items that went stale (see [`is_stale`]: the license changed
/// owner, product, term or options since they were priced, or was deleted), each with an event
/// `order.item_cancelled` (`reason: "stale"`). Called by [`super::licenses::save`], so that no
/// change of a license can leave an item that would apply at the old price.
pub async fn cancel_stale_items(
    db: &impl ConnectionTrait,
    license: &License,
) -> Result<Vec<CancelledItem>> {
    let pending = order_items::Entity::find()
        .filter(order_items::Column::LicenseId.eq(license.id.as_uuid()))
        .filter(order_items::Column::Status.eq(ItemStatus::Pending.as_str()))
        .order_by_asc(order_items::Column::Id)
        .all(db)
        .await?;
    let mut cancelled = Vec::new();
    for row in pending {
        let it = item(row)?;
        if !is_stale(&it, license) {
            continue;
        }
        let Some(done) = cancel_item(db, &it).await? else {
            continue;
        };
        // The order's owner: after a transfer the license belongs to someone else.
        let owner = orders::Entity::find_by_id(it.order_id.as_uuid())
            .select_only()
            .column(orders::Column::AccountId)
            .into_tuple::<Uuid>()
            .one(db)
            .await?
            .map_or(license.account_id, AccountId::from_uuid);
        super::events::record(
            db,
            super::events::NewEvent {
                event_type: EventType::OrderItemCancelled,
                account_id: owner,
                license_id: Some(license.id),
                actor: super::events::Actor::SYSTEM,
                before: None,
                after: Some(serde_json::json!({
                    "order_id": it.order_id,
                    "item_id": it.id,
                    "kind": it.kind,
                    "amount": it.amount,
                    "reason": "stale",
                    "order_cancelled": done.order_cancelled,
                })),
            },
        )
        .await?;
        cancelled.push(done);
    }
    Ok(cancelled)
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
    kind: Option<ItemKind>,
) -> Result<Vec<OrderItem>> {
    let mut q =
        order_items::Entity::find().filter(order_items::Column::LicenseId.eq(license.as_uuid()));
    if let Some(kind) = kind {
        q = q.filter(order_items::Column::Kind.eq(kind.as_str()));
    }
    q.order_by_asc(order_items::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(item)
        .collect()
}
