//! `/v1/accounts`: the provider creates and manages partner accounts.
use actix_web::{HttpResponse, get, patch, post, web};
use garde::Validate;
use licentia_domain::account::Account;
use licentia_domain::auth::AccountKind;
use licentia_domain::ids::AccountId;
use licentia_persistence::repo::accounts::{self, NewAccount, UpdateOutcome};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::validate;
use crate::pagination::{CursorKey, Page, page_of, parse_limit};
use crate::state::AppState;

/// Largest credit limit and credit amount, in minor units.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// An account: the provider's own or a partner's.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct AccountOut {
    /// The account id (the partner id a sender names in a transfer).
    pub id: Uuid,
    /// `provider` or `partner`.
    #[schema(value_type = crate::openapi::types::AccountKind, example = "partner")]
    pub kind: licentia_domain::auth::AccountKind,
    pub name: String,
    /// ISO 4217 currency of every amount of the account.
    #[schema(example = "USD")]
    pub currency: String,
    /// Balance in minor units; the sum of the account's ledger.
    pub balance: i64,
    /// How far below zero the balance may go, in minor units.
    pub credit_limit: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Account> for AccountOut {
    fn from(a: Account) -> Self {
        Self {
            id: a.id.as_uuid(),
            kind: a.kind,
            name: a.name,
            currency: a.currency.as_str().to_owned(),
            balance: a.balance,
            credit_limit: a.credit_limit,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A new partner account.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Display name, 1..200 characters.
    #[garde(length(chars, min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200, example = "Acme Hosting")]
    pub name: String,
    /// Credit limit in minor units (default 0).
    #[garde(range(min = 0, max = MAX_AMOUNT))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub credit_limit: Option<i64>,
}

/// Changes to an account.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    #[garde(length(chars, min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// New credit limit; it cannot drop below the account's current debt.
    #[garde(range(min = 0, max = MAX_AMOUNT))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub credit_limit: Option<i64>,
}

/// Paging parameters shared by simple lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1..200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// Limit and the id to continue after, for lists sorted by id.
    pub fn keyset(&self, state: &AppState, scope: &str) -> ApiResult<(u64, Option<Uuid>)> {
        let limit =
            parse_limit(self.limit.as_deref()).map_err(|e| ApiError::validation(vec![e]))?;
        let after = match &self.cursor {
            Some(c) => Some(state.cursors.decode(scope, c)?.id),
            None => None,
        };
        Ok((limit, after))
    }
}

/// Looks up an account the caller may see; others' accounts are indistinguishable from
/// unknown ones.
pub async fn visible_account(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> ApiResult<Account> {
    let id = AccountId::from_uuid(id);
    if !principal.can_see(id) {
        return Err(ApiError::not_found());
    }
    accounts::find(state.db.conn(), id)
        .await?
        .ok_or(ApiError::not_found())
}

/// Create a partner account
#[utoipa::path(
    operation_id = "create_account",
    tag = "accounts",
    request_body = CreateAccount,
    responses(
        (status = 201, description = "Created", body = AccountOut),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/accounts")]
pub async fn create_account(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::extract::Json<CreateAccount>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let body = body.into_inner()?;
    validate(&body)?;
    let account = accounts::create(
        state.db.conn(),
        NewAccount {
            id: AccountId::new(),
            kind: AccountKind::Partner,
            name: body.name,
            currency: state.currency,
            credit_limit: body.credit_limit.unwrap_or(0),
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(AccountOut::from(account)))
}

/// List accounts
#[utoipa::path(
    operation_id = "list_accounts",
    tag = "accounts",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of accounts", body = Page<AccountOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/accounts")]
pub async fn list_accounts(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let scope = format!("{}|accounts", principal.account_id());
    let (limit, after) = query.keyset(&state, &scope)?;
    let rows = accounts::list(
        state.db.conn(),
        licentia_persistence::repo::Page {
            after,
            limit: limit + 1,
        },
    )
    .await?;
    let page = page_of(
        rows,
        limit,
        &state.cursors,
        &scope,
        |a| CursorKey {
            id: a.id.as_uuid(),
            value: None,
        },
        AccountOut::from,
    );
    Ok(HttpResponse::Ok().json(page))
}

/// Get an account
///
/// Admins see every account; a partner sees only its own.
#[utoipa::path(
    operation_id = "get_account",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account", body = AccountOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/accounts/{id}")]
pub async fn get_account(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let account = visible_account(&state, &principal, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(AccountOut::from(account)))
}

/// Update an account
#[utoipa::path(
    operation_id = "update_account",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "Account id")),
    request_body = UpdateAccount,
    responses(
        (status = 200, description = "The updated account", body = AccountOut),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[patch("/v1/accounts/{id}")]
pub async fn update_account(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    body: crate::extract::Json<UpdateAccount>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let account = visible_account(&state, &principal, id.into_inner()).await?;
    let body = body.into_inner()?;
    validate(&body)?;
    match accounts::update(state.db.conn(), account.id, body.name, body.credit_limit).await? {
        UpdateOutcome::Updated(account) => Ok(HttpResponse::Ok().json(AccountOut::from(account))),
        UpdateOutcome::WouldBreachCredit => Err(ApiError::validation(vec![FieldError::new(
            "credit_limit",
            "is below the account's current debt",
        )])),
    }
}
