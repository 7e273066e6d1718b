//! Bulk operations (CONTRACT §4 "Bulk"): one row per request, and one row per matched license
//! that holds its result once the job has applied (or, in a dry run, evaluated) it.
//!
//! The matching set is fixed when the operation is created; the job walks the items whose
//! `result` is still null, so a job interrupted halfway resumes where it stopped.
use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(BulkOperations::Table)
                .col(
                    ColumnDef::new(BulkOperations::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(uuid(BulkOperations::AccountId))
                .col(text(BulkOperations::ActorKind))
                .col(ColumnDef::new(BulkOperations::ActorId).uuid().null())
                .col(ColumnDef::new(BulkOperations::Admin).boolean().not_null())
                .col(text(BulkOperations::Action))
                .col(ColumnDef::new(BulkOperations::Params).json().not_null())
                .col(ColumnDef::new(BulkOperations::DryRun).boolean().not_null())
                .col(text(BulkOperations::Status))
                .col(ColumnDef::new(BulkOperations::Total).integer().not_null())
                .col(
                    ColumnDef::new(BulkOperations::SimulatedSpend)
                        .json()
                        .not_null(),
                )
                .col(text_null(BulkOperations::LastError))
                .col(ts(BulkOperations::CreatedAt))
                .col(ts(BulkOperations::UpdatedAt))
                .col(ts_null(BulkOperations::FinishedAt))
                .check(Expr::cust(
                    "status IN ('pending', 'running', 'completed', 'failed')",
                ))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_bulk_operations_account")
                        .from(BulkOperations::Table, BulkOperations::AccountId)
                        .to(Accounts::Table, Accounts::Id),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_bulk_operations_account")
                .table(BulkOperations::Table)
                .col(BulkOperations::AccountId)
                .col(BulkOperations::Id)
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(BulkOperationItems::Table)
                .col(uuid(BulkOperationItems::OperationId))
                .col(uuid(BulkOperationItems::LicenseId))
                .col(text_null(BulkOperationItems::Result))
                .primary_key(
                    Index::create()
                        .name("pk_bulk_operation_items")
                        .col(BulkOperationItems::OperationId)
                        .col(BulkOperationItems::LicenseId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_bulk_operation_items_operation")
                        .from(BulkOperationItems::Table, BulkOperationItems::OperationId)
                        .to(BulkOperations::Table, BulkOperations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_bulk_operation_items_license")
                        .from(BulkOperationItems::Table, BulkOperationItems::LicenseId)
                        .to(Licenses::Table, Licenses::Id),
                )
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(BulkOperationItems::Table).take())
            .await?;
        m.drop_table(Table::drop().table(BulkOperations::Table).take())
            .await
    }
}

#[derive(DeriveIden)]
enum BulkOperations {
    Table,
    Id,
    AccountId,
    ActorKind,
    ActorId,
    Admin,
    Action,
    Params,
    DryRun,
    Status,
    Total,
    SimulatedSpend,
    LastError,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum BulkOperationItems {
    Table,
    OperationId,
    LicenseId,
    Result,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Licenses {
    Table,
    Id,
}
