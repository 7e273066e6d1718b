//! Licentia's schema, as sea-orm migrations that run on SQLite and PostgreSQL.
#![forbid(unsafe_code)]

pub use sea_orm_migration::prelude::*;

mod columns;
mod m0001_core;
mod m0002_idempotency;
mod m0003_transfers;
mod m0004_licensing;
mod m0005_bulk_operations;
mod m0006_webhooks;
mod m0007_search_indexes;
mod m0008_login_attempts;
pub mod m0009_usage;
mod m0010_partner_tools;
mod m0011_report_indexes;
mod m0012_cache_invalidation;
pub mod m0013_due_index;
pub mod m0014_key_lookup_index;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_core::Migration),
            Box::new(m0002_idempotency::Migration),
            Box::new(m0003_transfers::Migration),
            Box::new(m0004_licensing::Migration),
            Box::new(m0005_bulk_operations::Migration),
            Box::new(m0006_webhooks::Migration),
            Box::new(m0007_search_indexes::Migration),
            Box::new(m0008_login_attempts::Migration),
            Box::new(m0009_usage::Migration),
            Box::new(m0010_partner_tools::Migration),
            Box::new(m0011_report_indexes::Migration),
            Box::new(m0012_cache_invalidation::Migration),
            Box::new(m0013_due_index::Migration),
            Box::new(m0014_key_lookup_index::Migration),
        ]
    }
}
