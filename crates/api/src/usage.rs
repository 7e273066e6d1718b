//! Usage of licenses (CONTRACT §11): when the licensed software last validated each license,
//! when each registered machine was last seen and from which address.
//!
//! Validation is the hot path and stays read-only: it only records into this buffer — one
//! short lock of one of [`SHARDS`] maps, keeping the latest instant per license and per
//! registration — and a background task ([`spawn_flusher`]) writes what accumulated in
//! batches every `LICENTIA_USAGE_FLUSH_SECS` (default 60) — sooner when [`FLUSH_AT`] entries
//! are waiting, which bounds the buffer's memory under a flood of distinct keys — and once more
//! on a graceful stop.
//! Each process flushes its own buffer; the writes only move timestamps forward, so processes
//! flushing the same licenses agree on the latest. A crash loses at most one interval of
//! usage; a failed flush keeps its entries for the next one.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use licentia_domain::ids::{LicenseId, RegistrationId};
use licentia_persistence::repo::usage::{self, Seen};
use licentia_persistence::{Db, PersistenceError};
use time::OffsetDateTime;
use uuid::Uuid;

/// Independent maps, so that concurrent validations of different licenses rarely wait on
/// each other.
pub const SHARDS: usize = 16;

/// Entries (licenses and machines) that make the flusher write before its interval is up: a
/// bound on the buffer's memory (a few MiB), not a pace. Each flush stalls the validations
/// running meanwhile for a moment, whatever its size, so under load a few large flushes cost
/// them less than many small ones (docs/performance.md, the seventh round: flushing at 5,000,
/// 20,000 or never, validate's p99 was 19–48, 13–27 and 8–10 ms).
pub const FLUSH_AT: usize = 100_000;

/// The most entries the buffer holds (about 10 MiB). When validations of distinct licenses
/// come faster than the database takes their usage, a license or machine not already waiting
/// is not recorded (counted in `licentia_usage_dropped_total`) until the buffer drains:
/// validation never waits for usage, and memory stays bounded.
pub const MAX_WAITING: usize = 250_000;

#[derive(Debug, Default)]
struct Shard {
    /// License id → latest validation.
    validations: HashMap<Uuid, OffsetDateTime>,
    /// Registration id → latest sighting and its address.
    sightings: HashMap<Uuid, (OffsetDateTime, Option<IpAddr>)>,
}

impl Shard {
    /// Records a validation; true when the license was not waiting yet.
    fn validated(&mut self, license: Uuid, at: OffsetDateTime) -> bool {
        match self.validations.entry(license) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let t = e.get_mut();
                *t = (*t).max(at);
                false
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(at);
                true
            }
        }
    }

    /// Records a sighting; true when the machine was not waiting yet.
    fn seen(&mut self, registration: Uuid, at: OffsetDateTime, ip: Option<IpAddr>) -> bool {
        match self.sightings.entry(registration) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let (t, last_ip) = e.get_mut();
                if at >= *t {
                    *t = at;
                    *last_ip = ip.or(*last_ip);
                }
                false
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((at, ip));
                true
            }
        }
    }
}

/// What one flush wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Licenses whose `last_validated_at` moved.
    pub licenses: u64,
    /// Registrations whose `last_seen_at` moved.
    pub registrations: u64,
}

/// The process's usage not yet written.
#[derive(Debug)]
pub struct UsageBuffer {
    shards: Vec<Mutex<Shard>>,
    /// About how many entries are waiting (exact when nothing runs concurrently).
    waiting: AtomicUsize,
    /// Entries left out since the last flush because the buffer was full.
    dropped: AtomicU64,
    /// One flush at a time: the last one on a stop waits for a periodic one in flight (and
    /// gets back what that one could not write).
    flushing: tokio::sync::Mutex<()>,
    /// Set on a graceful stop: the periodic flusher ends.
    closed: std::sync::atomic::AtomicBool,
}

impl Default for UsageBuffer {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            waiting: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl UsageBuffer {
    fn shard(&self, license: Uuid) -> MutexGuard<'_, Shard> {
        // UUIDv7 ends in random bits.
        let index = usize::from(license.as_bytes()[15]) % SHARDS;
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a validation of `license` at `at` by a request from `ip`, naming the machine
    /// `registration` when its fingerprint is registered. Memory only; never waits on I/O.
    pub fn record(
        &self,
        license: LicenseId,
        registration: Option<RegistrationId>,
        at: OffsetDateTime,
        ip: Option<IpAddr>,
    ) {
        let full = self.waiting.load(Ordering::Relaxed) >= MAX_WAITING;
        let mut new = 0;
        let mut dropped = 0;
        {
            let mut shard = self.shard(license.as_uuid());
            if !full || shard.validations.contains_key(&license.as_uuid()) {
                new += usize::from(shard.validated(license.as_uuid(), at));
            } else {
                dropped += 1;
            }
            if let Some(registration) = registration {
                if !full || shard.sightings.contains_key(&registration.as_uuid()) {
                    new += usize::from(shard.seen(registration.as_uuid(), at, ip));
                } else {
                    dropped += 1;
                }
            }
        }
        if new > 0 {
            self.waiting.fetch_add(new, Ordering::Relaxed);
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Takes the count of entries left out because the buffer was full.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// About how many entries wait for the next flush, without taking any lock.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Ends the periodic flusher and waits for a flush in flight, so that what it could not
    /// write is back in the buffer; a graceful stop then writes the rest with [`Self::flush`].
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        drop(self.flushing.lock().await);
    }

    /// Licenses and registrations waiting for the next flush.
    pub fn pending(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                s.validations.len() + s.sightings.len()
            })
            .sum()
    }

    /// Takes everything recorded so far, leaving the buffer empty.
    fn take(&self) -> (Vec<(Uuid, OffsetDateTime)>, Vec<Seen>) {
        self.waiting.store(0, Ordering::Relaxed);
        let mut validations = Vec::new();
        // Restored sightings may sit in another shard than new ones of the same machine.
        let mut merged = Shard::default();
        for shard in &self.shards {
            let taken = {
                let mut shard = shard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // The next interval likely needs as much room: keep it, rather than growing
                // new maps from nothing (and fragmenting the heap) every flush.
                let (validations, sightings) = (shard.validations.len(), shard.sightings.len());
                Shard {
                    validations: std::mem::replace(
                        &mut shard.validations,
                        HashMap::with_capacity(validations),
                    ),
                    sightings: std::mem::replace(
                        &mut shard.sightings,
                        HashMap::with_capacity(sightings),
                    ),
                }
            };
            validations.extend(taken.validations);
            for (registration, (at, ip)) in taken.sightings {
                merged.seen(registration, at, ip);
            }
        }
        let sightings = merged
            .sightings
            .into_iter()
            .map(|(registration, (at, ip))| Seen {
                registration,
                at,
                ip,
            })
            .collect();
        (validations, sightings)
    }

    /// Puts back what a failed flush could not write (keeping anything newer recorded since).
    fn restore(&self, validations: Vec<(Uuid, OffsetDateTime)>, sightings: Vec<Seen>) {
        let mut new = 0;
        for (license, at) in validations {
            new += usize::from(self.shard(license).validated(license, at));
        }
        // A sighting's shard is its license's; any shard keeps it just as well until written.
        for (i, seen) in sightings.into_iter().enumerate() {
            new += usize::from(
                self.shards[i % SHARDS]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .seen(seen.registration, seen.at, seen.ip),
            );
        }
        self.waiting.fetch_add(new, Ordering::Relaxed);
    }

    /// Writes everything recorded so far to the primary database. On failure nothing is lost:
    /// the entries go back into the buffer for the next flush.
    pub async fn flush(&self, db: &Db) -> Result<Flushed, PersistenceError> {
        let _one = self.flushing.lock().await;
        let (validations, sightings) = self.take();
        if validations.is_empty() && sightings.is_empty() {
            return Ok(Flushed::default());
        }
        let written = async {
            Ok::<_, PersistenceError>(Flushed {
                licenses: usage::write_validations(db.conn(), &validations).await?,
                registrations: usage::write_sightings(db.conn(), &sightings).await?,
            })
        }
        .await;
        match written {
            Ok(flushed) => Ok(flushed),
            Err(e) => {
                // Writes only move forward: rewriting the part that did commit is harmless.
                self.restore(validations, sightings);
                Err(e)
            }
        }
    }
}

/// Flushes `usage` every `every`, or as soon as [`FLUSH_AT`] entries wait (checked every
/// second), until the process ends (see [`UsageBuffer::flush`]).
pub fn spawn_flusher(
    usage: Arc<UsageBuffer>,
    db: Db,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let check = every.min(Duration::from_secs(1));
        let mut tick = tokio::time::interval(check);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once; nothing is buffered yet.
        tick.tick().await;
        let mut last = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            if usage.closed.load(Ordering::Relaxed) {
                return;
            }
            if last.elapsed() < every && usage.waiting() < FLUSH_AT {
                continue;
            }
            last = tokio::time::Instant::now();
            ::metrics::gauge!("licentia_usage_waiting").set(usage.waiting() as f64);
            let dropped = usage.take_dropped();
            if dropped > 0 {
                ::metrics::counter!("licentia_usage_dropped_total").increment(dropped);
                tracing::warn!(
                    dropped,
                    "usage buffer full: validations of licenses not already waiting were not recorded"
                );
            }
            match usage.flush(&db).await {
                Ok(flushed) => tracing::debug!(
                    licenses = flushed.licenses,
                    registrations = flushed.registrations,
                    elapsed_ms = last.elapsed().as_millis() as u64,
                    "usage written"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    waiting = usage.waiting(),
                    "usage flush failed; retrying at the next interval"
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn keeps_the_latest_instant_and_its_address() {
        let buffer = UsageBuffer::default();
        let license = LicenseId::new();
        let machine = RegistrationId::new();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        buffer.record(license, Some(machine), at(10), Some(a));
        buffer.record(license, Some(machine), at(5), Some(b));
        buffer.record(license, None, at(7), None);
        assert_eq!(buffer.pending(), 2);
        assert_eq!(buffer.waiting(), 2);
        let (validations, sightings) = buffer.take();
        assert_eq!(validations, vec![(license.as_uuid(), at(10))]);
        assert_eq!(
            sightings,
            vec![Seen {
                registration: machine.as_uuid(),
                at: at(10),
                ip: Some(a)
            }]
        );
        assert_eq!(buffer.pending(), 0);
        assert_eq!(buffer.waiting(), 0);
    }

    #[test]
    fn a_full_buffer_drops_new_keys_only() {
        let buffer = UsageBuffer::default();
        let first = LicenseId::new();
        buffer.record(first, None, at(1), None);
        for _ in 1..MAX_WAITING {
            buffer.record(LicenseId::new(), None, at(1), None);
        }
        assert_eq!(buffer.waiting(), MAX_WAITING);
        buffer.record(LicenseId::new(), Some(RegistrationId::new()), at(2), None);
        assert_eq!(buffer.take_dropped(), 2);
        // A license already waiting still moves forward.
        buffer.record(first, None, at(3), None);
        assert_eq!(buffer.take_dropped(), 0);
        let (validations, _) = buffer.take();
        assert_eq!(validations.len(), MAX_WAITING);
        assert!(validations.contains(&(first.as_uuid(), at(3))));
    }

    #[test]
    fn restore_keeps_what_is_newer() {
        let buffer = UsageBuffer::default();
        let license = LicenseId::new();
        buffer.record(license, None, at(1), None);
        let (validations, sightings) = buffer.take();
        buffer.record(license, None, at(20), None);
        buffer.restore(validations, sightings);
        let (validations, _) = buffer.take();
        assert_eq!(validations, vec![(license.as_uuid(), at(20))]);
    }
}
