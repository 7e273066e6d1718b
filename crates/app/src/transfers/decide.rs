//! A pending transfer decided by one of its parties: the receiver rejects it, the sender
//! cancels it. The caller has checked that it is that party.
use licentia_domain::ids::TransferId;
use licentia_domain::transfer::{TransferError, TransferState};
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::events::Actor;
use licentia_persistence::repo::transfers::{self, Transfer, Viewer};
use time::OffsetDateTime;

use super::settle;
use crate::{AppError, AppResult};

/// What a decision came to.
#[derive(Debug)]
pub enum Decided {
    /// The transfer in its new state, with its events recorded.
    Settled(Transfer),
    /// The offer had lapsed: it is now `expired` (persisted with its event), and the decision
    /// is refused with this state. The caller commits, then answers the refusal.
    Lapsed(TransferState),
}

/// Applies `decision` (e.g. [`TransferState::reject`]) to transfer `id` under its row lock
/// inside `txn`, as `actor` at `now`.
pub async fn decide(
    txn: &DatabaseTransaction,
    id: TransferId,
    decision: fn(TransferState) -> Result<TransferState, TransferError>,
    actor: Actor,
    now: OffsetDateTime,
) -> AppResult<Decided> {
    let t = transfers::lock(txn, Viewer::All, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if let Ok(expired) = t.state.expire(now) {
        settle(txn, &t, expired, Actor::SYSTEM, now).await?;
        return Ok(Decided::Lapsed(expired));
    }
    let next = decision(t.state)?;
    let after = settle(txn, &t, next, actor, now).await?.ok_or_else(|| {
        AppError::InvalidTransition("the transfer changed meanwhile; read it again".into())
    })?;
    Ok(Decided::Settled(after))
}
