//! The seeded database left as a running service would leave it.
use licentia_persistence::sea_orm::ConnectionTrait;

use crate::state::AppState;

/// Runs the licenses' due work as of now, then vacuums and checkpoints.
///
/// - **The sweep** (renewals, expiries, deletions, expiring-soon notices): a service that had
///   been running over the seeded history would have done it already. Left to the first
///   server, it is its first half-minute at 1M licenses (about 6,500 notices, each a license
///   update and an event) while its job-queue gauge reads 0 — the sweep is running, not queued
///   — and validations ran at 5.0–5.6k rps (p99 24–42 ms) until it ended, 7.4–7.7k after.
/// - **Fresh statistics and the visibility map**, as autovacuum leaves a table some time after
///   a bulk load: without them, counts and reports read the heap instead of answering from an
///   index (a partner's count of 200,000 licenses: 250 ms before, 36 ms after, at 1M).
/// - **A checkpoint**, so that the gigabyte written is synced now, not for minutes into what
///   runs next (needs superuser or `pg_checkpoint`; skipped with a warning otherwise).
pub async fn settle(state: &AppState) -> Result<(), String> {
    let report = licentia_app::sweeps::run(state)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(?report, "seeded licenses swept");
    let db = state.db.conn();
    db.execute_unprepared("VACUUM (ANALYZE)")
        .await
        .map_err(|e| e.to_string())?;
    if let Err(e) = db.execute_unprepared("CHECKPOINT").await {
        tracing::warn!(error = %e, "the seeded database was not checkpointed");
    }
    Ok(())
}
