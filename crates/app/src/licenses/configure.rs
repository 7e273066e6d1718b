//! Changing a license's option quantities (CONTRACT §5): an upgrade is an order item paid
//! like the payment says; a downgrade applies at once and credits the prorated difference.
use std::collections::BTreeMap;

use licentia_domain::ids::{AccountId, LicenseId};
use licentia_domain::license_record::License;
use licentia_domain::product::Product;
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::orders::{NewItem, Order};
use licentia_persistence::repo::{ledger, licenses, products};

use super::renew::{
    CONFIGURATION_CHANGE, Checkout, PaymentPlan, configuration_delta, lock_for_checkout,
};
use super::transition::Caller;
use crate::error::{AppError, AppResult, pricing_error};
use crate::fulfil::apply_options;
use crate::{Ctx, Payment};

/// A new configuration for a license the caller has read.
#[derive(Clone, Debug)]
pub struct Configure {
    pub license: LicenseId,
    /// The license's owner as read: an owner change before the lock is a conflict.
    pub owner: AccountId,
    /// The license's product as read.
    pub product: Product,
    /// Quantity per option code; options left out get their minimum.
    pub options: BTreeMap<String, u32>,
    /// How an upgrade is paid.
    pub payment: Payment,
}

/// The license after the change (or, for an unpaid upgrade, as it still is), its product, the
/// order of an upgrade, and the price difference (negative: credited).
#[derive(Debug)]
pub struct Configured {
    pub license: License,
    pub product: Product,
    pub order: Option<Order>,
    pub delta: i64,
}

/// Changes the configuration inside `txn` (the caller commits it, or rolls it back for a
/// preview); `precondition` (e.g. `If-Match`) runs on the locked license.
pub async fn configure(
    ctx: &Ctx,
    txn: &DatabaseTransaction,
    caller: &Caller,
    cmd: Configure,
    precondition: impl FnOnce(&License) -> AppResult<()>,
) -> AppResult<Configured> {
    let options = normalized(&cmd.product, &cmd.options)?;
    let (plan, license) = lock_for_checkout(
        txn,
        caller,
        cmd.license,
        cmd.owner,
        &cmd.payment,
        precondition,
    )
    .await?;
    // A product switch committed between the read and the lock: price with the product the
    // license has now (serialized, not refused).
    let (product, options) = if license.product_id == cmd.product.id {
        (cmd.product, options)
    } else {
        let product = products::find(txn, license.product_id)
            .await?
            .ok_or(AppError::NotFound)?;
        let options = normalized(&product, &cmd.options)?;
        (product, options)
    };
    license.lifecycle.can_change_configuration()?;
    if license.trial {
        return Err(AppError::TrialLicense(
            "a trial's configuration cannot change; renew it to convert it first".into(),
        ));
    }
    let now = ctx.clock.now();
    let delta = configuration_delta(&product, &license, &options, now)?;
    let checkout = Checkout {
        account: license.account_id,
        currency: ctx.currency.as_str(),
        actor: caller.actor,
        provision_attempts: ctx.policy.provision_attempts,
        now,
    };
    let (license, order) = if options == license.options {
        (license, None)
    } else {
        change(txn, &plan, &checkout, license, options, delta).await?
    };
    Ok(Configured {
        license,
        product,
        order,
        delta,
    })
}

/// The requested quantities as `product` prices them, or the fields it refuses.
fn normalized(
    product: &Product,
    options: &BTreeMap<String, u32>,
) -> AppResult<BTreeMap<String, u32>> {
    product
        .pricing
        .normalize_options(options)
        .map_err(|e| AppError::validation(vec![pricing_error(e)]))
}

/// Applies new `options` that cost `delta` more (or less) than the current ones: a positive
/// difference is an order item paid by `plan` (the options apply when it is paid); otherwise
/// the options apply now and a negative difference is refunded to the balance.
async fn change(
    txn: &DatabaseTransaction,
    plan: &PaymentPlan,
    checkout: &Checkout<'_>,
    license: License,
    options: BTreeMap<String, u32>,
    delta: i64,
) -> AppResult<(License, Option<Order>)> {
    if delta > 0 {
        let item = NewItem::for_license(
            &license,
            CONFIGURATION_CHANGE,
            license.period,
            delta,
            serde_json::json!({ "options": options }),
        );
        let order = plan.place(txn, checkout, item).await?;
        let license = licenses::find(txn, licenses::Scope::All, license.id)
            .await?
            .ok_or(AppError::NotFound)?;
        return Ok((license, Some(order)));
    }
    let account = license.account_id;
    let saved = apply_options(
        txn,
        license,
        options,
        checkout.actor,
        checkout.provision_attempts,
    )
    .await?;
    if delta < 0 {
        ledger::refund(
            txn,
            account,
            -delta,
            &format!("configuration change of license {}", saved.id),
            saved.id,
            saved.product_id,
        )
        .await?;
    }
    Ok((saved, None))
}
