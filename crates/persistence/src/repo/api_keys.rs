//! Partner API keys, stored only as SHA-256 hex of the whole key.
use licentia_domain::auth::Scope;
use licentia_domain::ids::{AccountId, ApiKeyId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::accounts;
use crate::entities::api_keys::{self, Column, Entity};
use crate::error::{PersistenceError, Result, parse};

/// A stored API key (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub account_id: AccountId,
    pub name: String,
    /// The key's first characters, to recognise it in lists.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked: bool,
    pub created_at: OffsetDateTime,
}

impl TryFrom<api_keys::Model> for ApiKey {
    type Error = PersistenceError;
    fn try_from(m: api_keys::Model) -> Result<Self> {
        let names: Vec<String> = serde_json::from_value(m.scopes)
            .map_err(|_| PersistenceError::Corrupt(format!("api key {} scopes", m.id)))?;
        Ok(ApiKey {
            id: ApiKeyId::from_uuid(m.id),
            account_id: AccountId::from_uuid(m.account_id),
            name: m.name,
            prefix: m.prefix,
            scopes: names
                .iter()
                .map(|s| parse("api_key.scope", s))
                .collect::<Result<_>>()?,
            expires_at: m.expires_at,
            last_used_at: m.last_used_at,
            revoked: m.revoked_at.is_some(),
            created_at: m.created_at,
        })
    }
}

/// What creating a key stores.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub account_id: AccountId,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<OffsetDateTime>,
}

pub async fn insert(db: &impl ConnectionTrait, new: NewApiKey) -> Result<ApiKey> {
    let scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
    let row = api_keys::ActiveModel {
        id: Set(ApiKeyId::new().as_uuid()),
        account_id: Set(new.account_id.as_uuid()),
        name: Set(new.name),
        prefix: Set(new.prefix),
        key_hash: Set(new.key_hash),
        scopes: Set(serde_json::json!(scopes)),
        expires_at: Set(new.expires_at.map(crate::truncate)),
        last_used_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(crate::now()),
    };
    Entity::insert(row)
        .exec_with_returning(db)
        .await?
        .try_into()
}

/// Keys that are not revoked, each with its account's columns (prefixed `a_`), in one
/// statement; the callers add their conditions.
fn live_keys_with_accounts() -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{Asterisk, ExprTrait, Query};
    let mut q = Query::select();
    q.column((Entity, Asterisk));
    super::select_prefixed::<accounts::Entity>(&mut q, "a_");
    q.from(Entity)
        .inner_join(
            accounts::Entity,
            Expr::col((accounts::Entity, accounts::Column::Id)).equals((Entity, Column::AccountId)),
        )
        .and_where(Expr::col((Entity, Column::RevokedAt)).is_null());
    q
}

/// A row of [`live_keys_with_accounts`]: the key's hash, the key and its account.
fn key_with_account(
    row: &sea_orm::QueryResult,
) -> Result<(String, ApiKey, licentia_domain::account::Account)> {
    use sea_orm::FromQueryResult;
    let model = api_keys::Model::from_query_result(row, "")?;
    let hash = model.key_hash.clone();
    let key = ApiKey::try_from(model)?;
    let account = accounts::Model::from_query_result(row, "a_")?.try_into()?;
    Ok((hash, key, account))
}

/// The live key with this hash (not revoked) and its account, in one statement
/// (authentication's look-up); expiry is the caller's to check.
pub async fn find_with_account(
    db: &impl ConnectionTrait,
    key_hash: &str,
) -> Result<Option<(ApiKey, licentia_domain::account::Account)>> {
    use sea_orm::sea_query::ExprTrait;
    let mut q = live_keys_with_accounts();
    q.and_where(Expr::col((Entity, Column::KeyHash)).eq(key_hash));
    let Some(row) = db.query_one(&q).await? else {
        return Ok(None);
    };
    let (_, key, account) = key_with_account(&row)?;
    Ok(Some((key, account)))
}

/// Live keys (not revoked, not expired at `now`) with their accounts, by key hash: at most
/// `limit`, the most recently used first. What a serving process loads into its key cache when
/// it starts, so that the first request of each partner does not wait on the database.
pub async fn live_with_accounts(
    db: &impl ConnectionTrait,
    now: OffsetDateTime,
    limit: u64,
) -> Result<Vec<(String, ApiKey, licentia_domain::account::Account)>> {
    use sea_orm::sea_query::{ExprTrait, NullOrdering, Order};
    let mut q = live_keys_with_accounts();
    q.cond_where(
        Condition::any()
            .add(Expr::col((Entity, Column::ExpiresAt)).is_null())
            .add(Expr::col((Entity, Column::ExpiresAt)).gt(crate::truncate(now))),
    )
    .order_by_with_nulls(
        (Entity, Column::LastUsedAt),
        Order::Desc,
        NullOrdering::Last,
    )
    .limit(limit);
    db.query_all(&q)
        .await?
        .iter()
        .map(key_with_account)
        .collect()
}

/// Whether [`touch`] would write: the key was never used or not within the last minute.
pub fn touch_due(key: &ApiKey, now: OffsetDateTime) -> bool {
    key.last_used_at
        .is_none_or(|at| at < now - time::Duration::minutes(1))
}

/// The statement of [`touch`].
fn touch_statement(id: ApiKeyId, now: OffsetDateTime) -> sea_orm::sea_query::UpdateStatement {
    use sea_orm::sea_query::{ExprTrait, Query};
    let stale = now - time::Duration::minutes(1);
    Query::update()
        .table(Entity)
        .value(Column::LastUsedAt, crate::truncate(now))
        .and_where(Expr::col(Column::Id).eq(id.as_uuid()))
        .cond_where(
            Condition::any()
                .add(Expr::col(Column::LastUsedAt).is_null())
                .add(Expr::col(Column::LastUsedAt).lt(crate::truncate(stale))),
        )
        .to_owned()
}

/// Records use at most once a minute per key, so authentication does not write on every call.
pub async fn touch(db: &impl ConnectionTrait, id: ApiKeyId, now: OffsetDateTime) -> Result<()> {
    db.execute(&touch_statement(id, now)).await?;
    Ok(())
}

/// [`touch`] on a hot-path connection of the primary ([`crate::hot`]): one round trip on the
/// request's own thread instead of a checkout with a ping. A failure to reach the server is
/// [`PersistenceError::Unavailable`], for the caller to write through [`touch`] instead.
pub async fn touch_hot(
    pool: &crate::hot::HotPool,
    id: ApiKeyId,
    now: OffsetDateTime,
) -> Result<()> {
    pool.execute(&touch_statement(id, now)).await?;
    Ok(())
}

/// The account's live keys, oldest first, keyset-paged by id.
pub async fn list(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<ApiKey>> {
    let mut q = Entity::find()
        .filter(Column::AccountId.eq(account_id.as_uuid()))
        .filter(Column::RevokedAt.is_null())
        .order_by_asc(Column::Id)
        .limit(limit);
    if let Some(after) = after {
        q = q.filter(Column::Id.gt(after));
    }
    q.all(db).await?.into_iter().map(ApiKey::try_from).collect()
}

/// The account's live key with this id.
pub async fn find_live(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    id: ApiKeyId,
) -> Result<Option<ApiKey>> {
    Entity::find_by_id(id.as_uuid())
        .filter(Column::AccountId.eq(account_id.as_uuid()))
        .filter(Column::RevokedAt.is_null())
        .one(db)
        .await?
        .map(ApiKey::try_from)
        .transpose()
}

/// Revokes the account's key; false when there is no such live key.
pub async fn revoke(
    db: &impl ConnectionTrait,
    account_id: AccountId,
    id: ApiKeyId,
) -> Result<bool> {
    let res = Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(crate::now()))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(Column::AccountId.eq(account_id.as_uuid()))
        .filter(Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}
