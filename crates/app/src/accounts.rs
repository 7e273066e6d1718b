//! The provider's top-ups: money added to an account's balance, with its ledger entry and its
//! event, in the caller's transaction (committed with the idempotent answer).
use licentia_domain::event::EventType;
use licentia_domain::ids::AccountId;
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::accounts;
use licentia_persistence::repo::events::{self, Actor, NewEvent};
use licentia_persistence::repo::ledger::{self, LedgerEntry, LedgerKind};
use serde_json::json;

use crate::AppResult;

/// Credits `amount` (positive minor units, checked by the caller) to `account`: a `credit`
/// ledger entry and an `account.credited` event with the balance before and after.
pub async fn credit(
    txn: &DatabaseTransaction,
    account: AccountId,
    amount: i64,
    reference: &str,
    actor: Actor,
) -> AppResult<LedgerEntry> {
    let entry = ledger::credit(txn, account, amount, LedgerKind::Credit, reference, None).await?;
    let after = accounts::get(txn, account).await?;
    events::record(
        txn,
        NewEvent {
            event_type: EventType::AccountCredited,
            account_id: account,
            license_id: None,
            actor,
            before: Some(json!({"balance": after.balance - entry.amount})),
            after: Some(json!({
                "balance": after.balance,
                "ledger_entry_id": entry.id,
                "amount": entry.amount,
                "reference": entry.reference,
            })),
        },
    )
    .await?;
    Ok(entry)
}
