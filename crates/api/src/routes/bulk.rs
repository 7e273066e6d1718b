//! `POST /v1/licenses/bulk` and `GET /v1/bulk-operations/{id}`: one action over every license
//! a list filter matches, run as a job ([`licentia_app::licenses::bulk`]).
use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::period::Period;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::licenses::{FilterText, parse_filter};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;
use licentia_app::licenses::bulk::{self, Action};

/// `Some(None)` when the field is present and null, `None` when absent.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What to do to each matched license.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// As `POST /v1/licenses/{id}/disable`.
    Disable,
    /// As `POST /v1/licenses/{id}/enable`.
    Enable,
    /// As `POST /v1/licenses/{id}/renewals` paid from the balance; `params.period_months`.
    Renew,
    /// As `PATCH /v1/licenses/{id}` with `auto_renew_months`; `params.auto_renew_months`.
    SetAutoRenew,
    /// As `DELETE /v1/licenses/{id}`.
    Delete,
}

/// The filters of `GET /v1/licenses`, with the same meaning; all optional, combined with AND.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// Exact license id.
    #[schema(value_type = Option<Uuid>)]
    pub id: Option<String>,
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
    /// An exact address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
    #[schema(value_type = Option<crate::openapi::types::IpOrCidr>)]
    pub ip: Option<String>,
    #[schema(value_type = Option<Uuid>)]
    pub product_id: Option<String>,
    #[schema(value_type = Option<crate::openapi::types::PeriodMonths>)]
    pub period_months: Option<i64>,
    /// Comma-separated statuses; `deleted` only matches when listed here.
    #[schema(
        pattern = "^(ordered|in_progress|active|suspended|deleted)(,(ordered|in_progress|active|suspended|deleted))*$"
    )]
    pub status: Option<String>,
    /// `valid_until` on or after this instant (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_until_from: Option<String>,
    /// `valid_until` on or before this instant (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_until_to: Option<String>,
    pub external_id: Option<String>,
    /// Admins only.
    #[schema(value_type = Option<Uuid>)]
    pub account_id: Option<String>,
    /// Last validated strictly before this instant (RFC 3339); never-validated licenses are
    /// not included.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub validated_before: Option<String>,
    /// `true`: never validated; `false`: validated at least once.
    pub never_validated: Option<bool>,
    /// Metadata keys and the exact string value each must have (at most 3), as the list's
    /// `metadata.<key>=<value>`.
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// The action's parameters.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkParams {
    /// `renew` only (required): the renewal period, one the product prices.
    #[schema(value_type = Option<crate::openapi::types::PeriodMonths>)]
    pub period_months: Option<i64>,
    /// `set_auto_renew` only (required): the auto-renewal period, or null for off.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<crate::openapi::types::PeriodMonths>)]
    pub auto_renew_months: Option<Option<i64>>,
}

/// A bulk operation to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBulkOperation {
    pub action: BulkAction,
    /// Which licenses: the list filters (`{}` matches every license but deleted ones).
    pub filter: BulkFilter,
    /// `{period_months}` for `renew`, `{auto_renew_months}` for `set_auto_renew`; nothing
    /// for the other actions.
    #[serde(default)]
    pub params: Option<BulkParams>,
    /// Work out what each license would answer, changing nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The accepted operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkOperationCreated {
    /// Poll `GET /v1/bulk-operations/{id}` for its progress and results.
    pub id: Uuid,
}

/// What one license answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkItemResult {
    pub license_id: Uuid,
    /// `ok`, or the problem `code` the single call would have answered (e.g.
    /// `invalid_transition`, `license_expired`, `insufficient_funds`, `forbidden`,
    /// `not_found` when the license left the caller's reach meanwhile).
    pub result: String,
}

/// A bulk operation and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkOperationOut {
    pub id: Uuid,
    /// `disable`, `enable`, `renew`, `set_auto_renew` or `delete`.
    #[schema(value_type = BulkAction)]
    pub action: String,
    /// The action's parameters, as accepted.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// A dry run changes nothing; its results say what each license would answer.
    pub dry_run: bool,
    /// `pending`, `running`, `completed` or `failed`.
    #[schema(value_type = crate::openapi::types::BulkStatus)]
    pub status: licentia_domain::bulk::BulkStatus,
    /// Licenses the filter matched when the operation was created.
    pub total: u32,
    /// Licenses handled so far (the length of `results`).
    pub done: u32,
    /// One entry per handled license, in license order.
    pub results: Vec<BulkItemResult>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the operation completed or failed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

fn period_of(field: &str, months: i64, errors: &mut Vec<FieldError>) -> Option<Period> {
    Period::new(months)
        .map_err(|_| errors.push(FieldError::new(field, "must be one of 1, 3, 6, 12, 24, 36")))
        .ok()
}

/// The action with its parameters checked: each action takes exactly its own.
fn action_of(
    action: BulkAction,
    params: Option<BulkParams>,
    errors: &mut Vec<FieldError>,
) -> Option<Action> {
    let params = params.unwrap_or_default();
    let mut unused = |field: &str, present: bool| {
        if present {
            errors.push(FieldError::new(
                format!("params.{field}"),
                "is not a parameter of this action",
            ));
        }
    };
    match action {
        BulkAction::Disable | BulkAction::Enable | BulkAction::Delete => {
            unused("period_months", params.period_months.is_some());
            unused("auto_renew_months", params.auto_renew_months.is_some());
            Some(match action {
                BulkAction::Disable => Action::Disable,
                BulkAction::Enable => Action::Enable,
                _ => Action::Delete,
            })
        }
        BulkAction::Renew => {
            unused("auto_renew_months", params.auto_renew_months.is_some());
            let Some(months) = params.period_months else {
                errors.push(FieldError::new(
                    "params.period_months",
                    "is required for renew",
                ));
                return None;
            };
            period_of("params.period_months", months, errors).map(|period| Action::Renew { period })
        }
        BulkAction::SetAutoRenew => {
            unused("period_months", params.period_months.is_some());
            match params.auto_renew_months {
                None => {
                    errors.push(FieldError::new(
                        "params.auto_renew_months",
                        "is required for set_auto_renew (null turns auto-renewal off)",
                    ));
                    None
                }
                Some(None) => Some(Action::SetAutoRenew { period: None }),
                Some(Some(months)) => period_of("params.auto_renew_months", months, errors)
                    .map(|p| Action::SetAutoRenew { period: Some(p) }),
            }
        }
    }
}

/// Start a bulk operation
///
/// Applies `action` to every license `filter` matches now (at most 10,000 by default; more
/// answer 422 `too_many_matches`), in the background: poll the operation for its progress.
/// Each license is handled in its own transaction with the rules of the single call and
/// gets its own result; one refusal does not stop the others. With `dry_run`, every license
/// is checked the same way and nothing changes (a dry `renew` charges, in its imagination,
/// the earlier licenses first, so it runs out of funds where the real one would).
#[utoipa::path(
    operation_id = "create_bulk_operation",
    tag = "bulk",
    request_body = CreateBulkOperation,
    responses(
        (status = 202, description = "Accepted; the operation runs in the background", body = BulkOperationCreated,
         headers(("Location" = String, description = "The operation's URL"))),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/licenses/bulk")]
pub async fn create_bulk_operation(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::extract::Json<CreateBulkOperation>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesWrite)?;
    let body = body.into_inner()?;
    let mut errors = Vec::new();
    let action = action_of(body.action, body.params, &mut errors);
    let f = &body.filter;
    let period_months = f.period_months.map(|n| n.to_string());
    let never_validated = f.never_validated.map(|b| if b { "true" } else { "false" });
    let metadata: Vec<(String, String)> = f
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let filter = parse_filter(
        &principal,
        FilterText {
            id: f.id.as_deref(),
            name: f.name.as_deref(),
            ip: f.ip.as_deref(),
            product_id: f.product_id.as_deref(),
            period_months: period_months.as_deref(),
            status: f.status.as_deref(),
            valid_until_from: f.valid_until_from.as_deref(),
            valid_until_to: f.valid_until_to.as_deref(),
            external_id: f.external_id.as_deref(),
            account_id: f.account_id.as_deref(),
            validated_before: f.validated_before.as_deref(),
            never_validated,
            metadata: &metadata,
        },
        "filter.",
        &mut errors,
    );
    let Some(action) = action.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let (op, txn) = bulk::create(
        &state,
        &principal.caller(),
        principal.account_id(),
        action,
        &filter,
        body.dry_run,
    )
    .await?;
    let res = HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/bulk-operations/{}", op.id)))
        .json(BulkOperationCreated { id: op.id });
    crate::idempotency::commit(txn, res).await
}

/// Get a bulk operation
///
/// Its status, progress and the result of every license handled so far. Visible to its
/// account (and admins); others get 404.
#[utoipa::path(
    operation_id = "get_bulk_operation",
    tag = "bulk",
    params(("id" = Uuid, Path, description = "Bulk operation id")),
    responses(
        (status = 200, description = "The operation", body = BulkOperationOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/bulk-operations/{id}")]
pub async fn get_bulk_operation(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    use licentia_persistence::repo::bulk as repo;
    principal.require(Scope::LicensesRead)?;
    let db = state.db.conn();
    let account = (!principal.is_admin()).then(|| principal.account_id());
    let op = repo::find(db, account, id.into_inner())
        .await?
        .ok_or(ApiError::not_found())?;
    let results: Vec<BulkItemResult> = repo::results(db, op.id)
        .await?
        .into_iter()
        .map(|r| BulkItemResult {
            license_id: r.license_id.as_uuid(),
            result: r.result,
        })
        .collect();
    Ok(HttpResponse::Ok().json(BulkOperationOut {
        id: op.id,
        action: op.action,
        params: op.params,
        dry_run: op.dry_run,
        status: op.status,
        total: op.total,
        done: u32::try_from(results.len()).unwrap_or(u32::MAX),
        results,
        created_at: op.created_at,
        finished_at: op.finished_at,
    }))
}
