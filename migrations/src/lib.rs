//! Licentia's schema, as sea-orm migrations that run on SQLite and PostgreSQL.
#![forbid(unsafe_code)]

pub use sea_orm_migration::prelude::*;

mod m0001_core;
mod m0002_idempotency;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_core::Migration),
            Box::new(m0002_idempotency::Migration),
        ]
    }
}
