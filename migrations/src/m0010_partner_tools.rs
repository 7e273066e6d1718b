//! Partner tools (CONTRACT §12).
//!
//! - Causes and notes of disables and deletes on `licenses`.
//! - Trials: `products.trial_days`, `licenses.trial`, and the two keys that allow one trial
//!   per product and account (`trials`) and one per product and address (`trial_addresses`,
//!   keyed by the canonical 16-byte address) — unique keys, so concurrent requests on any
//!   number of processes cannot both take a trial.
//! - Live event streams: `events.txid` (PostgreSQL: the writing transaction's id, a column
//!   default) orders the log by commit for streams; SQLite streams use the `rowid`.
//!   `event_streams` leases the open streams, for the per-account cap.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        m.alter_table(
            Table::alter()
                .table(Products::Table)
                .add_column(
                    ColumnDef::new(Products::TrialDays)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Licenses::Table)
                .add_column(
                    ColumnDef::new(Licenses::Trial)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .take(),
        )
        .await?;
        for col in [
            Licenses::SuspensionCause,
            Licenses::SuspensionNote,
            Licenses::DeletionCause,
            Licenses::DeletionNote,
        ] {
            m.alter_table(
                Table::alter()
                    .table(Licenses::Table)
                    .add_column(text_null(col))
                    .take(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(Trials::Table)
                .col(uuid(Trials::LicenseId).primary_key())
                .col(uuid(Trials::ProductId))
                .col(uuid(Trials::AccountId))
                .col(ts(Trials::CreatedAt))
                .foreign_key(&mut fk(
                    "fk_trials_license",
                    (Trials::Table, Trials::LicenseId),
                    (Licenses::Table, Licenses::Id),
                ))
                .foreign_key(&mut fk(
                    "fk_trials_product",
                    (Trials::Table, Trials::ProductId),
                    (Products::Table, Products::Id),
                ))
                .foreign_key(&mut fk(
                    "fk_trials_account",
                    (Trials::Table, Trials::AccountId),
                    (Accounts::Table, Accounts::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_trials_product_account")
                .table(Trials::Table)
                .col(Trials::ProductId)
                .col(Trials::AccountId)
                .unique()
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TrialAddresses::Table)
                .col(uuid(TrialAddresses::ProductId))
                .col(blob(TrialAddresses::IpKey))
                .col(text(TrialAddresses::Ip))
                .col(uuid(TrialAddresses::LicenseId))
                .col(ts(TrialAddresses::CreatedAt))
                .primary_key(
                    Index::create()
                        .name("pk_trial_addresses")
                        .col(TrialAddresses::ProductId)
                        .col(TrialAddresses::IpKey),
                )
                .foreign_key(&mut fk(
                    "fk_trial_addresses_license",
                    (TrialAddresses::Table, TrialAddresses::LicenseId),
                    (Licenses::Table, Licenses::Id),
                ))
                .foreign_key(&mut fk(
                    "fk_trial_addresses_product",
                    (TrialAddresses::Table, TrialAddresses::ProductId),
                    (Products::Table, Products::Id),
                ))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(EventStreams::Table)
                .col(uuid(EventStreams::Id).primary_key())
                .col(uuid(EventStreams::AccountId))
                .col(big(EventStreams::ExpiresAtMs))
                .col(ts(EventStreams::CreatedAt))
                .take(),
        )
        .await?;
        m.create_index(index(
            "ix_event_streams_account",
            EventStreams::Table,
            &["account_id", "expires_at_ms"],
        ))
        .await?;

        if m.get_database_backend() == DbBackend::Postgres {
            let db = m.get_connection();
            // Existing rows get this migration's transaction id: all older than any new event.
            db.execute_unprepared(
                "ALTER TABLE events ADD COLUMN txid bigint NOT NULL \
                 DEFAULT (pg_current_xact_id()::text::bigint)",
            )
            .await?;
            db.execute_unprepared("CREATE INDEX ix_events_txid ON events (txid, id)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection()
                .execute_unprepared("ALTER TABLE events DROP COLUMN IF EXISTS txid")
                .await?;
        }
        m.drop_table(Table::drop().table(EventStreams::Table).take())
            .await?;
        m.drop_table(Table::drop().table(TrialAddresses::Table).take())
            .await?;
        m.drop_table(Table::drop().table(Trials::Table).take())
            .await?;
        for col in [
            Licenses::DeletionNote,
            Licenses::DeletionCause,
            Licenses::SuspensionNote,
            Licenses::SuspensionCause,
            Licenses::Trial,
        ] {
            m.alter_table(
                Table::alter()
                    .table(Licenses::Table)
                    .drop_column(col)
                    .take(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Products::Table)
                .drop_column(Products::TrialDays)
                .take(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    TrialDays,
}

#[derive(DeriveIden)]
enum Licenses {
    Table,
    Id,
    Trial,
    SuspensionCause,
    SuspensionNote,
    DeletionCause,
    DeletionNote,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Trials {
    Table,
    LicenseId,
    ProductId,
    AccountId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TrialAddresses {
    Table,
    ProductId,
    IpKey,
    Ip,
    LicenseId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum EventStreams {
    Table,
    Id,
    AccountId,
    ExpiresAtMs,
    CreatedAt,
}
