//! Rate-limit counters kept in the database, so that every process of a deployment counts
//! against the same allowance (CONTRACT §9: failed logins, transfer accepts).
//!
//! [`count`] adds one attempt with a single `INSERT … ON CONFLICT DO UPDATE … RETURNING`: on
//! PostgreSQL the conflicting row is locked and updated from its latest version, on SQLite the
//! statement runs under the single writer, so concurrent attempts (from one process or
//! several) each see a distinct count. Callers count an attempt *before* doing the work it
//! limits, and refuse it when the count is over the limit.
//!
//! A window starts at the first attempt after the previous one passed (a fixed window anchored
//! at that attempt, not at the minute): attempts refused meanwhile do not prolong it.
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::entities::attempt_counters::{self, Column, Entity};
use crate::error::Result;

/// An attempt as counted: the count of its window, itself included, and when the window began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    pub count: i64,
    /// Unix milliseconds.
    pub window_start_ms: i64,
}

/// Counts one attempt of `key` against the limit `limit_name`, whose windows last `window_ms`,
/// at `now_ms` (Unix milliseconds). A window that has passed restarts at `now_ms` with this
/// attempt as its first.
pub async fn count(
    db: &impl ConnectionTrait,
    limit_name: &str,
    key: &str,
    now_ms: i64,
    window_ms: i64,
) -> Result<Counted> {
    let lapsed = Expr::col((Entity, Column::WindowStartMs)).lte(now_ms.saturating_sub(window_ms));
    let on_conflict = OnConflict::columns([Column::LimitName, Column::Key])
        .value(
            Column::Count,
            Expr::case(lapsed.clone(), Expr::val(1_i64))
                .finally(Expr::col((Entity, Column::Count)).add(1_i64)),
        )
        .value(
            Column::WindowStartMs,
            Expr::case(lapsed, Expr::val(now_ms))
                .finally(Expr::col((Entity, Column::WindowStartMs))),
        )
        .to_owned();
    let row = attempt_counters::ActiveModel {
        limit_name: Set(limit_name.to_owned()),
        key: Set(key.to_owned()),
        window_start_ms: Set(now_ms),
        count: Set(1),
    };
    let counted = Entity::insert(row)
        .on_conflict(on_conflict)
        .exec_with_returning(db)
        .await?;
    Ok(Counted {
        count: counted.count,
        window_start_ms: counted.window_start_ms,
    })
}

/// Takes back one attempt counted in the window that began at `window_start_ms` (e.g. a login
/// that turned out right); nothing when that window has been replaced since.
pub async fn release(
    db: &impl ConnectionTrait,
    limit_name: &str,
    key: &str,
    window_start_ms: i64,
) -> Result<()> {
    Entity::update_many()
        .col_expr(Column::Count, Expr::col(Column::Count).sub(1_i64))
        .filter(Column::LimitName.eq(limit_name))
        .filter(Column::Key.eq(key))
        .filter(Column::WindowStartMs.eq(window_start_ms))
        .filter(Column::Count.gt(0_i64))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes the counters of `limit_name` whose window began at or before `before_ms`: they
/// carry no information any more. Returns how many went.
pub async fn purge(db: &impl ConnectionTrait, limit_name: &str, before_ms: i64) -> Result<u64> {
    let res = Entity::delete_many()
        .filter(Column::LimitName.eq(limit_name))
        .filter(Column::WindowStartMs.lte(before_ms))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}
