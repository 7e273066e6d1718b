//! Licensed software (CONTRACT §7): the Ed25519 keys that sign validations and license files,
//! and the machines registered to a license.
//!
//! `signing_keys` has at most one `current` row (a partial unique index), which is what makes
//! concurrent first starts and rotations of several processes agree on one key.
use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SigningKeys::Table)
                .col(text(SigningKeys::KeyId).primary_key())
                .col(blob(SigningKeys::PublicKey))
                .col(blob(SigningKeys::PrivateKeyEnc))
                .col(text(SigningKeys::Status))
                .col(ts(SigningKeys::CreatedAt))
                .col(ts_null(SigningKeys::RetiredAt))
                .check(Expr::cust("status IN ('current', 'retired')"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_signing_keys_current")
                .table(SigningKeys::Table)
                .col(SigningKeys::Status)
                .unique()
                .and_where(Expr::col(SigningKeys::Status).eq("current"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Registrations::Table)
                .col(
                    ColumnDef::new(Registrations::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Registrations::LicenseId).uuid().not_null())
                .col(text(Registrations::Fingerprint))
                .col(text_null(Registrations::Hostname))
                .col(text_null(Registrations::Ip))
                .col(ts(Registrations::CreatedAt))
                .col(ts_null(Registrations::LastSeenAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_registrations_license")
                        .from(Registrations::Table, Registrations::LicenseId)
                        .to(Licenses::Table, Licenses::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        // The seat check, the idempotent re-registration and validation's fingerprint look-up
        // all go through (license_id, fingerprint).
        m.create_index(
            Index::create()
                .name("ux_registrations_license_fingerprint")
                .table(Registrations::Table)
                .col(Registrations::LicenseId)
                .col(Registrations::Fingerprint)
                .unique()
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Registrations::Table).take())
            .await?;
        m.drop_table(Table::drop().table(SigningKeys::Table).take())
            .await
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    KeyId,
    PublicKey,
    PrivateKeyEnc,
    Status,
    CreatedAt,
    RetiredAt,
}

#[derive(DeriveIden)]
enum Registrations {
    Table,
    Id,
    LicenseId,
    Fingerprint,
    Hostname,
    Ip,
    CreatedAt,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum Licenses {
    Table,
    Id,
}
