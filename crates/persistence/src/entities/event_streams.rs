//! Row of `event_streams`: one open `GET /v1/events/stream`, leased until `expires_at_ms`
//! (Unix milliseconds) and renewed while it stays open, so that the per-account cap counts
//! the streams of every process and a crashed process's streams lapse.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "event_streams")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub expires_at_ms: i64,
    pub created_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
