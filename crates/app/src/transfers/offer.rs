//! Offering a license to another partner: the first step of the handshake.
use licentia_domain::account::Account;
use licentia_domain::auth::AccountKind;
use licentia_domain::event::EventType;
use licentia_domain::ids::{AccountId, LicenseId, TransferId};
use licentia_domain::license_record::License;
use licentia_domain::product::Product;
use licentia_domain::transfer::{TransferState, hash_secret};
use licentia_persistence::repo::events::Actor;
use licentia_persistence::repo::transfers::{self, NewTransfer, Transfer};
use licentia_persistence::repo::{accounts, licenses, products};
use licentia_persistence::{DatabaseTransaction, PersistenceError};

use super::{Preview, record_for_both, settle};
use crate::Ctx;
use crate::caller::Caller;
use crate::error::{AppError, AppResult, FieldError};

/// An offer of a license the caller has read (its owner is `owner`).
#[derive(Clone, Debug)]
pub struct Offer {
    pub license: LicenseId,
    pub owner: AccountId,
    pub to: AccountId,
    /// The secret the receiver accepts with (12..256 characters, checked by the caller);
    /// `None`: a random one.
    pub secret: Option<String>,
}

/// The offer made (or, for a preview, the one that would be made).
#[derive(Debug)]
pub struct Offered {
    pub license: License,
    pub state: TransferState,
    pub preview: Preview,
    /// The transfer and its secret; `None` for a preview.
    pub created: Option<(Transfer, String)>,
}

fn offered_to_owner() -> AppError {
    AppError::field(
        "to_account_id",
        "is the account that owns the license; offer it to another partner",
    )
}

/// The receiving account: a partner that is not the license's owner (422 otherwise).
async fn check_receiver(
    txn: &DatabaseTransaction,
    owner: AccountId,
    to: AccountId,
) -> AppResult<()> {
    if to == owner {
        return Err(offered_to_owner());
    }
    match accounts::find(txn, to).await? {
        Some(Account {
            kind: AccountKind::Partner,
            ..
        }) => Ok(()),
        _ => Err(AppError::validation(vec![FieldError::new(
            "to_account_id",
            "no such partner account",
        )])),
    }
}

/// The license's product, when its licenses may change hands.
async fn transferable_product(txn: &DatabaseTransaction, license: &License) -> AppResult<Product> {
    let product = products::find(txn, license.product_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !product.transferable {
        return Err(AppError::InvalidTransition(format!(
            "licenses of the product {} are not transferable",
            product.code
        )));
    }
    Ok(product)
}

/// One pending offer per license: a lapsed one is expired (it no longer blocks a new one),
/// a live one refuses the new offer.
async fn expire_lapsed_offer(
    txn: &DatabaseTransaction,
    license: LicenseId,
    now: time::OffsetDateTime,
) -> AppResult<()> {
    let Some(pending) = transfers::lock_pending_of_license(txn, license).await? else {
        return Ok(());
    };
    match pending.state.expire(now) {
        Ok(next) => {
            settle(txn, &pending, next, Actor::SYSTEM, now).await?;
            Ok(())
        }
        Err(_) => Err(AppError::AlreadyExists(format!(
            "the license already has a pending transfer ({}); cancel it first",
            pending.id
        ))),
    }
}

/// Offers the license inside `txn` (the caller commits it): only its owner, for a license
/// that may change hands, of a transferable product, one pending offer per license (a lapsed
/// one is expired first). With `preview`, every check runs and nothing is created.
pub async fn offer(
    ctx: &Ctx,
    txn: &DatabaseTransaction,
    caller: &Caller,
    cmd: Offer,
    preview: bool,
) -> AppResult<Offered> {
    check_receiver(txn, cmd.owner, cmd.to).await?;
    let now = ctx.clock.now();
    // The license lock serializes the offer with a delete, an edit or a concurrent offer.
    let license = licenses::lock(txn, caller.scope, cmd.license)
        .await?
        .ok_or(AppError::NotFound)?;
    if license.account_id == cmd.to {
        return Err(offered_to_owner());
    }
    license.lifecycle.can_transfer()?;
    if license.trial {
        return Err(AppError::TrialLicense(
            "a trial cannot be transferred; renew it to convert it first".into(),
        ));
    }
    let product = transferable_product(txn, &license).await?;
    expire_lapsed_offer(txn, license.id, now).await?;
    let shown = Preview::of(&license, &product);
    let state = TransferState::offer(now, ctx.policy.transfer_ttl);
    if preview {
        return Ok(Offered {
            license,
            state,
            preview: shown,
            created: None,
        });
    }
    let secret = cmd
        .secret
        .unwrap_or_else(|| crate::crypto::random_token(32));
    let created = transfers::insert(
        txn,
        NewTransfer {
            id: TransferId::new(),
            license_id: license.id,
            from_account_id: license.account_id,
            to_account_id: cmd.to,
            state,
            secret_hash: hash_secret(&secret),
            license_preview: shown.to_json(),
            now,
        },
    )
    .await
    .map_err(|e| match e {
        PersistenceError::Unique(_) => {
            AppError::AlreadyExists("the license already has a pending transfer".into())
        }
        other => other.into(),
    })?;
    record_for_both(
        txn,
        EventType::TransferCreated,
        None,
        &created,
        caller.actor,
    )
    .await?;
    Ok(Offered {
        license,
        state,
        preview: shown,
        created: Some((created, secret)),
    })
}
