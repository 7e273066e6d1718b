//! The core tables: accounts, users, credentials, catalog, licenses, money, events, jobs.
//!
//! Times are `timestamp with time zone` on PostgreSQL and RFC 3339 text on SQLite; the
//! application always writes UTC, so text order is time order there too.
use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Accounts::Table)
                .col(id(Accounts::Id))
                .col(text(Accounts::Kind))
                .col(text(Accounts::Name))
                .col(text(Accounts::Currency))
                .col(big(Accounts::Balance))
                .col(big(Accounts::CreditLimit))
                .col(ts(Accounts::CreatedAt))
                .col(ts(Accounts::UpdatedAt))
                .check(Expr::cust("balance + credit_limit >= 0"))
                .check(Expr::cust("credit_limit >= 0"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(id(Users::Id))
                .col(uuid(Users::AccountId))
                .col(text(Users::Email))
                .col(text(Users::PasswordHash))
                .col(text(Users::Role))
                .col(ts(Users::CreatedAt))
                .foreign_key(&mut fk(
                    "fk_users_account",
                    (Users::Table, Users::AccountId),
                    (Accounts::Table, Accounts::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(
            index("ux_users_email", Users::Table, &["email"])
                .unique()
                .take(),
        )
        .await?;
        m.create_index(index("ix_users_account", Users::Table, &["account_id"]))
            .await?;

        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(id(RefreshTokens::Id))
                .col(uuid(RefreshTokens::FamilyId))
                .col(uuid(RefreshTokens::UserId))
                .col(text(RefreshTokens::TokenHash))
                .col(ts(RefreshTokens::ExpiresAt))
                .col(ts_null(RefreshTokens::UsedAt))
                .col(ts_null(RefreshTokens::RevokedAt))
                .col(ts(RefreshTokens::CreatedAt))
                .foreign_key(&mut fk(
                    "fk_refresh_user",
                    (RefreshTokens::Table, RefreshTokens::UserId),
                    (Users::Table, Users::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(
            index("ux_refresh_hash", RefreshTokens::Table, &["token_hash"])
                .unique()
                .take(),
        )
        .await?;
        m.create_index(index(
            "ix_refresh_family",
            RefreshTokens::Table,
            &["family_id"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(id(ApiKeys::Id))
                .col(uuid(ApiKeys::AccountId))
                .col(text(ApiKeys::Name))
                .col(text(ApiKeys::Prefix))
                .col(text(ApiKeys::KeyHash))
                .col(json(ApiKeys::Scopes))
                .col(ts_null(ApiKeys::ExpiresAt))
                .col(ts_null(ApiKeys::LastUsedAt))
                .col(ts_null(ApiKeys::RevokedAt))
                .col(ts(ApiKeys::CreatedAt))
                .foreign_key(&mut fk(
                    "fk_api_keys_account",
                    (ApiKeys::Table, ApiKeys::AccountId),
                    (Accounts::Table, Accounts::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(
            index("ux_api_keys_hash", ApiKeys::Table, &["key_hash"])
                .unique()
                .take(),
        )
        .await?;
        m.create_index(index(
            "ix_api_keys_account",
            ApiKeys::Table,
            &["account_id", "id"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Products::Table)
                .col(id(Products::Id))
                .col(text(Products::Code))
                .col(text(Products::Name))
                .col(json(Products::Prices))
                .col(json(Products::Options))
                .col(int_null(Products::MaxRegistrations))
                .col(boolean(Products::Transferable))
                .col(boolean(Products::Archived))
                .col(ts(Products::CreatedAt))
                .col(ts(Products::UpdatedAt))
                .take(),
        )
        .await?;
        m.create_index(
            index("ux_products_code", Products::Table, &["code"])
                .unique()
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Licenses::Table)
                .col(id(Licenses::Id))
                .col(uuid(Licenses::AccountId))
                .col(uuid(Licenses::ProductId))
                .col(text(Licenses::Name))
                .col(text(Licenses::NameLower))
                .col(text(Licenses::Ip))
                .col(ColumnDef::new(Licenses::IpKey).binary().not_null().take())
                .col(int(Licenses::PeriodMonths))
                .col(ts_null(Licenses::ValidUntil))
                .col(text(Licenses::Status))
                .col(text_null(Licenses::SuspensionReason))
                .col(text_null(Licenses::CameFromStatus))
                .col(text_null(Licenses::CameFromReason))
                .col(text_null(Licenses::ResumesToStatus))
                .col(text_null(Licenses::ResumesToReason))
                .col(json(Licenses::Options))
                .col(int_null(Licenses::AutoRenewMonths))
                .col(text(Licenses::RegistrationKey))
                .col(text(Licenses::RegistrationKeyHash))
                .col(int(Licenses::RegistrationsCount))
                .col(text_null(Licenses::ProvisioningError))
                .col(text_null(Licenses::ExternalId))
                .col(json(Licenses::Metadata))
                .col(blob_null(Licenses::AdminPasswordEnc))
                .col(big(Licenses::Version))
                .col(ts_null(Licenses::ExpiringNoticeFor))
                .col(ts(Licenses::CreatedAt))
                .col(ts(Licenses::UpdatedAt))
                .col(ts_null(Licenses::DeletedAt))
                .foreign_key(&mut fk(
                    "fk_licenses_account",
                    (Licenses::Table, Licenses::AccountId),
                    (Accounts::Table, Accounts::Id),
                ))
                .foreign_key(&mut fk(
                    "fk_licenses_product",
                    (Licenses::Table, Licenses::ProductId),
                    (Products::Table, Products::Id),
                ))
                .take(),
        )
        .await?;
        // The list is always tenant-scoped and keyset-paged; these serve its sorts and filters.
        m.create_index(index(
            "ix_licenses_account_id",
            Licenses::Table,
            &["account_id", "id"],
        ))
        .await?;
        m.create_index(index(
            "ix_licenses_account_valid",
            Licenses::Table,
            &["account_id", "valid_until", "id"],
        ))
        .await?;
        m.create_index(index(
            "ix_licenses_account_name",
            Licenses::Table,
            &["account_id", "name_lower", "id"],
        ))
        .await?;
        m.create_index(index(
            "ix_licenses_account_ip",
            Licenses::Table,
            &["account_id", "ip_key"],
        ))
        .await?;
        m.create_index(index(
            "ix_licenses_account_status",
            Licenses::Table,
            &["account_id", "status", "id"],
        ))
        .await?;
        m.create_index(index(
            "ix_licenses_external",
            Licenses::Table,
            &["account_id", "external_id"],
        ))
        .await?;
        m.create_index(index(
            "ix_licenses_product",
            Licenses::Table,
            &["product_id"],
        ))
        .await?;
        m.create_index(index(
            "ix_licenses_status_valid",
            Licenses::Table,
            &["status", "valid_until"],
        ))
        .await?;
        m.create_index(
            index(
                "ux_licenses_regkey",
                Licenses::Table,
                &["registration_key_hash"],
            )
            .unique()
            .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Orders::Table)
                .col(id(Orders::Id))
                .col(uuid(Orders::AccountId))
                .col(text(Orders::Status))
                .col(big(Orders::Total))
                .col(text(Orders::Currency))
                .col(ts(Orders::CreatedAt))
                .col(ts_null(Orders::PaidAt))
                .col(ts_null(Orders::CancelledAt))
                .foreign_key(&mut fk(
                    "fk_orders_account",
                    (Orders::Table, Orders::AccountId),
                    (Accounts::Table, Accounts::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(index(
            "ix_orders_account",
            Orders::Table,
            &["account_id", "status", "id"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(OrderItems::Table)
                .col(id(OrderItems::Id))
                .col(uuid(OrderItems::OrderId))
                .col(uuid(OrderItems::LicenseId))
                .col(text(OrderItems::Kind))
                .col(int(OrderItems::PeriodMonths))
                .col(big(OrderItems::Amount))
                .col(text(OrderItems::Status))
                .col(json(OrderItems::Payload))
                .col(ts(OrderItems::CreatedAt))
                .foreign_key(&mut fk(
                    "fk_items_order",
                    (OrderItems::Table, OrderItems::OrderId),
                    (Orders::Table, Orders::Id),
                ))
                .foreign_key(&mut fk(
                    "fk_items_license",
                    (OrderItems::Table, OrderItems::LicenseId),
                    (Licenses::Table, Licenses::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(index("ix_items_order", OrderItems::Table, &["order_id"]))
            .await?;
        m.create_index(index(
            "ix_items_license",
            OrderItems::Table,
            &["license_id", "status"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(LedgerEntries::Table)
                .col(id(LedgerEntries::Id))
                .col(uuid(LedgerEntries::AccountId))
                .col(big(LedgerEntries::Amount))
                .col(text(LedgerEntries::Kind))
                .col(text(LedgerEntries::Reference))
                .col(uuid_null(LedgerEntries::OrderId))
                .col(ts(LedgerEntries::CreatedAt))
                .foreign_key(&mut fk(
                    "fk_ledger_account",
                    (LedgerEntries::Table, LedgerEntries::AccountId),
                    (Accounts::Table, Accounts::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(index(
            "ix_ledger_account",
            LedgerEntries::Table,
            &["account_id", "id"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Events::Table)
                .col(id(Events::Id))
                .col(text(Events::Type))
                .col(uuid(Events::AccountId))
                .col(uuid_null(Events::LicenseId))
                .col(text(Events::ActorKind))
                .col(uuid_null(Events::ActorId))
                .col(json_null(Events::Before))
                .col(json_null(Events::After))
                .col(ts(Events::CreatedAt))
                .take(),
        )
        .await?;
        m.create_index(index(
            "ix_events_account",
            Events::Table,
            &["account_id", "id"],
        ))
        .await?;
        m.create_index(index(
            "ix_events_license",
            Events::Table,
            &["license_id", "id"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Settings::Table)
                .col(
                    ColumnDef::new(Settings::Key)
                        .text()
                        .not_null()
                        .primary_key(),
                )
                .col(text(Settings::Value))
                .col(ts(Settings::CreatedAt))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Jobs::Table)
                .col(id(Jobs::Id))
                .col(text(Jobs::Kind))
                .col(json(Jobs::Payload))
                .col(text(Jobs::Status))
                .col(ts(Jobs::RunAt))
                .col(int(Jobs::Attempts))
                .col(int(Jobs::MaxAttempts))
                .col(ts_null(Jobs::LockedUntil))
                .col(text_null(Jobs::LockedBy))
                .col(text_null(Jobs::LastError))
                .col(text_null(Jobs::DedupeKey))
                .col(ts(Jobs::CreatedAt))
                .col(ts(Jobs::UpdatedAt))
                .take(),
        )
        .await?;
        m.create_index(index("ix_jobs_ready", Jobs::Table, &["status", "run_at"]))
            .await?;
        m.create_index(
            index("ux_jobs_dedupe", Jobs::Table, &["dedupe_key"])
                .unique()
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Jobs::Table.into_iden(),
            Settings::Table.into_iden(),
            Events::Table.into_iden(),
            LedgerEntries::Table.into_iden(),
            OrderItems::Table.into_iden(),
            Orders::Table.into_iden(),
            Licenses::Table.into_iden(),
            Products::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Users::Table.into_iden(),
            Accounts::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).take()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Kind,
    Name,
    Currency,
    Balance,
    CreditLimit,
    CreatedAt,
    UpdatedAt,
}
#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    AccountId,
    Email,
    PasswordHash,
    Role,
    CreatedAt,
}
#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    FamilyId,
    UserId,
    TokenHash,
    ExpiresAt,
    UsedAt,
    RevokedAt,
    CreatedAt,
}
#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    AccountId,
    Name,
    Prefix,
    KeyHash,
    Scopes,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
    CreatedAt,
}
#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    Code,
    Name,
    Prices,
    Options,
    MaxRegistrations,
    Transferable,
    Archived,
    CreatedAt,
    UpdatedAt,
}
#[derive(DeriveIden)]
enum Licenses {
    Table,
    Id,
    AccountId,
    ProductId,
    Name,
    NameLower,
    Ip,
    IpKey,
    PeriodMonths,
    ValidUntil,
    Status,
    SuspensionReason,
    CameFromStatus,
    CameFromReason,
    ResumesToStatus,
    ResumesToReason,
    Options,
    AutoRenewMonths,
    RegistrationKey,
    RegistrationKeyHash,
    RegistrationsCount,
    ProvisioningError,
    ExternalId,
    Metadata,
    AdminPasswordEnc,
    Version,
    ExpiringNoticeFor,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}
#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    AccountId,
    Status,
    Total,
    Currency,
    CreatedAt,
    PaidAt,
    CancelledAt,
}
#[derive(DeriveIden)]
enum OrderItems {
    Table,
    Id,
    OrderId,
    LicenseId,
    Kind,
    PeriodMonths,
    Amount,
    Status,
    Payload,
    CreatedAt,
}
#[derive(DeriveIden)]
enum LedgerEntries {
    Table,
    Id,
    AccountId,
    Amount,
    Kind,
    Reference,
    OrderId,
    CreatedAt,
}
#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    Type,
    AccountId,
    LicenseId,
    ActorKind,
    ActorId,
    Before,
    After,
    CreatedAt,
}
#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
    CreatedAt,
}
#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    Payload,
    Status,
    RunAt,
    Attempts,
    MaxAttempts,
    LockedUntil,
    LockedBy,
    LastError,
    DedupeKey,
    CreatedAt,
    UpdatedAt,
}
