//! In-process sliding-window limits, answered without touching the database.
//!
//! Each process keeps its own windows, so with several processes a client may get up to
//! N × the limit; the limits are floors against abuse, not quotas.
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `limit` events per `window` for each key.
#[derive(Debug)]
pub struct Window<K> {
    limit: usize,
    window: Duration,
    events: Mutex<HashMap<K, VecDeque<Instant>>>,
}

/// The outcome of a check: whether the event is allowed, and what to tell the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: usize,
    pub remaining: usize,
    /// Seconds until a slot frees up (at least 1 when refused).
    pub reset_secs: u64,
}

impl<K: Eq + Hash + Clone> Window<K> {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit,
            window,
            events: Mutex::new(HashMap::new()),
        }
    }

    fn decide(&self, key: &K, now: Instant, record: bool, only_peek: bool) -> Decision {
        let mut map = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget idle keys now and then so the map cannot grow without bound.
        if map.len() > 10_000 {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let queue = map.entry(key.clone()).or_default();
        while queue
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            queue.pop_front();
        }
        let full = queue.len() >= self.limit;
        if !full && record && !only_peek {
            queue.push_back(now);
        }
        let reset = queue
            .front()
            .map(|t| self.window.saturating_sub(now.duration_since(*t)))
            .unwrap_or_default();
        Decision {
            allowed: !full,
            limit: self.limit,
            remaining: self.limit.saturating_sub(queue.len()),
            reset_secs: reset.as_secs().max(u64::from(full)),
        }
    }

    /// Counts one event for `key` if the window has room.
    pub fn hit(&self, key: &K) -> Decision {
        self.decide(key, Instant::now(), true, false)
    }

    /// Whether `key` is over its limit, without counting anything.
    pub fn peek(&self, key: &K) -> Decision {
        self.decide(key, Instant::now(), false, true)
    }
}

/// Every limit of the service; disabled entirely by `LICENTIA_RATE_LIMIT=off`.
#[derive(Debug)]
pub struct Limits {
    pub enabled: bool,
    /// Failed logins per (e-mail, client IP): 5 a minute.
    pub login_failures: Window<(String, String)>,
    /// Refreshes per token family: 30 a minute.
    pub refresh: Window<uuid::Uuid>,
}

impl Limits {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            login_failures: Window::new(5, Duration::from_secs(60)),
            refresh: Window::new(30, Duration::from_secs(60)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_refuses_past_the_limit_and_recovers() {
        let w = Window::new(2, Duration::from_millis(50));
        assert!(w.hit(&"k").allowed);
        assert!(w.hit(&"k").allowed);
        let refused = w.hit(&"k");
        assert!(!refused.allowed && refused.remaining == 0 && refused.reset_secs >= 1);
        assert!(w.hit(&"other").allowed, "keys are independent");
        assert!(!w.peek(&"k").allowed);
        std::thread::sleep(Duration::from_millis(60));
        assert!(w.hit(&"k").allowed);
    }
}
