//! Row of `ledger_allocations`: the share of one charge or refund that was for one license.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_allocations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub ledger_entry_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub license_id: Uuid,
    pub product_id: Uuid,
    pub account_id: Uuid,
    /// `charge` or `refund`, as the entry.
    pub kind: String,
    /// Positive minor units.
    pub amount: i64,
    pub created_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
