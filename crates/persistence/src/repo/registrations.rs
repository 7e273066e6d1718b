//! Machines registered to a license, and the look-ups by registration key that licensed
//! software makes. Every look-up by key goes through the unique `registration_key_hash`
//! index; the seat check counts rows under the license's row lock.
use std::net::IpAddr;

use licentia_domain::ids::{LicenseId, RegistrationId};
use licentia_domain::license_record::License;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::licenses::registration_key_hash;
use crate::entities::licenses;
use crate::entities::registrations::{self, Column, Entity};
use crate::error::{PersistenceError, Result};

/// A machine registered to a license.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub id: RegistrationId,
    pub license_id: LicenseId,
    pub fingerprint: String,
    pub hostname: Option<String>,
    pub ip: Option<IpAddr>,
    pub created_at: OffsetDateTime,
    /// The last validation or registration naming the fingerprint.
    pub last_seen_at: Option<OffsetDateTime>,
    /// The address that last validation or registration came from.
    pub last_ip: Option<IpAddr>,
}

impl TryFrom<registrations::Model> for Registration {
    type Error = PersistenceError;
    fn try_from(m: registrations::Model) -> Result<Self> {
        let ip =
            m.ip.as_deref()
                .map(str::parse::<IpAddr>)
                .transpose()
                .map_err(|_| PersistenceError::Corrupt(format!("registration {}: ip", m.id)))?;
        let last_ip = m
            .last_ip
            .as_deref()
            .map(str::parse::<IpAddr>)
            .transpose()
            .map_err(|_| PersistenceError::Corrupt(format!("registration {}: last_ip", m.id)))?;
        Ok(Registration {
            id: RegistrationId::from_uuid(m.id),
            license_id: LicenseId::from_uuid(m.license_id),
            fingerprint: m.fingerprint,
            hostname: m.hostname,
            ip,
            created_at: m.created_at,
            last_seen_at: m.last_seen_at,
            last_ip,
        })
    }
}

/// The license holding `key`, read and locked for the rest of the transaction (PostgreSQL
/// `FOR UPDATE`; SQLite has one writer already).
pub async fn lock_license_by_key(db: &impl ConnectionTrait, key: &str) -> Result<Option<License>> {
    let found = licenses::Entity::find()
        .filter(licenses::Column::RegistrationKeyHash.eq(registration_key_hash(key)))
        .lock_exclusive()
        .one(db)
        .await?;
    // The hash is the index; the key itself settles it.
    found
        .filter(|m| m.registration_key == key)
        .map(License::try_from)
        .transpose()
}

/// What validation needs, read in one indexed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationView {
    pub license: License,
    /// `Some(registered)` when a fingerprint was asked about.
    pub fingerprint_registered: Option<bool>,
    /// The fingerprint's registration, when it is registered (for the usage record).
    pub registration_id: Option<RegistrationId>,
}

/// The statement of [`validation_view`]: the license's columns in decoding order, then the
/// fingerprint's registration id when a fingerprint is asked about.
fn validation_query(
    backend: DbBackend,
    key_hash: &str,
    fingerprint: Option<&str>,
) -> sea_orm::sea_query::SelectStatement {
    let mut q = Query::select();
    super::licenses::decode::select_columns(&mut q, backend);
    q.from(licenses::Entity).and_where(
        Expr::col((licenses::Entity, licenses::Column::RegistrationKeyHash)).eq(key_hash),
    );
    if let Some(fingerprint) = fingerprint {
        q.expr_as(
            Expr::col((Entity, Column::Id)),
            Alias::new("registration_id"),
        )
        .left_join(
            Entity,
            Condition::all()
                .add(
                    Expr::col((Entity, Column::LicenseId))
                        .equals((licenses::Entity, licenses::Column::Id)),
                )
                .add(Expr::col((Entity, Column::Fingerprint)).eq(fingerprint)),
        );
    }
    q
}

/// What a found row tells, once the key itself is compared (the hash only found the row).
fn validation_of(
    model: licenses::Model,
    key: &str,
    fingerprint: Option<&str>,
    registration_id: Option<Uuid>,
) -> Result<Option<ValidationView>> {
    if model.registration_key != key {
        return Ok(None);
    }
    Ok(Some(ValidationView {
        license: License::try_from(model)?,
        fingerprint_registered: fingerprint.map(|_| registration_id.is_some()),
        registration_id: registration_id.map(RegistrationId::from_uuid),
    }))
}

/// The license of `key_hash` (SHA-256 hex of the key, see [`registration_key_hash`]) and
/// whether `fingerprint` is registered: one statement over the unique key-hash index and the
/// unique (license, fingerprint) index.
pub async fn validation_view(
    db: &impl ConnectionTrait,
    key: &str,
    key_hash: &str,
    fingerprint: Option<&str>,
) -> Result<Option<ValidationView>> {
    let q = validation_query(db.get_database_backend(), key_hash, fingerprint);
    let Some(row) = db.query_one(&q).await? else {
        return Ok(None);
    };
    let how = super::licenses::decode::first_row(&row);
    let model = super::licenses::decode::model(&row, how)?;
    let registration_id = match fingerprint {
        Some(_) => match row.try_as_pg_row() {
            Some(pg) if how == super::licenses::decode::Decoding::Checked => registration_at(pg)?,
            _ => row.try_get::<Option<Uuid>>("", "registration_id")?,
        },
        None => None,
    };
    validation_of(model, key, fingerprint, registration_id)
}

/// The PostgreSQL text of [`validation_query`] with or without the fingerprint, built once,
/// and whether the fingerprint is bound first (it is: the join's condition comes before the
/// `WHERE`; read off the built statement rather than assumed).
fn validation_sql(fingerprint: bool) -> (&'static str, bool) {
    use sea_orm::sea_query::PostgresQueryBuilder;
    static PLAIN: std::sync::OnceLock<(String, bool)> = std::sync::OnceLock::new();
    static WITH_FINGERPRINT: std::sync::OnceLock<(String, bool)> = std::sync::OnceLock::new();
    let cell = if fingerprint {
        &WITH_FINGERPRINT
    } else {
        &PLAIN
    };
    let (sql, fingerprint_first) = cell.get_or_init(|| {
        const MARK: &str = "licentia-fingerprint-placeholder";
        let q = validation_query(DbBackend::Postgres, "", fingerprint.then_some(MARK));
        let (sql, values) = q.build(PostgresQueryBuilder);
        let first = values
            .0
            .first()
            .is_some_and(|v| format!("{v:?}").contains(MARK));
        (sql, first)
    });
    (sql.as_str(), *fingerprint_first)
}

/// [`validation_view`] on a hot-path pool ([`crate::hot`]), its statement built once.
pub async fn validation_view_hot(
    pool: &crate::hot::HotPool,
    key: &str,
    key_hash: &str,
    fingerprint: Option<&str>,
) -> Result<Option<ValidationView>> {
    let (sql, fingerprint_first) = validation_sql(fingerprint.is_some());
    let row = match fingerprint {
        None => pool.fetch_optional_sql(sql, &[key_hash]).await?,
        Some(f) if fingerprint_first => pool.fetch_optional_sql(sql, &[f, key_hash]).await?,
        Some(f) => pool.fetch_optional_sql(sql, &[key_hash, f]).await?,
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let model = super::licenses::decode::pg_models(std::slice::from_ref(&row))?
        .pop()
        .ok_or(PersistenceError::NotFound)?;
    let registration_id = match fingerprint {
        Some(_) => registration_at(&row)?,
        None => None,
    };
    validation_of(model, key, fingerprint, registration_id)
}

/// The registration id selected after the license's columns.
fn registration_at(row: &sea_orm::sqlx::postgres::PgRow) -> Result<Option<Uuid>> {
    sea_orm::sqlx::Row::try_get::<Option<Uuid>, _>(row, super::licenses::decode::READ_COLUMNS)
        .map_err(|e| PersistenceError::Corrupt(format!("a registration id: {e}")))
}

/// The registration of `fingerprint` to the license, if any.
pub async fn find(
    db: &impl ConnectionTrait,
    license: LicenseId,
    fingerprint: &str,
) -> Result<Option<Registration>> {
    Entity::find()
        .filter(Column::LicenseId.eq(license.as_uuid()))
        .filter(Column::Fingerprint.eq(fingerprint))
        .one(db)
        .await?
        .map(Registration::try_from)
        .transpose()
}

/// How many machines are registered to the license.
pub async fn count(db: &impl ConnectionTrait, license: LicenseId) -> Result<u64> {
    Ok(Entity::find()
        .filter(Column::LicenseId.eq(license.as_uuid()))
        .count(db)
        .await?)
}

fn row(reg: &Registration) -> registrations::ActiveModel {
    registrations::ActiveModel {
        id: Set(reg.id.as_uuid()),
        license_id: Set(reg.license_id.as_uuid()),
        fingerprint: Set(reg.fingerprint.clone()),
        hostname: Set(reg.hostname.clone()),
        ip: Set(reg.ip.map(|ip| ip.to_string())),
        created_at: Set(crate::truncate(reg.created_at)),
        last_seen_at: Set(reg.last_seen_at.map(crate::truncate)),
        last_ip: Set(reg.last_ip.map(|ip| ip.to_string())),
    }
}

/// Stores many registrations in one statement (bulk loading: `licentia seed`); the caller
/// keeps each license's `registrations_count` in step.
pub async fn insert_batch(db: &impl ConnectionTrait, batch: &[Registration]) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    Entity::insert_many(batch.iter().map(row))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Stores a new registration.
pub async fn insert(db: &impl ConnectionTrait, reg: &Registration) -> Result<Registration> {
    Entity::insert(row(reg))
        .exec_with_returning(db)
        .await?
        .try_into()
}

/// Records that the machine showed up again at `at` from `ip`; an older instant than the
/// one stored changes nothing (usage only moves forward).
pub async fn touch(
    db: &impl ConnectionTrait,
    id: RegistrationId,
    at: OffsetDateTime,
    ip: Option<IpAddr>,
) -> Result<()> {
    let at = crate::truncate(at);
    let mut update = Entity::update_many()
        .col_expr(Column::LastSeenAt, Expr::value(Some(at)))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(
            Condition::any()
                .add(Column::LastSeenAt.is_null())
                .add(Column::LastSeenAt.lt(at)),
        );
    if let Some(ip) = ip {
        update = update.col_expr(Column::LastIp, Expr::value(Some(ip.to_string())));
    }
    update.exec(db).await?;
    Ok(())
}

/// One registration of the license, by id.
pub async fn find_by_id(
    db: &impl ConnectionTrait,
    license: LicenseId,
    id: RegistrationId,
) -> Result<Option<Registration>> {
    Entity::find_by_id(id.as_uuid())
        .filter(Column::LicenseId.eq(license.as_uuid()))
        .one(db)
        .await?
        .map(Registration::try_from)
        .transpose()
}

/// Deletes one registration; false when it was gone already.
pub async fn delete_one(db: &impl ConnectionTrait, id: RegistrationId) -> Result<bool> {
    Ok(Entity::delete_by_id(id.as_uuid())
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// One keyset page of the license's registrations in id (creation) order.
pub async fn list(
    db: &impl ConnectionTrait,
    license: LicenseId,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Registration>> {
    let mut q = Entity::find().filter(Column::LicenseId.eq(license.as_uuid()));
    if let Some(after) = after {
        q = q.filter(Column::Id.gt(after));
    }
    q.order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(Registration::try_from)
        .collect()
}

/// Deletes every registration of the license; returns how many there were.
pub async fn delete_all(db: &impl ConnectionTrait, license: LicenseId) -> Result<u64> {
    Ok(Entity::delete_many()
        .filter(Column::LicenseId.eq(license.as_uuid()))
        .exec(db)
        .await?
        .rows_affected)
}

/// Keeps `licenses.registrations_count` in step with the rows. Registrations are the
/// license's sub-resource, not an edit of it: `version` (the `ETag`) stays, so a partner's
/// `If-Match` does not fail because a machine registered meanwhile.
pub async fn set_count(db: &impl ConnectionTrait, license: LicenseId, count: u64) -> Result<()> {
    licenses::Entity::update_many()
        .col_expr(
            licenses::Column::RegistrationsCount,
            Expr::value(i32::try_from(count).unwrap_or(i32::MAX)),
        )
        .filter(licenses::Column::Id.eq(license.as_uuid()))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod hot_sql_tests {
    use super::validation_sql;

    #[test]
    fn the_fingerprint_is_bound_where_the_statement_expects_it() {
        let (plain, _) = validation_sql(false);
        assert!(plain.contains("$1") && !plain.contains("$2"));
        let (with, fingerprint_first) = validation_sql(true);
        // The join's condition (the fingerprint) precedes the WHERE (the key hash).
        let fingerprint_at = with
            .find("\"fingerprint\" = $")
            .expect("the join names the fingerprint");
        let number = &with[fingerprint_at + "\"fingerprint\" = $".len()..][..1];
        assert_eq!(fingerprint_first, number == "1");
        assert!(fingerprint_first);
    }
}
