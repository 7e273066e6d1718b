//! Licenses. Reads are tenant-scoped through [`Scope`]; writes are optimistic on `version`
//! after the row was locked by [`lock`], so concurrent requests serialize instead of failing.
use std::collections::BTreeMap;
use std::net::IpAddr;

use licentia_domain::ids::{AccountId, LicenseId, ProductId};
use licentia_domain::license::{Lifecycle, Settled};
use licentia_domain::license_record::{Annotation, License, ip_key};
use licentia_domain::period::Period;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, Order,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::licenses::{self, Column, Entity};
use crate::error::{PersistenceError, Result, parse};

pub mod decode;
mod due;
mod query;
mod versions;

pub use due::*;
pub use query::*;
pub use versions::*;

/// Whose licenses a query may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One partner's (or the provider's own) licenses.
    Tenant(AccountId),
    /// Every license: provider staff and system jobs.
    All,
}

impl Scope {
    fn condition(self) -> Condition {
        match self {
            Scope::Tenant(account) => Condition::all().add(Column::AccountId.eq(account.as_uuid())),
            Scope::All => Condition::all(),
        }
    }
}

fn settled(status: Option<&str>, reason: Option<&str>) -> Result<Option<Settled>> {
    match status {
        None => Ok(None),
        Some(s) => Ok(Some(Settled {
            status: parse("license.settled.status", s)?,
            reason: reason
                .map(|r| parse("license.settled.reason", r))
                .transpose()?,
        })),
    }
}

impl TryFrom<licenses::Model> for License {
    type Error = PersistenceError;
    fn try_from(m: licenses::Model) -> Result<Self> {
        let id = m.id;
        let corrupt = |what: &str| PersistenceError::Corrupt(format!("license {id}: {what}"));
        let options: BTreeMap<String, u32> =
            serde_json::from_value(m.options).map_err(|_| corrupt("options"))?;
        let metadata: BTreeMap<String, String> =
            serde_json::from_value(m.metadata).map_err(|_| corrupt("metadata"))?;
        Ok(License {
            id: LicenseId::from_uuid(id),
            account_id: AccountId::from_uuid(m.account_id),
            product_id: ProductId::from_uuid(m.product_id),
            ip: m.ip.parse::<IpAddr>().map_err(|_| corrupt("ip"))?,
            period: Period::new(i64::from(m.period_months))
                .map_err(|_| corrupt("period_months"))?,
            lifecycle: Lifecycle {
                status: parse("license.status", &m.status)?,
                suspension_reason: m
                    .suspension_reason
                    .as_deref()
                    .map(|r| parse("license.reason", r))
                    .transpose()?,
                valid_until: m.valid_until,
                came_from: settled(m.came_from_status.as_deref(), m.came_from_reason.as_deref())?,
                resumes_to: settled(
                    m.resumes_to_status.as_deref(),
                    m.resumes_to_reason.as_deref(),
                )?,
            },
            options,
            auto_renew: m
                .auto_renew_months
                .map(|n| Period::new(i64::from(n)).map_err(|_| corrupt("auto_renew_months")))
                .transpose()?,
            registration_key: m.registration_key,
            registrations_count: u32::try_from(m.registrations_count).unwrap_or(0),
            provisioning_error: m.provisioning_error,
            external_id: m.external_id,
            metadata,
            trial: m.trial,
            suspension: annotation(m.suspension_cause.as_deref(), m.suspension_note)?,
            deletion: annotation(m.deletion_cause.as_deref(), m.deletion_note)?,
            version: m.version,
            name: m.name,
            created_at: m.created_at,
            updated_at: m.updated_at,
            last_validated_at: m.last_validated_at,
        })
    }
}

fn annotation(cause: Option<&str>, note: Option<String>) -> Result<Annotation> {
    Ok(Annotation {
        cause: cause.map(|c| parse("license.cause", c)).transpose()?,
        note,
    })
}

/// SHA-256 hex of a registration key: the indexed look-up column.
pub fn registration_key_hash(key: &str) -> String {
    hex::encode(licentia_domain::transfer::hash_secret(key))
}

fn row(l: &License) -> licenses::ActiveModel {
    let lc = &l.lifecycle;
    licenses::ActiveModel {
        id: Set(l.id.as_uuid()),
        account_id: Set(l.account_id.as_uuid()),
        product_id: Set(l.product_id.as_uuid()),
        name: Set(l.name.clone()),
        name_lower: Set(l.name.to_lowercase()),
        ip: Set(l.ip.to_string()),
        ip_key: Set(ip_key(l.ip).to_vec()),
        period_months: Set(l.period.months() as i32),
        valid_until: Set(lc.valid_until.map(crate::truncate)),
        status: Set(lc.status.as_str().to_owned()),
        suspension_reason: Set(lc.suspension_reason.map(|r| r.as_str().to_owned())),
        came_from_status: Set(lc.came_from.map(|s| s.status.as_str().to_owned())),
        came_from_reason: Set(lc
            .came_from
            .and_then(|s| s.reason)
            .map(|r| r.as_str().to_owned())),
        resumes_to_status: Set(lc.resumes_to.map(|s| s.status.as_str().to_owned())),
        resumes_to_reason: Set(lc
            .resumes_to
            .and_then(|s| s.reason)
            .map(|r| r.as_str().to_owned())),
        options: Set(serde_json::to_value(&l.options).unwrap_or_default()),
        auto_renew_months: Set(l.auto_renew.map(|p| p.months() as i32)),
        registration_key: Set(l.registration_key.clone()),
        registration_key_hash: Set(registration_key_hash(&l.registration_key)),
        registrations_count: Set(i32::try_from(l.registrations_count).unwrap_or(i32::MAX)),
        provisioning_error: Set(l.provisioning_error.clone()),
        external_id: Set(l.external_id.clone()),
        metadata: Set(serde_json::to_value(&l.metadata).unwrap_or_default()),
        admin_password_enc: sea_orm::ActiveValue::NotSet,
        trial: Set(l.trial),
        suspension_cause: Set(l.suspension.cause.map(|c| c.as_str().to_owned())),
        suspension_note: Set(l.suspension.note.clone()),
        deletion_cause: Set(l.deletion.cause.map(|c| c.as_str().to_owned())),
        deletion_note: Set(l.deletion.note.clone()),
        version: Set(l.version),
        expiring_notice_for: sea_orm::ActiveValue::NotSet,
        created_at: Set(crate::truncate(l.created_at)),
        updated_at: Set(crate::truncate(l.updated_at)),
        deleted_at: sea_orm::ActiveValue::NotSet,
        // Usage moves only forward, through `repo::usage`: a save never writes it back.
        last_validated_at: sea_orm::ActiveValue::NotSet,
    }
}

/// Inserts a new license (version 1).
pub async fn insert(
    db: &impl ConnectionTrait,
    license: &License,
    admin_password_enc: Option<Vec<u8>>,
) -> Result<License> {
    let mut r = row(license);
    r.admin_password_enc = Set(admin_password_enc);
    r.expiring_notice_for = Set(None);
    r.deleted_at = Set(None);
    Entity::insert(r).exec_with_returning(db).await?.try_into()
}

/// Inserts many licenses in as few statements as possible (bulk loading: `licentia seed`).
/// Each row is written exactly as [`insert`] writes it. PostgreSQL takes at most 65,535 bound
/// values per statement, so the batch is split into statements of as many rows as that allows
/// for the table's columns.
pub async fn insert_batch(db: &impl ConnectionTrait, batch: &[License]) -> Result<()> {
    use sea_orm::Iterable;
    let columns = Column::iter().count().max(1);
    let per_statement = (u16::MAX as usize / columns).max(1);
    for chunk in batch.chunks(per_statement) {
        let rows = chunk.iter().map(|l| {
            let mut r = row(l);
            r.admin_password_enc = Set(None);
            r.expiring_notice_for = Set(None);
            r.deleted_at = Set(None);
            r
        });
        Entity::insert_many(rows).exec_without_returning(db).await?;
    }
    Ok(())
}

/// Finds a license the scope may see.
pub async fn find(
    db: &impl ConnectionTrait,
    scope: Scope,
    id: LicenseId,
) -> Result<Option<License>> {
    Entity::find_by_id(id.as_uuid())
        .filter(scope.condition())
        .one(db)
        .await?
        .map(License::try_from)
        .transpose()
}

/// A license the scope may see with its product, in one statement (the read behind
/// `GET /v1/licenses/{id}` and every route that shows a license).
pub async fn find_with_product(
    db: &impl ConnectionTrait,
    scope: Scope,
    id: LicenseId,
) -> Result<Option<(License, licentia_domain::product::Product)>> {
    use crate::entities::products;
    use sea_orm::FromQueryResult;
    use sea_orm::sea_query::{Asterisk, Query};
    let mut q = Query::select();
    q.column((Entity, Asterisk));
    super::select_prefixed::<products::Entity>(&mut q, "p_");
    q.from(Entity)
        .inner_join(
            products::Entity,
            Expr::col((products::Entity, products::Column::Id)).equals((Entity, Column::ProductId)),
        )
        .and_where(Expr::col((Entity, Column::Id)).eq(id.as_uuid()));
    if let Scope::Tenant(account) = scope {
        q.and_where(Expr::col((Entity, Column::AccountId)).eq(account.as_uuid()));
    }
    let Some(row) = db.query_one(&q).await? else {
        return Ok(None);
    };
    let license = License::try_from(licenses::Model::from_query_result(&row, "")?)?;
    let product = products::Model::from_query_result(&row, "p_")?.try_into()?;
    Ok(Some((license, product)))
}

/// Reads and locks the row for the rest of the transaction (PostgreSQL `FOR UPDATE`; SQLite
/// has one writer already).
///
/// The license's account is locked first ([`super::accounts::lock`]): the account, then its
/// orders, then its licenses is the one lock order of every path that moves money or changes
/// what a pending order item was priced for. On PostgreSQL both locks are taken inside a
/// savepoint: when the license changed owner between the read of its account and the lock,
/// rolling back to it releases both, and the new owner is locked in turn — never while holding
/// the license, which would invert the order.
pub async fn lock(
    db: &impl ConnectionTrait,
    scope: Scope,
    id: LicenseId,
) -> Result<Option<License>> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return lock_row(db, scope, id).await;
    }
    for _ in 0..3 {
        let Some(owner) = Entity::find_by_id(id.as_uuid())
            .filter(scope.condition())
            .select_only()
            .column(Column::AccountId)
            .into_tuple::<Uuid>()
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        db.execute_unprepared("SAVEPOINT licentia_license_lock")
            .await?;
        super::accounts::lock(db, AccountId::from_uuid(owner)).await?;
        let locked = lock_row(db, scope, id).await?;
        if locked
            .as_ref()
            .is_none_or(|l| l.account_id.as_uuid() == owner)
        {
            db.execute_unprepared("RELEASE SAVEPOINT licentia_license_lock")
                .await?;
            return Ok(locked);
        }
        db.execute_unprepared("ROLLBACK TO SAVEPOINT licentia_license_lock")
            .await?;
    }
    Err(PersistenceError::Transient(
        "the license changed owner repeatedly while being locked".into(),
    ))
}

async fn lock_row(
    db: &impl ConnectionTrait,
    scope: Scope,
    id: LicenseId,
) -> Result<Option<License>> {
    Entity::find_by_id(id.as_uuid())
        .filter(scope.condition())
        .lock_exclusive()
        .one(db)
        .await?
        .map(License::try_from)
        .transpose()
}

/// Writes every mutable field if the stored version is still `license.version`, bumping it.
/// Returns the saved license; `NotFound` when the version moved (callers lock first).
pub async fn save(
    db: &impl ConnectionTrait,
    license: &License,
    admin_password_enc: Option<Option<Vec<u8>>>,
) -> Result<License> {
    let mut next = license.clone();
    next.version = license.version + 1;
    next.updated_at = crate::now();
    // A disable's cause and note live only as long as that suspension.
    next.drop_stale_annotations();
    let mut r = row(&next);
    r.created_at = sea_orm::ActiveValue::NotSet;
    if let Some(enc) = admin_password_enc {
        r.admin_password_enc = Set(enc);
    }
    if next.lifecycle.status == licentia_domain::license::LicenseStatus::Deleted {
        r.deleted_at = Set(Some(next.updated_at));
    }
    let res = Entity::update_many()
        .set(r)
        .filter(Column::Id.eq(license.id.as_uuid()))
        .filter(Column::Version.eq(license.version))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Err(PersistenceError::NotFound);
    }
    // Pending order items priced for what the license was no longer match it.
    super::orders::cancel_stale_items(db, &next).await?;
    Ok(next)
}

/// The stored, encrypted admin password.
pub async fn admin_password_enc(
    db: &impl ConnectionTrait,
    id: LicenseId,
) -> Result<Option<Vec<u8>>> {
    Ok(Entity::find_by_id(id.as_uuid())
        .one(db)
        .await?
        .and_then(|m| m.admin_password_enc))
}
