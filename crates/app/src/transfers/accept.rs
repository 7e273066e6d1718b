//! Accepting an offer with its secret: the license changes hands.
use licentia_domain::event::EventType;
use licentia_domain::ids::TransferId;
use licentia_domain::license_record::License;
use licentia_domain::product::Product;
use licentia_domain::transfer::{TransferError, secret_matches};
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::events::Actor;
use licentia_persistence::repo::licenses::{self, Scope};
use licentia_persistence::repo::products;
use licentia_persistence::repo::transfers::{self, Transfer, Viewer};

use super::{Preview, settle};
use crate::Ctx;
use crate::caller::Caller;
use crate::error::{AppError, AppResult};
use crate::snapshot::{license_snapshot, record_change};
use crate::tx::commit;

/// What an accepted offer did: the transfer (its preview as handed over), the license now the
/// receiver's, and its product.
#[derive(Debug)]
pub struct Accepted {
    pub transfer: Transfer,
    pub license: License,
    pub product: Product,
}

/// Transfer `id` as its receiver sees it (an administrator sees every transfer); another
/// tenant, the sender included, gets `NotFound`.
async fn offered_to(
    txn: &DatabaseTransaction,
    caller: &Caller,
    id: TransferId,
) -> AppResult<Transfer> {
    let viewer = match caller.scope {
        Scope::All => Viewer::All,
        Scope::Tenant(account) => Viewer::Party(account),
    };
    let found = transfers::find(txn, viewer, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if let Scope::Tenant(account) = caller.scope
        && found.to_account_id != account
    {
        return Err(AppError::NotFound);
    }
    Ok(found)
}

/// Accepts transfer `id` with `secret` as `caller` (404 unless the caller is its receiver or
/// an administrator). Runs in `txn`, handed back with the outcome for the caller to commit. A
/// wrong secret (which counts) or an offer found lapsed is committed here before the error is
/// answered: the attempt changed the transfer although the request fails.
pub async fn accept(
    ctx: &Ctx,
    txn: DatabaseTransaction,
    caller: &Caller,
    id: TransferId,
    secret: &str,
) -> AppResult<(DatabaseTransaction, Accepted)> {
    let found = offered_to(&txn, caller, id).await?;
    let now = ctx.clock.now();
    // Lock order, as in the sweeps: the license, then the transfer. Concurrent accepts (and a
    // cancel) queue here; the first decides.
    let license = licenses::lock(&txn, Scope::All, found.license_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let t = transfers::lock(&txn, Viewer::All, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let matches = secret_matches(secret, &t.secret_hash);
    let next = match t.state.accept(matches, now) {
        Ok(next) => next,
        Err(err @ (TransferError::Expired(next) | TransferError::InvalidSecret(next))) => {
            let actor = match err {
                TransferError::Expired(_) => Actor::SYSTEM,
                _ => caller.actor,
            };
            settle(&txn, &t, next, actor, now).await?;
            commit(txn).await?;
            return Err(err.into());
        }
        Err(err) => return Err(err.into()),
    };
    let product = check_transferable(&txn, &license, &t).await?;
    let moved = licenses::save(
        &txn,
        &License {
            account_id: t.to_account_id,
            auto_renew: None,
            // The sender's reasons for disabling it are the sender's own.
            suspension: Default::default(),
            ..license.clone()
        },
        None,
    )
    .await?;
    let accepted = settle(&txn, &t, next, caller.actor, now)
        .await?
        .ok_or_else(|| {
            AppError::InvalidTransition("the transfer changed meanwhile; read it again".into())
        })?;
    let preview = Preview::of(&moved, &product).to_json();
    transfers::set_preview(&txn, accepted.id, preview.clone()).await?;
    record_change(
        &txn,
        EventType::LicenseUpdated,
        caller.actor,
        Some(license_snapshot(&license)),
        &moved,
    )
    .await?;
    Ok((
        txn,
        Accepted {
            transfer: Transfer {
                license_preview: preview,
                ..accepted
            },
            license: moved,
            product,
        },
    ))
}

/// The secret was right; the license itself must still be one that may change hands.
async fn check_transferable(
    txn: &DatabaseTransaction,
    license: &License,
    t: &Transfer,
) -> AppResult<Product> {
    if license.account_id != t.from_account_id {
        return Err(AppError::InvalidTransition(
            "the license no longer belongs to the sender".into(),
        ));
    }
    license.lifecycle.can_transfer()?;
    if license.trial {
        return Err(AppError::TrialLicense(
            "a trial cannot be transferred".into(),
        ));
    }
    let product = products::find(txn, license.product_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !product.transferable {
        return Err(AppError::InvalidTransition(format!(
            "licenses of the product {} are no longer transferable",
            product.code
        )));
    }
    Ok(product)
}
