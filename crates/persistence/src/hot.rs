//! Connections for the two hot statements (the validation look-up and the list page) on
//! PostgreSQL, without sqlx's pool. That pool sends a `Sync` and waits for the server's answer
//! every time a connection goes back to it (sqlx 0.9 `PoolConnection::return_to_pool` pings on
//! release): one more round trip per statement, which was a fifth of the server's CPU under the
//! validation load. Here a connection goes back as it is, which is safe only when its statement
//! ran to the end: a [`Lease`] whose statement failed, or whose request was cancelled while it
//! ran, closes its connection instead of returning it.
//!
//! Statements are still built by sea-query and prepared once per connection by sqlx (its
//! statement cache); rows come back as `PgRow`s for `repo::licenses::decode`.
//!
//! Each thread has its own connections. A connection's socket is driven by the reactor of the
//! runtime it was opened on, and every HTTP worker runs its own single-threaded runtime: a
//! connection opened on one thread and used by a request on another has each answer noticed
//! by the first thread's reactor, then handed over with a wake-up — two threads per statement
//! instead of one, and the connection idle while the hand-over waits its turn (a fifth of the
//! machine idle under the validation load). So a request only ever leases a connection that
//! its own thread opened; a thread holds the number of connections it is configured with
//! ([`HotPool::per_thread`]), or else its share of the pool's size (divided by the number of
//! HTTP workers, rounded up).
use std::cell::RefCell;
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, Object, Pool, PoolError, RecycleResult};
use sea_orm::sea_query::{PostgresQueryBuilder, SelectStatement};
// Built by sea-query: every value is a bound parameter.
use sea_orm::sqlx::AssertSqlSafe;
use sea_orm::sqlx::ConnectOptions as _;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sea_orm::{DbErr, RuntimeErr};
use sea_query_sqlx::SqlxBinder;

use crate::error::{PersistenceError, Result};

/// Opens connections with the pool's options.
#[derive(Debug)]
pub struct Manager {
    options: PgConnectOptions,
}

impl managed::Manager for Manager {
    type Type = PgConnection;
    type Error = sea_orm::sqlx::Error;

    async fn create(&self) -> std::result::Result<PgConnection, Self::Error> {
        self.options.connect().await
    }

    async fn recycle(&self, _: &mut PgConnection, _: &Metrics) -> RecycleResult<Self::Error> {
        // A connection comes back only after its statement completed (see `Lease`).
        Ok(())
    }
}

/// A pool of hot-path connections to the PostgreSQL primary: one set per thread.
#[derive(Clone)]
pub struct HotPool(Arc<Shared>);

/// What each thread's connections are opened with.
struct Shared {
    options: PgConnectOptions,
    per_thread: usize,
    wait: Duration,
}

thread_local! {
    /// This thread's connections of each live [`HotPool`] (a pool dropped elsewhere is let go
    /// here, its connections closed, the next time this thread looks).
    static LOCAL: RefCell<Vec<(Weak<Shared>, Pool<Manager>)>> = const { RefCell::new(Vec::new()) };
}

impl std::fmt::Debug for HotPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotPool")
            .field("per_thread", &self.0.per_thread)
            .finish_non_exhaustive()
    }
}

/// Each thread's share of a pool of `max` connections shared by `threads` threads (0: one
/// per core): `max` divided by them, rounded up, at least one.
fn share(max: usize, threads: usize) -> usize {
    let threads = if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    };
    max.div_ceil(threads).max(1)
}

impl HotPool {
    /// A pool of about `max` connections to `url` shared by `threads` threads (0: one per
    /// core), each holding at most its share (`max` divided by `threads`, rounded up), each
    /// session with `settings`; waiting for a connection or opening one gives up after
    /// `wait`. Connections open when needed.
    pub fn new(
        url: &str,
        max: usize,
        threads: usize,
        wait: Duration,
        settings: &[(&str, &str)],
    ) -> Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sea_orm::sqlx::Error| PersistenceError::Unavailable(e.to_string()))?;
        let options = if settings.is_empty() {
            options
        } else {
            options.options(settings.iter().copied())
        };
        Ok(Self(Arc::new(Shared {
            options: options.disable_statement_logging(),
            per_thread: share(max, threads),
            wait,
        })))
    }

    /// The same pool with `n` connections a thread instead of its share of `max` (0 keeps
    /// the share). Before any thread has used the pool.
    #[must_use]
    pub fn per_thread(self, n: usize) -> Self {
        if n == 0 {
            return self;
        }
        Self(Arc::new(Shared {
            options: self.0.options.clone(),
            per_thread: n,
            wait: self.0.wait,
        }))
    }

    /// This thread's connections.
    fn local(&self) -> Result<Pool<Manager>> {
        LOCAL.with_borrow_mut(|pools| {
            pools.retain(|(shared, _)| shared.strong_count() > 0);
            if let Some((_, pool)) = pools
                .iter()
                .find(|(shared, _)| std::ptr::eq(shared.as_ptr(), Arc::as_ptr(&self.0)))
            {
                return Ok(pool.clone());
            }
            let pool = Pool::builder(Manager {
                options: self.0.options.clone(),
            })
            .max_size(self.0.per_thread)
            .wait_timeout(Some(self.0.wait))
            .create_timeout(Some(self.0.wait))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PersistenceError::Unavailable(e.to_string()))?;
            pools.push((Arc::downgrade(&self.0), pool.clone()));
            Ok(pool)
        })
    }

    /// Opens every connection this thread's share may hold, so that the first burst of
    /// requests does not wait while they open one by one. Stops at the first failure (the pool
    /// then opens them when needed, as it would anyway).
    pub async fn warm(&self) {
        let Ok(pool) = self.local() else { return };
        let mut held = Vec::with_capacity(self.0.per_thread);
        for _ in 0..self.0.per_thread {
            match pool.get().await {
                Ok(conn) => held.push(conn),
                Err(e) => {
                    tracing::debug!(error = %e, "a hot-path connection did not open ahead");
                    break;
                }
            }
        }
    }

    /// Every row `q` finds. A failure to reach the server (no connection within the wait, a
    /// dead connection) is [`PersistenceError::Unavailable`], for the caller to retry
    /// elsewhere.
    pub async fn fetch_all(&self, q: &SelectStatement) -> Result<Vec<PgRow>> {
        let (sql, values) = q.build_sqlx(PostgresQueryBuilder);
        let mut lease = self.lease().await?;
        let rows = sea_orm::sqlx::query_with(AssertSqlSafe(sql), values)
            .fetch_all(lease.conn())
            .await
            .map_err(driver_error)?;
        lease.done();
        Ok(rows)
    }

    /// Runs a statement that returns no rows (a small write that needs no transaction of
    /// its own); how many rows it changed.
    pub async fn execute(&self, q: &impl SqlxBinder) -> Result<u64> {
        let (sql, values) = q.build_sqlx(PostgresQueryBuilder);
        let mut lease = self.lease().await?;
        let done = sea_orm::sqlx::query_with(AssertSqlSafe(sql), values)
            .execute(lease.conn())
            .await
            .map_err(driver_error)?;
        lease.done();
        Ok(done.rows_affected())
    }

    /// The first row a fixed statement finds with `params` bound (as text, in order): for a
    /// statement built once instead of per request.
    pub async fn fetch_optional_sql(
        &self,
        sql: &'static str,
        params: &[&str],
    ) -> Result<Option<PgRow>> {
        let mut lease = self.lease().await?;
        let mut query = sea_orm::sqlx::query(sql);
        for p in params {
            query = query.bind(*p);
        }
        let row = query
            .fetch_optional(lease.conn())
            .await
            .map_err(driver_error)?;
        lease.done();
        Ok(row)
    }

    async fn lease(&self) -> Result<Lease> {
        match self.local()?.get().await {
            Ok(conn) => Ok(Lease(Some(conn), false)),
            Err(PoolError::Backend(e)) => Err(driver_error(e)),
            Err(e) => Err(PersistenceError::Unavailable(format!(
                "no database connection: {e}"
            ))),
        }
    }
}

/// A connection out of the pool; it goes back only when marked done.
struct Lease(Option<Object<Manager>>, bool);

impl Lease {
    fn conn(&mut self) -> &mut PgConnection {
        self.0
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }

    fn done(&mut self) {
        self.1 = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.1
            && let Some(conn) = self.0.take()
        {
            // Failed or cancelled mid-statement: out of the pool, closed as it drops.
            drop(Object::take(conn));
        }
    }
}

fn driver_error(e: sea_orm::sqlx::Error) -> PersistenceError {
    PersistenceError::from(DbErr::Query(RuntimeErr::SqlxError(Arc::new(e))))
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn the_threads_shares_add_up_to_the_pool_size_or_just_over() {
        assert_eq!(share(10, 2), 5);
        assert_eq!(share(10, 3), 4);
        // More HTTP workers than connections: one each (the pool needs at least one).
        assert_eq!(share(10, 16), 1);
        assert_eq!(share(1, 1), 1);
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        assert_eq!(share(10, 0), 10usize.div_ceil(cores));
    }
}
