//! `/v1/accounts/{id}/credits` and `/v1/accounts/{id}/ledger`: the provider tops up an account;
//! admins and the account itself read its ledger.

use actix_web::{HttpResponse, get, post, web};
use garde::Validate;
use licentia_domain::auth::Scope;
use licentia_persistence::repo::ledger::{self, LedgerEntry};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::{ListQuery, MAX_AMOUNT, visible_account};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::extract::validate;
use crate::pagination::{CursorKey, Page, page_of};
use crate::state::AppState;

/// One movement of an account's money.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntryOut {
    pub id: Uuid,
    /// The account whose balance moved.
    pub account_id: Uuid,
    /// Signed minor units: credits and refunds positive, charges negative.
    #[schema(example = 50_000)]
    pub amount: i64,
    /// `credit`, `charge` or `refund`.
    #[schema(value_type = crate::openapi::types::LedgerEntryKind, example = "credit")]
    pub kind: licentia_persistence::repo::ledger::LedgerKind,
    /// Free text: the payment reference of a credit, the order of a charge.
    #[schema(example = "Wire transfer 2024-118")]
    pub reference: String,
    /// The order a charge or refund belongs to.
    pub order_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<LedgerEntry> for LedgerEntryOut {
    fn from(e: LedgerEntry) -> Self {
        Self {
            id: e.id.as_uuid(),
            account_id: e.account_id.as_uuid(),
            amount: e.amount,
            kind: e.kind,
            reference: e.reference,
            order_id: e.order_id.map(|o| o.as_uuid()),
            created_at: e.created_at,
        }
    }
}

/// Money added to an account's balance by the provider.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCredit {
    /// Positive integer in minor units, at most 10^12.
    #[garde(range(min = 1, max = MAX_AMOUNT))]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, example = 50_000)]
    pub amount: i64,
    /// Where the money came from (payment reference), 1..200 characters.
    #[garde(length(chars, min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200, example = "Wire transfer 2024-118")]
    pub reference: String,
}

/// Credit an account
///
/// Adds money to the account's balance and records a `credit` ledger entry, in one
/// transaction. Provider administrators only.
#[utoipa::path(
    operation_id = "create_credit",
    tag = "billing",
    params(("id" = Uuid, Path, description = "Account id")),
    request_body = CreateCredit,
    responses(
        (status = 201, description = "The credit's ledger entry", body = LedgerEntryOut),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/accounts/{id}/credits")]
pub async fn create_credit(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    body: crate::extract::Json<CreateCredit>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let account = visible_account(&state, &principal, id.into_inner()).await?;
    let body = body.into_inner()?;
    validate(&body)?;

    let txn = state.db.begin().await?;
    let entry = licentia_app::accounts::credit(
        &txn,
        account.id,
        body.amount,
        &body.reference,
        principal.actor(),
    )
    .await?;
    crate::idempotency::commit(
        txn,
        HttpResponse::Created().json(LedgerEntryOut::from(entry)),
    )
    .await
}

/// List an account's ledger
///
/// Oldest first. Admins see every account's ledger; a partner sees its own (scope
/// `billing:read`). With `Accept: text/csv` the answer is every entry as RFC 4180 CSV (no
/// paging: `limit` and `cursor` do not apply), streamed, with the header
/// `id,created_at,kind,amount,reference,order_id`; every field is quoted, `amount` is a signed
/// number, and a text field starting with `=`, `+`, `-` or `@` is prefixed with `'`.
#[utoipa::path(
    operation_id = "list_ledger_entries",
    tag = "billing",
    params(("id" = Uuid, Path, description = "Account id"), ListQuery),
    responses(
        (status = 200, description = "A page of ledger entries (JSON), or every entry (CSV)", content(
            (Page<LedgerEntryOut> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/accounts/{id}/ledger")]
pub async fn list_ledger_entries(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    query: web::Query<ListQuery>,
    req: actix_web::HttpRequest,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::BillingRead)?;
    let account = visible_account(&state, &principal, id.into_inner()).await?;
    if crate::csv::wants_csv(&req) {
        crate::csv::no_paging(query.limit.is_some(), query.cursor.is_some())?;
        return Ok(super::exports::ledger_csv(state.into_inner(), account.id));
    }
    let scope = format!("{}|ledger|{}", principal.account_id(), account.id);
    let (limit, after) = query.keyset(&state, &scope)?;
    let rows = ledger::list(state.db.conn(), account.id, after, limit + 1).await?;
    let page = page_of(
        rows,
        limit,
        &state.cursors,
        &scope,
        |e| CursorKey {
            id: e.id.as_uuid(),
            value: None,
        },
        LedgerEntryOut::from,
    );
    Ok(HttpResponse::Ok().json(page))
}
