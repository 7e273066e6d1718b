use sea_orm::{DbErr, RuntimeErr, SqlErr};

pub type Result<T, E = PersistenceError> = std::result::Result<T, E>;

/// What the repositories report; the API maps each variant to one problem response.
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    #[error("record not found")]
    NotFound,
    /// A unique constraint refused the write; the payload names the constraint when known.
    #[error("unique constraint violated: {0}")]
    Unique(String),
    /// A foreign key refused the write.
    #[error("foreign key violated: {0}")]
    ForeignKey(String),
    /// The database could not be reached (pool timeout, connection refused or dropped).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database aborted the transaction to resolve a conflict (deadlock, serialization
    /// failure); running the request again is expected to succeed.
    #[error("transient conflict: {0}")]
    Transient(String),
    /// An order's total would pass its bound (`orders::MAX_TOTAL`).
    #[error("the amount is too large")]
    AmountTooLarge,
    /// A stored value does not parse into its domain type.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(DbErr),
}

impl From<DbErr> for PersistenceError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(m)) => return Self::Unique(m),
            Some(SqlErr::ForeignKeyConstraintViolation(m)) => return Self::ForeignKey(m),
            _ => {}
        }
        match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(err.to_string()),
            _ if is_io_failure(&err) => Self::Unavailable(err.to_string()),
            _ if is_transient(&err) => Self::Transient(err.to_string()),
            _ => Self::Db(err),
        }
    }
}

/// The driver's error under sea-orm's, when there is one.
fn driver_error(err: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
        _ => None,
    }
}

/// A query that failed because the server went away, or is shutting down, reports as
/// unavailable, not as a bug: the socket failed, the pool gave up, or PostgreSQL answered a
/// connection exception (SQLSTATE class 08) or an operator intervention (57P01 admin
/// shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
fn is_io_failure(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error;
    match driver_error(err) {
        Some(Error::Io(_) | Error::Tls(_) | Error::PoolTimedOut | Error::PoolClosed) => true,
        Some(Error::WorkerCrashed) => true,
        Some(Error::Database(db)) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// The database aborted the transaction to resolve a conflict: PostgreSQL's deadlock (40P01)
/// and serialization (40001) failures; SQLite's busy (5, and its extended codes) and locked
/// (6) answers, past the busy timeout.
fn is_transient(err: &DbErr) -> bool {
    let Some(sea_orm::sqlx::Error::Database(db)) = driver_error(err) else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    match db.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>() {
        // SQLite's primary result code is the low byte of the extended one.
        Some(_) => code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6)),
        None => matches!(&*code, "40P01" | "40001"),
    }
}

impl From<sea_orm::TransactionError<PersistenceError>> for PersistenceError {
    fn from(err: sea_orm::TransactionError<PersistenceError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(e) => e.into(),
            sea_orm::TransactionError::Transaction(e) => e,
        }
    }
}

/// Parses a stored text value into its domain type, reporting corruption instead of panicking.
pub(crate) fn parse<T: std::str::FromStr>(what: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| PersistenceError::Corrupt(format!("{what}: {value:?}")))
}
