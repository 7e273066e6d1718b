//! What a paid renewal or configuration item does to its license ([`fulfil_renewal`],
//! [`fulfil_configuration`], called by `orders::pay_order`), and the options change
//! that a configuration applies at once ([`apply_options`]). Below both the order's payment
//! and the use cases that place such items.
use std::collections::BTreeMap;

use licentia_domain::calendar::{add_months_saturating, renewal_start};
use licentia_domain::event::EventType;
use licentia_domain::license::{
    LicenseStatus, Lifecycle, Settled, SuspensionReason, TransitionError,
};
use licentia_domain::license_record::License;
use licentia_domain::period::Period;
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::events::Actor;
use licentia_persistence::repo::licenses;
use licentia_persistence::repo::orders::OrderItem;
use time::OffsetDateTime;

use crate::error::{AppError, AppResult};
use crate::provisioning;
use crate::snapshot::{license_snapshot, record_change};

/// A paid renewal of a license that is `in_progress`: the term is extended now (the money is
/// taken), and an expired suspension it came from is lifted when provisioning settles.
fn renew_in_progress(lc: Lifecycle, period: Period, now: OffsetDateTime) -> Lifecycle {
    let start = renewal_start(lc.valid_until.unwrap_or(now), now);
    let mut next = Lifecycle {
        valid_until: Some(add_months_saturating(start, period.months())),
        ..lc
    };
    if next.resumes_to == Some(Settled::suspended(SuspensionReason::Expired)) {
        next.resumes_to = Some(Settled::ACTIVE);
    }
    next
}

/// Applies a paid `renewal` item: `valid_until` moves by the item's period from
/// max(`valid_until`, now), `period_months` becomes that period, and an `expired` suspension
/// lifts through `in_progress` → `active`. Event `license.renewed`.
pub async fn fulfil_renewal(
    txn: &DatabaseTransaction,
    license: License,
    item: &OrderItem,
    actor: Actor,
    provision_attempts: i32,
    now: OffsetDateTime,
) -> AppResult<()> {
    let before = license_snapshot(&license);
    let mut next = license.clone();
    next.lifecycle = match license.lifecycle.status {
        LicenseStatus::InProgress => renew_in_progress(license.lifecycle.clone(), item.period, now),
        // `ordered`/`deleted` refuse: better no payment than money taken for nothing.
        _ => license.lifecycle.clone().renew(item.period, now)?,
    };
    next.period = item.period;
    // A paid renewal converts a trial: the paid term runs from max(valid_until, now).
    next.trial = false;
    let saved = licenses::save(txn, &next, None).await?;
    if saved.lifecycle.status == LicenseStatus::InProgress
        && license.lifecycle.status != LicenseStatus::InProgress
    {
        provisioning::enqueue(txn, saved.id, provision_attempts).await?;
    }
    record_change(txn, EventType::LicenseRenewed, actor, Some(before), &saved).await?;
    Ok(())
}

/// Applies a paid `configuration_change` item that carries `options`: the license takes the
/// new quantities and an `active`/`suspended` one passes through `in_progress` while the
/// provisioner applies them. Items without `options` (e.g. a product change, applied when it
/// was requested) have nothing left to do. Event `license.updated`.
pub async fn fulfil_configuration(
    txn: &DatabaseTransaction,
    license: License,
    item: &OrderItem,
    actor: Actor,
    provision_attempts: i32,
) -> AppResult<()> {
    let Some(options) = item.payload.get("options") else {
        return Ok(());
    };
    let options: BTreeMap<String, u32> = serde_json::from_value(options.clone())
        .map_err(|e| AppError::internal_from(format!("order item {}: bad options", item.id), e))?;
    apply_options(txn, license, options, actor, provision_attempts).await?;
    Ok(())
}

/// Sets the license's options: `active`/`suspended` → `in_progress` (modification) → back, with
/// a provisioning job; `in_progress` stays (its pending job applies the latest row). Records
/// `license.updated` and returns the saved license.
pub async fn apply_options(
    txn: &DatabaseTransaction,
    license: License,
    options: BTreeMap<String, u32>,
    actor: Actor,
    provision_attempts: i32,
) -> AppResult<License> {
    let before = license_snapshot(&license);
    let mut next = license.clone();
    next.options = options;
    next.lifecycle = match license.lifecycle.status {
        LicenseStatus::Active | LicenseStatus::Suspended => {
            license.lifecycle.clone().begin_modification()?
        }
        LicenseStatus::InProgress | LicenseStatus::Ordered => license.lifecycle.clone(),
        LicenseStatus::Deleted => {
            return Err(TransitionError::InvalidTransition {
                from: LicenseStatus::Deleted,
            }
            .into());
        }
    };
    let saved = licenses::save(txn, &next, None).await?;
    if saved.lifecycle.status == LicenseStatus::InProgress
        && license.lifecycle.status != LicenseStatus::InProgress
    {
        provisioning::enqueue(txn, saved.id, provision_attempts).await?;
    }
    record_change(txn, EventType::LicenseUpdated, actor, Some(before), &saved).await?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_renewal_paid_while_in_progress_extends_and_lifts_expiry() {
        let expired = Lifecycle {
            status: LicenseStatus::Suspended,
            suspension_reason: Some(SuspensionReason::Expired),
            valid_until: Some(datetime!(2024-01-31 10:00 UTC)),
            came_from: None,
            resumes_to: None,
        };
        // An expired license whose configuration is being applied.
        let modifying = expired
            .begin_modification()
            .expect("a suspended license can be modified");
        let now = datetime!(2024-01-15 00:00 UTC);
        let renewed = renew_in_progress(modifying, Period::M1, now);
        assert_eq!(renewed.status, LicenseStatus::InProgress);
        assert_eq!(renewed.valid_until, Some(datetime!(2024-02-29 10:00 UTC)));
        assert_eq!(renewed.resumes_to, Some(Settled::ACTIVE));
        // From now when the term already ended.
        let later = datetime!(2024-03-31 12:00 UTC);
        let renewed = renew_in_progress(renewed, Period::M1, later);
        assert_eq!(renewed.valid_until, Some(datetime!(2024-04-30 12:00 UTC)));
    }
}
