//! Paying and cancelling orders: the only place where licenses become paid.
use licentia_domain::event::EventType;
use licentia_domain::ids::{AccountId, OrderId};
use licentia_domain::license::LicenseStatus;
use licentia_domain::license_record::License;
use licentia_domain::order::{ItemKind, ItemStatus, OrderStatus};
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::events::{self, Actor, NewEvent};
use licentia_persistence::repo::ledger::{self, ChargeOutcome};
use licentia_persistence::repo::licenses::{self, Scope};
use licentia_persistence::repo::{accounts, orders};
use time::OffsetDateTime;

use crate::error::{AppError, AppResult};
use crate::fulfil;
use crate::provisioning;
use crate::snapshot::{license_snapshot, record_change};

/// Charges `amount` to the account or reports 402 with what is available. A charge that
/// leaves the account unable to pay the same amount again (balance + credit limit below it,
/// so the next renewal of that kind would be refused) emits `balance.low`.
pub async fn charge(
    txn: &DatabaseTransaction,
    account: AccountId,
    amount: i64,
    reference: &str,
    order: Option<OrderId>,
) -> AppResult<()> {
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
                        event_type: EventType::BalanceLow,
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
            Err(AppError::InsufficientFunds {
                needed: amount,
                available,
            })
        }
    }
}

/// Pays an unpaid order from the balance and fulfils its items in order: ordered licenses
/// start their activation, renewals extend their license's term, configuration changes take
/// effect. An item that no longer fits its license (CONTRACT §5 "Pending items never drift":
/// [`orders::is_stale`]) is cancelled instead — including one that an earlier item of the
/// same order made stale — and only what was applied is charged. 409 when the order is not
/// unpaid (or nothing in it could still be applied), 402 when funds are short (the caller's
/// transaction then rolls back, so nothing changes).
pub async fn pay_order(
    txn: &DatabaseTransaction,
    account: Option<AccountId>,
    id: OrderId,
    actor: Actor,
    provision_attempts: i32,
    now: OffsetDateTime,
) -> AppResult<orders::Order> {
    // Lock order: the account (inside `orders::lock`), the order, then its licenses in id
    // order — the order every money path takes, so none of them deadlock.
    let order = orders::lock(txn, account, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if order.status != OrderStatus::Unpaid {
        return Err(AppError::InvalidTransition(format!(
            "the order is {}",
            order.status
        )));
    }
    let mut touched: Vec<_> = order
        .items
        .iter()
        .filter(|i| i.status == ItemStatus::Pending)
        .map(|i| i.license_id)
        .collect();
    touched.sort();
    touched.dedup();
    for license in touched {
        licenses::lock(txn, Scope::All, license).await?;
    }
    let mut charged: i64 = 0;
    for item_id in order.items.iter().map(|i| i.id) {
        let applied = apply_item(txn, &order, item_id, actor, provision_attempts, now).await?;
        charged = charged
            .checked_add(applied)
            .ok_or_else(|| AppError::AmountTooLarge {
                detail: "the order's total is too large".into(),
                errors: Vec::new(),
            })?;
    }
    if !orders::mark_paid(txn, id).await? {
        return Err(AppError::InvalidTransition(
            "nothing in the order can still be applied: its items went stale and were cancelled"
                .into(),
        ));
    }
    charge(
        txn,
        order.account_id,
        charged,
        &format!("order {id}"),
        Some(id),
    )
    .await?;
    events::record(
        txn,
        NewEvent {
            event_type: EventType::OrderPaid,
            account_id: order.account_id,
            license_id: None,
            actor,
            before: None,
            after: Some(serde_json::json!({"order_id": id, "total": charged})),
        },
    )
    .await?;
    orders::find(txn, None, id).await?.ok_or(AppError::NotFound)
}

/// Applies one item of the order being paid, or cancels it when it went stale (an earlier
/// item of the same order may have made it so). Returns the amount to charge for it.
async fn apply_item(
    txn: &DatabaseTransaction,
    order: &orders::Order,
    item_id: licentia_domain::ids::OrderItemId,
    actor: Actor,
    provision_attempts: i32,
    now: OffsetDateTime,
) -> AppResult<i64> {
    // Re-read: applying an earlier item may have cancelled this one as stale.
    let current = orders::find(txn, None, order.id)
        .await?
        .ok_or(AppError::NotFound)?;
    let Some(item) = current
        .items
        .into_iter()
        .find(|i| i.id == item_id && i.status == ItemStatus::Pending)
    else {
        return Ok(0);
    };
    let Some(license) = licenses::find(txn, Scope::All, item.license_id).await? else {
        return Ok(0);
    };
    if orders::is_stale(&item, &license)
        || (item.kind == ItemKind::LicenseOrder
            && license.lifecycle.status != LicenseStatus::Ordered)
    {
        if let Some(done) = orders::cancel_item(txn, &item).await? {
            stale_event(txn, order.account_id, &item, done.order_cancelled).await?;
        }
        return Ok(0);
    }
    orders::fulfil_item(txn, item.id).await?;
    match item.kind {
        ItemKind::Renewal => {
            fulfil::fulfil_renewal(txn, license, &item, actor, provision_attempts, now).await?;
        }
        ItemKind::ConfigurationChange => {
            fulfil::fulfil_configuration(txn, license, &item, actor, provision_attempts).await?;
        }
        ItemKind::LicenseOrder => {
            activate(txn, license, &item, actor, provision_attempts, now).await?;
        }
    }
    Ok(item.amount)
}

/// `order.item_cancelled` for an item that pay found stale.
async fn stale_event(
    txn: &DatabaseTransaction,
    account: AccountId,
    item: &orders::OrderItem,
    order_cancelled: bool,
) -> AppResult<()> {
    events::record(
        txn,
        NewEvent {
            event_type: EventType::OrderItemCancelled,
            account_id: account,
            license_id: Some(item.license_id),
            actor: Actor::SYSTEM,
            before: None,
            after: Some(serde_json::json!({
                "order_id": item.order_id,
                "item_id": item.id,
                "kind": item.kind,
                "amount": item.amount,
                "reason": "stale",
                "order_cancelled": order_cancelled,
            })),
        },
    )
    .await?;
    Ok(())
}

/// A paid `license_order` item: the ordered license starts its activation.
async fn activate(
    txn: &DatabaseTransaction,
    license: License,
    item: &orders::OrderItem,
    actor: Actor,
    provision_attempts: i32,
    now: OffsetDateTime,
) -> AppResult<()> {
    let before = license_snapshot(&license);
    let mut next = license.clone();
    next.lifecycle = license.lifecycle.clone().pay(item.period, now)?;
    next.period = item.period;
    let saved = licenses::save(txn, &next, None).await?;
    provisioning::enqueue(txn, saved.id, provision_attempts).await?;
    record_change(txn, EventType::LicenseUpdated, actor, Some(before), &saved).await?;
    Ok(())
}

/// Cancels an unpaid order; licenses it was ordering are deleted.
pub async fn cancel_order(
    txn: &DatabaseTransaction,
    account: Option<AccountId>,
    id: OrderId,
    actor: Actor,
) -> AppResult<orders::Order> {
    let order = orders::lock(txn, account, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if order.status != OrderStatus::Unpaid || !orders::cancel(txn, id).await? {
        return Err(AppError::InvalidTransition(format!(
            "the order is {}",
            order.status
        )));
    }
    for item in order
        .items
        .iter()
        .filter(|i| i.status == ItemStatus::Pending && i.kind == ItemKind::LicenseOrder)
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
        record_change(txn, EventType::LicenseDeleted, actor, Some(before), &saved).await?;
    }
    orders::find(txn, None, id).await?.ok_or(AppError::NotFound)
}
