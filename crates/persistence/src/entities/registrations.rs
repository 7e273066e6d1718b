//! Row of `registrations`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "registrations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub license_id: Uuid,
    pub fingerprint: String,
    pub hostname: Option<String>,
    pub ip: Option<String>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub last_seen_at: Option<TimeDateTimeWithTimeZone>,
    /// The address of the last validation or registration naming the fingerprint.
    pub last_ip: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
