//! Provisioning: applying a license's state to the licensed software, as jobs. The built-in
//! provisioner issues licenses locally and always succeeds; a failing one is retried with
//! backoff while the license stays `in_progress` with `provisioning_error` set.

use licentia_domain::event::EventType;
use licentia_domain::ids::LicenseId;
use licentia_domain::license::{LicenseStatus, Settled};
use licentia_persistence::ConnectionTrait;
use licentia_persistence::repo::events::{self, Actor, NewEvent};
use licentia_persistence::repo::jobs::{self, Job};
use licentia_persistence::repo::licenses::{self, Scope};

use crate::Ctx;
use crate::error::{AppError, AppResult};
use crate::snapshot::license_snapshot;

pub use crate::provisioner::{AdminPassword, LocalProvisioner, ProvisionJob, Provisioner};

pub const JOB_KIND: &str = "provision";

/// The license's administrator password, decrypted; `None` when it has none.
async fn admin_password(
    ctx: &Ctx,
    db: &impl ConnectionTrait,
    id: LicenseId,
) -> AppResult<Option<AdminPassword>> {
    let Some(sealed) = licenses::admin_password_enc(db, id).await? else {
        return Ok(None);
    };
    crate::crypto::open(&ctx.encryption_key, &sealed)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(|p| Some(AdminPassword::new(p)))
        .ok_or_else(|| {
            AppError::internal(format!(
                "the administrator password of license {id} cannot be decrypted"
            ))
        })
}

/// Queues provisioning of a license that just entered `in_progress`.
pub async fn enqueue(
    db: &impl ConnectionTrait,
    license: LicenseId,
    attempts: i32,
) -> AppResult<()> {
    jobs::enqueue(
        db,
        JOB_KIND,
        serde_json::json!({"license_id": license}),
        licentia_persistence::now(),
        attempts,
        None,
    )
    .await?;
    Ok(())
}

/// Runs one provisioning job: in one transaction, the license leaves `in_progress`.
pub async fn run(ctx: &Ctx, provisioner: &dyn Provisioner, job: &Job) -> AppResult<()> {
    let id: LicenseId = serde_json::from_value(job.payload["license_id"].clone())
        .map_err(|e| AppError::internal_from("bad provisioning payload", e))?;
    let txn = ctx.begin().await?;
    let Some(license) = licenses::lock(&txn, Scope::All, id).await? else {
        return Ok(());
    };
    if license.lifecycle.status != LicenseStatus::InProgress {
        return Ok(());
    }
    let before = license_snapshot(&license);
    let mut next = license.clone();
    let password = admin_password(ctx, &txn, id).await?;
    let request = ProvisionJob {
        license: &license,
        admin_password: password.as_ref(),
    };
    if let Err(why) = provisioner.apply(&request) {
        // The provisioner's words go into the license, an event and the log: never the
        // password, whatever it wrote.
        let why = password.as_ref().map_or(why.clone(), |p| p.redact(&why));
        next.provisioning_error = Some(why.clone());
        let saved = licenses::save(&txn, &next, None).await?;
        // The last attempt: the license stays `in_progress` with the error for an admin to
        // retry (`POST /v1/licenses/{id}/provisioning/retry`).
        if job.attempts >= job.max_attempts {
            events::record(
                &txn,
                NewEvent {
                    event_type: EventType::LicenseProvisioningFailed,
                    account_id: saved.account_id,
                    license_id: Some(saved.id),
                    actor: Actor::SYSTEM,
                    before: Some(before),
                    after: Some(
                        serde_json::json!({"provisioning_error": why, "attempts": job.attempts}),
                    ),
                },
            )
            .await?;
        }
        txn.commit()
            .await
            .map_err(licentia_persistence::PersistenceError::from)?;
        return Err(AppError::internal(why));
    }
    next.lifecycle = license.lifecycle.clone().provisioning_succeeded()?;
    next.provisioning_error = None;
    let saved = licenses::save(&txn, &next, None).await?;
    let activated = license
        .lifecycle
        .came_from
        .is_some_and(|s| s.status != LicenseStatus::Active)
        && saved.lifecycle.settled() == Some(Settled::ACTIVE);
    events::record(
        &txn,
        NewEvent {
            event_type: if activated {
                EventType::LicenseActivated
            } else {
                EventType::LicenseUpdated
            },
            account_id: saved.account_id,
            license_id: Some(saved.id),
            actor: Actor::SYSTEM,
            before: Some(before),
            after: Some(license_snapshot(&saved)),
        },
    )
    .await?;
    txn.commit()
        .await
        .map_err(licentia_persistence::PersistenceError::from)?;
    Ok(())
}
