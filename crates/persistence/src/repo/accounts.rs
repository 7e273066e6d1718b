//! Accounts: the provider and its partners, with balance and credit limit.
use licentia_domain::account::Account;
use licentia_domain::auth::AccountKind;
use licentia_domain::ids::AccountId;
use licentia_domain::money::Currency;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::Page;
use crate::entities::accounts::{self, Column, Entity};
use crate::error::{PersistenceError, Result, parse};

/// What creating an account needs.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub id: AccountId,
    pub kind: AccountKind,
    pub name: String,
    pub currency: Currency,
    pub credit_limit: i64,
}

impl TryFrom<accounts::Model> for Account {
    type Error = PersistenceError;
    fn try_from(m: accounts::Model) -> Result<Self> {
        Ok(Account {
            id: AccountId::from_uuid(m.id),
            kind: parse("account.kind", &m.kind)?,
            name: m.name,
            currency: Currency::parse(&m.currency).map_err(|_| {
                PersistenceError::Corrupt(format!("account.currency: {}", m.currency))
            })?,
            balance: m.balance,
            credit_limit: m.credit_limit,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

pub async fn create(db: &impl ConnectionTrait, new: NewAccount) -> Result<Account> {
    let now = crate::now();
    let row = accounts::ActiveModel {
        id: Set(new.id.as_uuid()),
        kind: Set(new.kind.as_str().to_owned()),
        name: Set(new.name),
        currency: Set(new.currency.as_str().to_owned()),
        balance: Set(0),
        credit_limit: Set(new.credit_limit),
        created_at: Set(now),
        updated_at: Set(now),
    };
    Entity::insert(row)
        .exec_with_returning(db)
        .await?
        .try_into()
}

pub async fn find(db: &impl ConnectionTrait, id: AccountId) -> Result<Option<Account>> {
    Entity::find_by_id(id.as_uuid())
        .one(db)
        .await?
        .map(Account::try_from)
        .transpose()
}

/// Locks the account row for the rest of the transaction (PostgreSQL `FOR NO KEY UPDATE`:
/// it serialises the account's money paths without blocking inserts that merely reference the
/// account; SQLite has one writer already). Every path that changes an account's orders,
/// licenses or balance takes this lock first (see [`super::licenses::lock`] and
/// [`super::orders::lock`]), so those paths never deadlock one another. `false` when there is
/// no such account.
pub async fn lock(db: &impl ConnectionTrait, id: AccountId) -> Result<bool> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(true);
    }
    Ok(Entity::find_by_id(id.as_uuid())
        .select_only()
        .column(Column::Id)
        .lock(sea_orm::sea_query::LockType::NoKeyUpdate)
        .into_tuple::<uuid::Uuid>()
        .one(db)
        .await?
        .is_some())
}

pub async fn get(db: &impl ConnectionTrait, id: AccountId) -> Result<Account> {
    find(db, id).await?.ok_or(PersistenceError::NotFound)
}

/// The provider's own account, if the service has been bootstrapped.
pub async fn find_provider(db: &impl ConnectionTrait) -> Result<Option<Account>> {
    Entity::find()
        .filter(Column::Kind.eq(AccountKind::Provider.as_str()))
        .order_by_asc(Column::Id)
        .one(db)
        .await?
        .map(Account::try_from)
        .transpose()
}

pub async fn list(db: &impl ConnectionTrait, page: Page) -> Result<Vec<Account>> {
    let mut q = Entity::find().order_by_asc(Column::Id).limit(page.limit);
    if let Some(after) = page.after {
        q = q.filter(Column::Id.gt(after));
    }
    q.all(db)
        .await?
        .into_iter()
        .map(Account::try_from)
        .collect()
}

/// Outcome of a credit-limit change that would leave the balance below `-credit_limit`.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated(Account),
    WouldBreachCredit,
}

/// Changes name and/or credit limit. The credit limit only shrinks as far as the current
/// debt allows; the check and the write are one statement so concurrent charges cannot slip in.
pub async fn update(
    db: &impl ConnectionTrait,
    id: AccountId,
    name: Option<String>,
    credit_limit: Option<i64>,
) -> Result<UpdateOutcome> {
    let mut q = Entity::update_many()
        .col_expr(Column::UpdatedAt, Expr::value(crate::now()))
        .filter(Column::Id.eq(id.as_uuid()));
    if let Some(name) = name {
        q = q.col_expr(Column::Name, Expr::value(name));
    }
    if let Some(limit) = credit_limit {
        q = q
            .col_expr(Column::CreditLimit, Expr::value(limit))
            .filter(Expr::col(Column::Balance).add(limit).gte(0));
    }
    let res = q.exec(db).await?;
    let account = get(db, id).await?;
    Ok(if res.rows_affected == 1 {
        UpdateOutcome::Updated(account)
    } else {
        UpdateOutcome::WouldBreachCredit
    })
}
