//! The one way a use case opens and ends its transaction.
use licentia_persistence::{DatabaseTransaction, PersistenceError};

use crate::{AppResult, Ctx};

impl Ctx {
    /// Opens a transaction on the primary.
    pub async fn begin(&self) -> AppResult<DatabaseTransaction> {
        Ok(self.db.begin().await?)
    }
}

/// Commits `txn`, or rolls it back when the command was a dry run (nothing it did stays).
pub async fn finish(txn: DatabaseTransaction, dry_run: bool) -> AppResult<()> {
    if dry_run {
        txn.rollback().await.map_err(PersistenceError::from)?;
    } else {
        txn.commit().await.map_err(PersistenceError::from)?;
    }
    Ok(())
}

/// Commits `txn`.
pub async fn commit(txn: DatabaseTransaction) -> AppResult<()> {
    finish(txn, false).await
}
