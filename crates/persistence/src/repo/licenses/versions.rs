//! Pages with the row version of each license (PostgreSQL's `xmin`), so that a copy of a
//! page kept in memory can be checked against the database by reading only ids and versions.
//!
//! Every write of a row, whatever makes it (an edit, a sweep, a machine's registration
//! count, the usage flush, another process), leaves a new row version whose `xmin` is the
//! writing transaction's id; a row nobody wrote since keeps its `xmin`. So the same ids with
//! the same versions, in the same order, are the same rows: nothing in them changed. The
//! versions are 32-bit transaction ids that only repeat after about four billion
//! transactions, which is why a copy is only ever checked within seconds of its read.
use sea_orm::sea_query::{Expr, SelectStatement};
use sea_orm::sqlx::Row;
use sea_orm::{DbBackend, QuerySelect, QueryTrait};

use super::decode::{READ_COLUMNS, pg_models, read_columns};
use super::{After, Filter, Scope, Sort, page_select};
use crate::entities::licenses::Column;
use crate::error::{PersistenceError, Result};
use crate::hot::HotPool;
use licentia_domain::license_record::License;
use uuid::Uuid;

/// The row version of a license (its `xmin`), as a number.
const ROW_VERSION: &str = r#"CAST(CAST("licenses"."xmin" AS text) AS bigint)"#;

/// A license's id and its row version.
pub type RowVersion = (Uuid, i64);

/// [`super::list_hot`] with each license's row version; `None` for a sort that is not read in
/// one statement (`last_validated_at`).
pub async fn list_hot_versioned(
    pool: &HotPool,
    scope: Scope,
    filter: &Filter,
    sort: Sort,
    after: Option<After>,
    limit: u64,
) -> Result<Option<Vec<(License, i64)>>> {
    let Some(q) = versioned(scope, filter, sort, after, limit, read_columns()) else {
        return Ok(None);
    };
    let rows = pool.fetch_all(&q).await?;
    let models = pg_models(&rows)?;
    let mut out = Vec::with_capacity(rows.len());
    for (row, model) in rows.iter().zip(models) {
        let version = row.try_get::<i64, _>(READ_COLUMNS).map_err(corrupt)?;
        out.push((License::try_from(model)?, version));
    }
    Ok(Some(out))
}

/// The ids and row versions of the licenses the same page would read, in its order: the same
/// statement as [`list_hot_versioned`] but for two narrow columns. `None` like it.
pub async fn page_versions_hot(
    pool: &HotPool,
    scope: Scope,
    filter: &Filter,
    sort: Sort,
    after: Option<After>,
    limit: u64,
) -> Result<Option<Vec<RowVersion>>> {
    let Some(q) = versioned(scope, filter, sort, after, limit, [Column::Id]) else {
        return Ok(None);
    };
    pool.fetch_all(&q)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(corrupt)?,
                r.try_get(1).map_err(corrupt)?,
            ))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The page's statement selecting `columns`, then the row version; `None` for a sort read in
/// two statements.
fn versioned(
    scope: Scope,
    filter: &Filter,
    sort: Sort,
    after: Option<After>,
    limit: u64,
    columns: impl IntoIterator<Item = Column>,
) -> Option<SelectStatement> {
    let q = page_select(DbBackend::Postgres, scope, filter, sort, after, limit)?;
    Some(
        q.select_only()
            .columns(columns)
            .expr(Expr::cust(ROW_VERSION))
            .into_query(),
    )
}

fn corrupt(e: sea_orm::sqlx::Error) -> PersistenceError {
    PersistenceError::Corrupt(format!("a license's row version does not decode: {e}"))
}
