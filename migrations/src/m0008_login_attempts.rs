//! `attempt_counters`: rate-limit counters shared by every process of a deployment (CONTRACT
//! §9) — failed logins per (account, client address), transfer accepts per receiving account.
//!
//! One row per (limit, key): the attempts counted since `window_start_ms` (Unix milliseconds:
//! an integer compares the same on both databases, unlike SQLite's timestamp text). An attempt
//! is counted with one `INSERT … ON CONFLICT DO UPDATE … RETURNING`, atomically on SQLite and
//! PostgreSQL, before the attempt is checked; a window that has passed starts again at the
//! attempt.
use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AttemptCounters::Table)
                .col(text(AttemptCounters::LimitName))
                .col(text(AttemptCounters::Key))
                .col(big(AttemptCounters::WindowStartMs))
                .col(big(AttemptCounters::Count))
                .primary_key(
                    Index::create()
                        .name("pk_attempt_counters")
                        .col(AttemptCounters::LimitName)
                        .col(AttemptCounters::Key),
                )
                .check(Expr::cust("count >= 0"))
                .take(),
        )
        .await?;
        // For the purge of windows that have passed.
        m.create_index(index(
            "ix_attempt_counters_window_start_ms",
            AttemptCounters::Table,
            &["window_start_ms"],
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AttemptCounters::Table).take())
            .await
    }
}

#[derive(DeriveIden)]
enum AttemptCounters {
    Table,
    LimitName,
    Key,
    WindowStartMs,
    Count,
}
