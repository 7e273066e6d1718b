//! Machines registered to a license: the licensed software takes a seat with the registration
//! key ([`register`]) and gives it back ([`deregister`]); the owner frees one seat
//! ([`remove`]) or every seat ([`remove_all`]).
//!
//! Each runs in one transaction with the license's row locked: the seat check counts the
//! license's registrations under that lock, so concurrent registrations never exceed the
//! product's `max_registrations`, and `registrations_count` stays in step with the rows.
use std::net::IpAddr;

use licentia_domain::event::EventType;
use licentia_domain::ids::{LicenseId, RegistrationId};
use licentia_domain::license::LicenseStatus;
use licentia_domain::license_record::License;
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::events::{self, Actor, NewEvent};
use licentia_persistence::repo::licenses::{self, Scope as LicenseScope};
use licentia_persistence::repo::products;
use licentia_persistence::repo::registrations::{self, Registration};

use crate::tx::commit;
use crate::{AppError, AppResult, Ctx};

/// A machine asking for a seat; its fields are checked by the caller.
#[derive(Debug)]
pub struct Register {
    pub registration_key: String,
    pub fingerprint: String,
    pub hostname: Option<String>,
    /// The address the machine declares, if any.
    pub ip: Option<IpAddr>,
    /// Where the request came from (the declared address, else the peer's).
    pub seen_from: Option<IpAddr>,
}

/// The machine's registration, and whether this request created it.
#[derive(Debug)]
pub struct Registered {
    pub registration: Registration,
    pub created: bool,
}

/// Registers a machine: a fingerprint already registered is seen again (its `last_seen_at`
/// and `last_ip` move); a new one takes a seat, or fails with
/// [`AppError::RegistrationLimit`] when every seat is taken. Unknown keys and deleted
/// licenses are [`AppError::NotFound`].
pub async fn register(ctx: &Ctx, cmd: Register) -> AppResult<Registered> {
    let txn = ctx.begin().await?;
    let license = by_key(&txn, &cmd.registration_key).await?;
    let now = ctx.clock.now();
    if let Some(existing) = registrations::find(&txn, license.id, &cmd.fingerprint).await? {
        registrations::touch(&txn, existing.id, now, cmd.seen_from).await?;
        let registration = registrations::find(&txn, license.id, &cmd.fingerprint)
            .await?
            .unwrap_or(existing);
        commit(txn).await?;
        return Ok(Registered {
            registration,
            created: false,
        });
    }
    let product = products::find(&txn, license.product_id)
        .await?
        .ok_or_else(|| AppError::internal(format!("license {} has no product", license.id)))?;
    let taken = registrations::count(&txn, license.id).await?;
    if let Some(max) = product.max_registrations
        && taken >= u64::from(max)
    {
        return Err(AppError::RegistrationLimit { max });
    }
    let registration = registrations::insert(
        &txn,
        &Registration {
            id: RegistrationId::new(),
            license_id: license.id,
            fingerprint: cmd.fingerprint,
            hostname: cmd.hostname,
            ip: cmd.ip,
            created_at: now,
            last_seen_at: Some(now),
            last_ip: cmd.seen_from,
        },
    )
    .await?;
    registrations::set_count(&txn, license.id, taken + 1).await?;
    events::record(
        &txn,
        NewEvent {
            event_type: EventType::LicenseRegistrationCreated,
            account_id: license.account_id,
            license_id: Some(license.id),
            actor: Actor::SYSTEM,
            before: None,
            after: Some(snapshot(&registration)),
        },
    )
    .await?;
    commit(txn).await?;
    Ok(Registered {
        registration,
        created: true,
    })
}

/// The licensed software gives back the seat `fingerprint` holds.
pub async fn deregister(ctx: &Ctx, registration_key: &str, fingerprint: &str) -> AppResult<()> {
    let txn = ctx.begin().await?;
    let license = by_key(&txn, registration_key).await?;
    let registration = registrations::find(&txn, license.id, fingerprint)
        .await?
        .ok_or(AppError::NotFound)?;
    release_seat(&txn, &license, &registration, Actor::SYSTEM, "software").await?;
    commit(txn).await
}

/// The owner frees one seat of a license within `scope`.
pub async fn remove(
    ctx: &Ctx,
    scope: LicenseScope,
    actor: Actor,
    license: LicenseId,
    registration: RegistrationId,
) -> AppResult<()> {
    let txn = ctx.begin().await?;
    let license = licenses::lock(&txn, scope, license)
        .await?
        .ok_or(AppError::NotFound)?;
    let registration = registrations::find_by_id(&txn, license.id, registration)
        .await?
        .ok_or(AppError::NotFound)?;
    release_seat(&txn, &license, &registration, actor, "owner").await?;
    commit(txn).await
}

/// The owner frees every seat of a license within `scope`; an event when there were any.
pub async fn remove_all(
    ctx: &Ctx,
    scope: LicenseScope,
    actor: Actor,
    license: LicenseId,
) -> AppResult<()> {
    let txn = ctx.begin().await?;
    let license = licenses::lock(&txn, scope, license)
        .await?
        .ok_or(AppError::NotFound)?;
    let deleted = registrations::delete_all(&txn, license.id).await?;
    registrations::set_count(&txn, license.id, 0).await?;
    if deleted > 0 {
        events::record(
            &txn,
            NewEvent {
                event_type: EventType::LicenseRegistrationsDeleted,
                account_id: license.account_id,
                license_id: Some(license.id),
                actor,
                before: Some(serde_json::json!({"registrations_count": deleted})),
                after: Some(serde_json::json!({"registrations_count": 0})),
            },
        )
        .await?;
    }
    commit(txn).await
}

/// The license holding `key`, locked; deleted licenses are not found.
async fn by_key(txn: &DatabaseTransaction, key: &str) -> AppResult<License> {
    registrations::lock_license_by_key(txn, key)
        .await?
        .filter(|l| l.lifecycle.status != LicenseStatus::Deleted)
        .ok_or(AppError::NotFound)
}

/// Deletes one registration of a locked license, keeps the seat count in step and records
/// `license.registration_deleted`.
async fn release_seat(
    txn: &DatabaseTransaction,
    license: &License,
    registration: &Registration,
    actor: Actor,
    released_by: &str,
) -> AppResult<()> {
    if !registrations::delete_one(txn, registration.id).await? {
        return Err(AppError::NotFound);
    }
    let left = registrations::count(txn, license.id).await?;
    registrations::set_count(txn, license.id, left).await?;
    events::record(
        txn,
        NewEvent {
            event_type: EventType::LicenseRegistrationDeleted,
            account_id: license.account_id,
            license_id: Some(license.id),
            actor,
            before: Some(snapshot(registration)),
            after: Some(serde_json::json!({
                "registrations_count": left,
                "released_by": released_by,
            })),
        },
    )
    .await?;
    Ok(())
}

/// A registration as events show it.
fn snapshot(r: &Registration) -> serde_json::Value {
    serde_json::json!({
        "registration_id": r.id,
        "fingerprint": r.fingerprint,
        "hostname": r.hostname,
        "ip": r.ip.map(|ip| ip.to_string()),
    })
}
