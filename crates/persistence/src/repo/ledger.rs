//! The ledger: every movement of an account's money, one signed row each. The account's
//! `balance` is a running total of these rows, kept in the same transaction as each insert.
//!
//! Money only leaves an account through [`charge`], whose balance check and debit are one
//! conditional `UPDATE`: on PostgreSQL it takes the row lock and re-checks the condition on the
//! latest row version, so concurrent charges from several processes can never overdraw.
use licentia_domain::ids::{AccountId, LedgerEntryId, LicenseId, OrderId, ProductId};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::ledger_entries::{self, Column, Entity};
use crate::entities::{accounts, ledger_allocations, licenses, order_items};
use crate::error::{PersistenceError, Result, parse};

pub use licentia_domain::account::LedgerKind;

/// One movement of money: positive for credits and refunds, negative for charges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: LedgerEntryId,
    pub account_id: AccountId,
    /// Signed minor units.
    pub amount: i64,
    pub kind: LedgerKind,
    pub reference: String,
    pub order_id: Option<OrderId>,
    pub created_at: OffsetDateTime,
}

impl TryFrom<ledger_entries::Model> for LedgerEntry {
    type Error = PersistenceError;
    fn try_from(m: ledger_entries::Model) -> Result<Self> {
        Ok(LedgerEntry {
            id: LedgerEntryId::from_uuid(m.id),
            account_id: AccountId::from_uuid(m.account_id),
            amount: m.amount,
            kind: parse("ledger_entry.kind", &m.kind)?,
            reference: m.reference,
            order_id: m.order_id.map(OrderId::from_uuid),
            created_at: m.created_at,
        })
    }
}

/// What a charge did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// The balance was debited and this entry written.
    Charged(LedgerEntry),
    /// Balance plus credit limit does not cover the amount; nothing changed.
    InsufficientFunds,
}

/// Callers validate amounts at the edge; a non-positive one here is a bug, not bad input.
fn require_positive(amount: i64) -> Result<()> {
    if amount > 0 {
        Ok(())
    } else {
        Err(PersistenceError::Db(DbErr::Custom(format!(
            "ledger amounts are positive, got {amount}"
        ))))
    }
}

async fn insert(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    amount: i64,
    kind: LedgerKind,
    reference: &str,
    order_id: Option<OrderId>,
    now: OffsetDateTime,
) -> Result<LedgerEntry> {
    let entry = LedgerEntry {
        id: LedgerEntryId::new(),
        account_id,
        amount,
        kind,
        reference: reference.to_owned(),
        order_id,
        created_at: now,
    };
    let row = ledger_entries::ActiveModel {
        id: Set(entry.id.as_uuid()),
        account_id: Set(account_id.as_uuid()),
        amount: Set(amount),
        kind: Set(kind.as_str().to_owned()),
        reference: Set(entry.reference.clone()),
        order_id: Set(order_id.map(|o| o.as_uuid())),
        created_at: Set(now),
    };
    Entity::insert(row).exec_without_returning(db).await?;
    Ok(entry)
}

/// Adds `amount` (> 0) to the account's balance and records it as a `kind` entry (a credit or
/// a refund). Call it inside the transaction that makes the surrounding change.
pub async fn credit(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    amount: i64,
    kind: LedgerKind,
    reference: &str,
    order_id: Option<OrderId>,
) -> Result<LedgerEntry> {
    require_positive(amount)?;
    if kind == LedgerKind::Charge {
        return Err(PersistenceError::Db(DbErr::Custom(
            "a charge takes money; use ledger::charge".into(),
        )));
    }
    let now = crate::now();
    let res = accounts::Entity::update_many()
        .col_expr(
            accounts::Column::Balance,
            Expr::col(accounts::Column::Balance).add(amount),
        )
        .col_expr(accounts::Column::UpdatedAt, Expr::value(now))
        .filter(accounts::Column::Id.eq(account_id.as_uuid()))
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(PersistenceError::NotFound);
    }
    insert(db, account_id, amount, kind, reference, order_id, now).await
}

/// Takes `amount` (> 0) from the account if its balance plus credit limit covers it, and
/// records a `charge` entry of `-amount`; otherwise changes nothing. The check and the debit
/// are one statement, so this is exact however many requests and processes charge at once.
pub async fn charge(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    amount: i64,
    reference: &str,
    order_id: Option<OrderId>,
) -> Result<ChargeOutcome> {
    require_positive(amount)?;
    let now = crate::now();
    // balance - amount >= -credit_limit, written without negation so it cannot overflow.
    let res = accounts::Entity::update_many()
        .col_expr(
            accounts::Column::Balance,
            Expr::col(accounts::Column::Balance).sub(amount),
        )
        .col_expr(accounts::Column::UpdatedAt, Expr::value(now))
        .filter(accounts::Column::Id.eq(account_id.as_uuid()))
        .filter(
            Expr::col(accounts::Column::Balance)
                .add(Expr::col(accounts::Column::CreditLimit))
                .gte(amount),
        )
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        let exists = accounts::Entity::find_by_id(account_id.as_uuid())
            .select_only()
            .column(accounts::Column::Id)
            .into_tuple::<Uuid>()
            .one(db)
            .await?
            .is_some();
        return if exists {
            Ok(ChargeOutcome::InsufficientFunds)
        } else {
            Err(PersistenceError::NotFound)
        };
    }
    let entry = insert(
        db,
        account_id,
        -amount,
        LedgerKind::Charge,
        reference,
        order_id,
        now,
    )
    .await?;
    if let Some(order) = order_id {
        allocate_order(db, &entry, order).await?;
    }
    Ok(ChargeOutcome::Charged(entry))
}

/// Gives back `amount` (> 0) for a change of one license (a downgrade): a `refund` entry,
/// attributed to the license and its product for the revenue report.
pub async fn refund(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    amount: i64,
    reference: &str,
    license: LicenseId,
    product: ProductId,
) -> Result<LedgerEntry> {
    let entry = credit(db, account_id, amount, LedgerKind::Refund, reference, None).await?;
    ledger_allocations::Entity::insert(allocation(
        &entry,
        license.as_uuid(),
        product.as_uuid(),
        amount,
    ))
    .exec_without_returning(db)
    .await?;
    Ok(entry)
}

fn allocation(
    entry: &LedgerEntry,
    license: Uuid,
    product: Uuid,
    amount: i64,
) -> ledger_allocations::ActiveModel {
    ledger_allocations::ActiveModel {
        ledger_entry_id: Set(entry.id.as_uuid()),
        license_id: Set(license),
        product_id: Set(product),
        account_id: Set(entry.account_id.as_uuid()),
        kind: Set(entry.kind.as_str().to_owned()),
        amount: Set(amount),
        created_at: Set(entry.created_at),
    }
}

/// Splits a charge by the licenses of its order's items: an order is charged once for every
/// item paid with it (the fulfilled ones), each item for one license, whose product it was
/// priced for (an item that no longer matched its license was cancelled, not fulfilled).
async fn allocate_order(
    db: &impl ConnectionTrait,
    entry: &LedgerEntry,
    order: OrderId,
) -> Result<()> {
    use std::collections::BTreeMap;

    use sea_orm::sea_query::Query;

    let mut q = Query::select();
    q.column((order_items::Entity, order_items::Column::LicenseId))
        .column((licenses::Entity, licenses::Column::ProductId))
        .column((order_items::Entity, order_items::Column::Amount))
        .from(order_items::Entity)
        .inner_join(
            licenses::Entity,
            Expr::col((licenses::Entity, licenses::Column::Id))
                .equals((order_items::Entity, order_items::Column::LicenseId)),
        )
        .and_where(
            Expr::col((order_items::Entity, order_items::Column::OrderId)).eq(order.as_uuid()),
        )
        .and_where(
            Expr::col((order_items::Entity, order_items::Column::Status))
                .eq(licentia_domain::order::ItemStatus::Fulfilled.as_str()),
        )
        .and_where(Expr::col((order_items::Entity, order_items::Column::Amount)).gt(0));
    let mut shares: BTreeMap<Uuid, (Uuid, i64)> = BTreeMap::new();
    for row in db.query_all(&q).await? {
        let license: Uuid = row.try_get("", "license_id")?;
        let product: Uuid = row.try_get("", "product_id")?;
        let amount: i64 = row.try_get("", "amount")?;
        let share = shares.entry(license).or_insert((product, 0));
        share.1 = share.1.saturating_add(amount);
    }
    if shares.is_empty() {
        return Ok(());
    }
    ledger_allocations::Entity::insert_many(
        shares
            .into_iter()
            .map(|(license, (product, amount))| allocation(entry, license, product, amount)),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The account's entries after `after` (exclusive), oldest first: ids are UUIDv7, so id order
/// is creation order.
pub async fn list(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<LedgerEntry>> {
    let mut q = Entity::find()
        .filter(Column::AccountId.eq(account_id.as_uuid()))
        .order_by_asc(Column::Id)
        .limit(limit);
    if let Some(after) = after {
        q = q.filter(Column::Id.gt(after));
    }
    q.all(db)
        .await?
        .into_iter()
        .map(LedgerEntry::try_from)
        .collect()
}

/// Σ amount of the account's entries: what its balance must equal.
pub async fn sum(db: &impl ConnectionTrait, account_id: AccountId) -> Result<i64> {
    // SUM(bigint) is numeric on PostgreSQL; the cast keeps it an i64 on both backends.
    let total = Entity::find()
        .select_only()
        .column_as(
            Expr::cust("COALESCE(CAST(SUM(amount) AS BIGINT), 0)"),
            "total",
        )
        .filter(Column::AccountId.eq(account_id.as_uuid()))
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(total.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [LedgerKind::Credit, LedgerKind::Charge, LedgerKind::Refund] {
            assert_eq!(kind.as_str().parse::<LedgerKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert!("Credit".parse::<LedgerKind>().is_err());
    }

    #[test]
    fn amounts_must_be_positive() {
        assert!(require_positive(1).is_ok());
        assert!(require_positive(0).is_err());
        assert!(require_positive(-5).is_err());
    }
}
