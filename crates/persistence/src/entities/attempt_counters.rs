//! Row of `attempt_counters`: a rate-limit counter shared by every process.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "attempt_counters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub limit_name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// Unix milliseconds.
    pub window_start_ms: i64,
    pub count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
