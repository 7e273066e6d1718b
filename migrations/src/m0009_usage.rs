//! Usage, reports and exports (CONTRACT §11).
//!
//! - `licenses.last_validated_at` and `registrations.last_ip` (registrations already have
//!   `last_seen_at`): written in batches by each process's usage flush, only ever forward.
//!   Deliberately not indexed: an active license's usage changes every minute, and an update
//!   that changes no indexed column can be heap-only (HOT) on PostgreSQL — about 10 µs a row
//!   instead of 450 µs for one that adds an entry to each of the licenses' indexes (the trigram
//!   index on names above all), measured at 1M licenses. The tables get a fill factor that
//!   leaves room for those updates in their pages. The idle-license filters and the
//!   `last_validated_at` sort therefore walk the caller's licenses (tenant-scoped indexes).
//! - `ledger_allocations`: what each charge and refund was for — one row per (ledger entry,
//!   license) with the license's product and the share of the entry's amount (positive), so
//!   that the revenue report sums by product with one indexed aggregate. Charges cover whole
//!   orders (one entry for every item paid at once); the rows split them by license.
//!   Entries written before this migration are attributed here: a charge through its order's
//!   fulfilled items, a refund through the license its reference names ("… of license
//!   <id>"), each to the product that license has now. Credits have no rows.
//! - Indexes for the license report (counts by status and product per account), the revenue
//!   report (ledger entries by time per account), and on PostgreSQL a GIN index for the
//!   `metadata.<key>=<value>` filter.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Licenses::Table)
                .add_column(ts_null(Licenses::LastValidatedAt))
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Registrations::Table)
                .add_column(text_null(Registrations::LastIp))
                .take(),
        )
        .await?;
        // The license report: counts by status and product, read from the index alone.
        m.create_index(index(
            "ix_licenses_account_status_product",
            Licenses::Table,
            &["account_id", "status", "product_id"],
        ))
        .await?;
        m.create_index(index(
            "ix_licenses_status_product",
            Licenses::Table,
            &["status", "product_id"],
        ))
        .await?;
        // The revenue report: one account's entries in a period, or everyone's.
        m.create_index(index(
            "ix_ledger_account_created",
            LedgerEntries::Table,
            &["account_id", "created_at"],
        ))
        .await?;
        m.create_index(index(
            "ix_ledger_created",
            LedgerEntries::Table,
            &["created_at"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(LedgerAllocations::Table)
                .col(uuid(LedgerAllocations::LedgerEntryId))
                .col(uuid(LedgerAllocations::LicenseId))
                .col(uuid(LedgerAllocations::ProductId))
                .col(uuid(LedgerAllocations::AccountId))
                .col(text(LedgerAllocations::Kind))
                .col(big(LedgerAllocations::Amount))
                .col(ts(LedgerAllocations::CreatedAt))
                .primary_key(
                    Index::create()
                        .name("pk_ledger_allocations")
                        .col(LedgerAllocations::LedgerEntryId)
                        .col(LedgerAllocations::LicenseId),
                )
                .foreign_key(&mut fk(
                    "fk_ledger_allocations_entry",
                    (LedgerAllocations::Table, LedgerAllocations::LedgerEntryId),
                    (LedgerEntries::Table, LedgerEntries::Id),
                ))
                .check(Expr::cust("kind IN ('charge', 'refund')"))
                .take(),
        )
        .await?;
        m.create_index(index(
            "ix_ledger_allocations_account_created",
            LedgerAllocations::Table,
            &["account_id", "created_at"],
        ))
        .await?;
        m.create_index(index(
            "ix_ledger_allocations_created",
            LedgerAllocations::Table,
            &["created_at"],
        ))
        .await?;

        let db = m.get_connection();
        let backend = m.get_database_backend();
        if backend == DbBackend::Postgres {
            // Room in every page for the usage flush's updates to be HOT (heap-only: no index
            // entry written), which they can be because no index covers the usage columns.
            db.execute_unprepared("ALTER TABLE licenses SET (fillfactor = 85)")
                .await?;
            db.execute_unprepared("ALTER TABLE registrations SET (fillfactor = 90)")
                .await?;
            // `metadata @> {"key": "value"}`: the list's metadata filter across every tenant.
            db.execute_unprepared(
                "CREATE INDEX IF NOT EXISTS ix_licenses_metadata ON licenses \
                 USING gin ((CAST(metadata AS jsonb)) jsonb_path_ops)",
            )
            .await?;
        }
        backfill_allocations(db).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Postgres {
            let db = m.get_connection();
            db.execute_unprepared("DROP INDEX IF EXISTS ix_licenses_metadata")
                .await?;
            db.execute_unprepared("ALTER TABLE licenses RESET (fillfactor)")
                .await?;
            db.execute_unprepared("ALTER TABLE registrations RESET (fillfactor)")
                .await?;
        }
        m.drop_table(Table::drop().table(LedgerAllocations::Table).take())
            .await?;
        for (name, table) in [
            ("ix_ledger_created", LedgerEntries::Table.into_iden()),
            (
                "ix_ledger_account_created",
                LedgerEntries::Table.into_iden(),
            ),
            ("ix_licenses_status_product", Licenses::Table.into_iden()),
            (
                "ix_licenses_account_status_product",
                Licenses::Table.into_iden(),
            ),
        ] {
            m.drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Registrations::Table)
                .drop_column(Registrations::LastIp)
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Licenses::Table)
                .drop_column(Licenses::LastValidatedAt)
                .take(),
        )
        .await
    }
}

/// Attributes the charges and refunds that have no allocations yet (those written before this
/// migration) to licenses and products; public for the test that checks it against the
/// allocations written as money moves.
pub async fn backfill_allocations(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    backfill_charges(db).await?;
    backfill_refunds(db, db.get_database_backend()).await
}

/// Charges written before this migration: split by their order's fulfilled items (a paid
/// order's charge is the sum of the items it applied), each to its license's product.
async fn backfill_charges(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    db.execute_unprepared(
        "INSERT INTO ledger_allocations \
           (ledger_entry_id, license_id, product_id, account_id, kind, amount, created_at) \
         SELECT e.id, i.license_id, l.product_id, e.account_id, 'charge', SUM(i.amount), e.created_at \
         FROM ledger_entries e \
         JOIN order_items i ON i.order_id = e.order_id AND i.status = 'fulfilled' \
         JOIN licenses l ON l.id = i.license_id \
         WHERE e.kind = 'charge' AND i.amount > 0 \
           AND NOT EXISTS (SELECT 1 FROM ledger_allocations a WHERE a.ledger_entry_id = e.id) \
         GROUP BY e.id, i.license_id, l.product_id, e.account_id, e.created_at",
    )
    .await?;
    Ok(())
}

/// Refunds written before this migration name their license at the end of the reference
/// (`"configuration change of license <id>"`, `"product change of license <id>"`).
async fn backfill_refunds(db: &impl ConnectionTrait, backend: DbBackend) -> Result<(), DbErr> {
    let sql = match backend {
        // MATERIALIZED: the pattern is checked before any reference is cast to a UUID.
        DbBackend::Postgres => {
            "WITH r AS MATERIALIZED ( \
               SELECT id, account_id, amount, created_at, right(reference, 36) AS license \
               FROM ledger_entries \
               WHERE kind = 'refund' \
                 AND reference ~ ' of license [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' \
                 AND NOT EXISTS (SELECT 1 FROM ledger_allocations a WHERE a.ledger_entry_id = ledger_entries.id)) \
             INSERT INTO ledger_allocations \
               (ledger_entry_id, license_id, product_id, account_id, kind, amount, created_at) \
             SELECT r.id, l.id, l.product_id, r.account_id, 'refund', r.amount, r.created_at \
             FROM r JOIN licenses l ON l.id = CAST(r.license AS uuid)"
        }
        // SQLite keeps UUIDs as 16-byte blobs; `unhex` is NULL for anything but hex.
        _ => {
            "INSERT INTO ledger_allocations \
               (ledger_entry_id, license_id, product_id, account_id, kind, amount, created_at) \
             SELECT e.id, l.id, l.product_id, e.account_id, 'refund', e.amount, e.created_at \
             FROM ledger_entries e \
             JOIN licenses l ON l.id = unhex(replace(substr(e.reference, -36), '-', '')) \
             WHERE e.kind = 'refund' AND e.reference LIKE '% of license %' \
               AND NOT EXISTS (SELECT 1 FROM ledger_allocations a WHERE a.ledger_entry_id = e.id)"
        }
    };
    db.execute_raw(Statement::from_string(backend, sql)).await?;
    Ok(())
}

#[derive(DeriveIden)]
enum Licenses {
    Table,
    LastValidatedAt,
}

#[derive(DeriveIden)]
enum Registrations {
    Table,
    LastIp,
}

#[derive(DeriveIden)]
enum LedgerEntries {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum LedgerAllocations {
    Table,
    LedgerEntryId,
    LicenseId,
    ProductId,
    AccountId,
    Kind,
    Amount,
    CreatedAt,
}
