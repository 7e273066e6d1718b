//! The transfer handshake (CONTRACT §6): offering a license ([`offer`]), accepting it with the
//! secret ([`accept`]), and what more than one caller needs: settling a transfer with its
//! events, expiring lapsed offers (on read and from the sweep), and cancelling a deleted
//! license's offer.
use licentia_domain::event::EventType;
use licentia_domain::ids::{LicenseId, TransferId};
use licentia_domain::license_record::License;
use licentia_domain::product::Product;
use licentia_domain::transfer::{TransferState, TransferStatus};
use licentia_persistence::ConnectionTrait;
use licentia_persistence::repo::events::{self, Actor, NewEvent};
use licentia_persistence::repo::transfers::{self, Transfer, Viewer};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Ctx;
use crate::error::{AppError, AppResult};
use crate::tx::commit;

pub mod accept;
pub mod decide;
pub mod offer;

/// What the receiver is offered: the license as the receiver will get it. Stored with the
/// transfer (as offered, then as handed over) and shown to both parties.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub name: String,
    /// Canonical text of the licensed address.
    pub ip: String,
    pub product_code: String,
    pub product_name: String,
    pub period_months: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
}

impl Preview {
    pub fn of(license: &License, product: &Product) -> Self {
        Self {
            name: license.name.clone(),
            ip: license.ip.to_string(),
            product_code: product.code.clone(),
            product_name: product.name.clone(),
            period_months: license.period.months(),
            valid_until: license.lifecycle.valid_until,
        }
    }

    /// As stored with the transfer.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Lapsed transfers handled per query by [`expire_lapsed`].
const BATCH: u64 = 200;

fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// What events record of a transfer: everything but the secret's hash.
pub fn snapshot(t: &Transfer) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "license_id": t.license_id,
        "from_account_id": t.from_account_id,
        "to_account_id": t.to_account_id,
        "status": t.state.status.as_str(),
        "failed_attempts": t.state.failed_attempts,
        "expires_at": rfc3339(t.state.expires_at),
        "decided_at": t.decided_at.and_then(rfc3339),
    })
}

/// The event a transfer entering `status` writes; a counted wrong secret (still `pending`)
/// writes none.
fn event_type(status: TransferStatus) -> Option<EventType> {
    match status {
        TransferStatus::Pending => None,
        TransferStatus::Accepted => Some(EventType::TransferAccepted),
        TransferStatus::Rejected => Some(EventType::TransferRejected),
        TransferStatus::Cancelled => Some(EventType::TransferCancelled),
        TransferStatus::Expired => Some(EventType::TransferExpired),
    }
}

/// Records `event_type` for both parties: each sees the transfer in its own event log.
pub async fn record_for_both(
    db: &impl ConnectionTrait,
    event_type: EventType,
    before: Option<&Transfer>,
    after: &Transfer,
    actor: Actor,
) -> AppResult<()> {
    for account_id in [after.from_account_id, after.to_account_id] {
        events::record(
            db,
            NewEvent {
                event_type,
                account_id,
                license_id: Some(after.license_id),
                actor,
                before: before.map(snapshot),
                after: Some(snapshot(after)),
            },
        )
        .await?;
    }
    Ok(())
}

/// Moves `current` to `next` (conditionally: see [`transfers::update_state`]) and records the
/// event of the new status. `None` when the transfer had moved on meanwhile.
pub async fn settle(
    db: &impl ConnectionTrait,
    current: &Transfer,
    next: TransferState,
    actor: Actor,
    now: OffsetDateTime,
) -> AppResult<Option<Transfer>> {
    let Some(after) = transfers::update_state(db, current, next, now).await? else {
        return Ok(None);
    };
    if let Some(event_type) = event_type(after.state.status) {
        record_for_both(db, event_type, Some(current), &after, actor).await?;
    }
    Ok(Some(after))
}

/// A pending transfer whose offer lapsed is `expired` from then on: readers see it so, and the
/// first one to notice persists it. Returns the transfer as it now stands.
pub async fn expire_if_lapsed(ctx: &Ctx, t: Transfer) -> AppResult<Transfer> {
    let now = ctx.clock.now();
    let Ok(next) = t.state.expire(now) else {
        return Ok(t);
    };
    let txn = ctx.begin().await?;
    let settled = settle(&txn, &t, next, Actor::SYSTEM, now).await?;
    commit(txn).await?;
    match settled {
        Some(after) => Ok(after),
        // Decided by someone else meanwhile: answer what it is now.
        None => transfers::find(ctx.db.conn(), Viewer::All, t.id)
            .await?
            .ok_or(AppError::NotFound),
    }
}

/// Expires every pending transfer (of `viewer`'s two sides, or all) that lapsed at `now`,
/// each in its own transaction with its events. Returns how many it expired. Safe to run
/// concurrently with itself and with the handshake: the conditional update picks one winner.
pub async fn expire_lapsed(ctx: &Ctx, viewer: Viewer, now: OffsetDateTime) -> AppResult<u32> {
    let mut expired = 0;
    let mut after: Option<TransferId> = None;
    loop {
        let batch = transfers::lapsed(ctx.db.conn(), viewer, now, after, BATCH).await?;
        let full = batch.len() as u64 == BATCH;
        after = batch.last().map(|t| t.id);
        for t in batch {
            let Ok(next) = t.state.expire(now) else {
                continue;
            };
            let txn = ctx.begin().await?;
            if settle(&txn, &t, next, Actor::SYSTEM, now).await?.is_some() {
                expired += 1;
            }
            commit(txn).await?;
        }
        if !full {
            return Ok(expired);
        }
    }
}

/// Cancels the license's pending transfer, if any, with its events: a deleted license is no
/// longer on offer. Call it inside the transaction that deletes the license, after locking it.
pub async fn cancel_pending_of_license(
    db: &impl ConnectionTrait,
    license: LicenseId,
    actor: Actor,
    now: OffsetDateTime,
) -> AppResult<()> {
    if let Some((before, after)) = transfers::cancel_pending_of_license(db, license, now).await? {
        record_for_both(
            db,
            EventType::TransferCancelled,
            Some(&before),
            &after,
            actor,
        )
        .await?;
    }
    Ok(())
}
