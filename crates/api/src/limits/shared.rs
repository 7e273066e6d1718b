//! Limits counted in the database (`attempt_counters`), shared by every process.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::HttpResponse;
use licentia_persistence::repo::attempts;
use licentia_persistence::sea_orm::DatabaseConnection;

use super::Decision;
use crate::error::ApiResult;

/// A limit counted in the database: at most `limit` attempts per `window` for each key, shared
/// by every process. A window starts at the first attempt after the previous one passed.
#[derive(Debug)]
pub struct SharedLimit {
    /// The counters' `limit_name`.
    pub name: &'static str,
    pub limit: u32,
    pub window: Duration,
    /// Attempts counted by this process, to purge passed windows now and then.
    counted: AtomicU64,
}

/// Failed logins per (account, client address): 5 a minute (CONTRACT §9). Counted before the
/// password is checked; a right password gives its attempt back.
pub static LOGIN_FAILURES: SharedLimit = SharedLimit::new("login_failures", 5, 60);

/// Transfer accepts per receiving account: 20 a minute (CONTRACT §9), every attempt counted.
pub static TRANSFER_ACCEPTS: SharedLimit = SharedLimit::new("transfer_accepts", 20, 60);

/// Every how many counted attempts a process deletes the counters of passed windows.
const PURGE_EVERY: u64 = 256;

/// An attempt counted against a [`SharedLimit`]: allowed, or over the limit.
#[derive(Debug)]
#[must_use]
pub enum Attempt {
    /// Within the limit; the reservation can give the attempt back.
    Allowed(Reservation),
    /// Over the limit: answer 429 (see [`Attempt::refusal`]).
    Limited(Decision),
}

impl Attempt {
    /// The 429 `rate_limited` answer (with `Retry-After` and `RateLimit-*`) when limited.
    pub fn refusal(&self) -> Option<HttpResponse> {
        match self {
            Attempt::Allowed(_) => None,
            Attempt::Limited(decision) => decision.refusal(),
        }
    }

    /// The reservation of an allowed attempt.
    pub fn into_reservation(self) -> Option<Reservation> {
        match self {
            Attempt::Allowed(reservation) => Some(reservation),
            Attempt::Limited(_) => None,
        }
    }
}

/// One allowed attempt, which [`Reservation::release`] gives back.
#[derive(Debug)]
pub struct Reservation {
    name: &'static str,
    key: String,
    window_start_ms: i64,
}

impl Reservation {
    /// Takes the attempt back (it did not count as a failure).
    pub async fn release(self, db: &DatabaseConnection) -> ApiResult<()> {
        attempts::release(db, self.name, &self.key, self.window_start_ms).await?;
        Ok(())
    }
}

fn unix_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl SharedLimit {
    pub const fn new(name: &'static str, limit: u32, window_secs: u64) -> Self {
        Self {
            name,
            limit,
            window: Duration::from_secs(window_secs),
            counted: AtomicU64::new(0),
        }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// Counts one attempt of `key` at `now` (the service clock's time) on the primary `db`
    /// and tells whether it is within the limit. The count happens first, atomically, so
    /// concurrent attempts cannot all pass a check made before any of them is counted.
    pub async fn attempt(
        &self,
        db: &DatabaseConnection,
        now: time::OffsetDateTime,
        key: &str,
    ) -> ApiResult<Attempt> {
        let now_ms = unix_ms(now);
        let window_ms = self.window_ms();
        if self
            .counted
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PURGE_EVERY)
        {
            // Passed windows carry no information; without this the table keeps one row per
            // key ever seen. A failure here must not fail the attempt.
            if let Err(e) = attempts::purge(db, self.name, now_ms.saturating_sub(window_ms)).await {
                tracing::warn!(limit = self.name, error = %e, "purging rate-limit counters failed");
            }
        }
        let counted = attempts::count(db, self.name, key, now_ms, window_ms).await?;
        let used = u64::try_from(counted.count).unwrap_or(0);
        // A concurrent attempt that read the clock a little later may have started the
        // window: it never lasts more than the window from now.
        let left_ms = counted
            .window_start_ms
            .saturating_add(window_ms)
            .saturating_sub(now_ms)
            .clamp(0, window_ms);
        // Seconds, rounded up: the window has passed when they have.
        let reset_secs = u64::try_from(left_ms).unwrap_or(0).div_ceil(1000);
        if used > u64::from(self.limit) {
            return Ok(Attempt::Limited(Decision::Limited {
                limit: self.limit,
                retry_after_secs: reset_secs.max(1),
            }));
        }
        Ok(Attempt::Allowed(Reservation {
            name: self.name,
            key: key.to_owned(),
            window_start_ms: counted.window_start_ms,
        }))
    }
}
