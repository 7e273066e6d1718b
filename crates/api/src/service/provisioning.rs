//! Provisioning: applying a license's state to the licensed software, as jobs. The built-in
//! provisioner issues licenses locally and always succeeds; a failing one is retried with
//! backoff while the license stays `in_progress` with `provisioning_error` set.
use std::time::Duration;

use licentia_domain::ids::LicenseId;
use licentia_domain::license::{LicenseStatus, Settled};
use licentia_domain::license_record::License;
use licentia_persistence::ConnectionTrait;
use licentia_persistence::TransactionTrait;
use licentia_persistence::repo::events::{self, Actor, NewEvent};
use licentia_persistence::repo::jobs::{self, Job};
use licentia_persistence::repo::licenses::{self, Scope};

use super::sweeps;
use crate::error::{ApiError, ApiResult};
use crate::routes::licenses::license_snapshot;
use crate::state::AppState;

pub const JOB_KIND: &str = "provision";

/// Applies a license to the licensed software. `AppState::provisioner` holds the one in use
/// (the local one unless a deployment or a test plugs in another).
pub trait Provisioner: Send + Sync {
    /// Provisions `job.license` as it now is (an activation, a modification, a re-enable).
    /// An error is retried with backoff; its text is shown as the license's
    /// `provisioning_error` (with the administrator password, if it appears, redacted).
    fn apply(&self, job: &ProvisionJob<'_>) -> Result<(), String>;
}

/// What a provisioning job hands the provisioner.
#[derive(Debug)]
pub struct ProvisionJob<'a> {
    /// The license, as it now is.
    pub license: &'a License,
    /// The license's administrator password, decrypted ("to gain access to the server");
    /// `None` when the license has none.
    pub admin_password: Option<&'a AdminPassword>,
}

/// A decrypted administrator password. It never prints: `Debug` shows `[redacted]` and there
/// is no `Display`; [`AdminPassword::expose`] is the one way to read it.
pub struct AdminPassword(String);

impl AdminPassword {
    pub fn new(password: String) -> Self {
        Self(password)
    }

    /// The password itself, for the provisioner to log in with.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the password replaced, so that a provisioner's error
    /// message cannot carry it into the license, an event or the log.
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "[redacted]")
        }
    }
}

impl std::fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminPassword([redacted])")
    }
}

/// Issues licenses locally: nothing external to call, always succeeds.
pub struct LocalProvisioner;

impl Provisioner for LocalProvisioner {
    fn apply(&self, _job: &ProvisionJob<'_>) -> Result<(), String> {
        Ok(())
    }
}

/// The license's administrator password, decrypted; `None` when it has none.
async fn admin_password(
    state: &AppState,
    db: &impl ConnectionTrait,
    id: LicenseId,
) -> ApiResult<Option<AdminPassword>> {
    let Some(sealed) = licenses::admin_password_enc(db, id).await? else {
        return Ok(None);
    };
    crate::crypto::open(&state.encryption_key, &sealed)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(|p| Some(AdminPassword::new(p)))
        .ok_or_else(|| {
            ApiError::Internal(format!(
                "the administrator password of license {id} cannot be decrypted"
            ))
        })
}

/// Queues provisioning of a license that just entered `in_progress`.
pub async fn enqueue(
    db: &impl ConnectionTrait,
    license: LicenseId,
    attempts: i32,
) -> ApiResult<()> {
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
async fn run(state: &AppState, provisioner: &dyn Provisioner, job: &Job) -> ApiResult<()> {
    let id: LicenseId = serde_json::from_value(job.payload["license_id"].clone())
        .map_err(|e| ApiError::Internal(format!("bad provisioning payload: {e}")))?;
    let txn = state
        .db
        .conn()
        .begin()
        .await
        .map_err(licentia_persistence::PersistenceError::from)?;
    let Some(license) = licenses::lock(&txn, Scope::All, id).await? else {
        return Ok(());
    };
    if license.lifecycle.status != LicenseStatus::InProgress {
        return Ok(());
    }
    let before = license_snapshot(&license);
    let mut next = license.clone();
    let password = admin_password(state, &txn, id).await?;
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
                    event_type: "license.provisioning_failed",
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
        return Err(ApiError::Internal(why));
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
                "license.activated"
            } else {
                "license.updated"
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

/// One pass of the worker: claims due jobs (provisioning and sweeps) and runs each by its
/// kind. Returns how many ran.
pub async fn tick(
    state: &AppState,
    provisioner: &dyn Provisioner,
    worker_id: &str,
) -> ApiResult<usize> {
    let claimed = jobs::claim_kinds(
        &state.db,
        worker_id,
        Duration::from_secs(60),
        16,
        &[
            JOB_KIND,
            sweeps::JOB_KIND,
            super::bulk::JOB_KIND,
            super::webhooks::JOB_KIND,
        ],
    )
    .await?;
    let count = claimed.len();
    for job in claimed {
        let db = state.db.conn();
        let outcome = match job.kind.as_str() {
            JOB_KIND => run(state, provisioner, &job).await,
            sweeps::JOB_KIND => sweeps::run(state).await.map(|report| {
                tracing::info!(job = %job.id, ?report, "sweep done");
            }),
            super::bulk::JOB_KIND => super::bulk::run(state, &job).await,
            // Sent in the background (a bounded number at once); the delivery records its
            // own outcome and retry schedule.
            super::webhooks::JOB_KIND => {
                super::webhooks::start(state, job).await;
                continue;
            }
            other => {
                jobs::fail(db, job.id, &format!("unknown job kind {other}"), None).await?;
                continue;
            }
        };
        match outcome {
            Ok(()) => {
                jobs::complete(db, job.id).await?;
            }
            Err(e) => {
                let retry = job.retry_at(licentia_persistence::now());
                tracing::warn!(job = %job.id, kind = %job.kind, error = %e, retry = retry.is_some(), "job failed");
                jobs::fail(db, job.id, &e.to_string(), retry).await?;
            }
        }
    }
    Ok(count)
}

/// A running job worker. Dropping the handle leaves it running until the process ends;
/// [`Worker::shutdown`] stops it and hands its jobs back.
pub struct Worker {
    id: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    db: licentia_persistence::Db,
}

impl Worker {
    /// The id its leases carry (`jobs.locked_by`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops the loop and puts every job this worker leased back in the queue, due now, so
    /// that another worker takes them at once instead of after the lease. A job in flight is
    /// abandoned: its transaction rolls back, and a job's effect is committed together with
    /// its check of the license's state, so running it again elsewhere is safe. Returns how
    /// many jobs were released.
    pub async fn shutdown(self) -> ApiResult<u64> {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the job worker ended abnormally");
        }
        Ok(jobs::release_all(self.db.conn(), &self.id).await?)
    }
}

/// Resolves once a stop is asked for; never when the [`Worker`] handle was dropped.
async fn stop_requested(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The worker loop: queues the sweep of each new time slot and polls the queue every
/// `job_poll_ms` until the process ends or [`Worker::shutdown`].
pub fn spawn_worker(state: AppState) -> Worker {
    let worker_id = format!("worker-{}", uuid::Uuid::now_v7());
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let db = state.db.clone();
    let id = worker_id.clone();
    let task = tokio::spawn(async move {
        let poll = Duration::from_millis(state.config.job_poll_ms);
        let provisioner = state.provisioner.clone();
        let mut sweep_slot = None;
        loop {
            if let Err(e) = sweeps::schedule(&state, &mut sweep_slot).await {
                tracing::warn!(error = %e, "could not schedule the sweep");
            }
            let pass = tokio::select! {
                () = stop_requested(&mut stopped) => break,
                pass = tick(&state, provisioner.as_ref(), &worker_id) => pass,
            };
            match pass {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "job worker pass failed"),
            }
            tokio::select! {
                () = stop_requested(&mut stopped) => break,
                () = tokio::time::sleep(poll) => {}
            }
        }
    });
    Worker { id, stop, task, db }
}
