//! An index for the expiring-licenses report of one partner (CONTRACT §11): active or
//! suspended licenses of an account whose `valid_until` falls in a window, answered from the
//! index alone — (account, status, valid_until) — instead of reading every matching license
//! row to check its status. Across accounts, `ix_licenses_status_valid` does the same.
use sea_orm_migration::prelude::*;

use crate::columns::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(index(
            "ix_licenses_account_status_valid",
            Licenses::Table,
            &["account_id", "status", "valid_until"],
        ))
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_licenses_account_status_valid")
                .table(Licenses::Table)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Licenses {
    Table,
}
