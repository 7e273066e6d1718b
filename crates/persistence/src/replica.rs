//! Reads from a PostgreSQL streaming replica (CONTRACT §10 "Read replica").
//!
//! A probe ([`Replica::probe`], run every second by the server) asks the primary for its WAL
//! position and the replica for the position it has replayed. The replica's lag is how long
//! ago the primary was first seen past the replica's position (positions compared, so an idle
//! primary is no lag). Reads that may go to the replica go there while it is reachable and its
//! lag is within bounds; to the primary otherwise — except while the primary is unreachable,
//! when the replica serves whatever its lag.
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// The replica's connection and what the last probe found.
#[derive(Debug)]
pub struct Replica {
    pub(crate) conn: DatabaseConnection,
    max_lag: Duration,
    primary_up: AtomicBool,
    replica_up: AtomicBool,
    within_lag: AtomicBool,
    /// The primary's WAL positions at recent probes, oldest first.
    samples: Mutex<VecDeque<(Instant, i64)>>,
}

/// Which servers can serve reads now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadHealth {
    pub primary: bool,
    /// `None` without a replica.
    pub replica: Option<bool>,
}

async fn position(conn: &DatabaseConnection, sql: &str) -> Option<i64> {
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .ok()??;
    row.try_get::<Option<i64>>("", "lsn").ok().flatten()
}

impl Replica {
    pub(crate) fn new(conn: DatabaseConnection, max_lag: Duration) -> Self {
        Self {
            conn,
            max_lag,
            primary_up: AtomicBool::new(true),
            replica_up: AtomicBool::new(true),
            within_lag: AtomicBool::new(false),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether reads go to the replica now.
    pub(crate) fn serves(&self) -> bool {
        let replica = self.replica_up.load(Ordering::Relaxed);
        replica
            && (self.within_lag.load(Ordering::Relaxed) || !self.primary_up.load(Ordering::Relaxed))
    }

    pub(crate) fn health(&self) -> ReadHealth {
        ReadHealth {
            primary: self.primary_up.load(Ordering::Relaxed),
            replica: Some(self.replica_up.load(Ordering::Relaxed)),
        }
    }

    /// One probe of both servers.
    pub(crate) async fn probe(&self, primary: &DatabaseConnection) {
        let now = Instant::now();
        let p = position(
            primary,
            "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS lsn",
        )
        .await;
        let r = position(
            &self.conn,
            "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS lsn",
        )
        .await;
        self.primary_up.store(p.is_some(), Ordering::Relaxed);
        self.replica_up.store(r.is_some(), Ordering::Relaxed);
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = p {
            samples.push_back((now, p));
        }
        // Keep a little more than the bound: older samples cannot change the verdict.
        let keep = self.max_lag * 2 + Duration::from_secs(2);
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > keep)
        {
            samples.pop_front();
        }
        let within = match r {
            None => false,
            Some(r) => lag(&samples, r, now).is_some_and(|lag| lag <= self.max_lag),
        };
        self.within_lag.store(within, Ordering::Relaxed);
    }
}

/// How far behind a replica at position `replayed` is: zero when it has replayed the primary's
/// latest position; otherwise how long ago the primary was first seen past it. `None` when no
/// sample tells (no primary position known, or the primary was past it in every sample kept).
fn lag(samples: &VecDeque<(Instant, i64)>, replayed: i64, now: Instant) -> Option<Duration> {
    let (_, latest) = samples.back()?;
    if replayed >= *latest {
        return Some(Duration::ZERO);
    }
    let mut first_past = None;
    for (at, lsn) in samples.iter().rev() {
        if *lsn > replayed {
            first_past = Some(*at);
        } else {
            break;
        }
    }
    let first_past = first_past?;
    // The primary was past it in every sample kept: the lag is longer than we can tell.
    if samples.front().is_some_and(|(_, lsn)| *lsn > replayed) {
        return None;
    }
    Some(now.duration_since(first_past))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_measured_from_when_the_primary_passed_the_replica() {
        let t0 = Instant::now();
        let s = |d: u64| t0 + Duration::from_secs(d);
        let samples: VecDeque<_> = [(s(0), 100), (s(1), 100), (s(2), 150), (s(3), 200)].into();
        // Caught up: no lag, however old the samples.
        assert_eq!(lag(&samples, 200, s(10)), Some(Duration::ZERO));
        // The primary first passed 120 at second 2.
        assert_eq!(lag(&samples, 120, s(5)), Some(Duration::from_secs(3)));
        // An idle primary: the same position for a long time is no lag.
        let idle: VecDeque<_> = [(s(0), 100), (s(30), 100)].into();
        assert_eq!(lag(&idle, 100, s(31)), Some(Duration::ZERO));
        // Behind every sample: unknown, so not within any bound.
        assert_eq!(lag(&samples, 50, s(5)), None);
        assert_eq!(lag(&VecDeque::new(), 50, s(5)), None);
    }
}
