//! Service-wide settings kept in the database, such as generated secrets that every process
//! of one service must share.
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};

use crate::entities::settings::{self, Column, Entity};
use crate::error::{PersistenceError, Result};

pub async fn get(db: &impl ConnectionTrait, key: &str) -> Result<Option<String>> {
    Ok(Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
        .map(|m| m.value))
}

/// Stores `candidate` under `key` unless a value is already there, and returns the stored
/// value: when several processes start at once, they all end up with the first one written.
pub async fn get_or_insert(
    db: &impl ConnectionTrait,
    key: &str,
    candidate: String,
) -> Result<String> {
    let row = settings::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(candidate),
        created_at: Set(crate::now()),
    };
    Entity::insert(row)
        .on_conflict_do_nothing_on([Column::Key])
        .exec(db)
        .await?;
    get(db, key).await?.ok_or(PersistenceError::NotFound)
}
