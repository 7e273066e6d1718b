//! Users and their password hashes.
use licentia_domain::account::User;
use licentia_domain::auth::Role;
use licentia_domain::ids::{AccountId, UserId};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::Page;
use crate::entities::accounts;
use crate::entities::users::{self, Column, Entity};
use crate::error::{PersistenceError, Result, parse};

impl TryFrom<users::Model> for User {
    type Error = PersistenceError;
    fn try_from(m: users::Model) -> Result<Self> {
        Ok(User {
            id: UserId::from_uuid(m.id),
            account_id: AccountId::from_uuid(m.account_id),
            email: m.email,
            role: parse::<Role>("user.role", &m.role)?,
            created_at: m.created_at,
        })
    }
}

/// Creates a user; a taken e-mail address reports [`PersistenceError::Unique`].
pub async fn create(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    email: &str,
    password_hash: String,
    role: Role,
) -> Result<User> {
    let row = users::ActiveModel {
        id: Set(UserId::new().as_uuid()),
        account_id: Set(account_id.as_uuid()),
        email: Set(licentia_domain::account::normalize_email(email)),
        password_hash: Set(password_hash),
        role: Set(role.as_str().to_owned()),
        created_at: Set(crate::now()),
    };
    Entity::insert(row)
        .exec_with_returning(db)
        .await?
        .try_into()
}

/// A user with the stored password hash, for login.
pub async fn find_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<(User, String)>> {
    let Some(row) = Entity::find()
        .filter(Column::Email.eq(licentia_domain::account::normalize_email(email)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let hash = row.password_hash.clone();
    Ok(Some((User::try_from(row)?, hash)))
}

/// The user and its account, in one statement (authentication's look-up).
pub async fn find_with_account(
    db: &impl ConnectionTrait,
    id: UserId,
) -> Result<Option<(User, licentia_domain::account::Account)>> {
    use sea_orm::FromQueryResult;
    use sea_orm::sea_query::{Asterisk, Expr, ExprTrait, Query};
    let mut q = Query::select();
    q.column((Entity, Asterisk));
    super::select_prefixed::<accounts::Entity>(&mut q, "a_");
    q.from(Entity)
        .inner_join(
            accounts::Entity,
            Expr::col((accounts::Entity, accounts::Column::Id)).equals((Entity, Column::AccountId)),
        )
        .and_where(Expr::col((Entity, Column::Id)).eq(id.as_uuid()));
    let Some(row) = db.query_one(&q).await? else {
        return Ok(None);
    };
    let user = User::try_from(users::Model::from_query_result(&row, "")?)?;
    let account = accounts::Model::from_query_result(&row, "a_")?.try_into()?;
    Ok(Some((user, account)))
}

/// The user's stored password hash.
pub async fn password_hash(db: &impl ConnectionTrait, id: UserId) -> Result<Option<String>> {
    Ok(Entity::find_by_id(id.as_uuid())
        .select_only()
        .column(Column::PasswordHash)
        .into_tuple::<String>()
        .one(db)
        .await?)
}

/// Replaces the user's password hash; false when there is no such user.
pub async fn set_password_hash(db: &impl ConnectionTrait, id: UserId, hash: &str) -> Result<bool> {
    let res = Entity::update_many()
        .col_expr(Column::PasswordHash, sea_orm::sea_query::Expr::value(hash))
        .filter(Column::Id.eq(id.as_uuid()))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

pub async fn find(db: &impl ConnectionTrait, id: UserId) -> Result<Option<User>> {
    Entity::find_by_id(id.as_uuid())
        .one(db)
        .await?
        .map(User::try_from)
        .transpose()
}

pub async fn list_for_account(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    page: Page,
) -> Result<Vec<User>> {
    let mut q = Entity::find()
        .filter(Column::AccountId.eq(account_id.as_uuid()))
        .order_by_asc(Column::Id)
        .limit(page.limit);
    if let Some(after) = page.after {
        q = q.filter(Column::Id.gt(after));
    }
    q.all(db).await?.into_iter().map(User::try_from).collect()
}

/// Deletes the user of that account (with its refresh tokens); false when there is none.
pub async fn delete(db: &impl ConnectionTrait, account_id: AccountId, id: UserId) -> Result<bool> {
    use crate::entities::refresh_tokens;
    let exists = Entity::find_by_id(id.as_uuid())
        .filter(Column::AccountId.eq(account_id.as_uuid()))
        .one(db)
        .await?
        .is_some();
    if !exists {
        return Ok(false);
    }
    refresh_tokens::Entity::delete_many()
        .filter(refresh_tokens::Column::UserId.eq(id.as_uuid()))
        .exec(db)
        .await?;
    let res = Entity::delete_many()
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(Column::AccountId.eq(account_id.as_uuid()))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// How many users the account has with that role (to keep at least one owner).
pub async fn count_with_role(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    role: Role,
) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(Entity::find()
        .filter(Column::AccountId.eq(account_id.as_uuid()))
        .filter(Column::Role.eq(role.as_str()))
        .count(db)
        .await?)
}

/// What [`delete_unless_last`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// No such user in that account (or no such account).
    NotFound,
    /// The user is the account's last with the role that must remain; nothing was deleted.
    Last,
}

/// Deletes the user of that account (with its refresh tokens) unless it is the account's last
/// user with role `keeper`. The check and the delete run in one transaction serialized per
/// account — the account row is locked first (PostgreSQL `FOR NO KEY UPDATE`, which leaves
/// inserts that merely reference the account alone; SQLite has one writer) — so two
/// concurrent deletes of the last two keepers cannot both pass the check.
pub async fn delete_unless_last(
    db: &impl sea_orm::TransactionTrait<Transaction = crate::DatabaseTransaction>,
    account_id: AccountId,
    id: UserId,
    keeper: Role,
) -> Result<DeleteOutcome> {
    let txn = crate::begin(db).await?;
    if !super::accounts::lock(&txn, account_id).await? {
        return Ok(DeleteOutcome::NotFound);
    }
    let Some(user) = Entity::find_by_id(id.as_uuid())
        .filter(Column::AccountId.eq(account_id.as_uuid()))
        .one(&txn)
        .await?
    else {
        return Ok(DeleteOutcome::NotFound);
    };
    if user.role == keeper.as_str() && count_with_role(&txn, account_id, keeper).await? <= 1 {
        return Ok(DeleteOutcome::Last);
    }
    if !delete(&txn, account_id, id).await? {
        return Ok(DeleteOutcome::NotFound);
    }
    txn.commit().await?;
    Ok(DeleteOutcome::Deleted)
}
