//! Invalidation of the serving processes' caches (PostgreSQL only): a change that a cache must
//! not outlive notifies the channel `licentia_invalidate` when its transaction commits, whatever
//! code path made it. Every process listens and drops what the notice names:
//! - `api_key:<key hash>`: a key revoked, deleted, or its expiry or scopes changed (not its
//!   `last_used_at`, which authentication itself writes once a minute);
//! - `products`: any change to the catalog (a product's name or options).
//!
//! SQLite has no notifications; there the caches stay off.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    r"CREATE OR REPLACE FUNCTION licentia_api_key_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('licentia_invalidate', 'api_key:' || OLD.key_hash);
    RETURN NULL;
END
$$ LANGUAGE plpgsql",
    r"CREATE TRIGGER tr_api_keys_invalidate
    AFTER UPDATE OF revoked_at, expires_at, scopes, key_hash, account_id OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION licentia_api_key_changed()",
    r"CREATE OR REPLACE FUNCTION licentia_products_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('licentia_invalidate', 'products');
    RETURN NULL;
END
$$ LANGUAGE plpgsql",
    r"CREATE TRIGGER tr_products_invalidate
    AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION licentia_products_changed()",
];

const DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS tr_products_invalidate ON products",
    "DROP FUNCTION IF EXISTS licentia_products_changed()",
    "DROP TRIGGER IF EXISTS tr_api_keys_invalidate ON api_keys",
    "DROP FUNCTION IF EXISTS licentia_api_key_changed()",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        run(m, UP).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        run(m, DOWN).await
    }
}

async fn run(m: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    if m.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for sql in statements {
        m.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}
