//! Editing a license (CONTRACT §4). Unprovisioned fields change in any status but `deleted`;
//! provisioned ones (`ip`, `product_id`, `registration_key`) pass an `active` or `suspended`
//! license through `in_progress` while the provisioner applies them. A product switch charges
//! (upgrade) or credits (downgrade) the prorated difference for the rest of the term.
use licentia_domain::event::EventType;
use licentia_domain::order::ItemKind;
use std::net::IpAddr;

use licentia_domain::calendar::sub_months;
use licentia_domain::ids::{LicenseId, ProductId};
use licentia_domain::license::{LicenseStatus, ProvisionedField};
use licentia_domain::license_fields::{
    AdminPasswordText, ExternalId, KeyChoice, LicenseName, Metadata,
};
use licentia_domain::license_record::License;
use licentia_domain::period::Period;
use licentia_domain::pricing::prorate;
use licentia_domain::product::Product;
use licentia_persistence::repo::licenses;
use licentia_persistence::repo::{ledger, orders, products, registrations, trials};
use licentia_persistence::{DatabaseTransaction, PersistenceError};
use time::OffsetDateTime;

use super::transition::Caller;
use crate::error::{AppError, AppResult, pricing_error};
use crate::snapshot::{license_snapshot, record_change};
use crate::tx::commit;
use crate::{Ctx, provisioning};

/// Changes to a license, parsed; `None` leaves a field as it is (`Some(None)` clears it).
#[derive(Clone, Debug, Default)]
pub struct EditLicense {
    pub name: Option<LicenseName>,
    pub ip: Option<IpAddr>,
    pub product_id: Option<ProductId>,
    pub admin_password: Option<Option<AdminPasswordText>>,
    pub registration_key: Option<KeyChoice>,
    /// Delete every registration of the license.
    pub delete_registrations: bool,
    pub auto_renew: Option<Option<Period>>,
    pub external_id: Option<Option<ExternalId>>,
    pub metadata: Option<Metadata>,
    /// The end of the term (administrators only: the caller checks it).
    pub valid_until: Option<OffsetDateTime>,
}

/// The license as saved, with its product.
#[derive(Debug)]
pub struct Edited {
    pub license: License,
    pub product: Product,
}

/// Edits license `id` as `caller` (404 when out of reach). `current` is the license's
/// product as the caller read it; `precondition` (e.g. `If-Match`) runs on the locked row.
pub async fn edit(
    ctx: &Ctx,
    caller: &Caller,
    id: LicenseId,
    current: Product,
    cmd: EditLicense,
    precondition: impl FnOnce(&License) -> AppResult<()>,
) -> AppResult<Edited> {
    let new_product = match cmd.product_id {
        Some(pid) if pid != current.id => match products::find(ctx.db.conn(), pid).await? {
            Some(p) if !p.archived => Some(p),
            Some(_) => return Err(AppError::field("product_id", "the product is archived")),
            None => return Err(AppError::field("product_id", "no such product")),
        },
        _ => None,
    };
    let sealed = match &cmd.admin_password {
        Some(Some(pw)) => Some(Some(
            crate::crypto::seal(&ctx.encryption_key, pw.expose().as_bytes())
                .map_err(AppError::internal)?,
        )),
        Some(None) => Some(None),
        None => None,
    };
    let txn = ctx.begin().await?;
    let license = licenses::lock(&txn, caller.scope, id)
        .await?
        .ok_or(AppError::NotFound)?;
    precondition(&license)?;
    // A product switch committed between the read and the lock: the old price is the
    // product's the license has now (serialized, not refused).
    let current = if license.product_id == current.id {
        current
    } else {
        products::find(&txn, license.product_id)
            .await?
            .ok_or(AppError::NotFound)?
    };
    license.lifecycle.can_edit_unprovisioned()?;
    let now = ctx.clock.now();
    let change = Change::plan(&txn, &license, &current, new_product.as_ref(), &cmd, now).await?;
    let mut next = change.next;
    apply_unprovisioned(&mut next, cmd, new_product.as_ref().unwrap_or(&current))?;
    if change.delete_registrations {
        registrations::delete_all(&txn, license.id).await?;
        next.registrations_count = 0;
    }
    let saved = match licenses::save(&txn, &next, sealed).await {
        Err(PersistenceError::Unique(_)) => return Err(AppError::RegistrationKeyTaken),
        other => other?,
    };
    settle_price(ctx, &txn, &saved, change.price_change).await?;
    if saved.lifecycle.status == LicenseStatus::InProgress
        && license.lifecycle.status != LicenseStatus::InProgress
    {
        provisioning::enqueue(&txn, saved.id, ctx.policy.provision_attempts).await?;
    }
    record_change(
        &txn,
        EventType::LicenseUpdated,
        caller.actor,
        Some(license_snapshot(&license)),
        &saved,
    )
    .await?;
    commit(txn).await?;
    Ok(Edited {
        license: saved,
        product: new_product.unwrap_or(current),
    })
}

/// The provisioned part of an edit: the license with its new address, key and product, and
/// the prorated price difference of a product switch.
struct Change {
    next: License,
    price_change: i64,
    delete_registrations: bool,
}

impl Change {
    async fn plan(
        txn: &DatabaseTransaction,
        license: &License,
        current: &Product,
        new_product: Option<&Product>,
        cmd: &EditLicense,
        now: OffsetDateTime,
    ) -> AppResult<Self> {
        let mut next = license.clone();
        let mut provisioned = Vec::new();
        if let Some(ip) = cmd.ip
            && ip != license.ip
        {
            provisioned.push(ProvisionedField::Ip);
            next.ip = ip;
        }
        if license.trial {
            check_trial(txn, license, &next, new_product, cmd).await?;
        }
        if let Some(key) = &cmd.registration_key {
            provisioned.push(ProvisionedField::RegistrationKey);
            next.registration_key = match key {
                KeyChoice::Rotate => format!("LK-{}", crate::crypto::random_token(24)),
                KeyChoice::Chosen(key) => key.clone(),
            };
        }
        let mut price_change = 0;
        if let Some(product) = new_product {
            license
                .lifecycle
                .can_edit_provisioned(ProvisionedField::ProductId)?;
            provisioned.push(ProvisionedField::ProductId);
            let (options, change) = switch_price(license, current, product, now)?;
            price_change = change;
            next.product_id = product.id;
            next.options = options;
        }
        for field in &provisioned {
            license.lifecycle.can_edit_provisioned(*field)?;
        }
        if let Some(first) = provisioned.first() {
            next.lifecycle = license.lifecycle.clone().edit_provisioned(*first)?;
        }
        Ok(Self {
            next,
            price_change,
            delete_registrations: cmd.delete_registrations,
        })
    }
}

/// A trial keeps its product (convert it first), has no auto-renewal, and may move only to an
/// address that has not had a trial of the product: it claims that address too.
async fn check_trial(
    txn: &DatabaseTransaction,
    license: &License,
    next: &License,
    new_product: Option<&Product>,
    cmd: &EditLicense,
) -> AppResult<()> {
    if new_product.is_some() {
        return Err(AppError::TrialLicense(
            "a trial's product cannot change; renew it to convert it first".into(),
        ));
    }
    if let Some(Some(_)) = cmd.auto_renew {
        return Err(AppError::field(
            "auto_renew_months",
            "cannot be set on a trial; a paid renewal converts it first",
        ));
    }
    if next.ip != license.ip {
        license
            .lifecycle
            .can_edit_provisioned(ProvisionedField::Ip)?;
        if !trials::claim_address(txn, license.product_id, license.id, next.ip).await? {
            return Err(AppError::TrialUsed);
        }
    }
    Ok(())
}

/// The options as `product` prices them and the prorated difference between its price and
/// the current product's for the rest of the term (positive: to charge).
fn switch_price(
    license: &License,
    current: &Product,
    product: &Product,
    now: OffsetDateTime,
) -> AppResult<(std::collections::BTreeMap<String, u32>, i64)> {
    // The new product must offer the license's period and options.
    if product.pricing.price_for(license.period).is_none() {
        return Err(AppError::field(
            "product_id",
            "the product does not offer the license's period",
        ));
    }
    let options = product
        .pricing
        .normalize_options(&license.options)
        .map_err(|e| {
            let mut err = pricing_error(e);
            err.field = format!("product_id ({})", err.field);
            AppError::validation(vec![err])
        })?;
    let new_cost = product
        .pricing
        .cost(license.period, &options)
        .map_err(|e| AppError::validation(vec![pricing_error(e)]))?;
    let old_cost = current
        .pricing
        .cost(license.period, &license.options)
        .map_err(|_| {
            AppError::Conflict(
                "the license's current options are no longer offered by its product".into(),
            )
        })?;
    let Some(until) = license.lifecycle.valid_until else {
        return Ok((options, 0));
    };
    let start = sub_months(until, license.period.months()).unwrap_or(until);
    let diff = new_cost
        .checked_sub(old_cost)
        .ok_or_else(|| AppError::field("product_id", "the price overflows"))?;
    let change = prorate(diff, start, until, now)
        .map_err(|_| AppError::field("product_id", "the price overflows"))?;
    Ok((options, change))
}

/// The fields that do not reach the licensed software: name, auto-renewal (a period the
/// license's product offers), billing reference, metadata, and (administrators) the term.
fn apply_unprovisioned(next: &mut License, cmd: EditLicense, product: &Product) -> AppResult<()> {
    if let Some(name) = cmd.name {
        next.name = name.into_inner();
    }
    if let Some(auto) = cmd.auto_renew {
        if auto.is_some_and(|p| product.pricing.price_for(p).is_none()) {
            return Err(AppError::field(
                "auto_renew_months",
                "the product does not offer this period",
            ));
        }
        next.auto_renew = auto;
    }
    if let Some(ext) = cmd.external_id {
        next.external_id = ext.map(ExternalId::into_inner);
    }
    if let Some(metadata) = cmd.metadata {
        next.metadata = metadata.into_inner();
    }
    if let Some(until) = cmd.valid_until {
        if next.lifecycle.valid_until.is_none() || next.lifecycle.status == LicenseStatus::Deleted {
            return Err(AppError::InvalidTransition(
                "valid_until can only change once the license is paid".into(),
            ));
        }
        next.lifecycle.valid_until = Some(licentia_persistence::truncate(until));
    }
    Ok(())
}

/// Charges an upgrade (a paid `configuration_change` order) or credits a downgrade.
async fn settle_price(
    ctx: &Ctx,
    txn: &DatabaseTransaction,
    saved: &License,
    price_change: i64,
) -> AppResult<()> {
    let reference = format!("product change of license {}", saved.id);
    if price_change > 0 {
        let order = orders::create(txn, saved.account_id, ctx.currency.as_str()).await?;
        orders::add_item(
            txn,
            order,
            orders::NewItem::for_license(
                saved,
                ItemKind::ConfigurationChange,
                saved.period,
                price_change,
                serde_json::json!({"product_id": saved.product_id}),
            ),
        )
        .await?;
        orders::mark_paid(txn, order).await?;
        crate::orders::charge(txn, saved.account_id, price_change, &reference, Some(order)).await?;
    } else if price_change < 0 {
        ledger::refund(
            txn,
            saved.account_id,
            -price_change,
            &reference,
            saved.id,
            saved.product_id,
        )
        .await?;
    }
    Ok(())
}
