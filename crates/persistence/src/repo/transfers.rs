//! License transfers (CONTRACT §6). Every read is scoped to the two parties through
//! [`Viewer`]; every status change is a conditional update on the state it was decided from
//! (`status = 'pending'` and the attempt count read), so of two concurrent decisions exactly
//! one takes effect, with or without a row lock.
use licentia_domain::ids::{AccountId, LicenseId, TransferId};
use licentia_domain::transfer::{TransferState, TransferStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::transfers::{self, Column, Entity};
use crate::error::{PersistenceError, Result, parse};

/// A transfer as stored. The secret is only there as its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub id: TransferId,
    pub license_id: LicenseId,
    pub from_account_id: AccountId,
    pub to_account_id: AccountId,
    /// Status, wrong secrets so far, and when the offer lapses.
    pub state: TransferState,
    pub secret_hash: Vec<u8>,
    /// What was offered (`{name, ip, product_code, product_name, period_months,
    /// valid_until}`), as of the offer or, once accepted, of the acceptance.
    pub license_preview: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When it left `pending`.
    pub decided_at: Option<OffsetDateTime>,
}

impl TryFrom<transfers::Model> for Transfer {
    type Error = PersistenceError;
    fn try_from(m: transfers::Model) -> Result<Self> {
        Ok(Transfer {
            id: TransferId::from_uuid(m.id),
            license_id: LicenseId::from_uuid(m.license_id),
            from_account_id: AccountId::from_uuid(m.from_account_id),
            to_account_id: AccountId::from_uuid(m.to_account_id),
            state: TransferState {
                status: parse("transfer.status", &m.status)?,
                failed_attempts: u32::try_from(m.failed_attempts).map_err(|_| {
                    PersistenceError::Corrupt(format!("transfer {} failed_attempts", m.id))
                })?,
                expires_at: m.expires_at,
            },
            secret_hash: m.secret_hash,
            license_preview: m.license_preview,
            created_at: m.created_at,
            updated_at: m.updated_at,
            decided_at: m.decided_at,
        })
    }
}

/// Who is looking: a party sees the transfers it sends or receives; `All` is provider staff
/// and system jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewer {
    Party(AccountId),
    All,
}

impl Viewer {
    fn condition(self) -> Condition {
        match self {
            Viewer::Party(account) => Condition::any()
                .add(Column::FromAccountId.eq(account.as_uuid()))
                .add(Column::ToAccountId.eq(account.as_uuid())),
            Viewer::All => Condition::all(),
        }
    }
}

/// Which side of the transfers a list shows, relative to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Offers to the account.
    Incoming(AccountId),
    /// Offers from the account.
    Outgoing(AccountId),
    /// Both sides of the account.
    Either(AccountId),
    /// Every transfer (provider staff).
    All,
}

impl Direction {
    fn condition(self) -> Condition {
        match self {
            Direction::Incoming(a) => Condition::all().add(Column::ToAccountId.eq(a.as_uuid())),
            Direction::Outgoing(a) => Condition::all().add(Column::FromAccountId.eq(a.as_uuid())),
            Direction::Either(a) => Viewer::Party(a).condition(),
            Direction::All => Condition::all(),
        }
    }
}

/// What creating a transfer needs.
#[derive(Clone, Debug)]
pub struct NewTransfer {
    pub id: TransferId,
    pub license_id: LicenseId,
    pub from_account_id: AccountId,
    pub to_account_id: AccountId,
    /// A fresh offer: `pending`, no failed attempts.
    pub state: TransferState,
    pub secret_hash: [u8; 32],
    pub license_preview: serde_json::Value,
    pub now: OffsetDateTime,
}

/// Inserts a pending transfer. A second pending transfer of the license fails with
/// [`PersistenceError::Unique`] (the partial unique index).
pub async fn insert(db: &impl ConnectionTrait, new: NewTransfer) -> Result<Transfer> {
    let now = crate::truncate(new.now);
    let row = transfers::ActiveModel {
        id: Set(new.id.as_uuid()),
        license_id: Set(new.license_id.as_uuid()),
        from_account_id: Set(new.from_account_id.as_uuid()),
        to_account_id: Set(new.to_account_id.as_uuid()),
        status: Set(new.state.status.as_str().to_owned()),
        secret_hash: Set(new.secret_hash.to_vec()),
        failed_attempts: Set(i32::try_from(new.state.failed_attempts).unwrap_or(i32::MAX)),
        license_preview: Set(new.license_preview),
        expires_at: Set(crate::truncate(new.state.expires_at)),
        created_at: Set(now),
        updated_at: Set(now),
        decided_at: Set(None),
    };
    Entity::insert(row)
        .exec_with_returning(db)
        .await?
        .try_into()
}

/// Finds a transfer the viewer is a party to.
pub async fn find(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    id: TransferId,
) -> Result<Option<Transfer>> {
    Entity::find_by_id(id.as_uuid())
        .filter(viewer.condition())
        .one(db)
        .await?
        .map(Transfer::try_from)
        .transpose()
}

/// Reads and locks the row for the rest of the transaction (PostgreSQL `FOR UPDATE`; SQLite
/// has one writer already).
pub async fn lock(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    id: TransferId,
) -> Result<Option<Transfer>> {
    Entity::find_by_id(id.as_uuid())
        .filter(viewer.condition())
        .lock_exclusive()
        .one(db)
        .await?
        .map(Transfer::try_from)
        .transpose()
}

/// The license's pending transfer (there is at most one), locked for the transaction.
pub async fn lock_pending_of_license(
    db: &impl ConnectionTrait,
    license: LicenseId,
) -> Result<Option<Transfer>> {
    Entity::find()
        .filter(Column::LicenseId.eq(license.as_uuid()))
        .filter(Column::Status.eq(TransferStatus::Pending.as_str()))
        .lock_exclusive()
        .one(db)
        .await?
        .map(Transfer::try_from)
        .transpose()
}

/// One keyset page, newest first: transfers older than `after` (exclusive), at most `limit`.
pub async fn list(
    db: &impl ConnectionTrait,
    direction: Direction,
    status: Option<TransferStatus>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Transfer>> {
    let mut q = Entity::find()
        .filter(direction.condition())
        .order_by_desc(Column::Id)
        .limit(limit);
    if let Some(status) = status {
        q = q.filter(Column::Status.eq(status.as_str()));
    }
    if let Some(after) = after {
        q = q.filter(Column::Id.lt(after));
    }
    q.all(db)
        .await?
        .into_iter()
        .map(Transfer::try_from)
        .collect()
}

/// Pending transfers whose offer lapsed at `now` (of one account's two sides, or all), in id
/// order after `after` (keyset, so a pass visits each once), at most `limit`: candidates for
/// [`update_state`] to `expired`.
pub async fn lapsed(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    now: OffsetDateTime,
    after: Option<TransferId>,
    limit: u64,
) -> Result<Vec<Transfer>> {
    let mut q = Entity::find().filter(viewer.condition());
    if let Some(after) = after {
        q = q.filter(Column::Id.gt(after.as_uuid()));
    }
    q.filter(Column::Status.eq(TransferStatus::Pending.as_str()))
        .filter(Column::ExpiresAt.lte(crate::truncate(now)))
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(Transfer::try_from)
        .collect()
}

/// Moves a pending transfer from the state it was read in (`current.state`) to `next`: a
/// decision, an expiry, or one more failed attempt. Conditional on the row still being
/// `pending` with the same attempt count, so a concurrent decision is never overwritten.
/// Returns the updated transfer, or `None` when the row had moved on.
pub async fn update_state(
    db: &impl ConnectionTrait,
    current: &Transfer,
    next: TransferState,
    now: OffsetDateTime,
) -> Result<Option<Transfer>> {
    let now = crate::truncate(now);
    let decided_at = (next.status != TransferStatus::Pending).then_some(now);
    let res = Entity::update_many()
        .col_expr(Column::Status, Expr::value(next.status.as_str()))
        .col_expr(
            Column::FailedAttempts,
            Expr::value(i32::try_from(next.failed_attempts).unwrap_or(i32::MAX)),
        )
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(Column::DecidedAt, Expr::value(decided_at))
        .filter(Column::Id.eq(current.id.as_uuid()))
        .filter(Column::Status.eq(TransferStatus::Pending.as_str()))
        .filter(
            Column::FailedAttempts
                .eq(i32::try_from(current.state.failed_attempts).unwrap_or(i32::MAX)),
        )
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(None);
    }
    Ok(Some(Transfer {
        state: TransferState {
            expires_at: current.state.expires_at,
            ..next
        },
        updated_at: now,
        decided_at,
        ..current.clone()
    }))
}

/// Replaces the stored preview of what was offered (on acceptance: what was handed over).
pub async fn set_preview(
    db: &impl ConnectionTrait,
    id: TransferId,
    preview: serde_json::Value,
) -> Result<()> {
    Entity::update_many()
        .col_expr(Column::LicensePreview, Expr::value(preview))
        .filter(Column::Id.eq(id.as_uuid()))
        .exec(db)
        .await?;
    Ok(())
}

/// Cancels the license's pending transfer, if any (the license is being deleted): returns
/// the transfer before and after. Locks the row, so call it after locking the license.
pub async fn cancel_pending_of_license(
    db: &impl ConnectionTrait,
    license: LicenseId,
    now: OffsetDateTime,
) -> Result<Option<(Transfer, Transfer)>> {
    let Some(pending) = lock_pending_of_license(db, license).await? else {
        return Ok(None);
    };
    let Ok(next) = pending.state.cancel() else {
        return Ok(None);
    };
    Ok(update_state(db, &pending, next, now)
        .await?
        .map(|after| (pending, after)))
}
