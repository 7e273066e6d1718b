//! Row of `licenses`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "licenses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub product_id: Uuid,
    pub name: String,
    pub name_lower: String,
    pub ip: String,
    pub ip_key: Vec<u8>,
    pub period_months: i32,
    pub valid_until: Option<TimeDateTimeWithTimeZone>,
    pub status: String,
    pub suspension_reason: Option<String>,
    pub came_from_status: Option<String>,
    pub came_from_reason: Option<String>,
    pub resumes_to_status: Option<String>,
    pub resumes_to_reason: Option<String>,
    pub options: Json,
    pub auto_renew_months: Option<i32>,
    pub registration_key: String,
    pub registration_key_hash: String,
    pub registrations_count: i32,
    pub provisioning_error: Option<String>,
    pub external_id: Option<String>,
    pub metadata: Json,
    pub admin_password_enc: Option<Vec<u8>>,
    pub trial: bool,
    pub suspension_cause: Option<String>,
    pub suspension_note: Option<String>,
    pub deletion_cause: Option<String>,
    pub deletion_note: Option<String>,
    pub version: i64,
    pub expiring_notice_for: Option<TimeDateTimeWithTimeZone>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub updated_at: TimeDateTimeWithTimeZone,
    pub deleted_at: Option<TimeDateTimeWithTimeZone>,
    /// The last validation of the license's key (written by the usage flush only).
    pub last_validated_at: Option<TimeDateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
