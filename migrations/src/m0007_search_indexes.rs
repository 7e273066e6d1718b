//! PostgreSQL-only search indexes: a trigram index so that the case-insensitive name
//! substring filter (`name_lower LIKE '%…%'`) does not scan. SQLite keeps the plain indexes.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = m.get_connection();
        // pg_trgm ships with PostgreSQL's contrib package and is a trusted extension; where it
        // is missing the filter still works, only without the index.
        let available = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT 1 AS present FROM pg_available_extensions WHERE name = 'pg_trgm'",
            ))
            .await?
            .is_some();
        if !available {
            return Ok(());
        }
        db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_licenses_name_trgm ON licenses USING gin (name_lower gin_trgm_ops)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection()
                .execute_unprepared("DROP INDEX IF EXISTS ix_licenses_name_trgm")
                .await?;
        }
        Ok(())
    }
}
