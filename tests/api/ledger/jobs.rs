//! The job queue under the repository: claims, leases, retries and dedupe keys.
//!
//! These run on a migrated database of their own, with no server on it: a serving process
//! works the queue too, and would take these jobs.
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use licentia_persistence::repo::jobs;
use licentia_persistence::{Db, PoolConfig, TransactionTrait};
use sea_orm::ConnectionTrait;
use serde_json::json;
use tokio::sync::Barrier;
use uuid::Uuid;

/// A fresh, migrated database: a temporary SQLite file or a new PostgreSQL database.
struct QueueDb {
    db: Db,
    sqlite_file: Option<PathBuf>,
    pg: Option<(String, String)>,
}

fn pool() -> PoolConfig {
    PoolConfig {
        max_connections: 10,
        acquire_timeout: Duration::from_secs(60),
        ..PoolConfig::default()
    }
}

impl QueueDb {
    async fn sqlite() -> QueueDb {
        let path =
            std::env::temp_dir().join(format!("licentia-queue-{}.db", Uuid::new_v4().simple()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = Db::connect(&url, &pool()).await.unwrap();
        db.migrate().await.unwrap();
        QueueDb {
            db,
            sqlite_file: Some(path),
            pg: None,
        }
    }

    /// `None` (the test is skipped) when the suite has no PostgreSQL.
    async fn postgres() -> Option<QueueDb> {
        let Ok(admin_url) = std::env::var(licentia_tests::PG_URL_VAR) else {
            eprintln!(
                "{} is not set: skipping the PostgreSQL run",
                licentia_tests::PG_URL_VAR
            );
            return None;
        };
        let name = format!("licentia_test_{}", Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(admin_url.as_str())
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        admin.close().await.ok();
        // The same server, the new database: swap the URL's path, keep its query.
        let (base, query) = admin_url
            .split_once('?')
            .map_or((admin_url.as_str(), None), |(b, q)| (b, Some(q)));
        let host_end = base
            .find("://")
            .and_then(|s| base[s + 3..].find('/').map(|i| s + 3 + i))
            .unwrap_or(base.len());
        let url = match query {
            Some(q) => format!("{}/{name}?{q}", &base[..host_end]),
            None => format!("{}/{name}", &base[..host_end]),
        };
        let db = Db::connect(&url, &pool()).await.unwrap();
        db.migrate().await.unwrap();
        Some(QueueDb {
            db,
            sqlite_file: None,
            pg: Some((admin_url, name)),
        })
    }

    async fn finish(self) {
        self.db.close().await.unwrap();
        if let Some(path) = self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let Some((admin_url, name)) = self.pg {
            let admin = sea_orm::Database::connect(admin_url.as_str())
                .await
                .unwrap();
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await
                .unwrap();
            admin.close().await.ok();
        }
    }
}

/// Like `db_test!`, for scenarios that take a bare database.
macro_rules! queue_test {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let store = super::QueueDb::sqlite().await;
                super::$name(store.db.clone()).await;
                store.finish().await;
            }
            #[cfg_attr(not(licentia_pg), ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(store) = super::QueueDb::postgres().await else { return };
                super::$name(store.db.clone()).await;
                store.finish().await;
            }
        }
    )+};
}

async fn jobs_are_claimed_once(db: Db) {
    let now = licentia_persistence::now();
    let mut queued = HashSet::new();
    for i in 0..20 {
        let id = jobs::enqueue(db.conn(), "test.noop", json!({"n": i}), now, 3, None)
            .await
            .unwrap()
            .unwrap();
        queued.insert(id.as_uuid());
    }
    assert_eq!(jobs::queue_depth(db.conn()).await.unwrap(), 20);

    // Four workers claim in lockstep rounds, so their claims overlap; a claim without
    // `SKIP LOCKED` hands the same job to several of them here.
    let gate = Arc::new(Barrier::new(4));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for _ in 0..8 {
                    gate.wait().await;
                    let batch = jobs::claim(&db, &format!("w{w}"), Duration::from_secs(60), 2)
                        .await
                        .unwrap();
                    mine.extend(batch);
                }
                mine
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    loop {
        let rest = jobs::claim(&db, "w4", Duration::from_secs(60), 20)
            .await
            .unwrap();
        if rest.is_empty() {
            break;
        }
        claimed.extend(rest);
    }
    assert_eq!(claimed.len(), 20, "every job once");
    let ids: HashSet<Uuid> = claimed.iter().map(|j| j.id.as_uuid()).collect();
    assert_eq!(ids, queued);
    assert!(
        claimed
            .iter()
            .all(|j| j.attempts == 1 && j.kind == "test.noop")
    );
    assert_eq!(jobs::queue_depth(db.conn()).await.unwrap(), 0);
    let lease = Duration::from_secs(60);
    assert!(jobs::claim(&db, "w9", lease, 10).await.unwrap().is_empty());

    // Done and failed-for-good jobs stay put; a retry comes back when due.
    assert!(jobs::complete(db.conn(), claimed[0].id).await.unwrap());
    assert!(!jobs::complete(db.conn(), claimed[0].id).await.unwrap());
    assert!(
        jobs::fail(db.conn(), claimed[1].id, "boom", None)
            .await
            .unwrap()
    );
    let later = licentia_persistence::now() + Duration::from_secs(3600);
    assert!(
        jobs::fail(db.conn(), claimed[2].id, "later", Some(later))
            .await
            .unwrap()
    );
    let past = licentia_persistence::now() - Duration::from_secs(1);
    assert!(
        jobs::fail(db.conn(), claimed[3].id, "again", Some(past))
            .await
            .unwrap()
    );
    let retried = jobs::claim(&db, "w9", lease, 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].id, claimed[3].id);
    assert_eq!(retried[0].attempts, 2);
    assert_eq!(retried[0].payload, claimed[3].payload);
    assert_eq!(jobs::queue_depth(db.conn()).await.unwrap(), 1);

    // A graceful shutdown hands a worker's jobs back, the attempt uncounted.
    let released = jobs::release_all(db.conn(), "w9").await.unwrap();
    assert_eq!(released, 1);
    let again = jobs::claim(&db, "w10", lease, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
}

async fn expired_leases_are_claimable_again(db: Db) {
    let now = licentia_persistence::now();
    let id = jobs::enqueue(db.conn(), "test.noop", json!({}), now, 5, None)
        .await
        .unwrap()
        .unwrap();
    // Not yet due: not claimable.
    let future = jobs::enqueue(
        db.conn(),
        "test.noop",
        json!({}),
        now + Duration::from_secs(3600),
        5,
        None,
    )
    .await
    .unwrap()
    .unwrap();

    // A live lease protects the job; a dead worker's lapses.
    let first = jobs::claim(&db, "dead", Duration::from_millis(50), 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, id);
    assert!(
        jobs::claim(&db, "live", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = jobs::claim(&db, "live", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, id);
    assert_eq!(second[0].attempts, 2);
    // The dead worker's shutdown does not release a job it lost.
    assert_eq!(jobs::release_all(db.conn(), "dead").await.unwrap(), 0);
    assert!(jobs::complete(db.conn(), id).await.unwrap());
    assert_ne!(future, id);
    assert_eq!(jobs::queue_depth(db.conn()).await.unwrap(), 1);
}

async fn dedupe_keys_queue_once(db: Db) {
    let now = licentia_persistence::now();
    let key = || Some("license.expiring_soon:abc:2025-01".to_owned());
    let first = jobs::enqueue(db.conn(), "test.noop", json!({}), now, 3, key())
        .await
        .unwrap();
    assert!(first.is_some());
    let second = jobs::enqueue(db.conn(), "test.noop", json!({"other": 1}), now, 3, key())
        .await
        .unwrap();
    assert_eq!(second, None);
    // Still deduplicated once the first has run.
    let claimed = jobs::claim(&db, "w", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].payload, json!({}));
    jobs::complete(db.conn(), claimed[0].id).await.unwrap();
    assert_eq!(
        jobs::enqueue(db.conn(), "test.noop", json!({}), now, 3, key())
            .await
            .unwrap(),
        None
    );
    // Jobs without a key never collide.
    for _ in 0..2 {
        assert!(
            jobs::enqueue(db.conn(), "test.noop", json!({}), now, 3, None)
                .await
                .unwrap()
                .is_some()
        );
    }
    // Enqueued inside a transaction that rolls back, a job never existed.
    let txn = db.conn().begin().await.unwrap();
    jobs::enqueue(
        &txn,
        "test.noop",
        json!({}),
        now,
        3,
        Some("rolled-back".into()),
    )
    .await
    .unwrap()
    .unwrap();
    txn.rollback().await.unwrap();
    assert!(
        jobs::enqueue(
            db.conn(),
            "test.noop",
            json!({}),
            now,
            3,
            Some("rolled-back".into())
        )
        .await
        .unwrap()
        .is_some()
    );
    assert_eq!(jobs::queue_depth(db.conn()).await.unwrap(), 3);
}

queue_test!(
    jobs_are_claimed_once,
    expired_leases_are_claimable_again,
    dedupe_keys_queue_once
);
