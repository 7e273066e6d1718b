//! Idempotency keys (CONTRACT §5): the first response to a caller's `Idempotency-Key`, kept
//! until it expires so that a retry replays it instead of repeating the effect.
//!
//! [`begin`] claims a key with `INSERT … ON CONFLICT DO NOTHING` and then reads the row, so
//! among concurrent first attempts (on one process or several, on SQLite or PostgreSQL)
//! exactly one is [`Begin::Started`]; the others see the winner's row. The winner then
//! [`finish`]es the key with the response, or [`abandon`]s it so that a retry runs again.
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    TryInsertResult,
};
use time::OffsetDateTime;

use crate::entities::idempotency_keys::{self, Column, Entity};
use crate::error::{PersistenceError, Result};

const IN_PROGRESS: &str = "in_progress";
const DONE: &str = "done";

/// A key still `in_progress` this long after it was claimed belongs to a request whose process
/// died (a live request ends long before: the pool's acquire timeout is seconds); it may be
/// claimed again instead of answering 409 until it expires. Taking a key over is safe even if
/// the first request still runs: its effect commits only with [`finish`] on its own claim
/// (`created_at`), which a takeover replaces, so one of the two rolls back.
pub const DEFAULT_STALE_AFTER: time::Duration = time::Duration::seconds(30);

/// How many times [`begin`] retries when the row it conflicted with vanished or was replaced
/// under it (an abandon or an expiry race); then it answers [`Begin::InProgress`].
const ATTEMPTS: usize = 3;

/// One run's hold on a key: the key and the instant it was claimed (a takeover of a stale
/// claim sets a new one, so the old run can no longer finish).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub caller: String,
    pub key: String,
    pub claimed_at: OffsetDateTime,
}

/// A response kept for replays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// Header names and values, in the order they were sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The outcome of claiming a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// The key is new (or its old use expired): run the request, then `finish` or `abandon`
    /// with this claim.
    Started(Claim),
    /// The first request with this key is still running.
    InProgress,
    /// The first request with this key and the same request hash finished with this response.
    Replay(StoredResponse),
    /// The key was first used for another request (method, path, query or body).
    Mismatch,
}

fn is_stale(row: &idempotency_keys::Model, now: OffsetDateTime, stale: time::Duration) -> bool {
    row.expires_at < now || (row.status == IN_PROGRESS && row.created_at < now - stale)
}

fn stale_condition(now: OffsetDateTime, stale: time::Duration) -> Condition {
    Condition::any().add(Column::ExpiresAt.lt(now)).add(
        Condition::all()
            .add(Column::Status.eq(IN_PROGRESS))
            .add(Column::CreatedAt.lt(crate::truncate(now - stale))),
    )
}

fn replay(row: idempotency_keys::Model) -> Result<StoredResponse> {
    let status = row
        .response_status
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| {
            PersistenceError::Corrupt(format!("idempotency key {:?}: status", row.key))
        })?;
    let headers = match row.response_headers {
        None => Vec::new(),
        Some(json) => serde_json::from_value::<Vec<(String, String)>>(json).map_err(|_| {
            PersistenceError::Corrupt(format!("idempotency key {:?}: headers", row.key))
        })?,
    };
    Ok(StoredResponse {
        status,
        headers,
        body: row.response_body.unwrap_or_default(),
    })
}

/// Claims `key` for `caller`'s request whose fingerprint is `request_hash`, keeping it until
/// `expires_at`. An expired row (or one still `in_progress` after `stale`, see
/// [`DEFAULT_STALE_AFTER`]) is replaced as if the key were new.
#[allow(clippy::too_many_arguments, reason = "one claim's parts")]
#[tracing::instrument(skip(db, request_hash))]
pub async fn begin(
    db: &impl ConnectionTrait,
    caller: &str,
    key: &str,
    request_hash: &str,
    method: &str,
    path: &str,
    expires_at: OffsetDateTime,
    stale: time::Duration,
) -> Result<Begin> {
    let claim = |claimed_at| Claim {
        caller: caller.to_owned(),
        key: key.to_owned(),
        claimed_at,
    };
    for _ in 0..ATTEMPTS {
        let now = crate::now();
        let row = idempotency_keys::ActiveModel {
            caller: Set(caller.to_owned()),
            key: Set(key.to_owned()),
            method: Set(method.to_owned()),
            path: Set(path.to_owned()),
            request_hash: Set(request_hash.to_owned()),
            status: Set(IN_PROGRESS.to_owned()),
            response_status: Set(None),
            response_headers: Set(None),
            response_body: Set(None),
            created_at: Set(now),
            expires_at: Set(crate::truncate(expires_at)),
        };
        let inserted = Entity::insert(row)
            .on_conflict_do_nothing_on([Column::Caller, Column::Key])
            .exec_without_returning(db)
            .await?;
        if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            return Ok(Begin::Started(claim(now)));
        }
        let Some(existing) = Entity::find_by_id((caller.to_owned(), key.to_owned()))
            .one(db)
            .await?
        else {
            // Abandoned between our insert and this read: claim it afresh.
            continue;
        };
        if is_stale(&existing, now, stale) {
            // Only one of several concurrent takers matches the stale condition.
            let taken = Entity::update_many()
                .col_expr(Column::Method, Expr::value(method))
                .col_expr(Column::Path, Expr::value(path))
                .col_expr(Column::RequestHash, Expr::value(request_hash))
                .col_expr(Column::Status, Expr::value(IN_PROGRESS))
                .col_expr(Column::ResponseStatus, Expr::value(Option::<i32>::None))
                .col_expr(
                    Column::ResponseHeaders,
                    Expr::value(Option::<serde_json::Value>::None),
                )
                .col_expr(Column::ResponseBody, Expr::value(Option::<Vec<u8>>::None))
                .col_expr(Column::CreatedAt, Expr::value(now))
                .col_expr(Column::ExpiresAt, Expr::value(crate::truncate(expires_at)))
                .filter(Column::Caller.eq(caller))
                .filter(Column::Key.eq(key))
                .filter(stale_condition(now, stale))
                .exec(db)
                .await?;
            if taken.rows_affected == 1 {
                return Ok(Begin::Started(claim(now)));
            }
            continue;
        }
        if existing.request_hash != request_hash {
            return Ok(Begin::Mismatch);
        }
        if existing.status == IN_PROGRESS {
            return Ok(Begin::InProgress);
        }
        return replay(existing).map(Begin::Replay);
    }
    Ok(Begin::InProgress)
}

/// Stores the response of a started key. Returns whether the key was still held by `claim`
/// (in progress, not taken over). Called inside the transaction of the request's effect, it
/// makes the effect and its stored response commit together (exactly once across crashes).
#[tracing::instrument(skip(db, headers, body))]
pub async fn finish(
    db: &impl ConnectionTrait,
    claim: &Claim,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<bool> {
    let headers = serde_json::to_value(headers)
        .map_err(|e| PersistenceError::Corrupt(format!("idempotency headers: {e}")))?;
    let res = Entity::update_many()
        .col_expr(Column::Status, Expr::value(DONE))
        .col_expr(Column::ResponseStatus, Expr::value(i32::from(status)))
        .col_expr(Column::ResponseHeaders, Expr::value(headers))
        .col_expr(Column::ResponseBody, Expr::value(body.to_vec()))
        .filter(Column::Caller.eq(claim.caller.as_str()))
        .filter(Column::Key.eq(claim.key.as_str()))
        .filter(Column::CreatedAt.eq(claim.claimed_at))
        .filter(Column::Status.eq(IN_PROGRESS))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Releases a started key without a response (the request failed in a way a retry may fix),
/// so that the next request with it runs. A finished key is left alone.
#[tracing::instrument(skip(db))]
pub async fn abandon(db: &impl ConnectionTrait, claim: &Claim) -> Result<bool> {
    let res = Entity::delete_many()
        .filter(Column::Caller.eq(claim.caller.as_str()))
        .filter(Column::Key.eq(claim.key.as_str()))
        .filter(Column::CreatedAt.eq(claim.claimed_at))
        .filter(Column::Status.eq(IN_PROGRESS))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Deletes every key that expired before `now`; returns how many.
#[tracing::instrument(skip(db))]
pub async fn purge_expired(db: &impl ConnectionTrait, now: OffsetDateTime) -> Result<u64> {
    let res = Entity::delete_many()
        .filter(Column::ExpiresAt.lt(crate::truncate(now)))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}
