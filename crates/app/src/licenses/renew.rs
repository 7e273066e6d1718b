//! Renewals and configuration changes: their prices, and how their order items are placed
//! and paid. What happens to the license once such an item is paid is in
//! [`crate::fulfil`], which [`crate::orders::pay_order`] calls.
//!
//! Lock order, kept by every money path so that concurrent requests never deadlock: an existing
//! order first, then the license(s), then the account (the charge).
use std::collections::BTreeMap;

use licentia_domain::calendar::{add_months_saturating, renewal_start, sub_months};
use licentia_domain::ids::{AccountId, LicenseId, OrderId};
use licentia_domain::license_record::License;
use licentia_domain::period::Period;
use licentia_domain::pricing::prorate;
use licentia_domain::product::Product;
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::events::Actor;
use licentia_persistence::repo::licenses::{self, Scope as LicenseScope};
use licentia_persistence::repo::orders::{self, NewItem, Order};
use licentia_persistence::repo::products;
use time::OffsetDateTime;

use super::transition::Caller;
use crate::error::pricing_error;
use crate::error::{AppError, AppResult};
use crate::orders as billing;
use crate::{Ctx, Payment};
use licentia_domain::order::{ItemKind, OrderStatus};

/// Order item kind of a renewal; its payload is `{period_months}` (plus `auto_renew_for`, the
/// `valid_until` of the term an automatic renewal was created for).
pub const RENEWAL: ItemKind = ItemKind::Renewal;
/// Order item kind of a configuration change; its payload is `{options}`, the new quantities.
pub const CONFIGURATION_CHANGE: ItemKind = ItemKind::ConfigurationChange;

/// Renewing a license: extending its term by `period_months`, paid like an order.
#[derive(Debug)]
pub struct RenewLicense {
    pub license: LicenseId,
    /// The account the caller checked the payment for (the license's owner when it was read,
    /// before the lock).
    pub account: AccountId,
    pub period_months: i64,
    pub payment: Payment,
}

/// A placed renewal: the license as it is now (renewed when the order was paid), its product,
/// the order holding the renewal, and the renewal's price.
#[derive(Debug)]
pub struct Renewed {
    pub license: License,
    pub product: Product,
    pub order: Order,
    pub amount: i64,
}

/// Places a renewal inside `txn` (the caller commits it, with its idempotent answer, or rolls
/// it back for a preview). Locks an existing order first, then the license; runs
/// `precondition` (e.g. `If-Match`) on the locked row. The license must still belong to
/// `cmd.account` (409 otherwise: the payment was checked for its owner), and a product switch
/// committed meanwhile is priced with the product the license has now.
pub async fn renew(
    txn: &DatabaseTransaction,
    ctx: &Ctx,
    caller: &Caller,
    cmd: RenewLicense,
    precondition: impl FnOnce(&License) -> AppResult<()>,
) -> AppResult<Renewed> {
    let (plan, license) = lock_for_checkout(
        txn,
        caller,
        cmd.license,
        cmd.account,
        &cmd.payment,
        precondition,
    )
    .await?;
    let product = products::find(txn, license.product_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let period = offered_period(&product, cmd.period_months)?;
    let amount = renewal_cost(&product, &license, period)?;
    license.lifecycle.can_renew()?;
    let checkout = Checkout {
        account: license.account_id,
        currency: ctx.currency.as_str(),
        actor: caller.actor,
        provision_attempts: ctx.policy.provision_attempts,
        now: ctx.clock.now(),
    };
    let item = NewItem::for_license(
        &license,
        RENEWAL,
        period,
        amount,
        serde_json::json!({"period_months": period.months()}),
    );
    let order = plan.place(txn, &checkout, item).await?;
    let license = licenses::find(txn, LicenseScope::All, license.id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Renewed {
        license,
        product,
        order,
        amount,
    })
}

/// What a renewal and a configuration change do first, in the lock order of every money path:
/// resolve `payment` for `owner` (locking an existing order), then lock the license within the
/// caller's scope and run `precondition` (e.g. `If-Match`) on it. A license that no longer
/// belongs to `owner` (the payment was checked for them) is a 409 to retry.
pub(crate) async fn lock_for_checkout(
    txn: &DatabaseTransaction,
    caller: &Caller,
    license: LicenseId,
    owner: AccountId,
    payment: &Payment,
    precondition: impl FnOnce(&License) -> AppResult<()>,
) -> AppResult<(PaymentPlan, License)> {
    let plan = PaymentPlan::resolve(txn, owner, payment).await?;
    let license = licenses::lock(txn, caller.scope, license)
        .await?
        .ok_or(AppError::NotFound)?;
    precondition(&license)?;
    if license.account_id != owner {
        return Err(AppError::Conflict(
            "the license changed owner during the request; retry".into(),
        ));
    }
    Ok((plan, license))
}

/// `months` as a renewal period of `product`: one of the periods it prices (422 naming
/// `period_months` otherwise).
pub fn offered_period(product: &Product, months: i64) -> AppResult<Period> {
    let period = Period::new(months)
        .map_err(|_| AppError::field("period_months", "must be one of 1, 3, 6, 12, 24, 36"))?;
    if product.pricing.price_for(period).is_none() {
        return Err(AppError::field(
            "period_months",
            format!("the product does not offer {months} months"),
        ));
    }
    Ok(period)
}

/// Where a new order item goes and whether its order is paid at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentPlan {
    /// An unpaid order of the account to add the item to; `None`: a new order.
    pub existing: Option<OrderId>,
    /// Pay the whole order from the balance in the same transaction.
    pub pay_now: bool,
}

impl PaymentPlan {
    /// Checks `payment` for `account`: an `existing_order` must be one of its unpaid orders
    /// (else 422 naming `payment.order_id`). That order is locked here, before the caller
    /// locks the license, to keep the lock order.
    pub async fn resolve(
        txn: &DatabaseTransaction,
        account: AccountId,
        payment: &Payment,
    ) -> AppResult<PaymentPlan> {
        Ok(match payment {
            Payment::Balance {} => PaymentPlan {
                existing: None,
                pay_now: true,
            },
            Payment::NewOrder { pay_now } => PaymentPlan {
                existing: None,
                pay_now: *pay_now,
            },
            Payment::ExistingOrder { order_id, pay_now } => {
                let id = OrderId::from_uuid(*order_id);
                match orders::lock(txn, Some(account), id).await? {
                    Some(o) if o.status == OrderStatus::Unpaid => PaymentPlan {
                        existing: Some(id),
                        pay_now: *pay_now,
                    },
                    Some(o) => {
                        return Err(AppError::field(
                            "payment.order_id",
                            format!("the order is {}, not unpaid", o.status),
                        ));
                    }
                    None => return Err(AppError::field("payment.order_id", "no such order")),
                }
            }
        })
    }

    /// Adds `item` to the planned order (creating it when new), then pays the order when the
    /// plan says so. A 402 leaves the caller's transaction to roll back: nothing changes.
    pub async fn place(
        self,
        txn: &DatabaseTransaction,
        checkout: &Checkout<'_>,
        item: NewItem,
    ) -> AppResult<Order> {
        let order_id = match self.existing {
            Some(id) => id,
            None => orders::create(txn, checkout.account, checkout.currency).await?,
        };
        if !orders::add_item(txn, order_id, item).await? {
            return Err(AppError::field(
                "payment.order_id",
                "the order is no longer unpaid",
            ));
        }
        if self.pay_now {
            billing::pay_order(
                txn,
                Some(checkout.account),
                order_id,
                checkout.actor,
                checkout.provision_attempts,
                checkout.now,
            )
            .await
        } else {
            orders::find(txn, None, order_id)
                .await?
                .ok_or(AppError::NotFound)
        }
    }
}

/// Who pays, as whom, and when: what placing an item needs besides the item.
#[derive(Clone, Copy, Debug)]
pub struct Checkout<'a> {
    /// The license's account: its orders and balance.
    pub account: AccountId,
    pub currency: &'a str,
    pub actor: Actor,
    pub provision_attempts: i32,
    /// The business "now" (the state's clock).
    pub now: OffsetDateTime,
}

/// The price of renewing `license` for `period`: the product's price for the period plus each
/// option's quantity × its unit price for the period. 422 when the product does not offer the
/// period (`period_months`) or no longer accepts the license's options (`options.<code>`).
pub fn renewal_cost(product: &Product, license: &License, period: Period) -> AppResult<i64> {
    product
        .pricing
        .cost(period, &license.options)
        .map_err(|e| AppError::validation(vec![pricing_error(e)]))
}

/// `valid_until` after a renewal for `period` paid at `now`: calendar months from
/// max(`valid_until`, now), clamped to the end of the target month.
pub fn renewed_until(license: &License, period: Period, now: OffsetDateTime) -> OffsetDateTime {
    let start = renewal_start(license.lifecycle.valid_until.unwrap_or(now), now);
    add_months_saturating(start, period.months())
}

/// The charge (positive) or credit (negative) for changing the license's options to
/// `new_options` at `now`.
///
/// Δ = (cost(new) − cost(old), both for the license's `period_months`) × (time left ÷ term
/// length), where the term is [`valid_until` − `period_months` (calendar months, clamped),
/// `valid_until`) and time left is `valid_until − now` clamped to the term, both counted in
/// whole seconds. Rounding is half-up on the magnitude (half away from zero) to the minor
/// unit, so an upgrade and the matching downgrade at the same instant cancel exactly
/// ([`licentia_domain::pricing::prorate`]). A license without a term (never paid) pays the
/// full difference.
pub fn configuration_delta(
    product: &Product,
    license: &License,
    new_options: &BTreeMap<String, u32>,
    now: OffsetDateTime,
) -> AppResult<i64> {
    let old = product
        .pricing
        .cost(license.period, &license.options)
        .map_err(|_| {
            AppError::Conflict(
                "the license's current options are no longer offered by its product".into(),
            )
        })?;
    let new = product
        .pricing
        .cost(license.period, new_options)
        .map_err(|e| AppError::validation(vec![pricing_error(e)]))?;
    let diff = new
        .checked_sub(old)
        .ok_or_else(|| AppError::field("options", "the price overflows"))?;
    let Some(until) = license.lifecycle.valid_until else {
        return Ok(diff);
    };
    // A term that cannot be computed (year −9999) has no meaningful time left: charge nothing.
    let start = sub_months(until, license.period.months()).unwrap_or(until);
    prorate(diff, start, until, now).map_err(|_| AppError::field("options", "the price overflows"))
}
