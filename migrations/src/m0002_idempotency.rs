//! `idempotency_keys`: the first response to each `Idempotency-Key` of a caller, kept for
//! replays (CONTRACT §5). The primary key `(caller, key)` is what makes two concurrent first
//! attempts agree on one winner.
use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(text(IdempotencyKeys::Caller))
                .col(text(IdempotencyKeys::Key))
                .col(text(IdempotencyKeys::Method))
                .col(text(IdempotencyKeys::Path))
                .col(text(IdempotencyKeys::RequestHash))
                .col(text(IdempotencyKeys::Status))
                .col(
                    ColumnDef::new(IdempotencyKeys::ResponseStatus)
                        .integer()
                        .null(),
                )
                .col(
                    ColumnDef::new(IdempotencyKeys::ResponseHeaders)
                        .json()
                        .null(),
                )
                .col(
                    ColumnDef::new(IdempotencyKeys::ResponseBody)
                        .binary()
                        .null(),
                )
                .col(ts(IdempotencyKeys::CreatedAt))
                .col(ts(IdempotencyKeys::ExpiresAt))
                .primary_key(
                    Index::create()
                        .name("pk_idempotency_keys")
                        .col(IdempotencyKeys::Caller)
                        .col(IdempotencyKeys::Key),
                )
                .check(Expr::cust("status IN ('in_progress', 'done')"))
                .take(),
        )
        .await?;
        // For the purge of expired keys.
        m.create_index(
            Index::create()
                .name("ix_idempotency_keys_expires")
                .table(IdempotencyKeys::Table)
                .col(IdempotencyKeys::ExpiresAt)
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(IdempotencyKeys::Table).take())
            .await
    }
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Caller,
    Key,
    Method,
    Path,
    RequestHash,
    Status,
    ResponseStatus,
    ResponseHeaders,
    ResponseBody,
    CreatedAt,
    ExpiresAt,
}
