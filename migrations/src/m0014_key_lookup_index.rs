//! A hash index on the registration key's hash for the validation look-up, on PostgreSQL.
//!
//! The unique B-tree on `registration_key_hash` (64 hex characters an entry) is 119 MB at 1M
//! licenses, about the size of PostgreSQL's default buffer cache: validations of random
//! licenses read its leaves from the kernel's cache on most look-ups, and a freshly started
//! database took seconds to warm. A hash index keeps a 4-byte hash code an entry (32 MB at
//! 1M), so it stays in the buffer cache and a look-up reads one bucket page; the planner
//! prefers it for the equality look-up. The B-tree stays: it is what enforces uniqueness.
//! SQLite has no hash indexes and keeps the B-tree alone.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_licenses_key_lookup \
             ON licenses USING hash (registration_key_hash)",
        )
        .await
        .map(|_| ())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        db.execute_unprepared("DROP INDEX IF EXISTS ix_licenses_key_lookup")
            .await
            .map(|_| ())
    }
}
