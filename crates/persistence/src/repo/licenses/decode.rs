//! License rows decoded by position on PostgreSQL: the list and the validation look-up decode
//! up to 51 rows per request, and the ORM's decoding by name (a hash look-up per column, and a
//! formatted error message for every NULL it meets) was a third of the list's server CPU.
//! On PostgreSQL these statements select only the columns a [`License`] is made of
//! ([`read_columns`], in [`Column::iter`] order: not the lower-cased name, the address key, the
//! key hash, the encrypted password or the sweep's bookkeeping — a fifth less to send and
//! decode per row); the first row's column names are checked against that order. On SQLite
//! they select every column and rows decode by name, as everywhere else.
//!
//! [`License`]: licentia_domain::license_record::License
use sea_orm::sea_query::SelectStatement;
use sea_orm::sqlx::Row;
use sea_orm::sqlx::postgres::PgRow;
use sea_orm::{DbBackend, FromQueryResult, IdenStatic, Iterable, QueryResult};

use crate::entities::licenses::{self, Column, Entity};
use crate::error::{PersistenceError, Result};

/// The columns a license read by position leaves out: nothing of [`License`] is made of them.
///
/// [`License`]: licentia_domain::license_record::License
const NOT_READ: [Column; 6] = [
    Column::NameLower,
    Column::IpKey,
    Column::RegistrationKeyHash,
    Column::AdminPasswordEnc,
    Column::ExpiringNoticeFor,
    Column::DeletedAt,
];

/// How many columns a license read by position has (the first index after them is free for
/// extras).
pub const READ_COLUMNS: usize = 29;

/// The columns a license read by position has, in decoding order.
pub fn read_columns() -> impl Iterator<Item = Column> {
    Column::iter().filter(|c| !NOT_READ.iter().any(|n| n.as_str() == c.as_str()))
}

/// Adds the license's columns to `q`: on PostgreSQL those [`model`] decodes by position, in
/// its order; every column elsewhere.
pub fn select_columns(q: &mut SelectStatement, backend: DbBackend) {
    if backend == DbBackend::Postgres {
        for c in read_columns() {
            q.column((Entity, c));
        }
    } else {
        for c in Column::iter() {
            q.column((Entity, c));
        }
    }
}

/// Whether `row`'s first [`READ_COLUMNS`] columns are [`read_columns`], in order.
pub fn positional(row: &PgRow) -> bool {
    use sea_orm::sqlx::Column as _;
    let columns = row.columns();
    columns.len() >= READ_COLUMNS
        && read_columns()
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

/// The model of a row of [`read_columns`]; the columns not read are left empty (the model
/// goes straight into a `License`, which has none of them).
fn by_position(
    r: &PgRow,
    checked: bool,
) -> std::result::Result<licenses::Model, sea_orm::sqlx::Error> {
    Ok(licenses::Model {
        id: get(r, 0, checked)?,
        account_id: get(r, 1, checked)?,
        product_id: get(r, 2, checked)?,
        name: get(r, 3, checked)?,
        name_lower: String::new(),
        ip: get(r, 4, checked)?,
        ip_key: Vec::new(),
        period_months: get(r, 5, checked)?,
        valid_until: get(r, 6, checked)?,
        status: get(r, 7, checked)?,
        suspension_reason: get(r, 8, checked)?,
        came_from_status: get(r, 9, checked)?,
        came_from_reason: get(r, 10, checked)?,
        resumes_to_status: get(r, 11, checked)?,
        resumes_to_reason: get(r, 12, checked)?,
        options: get(r, 13, checked)?,
        auto_renew_months: get(r, 14, checked)?,
        registration_key: get(r, 15, checked)?,
        registration_key_hash: String::new(),
        registrations_count: get(r, 16, checked)?,
        provisioning_error: get(r, 17, checked)?,
        external_id: get(r, 18, checked)?,
        metadata: get(r, 19, checked)?,
        admin_password_enc: None,
        trial: get(r, 20, checked)?,
        suspension_cause: get(r, 21, checked)?,
        suspension_note: get(r, 22, checked)?,
        deletion_cause: get(r, 23, checked)?,
        deletion_note: get(r, 24, checked)?,
        version: get(r, 25, checked)?,
        expiring_notice_for: None,
        created_at: get(r, 26, checked)?,
        updated_at: get(r, 27, checked)?,
        deleted_at: None,
        last_validated_at: get(r, 28, checked)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_the_read_columns() {
        assert_eq!(read_columns().count(), READ_COLUMNS);
        assert_eq!(Column::iter().count(), READ_COLUMNS + NOT_READ.len());
    }

    #[test]
    fn the_select_lists_the_read_columns_in_decoding_order() {
        use sea_orm::sea_query::{PostgresQueryBuilder, Query};
        let mut q = Query::select();
        select_columns(&mut q, DbBackend::Postgres);
        q.from(Entity);
        let sql = q.to_string(PostgresQueryBuilder);
        let mut at = 0;
        for c in read_columns() {
            let needle = format!("\"licenses\".\"{}\"", c.as_str());
            let found = sql[at..].find(&needle).expect("every column, in order");
            at += found + needle.len();
        }
        for c in NOT_READ {
            assert!(!sql.contains(&format!("\"{}\"", c.as_str())));
        }
    }
}
