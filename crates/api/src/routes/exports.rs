//! CSV exports (CONTRACT §11): `GET /v1/licenses` and `GET /v1/accounts/{id}/ledger` with
//! `Accept: text/csv`. The handlers check permissions and parameters as for JSON, then answer
//! with a stream that reads the matches in keyset batches of [`BATCH`] rows, each batch its own
//! short statement, and writes each batch as it comes: memory stays constant however many rows
//! match, and no connection is held between batches (SQLite has only one). The stream reads
//! where reports read (`Db::read`: the replica when one serves).
//!
//! A failure after the header was sent cannot change the status any more: the stream ends
//! with an error, which breaks the chunked transfer, so the client sees an incomplete
//! download rather than a silently short file.
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::Bytes;
use licentia_domain::ids::AccountId;
use licentia_domain::license_record::License;
use licentia_persistence::repo::ledger::{self, LedgerEntry};
use licentia_persistence::repo::licenses::{self, After, Filter, Scope, Sort};
use licentia_persistence::sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use licentia_persistence::{DatabaseTransaction, PersistenceError};

use crate::csv::{Row, instant};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Rows read and written at a time.
pub const BATCH: u64 = 1_000;

/// The header of the license export (CONTRACT §11).
pub const LICENSES_HEADER: &str = "id,name,ip,product_code,period_months,status,valid_until,auto_renew_months,external_id,created_at,last_validated_at\r\n";
/// The header of the ledger export (CONTRACT §11).
pub const LEDGER_HEADER: &str = "id,created_at,kind,amount,reference,order_id\r\n";

/// Where the stream is.
enum Step<A> {
    Header,
    After(Option<A>),
    Done,
}

/// A read transaction on the export's database; PostgreSQL plans each batch for its actual
/// values, as the list's pages are (see `Db::search`).
async fn begin_read(state: &AppState) -> ApiResult<DatabaseTransaction> {
    let conn = state.db.read();
    let txn = conn.begin().await.map_err(PersistenceError::from)?;
    if conn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(
            "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL random_page_cost = 1.1",
        )
        .await
        .map_err(PersistenceError::from)?;
    }
    Ok(txn)
}

fn csv_response(
    filename: &str,
    body: impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::csv::CONTENT_TYPE)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body)
}

/// Streams batches: `fetch(after)` reads the next rows, `write` formats them and tells where
/// the next batch starts.
fn batches<A, R, F, Fut, W>(
    header: &'static str,
    fetch: F,
    write: W,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>>
where
    A: 'static,
    R: 'static,
    F: Fn(Option<A>) -> Fut + 'static,
    Fut: Future<Output = ApiResult<Vec<R>>>,
    W: Fn(&[R], &mut String) -> ApiResult<Option<A>> + 'static,
{
    let fetch = Arc::new(fetch);
    let write = Arc::new(write);
    futures_util::stream::unfold(Step::Header, move |step| {
        let (fetch, write) = (fetch.clone(), write.clone());
        async move {
            match step {
                Step::Done => None,
                Step::Header => {
                    Some((Ok(Bytes::from_static(header.as_bytes())), Step::After(None)))
                }
                Step::After(after) => {
                    let chunk = async {
                        let rows = fetch(after).await?;
                        let mut out = String::with_capacity(rows.len() * 160);
                        let next = write(&rows, &mut out)?;
                        let more = rows.len() as u64 == BATCH;
                        Ok::<_, ApiError>((out, next.filter(|_| more)))
                    }
                    .await;
                    match chunk {
                        Ok((out, _)) if out.is_empty() => None,
                        Ok((out, Some(next))) => {
                            Some((Ok(Bytes::from(out)), Step::After(Some(next))))
                        }
                        Ok((out, None)) => Some((Ok(Bytes::from(out)), Step::Done)),
                        Err(e) => {
                            tracing::warn!(error = %e, "CSV export failed after its header was sent");
                            Some((Err(actix_web::Error::from(e)), Step::Done))
                        }
                    }
                }
            }
        }
    })
}

/// Where the license list continues after `l` in `sort` order.
fn license_after(sort: Sort, l: &License) -> After {
    match sort {
        Sort::CreatedAt { .. } => After::Id(l.id.as_uuid()),
        Sort::ValidUntil { .. } => After::ValidUntil(l.lifecycle.valid_until, l.id.as_uuid()),
        Sort::Name { .. } => After::Name(l.name.to_lowercase(), l.id.as_uuid()),
        Sort::LastValidatedAt { .. } => After::LastValidatedAt(l.last_validated_at, l.id.as_uuid()),
    }
}

/// Every license `scope` sees that matches `filter`, in `sort` order, as CSV.
pub fn licenses_csv(
    state: Arc<AppState>,
    scope: Scope,
    filter: Filter,
    sort: Sort,
) -> HttpResponse {
    let filter = Arc::new(filter);
    let reader = state.clone();
    let fetch = move |after: Option<After>| {
        let (state, filter) = (reader.clone(), filter.clone());
        async move {
            let txn = begin_read(&state).await?;
            let rows = licenses::list(&txn, scope, &filter, sort, after, BATCH).await?;
            // Product codes never change; after the first batch they come from memory.
            let mut coded = Vec::with_capacity(rows.len());
            for l in rows {
                let code = state.product_codes.code(&txn, l.product_id).await?;
                coded.push((l, code));
            }
            txn.commit().await.map_err(PersistenceError::from)?;
            Ok(coded)
        }
    };
    let write = move |rows: &[(License, String)], out: &mut String| {
        for (l, code) in rows {
            let valid_until = instant(l.lifecycle.valid_until);
            let created_at = instant(Some(l.created_at));
            let last_validated_at = instant(l.last_validated_at);
            Row::new(out)
                .text(Some(&l.id.to_string()))
                .text(Some(&l.name))
                .text(Some(&l.ip.to_string()))
                .text(Some(code))
                .number(Some(i64::from(l.period.months())))
                .text(Some(l.lifecycle.status.as_str()))
                .text(valid_until.as_deref())
                .number(l.auto_renew.map(|p| i64::from(p.months())))
                .text(l.external_id.as_deref())
                .text(created_at.as_deref())
                .text(last_validated_at.as_deref())
                .end();
        }
        Ok(rows.last().map(|(l, _)| license_after(sort, l)))
    };
    csv_response("licenses.csv", batches(LICENSES_HEADER, fetch, write))
}

/// Every ledger entry of `account`, oldest first, as CSV.
pub fn ledger_csv(state: Arc<AppState>, account: AccountId) -> HttpResponse {
    let fetch = move |after: Option<uuid::Uuid>| {
        let state = state.clone();
        async move {
            let txn = begin_read(&state).await?;
            let rows = ledger::list(&txn, account, after, BATCH).await?;
            txn.commit().await.map_err(PersistenceError::from)?;
            Ok(rows)
        }
    };
    let write = |rows: &[LedgerEntry], out: &mut String| {
        for e in rows {
            let created_at = instant(Some(e.created_at));
            Row::new(out)
                .text(Some(&e.id.to_string()))
                .text(created_at.as_deref())
                .text(Some(e.kind.as_str()))
                .number(Some(e.amount))
                .text(Some(&e.reference))
                .text(e.order_id.map(|o| o.to_string()).as_deref())
                .end();
        }
        Ok(rows.last().map(|e| e.id.as_uuid()))
    };
    csv_response(
        &format!("ledger-{account}.csv"),
        batches(LEDGER_HEADER, fetch, write),
    )
}
