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
        let corrupt = |what: &str| PersistenceError::Corrupt(format!("license {}: {what}", m.id));
        let options: BTreeMap<String, u32> =
            serde_json::from_value(m.options.clone()).map_err(|_| corrupt("options"))?;
        let metadata: BTreeMap<String, String> =
            serde_json::from_value(m.metadata.clone()).map_err(|_| corrupt("metadata"))?;
        Ok(License {
            id: LicenseId::from_uuid(m.id),
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
    use std::fmt::Write;
    let digest = licentia_domain::transfer::hash_secret(key);
    digest.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
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

/// Sort orders of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    CreatedAt {
        desc: bool,
    },
    ValidUntil {
        desc: bool,
    },
    Name {
        desc: bool,
    },
    /// Licenses never validated come last in either direction.
    LastValidatedAt {
        desc: bool,
    },
}

/// Filters of the list, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub id: Option<LicenseId>,
    /// Lower-cased substring of the name.
    pub name: Option<String>,
    /// Inclusive range of IP keys (an exact address is a one-key range).
    pub ip_range: Option<([u8; 16], [u8; 16])>,
    pub product_id: Option<ProductId>,
    pub period_months: Option<u32>,
    /// Statuses to include; empty means every status but `deleted`.
    pub statuses: Vec<String>,
    pub valid_until_from: Option<OffsetDateTime>,
    pub valid_until_to: Option<OffsetDateTime>,
    pub external_id: Option<String>,
    pub account_id: Option<AccountId>,
    /// `last_validated_at` strictly before this instant (licenses never validated excluded).
    pub validated_before: Option<OffsetDateTime>,
    /// `Some(true)`: never validated; `Some(false)`: validated at least once.
    pub never_validated: Option<bool>,
    /// Metadata keys and the exact string value each must have.
    pub metadata: Vec<(String, String)>,
}

/// Where a keyset page continues: after this row's sort value and id.
#[derive(Clone, Debug)]
pub enum After {
    Id(Uuid),
    ValidUntil(Option<OffsetDateTime>, Uuid),
    Name(String, Uuid),
    LastValidatedAt(Option<OffsetDateTime>, Uuid),
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// `metadata` holds `key` with exactly the string `value`. PostgreSQL: JSON containment, which
/// the GIN index on `metadata::jsonb` serves; SQLite: the map's members.
fn metadata_condition(backend: DbBackend, key: &str, value: &str) -> Expr {
    match backend {
        DbBackend::Postgres => Expr::cust_with_values(
            // PostgreSQL placeholders are `$n` (`?` is a jsonb operator there).
            r#"CAST("licenses"."metadata" AS jsonb) @> CAST($1 AS jsonb)"#,
            [serde_json::json!({ key: value }).to_string()],
        ),
        _ => Expr::cust_with_values(
            r#"EXISTS (SELECT 1 FROM json_each("licenses"."metadata") AS m WHERE m.key = ? AND m.type = 'text' AND m.value = ?)"#,
            [key.to_owned(), value.to_owned()],
        ),
    }
}

/// The list's filters (and the caller's scope) as one condition: shared by pages, counts
/// and exports, so that they always agree on what matches.
fn condition(backend: DbBackend, scope: Scope, filter: &Filter) -> Condition {
    let mut cond = scope.condition();
    if let Some(id) = filter.id {
        cond = cond.add(Column::Id.eq(id.as_uuid()));
    }
    if let Some(name) = &filter.name {
        cond = cond.add(Expr::col(Column::NameLower).like(
            sea_orm::sea_query::LikeExpr::new(format!("%{}%", escape_like(name))).escape('\\'),
        ));
    }
    if let Some((lo, hi)) = filter.ip_range {
        cond = cond
            .add(Column::IpKey.gte(lo.to_vec()))
            .add(Column::IpKey.lte(hi.to_vec()));
    }
    if let Some(p) = filter.product_id {
        cond = cond.add(Column::ProductId.eq(p.as_uuid()));
    }
    if let Some(p) = filter.period_months {
        cond = cond.add(Column::PeriodMonths.eq(p as i32));
    }
    if filter.statuses.is_empty() {
        cond = cond.add(Column::Status.ne("deleted"));
    } else {
        cond = cond.add(Column::Status.is_in(filter.statuses.clone()));
    }
    if let Some(from) = filter.valid_until_from {
        cond = cond.add(Column::ValidUntil.gte(crate::truncate(from)));
    }
    if let Some(to) = filter.valid_until_to {
        cond = cond.add(Column::ValidUntil.lte(crate::truncate(to)));
    }
    if let Some(ext) = &filter.external_id {
        cond = cond.add(Column::ExternalId.eq(ext.as_str()));
    }
    if let Some(account) = filter.account_id {
        cond = cond.add(Column::AccountId.eq(account.as_uuid()));
    }
    if let Some(before) = filter.validated_before {
        cond = cond.add(Column::LastValidatedAt.lt(crate::truncate(before)));
    }
    match filter.never_validated {
        Some(true) => cond = cond.add(Column::LastValidatedAt.is_null()),
        Some(false) => cond = cond.add(Column::LastValidatedAt.is_not_null()),
        None => {}
    }
    for (key, value) in &filter.metadata {
        cond = cond.add(metadata_condition(backend, key, value));
    }
    cond
}

/// How many licenses the scope sees that match `filter`.
pub async fn count(db: &impl ConnectionTrait, scope: Scope, filter: &Filter) -> Result<u64> {
    Ok(Entity::find()
        .filter(condition(db.get_database_backend(), scope, filter))
        .count(db)
        .await?)
}

/// One keyset page of licenses (`limit` rows at most).
pub async fn list(
    db: &impl ConnectionTrait,
    scope: Scope,
    filter: &Filter,
    sort: Sort,
    after: Option<After>,
    limit: u64,
) -> Result<Vec<License>> {
    let cond = condition(db.get_database_backend(), scope, filter);
    if let Sort::LastValidatedAt { desc } = sort {
        return list_by_validation(db, cond, desc, after, limit).await;
    }
    let mut q = Entity::find().filter(cond);
    let dir = |desc: bool| if desc { Order::Desc } else { Order::Asc };
    match sort {
        Sort::CreatedAt { desc } => {
            // Ids are UUIDv7: id order is creation order.
            if let Some(After::Id(id)) = after {
                q = q.filter(if desc {
                    Column::Id.lt(id)
                } else {
                    Column::Id.gt(id)
                });
            }
            q = q.order_by(Column::Id, dir(desc));
        }
        Sort::ValidUntil { desc } => {
            // Unpaid licenses have no valid_until; they sort last in either direction.
            if let Some(After::ValidUntil(value, id)) = after {
                let id_cmp = if desc {
                    Column::Id.lt(id)
                } else {
                    Column::Id.gt(id)
                };
                q = q.filter(match value {
                    Some(v) => {
                        let v = crate::truncate(v);
                        let beyond = if desc {
                            Column::ValidUntil.lt(v)
                        } else {
                            Column::ValidUntil.gt(v)
                        };
                        Condition::any()
                            .add(beyond)
                            .add(Condition::all().add(Column::ValidUntil.eq(v)).add(id_cmp))
                            .add(Column::ValidUntil.is_null())
                    }
                    None => Condition::all()
                        .add(Column::ValidUntil.is_null())
                        .add(id_cmp),
                });
            }
            q = q
                .order_by(Expr::col(Column::ValidUntil).is_null(), Order::Asc)
                .order_by(Column::ValidUntil, dir(desc))
                .order_by(Column::Id, dir(desc));
        }
        Sort::Name { desc } => {
            if let Some(After::Name(value, id)) = after {
                let beyond = if desc {
                    Column::NameLower.lt(value.clone())
                } else {
                    Column::NameLower.gt(value.clone())
                };
                let id_cmp = if desc {
                    Column::Id.lt(id)
                } else {
                    Column::Id.gt(id)
                };
                q = q.filter(
                    Condition::any().add(beyond).add(
                        Condition::all()
                            .add(Column::NameLower.eq(value))
                            .add(id_cmp),
                    ),
                );
            }
            q = q
                .order_by(Column::NameLower, dir(desc))
                .order_by(Column::Id, dir(desc));
        }
        Sort::LastValidatedAt { .. } => unreachable!("listed by list_by_validation"),
    }
    q.limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(License::try_from)
        .collect()
}

/// A page in `last_validated_at` order: the validated licenses first (by instant, then id),
/// then those never validated (by id). The column has no index on purpose (see migration
/// m0009: its updates stay heap-only), so each part sorts the caller's matching licenses.
async fn list_by_validation(
    db: &impl ConnectionTrait,
    cond: Condition,
    desc: bool,
    after: Option<After>,
    limit: u64,
) -> Result<Vec<License>> {
    let dir = if desc { Order::Desc } else { Order::Asc };
    let id_cmp = |id: Uuid| {
        if desc {
            Column::Id.lt(id)
        } else {
            Column::Id.gt(id)
        }
    };
    let (after_value, after_id) = match after {
        Some(After::LastValidatedAt(value, id)) => (value, Some(id)),
        _ => (None, None),
    };
    let mut rows = Vec::new();
    // Still among the validated ones unless the cursor points into the never-validated part.
    if after_id.is_none() || after_value.is_some() {
        let mut q = Entity::find()
            .filter(cond.clone())
            .filter(Column::LastValidatedAt.is_not_null());
        if let (Some(v), Some(id)) = (after_value, after_id) {
            let v = crate::truncate(v);
            let beyond = if desc {
                Column::LastValidatedAt.lt(v)
            } else {
                Column::LastValidatedAt.gt(v)
            };
            q = q.filter(
                Condition::any().add(beyond).add(
                    Condition::all()
                        .add(Column::LastValidatedAt.eq(v))
                        .add(id_cmp(id)),
                ),
            );
        }
        rows = q
            .order_by(Column::LastValidatedAt, dir.clone())
            .order_by(Column::Id, dir.clone())
            .limit(limit)
            .all(db)
            .await?;
    }
    let left = limit.saturating_sub(rows.len() as u64);
    if left > 0 {
        let mut q = Entity::find()
            .filter(cond)
            .filter(Column::LastValidatedAt.is_null());
        if let (None, Some(id)) = (after_value, after_id) {
            q = q.filter(id_cmp(id));
        }
        rows.extend(q.order_by(Column::Id, dir).limit(left).all(db).await?);
    }
    rows.into_iter().map(License::try_from).collect()
}

/// Which licenses a sweep looks at; every variant is re-checked under the row lock by the
/// caller, so a candidate that changed meanwhile is simply skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Auto-renewal on, `active` or `suspended` (not for expiry), `valid_until ≤ until`.
    AutoRenewal { until: OffsetDateTime },
    /// `active` or `suspended` (`manual`) with `valid_until ≤ now`.
    Expiry { now: OffsetDateTime },
    /// `suspended` (`expired`) with `valid_until ≤ cutoff` (now − grace period).
    GraceDeletion { cutoff: OffsetDateTime },
    /// Not `ordered`/`deleted`, `now < valid_until ≤ until`, and no notice for this term yet.
    ExpiringNotice {
        now: OffsetDateTime,
        until: OffsetDateTime,
    },
}

impl Due {
    fn condition(self) -> Condition {
        let status = |s: &'static str| Column::Status.eq(s);
        match self {
            Due::AutoRenewal { until } => Condition::all()
                .add(Column::AutoRenewMonths.is_not_null())
                .add(Column::ValidUntil.lte(crate::truncate(until)))
                .add(
                    Condition::any().add(status("active")).add(
                        Condition::all()
                            .add(status("suspended"))
                            .add(Column::SuspensionReason.ne("expired")),
                    ),
                ),
            Due::Expiry { now } => Condition::all()
                .add(Column::ValidUntil.lte(crate::truncate(now)))
                .add(
                    Condition::any().add(status("active")).add(
                        Condition::all()
                            .add(status("suspended"))
                            .add(Column::SuspensionReason.eq("manual")),
                    ),
                ),
            Due::GraceDeletion { cutoff } => Condition::all()
                .add(status("suspended"))
                .add(Column::SuspensionReason.eq("expired"))
                .add(Column::ValidUntil.lte(crate::truncate(cutoff))),
            Due::ExpiringNotice { now, until } => Condition::all()
                .add(Column::Status.is_in(["active", "suspended", "in_progress"]))
                .add(Column::ValidUntil.gt(crate::truncate(now)))
                .add(Column::ValidUntil.lte(crate::truncate(until)))
                .add(
                    Condition::any()
                        .add(Column::ExpiringNoticeFor.is_null())
                        .add(
                            Expr::col(Column::ExpiringNoticeFor).ne(Expr::col(Column::ValidUntil)),
                        ),
                ),
        }
    }
}

/// Up to `limit` licenses `due` for a sweep, in id order after `after` (keyset), so a sweep
/// walks every candidate once even when some of them are left as they were.
pub async fn due(
    db: &impl ConnectionTrait,
    due: Due,
    after: Option<LicenseId>,
    limit: u64,
) -> Result<Vec<License>> {
    let mut q = Entity::find().filter(due.condition());
    if let Some(after) = after {
        q = q.filter(Column::Id.gt(after.as_uuid()));
    }
    q.order_by(Column::Id, Order::Asc)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(License::try_from)
        .collect()
}

/// Records that the "expiring soon" notice of the term ending at `valid_until` was sent.
/// True only for the one caller that recorded it first, and only while the license still has
/// that term and is not `ordered`/`deleted`: the notice goes out once per term, however many
/// sweeps run at once. The license's `version` does not change (no field of it changed).
pub async fn mark_expiring_notice(
    db: &impl ConnectionTrait,
    id: LicenseId,
    valid_until: OffsetDateTime,
) -> Result<bool> {
    let valid_until = crate::truncate(valid_until);
    let res = Entity::update_many()
        .col_expr(Column::ExpiringNoticeFor, Expr::value(Some(valid_until)))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(Column::ValidUntil.eq(valid_until))
        .filter(Column::Status.is_in(["active", "suspended", "in_progress"]))
        .filter(
            Condition::any()
                .add(Column::ExpiringNoticeFor.is_null())
                .add(Column::ExpiringNoticeFor.ne(valid_until)),
        )
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}
