//! The service's notion of "now" for business rules: terms, renewals, proration, expiry.
//!
//! Use cases and sweeps read the time from [`Ctx::clock`](crate::Ctx) rather
//! than from the system, so tests can put the service on any date (Jan 31 of a leap year, a
//! day past the grace period) and step it forward. Bookkeeping timestamps (`created_at` of
//! rows, job leases) keep using the real time.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// A source of the current time, truncated to microseconds and in UTC like
/// [`licentia_persistence::now`], so values compare equal after a round trip to the database.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock: what every deployment uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        licentia_persistence::now()
    }
}

/// A clock that stands still until told otherwise; shared with the service through an `Arc`.
///
/// Kept as microseconds since the Unix epoch in an atomic, so reading it never blocks and a
/// panicking test cannot poison it.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

fn to_micros(t: OffsetDateTime) -> i64 {
    // ±292,000 years fit in i64 microseconds; `time` cannot represent more than ±9999.
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            micros: AtomicI64::new(to_micros(start)),
        })
    }

    /// A clock standing at the current system time.
    pub fn at_system_time() -> Arc<ManualClock> {
        Self::new(OffsetDateTime::now_utc())
    }

    /// Moves the clock to `t` (forwards or backwards).
    pub fn set(&self, t: OffsetDateTime) {
        self.micros.store(to_micros(t), Ordering::SeqCst);
    }

    /// Moves the clock to an RFC 3339 instant, e.g. `2024-01-31T10:00:00Z`.
    pub fn set_rfc3339(&self, text: &str) -> Result<(), time::error::Parse> {
        let t = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)?;
        self.set(t);
        Ok(())
    }

    /// Moves the clock forward by `by` (backwards when negative).
    pub fn advance(&self, by: time::Duration) {
        let delta = i64::try_from(by.whole_microseconds()).unwrap_or(i64::MAX);
        self.micros.fetch_add(delta, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let micros = i128::from(self.micros.load(Ordering::SeqCst));
        let t = OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        licentia_persistence::truncate(t)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn manual_clock_stands_still_and_steps() {
        let clock = ManualClock::new(datetime!(2024-01-31 10:00:00.123456789 +02:00));
        assert_eq!(clock.now(), datetime!(2024-01-31 08:00:00.123456 UTC));
        assert_eq!(clock.now(), clock.now());
        clock.advance(time::Duration::days(30));
        assert_eq!(clock.now(), datetime!(2024-03-01 08:00:00.123456 UTC));
        assert!(clock.set_rfc3339("2023-01-31T00:00:00Z").is_ok());
        assert_eq!(clock.now(), datetime!(2023-01-31 00:00 UTC));
        assert!(clock.set_rfc3339("yesterday").is_err());
    }

    #[test]
    fn system_clock_is_truncated_utc() {
        let now = SystemClock.now();
        assert_eq!(now.offset(), time::UtcOffset::UTC);
        assert_eq!(now.nanosecond() % 1_000, 0);
    }
}
