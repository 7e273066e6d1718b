//! Trials (CONTRACT §12): one trial license per product and account, and one per product and
//! address across all accounts. Both rules are unique keys (`trials (product_id, account_id)`
//! and `trial_addresses (product_id, ip_key)`), written in the transaction that creates the
//! license: of two concurrent requests for the same product and account or address, the
//! second waits for the first to commit and then finds the key taken, whatever the process.
//!
//! Addresses are keyed by [`ip_key`], the canonical 16-byte form: an IPv4-mapped IPv6
//! address is its IPv4 address.
use std::net::IpAddr;

use licentia_domain::ids::{AccountId, LicenseId, ProductId};
use licentia_domain::license_record::{canonical_ip, ip_key};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TryInsertResult,
};

use crate::entities::{trial_addresses, trials};
use crate::error::Result;

/// Whether an `INSERT … ON CONFLICT DO NOTHING` wrote its row.
fn inserted(res: &TryInsertResult<u64>) -> bool {
    matches!(res, TryInsertResult::Inserted(n) if *n > 0)
}

/// Records `license` as the trial of `product` for `account` at `ip`. False (and nothing
/// written) when the account already had a trial of the product, or the address did.
pub async fn claim(
    db: &impl ConnectionTrait,
    product: ProductId,
    account: AccountId,
    license: LicenseId,
    ip: IpAddr,
) -> Result<bool> {
    let row = trials::ActiveModel {
        license_id: Set(license.as_uuid()),
        product_id: Set(product.as_uuid()),
        account_id: Set(account.as_uuid()),
        created_at: Set(crate::now()),
    };
    let res = trials::Entity::insert(row)
        .on_conflict_do_nothing_on([trials::Column::ProductId, trials::Column::AccountId])
        .exec_without_returning(db)
        .await?;
    if !inserted(&res) {
        return Ok(false);
    }
    claim_address(db, product, license, ip).await
}

/// Records that the trial `license` of `product` runs at `ip` (a trial that moves claims its
/// new address too). True when the address had no trial of the product, or had this one.
pub async fn claim_address(
    db: &impl ConnectionTrait,
    product: ProductId,
    license: LicenseId,
    ip: IpAddr,
) -> Result<bool> {
    let key = ip_key(ip).to_vec();
    let row = trial_addresses::ActiveModel {
        product_id: Set(product.as_uuid()),
        ip_key: Set(key.clone()),
        ip: Set(canonical_ip(ip).to_string()),
        license_id: Set(license.as_uuid()),
        created_at: Set(crate::now()),
    };
    let res = trial_addresses::Entity::insert(row)
        .on_conflict_do_nothing_on([
            trial_addresses::Column::ProductId,
            trial_addresses::Column::IpKey,
        ])
        .exec_without_returning(db)
        .await?;
    if inserted(&res) {
        return Ok(true);
    }
    let holder = trial_addresses::Entity::find()
        .filter(trial_addresses::Column::ProductId.eq(product.as_uuid()))
        .filter(trial_addresses::Column::IpKey.eq(key))
        .one(db)
        .await?;
    Ok(holder.is_some_and(|h| h.license_id == license.as_uuid()))
}
