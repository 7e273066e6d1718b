//! What the list and every API-key request would otherwise read per request: the API key
//! (with its account) by key hash, and the product catalog. Both serve from memory only while
//! this process hears the database's invalidation notices
//! ([`licentia_persistence::notices`], PostgreSQL): a revoked key or a changed product is
//! dropped when its notice arrives, milliseconds after the change commits, in every process;
//! the process that made the change drops it before it answers. While the feed is down (and
//! always on SQLite, which has no notices) nothing is served from here.
//!
//! A read that raced with a change cannot put a stale entry back: every notice advances a
//! generation, and an entry read from the database is kept only if the generation did not move
//! between the read and the insert. An entry also expires after [`MAX_AGE`] whatever happens,
//! which bounds the damage of a notice lost without the connection noticing.
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use licentia_domain::account::Account;
use licentia_domain::ids::ProductId;
use licentia_domain::product::Product;
use licentia_persistence::notices::Notice;
use licentia_persistence::repo::api_keys::ApiKey;

/// The longest an entry is served from memory.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Keys held at most; a full map starts over (a flood of distinct keys cannot grow memory).
const MAX_KEYS: usize = 20_000;

#[derive(Clone, Debug)]
struct KeyEntry {
    key: ApiKey,
    account: Account,
    at: Instant,
}

/// The caches of one process.
#[derive(Debug, Default)]
pub struct Caches {
    live: AtomicBool,
    generation: AtomicU64,
    keys: RwLock<HashMap<String, KeyEntry>>,
    products: RwLock<BTreeMap<ProductId, (Product, Instant)>>,
}

/// Where a caller is between reading the database and keeping what it read.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(Option<u64>);

impl Caches {
    /// Applies a notice of the invalidation feed.
    pub fn apply(&self, notice: &Notice) {
        match notice {
            Notice::ApiKey(hash) => {
                self.bump();
                if let Ok(mut keys) = self.keys.write() {
                    keys.remove(hash);
                }
            }
            Notice::Products => {
                self.bump();
                if let Ok(mut products) = self.products.write() {
                    products.clear();
                }
            }
            // A notice this version does not know: everything may have changed.
            Notice::Other(_) => {
                self.bump();
                self.clear();
            }
            Notice::Live | Notice::Lost => {
                self.live.store(false, Ordering::SeqCst);
                self.bump();
                self.clear();
                if *notice == Notice::Live {
                    self.live.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// Whether entries are served now.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn clear(&self) {
        if let Ok(mut keys) = self.keys.write() {
            keys.clear();
        }
        if let Ok(mut products) = self.products.write() {
            products.clear();
        }
    }

    /// Taken before reading what may be kept: [`Caches::keep_key`] and
    /// [`Caches::keep_products`] keep it only if no notice arrived in between.
    pub fn ticket(&self) -> Ticket {
        Ticket(
            self.is_live()
                .then(|| self.generation.load(Ordering::SeqCst)),
        )
    }

    fn current(&self, ticket: Ticket) -> bool {
        ticket.0 == Some(self.generation.load(Ordering::SeqCst)) && self.is_live()
    }

    /// The live key with this hash and its account, when cached and fresh.
    pub fn key(&self, hash: &str) -> Option<(ApiKey, Account)> {
        if !self.is_live() {
            return None;
        }
        let keys = self.keys.read().ok()?;
        let e = keys.get(hash)?;
        (e.at.elapsed() < MAX_AGE).then(|| (e.key.clone(), e.account.clone()))
    }

    /// Keeps a key read from the database under `ticket`.
    pub fn keep_key(&self, ticket: Ticket, hash: &str, key: &ApiKey, account: &Account) {
        let Ok(mut keys) = self.keys.write() else {
            return;
        };
        // Checked under the lock: a notice removes under the same lock after bumping.
        if !self.current(ticket) {
            return;
        }
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(
            hash.to_owned(),
            KeyEntry {
                key: key.clone(),
                account: account.clone(),
                at: Instant::now(),
            },
        );
    }

    /// Keeps keys read from the database under `ticket` (see [`Caches::keep_key`]), up to
    /// the cache's bound.
    pub fn keep_keys(&self, ticket: Ticket, read: Vec<(String, ApiKey, Account)>) {
        let Ok(mut keys) = self.keys.write() else {
            return;
        };
        if !self.current(ticket) {
            return;
        }
        let now = Instant::now();
        for (hash, key, account) in read {
            if keys.len() >= MAX_KEYS {
                break;
            }
            keys.insert(
                hash,
                KeyEntry {
                    key,
                    account,
                    at: now,
                },
            );
        }
    }

    /// Loads the live API keys (at most the cache's bound) once the invalidation feed is
    /// live, so that the first request of each partner after a start does not wait on the
    /// database: the same read as a miss, for every key at once, kept under the same ticket
    /// rule (a notice that arrives meanwhile discards the whole load).
    pub async fn load_keys(&self, db: &licentia_persistence::sea_orm::DatabaseConnection) {
        let ticket = self.ticket();
        if ticket.0.is_none() {
            return;
        }
        let now = licentia_persistence::now();
        match licentia_persistence::repo::api_keys::live_with_accounts(db, now, MAX_KEYS as u64)
            .await
        {
            Ok(read) => self.keep_keys(ticket, read),
            Err(e) => tracing::warn!(error = %e, "the API key cache was not loaded ahead"),
        }
    }

    /// Records a use written to the database, so the next request does not write it again.
    pub fn touched(&self, hash: &str, at: time::OffsetDateTime) {
        if let Ok(mut keys) = self.keys.write()
            && let Some(e) = keys.get_mut(hash)
        {
            e.key.last_used_at = Some(at);
        }
    }

    /// Forgets every key after this process changed one (its own notice follows).
    pub fn forget_keys(&self) {
        self.bump();
        if let Ok(mut keys) = self.keys.write() {
            keys.clear();
        }
    }

    /// Forgets the catalog after this process changed it (its own notice follows).
    pub fn forget_products(&self) {
        self.apply(&Notice::Products);
    }

    /// The cached products among `ids` and the ids that were not there.
    pub fn products(&self, ids: &[ProductId]) -> (Vec<Product>, Vec<ProductId>) {
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        let products = if self.is_live() {
            self.products.read().ok()
        } else {
            None
        };
        for id in ids {
            match products.as_ref().and_then(|p| p.get(id)) {
                Some((p, at)) if at.elapsed() < MAX_AGE => found.push(p.clone()),
                _ => missing.push(*id),
            }
        }
        (found, missing)
    }

    /// Keeps products read from the database under `ticket`.
    pub fn keep_products(&self, ticket: Ticket, read: &[Product]) {
        let Ok(mut products) = self.products.write() else {
            return;
        };
        if !self.current(ticket) {
            return;
        }
        let now = Instant::now();
        for p in read {
            products.insert(p.id, (p.clone(), now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_or_served_before_the_feed_is_live() {
        let c = Caches::default();
        let t = c.ticket();
        c.keep_products(t, &[]);
        assert!(!c.is_live());
        c.apply(&Notice::Live);
        assert!(c.is_live());
        // A ticket taken while the feed was down keeps nothing afterwards.
        assert!(!c.current(t));
        assert!(c.current(c.ticket()));
        c.apply(&Notice::Lost);
        assert!(!c.is_live());
        assert!(c.key("x").is_none());
    }

    #[test]
    fn a_notice_between_read_and_keep_discards_the_read() {
        let c = Caches::default();
        c.apply(&Notice::Live);
        let t = c.ticket();
        c.apply(&Notice::ApiKey("other".into()));
        assert!(!c.current(t));
        c.apply(&Notice::Products);
        let t2 = c.ticket();
        assert!(c.current(t2));
        // An unknown notice empties the caches without turning them off.
        c.apply(&Notice::Other("something new".into()));
        assert!(c.is_live() && !c.current(t2));
    }
}
