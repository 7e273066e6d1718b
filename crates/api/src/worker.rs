//! The job worker: claims due jobs (provisioning, sweeps, bulk operations, webhook deliveries)
//! and runs each through its use case; queues the sweep of each new time slot.
use std::time::Duration;

use licentia_app::provisioning::{self, Provisioner};
use licentia_app::{licenses::bulk, sweeps};
use licentia_persistence::repo::jobs;

use crate::error::ApiResult;
use crate::service::webhooks;
use crate::state::AppState;

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
            provisioning::JOB_KIND,
            sweeps::JOB_KIND,
            bulk::JOB_KIND,
            webhooks::JOB_KIND,
        ],
    )
    .await?;
    let count = claimed.len();
    for job in claimed {
        let db = state.db.conn();
        let outcome = match job.kind.as_str() {
            provisioning::JOB_KIND => provisioning::run(state, provisioner, &job).await,
            sweeps::JOB_KIND => sweeps::run(state).await.map(|report| {
                tracing::info!(job = %job.id, ?report, "sweep done");
            }),
            bulk::JOB_KIND => bulk::run(state, &job).await,
            // Sent in the background (a bounded number at once); the delivery records its
            // own outcome and retry schedule.
            webhooks::JOB_KIND => {
                webhooks::start(state, job).await;
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
        let poll = state.config.job_poll_ms.duration();
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
