//! The hot-path pool keeps one set of connections per thread: a request only ever uses a
//! connection its own thread opened (so its socket is driven by that thread's runtime), and
//! a thread holds at most its share, or the number it is configured with. Needs PostgreSQL
//! (`LICENTIA_TEST_DATABASE_URL`); without it there is nothing to test (SQLite has no hot-path
//! pool).
#![allow(clippy::unwrap_used)]
use std::collections::BTreeSet;
use std::time::Duration;

use licentia_persistence::hot::HotPool;
use licentia_persistence::sea_orm::sqlx::Row;

/// The PostgreSQL URL the suite runs against, if any.
fn postgres_url() -> Option<String> {
    std::env::var("LICENTIA_TEST_DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))
}

/// The backend process ids `n` statements on this thread ran on, a few at a time.
fn backends_seen_on_a_thread(pool: HotPool, n: usize) -> BTreeSet<i32> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut seen = BTreeSet::new();
            for _ in 0..n / 4 {
                const PID: &str = "SELECT pg_backend_pid() AS pid";
                let (a, b, c, d) = tokio::join!(
                    pool.fetch_optional_sql(PID, &[]),
                    pool.fetch_optional_sql(PID, &[]),
                    pool.fetch_optional_sql(PID, &[]),
                    pool.fetch_optional_sql(PID, &[]),
                );
                for row in [a, b, c, d] {
                    seen.insert(row.unwrap().unwrap().try_get::<i32, _>("pid").unwrap());
                }
            }
            seen
        })
    })
    .join()
    .unwrap()
}

#[test]
fn each_thread_uses_only_its_own_connections_and_at_most_its_share() {
    let Some(url) = postgres_url() else {
        return;
    };
    // Two threads share a pool of four: two connections each.
    let share = 2;
    let pool = HotPool::new(&url, 4, 2, Duration::from_secs(10), &[]).unwrap();

    let one = backends_seen_on_a_thread(pool.clone(), 40);
    let two = backends_seen_on_a_thread(pool.clone(), 40);
    assert!(!one.is_empty() && !two.is_empty());
    assert!(one.len() <= share, "{one:?} on one thread, share {share}");
    assert!(two.len() <= share, "{two:?} on one thread, share {share}");
    assert!(
        one.is_disjoint(&two),
        "a connection served two threads: {one:?} and {two:?}"
    );
}

#[test]
fn a_thread_holds_the_configured_number_of_connections() {
    let Some(url) = postgres_url() else {
        return;
    };
    // A share of ten a thread, overridden: four statements at a time then run on three
    // connections (a share would have opened four), or on one.
    let pool = HotPool::new(&url, 20, 2, Duration::from_secs(10), &[]).unwrap();
    let three = backends_seen_on_a_thread(pool.clone().per_thread(3), 40);
    assert_eq!(three.len(), 3, "{three:?}");
    let one = backends_seen_on_a_thread(pool.clone().per_thread(1), 40);
    assert_eq!(one.len(), 1, "{one:?}");
    // Zero keeps the share.
    let share = backends_seen_on_a_thread(pool.per_thread(0), 40);
    assert_eq!(share.len(), 4, "{share:?}");
}
