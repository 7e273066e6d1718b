//! The durable job queue on the `jobs` table, safe with several worker processes at once.
//!
//! A worker [`claim`]s ready jobs under a lease (`locked_until`); on PostgreSQL the claim is one
//! `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`, so concurrent workers never take
//! the same job and never wait for each other. A job whose lease ran out (its worker died) is
//! claimable again. The worker then [`complete`]s the job — in the same transaction as the
//! job's effect, so the effect happens once — or [`fail`]s it with an optional retry time.
//!
//! Times are bound as UTC values, never SQL `now()`: SQLite keeps them as RFC 3339 text,
//! whose order is time order only when every value is written in UTC.
use licentia_domain::ids::JobId;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, TryInsertResult,
};
use time::OffsetDateTime;

use crate::Db;
use crate::entities::jobs::{self, Column, Entity};
use crate::error::Result;

const QUEUED: &str = "queued";
const RUNNING: &str = "running";
const DONE: &str = "done";
const FAILED: &str = "failed";

/// `last_error` keeps the start of the message; a whole backtrace is for the log.
const MAX_ERROR_CHARS: usize = 2_000;

/// A claimed job, as its handler needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub max_attempts: i32,
}

impl Job {
    /// When to run again after this attempt failed, or `None` when it was the last one.
    pub fn retry_at(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        (self.attempts < self.max_attempts).then(|| now + backoff(self.attempts))
    }
}

impl From<jobs::Model> for Job {
    fn from(m: jobs::Model) -> Self {
        Self {
            id: JobId::from_uuid(m.id),
            kind: m.kind,
            payload: m.payload,
            attempts: m.attempts,
            max_attempts: m.max_attempts,
        }
    }
}

/// Exponential backoff after the `attempt`-th failure: 1 s, 2 s, 4 s, … capped at 10 min.
pub fn backoff(attempt: i32) -> time::Duration {
    const CAP_SECONDS: i64 = 600;
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0);
    let seconds = 1_i64
        .checked_shl(exponent)
        .filter(|s| *s > 0 && *s < CAP_SECONDS)
        .unwrap_or(CAP_SECONDS);
    time::Duration::seconds(seconds)
}

/// Queues a job to run at `run_at` or later. With a `dedupe_key` already present (in any
/// status) nothing is queued and `None` comes back, so "once per term" jobs stay once.
pub async fn enqueue(
    db: &impl ConnectionTrait,
    kind: &str,
    payload: serde_json::Value,
    run_at: OffsetDateTime,
    max_attempts: i32,
    dedupe_key: Option<String>,
) -> Result<Option<JobId>> {
    let id = JobId::new();
    let now = crate::now();
    let row = jobs::ActiveModel {
        id: Set(id.as_uuid()),
        kind: Set(kind.to_owned()),
        payload: Set(payload),
        status: Set(QUEUED.to_owned()),
        run_at: Set(crate::truncate(run_at)),
        attempts: Set(0),
        max_attempts: Set(Ord::max(max_attempts, 1)),
        locked_until: Set(None),
        locked_by: Set(None),
        last_error: Set(None),
        dedupe_key: Set(dedupe_key),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let res = Entity::insert(row)
        .on_conflict_do_nothing_on([Column::DedupeKey])
        .exec_without_returning(db)
        .await?;
    Ok(match res {
        TryInsertResult::Inserted(n) if n > 0 => Some(id),
        _ => None,
    })
}

/// Leases up to `limit` jobs to `worker_id` for `lease`: queued jobs that are due, and running
/// jobs whose lease expired. Each claim counts as an attempt; a job returned with
/// `attempts > max_attempts` had its last attempt cut short and should be [`fail`]ed.
pub async fn claim(
    db: &Db,
    worker_id: &str,
    lease: std::time::Duration,
    limit: u64,
) -> Result<Vec<Job>> {
    claim_kinds(db, worker_id, lease, limit, &[]).await
}

/// [`claim`] restricted to jobs of the given kinds (all kinds when empty), so a worker only
/// leases work it has handlers for.
pub async fn claim_kinds(
    db: &Db,
    worker_id: &str,
    lease: std::time::Duration,
    limit: u64,
    kinds: &[&str],
) -> Result<Vec<Job>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = crate::now();
    let until = crate::truncate(now + lease);
    let ready = Condition::any()
        .add(
            Condition::all()
                .add(Column::Status.eq(QUEUED))
                .add(Column::RunAt.lte(now)),
        )
        .add(
            Condition::all()
                .add(Column::Status.eq(RUNNING))
                .add(Column::LockedUntil.lt(now)),
        );
    // SKIP LOCKED: rows another worker is claiming right now are left to it. SQLite drops
    // the locking clause; it has one writer, and the statement runs in its own transaction.
    let ready = if kinds.is_empty() {
        ready
    } else {
        Condition::all()
            .add(ready)
            .add(Column::Kind.is_in(kinds.iter().copied()))
    };
    let candidates = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(ready)
        .order_by_asc(Column::RunAt)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .into_query();
    let txn = db.begin().await?;
    let rows = Entity::update_many()
        .col_expr(Column::Status, Expr::value(RUNNING))
        .col_expr(Column::LockedBy, Expr::value(worker_id))
        .col_expr(Column::LockedUntil, Expr::value(until))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.in_subquery(candidates))
        .exec_with_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows.into_iter().map(Job::from).collect())
}

/// Marks a running job done. Returns whether it was running (false: it was already finished
/// or released).
pub async fn complete(db: &impl ConnectionTrait, id: JobId) -> Result<bool> {
    let res = Entity::update_many()
        .col_expr(Column::Status, Expr::value(DONE))
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<OffsetDateTime>::None),
        )
        .col_expr(Column::UpdatedAt, Expr::value(crate::now()))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(Column::Status.eq(RUNNING))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Records a failed attempt of a running job: queued again at `retry_at`, or `failed` for good
/// when `retry_at` is `None`. Returns whether the job was running.
pub async fn fail(
    db: &impl ConnectionTrait,
    id: JobId,
    error: &str,
    retry_at: Option<OffsetDateTime>,
) -> Result<bool> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    let mut q = Entity::update_many()
        .col_expr(Column::LastError, Expr::value(error))
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<OffsetDateTime>::None),
        )
        .col_expr(Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(Column::UpdatedAt, Expr::value(crate::now()))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(Column::Status.eq(RUNNING));
    q = match retry_at {
        Some(at) => q
            .col_expr(Column::Status, Expr::value(QUEUED))
            .col_expr(Column::RunAt, Expr::value(crate::truncate(at))),
        None => q.col_expr(Column::Status, Expr::value(FAILED)),
    };
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// Puts every job `worker_id` is running back in the queue, due now, for a graceful shutdown.
/// The interrupted attempt is not counted. Returns how many jobs were released.
pub async fn release_all(db: &impl ConnectionTrait, worker_id: &str) -> Result<u64> {
    let now = crate::now();
    let res = Entity::update_many()
        .col_expr(Column::Status, Expr::value(QUEUED))
        .col_expr(Column::RunAt, Expr::value(now))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).sub(1))
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<OffsetDateTime>::None),
        )
        .col_expr(Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Status.eq(RUNNING))
        .filter(Column::LockedBy.eq(worker_id))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Jobs waiting in the queue (due or scheduled), for metrics.
pub async fn queue_depth(db: &impl ConnectionTrait) -> Result<u64> {
    Ok(Entity::find()
        .filter(Column::Status.eq(QUEUED))
        .count(db)
        .await?)
}

/// When the longest-waiting due job became due (`run_at` of the oldest queued job that is
/// due now), for the queue-lag metric; `None` when nothing is waiting.
pub async fn oldest_due(db: &impl ConnectionTrait) -> Result<Option<OffsetDateTime>> {
    Ok(Entity::find()
        .select_only()
        .column(Column::RunAt)
        .filter(Column::Status.eq(QUEUED))
        .filter(Column::RunAt.lte(crate::now()))
        .order_by_asc(Column::RunAt)
        .limit(1)
        .into_tuple::<OffsetDateTime>()
        .one(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use sea_orm::DbBackend;

    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(0), time::Duration::seconds(1));
        assert_eq!(backoff(1), time::Duration::seconds(1));
        assert_eq!(backoff(2), time::Duration::seconds(2));
        assert_eq!(backoff(4), time::Duration::seconds(8));
        assert_eq!(backoff(10), time::Duration::seconds(512));
        assert_eq!(backoff(11), time::Duration::seconds(600));
        assert_eq!(backoff(64), time::Duration::seconds(600));
        assert_eq!(backoff(i32::MAX), time::Duration::seconds(600));
        assert_eq!(backoff(-3), time::Duration::seconds(1));
    }

    #[test]
    fn retry_until_the_last_attempt() {
        let now = crate::now();
        let mut job = Job {
            id: JobId::new(),
            kind: "k".into(),
            payload: serde_json::Value::Null,
            attempts: 1,
            max_attempts: 3,
        };
        assert_eq!(job.retry_at(now), Some(now + time::Duration::seconds(1)));
        job.attempts = 3;
        assert_eq!(job.retry_at(now), None);
    }

    #[test]
    fn postgres_claim_skips_locked_rows() {
        let sub = Entity::find()
            .select_only()
            .column(Column::Id)
            .limit(5)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .into_query();
        let sql = Entity::update_many()
            .col_expr(Column::Status, Expr::value(RUNNING))
            .filter(Column::Id.in_subquery(sub))
            .build(DbBackend::Postgres)
            .to_string();
        assert!(sql.contains("FOR UPDATE SKIP LOCKED)"), "{sql}");
    }
}
