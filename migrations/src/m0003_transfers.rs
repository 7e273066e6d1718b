//! `transfers`: offers of a license from one partner to another (CONTRACT §6). Only a hash of
//! the secret is kept. A partial unique index allows one `pending` transfer per license, so
//! two concurrent offers cannot both be created, whatever the application checked before.
use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(
    name: &str,
    from: Transfers,
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(Transfers::Table, from)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Restrict)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Transfers::Table)
                .col(
                    ColumnDef::new(Transfers::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(uuid(Transfers::LicenseId))
                .col(uuid(Transfers::FromAccountId))
                .col(uuid(Transfers::ToAccountId))
                .col(ColumnDef::new(Transfers::Status).text().not_null())
                // SHA-256 of the secret (32 bytes); the secret itself is never stored.
                .col(ColumnDef::new(Transfers::SecretHash).binary().not_null())
                .col(
                    ColumnDef::new(Transfers::FailedAttempts)
                        .integer()
                        .not_null()
                        .default(0),
                )
                // What was offered ({name, ip, product_code, …}), shown once the offer is decided.
                .col(ColumnDef::new(Transfers::LicensePreview).json().not_null())
                .col(ts(Transfers::ExpiresAt))
                .col(ts(Transfers::CreatedAt))
                .col(ts(Transfers::UpdatedAt))
                .col(
                    ColumnDef::new(Transfers::DecidedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(&mut fk(
                    "fk_transfers_license",
                    Transfers::LicenseId,
                    (Licenses::Table, Licenses::Id),
                ))
                .foreign_key(&mut fk(
                    "fk_transfers_from_account",
                    Transfers::FromAccountId,
                    (Accounts::Table, Accounts::Id),
                ))
                .foreign_key(&mut fk(
                    "fk_transfers_to_account",
                    Transfers::ToAccountId,
                    (Accounts::Table, Accounts::Id),
                ))
                .check(Expr::cust(
                    "status IN ('pending', 'accepted', 'rejected', 'cancelled', 'expired')",
                ))
                .check(Expr::cust("failed_attempts >= 0"))
                .check(Expr::cust("from_account_id <> to_account_id"))
                .take(),
        )
        .await?;
        // The incoming and outgoing lists: tenant-scoped, filtered by status, keyset by id.
        for (name, col) in [
            ("ix_transfers_to", Transfers::ToAccountId),
            ("ix_transfers_from", Transfers::FromAccountId),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(Transfers::Table)
                    .col(col)
                    .col(Transfers::Status)
                    .col(Transfers::Id)
                    .take(),
            )
            .await?;
        }
        // The sweep of lapsed offers.
        m.create_index(
            Index::create()
                .name("ix_transfers_status_expires")
                .table(Transfers::Table)
                .col(Transfers::Status)
                .col(Transfers::ExpiresAt)
                .take(),
        )
        .await?;
        // One pending transfer per license. SQLite and PostgreSQL both take this partial index.
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_transfers_pending_license ON transfers (license_id) \
                 WHERE status = 'pending'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Transfers::Table).take())
            .await
    }
}

#[derive(Clone, Copy, DeriveIden)]
enum Transfers {
    Table,
    Id,
    LicenseId,
    FromAccountId,
    ToAccountId,
    Status,
    SecretHash,
    FailedAttempts,
    LicensePreview,
    ExpiresAt,
    CreatedAt,
    UpdatedAt,
    DecidedAt,
}

#[derive(DeriveIden)]
enum Licenses {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}
