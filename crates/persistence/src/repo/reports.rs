//! Aggregates for the reports (CONTRACT §11). Each is one grouped statement over an index:
//! licenses by (account, status, product) — or (status, product) across accounts — and the
//! ledger and its allocations by (account, created_at) — or created_at across accounts.
use licentia_domain::ids::{AccountId, ProductId};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::{ledger_allocations, ledger_entries, licenses};
use crate::error::Result;

/// How many licenses there are per (status, product), `deleted` excluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusProductCount {
    pub status: String,
    pub product_id: ProductId,
    pub count: u64,
}

/// The licenses of `account` (or of every account) by status and product, `deleted` excluded.
pub async fn license_counts(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
) -> Result<Vec<StatusProductCount>> {
    use licenses::{Column, Entity};
    let mut q = Entity::find()
        .select_only()
        .column(Column::Status)
        .column(Column::ProductId)
        // COUNT(*), not COUNT(id): (account_id, status, product_id) answers it from the index.
        .column_as(Expr::cust("COUNT(*)"), "n")
        .filter(Column::Status.ne("deleted"))
        .group_by(Column::Status)
        .group_by(Column::ProductId);
    if let Some(account) = account {
        q = q.filter(Column::AccountId.eq(account.as_uuid()));
    }
    Ok(q.into_tuple::<(String, Uuid, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(status, product, n)| StatusProductCount {
            status,
            product_id: ProductId::from_uuid(product),
            count: u64::try_from(n).unwrap_or(0),
        })
        .collect())
}

/// Active or suspended licenses of `account` (or of every account) whose `valid_until` lies in
/// `[from, to]`.
pub async fn expiring(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<u64> {
    use licenses::{Column, Entity};
    use sea_orm::PaginatorTrait;
    let mut q = Entity::find()
        .filter(Column::Status.is_in(["active", "suspended"]))
        .filter(Column::ValidUntil.gte(crate::truncate(from)))
        .filter(Column::ValidUntil.lte(crate::truncate(to)));
    if let Some(account) = account {
        q = q.filter(Column::AccountId.eq(account.as_uuid()));
    }
    Ok(q.count(db).await?)
}

/// Money of one product in a period (positive minor units).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductRevenue {
    pub product_id: ProductId,
    pub charges: i64,
    pub refunds: i64,
}

/// The ledger of a period, as positive sums per kind and per product.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revenue {
    pub charges: i64,
    pub refunds: i64,
    pub credits: i64,
    pub by_product: Vec<ProductRevenue>,
}

/// SUM(bigint) is numeric on PostgreSQL; the cast keeps it an i64 on both databases.
const SUM_AMOUNT: &str = "COALESCE(CAST(SUM(amount) AS BIGINT), 0)";

/// The ledger entries of `account` (or of every account) created in `[from, to)`.
pub async fn revenue(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Revenue> {
    let (from, to) = (crate::truncate(from), crate::truncate(to));
    let mut totals = {
        use ledger_entries::{Column, Entity};
        let mut q = Entity::find()
            .select_only()
            .column(Column::Kind)
            .column_as(Expr::cust(SUM_AMOUNT), "total")
            .filter(Column::CreatedAt.gte(from))
            .filter(Column::CreatedAt.lt(to))
            .group_by(Column::Kind);
        if let Some(account) = account {
            q = q.filter(Column::AccountId.eq(account.as_uuid()));
        }
        q.into_tuple::<(String, i64)>().all(db).await?
    };
    let mut out = Revenue::default();
    for (kind, total) in totals.drain(..) {
        match kind.as_str() {
            // Charges are negative in the ledger; reports show money as positive numbers.
            "charge" => out.charges = total.saturating_neg(),
            "refund" => out.refunds = total,
            "credit" => out.credits = total,
            _ => {}
        }
    }
    let shares = {
        use ledger_allocations::{Column, Entity};
        let mut q = Entity::find()
            .select_only()
            .column(Column::ProductId)
            .column(Column::Kind)
            .column_as(Expr::cust(SUM_AMOUNT), "total")
            .filter(Column::CreatedAt.gte(from))
            .filter(Column::CreatedAt.lt(to))
            .group_by(Column::ProductId)
            .group_by(Column::Kind);
        if let Some(account) = account {
            q = q.filter(Column::AccountId.eq(account.as_uuid()));
        }
        q.into_tuple::<(Uuid, String, i64)>().all(db).await?
    };
    let mut by_product: std::collections::BTreeMap<Uuid, ProductRevenue> = Default::default();
    for (product, kind, total) in shares {
        let entry = by_product.entry(product).or_insert_with(|| ProductRevenue {
            product_id: ProductId::from_uuid(product),
            charges: 0,
            refunds: 0,
        });
        match kind.as_str() {
            "charge" => entry.charges = total,
            "refund" => entry.refunds = total,
            _ => {}
        }
    }
    out.by_product = by_product.into_values().collect();
    Ok(out)
}
