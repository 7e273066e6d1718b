//! The Ed25519 keys that sign validations and license files. Exactly one is `current` (a
//! partial unique index enforces it); retired keys stay so that what they signed still verifies.
//! The secret is stored sealed by the caller; this module never sees it in clear.
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    TryInsertResult,
};
use time::OffsetDateTime;

use crate::entities::signing_keys::{self, Column, Entity};
use crate::error::{PersistenceError, Result};

const CURRENT: &str = "current";
const RETIRED: &str = "retired";

/// A stored signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    pub key_id: String,
    /// The raw 32-byte Ed25519 public key.
    pub public_key: [u8; 32],
    /// The 32-byte secret, sealed with the service's encryption key.
    pub private_key_enc: Vec<u8>,
    /// True for the key that signs now.
    pub current: bool,
    pub created_at: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
}

/// A key to store as the current one.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub key_id: String,
    pub public_key: [u8; 32],
    pub private_key_enc: Vec<u8>,
}

impl TryFrom<signing_keys::Model> for StoredKey {
    type Error = PersistenceError;
    fn try_from(m: signing_keys::Model) -> Result<Self> {
        let public_key = <[u8; 32]>::try_from(m.public_key.as_slice()).map_err(|_| {
            PersistenceError::Corrupt(format!("signing key {}: public key", m.key_id))
        })?;
        Ok(StoredKey {
            public_key,
            current: m.status == CURRENT,
            key_id: m.key_id,
            private_key_enc: m.private_key_enc,
            created_at: m.created_at,
            retired_at: m.retired_at,
        })
    }
}

fn row(key: NewKey) -> signing_keys::ActiveModel {
    signing_keys::ActiveModel {
        key_id: Set(key.key_id),
        public_key: Set(key.public_key.to_vec()),
        private_key_enc: Set(key.private_key_enc),
        status: Set(CURRENT.to_owned()),
        created_at: Set(crate::now()),
        retired_at: Set(None),
    }
}

/// The key that signs now, if any.
pub async fn current(db: &impl ConnectionTrait) -> Result<Option<StoredKey>> {
    Entity::find()
        .filter(Column::Status.eq(CURRENT))
        .one(db)
        .await?
        .map(StoredKey::try_from)
        .transpose()
}

/// Every key, the current one first, then the most recently created.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<StoredKey>> {
    let mut keys: Vec<StoredKey> = Entity::find()
        .order_by_desc(Column::CreatedAt)
        .order_by_asc(Column::KeyId)
        .all(db)
        .await?
        .into_iter()
        .map(StoredKey::try_from)
        .collect::<Result<_>>()?;
    keys.sort_by_key(|k| !k.current);
    Ok(keys)
}

/// Stores `key` as the current key unless there already is one (another process started
/// first); true when this one was stored. Callers read [`current`] afterwards either way.
pub async fn insert_if_none(db: &impl ConnectionTrait, key: NewKey) -> Result<bool> {
    // No conflict target: the partial unique index on `status` is the one that can refuse.
    let res = Entity::insert(row(key))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .try_insert()
        .exec(db)
        .await?;
    Ok(matches!(res, TryInsertResult::Inserted(_)))
}

/// Retires the current key (if any) and stores `key` as current; run it in a transaction.
/// A concurrent rotation that committed first makes this one fail with `Unique`: retry it.
pub async fn rotate(db: &impl ConnectionTrait, key: NewKey) -> Result<Option<String>> {
    let retired = current(db).await?.map(|k| k.key_id);
    Entity::update_many()
        .col_expr(Column::Status, Expr::value(RETIRED))
        .col_expr(Column::RetiredAt, Expr::value(Some(crate::now())))
        .filter(Column::Status.eq(CURRENT))
        .exec(db)
        .await?;
    Entity::insert(row(key)).exec(db).await?;
    Ok(retired)
}
