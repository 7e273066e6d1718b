//! The license list: filters, sort orders, keyset pages and counts.
#[allow(clippy::wildcard_imports)]
use super::*;

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
#[derive(Clone, Debug, Default, PartialEq)]
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

impl Filter {
    /// No filter at all: every license of the scope but the deleted ones.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }
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

/// Where license rows are read: a connection of the ORM, or a hot-path pool
/// ([`crate::hot`], PostgreSQL).
pub enum Source<'a, C> {
    Orm(&'a C),
    Hot(&'a crate::hot::HotPool),
}

impl<C> Clone for Source<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Source<'_, C> {}

impl<C: ConnectionTrait> Source<'_, C> {
    fn backend(&self) -> DbBackend {
        match self {
            Source::Orm(db) => db.get_database_backend(),
            Source::Hot(_) => DbBackend::Postgres,
        }
    }
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
    list_from(Source::Orm(db), scope, filter, sort, after, limit).await
}

/// [`list`] on a hot-path pool.
pub async fn list_hot(
    pool: &crate::hot::HotPool,
    scope: Scope,
    filter: &Filter,
    sort: Sort,
    after: Option<After>,
    limit: u64,
) -> Result<Vec<License>> {
    list_from(
        Source::<sea_orm::DatabaseConnection>::Hot(pool),
        scope,
        filter,
        sort,
        after,
        limit,
    )
    .await
}

async fn list_from<C: ConnectionTrait>(
    db: Source<'_, C>,
    scope: Scope,
    filter: &Filter,
    sort: Sort,
    after: Option<After>,
    limit: u64,
) -> Result<Vec<License>> {
    match page_select(db.backend(), scope, filter, sort, after.clone(), limit) {
        Some(q) => fetch(db, q).await,
        None => {
            let cond = condition(db.backend(), scope, filter);
            let desc = matches!(sort, Sort::LastValidatedAt { desc: true });
            list_by_validation(db, cond, desc, after, limit).await
        }
    }
}

/// The one statement that reads a page, for every sort but `last_validated_at` (two parts:
/// see [`list_by_validation`]); `None` for that one.
pub(super) fn page_select(
    backend: DbBackend,
    scope: Scope,
    filter: &Filter,
    sort: Sort,
    after: Option<After>,
    limit: u64,
) -> Option<sea_orm::Select<Entity>> {
    let mut q = Entity::find().filter(condition(backend, scope, filter));
    let dir = |desc: bool| if desc { Order::Desc } else { Order::Asc };
    match sort {
        Sort::CreatedAt { desc } => {
            // Ids are UUIDv7: id order is creation order.
            if let Some(After::Id(id)) = after {
                q = q.filter(id_beyond(id, desc));
            }
            q = q.order_by(Column::Id, dir(desc));
        }
        Sort::ValidUntil { desc } => {
            // Unpaid licenses have no valid_until; they sort last in either direction.
            if let Some(After::ValidUntil(value, id)) = after {
                q = q.filter(after_valid_until(value, id, desc));
            }
            q = q
                .order_by(Expr::col(Column::ValidUntil).is_null(), Order::Asc)
                .order_by(Column::ValidUntil, dir(desc))
                .order_by(Column::Id, dir(desc));
        }
        Sort::Name { desc } => {
            if let Some(After::Name(value, id)) = after {
                q = q.filter(after_name(value, id, desc));
            }
            q = q
                .order_by(Column::NameLower, dir(desc))
                .order_by(Column::Id, dir(desc));
        }
        Sort::LastValidatedAt { .. } => return None,
    }
    Some(q.limit(limit))
}

/// Ids beyond `id` in the walk's direction.
fn id_beyond(id: Uuid, desc: bool) -> sea_orm::sea_query::SimpleExpr {
    if desc {
        Column::Id.lt(id)
    } else {
        Column::Id.gt(id)
    }
}

/// The rows after (`value`, `id`) in `valid_until` order; unpaid licenses (no `valid_until`)
/// come last in either direction.
fn after_valid_until(value: Option<OffsetDateTime>, id: Uuid, desc: bool) -> Condition {
    let id_cmp = id_beyond(id, desc);
    match value {
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
    }
}

/// The rows after (`value`, `id`) in lower-cased name order.
fn after_name(value: String, id: Uuid, desc: bool) -> Condition {
    let beyond = if desc {
        Column::NameLower.lt(value.clone())
    } else {
        Column::NameLower.gt(value.clone())
    };
    Condition::any().add(beyond).add(
        Condition::all()
            .add(Column::NameLower.eq(value))
            .add(id_beyond(id, desc)),
    )
}

/// The licenses a select of whole rows finds, decoded by position where it can
/// ([`super::decode`]).
pub(crate) async fn fetch<C: ConnectionTrait>(
    db: Source<'_, C>,
    q: sea_orm::Select<Entity>,
) -> Result<Vec<License>> {
    use sea_orm::QueryTrait;
    // On PostgreSQL only the columns a license is made of (see `decode`).
    let q = if db.backend() == DbBackend::Postgres {
        q.select_only().columns(super::decode::read_columns())
    } else {
        q
    };
    let models = match db {
        Source::Orm(db) => super::decode::models(&db.query_all(&q.into_query()).await?)?,
        Source::Hot(pool) => super::decode::pg_models(&pool.fetch_all(&q.into_query()).await?)?,
    };
    models.into_iter().map(License::try_from).collect()
}

/// A page in `last_validated_at` order: the validated licenses first (by instant, then id),
/// then those never validated (by id). The column has no index on purpose (see migration
/// m0009: its updates stay heap-only), so each part sorts the caller's matching licenses.
async fn list_by_validation<C: ConnectionTrait>(
    db: Source<'_, C>,
    cond: Condition,
    desc: bool,
    after: Option<After>,
    limit: u64,
) -> Result<Vec<License>> {
    let dir = if desc { Order::Desc } else { Order::Asc };
    let id_cmp = |id: Uuid| id_beyond(id, desc);
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
        rows = fetch(
            db,
            q.order_by(Column::LastValidatedAt, dir.clone())
                .order_by(Column::Id, dir.clone())
                .limit(limit),
        )
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
        rows.extend(fetch(db, q.order_by(Column::Id, dir).limit(left)).await?);
    }
    Ok(rows)
}
