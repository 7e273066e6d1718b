//! Webhooks (CONTRACT §8): the endpoints partners register and the delivery log, which is
//! also the outbox — a delivery row is written in the same transaction as its event, and a
//! `webhook_delivery` job works it.
//!
//! Deliveries go with their endpoint (`ON DELETE CASCADE`); a job whose delivery is gone
//! finishes without sending.
use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(WebhookEndpoints::Table)
                .col(uuid(WebhookEndpoints::Id).primary_key())
                .col(uuid(WebhookEndpoints::AccountId))
                // The provider's endpoints receive every account's events.
                .col(
                    ColumnDef::new(WebhookEndpoints::AllAccounts)
                        .boolean()
                        .not_null(),
                )
                .col(text(WebhookEndpoints::Url))
                .col(
                    ColumnDef::new(WebhookEndpoints::EventTypes)
                        .json()
                        .not_null(),
                )
                // The signing secret, sealed with the encryption key (it is needed in clear
                // to sign, so it cannot be a hash).
                .col(
                    ColumnDef::new(WebhookEndpoints::SecretEnc)
                        .binary()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(WebhookEndpoints::Enabled)
                        .boolean()
                        .not_null(),
                )
                .col(ts(WebhookEndpoints::CreatedAt))
                .col(ts(WebhookEndpoints::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_webhook_endpoints_account")
                        .from(WebhookEndpoints::Table, WebhookEndpoints::AccountId)
                        .to(Accounts::Table, Accounts::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_webhook_endpoints_account")
                .table(WebhookEndpoints::Table)
                .col(WebhookEndpoints::AccountId)
                .col(WebhookEndpoints::Id)
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebhookDeliveries::Table)
                .col(uuid(WebhookDeliveries::Id).primary_key())
                .col(uuid(WebhookDeliveries::EndpointId))
                .col(uuid(WebhookDeliveries::EventId))
                .col(text(WebhookDeliveries::EventType))
                .col(text(WebhookDeliveries::Status))
                .col(
                    ColumnDef::new(WebhookDeliveries::Attempts)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(WebhookDeliveries::LastStatusCode)
                        .integer()
                        .null(),
                )
                .col(text_null(WebhookDeliveries::LastError))
                .col(ts_null(WebhookDeliveries::NextAttemptAt))
                .col(ts_null(WebhookDeliveries::DeliveredAt))
                .col(ts(WebhookDeliveries::CreatedAt))
                .col(ts(WebhookDeliveries::UpdatedAt))
                .check(Expr::cust("status IN ('pending', 'delivered', 'failed')"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_webhook_deliveries_endpoint")
                        .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                        .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_webhook_deliveries_event")
                        .from(WebhookDeliveries::Table, WebhookDeliveries::EventId)
                        .to(Events::Table, Events::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .take(),
        )
        .await?;
        // The delivery log of one endpoint, newest first.
        m.create_index(
            Index::create()
                .name("ix_webhook_deliveries_endpoint")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::EndpointId)
                .col(WebhookDeliveries::Id)
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(WebhookDeliveries::Table).take())
            .await?;
        m.drop_table(Table::drop().table(WebhookEndpoints::Table).take())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    AccountId,
    AllAccounts,
    Url,
    EventTypes,
    SecretEnc,
    Enabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    EventId,
    EventType,
    Status,
    Attempts,
    LastStatusCode,
    LastError,
    NextAttemptAt,
    DeliveredAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
}
