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
use std::sync::Arc;
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

/// A pool of hot-path connections to the PostgreSQL primary.
#[derive(Clone)]
pub struct HotPool(Pool<Manager>);

impl std::fmt::Debug for HotPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HotPool").field(&self.0.status()).finish()
    }
}

impl HotPool {
    /// A pool of at most `max` connections to `url`, each session with `settings`; waiting
    /// for a connection or opening one gives up after `wait`. Connections open when needed.
    pub fn new(url: &str, max: usize, wait: Duration, settings: &[(&str, &str)]) -> Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sea_orm::sqlx::Error| PersistenceError::Unavailable(e.to_string()))?;
        let options = if settings.is_empty() {
            options
        } else {
            options.options(settings.iter().copied())
        };
        let pool = Pool::builder(Manager {
            options: options.disable_statement_logging(),
        })
        .max_size(max)
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| PersistenceError::Unavailable(e.to_string()))?;
        Ok(Self(pool))
    }

    /// Opens every connection the pool may hold, so that the first burst of requests does not
    /// wait while they open one by one. Stops at the first failure (the pool then opens them
    /// when needed, as it would anyway).
    pub async fn warm(&self) {
        let mut held = Vec::with_capacity(self.0.status().max_size);
        for _ in 0..self.0.status().max_size {
            match self.0.get().await {
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
        match self.0.get().await {
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
