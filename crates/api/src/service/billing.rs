//! Paying and cancelling orders: the only place where licenses become paid.
use licentia_domain::ids::{AccountId, LicenseId, OrderId};
use licentia_domain::license::LicenseStatus;
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::events::{self, Actor, NewEvent};
use licentia_persistence::repo::ledger::{self, ChargeOutcome};
use licentia_persistence::repo::licenses::{self, Scope};
use licentia_persistence::repo::{accounts, orders};
use time::OffsetDateTime;

use super::{provisioning, renewal};
use crate::error::{ApiError, ApiResult};
use crate::routes::licenses::license_snapshot;

/// Charges `amount` to the account or reports 402 with what is available. A charge that
/// leaves the account unable to pay the same amount again (balance + credit limit below it,
/// so the next renewal of that kind would be refused) emits `balance.low`.
pub async fn charge(
    txn: &DatabaseTransaction,
    account: AccountId,
    amount: i64,
    reference: &str,
    order: Option<OrderId>,
) -> ApiResult<()> {
    if amount <= 0 {
        return Ok(());
    }
    match ledger::charge(txn, account, amount, reference, order).await? {
        ChargeOutcome::Charged(_) => {
            let after = accounts::get(txn, account).await?;
            if after.available() < amount {
                events::record(
                    txn,
                    NewEvent {
                        event_type: "balance.low",
                        account_id: account,
                        license_id: None,
                        actor: Actor::SYSTEM,
                        before: None,
                        after: Some(serde_json::json!({
                            "balance": after.balance,
                            "credit_limit": after.credit_limit,
                            "available": after.available(),
                            "charged": amount,
                            "reference": reference,
                        })),
                    },
                )
                .await?;
            }
            Ok(())
        }
        ChargeOutcome::InsufficientFunds => {
            let available = accounts::get(txn, account).await?.available();
            Err(ApiError::InsufficientFunds {
                needed: amount,
                available,
            })
        }
    }
}

/// Locks the orders that hold pending items of `license`, in id order. Call it before locking
/// the license when the change may cancel those items (deletion, transfer): every money path
/// locks orders, then licenses, then the account, so concurrent requests never deadlock.
pub async fn lock_orders_of(txn: &DatabaseTransaction, license: LicenseId) -> ApiResult<()> {
    let mut pending: Vec<OrderId> = orders::items_of_license(txn, license, None)
        .await?
        .into_iter()
        .filter(|i| i.status == "pending")
        .map(|i| i.order_id)
        .collect();
    pending.sort();
    pending.dedup();
    for order in pending {
        orders::lock(txn, None, order).await?;
    }
    Ok(())
}

/// Pays an unpaid order from the balance and fulfils its items: ordered licenses start their
/// activation, renewals extend their license's term, configuration changes take effect. 409 when the order is not unpaid, 402 when funds are short (the caller's
/// transaction then rolls back, so nothing changes).
pub async fn pay_order(
    txn: &DatabaseTransaction,
    account: Option<AccountId>,
    id: OrderId,
    actor: Actor,
    provision_attempts: i32,
    now: OffsetDateTime,
) -> ApiResult<orders::Order> {
    let order = orders::lock(txn, account, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if order.status != "unpaid" || !orders::mark_paid(txn, id).await? {
        return Err(ApiError::InvalidTransition(format!(
            "the order is {}",
            order.status
        )));
    }
    // Lock order: the order (above), then its licenses in id order, then the account (the
    // charge) — the same order every other money path takes, so none of them deadlock.
    let mut touched: Vec<_> = order
        .items
        .iter()
        .filter(|i| i.status == "pending")
        .map(|i| i.license_id)
        .collect();
    touched.sort();
    touched.dedup();
    for license in touched {
        licenses::lock(txn, Scope::All, license).await?;
    }
    charge(
        txn,
        order.account_id,
        order.total,
        &format!("order {id}"),
        Some(id),
    )
    .await?;
    for item in order.items.iter().filter(|i| i.status == "pending") {
        match item.kind.as_str() {
            renewal::RENEWAL => {
                renewal::fulfil_renewal(txn, item, actor, provision_attempts, now).await?;
                continue;
            }
            renewal::CONFIGURATION_CHANGE => {
                renewal::fulfil_configuration(txn, item, actor, provision_attempts).await?;
                continue;
            }
            "license_order" => {}
            _ => continue,
        }
        let Some(license) = licenses::lock(txn, Scope::All, item.license_id).await? else {
            continue;
        };
        if license.lifecycle.status != LicenseStatus::Ordered {
            continue;
        }
        let before = license_snapshot(&license);
        let mut next = license.clone();
        next.lifecycle = license.lifecycle.clone().pay(item.period, now)?;
        next.period = item.period;
        let saved = licenses::save(txn, &next, None).await?;
        provisioning::enqueue(txn, saved.id, provision_attempts).await?;
        events::record(
            txn,
            NewEvent {
                event_type: "license.updated",
                account_id: saved.account_id,
                license_id: Some(saved.id),
                actor,
                before: Some(before),
                after: Some(license_snapshot(&saved)),
            },
        )
        .await?;
    }
    events::record(
        txn,
        NewEvent {
            event_type: "order.paid",
            account_id: order.account_id,
            license_id: None,
            actor,
            before: None,
            after: Some(serde_json::json!({"order_id": id, "total": order.total})),
        },
    )
    .await?;
    orders::find(txn, None, id).await?.ok_or(ApiError::NotFound)
}

/// Cancels an unpaid order; licenses it was ordering are deleted.
pub async fn cancel_order(
    txn: &DatabaseTransaction,
    account: Option<AccountId>,
    id: OrderId,
    actor: Actor,
) -> ApiResult<orders::Order> {
    let order = orders::lock(txn, account, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if order.status != "unpaid" || !orders::cancel(txn, id).await? {
        return Err(ApiError::InvalidTransition(format!(
            "the order is {}",
            order.status
        )));
    }
    for item in order
        .items
        .iter()
        .filter(|i| i.status == "pending" && i.kind == "license_order")
    {
        let Some(license) = licenses::lock(txn, Scope::All, item.license_id).await? else {
            continue;
        };
        if license.lifecycle.status != LicenseStatus::Ordered {
            continue;
        }
        let before = license_snapshot(&license);
        let mut next = license.clone();
        next.lifecycle = license.lifecycle.clone().cancel_order()?;
        let saved = licenses::save(txn, &next, None).await?;
        events::record(
            txn,
            NewEvent {
                event_type: "license.deleted",
                account_id: saved.account_id,
                license_id: Some(saved.id),
                actor,
                before: Some(before),
                after: Some(license_snapshot(&saved)),
            },
        )
        .await?;
    }
    orders::find(txn, None, id).await?.ok_or(ApiError::NotFound)
}
