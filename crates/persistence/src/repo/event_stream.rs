//! Reading the event log in commit order, for live streams (`GET /v1/events/stream`), and the
//! leases that cap how many streams an account keeps open.
//!
//! Event ids are UUIDv7, made when the event is inserted, but transactions commit in another
//! order: an event with a smaller id can become visible after one with a larger id. A stream
//! that remembered "the last id sent" would skip it. Streams therefore walk a [`Position`]
//! that follows commits:
//!
//! - PostgreSQL: every event row carries `txid`, its transaction's id (a column default). A
//!   read returns only events whose `txid` lies below the `xmin` of the statement's snapshot:
//!   every transaction below it has ended, so no event with a smaller `txid` can still appear.
//!   Rows are read in (`txid`, `id`) order, and the next read continues after the last one: no
//!   gap, no duplicate. (A transaction left open delays streams until it ends; it never makes
//!   them skip.)
//! - SQLite: one writer at a time, so the table's `rowid` grows in commit order.
//!
//! Several server processes read the same log, so a stream sees the events of every process.
use std::collections::HashSet;

use licentia_domain::ids::{AccountId, LicenseId};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, Statement, Value,
};
use uuid::Uuid;

use super::event_record::Event;
use crate::entities::{event_streams, events};
use crate::error::Result;

/// Where a stream stands in the commit order: after the event (`key`, `id`). `key` is the
/// event's transaction id (PostgreSQL) or row id (SQLite).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub key: i64,
    pub id: Uuid,
}

/// Which events a stream sends.
#[derive(Clone, Debug, Default)]
pub struct StreamFilter {
    /// One account's events; `None`: every account's (the provider's administrators).
    pub account: Option<AccountId>,
    pub license_id: Option<LicenseId>,
    pub event_type: Option<String>,
}

/// `txid` below the snapshot's `xmin`: written by a transaction that has ended.
const PG_STABLE: &str = "e.txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

fn uuid(v: Uuid) -> Value {
    v.into()
}

/// Where a stream that opens now starts: after every event committed so far. On PostgreSQL
/// the position is the snapshot's `xmin`; the ids of events after it that are already
/// committed come with it, for the stream to skip.
pub async fn start(db: &impl ConnectionTrait) -> Result<(Position, HashSet<Uuid>)> {
    let backend = db.get_database_backend();
    if backend != DbBackend::Postgres {
        let row = db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COALESCE(MAX(rowid), 0) AS seq_key FROM events",
            ))
            .await?;
        let key = match row {
            Some(row) => row.try_get::<i64>("", "seq_key")?,
            None => 0,
        };
        return Ok((
            Position {
                key,
                id: Uuid::nil(),
            },
            HashSet::new(),
        ));
    }
    // One statement, one snapshot: the horizon and what is already visible beyond it.
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT s.xmin AS xmin, e.id AS id \
             FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin) s \
             LEFT JOIN events e ON e.txid >= s.xmin",
        ))
        .await?;
    let mut key = 0;
    let mut seen = HashSet::new();
    for row in rows {
        key = row.try_get::<i64>("", "xmin")?;
        if let Some(id) = row.try_get::<Option<Uuid>>("", "id")? {
            seen.insert(id);
        }
    }
    // (xmin, nil) comes before every event of transaction `xmin` and after all older ones.
    Ok((
        Position {
            key,
            id: Uuid::nil(),
        },
        seen,
    ))
}

/// The position of the event `id`, when it exists and `account` (if given) owns it.
pub async fn position_of(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    id: Uuid,
) -> Result<Option<Position>> {
    let backend = db.get_database_backend();
    let key = if backend == DbBackend::Postgres {
        "txid"
    } else {
        "rowid"
    };
    let mut sql = format!(
        "SELECT {key} AS seq_key FROM events WHERE id = {}",
        placeholder(backend, 1)
    );
    let mut values = vec![uuid(id)];
    if let Some(account) = account {
        sql.push_str(&format!(" AND account_id = {}", placeholder(backend, 2)));
        values.push(uuid(account.as_uuid()));
    }
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    row.map(|row| {
        Ok(Position {
            key: row.try_get::<i64>("", "seq_key")?,
            id,
        })
    })
    .transpose()
}

fn placeholder(backend: DbBackend, n: usize) -> String {
    if backend == DbBackend::Postgres {
        format!("${n}")
    } else {
        "?".to_owned()
    }
}

/// Up to `limit` committed events after `from` that `filter` lets through, in commit order,
/// each with its position.
pub async fn after(
    db: &impl ConnectionTrait,
    filter: &StreamFilter,
    from: Position,
    limit: u64,
) -> Result<Vec<(Position, Event)>> {
    let backend = db.get_database_backend();
    let pg = backend == DbBackend::Postgres;
    let mut values: Vec<Value> = Vec::new();
    let next = |v: Value, values: &mut Vec<Value>| {
        values.push(v);
        placeholder(backend, values.len())
    };
    let mut sql = if pg {
        let k = next(from.key.into(), &mut values);
        let i = next(uuid(from.id), &mut values);
        format!(
            "SELECT e.*, e.txid AS seq_key FROM events e WHERE (e.txid, e.id) > ({k}, {i}) AND {PG_STABLE}"
        )
    } else {
        let k = next(from.key.into(), &mut values);
        format!("SELECT e.*, e.rowid AS seq_key FROM events e WHERE e.rowid > {k}")
    };
    if let Some(account) = filter.account {
        let p = next(uuid(account.as_uuid()), &mut values);
        sql.push_str(&format!(" AND e.account_id = {p}"));
    }
    if let Some(license) = filter.license_id {
        let p = next(uuid(license.as_uuid()), &mut values);
        sql.push_str(&format!(" AND e.license_id = {p}"));
    }
    if let Some(t) = &filter.event_type {
        let p = next(t.clone().into(), &mut values);
        sql.push_str(&format!(" AND e.type = {p}"));
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let p = next(limit.into(), &mut values);
    sql.push_str(&if pg {
        format!(" ORDER BY e.txid, e.id LIMIT {p}")
    } else {
        format!(" ORDER BY e.rowid LIMIT {p}")
    });
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    rows.into_iter()
        .map(|row| {
            let key = row.try_get::<i64>("", "seq_key")?;
            let event = Event::try_from(events::Model::from_query_result(&row, "")?)?;
            Ok((
                Position {
                    key,
                    id: event.id.as_uuid(),
                },
                event,
            ))
        })
        .collect()
}

/// Up to `limit` committed events after `from`, every account's, as (position, account):
/// what tells open streams that there is something new for them.
pub async fn notices_after(
    db: &impl ConnectionTrait,
    from: Position,
    limit: u64,
) -> Result<Vec<(Position, AccountId)>> {
    let backend = db.get_database_backend();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let stmt = if backend == DbBackend::Postgres {
        Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT e.txid AS seq_key, e.id AS id, e.account_id AS account_id FROM events e \
                 WHERE (e.txid, e.id) > ($1, $2) AND {PG_STABLE} ORDER BY e.txid, e.id LIMIT $3"
            ),
            [from.key.into(), uuid(from.id), limit.into()],
        )
    } else {
        Statement::from_sql_and_values(
            backend,
            "SELECT e.rowid AS seq_key, e.id AS id, e.account_id AS account_id FROM events e \
             WHERE e.rowid > ? ORDER BY e.rowid LIMIT ?",
            [from.key.into(), limit.into()],
        )
    };
    let rows = db.query_all_raw(stmt).await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                Position {
                    key: row.try_get::<i64>("", "seq_key")?,
                    id: row.try_get::<Uuid>("", "id")?,
                },
                AccountId::from_uuid(row.try_get::<Uuid>("", "account_id")?),
            ))
        })
        .collect()
}

fn unix_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Leases a stream slot for `account` for `ttl`: `None` when the account already holds `max`
/// live leases. The account row is locked while counting, so concurrent opens on any number
/// of processes never pass the cap; leases of streams whose process died lapse after `ttl`.
pub async fn open_lease(
    db: &DatabaseConnection,
    account: AccountId,
    max: u64,
    ttl: time::Duration,
) -> Result<Option<Uuid>> {
    let txn = crate::begin(db).await?;
    super::accounts::lock(&txn, account).await?;
    let now = crate::now();
    let now_ms = unix_ms(now);
    event_streams::Entity::delete_many()
        .filter(event_streams::Column::AccountId.eq(account.as_uuid()))
        .filter(event_streams::Column::ExpiresAtMs.lte(now_ms))
        .exec(&txn)
        .await?;
    let open = event_streams::Entity::find()
        .filter(event_streams::Column::AccountId.eq(account.as_uuid()))
        .count(&txn)
        .await?;
    if open >= max {
        txn.rollback().await?;
        return Ok(None);
    }
    let id = Uuid::now_v7();
    event_streams::Entity::insert(event_streams::ActiveModel {
        id: Set(id),
        account_id: Set(account.as_uuid()),
        expires_at_ms: Set(unix_ms(now + ttl)),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(Some(id))
}

/// Extends a lease for another `ttl` (the stream is still open).
pub async fn renew_lease(db: &impl ConnectionTrait, id: Uuid, ttl: time::Duration) -> Result<()> {
    event_streams::Entity::update_many()
        .col_expr(
            event_streams::Column::ExpiresAtMs,
            sea_orm::sea_query::Expr::value(unix_ms(crate::now() + ttl)),
        )
        .filter(event_streams::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives the slot back (the stream closed).
pub async fn close_lease(db: &impl ConnectionTrait, id: Uuid) -> Result<()> {
    event_streams::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}
