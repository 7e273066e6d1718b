//! Row of `signing_keys`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_id: String,
    pub public_key: Vec<u8>,
    /// The 32-byte secret, sealed with the service's encryption key.
    pub private_key_enc: Vec<u8>,
    pub status: String,
    pub created_at: TimeDateTimeWithTimeZone,
    pub retired_at: Option<TimeDateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
