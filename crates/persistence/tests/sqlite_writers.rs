//! Two processes writing to one SQLite file, as two `licentia serve` on the same database do.
#![allow(clippy::unwrap_used)]
use std::time::Duration;

use licentia_persistence::sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use licentia_persistence::{Db, PersistenceError, PoolConfig};

/// A database file removed when the test ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

#[derive(FromQueryResult)]
struct Counter {
    n: i64,
}

async fn counter(db: &impl ConnectionTrait) -> i64 {
    let stmt = Statement::from_string(db.get_database_backend(), "SELECT n FROM counter");
    Counter::find_by_statement(stmt)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .n
}

/// A transaction that reads, then writes what it read, while the other process writes too:
/// the other process waits for it (both commit, no update is lost) instead of one of them
/// failing with `SQLITE_BUSY_SNAPSHOT`, which the busy timeout does not cover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_then_write_transaction_is_not_overtaken_by_another_process() {
    let path = std::env::temp_dir().join(format!("licentia-writers-{}.db", uuid::Uuid::now_v7()));
    let _scratch = Scratch(path.clone());
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let one = Db::connect(&url, &PoolConfig::default()).await.unwrap();
    let two = Db::connect(&url, &PoolConfig::default()).await.unwrap();
    one.conn()
        .execute_unprepared(
            "CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0)",
        )
        .await
        .unwrap();

    let txn = one.begin().await.unwrap();
    let seen = counter(&txn).await;
    let other = tokio::spawn(async move {
        let txn = two.begin().await?;
        txn.execute_unprepared("UPDATE counter SET n = n + 1")
            .await?;
        txn.commit().await?;
        Ok::<_, PersistenceError>(())
    });
    // Time for the other process to write, were it allowed to.
    tokio::time::sleep(Duration::from_millis(300)).await;
    txn.execute_unprepared(&format!("UPDATE counter SET n = {}", seen + 1))
        .await
        .unwrap();
    txn.commit().await.unwrap();
    other.await.unwrap().unwrap();

    assert_eq!(counter(one.conn()).await, 2, "both increments count");
}
