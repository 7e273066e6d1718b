//! Usage written in batches (CONTRACT §11): when a license was last validated, when a
//! registered machine was last seen and from where. The API buffers these in memory and hands
//! them here every flush; each statement updates up to [`BATCH`] rows, and only ever moves a
//! timestamp forward, so several processes flushing the same rows in any order agree on the
//! latest value.
//!
//! SQLite keeps instants as RFC 3339 text whose fraction has as many digits as it needs, which
//! does not order as text (`…:05.5Z` > `…:05.51Z`); the comparison there goes through
//! `strftime('%f')`, exact to the millisecond.
//!
//! Rows are written in id order: each batch is sorted, and on PostgreSQL its statement is
//! planned as a nested loop over the values (hash and merge joins are switched off for it), so
//! it locks rows in ascending id — the order in which every path that locks several licenses
//! takes them — and a flush never deadlocks with a request; it waits for a row's lock like any
//! other writer. The columns written are in no index, so on PostgreSQL the updates are
//! heap-only (see migration m0009).
use std::net::IpAddr;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;

/// Rows per statement. SQLite binds each value (6,000 at most, under its limit of 32,766);
/// PostgreSQL takes each column as one array.
pub const BATCH: usize = 2_000;

/// A machine's last sighting: its registration, when, and from which address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub registration: Uuid,
    pub at: OffsetDateTime,
    pub ip: Option<IpAddr>,
}

/// `(?, ?), (?, ?), …`: SQLite's VALUES rows.
fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// A PostgreSQL array literal (`{"a","b",NULL}`) of texts that hold neither `"` nor `\`
/// (UUIDs, RFC 3339 instants, IP addresses), bound as one text parameter: a batch is then
/// three parameters, not thousands.
fn pg_array<'a>(items: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Some(text) => {
                out.push('"');
                out.push_str(text);
                out.push('"');
            }
            None => out.push_str("NULL"),
        }
    }
    out.push('}');
    out
}

fn rfc3339(t: OffsetDateTime) -> String {
    crate::truncate(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Runs one batch's statement in a transaction that, on PostgreSQL, visits the rows in the
/// order of the values (a nested loop over them by primary key) and commits without waiting
/// for its WAL to reach the disk (`synchronous_commit = off`): usage may lose its last
/// interval in a crash anyway (CONTRACT §11), and waiting for the flush of a batch's WAL —
/// most of it whole pages, the first change of each since the last checkpoint — held the
/// batch's locks and stalled the validations reading those pages (p99 50–160 ms for a second
/// after each flush at 10,000 validations a second, 9–12 ms without the flush).
async fn in_id_order(db: &DatabaseConnection, sql: String, values: Vec<Value>) -> Result<u64> {
    let backend = db.get_database_backend();
    let txn = crate::begin(db).await?;
    if backend == DbBackend::Postgres {
        txn.execute_unprepared(
            "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; \
             SET LOCAL synchronous_commit = off",
        )
        .await?;
    }
    let res = txn
        .execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    txn.commit().await?;
    Ok(res.rows_affected())
}

/// Moves `licenses.last_validated_at` forward to each given instant; returns how many rows
/// changed (a license validated later elsewhere, or deleted meanwhile, is left as it is).
pub async fn write_validations(
    db: &DatabaseConnection,
    rows: &[(Uuid, OffsetDateTime)],
) -> Result<u64> {
    let backend = db.get_database_backend();
    let mut changed = 0;
    for chunk in rows.chunks(BATCH) {
        let mut chunk = chunk.to_vec();
        chunk.sort_by_key(|(id, _)| *id);
        let (sql, values) = match backend {
            DbBackend::Postgres => {
                let ids: Vec<String> = chunk.iter().map(|(id, _)| id.to_string()).collect();
                let ats: Vec<String> = chunk.iter().map(|(_, at)| rfc3339(*at)).collect();
                (
                    "UPDATE licenses AS l SET last_validated_at = v.t \
                     FROM unnest(CAST($1 AS uuid[]), CAST($2 AS timestamptz[])) AS v(id, t) \
                     WHERE l.id = v.id AND (l.last_validated_at IS NULL OR l.last_validated_at < v.t)"
                        .to_owned(),
                    vec![
                        Value::from(pg_array(ids.iter().map(|s| Some(s.as_str())))),
                        Value::from(pg_array(ats.iter().map(|s| Some(s.as_str())))),
                    ],
                )
            }
            _ => (
                format!(
                    "UPDATE licenses SET last_validated_at = v.column2 \
                     FROM (VALUES {}) AS v \
                     WHERE licenses.id = v.column1 \
                     AND (licenses.last_validated_at IS NULL \
                          OR strftime('%Y-%m-%dT%H:%M:%f', licenses.last_validated_at) \
                           < strftime('%Y-%m-%dT%H:%M:%f', v.column2))",
                    placeholders(chunk.len(), 2)
                ),
                chunk
                    .iter()
                    .flat_map(|(id, at)| [Value::from(*id), Value::from(crate::truncate(*at))])
                    .collect(),
            ),
        };
        changed += in_id_order(db, sql, values).await?;
    }
    Ok(changed)
}

/// Moves `registrations.last_seen_at` forward to each sighting, with its address (an
/// unknown address keeps the stored one); returns how many rows changed.
pub async fn write_sightings(db: &DatabaseConnection, rows: &[Seen]) -> Result<u64> {
    let backend = db.get_database_backend();
    let mut changed = 0;
    for chunk in rows.chunks(BATCH) {
        let mut chunk = chunk.to_vec();
        chunk.sort_by_key(|s| s.registration);
        let (sql, values) = match backend {
            DbBackend::Postgres => {
                let ids: Vec<String> = chunk.iter().map(|s| s.registration.to_string()).collect();
                let ats: Vec<String> = chunk.iter().map(|s| rfc3339(s.at)).collect();
                let ips: Vec<Option<String>> = chunk
                    .iter()
                    .map(|s| s.ip.map(|ip| ip.to_string()))
                    .collect();
                (
                    "UPDATE registrations AS r SET last_seen_at = v.t, last_ip = COALESCE(v.ip, r.last_ip) \
                     FROM unnest(CAST($1 AS uuid[]), CAST($2 AS timestamptz[]), CAST($3 AS text[])) \
                       AS v(id, t, ip) \
                     WHERE r.id = v.id AND (r.last_seen_at IS NULL OR r.last_seen_at < v.t)"
                        .to_owned(),
                    vec![
                        Value::from(pg_array(ids.iter().map(|s| Some(s.as_str())))),
                        Value::from(pg_array(ats.iter().map(|s| Some(s.as_str())))),
                        Value::from(pg_array(ips.iter().map(Option::as_deref))),
                    ],
                )
            }
            _ => (
                format!(
                    "UPDATE registrations SET last_seen_at = v.column2, \
                     last_ip = COALESCE(v.column3, registrations.last_ip) \
                     FROM (VALUES {}) AS v \
                     WHERE registrations.id = v.column1 \
                     AND (registrations.last_seen_at IS NULL \
                          OR strftime('%Y-%m-%dT%H:%M:%f', registrations.last_seen_at) \
                           < strftime('%Y-%m-%dT%H:%M:%f', v.column2))",
                    placeholders(chunk.len(), 3)
                ),
                chunk
                    .iter()
                    .flat_map(|s| {
                        [
                            Value::from(s.registration),
                            Value::from(crate::truncate(s.at)),
                            Value::from(s.ip.map(|ip| ip.to_string())),
                        ]
                    })
                    .collect(),
            ),
        };
        changed += in_id_order(db, sql, values).await?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_values_and_postgres_arrays() {
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(
            pg_array([Some("192.0.2.1"), None, Some("::1")].into_iter()),
            r#"{"192.0.2.1",NULL,"::1"}"#
        );
        assert_eq!(pg_array(std::iter::empty()), "{}");
    }
}
