//! Refresh tokens: opaque, stored as SHA-256 hex, rotated on every use, grouped in families
//! so that the reuse of a rotated token revokes every descendant.
use licentia_domain::ids::{RefreshTokenId, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::refresh_tokens::{self, Column, Entity};
use crate::error::Result;

/// A stored refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    pub id: RefreshTokenId,
    pub family_id: Uuid,
    pub user_id: UserId,
    pub expires_at: OffsetDateTime,
    pub used: bool,
    pub revoked: bool,
}

impl From<refresh_tokens::Model> for RefreshToken {
    fn from(m: refresh_tokens::Model) -> Self {
        RefreshToken {
            id: RefreshTokenId::from_uuid(m.id),
            family_id: m.family_id,
            user_id: UserId::from_uuid(m.user_id),
            expires_at: m.expires_at,
            used: m.used_at.is_some(),
            revoked: m.revoked_at.is_some(),
        }
    }
}

pub async fn insert(
    db: &impl ConnectionTrait,
    user_id: UserId,
    family_id: Uuid,
    token_hash: String,
    expires_at: OffsetDateTime,
) -> Result<RefreshToken> {
    let row = refresh_tokens::ActiveModel {
        id: Set(RefreshTokenId::new().as_uuid()),
        family_id: Set(family_id),
        user_id: Set(user_id.as_uuid()),
        token_hash: Set(token_hash),
        expires_at: Set(crate::truncate(expires_at)),
        used_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(crate::now()),
    };
    Ok(Entity::insert(row).exec_with_returning(db).await?.into())
}

pub async fn find_by_hash(
    db: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<RefreshToken>> {
    Ok(Entity::find()
        .filter(Column::TokenHash.eq(token_hash))
        .one(db)
        .await?
        .map(Into::into))
}

/// Marks the token used; true only for the one caller that wins a race on it.
pub async fn mark_used(db: &impl ConnectionTrait, id: RefreshTokenId) -> Result<bool> {
    let res = Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(crate::now()))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(Column::UsedAt.is_null())
        .filter(Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Revokes every token of the family.
/// Revokes every refresh token family of the user (a password change signs it out everywhere).
pub async fn revoke_all_of_user(db: &impl ConnectionTrait, user: UserId) -> Result<()> {
    Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(crate::now()))
        .filter(Column::UserId.eq(user.as_uuid()))
        .filter(Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

pub async fn revoke_family(db: &impl ConnectionTrait, family_id: Uuid) -> Result<()> {
    Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(crate::now()))
        .filter(Column::FamilyId.eq(family_id))
        .filter(Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}
