//! Bulk operations and their per-license results.
//!
//! An operation fixes its matching set when it is created (one item per license, `result`
//! null). The job then gives each item its result with [`record_result`], which only writes
//! an item that has none yet: called first inside the transaction that applies the item, it
//! also claims the item, so two workers never apply the same license twice.
use licentia_domain::ids::{AccountId, LicenseId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::{bulk_operation_items as items, bulk_operations as ops};
use crate::error::{PersistenceError, Result, parse};
use crate::repo::events::Actor;

pub use licentia_domain::bulk::BulkStatus;

/// Items per insert statement: well under SQLite's bound-variable limit.
const INSERT_CHUNK: usize = 500;

/// A bulk operation as its job and its readers need it.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub id: Uuid,
    /// The account of the caller that created it; its readers are that account and admins.
    pub account_id: AccountId,
    /// The caller, as the actor of the events its items write.
    pub actor: Actor,
    /// Whether the caller was provider staff (every tenant's licenses, admin transitions).
    pub admin: bool,
    pub action: String,
    pub params: serde_json::Value,
    pub dry_run: bool,
    pub status: BulkStatus,
    pub total: u32,
    /// Dry runs only: what the items evaluated so far would have charged, per account id.
    pub simulated_spend: serde_json::Value,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

impl TryFrom<ops::Model> for Operation {
    type Error = PersistenceError;
    fn try_from(m: ops::Model) -> Result<Self> {
        Ok(Self {
            id: m.id,
            account_id: AccountId::from_uuid(m.account_id),
            actor: Actor {
                kind: parse("bulk_operation.actor_kind", &m.actor_kind)?,
                id: m.actor_id,
            },
            admin: m.admin,
            action: m.action,
            params: m.params,
            dry_run: m.dry_run,
            status: parse("bulk_operation.status", &m.status)?,
            total: u32::try_from(m.total).unwrap_or(0),
            simulated_spend: m.simulated_spend,
            last_error: m.last_error,
            created_at: m.created_at,
            updated_at: m.updated_at,
            finished_at: m.finished_at,
        })
    }
}

/// A new operation and the licenses it matched (in the order they will be applied).
#[derive(Clone, Debug)]
pub struct NewOperation {
    pub id: Uuid,
    pub account_id: AccountId,
    pub actor: Actor,
    pub admin: bool,
    pub action: String,
    pub params: serde_json::Value,
    pub dry_run: bool,
    pub licenses: Vec<LicenseId>,
}

/// One item's result: `ok` or a problem code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemResult {
    pub license_id: LicenseId,
    pub result: String,
}

/// Inserts the operation (`pending`) and one item per license; call it in the transaction
/// that also queues the operation's job.
pub async fn create(db: &impl ConnectionTrait, new: NewOperation) -> Result<Operation> {
    let now = crate::now();
    let total = i32::try_from(new.licenses.len())
        .map_err(|_| PersistenceError::Corrupt("too many licenses in one operation".into()))?;
    let row = ops::ActiveModel {
        id: Set(new.id),
        account_id: Set(new.account_id.as_uuid()),
        actor_kind: Set(new.actor.kind.as_str().to_owned()),
        actor_id: Set(new.actor.id),
        admin: Set(new.admin),
        action: Set(new.action),
        params: Set(new.params),
        dry_run: Set(new.dry_run),
        status: Set(BulkStatus::Pending.as_str().to_owned()),
        total: Set(total),
        simulated_spend: Set(serde_json::json!({})),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    };
    ops::Entity::insert(row).exec_without_returning(db).await?;
    for chunk in new.licenses.chunks(INSERT_CHUNK) {
        let rows = chunk.iter().map(|license| items::ActiveModel {
            operation_id: Set(new.id),
            license_id: Set(license.as_uuid()),
            result: Set(None),
        });
        items::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
    }
    find(db, None, new.id)
        .await?
        .ok_or(PersistenceError::NotFound)
}

/// The operation, when `account` (the caller's account; `None` for provider staff) may see it.
pub async fn find(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    id: Uuid,
) -> Result<Option<Operation>> {
    let mut q = ops::Entity::find_by_id(id);
    if let Some(account) = account {
        q = q.filter(ops::Column::AccountId.eq(account.as_uuid()));
    }
    q.one(db).await?.map(Operation::try_from).transpose()
}

/// The items that have a result, in license order.
pub async fn results(db: &impl ConnectionTrait, id: Uuid) -> Result<Vec<ItemResult>> {
    let rows = items::Entity::find()
        .filter(items::Column::OperationId.eq(id))
        .filter(items::Column::Result.is_not_null())
        .order_by_asc(items::Column::LicenseId)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            r.result.map(|result| ItemResult {
                license_id: LicenseId::from_uuid(r.license_id),
                result,
            })
        })
        .collect())
}

/// Up to `limit` licenses still without a result, in license order.
pub async fn pending_items(
    db: &impl ConnectionTrait,
    id: Uuid,
    limit: u64,
) -> Result<Vec<LicenseId>> {
    let ids: Vec<Uuid> = items::Entity::find()
        .select_only()
        .column(items::Column::LicenseId)
        .filter(items::Column::OperationId.eq(id))
        .filter(items::Column::Result.is_null())
        .order_by_asc(items::Column::LicenseId)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids.into_iter().map(LicenseId::from_uuid).collect())
}

/// How many items still have no result.
pub async fn remaining(db: &impl ConnectionTrait, id: Uuid) -> Result<u64> {
    Ok(items::Entity::find()
        .filter(items::Column::OperationId.eq(id))
        .filter(items::Column::Result.is_null())
        .count(db)
        .await?)
}

/// Gives the item its result unless it already has one; returns whether it wrote. Inside a
/// transaction this also locks the item until the transaction ends.
pub async fn record_result(
    db: &impl ConnectionTrait,
    id: Uuid,
    license: LicenseId,
    result: &str,
) -> Result<bool> {
    let res = items::Entity::update_many()
        .col_expr(items::Column::Result, Expr::value(result))
        .filter(items::Column::OperationId.eq(id))
        .filter(items::Column::LicenseId.eq(license.as_uuid()))
        .filter(items::Column::Result.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Replaces the result of an item (the one [`record_result`] claimed it with).
pub async fn replace_result(
    db: &impl ConnectionTrait,
    id: Uuid,
    license: LicenseId,
    result: &str,
) -> Result<()> {
    items::Entity::update_many()
        .col_expr(items::Column::Result, Expr::value(result))
        .filter(items::Column::OperationId.eq(id))
        .filter(items::Column::LicenseId.eq(license.as_uuid()))
        .exec(db)
        .await?;
    Ok(())
}

/// Moves the operation from `from` to `to` (a status); returns whether it was in `from`.
/// Terminal statuses also set `finished_at`.
pub async fn set_status(
    db: &impl ConnectionTrait,
    id: Uuid,
    from: &[BulkStatus],
    to: BulkStatus,
    error: Option<&str>,
) -> Result<bool> {
    let now = crate::now();
    let mut q = ops::Entity::update_many()
        .col_expr(ops::Column::Status, Expr::value(to.as_str()))
        .col_expr(ops::Column::UpdatedAt, Expr::value(now))
        .filter(ops::Column::Id.eq(id))
        .filter(ops::Column::Status.is_in(from.iter().map(|s| s.as_str())));
    if to.is_finished() {
        q = q.col_expr(ops::Column::FinishedAt, Expr::value(Some(now)));
    }
    if let Some(error) = error {
        let error: String = error.chars().take(2_000).collect();
        q = q.col_expr(ops::Column::LastError, Expr::value(Some(error)));
    }
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// Stores a dry run's simulated spending so far (see [`Operation::simulated_spend`]).
pub async fn set_simulated_spend(
    db: &impl ConnectionTrait,
    id: Uuid,
    spend: serde_json::Value,
) -> Result<()> {
    ops::Entity::update_many()
        .col_expr(ops::Column::SimulatedSpend, Expr::value(spend))
        .col_expr(ops::Column::UpdatedAt, Expr::value(crate::now()))
        .filter(ops::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
