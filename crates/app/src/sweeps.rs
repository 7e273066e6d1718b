//! The periodic sweep: auto-renewal, expiry, deletion after the grace period and the
//! `license.expiring_soon` notice (CONTRACT §4, §5, §8).
//!
//! Every process's worker [`schedule`]s one `sweep` job per time slot of
//! `LICENTIA_SWEEP_INTERVAL_SECS`; the slot is the job's dedupe key, so however many processes
//! run, one job per slot is queued and one worker claims it (`FOR UPDATE SKIP LOCKED`). The
//! sweep may still overlap with another one (a lease ran out, a test calls [`run`] directly):
//! each license is handled in its own transaction that locks the row and re-checks the rule
//! before acting, so every effect — a charge, an order, an event — happens once.
use licentia_domain::event::EventType;
use licentia_domain::ids::OrderId;
use licentia_domain::license::{LicenseStatus, Settled, SuspensionReason};
use licentia_domain::license_record::License;
use licentia_domain::order::{ItemStatus, OrderStatus};
use licentia_domain::period::Period;
use licentia_persistence::repo::events::{self, Actor, NewEvent};
use licentia_persistence::repo::jobs;
use licentia_persistence::repo::licenses::{self, Due, Scope};
use licentia_persistence::repo::orders::{self, NewItem};
use licentia_persistence::repo::products;
use licentia_persistence::repo::transfers::Viewer;
use licentia_persistence::{DatabaseTransaction, PersistenceError, TransactionTrait};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::Ctx;
use crate::error::{AppError, AppResult};
use crate::licenses::renew::{RENEWAL, renewal_cost};
use crate::orders as billing;
use crate::snapshot::{license_snapshot, record_change};
use crate::tx::commit;

/// Job kind of a sweep.
pub const JOB_KIND: &str = "sweep";

/// Licenses read per query; a sweep pages through all candidates by id.
const BATCH: u64 = 200;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Licenses renewed from the balance.
    pub renewed: u32,
    /// Unpaid auto-renewal orders created because funds were short.
    pub renewal_orders: u32,
    /// Licenses suspended for expiry.
    pub expired: u32,
    /// Licenses deleted after the grace period.
    pub deleted: u32,
    /// `license.expiring_soon` notices.
    pub notified: u32,
    /// Licenses whose handling failed (logged; retried by the next sweep).
    pub errors: u32,
    /// Pending transfer offers that lapsed and were expired.
    pub transfers_expired: u32,
}

/// The slot of `now` for sweeps every `interval_secs`.
fn slot(ctx: &Ctx) -> (i64, i64) {
    let interval = ctx.policy.sweep_interval.whole_seconds().max(1);
    (
        interval,
        ctx.clock.now().unix_timestamp().div_euclid(interval),
    )
}

/// Queues the sweep of the current slot unless it is queued already (by any process).
/// `last` remembers the slot this process queued, so the insert is tried once per slot.
pub async fn schedule(ctx: &Ctx, last: &mut Option<i64>) -> AppResult<()> {
    let (interval, slot) = slot(ctx);
    if *last == Some(slot) {
        return Ok(());
    }
    jobs::enqueue(
        ctx.db.conn(),
        JOB_KIND,
        serde_json::json!({"slot": slot, "interval_secs": interval}),
        licentia_persistence::now(),
        3,
        Some(format!("sweep:{interval}:{slot}")),
    )
    .await?;
    *last = Some(slot);
    Ok(())
}

fn plus(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.checked_add(d)
        .unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc())
}

fn minus(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.checked_sub(d)
        .unwrap_or_else(|| PrimitiveDateTime::MIN.assume_utc())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One sweep at the state's clock: auto-renewal first (so that a license renewed in time is
/// not expired), then expiry, deletion after the grace period, and the expiring-soon notices.
pub async fn run(ctx: &Ctx) -> AppResult<SweepReport> {
    let now = ctx.clock.now();
    let mut report = SweepReport::default();
    let until = plus(now, ctx.policy.renew_lead);
    for_each_due(ctx, Due::AutoRenewal { until }, &mut report, |l| {
        auto_renew(ctx, l, now, until)
    })
    .await?;
    for_each_due(ctx, Due::Expiry { now }, &mut report, |l| {
        expire(ctx, l, now)
    })
    .await?;
    let grace = ctx.policy.grace;
    let cutoff = minus(now, grace);
    for_each_due(ctx, Due::GraceDeletion { cutoff }, &mut report, |l| {
        delete_after_grace(ctx, l, now, grace)
    })
    .await?;
    let until = plus(now, ctx.policy.expiring_soon);
    for_each_due(ctx, Due::ExpiringNotice { now, until }, &mut report, |l| {
        notify_expiring(ctx, l)
    })
    .await?;
    report.transfers_expired = crate::transfers::expire_lapsed(ctx, Viewer::All, now).await?;
    Ok(report)
}

/// What handling one candidate did.
enum Outcome {
    Skipped,
    Renewed,
    RenewalOrdered,
    Expired,
    Deleted,
    Notified,
}

async fn for_each_due<'a, F, Fut>(
    ctx: &'a Ctx,
    due: Due,
    report: &mut SweepReport,
    mut handle: F,
) -> AppResult<()>
where
    F: FnMut(License) -> Fut,
    Fut: std::future::Future<Output = AppResult<Outcome>> + 'a,
{
    let mut after = None;
    // A license handled once is not handled again in this walk, even when its new term
    // brings it back in front of the walk (see `licenses::due`).
    let mut seen = std::collections::HashSet::new();
    loop {
        let batch = licenses::due(ctx.db.conn(), due, after, BATCH).await?;
        let full = batch.len() as u64 == BATCH;
        after = batch
            .last()
            .and_then(|l| l.lifecycle.valid_until.map(|until| (until, l.id)));
        for license in batch {
            let id = license.id;
            if !seen.insert(id) {
                continue;
            }
            match handle(license).await {
                Ok(Outcome::Skipped) => {}
                Ok(Outcome::Renewed) => report.renewed += 1,
                Ok(Outcome::RenewalOrdered) => report.renewal_orders += 1,
                Ok(Outcome::Expired) => report.expired += 1,
                Ok(Outcome::Deleted) => report.deleted += 1,
                Ok(Outcome::Notified) => report.notified += 1,
                Err(AppError::Unavailable) => return Err(AppError::Unavailable),
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(license = %id, ?due, error = %e, "sweep could not handle a license");
                }
            }
        }
        if !full {
            return Ok(());
        }
    }
}

fn attempts(ctx: &Ctx) -> i32 {
    ctx.policy.provision_attempts
}

/// Renews from the balance a license whose term ends within the lead time. When funds are
/// short, one unpaid order is created for the term (its item remembers the term in
/// `auto_renew_for`) with an event `license.auto_renew_failed`; later sweeps try to pay that
/// order again while it is unpaid and holds nothing else, and never create another.
async fn auto_renew(
    ctx: &Ctx,
    candidate: License,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> AppResult<Outcome> {
    let Some(term_end) = candidate.lifecycle.valid_until else {
        return Ok(Outcome::Skipped);
    };
    let term = rfc3339(term_end);
    let txn = ctx.begin().await?;
    let earlier = auto_renew_item(&txn, candidate.id, &term).await?;
    // Lock order: the earlier order before the license.
    let earlier_order = match &earlier {
        Some(item) if item.status == ItemStatus::Pending => {
            orders::lock(&txn, None, item.order_id).await?
        }
        _ => None,
    };
    let Some(license) = licenses::lock(&txn, Scope::All, candidate.id).await? else {
        return Ok(Outcome::Skipped);
    };
    // Re-read under the lock: another sweep may have ordered this term while we waited. Then
    // it acted for this term already; the next sweep sees its order.
    let seen = earlier.as_ref().map(|i| i.id);
    let now_seen = auto_renew_item(&txn, candidate.id, &term)
        .await?
        .map(|i| i.id);
    if seen != now_seen {
        return Ok(Outcome::Skipped);
    }
    let (Some(period), true, Some(true)) = (
        license.auto_renew,
        renewable(&license),
        license
            .lifecycle
            .valid_until
            .map(|v| v == term_end && v <= until),
    ) else {
        return Ok(Outcome::Skipped);
    };
    let account = license.account_id;
    let order_id = match (earlier, earlier_order) {
        (Some(_), Some(order)) => {
            let pending = order
                .items
                .iter()
                .filter(|i| i.status == ItemStatus::Pending)
                .count();
            if order.status != OrderStatus::Unpaid || pending != 1 {
                return Ok(Outcome::Skipped);
            }
            order.id
        }
        // Paid, cancelled (the partner declined it) or changed meanwhile: nothing more to do.
        (Some(_), None) => return Ok(Outcome::Skipped),
        (None, _) => return first_auto_renewal(ctx, txn, &license, period, &term, now).await,
    };
    if pay_within(&txn, ctx, account, order_id, now).await? {
        commit(txn).await?;
        Ok(Outcome::Renewed)
    } else {
        Ok(Outcome::Skipped)
    }
}

/// Active, or suspended by its partner or an administrator (not for expiry): a license the
/// sweep renews.
fn renewable(license: &License) -> bool {
    matches!(
        license.lifecycle.settled(),
        Some(Settled {
            status: LicenseStatus::Active,
            ..
        }) | Some(Settled {
            status: LicenseStatus::Suspended,
            reason: Some(SuspensionReason::Manual | SuspensionReason::Admin)
        })
    )
}

/// The first automatic renewal of the term ending at `term`: a renewal order, paid from the
/// balance when it covers it; otherwise left unpaid with `license.auto_renew_failed`.
async fn first_auto_renewal(
    ctx: &Ctx,
    txn: DatabaseTransaction,
    license: &License,
    period: Period,
    term: &str,
    now: OffsetDateTime,
) -> AppResult<Outcome> {
    let account = license.account_id;
    let Some(product) = products::find(&txn, license.product_id).await? else {
        return Ok(Outcome::Skipped);
    };
    let amount = renewal_cost(&product, license, period)?;
    let order = orders::create(&txn, account, ctx.currency.as_str()).await?;
    orders::add_item(
        &txn,
        order,
        NewItem::for_license(
            license,
            RENEWAL,
            period,
            amount,
            serde_json::json!({
                "period_months": period.months(),
                "auto_renew_for": term,
            }),
        ),
    )
    .await?;
    if !pay_within(&txn, ctx, account, order, now).await? {
        events::record(
            &txn,
            NewEvent {
                event_type: EventType::LicenseAutoRenewFailed,
                account_id: account,
                license_id: Some(license.id),
                actor: Actor::SYSTEM,
                before: None,
                after: Some(serde_json::json!({
                    "license": license_snapshot(license),
                    "order_id": order,
                    "amount": amount,
                    "reason": "insufficient_funds",
                })),
            },
        )
        .await?;
        commit(txn).await?;
        return Ok(Outcome::RenewalOrdered);
    }
    commit(txn).await?;
    Ok(Outcome::Renewed)
}

/// The renewal item an automatic renewal created for the term ending at `term`, if any.
async fn auto_renew_item(
    txn: &DatabaseTransaction,
    license: licentia_domain::ids::LicenseId,
    term: &str,
) -> AppResult<Option<orders::OrderItem>> {
    Ok(orders::items_of_license(txn, license, Some(RENEWAL))
        .await?
        .into_iter()
        .find(|i| i.payload.get("auto_renew_for").and_then(|v| v.as_str()) == Some(term)))
}

/// Pays the order from the balance inside a savepoint: true when paid, false (and nothing of
/// the attempt left) when funds are short.
async fn pay_within(
    txn: &DatabaseTransaction,
    ctx: &Ctx,
    account: licentia_domain::ids::AccountId,
    order: OrderId,
    now: OffsetDateTime,
) -> AppResult<bool> {
    let savepoint = txn.begin().await.map_err(PersistenceError::from)?;
    match billing::pay_order(
        &savepoint,
        Some(account),
        order,
        Actor::SYSTEM,
        attempts(ctx),
        now,
    )
    .await
    {
        Ok(_) => {
            savepoint.commit().await.map_err(PersistenceError::from)?;
            Ok(true)
        }
        Err(AppError::InsufficientFunds { .. }) => {
            savepoint.rollback().await.map_err(PersistenceError::from)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// `active` or `suspended` (`manual`) past `valid_until` → `suspended` (`expired`).
async fn expire(ctx: &Ctx, candidate: License, now: OffsetDateTime) -> AppResult<Outcome> {
    let txn = ctx.begin().await?;
    let Some(license) = licenses::lock(&txn, Scope::All, candidate.id).await? else {
        return Ok(Outcome::Skipped);
    };
    let Ok(lifecycle) = license.lifecycle.clone().expire(now) else {
        return Ok(Outcome::Skipped);
    };
    let before = license_snapshot(&license);
    let mut next = license;
    next.lifecycle = lifecycle;
    let saved = licenses::save(&txn, &next, None).await?;
    record_change(
        &txn,
        EventType::LicenseExpired,
        Actor::SYSTEM,
        Some(before),
        &saved,
    )
    .await?;
    commit(txn).await?;
    Ok(Outcome::Expired)
}

/// `suspended` (`expired`) for longer than the grace period → `deleted`, cancelling its
/// unpaid order items.
async fn delete_after_grace(
    ctx: &Ctx,
    candidate: License,
    now: OffsetDateTime,
    grace: Duration,
) -> AppResult<Outcome> {
    let txn = ctx.begin().await?;
    let Some(license) = licenses::lock(&txn, Scope::All, candidate.id).await? else {
        return Ok(Outcome::Skipped);
    };
    let Ok(lifecycle) = license.lifecycle.clone().grace_expired(now, grace) else {
        return Ok(Outcome::Skipped);
    };
    let before = license_snapshot(&license);
    let mut next = license;
    next.lifecycle = lifecycle;
    let saved = licenses::save(&txn, &next, None).await?;
    crate::transfers::cancel_pending_of_license(&txn, saved.id, Actor::SYSTEM, now).await?;
    record_change(
        &txn,
        EventType::LicenseDeleted,
        Actor::SYSTEM,
        Some(before),
        &saved,
    )
    .await?;
    commit(txn).await?;
    Ok(Outcome::Deleted)
}

/// `license.expiring_soon`, once per term: the conditional update of `expiring_notice_for`
/// decides which sweep sends it.
async fn notify_expiring(ctx: &Ctx, candidate: License) -> AppResult<Outcome> {
    let Some(valid_until) = candidate.lifecycle.valid_until else {
        return Ok(Outcome::Skipped);
    };
    let txn = ctx.begin().await?;
    if !licenses::mark_expiring_notice(&txn, candidate.id, valid_until).await? {
        return Ok(Outcome::Skipped);
    }
    record_change(
        &txn,
        EventType::LicenseExpiringSoon,
        Actor::SYSTEM,
        None,
        &candidate,
    )
    .await?;
    commit(txn).await?;
    Ok(Outcome::Notified)
}
