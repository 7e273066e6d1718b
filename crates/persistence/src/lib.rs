//! Licentia's persistence: sea-orm entities, the connection, migrations and repositories.
//!
//! Repositories are free functions over any [`sea_orm::ConnectionTrait`], so the same call
//! works on the pool or inside a transaction; they return domain records, never rows.
#![forbid(unsafe_code)]

pub mod entities;
mod error;
pub mod hot;
pub mod notices;
pub mod preflight;
mod replica;
pub mod repo;

use std::sync::Arc;
use std::time::Duration;

use licentia_migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

pub use error::{PersistenceError, Result};
pub use replica::ReadHealth;
pub use sea_orm;
pub use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};

/// The session settings of the search pool ([`Db::search`], [`unpinged_pool`]).
const SEARCH_SETTINGS: &[(&str, &str)] = &[
    ("plan_cache_mode", "force_custom_plan"),
    ("random_page_cost", "1.1"),
];

/// A pool of a PostgreSQL primary that does not ping on checkout: the search pool
/// ([`Db::search`], with [`SEARCH_SETTINGS`]) and the look-up pool ([`Db::lookup`], with the
/// defaults). The search pool's sessions start with the planner settings searches need: a
/// custom plan for every execution (a prepared statement
/// otherwise switches to a generic plan after five runs; for a CIDR filter that plan read all
/// ~11,000 matching rows and sorted them, 17 ms, instead of walking in id order, 2–3 ms), and
/// random reads priced near sequential ones (the data is cached or on SSD; at the default 4 the
/// planner walks every license in id order rather than one partner's through
/// `(account_id, id)`). Set for the session, not per statement: validate and every other
/// statement keep the defaults on the main pool (forcing custom plans there cost validate
/// two thirds of its rate). No ping on checkout (reads only; a dead connection fails one
/// statement, which the caller retries), lazily opened, idle connections closed after 30 s.
async fn unpinged_pool(
    url: &str,
    pool: &PoolConfig,
    settings: &'static [(&'static str, &'static str)],
) -> Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(preflight::connect_url(url).into_owned());
    opts.max_connections(pool.max_connections)
        .min_connections(0)
        .acquire_timeout(pool.acquire_timeout)
        .connect_timeout(pool.acquire_timeout)
        .idle_timeout(Duration::from_secs(30))
        .test_before_acquire(false)
        .connect_lazy(true)
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(move |o| {
            if settings.is_empty() {
                o
            } else {
                o.options(settings.iter().copied())
            }
        });
    Database::connect(opts)
        .await
        .map_err(|e| connect_error(url, e))
}

/// A failed connect, naming where it went (never the URL itself: it may hold a password).
fn connect_error(url: &str, e: sea_orm::DbErr) -> PersistenceError {
    let place = match preflight::postgres_address(url) {
        Some((host, port)) => format!("PostgreSQL at {host}:{port}"),
        None => match preflight::sqlite_path(url) {
            Some(path) => format!("the SQLite database {path}"),
            None => "the database".to_owned(),
        },
    };
    PersistenceError::Unavailable(format!(
        "cannot connect to {place}: {}",
        plain(&e.to_string())
    ))
}

/// A driver's message without its layers of prefixes and the server's source line
/// ("Connection Error: error returned from database: database \"x\" does not exist at line 948"
/// → "database \"x\" does not exist").
fn plain(message: &str) -> String {
    let mut m = message.trim();
    for prefix in ["Connection Error: ", "error returned from database: "] {
        m = m.strip_prefix(prefix).unwrap_or(m);
    }
    match m.rsplit_once(" at line ") {
        Some((head, line)) if line.chars().all(|c| c.is_ascii_digit()) => head.to_owned(),
        _ => m.to_owned(),
    }
}

/// Pool settings chosen by the application's configuration.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The size of each of the process's pools to one server (see [`Db`]).
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// How many threads share each hot-path pool ([`hot`]): the HTTP workers; 0 counts one
    /// per core.
    pub hot_threads: usize,
    /// How many connections each of those threads holds in each hot-path pool; 0:
    /// `max_connections` divided among the threads, rounded up.
    pub hot_per_thread: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(2),
            hot_threads: 0,
            hot_per_thread: 0,
        }
    }
}

/// The database handle shared by every request and worker of one process: the primary, and
/// optionally a streaming replica for the reads that may lag ([`Db::read`]).
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    /// PostgreSQL: connections to the primary whose sessions plan for searches
    /// ([`Db::search`]); `None` on SQLite.
    search: Option<DatabaseConnection>,
    /// PostgreSQL: connections to the primary, not pinged on checkout, for the licensed
    /// software's look-ups ([`Db::lookup`]); `None` on SQLite.
    lookup: Option<DatabaseConnection>,
    /// PostgreSQL: the hot statements' pools of the primary (see [`hot`]): look-ups with the
    /// default settings, and searches with [`SEARCH_SETTINGS`].
    hot: Option<(hot::HotPool, hot::HotPool)>,
    replica: Option<Arc<replica::Replica>>,
}

/// Opens a transaction on `db` (a savepoint when `db` is a transaction).
///
/// On SQLite the transaction takes the write lock when it begins (`BEGIN IMMEDIATE`) and
/// waits for it up to the busy timeout. A deferred transaction that read first and then wrote
/// would fail at once with `SQLITE_BUSY_SNAPSHOT` whenever another process (a second
/// `licentia serve` on the same file) had committed in between: the busy timeout does not
/// apply to that upgrade. PostgreSQL ignores the mode.
pub async fn begin(
    db: &impl TransactionTrait<Transaction = DatabaseTransaction>,
) -> Result<DatabaseTransaction> {
    let options = sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    };
    Ok(db.begin_with_options(options).await?)
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`).
    ///
    /// SQLite gets one connection: it has a single writer anyway, and one connection makes
    /// every transaction serial instead of failing with `SQLITE_BUSY` on lock upgrades.
    pub async fn connect(url: &str, pool: &PoolConfig) -> Result<Self> {
        let is_sqlite = url.starts_with("sqlite:");
        if is_sqlite {
            preflight::sqlite_folder(url)?;
        } else {
            preflight::reach_postgres(url, pool.acquire_timeout.max(Duration::from_secs(2)))?;
        }
        let create = is_sqlite && !preflight::sqlite_mode_given(url);
        let mut opts = ConnectOptions::new(preflight::connect_url(url).into_owned());
        opts.max_connections(if is_sqlite { 1 } else { pool.max_connections })
            .min_connections(if is_sqlite { 1 } else { 0 })
            .acquire_timeout(pool.acquire_timeout)
            .connect_timeout(pool.acquire_timeout)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(move |o| {
                let o = o
                    .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                // Without `?mode=`, the file is created when missing; a given mode is kept.
                if create { o.create_if_missing(true) } else { o }
            });
        let conn = Database::connect(opts)
            .await
            .map_err(|e| connect_error(url, e))?;
        let (search, lookup) = if is_sqlite {
            (None, None)
        } else {
            (
                Some(unpinged_pool(url, pool, SEARCH_SETTINGS).await?),
                Some(unpinged_pool(url, pool, &[]).await?),
            )
        };
        let hot = if is_sqlite {
            None
        } else {
            let url = preflight::connect_url(url);
            let max = pool.max_connections as usize;
            let open = |settings| {
                hot::HotPool::new(&url, max, pool.hot_threads, pool.acquire_timeout, settings)
                    .map(|hot| hot.per_thread(pool.hot_per_thread))
            };
            Some((open(&[])?, open(SEARCH_SETTINGS)?))
        };
        Ok(Self {
            conn,
            search,
            lookup,
            hot,
            replica: None,
        })
    }

    /// Adds a PostgreSQL streaming replica at `url` for [`Db::read`]: used while it is
    /// reachable and at most `max_lag` behind the primary, or whatever its lag while the
    /// primary is unreachable. Call [`Db::probe_replica`] every second or so.
    pub async fn with_replica(
        mut self,
        url: &str,
        pool: &PoolConfig,
        max_lag: Duration,
    ) -> Result<Self> {
        let mut opts = ConnectOptions::new(preflight::connect_url(url).into_owned());
        // Lazy: a replica that is down when this process starts is a degraded start (reads go
        // to the primary until a probe finds it), not a failed one.
        opts.max_connections(pool.max_connections)
            .min_connections(0)
            .acquire_timeout(pool.acquire_timeout)
            .connect_timeout(pool.acquire_timeout)
            .connect_lazy(true)
            .sqlx_logging(false);
        let conn = Database::connect(opts)
            .await
            .map_err(|e| connect_error(url, e))?;
        let replica = replica::Replica::new(conn, max_lag);
        replica.probe(&self.conn).await;
        self.replica = Some(Arc::new(replica));
        Ok(self)
    }

    /// Where reads that may lag go (validations, license files, reports, exports): the replica
    /// while it serves, else the primary. Every other read uses [`Db::conn`], so a caller
    /// always reads its own writes.
    pub fn read(&self) -> &DatabaseConnection {
        match &self.replica {
            Some(r) if r.serves() => &r.conn,
            _ => &self.conn,
        }
    }

    /// Where the licensed software's look-ups go (validations, license files): as
    /// [`Db::read`] with a replica; without one, a pool of the primary that does not ping its
    /// connections on checkout (one round trip less on the hottest path). A look-up that fails
    /// there is retried on [`Db::lookup_fallback`].
    pub fn lookup(&self) -> &DatabaseConnection {
        match (&self.replica, &self.lookup) {
            (Some(_), _) => self.read(),
            (None, Some(lookup)) => lookup,
            (None, None) => &self.conn,
        }
    }

    /// Where to retry a look-up that failed on [`Db::lookup`]: the other server with a
    /// replica ([`Db::read_fallback`]); without one, the primary's pinged pool (the failure
    /// was likely a connection that had died, e.g. after a restart of the server).
    pub fn lookup_fallback(&self) -> Option<&DatabaseConnection> {
        match (&self.replica, &self.lookup) {
            (Some(_), _) => self.read_fallback(),
            (None, Some(_)) => Some(&self.conn),
            (None, None) => None,
        }
    }

    /// The connection [`Db::read`] does not pick: the one to retry a failed read on.
    pub fn read_fallback(&self) -> Option<&DatabaseConnection> {
        let r = self.replica.as_ref()?;
        Some(if r.serves() { &self.conn } else { &r.conn })
    }

    /// Probes the primary and the replica (no-op without a replica).
    pub async fn probe_replica(&self) {
        if let Some(r) = &self.replica {
            r.probe(&self.conn).await;
        }
    }

    /// Which servers can serve reads, as of the last probe (without a replica: the primary,
    /// pinged now).
    pub async fn read_health(&self) -> ReadHealth {
        match &self.replica {
            Some(r) => r.health(),
            None => ReadHealth {
                primary: self.ping().await.is_ok(),
                replica: None,
            },
        }
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.conn, None).await?;
        Ok(())
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Opens a transaction on the primary (see [`begin`]).
    pub async fn begin(&self) -> Result<DatabaseTransaction> {
        begin(&self.conn).await
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Where list pages and counts run: on PostgreSQL a pool of the primary whose sessions are
    /// set for searches ([`SEARCH_SETTINGS`], see [`unpinged_pool`]), so a page is its statements
    /// alone, with no transaction around them to
    /// carry `SET LOCAL`; the primary's pool on SQLite. This pool does not ping: a statement
    /// that fails with [`PersistenceError::Unavailable`] (its connection had died) is run again
    /// in [`Db::begin_search`].
    pub fn search(&self) -> &DatabaseConnection {
        self.search.as_ref().unwrap_or(&self.conn)
    }

    /// The primary's hot-path pool with the default settings ([`hot`]), whatever the
    /// replicas: for a small write on a request's path (an API key's use); `None` on SQLite.
    pub fn hot_primary(&self) -> Option<&hot::HotPool> {
        self.hot.as_ref().map(|(plain, _)| plain)
    }

    /// The hot-path pool for the licensed software's look-ups ([`hot`]): the primary's,
    /// without a replica; `None` with a replica (look-ups then go where [`Db::lookup`] says)
    /// and on SQLite.
    pub fn hot_lookup(&self) -> Option<&hot::HotPool> {
        match (&self.replica, &self.hot) {
            (None, Some((lookup, _))) => Some(lookup),
            _ => None,
        }
    }

    /// The hot-path pool for list pages ([`hot`]) on PostgreSQL: with [`SEARCH_SETTINGS`] for
    /// filtered pages; for pages without filters the primary's pool with the default planner
    /// settings. Such a page has one good plan for every caller — walk the sort order's index
    /// from the caller's first entry — so PostgreSQL may keep a generic plan for it instead of
    /// planning every page (planning was about a third of the statement's time).
    pub fn hot_page(&self, filtered: bool) -> Option<&hot::HotPool> {
        self.hot
            .as_ref()
            .map(|(plain, search)| if filtered { search } else { plain })
    }

    /// Opens this thread's connections of the hot-path pool with the default settings
    /// (validations and unfiltered list pages) ahead of the first requests; PostgreSQL only.
    /// The search pool (filtered pages) opens its connections when needed.
    pub async fn warm(&self) {
        if let Some((plain, _)) = &self.hot {
            plain.warm().await;
        }
    }

    /// A transaction on the primary's pinged pool with the search settings of [`Db::search`]
    /// set for it: where a search goes when the search pool's connection had died (after a
    /// restart of the server, its idle connections are dead until used once).
    pub async fn begin_search(&self) -> Result<DatabaseTransaction> {
        let txn = self.conn.begin().await?;
        if self.backend() == DbBackend::Postgres {
            // The same settings as the search pool's sessions, for this transaction only.
            let set: Vec<String> = SEARCH_SETTINGS
                .iter()
                .map(|(name, value)| format!("SET LOCAL {name} = {value}"))
                .collect();
            txn.execute_unprepared(&set.join("; ")).await?;
        }
        Ok(txn)
    }

    /// Succeeds when the database answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        self.conn.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<()> {
        for pool in [self.search, self.lookup].into_iter().flatten() {
            pool.close().await?;
        }
        self.conn.close().await?;
        Ok(())
    }
}

/// The current time, truncated to microseconds (what PostgreSQL keeps) and in UTC.
pub fn now() -> time::OffsetDateTime {
    truncate(time::OffsetDateTime::now_utc())
}

/// Truncates to microseconds in UTC so that values read back compare equal to values written.
pub fn truncate(t: time::OffsetDateTime) -> time::OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    let micros = t.nanosecond() / 1_000 * 1_000;
    t.replace_nanosecond(micros).unwrap_or(t)
}
