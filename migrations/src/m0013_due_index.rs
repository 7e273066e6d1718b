//! An index for the sweeps of renewals and expiries: the licenses whose term can still renew
//! or run out ([`RENEWABLE`]: `active`, or `suspended` for any reason but `expired`) by
//! `(valid_until, id)`. A sweep asks for those whose term ends before an instant, in that
//! order; without this index PostgreSQL walked the primary key and read every license to
//! find none (400 ms and 50,000 pages pushed out of the buffer cache a minute at 1M licenses:
//! its estimate multiplies "active" by "ended", which never hold together for long). With it,
//! a sweep with nothing due reads one index page.
//!
//! The predicate is written once, here: a query uses this index only when its condition
//! contains the same clause, so the sweep's query includes [`RENEWABLE`] verbatim.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Licenses whose term can still be renewed or expire (the partial index's predicate, and a
/// clause of every query meant to use it).
pub const RENEWABLE: &str =
    "(status = 'active' OR (status = 'suspended' AND suspension_reason <> 'expired'))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS ix_licenses_renewable_term \
                 ON licenses (valid_until, id) WHERE {RENEWABLE}"
            ))
            .await
            .map(|_| ())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_licenses_renewable_term")
            .await
            .map(|_| ())
    }
}
