//! In-process GCRA limits (the `governor` crate), answered without a database query: lock-free
//! per key, constant memory per key. Each limit is a number of requests per minute per key,
//! with a burst of the whole minute's allowance.
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::Decision;

/// How many checks between two sweeps of keys that are back to a full allowance.
const PURGE_EVERY: u64 = 8_192;

/// Seconds, rounded up, never 0 for a positive duration.
fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 { secs + 1 } else { secs }
}

type Inner<K, C> = RateLimiter<K, DashMapStateStore<K>, C, StateInformationMiddleware>;

/// A limit of `per_minute` requests per minute for each key.
pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    inner: Inner<K, C>,
    clock: C,
    limit: u32,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter on the monotonic system clock.
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        Self::with_clock(per_minute, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedLimiter<K, C> {
    /// A limiter on `clock` (tests pass governor's `FakeRelativeClock`).
    pub fn with_clock(per_minute: NonZeroU32, clock: C) -> Self {
        let quota = Quota::per_minute(per_minute);
        let inner: Inner<K, C> = RateLimiter::<K, _, C, NoOpMiddleware<C::Instant>>::new(
            quota,
            DashMapStateStore::default(),
            clock.clone(),
        )
        .with_middleware::<StateInformationMiddleware>();
        Self {
            inner,
            clock,
            limit: per_minute.get(),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request of `key`.
    pub fn check(&self, key: &K) -> Decision {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            // Keys whose allowance is full again carry no information: drop them, so that a
            // flood of distinct keys cannot grow the map without bound.
            self.inner.retain_recent();
        }
        match self.inner.check_key(key) {
            Ok(snapshot) => {
                let quota = snapshot.quota();
                let remaining = snapshot.remaining_burst_capacity();
                let used = quota.burst_size().get().saturating_sub(remaining);
                let refill = quota.replenish_interval().saturating_mul(used);
                Decision::Allowed {
                    limit: self.limit,
                    remaining,
                    reset_secs: ceil_secs(refill),
                }
            }
            Err(not_until) => Decision::Limited {
                limit: self.limit,
                retry_after_secs: ceil_secs(not_until.wait_time_from(self.clock.now())).max(1),
            },
        }
    }

    /// How many keys are tracked (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limiter(
        n: u32,
    ) -> (
        KeyedLimiter<&'static str, FakeRelativeClock>,
        FakeRelativeClock,
    ) {
        let clock = FakeRelativeClock::default();
        let limiter =
            KeyedLimiter::with_clock(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN), clock.clone());
        (limiter, clock)
    }

    #[test]
    fn allows_the_minute_then_refuses_until_a_slot_frees() {
        let (limiter, clock) = limiter(600);
        for i in 0..600 {
            match limiter.check(&"k") {
                Decision::Allowed {
                    remaining, limit, ..
                } => {
                    assert_eq!(limit, 600);
                    assert_eq!(remaining, 599 - i);
                }
                other => panic!("request {i} refused: {other:?}"),
            }
        }
        // One slot comes back every 100 ms.
        assert_eq!(
            limiter.check(&"k"),
            Decision::Limited {
                limit: 600,
                retry_after_secs: 1
            }
        );
        // Another key has its own allowance.
        assert!(matches!(limiter.check(&"other"), Decision::Allowed { .. }));
        clock.advance(Duration::from_millis(100));
        assert!(matches!(
            limiter.check(&"k"),
            Decision::Allowed { remaining: 0, .. }
        ));
        assert!(matches!(limiter.check(&"k"), Decision::Limited { .. }));
    }

    #[test]
    fn reset_counts_until_the_allowance_is_full() {
        let (limiter, clock) = limiter(60);
        assert_eq!(
            limiter.check(&"k"),
            Decision::Allowed {
                limit: 60,
                remaining: 59,
                reset_secs: 1
            }
        );
        for _ in 0..59 {
            limiter.check(&"k");
        }
        assert_eq!(
            limiter.check(&"k"),
            Decision::Limited {
                limit: 60,
                retry_after_secs: 1
            }
        );
        clock.advance(Duration::from_secs(30));
        assert_eq!(
            limiter.check(&"k"),
            Decision::Allowed {
                limit: 60,
                remaining: 29,
                reset_secs: 31
            }
        );
    }

    #[test]
    fn slow_refills_give_longer_retry_after() {
        let (limiter, _clock) = limiter(1);
        assert!(matches!(limiter.check(&"k"), Decision::Allowed { .. }));
        assert_eq!(
            limiter.check(&"k"),
            Decision::Limited {
                limit: 1,
                retry_after_secs: 60
            }
        );
    }

    #[test]
    fn idle_keys_are_purged() {
        let (limiter, clock) = limiter(10);
        for i in 0..100u32 {
            let key: &'static str = Box::leak(i.to_string().into_boxed_str());
            limiter.check(&key);
        }
        assert_eq!(limiter.tracked_keys(), 100);
        clock.advance(Duration::from_secs(61));
        limiter.inner.retain_recent();
        assert_eq!(limiter.tracked_keys(), 0);
    }
}
