//! License list pages kept in memory and checked against the database on every request
//! (PostgreSQL).
//!
//! A page's answer is a function of its rows and of the products they name. A kept page
//! holds, with its answer, the id and row version of each row it was made of
//! ([`licentia_persistence::repo::licenses::RowVersion`]: a new one with every write of the
//! row, by whatever process) and the code and name of each product. A request for the same
//! page asks the database for the ids and versions the page's statement finds now — the same
//! statement, narrowed to two columns — and takes the kept answer only when they are the same
//! rows in the same order and the products read the same; anything else reads the page in
//! full. So a kept page is never older than the request's own read: a license changed,
//! added, removed, moved to another partner or validated a moment ago shows exactly as
//! without it, in every process. What it saves is the wide read and the answer's assembly.
//!
//! The key is everything the answer depends on besides rows and products: the caller's
//! scope, sort, filters, page size and cursor. Answers are kept LZ4-compressed (a page of 50
//! licenses, about 38 KB of JSON, keeps in about 6 KB: a thousand partners' first pages in
//! a few MiB). Memory is bounded by the weight of what is kept (`LICENTIA_PAGE_CACHE_MB`; 0
//! turns it off); a page is checked at most [`MAX_AGE`] after it was read, then read again.
//! Requests for a page nobody keeps yet wait for the first of them to read it, and then check
//! what it kept like any other (a thousand partners' first pages after a start are read a
//! thousand times, not once per request that arrived before the first read ended).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use licentia_domain::ids::ProductId;
use licentia_domain::product::Product;
use licentia_persistence::repo::licenses::RowVersion;
use quick_cache::sync::{Cache, DefaultLifecycle, PlaceholderGuard};
use quick_cache::{DefaultHashBuilder, Weighter};

/// The longest a kept page is checked and served before it is read in full again.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// Answers larger than this (compressed) are not kept; a page of the largest size, 200
/// licenses, is about 150 KB of JSON before.
const MAX_ANSWER: usize = 256 * 1024;

/// A page's answer and what it was made of.
#[derive(Debug)]
pub struct Kept {
    /// The rows read for the page (one beyond it when there is a next page), in order.
    pub rows: Vec<RowVersion>,
    /// Each product the answer names, with the code and name it shows.
    pub products: Vec<(ProductId, String, String)>,
    /// The JSON answer, compressed.
    body: Vec<u8>,
    at: Instant,
}

impl Kept {
    pub fn new(rows: Vec<RowVersion>, products: &[&Product], body: &[u8]) -> Self {
        Self {
            rows,
            products: products
                .iter()
                .map(|p| (p.id, p.code.clone(), p.name.clone()))
                .collect(),
            body: lz4_flex::block::compress_prepend_size(body),
            at: Instant::now(),
        }
    }

    /// Whether `catalog` shows every product of the page as the answer does.
    pub fn products_match(&self, catalog: &std::collections::BTreeMap<ProductId, Product>) -> bool {
        self.products.iter().all(|(id, code, name)| {
            catalog
                .get(id)
                .is_some_and(|p| &p.code == code && &p.name == name)
        })
    }

    /// The JSON answer; `None` if it does not decompress (then the page is read again).
    pub fn answer(&self) -> Option<Bytes> {
        lz4_flex::block::decompress_size_prepended(&self.body)
            .ok()
            .map(Bytes::from)
    }

    pub fn product_ids(&self) -> Vec<ProductId> {
        self.products.iter().map(|(id, _, _)| *id).collect()
    }
}

#[derive(Clone)]
struct Weight;

impl Weighter<String, Arc<Kept>> for Weight {
    fn weight(&self, key: &String, kept: &Arc<Kept>) -> u64 {
        let products: usize = kept
            .products
            .iter()
            .map(|(_, c, n)| 64 + c.len() + n.len())
            .sum();
        (key.len() + kept.body.len() + kept.rows.len() * 24 + products + 128) as u64
    }
}

type Guard<'a> = PlaceholderGuard<
    'a,
    String,
    Arc<Kept>,
    Weight,
    DefaultHashBuilder,
    DefaultLifecycle<String, Arc<Kept>>,
>;

/// What [`Pages::lookup`] found.
pub enum Lookup<'a> {
    /// A kept page, to check before it is answered.
    Kept(Arc<Kept>),
    /// Nothing kept: read the page and [`Slot::fill`] it; requests for the same page wait
    /// until then (or until the slot is dropped unfilled: then the next of them reads).
    Empty(Slot<'a>),
    /// Pages are not kept.
    Off,
}

/// The place of a page being read (see [`Lookup::Empty`]).
pub struct Slot<'a>(Guard<'a>);

impl Slot<'_> {
    /// Keeps the page read; an answer too large to keep leaves the slot empty.
    pub fn fill(self, kept: Kept) {
        if kept.body.len() <= MAX_ANSWER {
            // Err only when the entry was replaced meanwhile: nothing to do then.
            let _ = self.0.insert(Arc::new(kept));
        }
    }
}

/// The kept pages of one process.
pub struct Pages {
    cache: Option<Cache<String, Arc<Kept>, Weight>>,
    hits: AtomicU64,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("on", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl Pages {
    /// Pages weighing up to `mib` MiB together; none when 0.
    pub fn new(mib: u64) -> Self {
        let bytes = mib.saturating_mul(1024 * 1024);
        Self {
            // About 8 KiB a page of 50, with its versions and key.
            cache: (bytes > 0)
                .then(|| Cache::with_weighter((bytes / 8_192).max(16) as usize, bytes, Weight)),
            hits: AtomicU64::new(0),
        }
    }

    pub fn is_on(&self) -> bool {
        self.cache.is_some()
    }

    /// The page kept under `key`, or the slot to read it into (waiting while another request
    /// reads it). A page older than [`MAX_AGE`] is dropped and reported empty.
    pub async fn lookup(&self, key: &str) -> Lookup<'_> {
        let Some(cache) = &self.cache else {
            return Lookup::Off;
        };
        loop {
            match cache.get_value_or_guard_async(key).await {
                Ok(kept) if kept.at.elapsed() < MAX_AGE => return Lookup::Kept(kept),
                Ok(old) => {
                    cache.remove_if(key, |k| Arc::ptr_eq(k, &old));
                }
                Err(guard) => return Lookup::Empty(Slot(guard)),
            }
        }
    }

    /// Keeps a page read just now (replacing what was kept).
    pub fn keep(&self, key: String, kept: Kept) {
        if let Some(cache) = &self.cache
            && kept.body.len() <= MAX_ANSWER
        {
            cache.insert(key, Arc::new(kept));
        }
    }

    /// Counts how a request for a page went: `hit` (the kept answer), `changed` (kept, but
    /// its rows or products had changed: read in full) or `miss` (nothing kept: read in full).
    pub fn count(&self, outcome: &'static str) {
        if outcome == "hit" {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        ::metrics::counter!("licentia_list_pages_total", "outcome" => outcome).increment(1);
    }

    /// How many pages were answered from memory since the start.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(len: usize) -> Kept {
        // Random bytes: they do not compress.
        let body: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
        Kept::new(vec![(uuid::Uuid::nil(), 7)], &[], &body)
    }

    #[tokio::test]
    async fn the_answer_comes_back_as_it_was_kept() {
        let pages = Pages::new(1);
        let body = br#"{"items":[{"id":"a","name":"web-1.example.org"}],"next_cursor":null}"#;
        pages.keep(
            "k".into(),
            Kept::new(vec![(uuid::Uuid::nil(), 1)], &[], body),
        );
        let Lookup::Kept(kept) = pages.lookup("k").await else {
            panic!("kept");
        };
        assert_eq!(kept.answer().as_deref(), Some(&body[..]));
        assert_eq!(kept.rows, vec![(uuid::Uuid::nil(), 1)]);
    }

    #[tokio::test]
    async fn a_page_being_read_is_read_once() {
        let pages = Pages::new(1);
        let Lookup::Empty(slot) = pages.lookup("k").await else {
            panic!("nothing is kept yet");
        };
        // A second request for the page waits while the first reads it...
        let second = pages.lookup("k");
        tokio::pin!(second);
        assert!(
            futures_util::FutureExt::now_or_never(second.as_mut()).is_none(),
            "the second request waits for the first read"
        );
        // ...and gets what the first kept, to check like any kept page.
        slot.fill(kept(10));
        match second.await {
            Lookup::Kept(k) => assert_eq!(k.rows, vec![(uuid::Uuid::nil(), 7)]),
            _ => panic!("the second request gets the page the first read"),
        }
        // A slot dropped unfilled (the read failed) hands the read to the next request.
        let Lookup::Empty(slot) = pages.lookup("other").await else {
            panic!("nothing is kept under another key");
        };
        drop(slot);
        assert!(matches!(pages.lookup("other").await, Lookup::Empty(_)));
    }

    #[tokio::test]
    async fn nothing_is_kept_when_off() {
        let pages = Pages::new(0);
        assert!(!pages.is_on());
        pages.keep("k".into(), kept(10));
        assert!(matches!(pages.lookup("k").await, Lookup::Off));
    }

    #[tokio::test]
    async fn the_weight_of_the_answers_is_bounded() {
        let pages = Pages::new(1);
        for i in 0..100 {
            pages.keep(format!("k{i}"), kept(100 * 1024));
        }
        let cache = pages.cache.as_ref().expect("on");
        assert!(cache.weight() <= 1024 * 1024, "{}", cache.weight());
        assert!(cache.len() < 100);
        // An answer above the bound is not kept at all.
        pages.keep("big".into(), kept(MAX_ANSWER + 1));
        assert!(matches!(pages.lookup("big").await, Lookup::Empty(_)));
    }
}
