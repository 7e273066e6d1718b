//! License rows decoded by position on PostgreSQL: the list and the validation look-up decode
//! up to 51 rows of 35 columns per request, and the ORM's decoding by name (a hash look-up per
//! column, and a formatted error message for every NULL it meets) was a third of the list's
//! server CPU. Statements that use this select the entity's columns in [`Column::iter`] order
//! ([`select_columns`]); the first row's column names are checked against that order, and any
//! other row (SQLite, or a statement shaped otherwise) is decoded by name as before.
use sea_orm::sea_query::SelectStatement;
use sea_orm::sqlx::Row;
use sea_orm::sqlx::postgres::PgRow;
use sea_orm::{FromQueryResult, IdenStatic, Iterable, QueryResult};

use crate::entities::licenses::{self, Column, Entity};
use crate::error::{PersistenceError, Result};

/// How many columns a license row has (the first index after them is free for extras).
pub const COLUMNS: usize = 35;

/// Adds the license's columns to `q`, in the order [`model`] decodes them.
pub fn select_columns(q: &mut SelectStatement) {
    for c in Column::iter() {
        q.column((Entity, c));
    }
}

/// Whether `row`'s first [`COLUMNS`] columns are the license's, in [`Column::iter`] order.
pub fn positional(row: &PgRow) -> bool {
    use sea_orm::sqlx::Column as _;
    let columns = row.columns();
    columns.len() >= COLUMNS
        && Column::iter()
            .zip(columns)
            .all(|(c, col)| col.name() == c.as_str())
}

/// How the rows of one result decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoding {
    /// By name, through the ORM (SQLite, or columns in another order).
    ByName,
    /// By position, each value's type checked against its column's (the first row).
    Checked,
    /// By position without the type checks: the first row of the same result passed them,
    /// and every row of a result has the same column types.
    Unchecked,
}

/// The license row at the start of `row`, decoded as `how` says.
pub fn model(row: &QueryResult, how: Decoding) -> Result<licenses::Model> {
    let decoded = match (row.try_as_pg_row(), how) {
        (Some(pg), Decoding::Checked) => by_position(pg, true),
        (Some(pg), Decoding::Unchecked) => by_position(pg, false),
        _ => return Ok(licenses::Model::from_query_result(row, "")?),
    };
    decoded.map_err(|e| PersistenceError::Corrupt(format!("a license row does not decode: {e}")))
}

/// How the first row of a result decodes: by position (checked) on PostgreSQL when its
/// columns start with the license's, in order; by name otherwise.
pub fn first_row(row: &QueryResult) -> Decoding {
    match row.try_as_pg_row() {
        Some(pg) if positional(pg) => Decoding::Checked,
        _ => Decoding::ByName,
    }
}

/// Every row of one result, decoded: the first checked, the others without the checks.
pub fn models(rows: &[QueryResult]) -> Result<Vec<licenses::Model>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let how = first_row(first);
    let rest = if how == Decoding::Checked {
        Decoding::Unchecked
    } else {
        how
    };
    rows.iter()
        .enumerate()
        .map(|(i, r)| model(r, if i == 0 { how } else { rest }))
        .collect()
}

/// Every row of one hot-path result ([`crate::hot`]): by position, the first row checked and
/// the others without the checks.
pub fn pg_models(rows: &[PgRow]) -> Result<Vec<licenses::Model>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    if !positional(first) {
        return Err(PersistenceError::Corrupt(
            "a license statement's columns are not in the entity's order".into(),
        ));
    }
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            by_position(r, i == 0).map_err(|e| {
                PersistenceError::Corrupt(format!("a license row does not decode: {e}"))
            })
        })
        .collect()
}

/// One value of a row by position: [`Row::try_get`] when `checked`, else
/// [`Row::try_get_unchecked`].
fn get<'r, T>(r: &'r PgRow, i: usize, checked: bool) -> std::result::Result<T, sea_orm::sqlx::Error>
where
    T: sea_orm::sqlx::Decode<'r, sea_orm::sqlx::Postgres>
        + sea_orm::sqlx::Type<sea_orm::sqlx::Postgres>,
{
    if checked {
        r.try_get(i)
    } else {
        r.try_get_unchecked(i)
    }
}

fn by_position(
    r: &PgRow,
    checked: bool,
) -> std::result::Result<licenses::Model, sea_orm::sqlx::Error> {
    Ok(licenses::Model {
        id: get(r, 0, checked)?,
        account_id: get(r, 1, checked)?,
        product_id: get(r, 2, checked)?,
        name: get(r, 3, checked)?,
        name_lower: get(r, 4, checked)?,
        ip: get(r, 5, checked)?,
        ip_key: get(r, 6, checked)?,
        period_months: get(r, 7, checked)?,
        valid_until: get(r, 8, checked)?,
        status: get(r, 9, checked)?,
        suspension_reason: get(r, 10, checked)?,
        came_from_status: get(r, 11, checked)?,
        came_from_reason: get(r, 12, checked)?,
        resumes_to_status: get(r, 13, checked)?,
        resumes_to_reason: get(r, 14, checked)?,
        options: get(r, 15, checked)?,
        auto_renew_months: get(r, 16, checked)?,
        registration_key: get(r, 17, checked)?,
        registration_key_hash: get(r, 18, checked)?,
        registrations_count: get(r, 19, checked)?,
        provisioning_error: get(r, 20, checked)?,
        external_id: get(r, 21, checked)?,
        metadata: get(r, 22, checked)?,
        admin_password_enc: get(r, 23, checked)?,
        trial: get(r, 24, checked)?,
        suspension_cause: get(r, 25, checked)?,
        suspension_note: get(r, 26, checked)?,
        deletion_cause: get(r, 27, checked)?,
        deletion_note: get(r, 28, checked)?,
        version: get(r, 29, checked)?,
        expiring_notice_for: get(r, 30, checked)?,
        created_at: get(r, 31, checked)?,
        updated_at: get(r, 32, checked)?,
        deleted_at: get(r, 33, checked)?,
        last_validated_at: get(r, 34, checked)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_the_entity_s() {
        assert_eq!(Column::iter().count(), COLUMNS);
    }

    #[test]
    fn the_select_lists_the_columns_in_decoding_order() {
        use sea_orm::sea_query::{PostgresQueryBuilder, Query};
        let mut q = Query::select();
        select_columns(&mut q);
        q.from(Entity);
        let sql = q.to_string(PostgresQueryBuilder);
        let mut at = 0;
        for c in Column::iter() {
            let needle = format!("\"licenses\".\"{}\"", c.as_str());
            let found = sql[at..].find(&needle).expect("every column, in order");
            at += found + needle.len();
        }
    }
}
