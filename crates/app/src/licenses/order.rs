//! Ordering a license (CONTRACT §4–§5): the license, its `license_order` item in a new or an
//! existing order, paid at once when the payment says so; or a free trial of the product.
use licentia_domain::event::EventType;
use licentia_domain::order::ItemKind;
use std::collections::BTreeMap;
use std::net::IpAddr;

use licentia_domain::ids::{AccountId, LicenseId, ProductId};
use licentia_domain::license::Lifecycle;
use licentia_domain::license_fields::{AdminPasswordText, ExternalId, LicenseName, Metadata};
use licentia_domain::license_record::{Annotation, License};
use licentia_domain::period::Period;
use licentia_domain::product::Product;
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::events::Actor;
use licentia_persistence::repo::licenses::{self, Scope};
use licentia_persistence::repo::orders::{self, Order};
use licentia_persistence::repo::{products, trials};

use super::renew::{Checkout, PaymentPlan};
use crate::error::{AppError, AppResult, FieldError, pricing_error};
use crate::snapshot::record_change;
use crate::{Ctx, Payment, provisioning};

/// How long the license runs and how it is paid.
#[derive(Clone, Debug)]
pub enum Term {
    /// A free trial of the product's `trial_days`.
    Trial,
    /// A paid term of `period`.
    Paid { period: Period, payment: Payment },
}

/// An order for a new license, its fields parsed.
#[derive(Clone, Debug)]
pub struct OrderLicense {
    /// The account the license is for (the caller's, or one an administrator names).
    pub account_id: AccountId,
    pub product_id: ProductId,
    pub name: LicenseName,
    pub ip: IpAddr,
    pub term: Term,
    pub options: BTreeMap<String, u32>,
    pub auto_renew: Option<Period>,
    pub admin_password: Option<AdminPasswordText>,
    pub external_id: Option<ExternalId>,
    pub metadata: Metadata,
}

/// What an order did: the license as stored, its product, its order (none for a trial) and
/// what it cost.
#[derive(Debug)]
pub struct Ordered {
    pub license: License,
    pub product: Product,
    pub order: Option<Order>,
    pub cost: i64,
}

/// What the product makes of the order: the term, the options as priced, the cost.
struct Priced {
    period: Period,
    options: BTreeMap<String, u32>,
    cost: i64,
}

/// Checks the order against its product (422 naming each field that does not fit).
fn price(product: Option<&Product>, cmd: &OrderLicense) -> AppResult<Priced> {
    let trial = matches!(cmd.term, Term::Trial);
    let product = match product {
        None => return Err(AppError::field("product_id", "no such product")),
        Some(p) if p.archived => {
            return Err(AppError::field("product_id", "the product is archived"));
        }
        Some(p) if trial && p.trial_days == 0 => {
            return Err(AppError::field("trial", "the product offers no trial"));
        }
        Some(p) => p,
    };
    // A trial's term is as long as the product's shortest priced period says it lasts.
    let period = match &cmd.term {
        Term::Paid { period, .. } => *period,
        Term::Trial => product
            .pricing
            .prices
            .iter()
            .map(|p| p.period)
            .min()
            .ok_or_else(|| AppError::field("product_id", "the product has no prices"))?,
    };
    let mut errors = Vec::new();
    let options = product
        .pricing
        .normalize_options(&cmd.options)
        .map_err(|e| errors.push(pricing_error(e)));
    let cost = match options.as_ref().map(|o| product.pricing.cost(period, o)) {
        // Trial days are free.
        Ok(Ok(_)) if trial => Some(0),
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            errors.push(pricing_error(e));
            None
        }
        Err(()) => None,
    };
    if cmd
        .auto_renew
        .is_some_and(|p| product.pricing.price_for(p).is_none())
    {
        errors.push(FieldError::new(
            "auto_renew_months",
            "the product does not offer this period",
        ));
    }
    match (options, cost) {
        (Ok(options), Some(cost)) if errors.is_empty() => Ok(Priced {
            period,
            options,
            cost,
        }),
        _ => Err(AppError::validation(errors)),
    }
}

/// Orders a license inside `txn` (the caller commits it, or rolls it back for a preview).
/// A paid order places its item with the payment's plan; a trial claims the product's trial
/// for the account and the address (409 `trial_used` when either had one) and is provisioned
/// at once.
pub async fn order(
    ctx: &Ctx,
    txn: &DatabaseTransaction,
    actor: Actor,
    cmd: OrderLicense,
) -> AppResult<Ordered> {
    let product = products::find(txn, cmd.product_id).await?;
    let Priced {
        period,
        options,
        cost,
    } = price(product.as_ref(), &cmd)?;
    let Some(product) = product else {
        return Err(AppError::NotFound);
    };
    let sealed = cmd
        .admin_password
        .as_ref()
        .map(|p| crate::crypto::seal(&ctx.encryption_key, p.expose().as_bytes()))
        .transpose()
        .map_err(AppError::internal)?;
    let now = ctx.clock.now();
    let trial = matches!(cmd.term, Term::Trial);
    let license = License {
        id: LicenseId::new(),
        account_id: cmd.account_id,
        product_id: product.id,
        name: cmd.name.into_inner(),
        ip: cmd.ip,
        period,
        lifecycle: if trial {
            Lifecycle::trial(now + time::Duration::days(i64::from(product.trial_days)))
        } else {
            Lifecycle::ordered()
        },
        options,
        auto_renew: cmd.auto_renew,
        registration_key: format!("LK-{}", crate::crypto::random_token(24)),
        registrations_count: 0,
        provisioning_error: None,
        external_id: cmd.external_id.map(ExternalId::into_inner),
        metadata: cmd.metadata.into_inner(),
        trial,
        suspension: Annotation::default(),
        deletion: Annotation::default(),
        version: 1,
        created_at: now,
        updated_at: now,
        last_validated_at: None,
    };
    let license = licenses::insert(txn, &license, sealed).await?;
    let order = place(ctx, txn, actor, &cmd.term, &license, cost, now).await?;
    let license = licenses::find(txn, Scope::All, license.id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Ordered {
        license,
        product,
        order,
        cost,
    })
}

/// Pays for a new license as its `term` says: a paid one places its order item with the
/// payment's plan (and answers the order); a trial claims the product's trial for the account
/// and the address (409 `trial_used` when either had one) and is provisioned at once.
async fn place(
    ctx: &Ctx,
    txn: &DatabaseTransaction,
    actor: Actor,
    term: &Term,
    license: &License,
    cost: i64,
    now: time::OffsetDateTime,
) -> AppResult<Option<Order>> {
    let attempts = ctx.policy.provision_attempts;
    match term {
        Term::Paid { payment, .. } => {
            let plan = PaymentPlan::resolve(txn, license.account_id, payment).await?;
            let item = orders::NewItem::for_license(
                license,
                ItemKind::LicenseOrder,
                license.period,
                cost,
                serde_json::json!({}),
            );
            record_ordered(txn, actor, license).await?;
            let checkout = Checkout {
                account: license.account_id,
                currency: ctx.currency.as_str(),
                actor,
                provision_attempts: attempts,
                now,
            };
            Ok(Some(plan.place(txn, &checkout, item).await?))
        }
        Term::Trial => {
            // One trial per product and account, and per product and address: unique keys
            // written in this transaction, so a concurrent second request finds them taken.
            let product = license.product_id;
            if !trials::claim(txn, product, license.account_id, license.id, license.ip).await? {
                return Err(AppError::TrialUsed);
            }
            provisioning::enqueue(txn, license.id, attempts).await?;
            record_ordered(txn, actor, license).await?;
            Ok(None)
        }
    }
}

async fn record_ordered(
    txn: &DatabaseTransaction,
    actor: Actor,
    license: &License,
) -> AppResult<()> {
    record_change(txn, EventType::LicenseOrdered, actor, None, license).await?;
    Ok(())
}
