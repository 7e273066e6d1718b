use sea_orm::{DbErr, SqlErr};

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

/// A query that failed because the server went away reports as unavailable, not as a bug.
fn is_io_failure(err: &DbErr) -> bool {
    let text = err.to_string();
    [
        "Connection refused",
        "connection reset",
        "broken pipe",
        "PoolTimedOut",
        "pool timed out",
        "error communicating with database",
        "terminating connection",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// PostgreSQL's deadlock (40P01) and serialization (40001) aborts.
fn is_transient(err: &DbErr) -> bool {
    let text = err.to_string();
    [
        "deadlock detected",
        "could not serialize access",
        "40P01",
        "40001",
    ]
    .iter()
    .any(|n| text.contains(n))
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
