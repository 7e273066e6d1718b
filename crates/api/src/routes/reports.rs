//! Reports (CONTRACT §11): `GET /v1/reports/licenses` (counts by status and product, and how
//! many expire soon) and `GET /v1/reports/revenue` (the ledger of a period by kind and
//! product). Partners see their own account; admins one account or all of them. Both read
//! where exports read (`Db::read`: the replica when one serves), each with grouped statements
//! over indexes made for them (migration m0009).
use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::{AccountId, ProductId};
use licentia_persistence::repo::{accounts, reports};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;

/// The longest period a revenue report covers.
pub const MAX_REVENUE_DAYS: i64 = 400;

/// Parameters of the license report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LicenseReportQuery {
    /// One account's licenses. Partners: only their own (another id is 422); admins: any
    /// account, or every account when absent.
    #[param(value_type = Option<Uuid>)]
    pub account_id: Option<String>,
    /// The window of `expiring`, 1..365 days from now (default 30).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 365)]
    pub expiring_within_days: Option<String>,
}

/// Licenses per status; `deleted` ones are not counted.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct StatusCounts {
    pub ordered: u64,
    pub active: u64,
    pub suspended: u64,
    pub in_progress: u64,
}

/// Licenses of one product (`deleted` ones not counted).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductCount {
    pub product_id: Uuid,
    pub code: String,
    pub count: u64,
}

/// How many licenses there are and how many expire soon.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseReport {
    /// Every license but the deleted ones.
    pub total: u64,
    pub by_status: StatusCounts,
    /// Most licenses first.
    pub by_product: Vec<ProductCount>,
    pub expiring_within_days: u32,
    /// Active or suspended licenses whose `valid_until` lies in [now, now + `expiring_within_days`].
    pub expiring: u64,
}

/// Parameters of the revenue report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevenueReportQuery {
    /// Start of the period (RFC 3339, inclusive).
    #[param(value_type = String, format = DateTime)]
    pub from: Option<String>,
    /// End of the period (RFC 3339, exclusive); after `from`, at most 400 days after it.
    #[param(value_type = String, format = DateTime)]
    pub to: Option<String>,
    /// One account's ledger. Partners: only their own (another id is 422); admins: any
    /// account, or every account when absent.
    #[param(value_type = Option<Uuid>)]
    pub account_id: Option<String>,
}

/// Money of one product in the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductRevenueOut {
    pub product_id: Uuid,
    pub code: String,
    /// Charged for this product's licenses (positive minor units).
    pub charges: i64,
    /// Refunded for this product's licenses (positive minor units).
    pub refunds: i64,
}

/// The ledger of a period: what was charged, refunded and credited.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueReport {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub currency: String,
    /// Σ charges (positive minor units).
    pub charges: i64,
    /// Σ refunds (positive minor units).
    pub refunds: i64,
    /// Σ credits: money the provider added to balances.
    pub credits: i64,
    /// `charges` − `refunds`.
    pub net_charges: i64,
    /// Charges and refunds per product, largest charges first. Each charge is split by the
    /// licenses its order paid for, each refund is for one license; both count for the
    /// product the license had when the money moved.
    pub by_product: Vec<ProductRevenueOut>,
}

/// The account a report covers: `None` for every account (admins only).
async fn report_account(
    state: &AppState,
    principal: &Principal,
    raw: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> ApiResult<Option<AccountId>> {
    let Some(raw) = raw else {
        return Ok((!principal.is_admin()).then(|| principal.account_id()));
    };
    let Ok(id) = raw.parse::<Uuid>().map(AccountId::from_uuid) else {
        errors.push(FieldError::new("account_id", "must be a UUID"));
        return Ok(None);
    };
    if principal.is_admin() {
        if accounts::find(state.db.conn(), id).await?.is_none() {
            errors.push(FieldError::new("account_id", "no such account"));
        }
    } else if id != principal.account_id() {
        errors.push(FieldError::new(
            "account_id",
            "only the provider's administrators may report on another account",
        ));
    }
    Ok(Some(id))
}

/// The codes of `products`, from the in-memory catalog cache.
async fn product_codes(
    state: &AppState,
    products: impl IntoIterator<Item = ProductId>,
) -> ApiResult<BTreeMap<ProductId, String>> {
    let mut codes = BTreeMap::new();
    for id in products {
        if let std::collections::btree_map::Entry::Vacant(slot) = codes.entry(id) {
            slot.insert(state.product_codes.code(state.db.read(), id).await?);
        }
    }
    Ok(codes)
}

/// License report
///
/// Licenses by status and by product (deleted ones not counted), and how many active or
/// suspended licenses reach `valid_until` within `expiring_within_days`. Partners report on
/// their own account; admins on one account (`account_id`) or on all.
#[utoipa::path(
    operation_id = "get_license_report",
    tag = "reports",
    params(LicenseReportQuery),
    responses(
        (status = 200, description = "The counts", body = LicenseReport),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/reports/licenses")]
pub async fn get_license_report(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let q: LicenseReportQuery = crate::extract::parse_query(req.query_string())?;
    let mut errors = Vec::new();
    let account = report_account(&state, &principal, q.account_id.as_deref(), &mut errors).await?;
    let days = match q.expiring_within_days.as_deref() {
        None => 30,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=365).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "expiring_within_days",
                    "must be an integer from 1 to 365",
                ));
                30
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let db = state.db.read();
    let counts = reports::license_counts(db, account).await?;
    let now = state.clock.now();
    let expiring =
        reports::expiring(db, account, now, now + Duration::days(i64::from(days))).await?;
    let mut by_status = StatusCounts::default();
    let mut by_product: BTreeMap<ProductId, u64> = BTreeMap::new();
    for c in &counts {
        let slot = match c.status.as_str() {
            "ordered" => &mut by_status.ordered,
            "active" => &mut by_status.active,
            "suspended" => &mut by_status.suspended,
            "in_progress" => &mut by_status.in_progress,
            _ => continue,
        };
        *slot += c.count;
        *by_product.entry(c.product_id).or_default() += c.count;
    }
    let codes = product_codes(&state, by_product.keys().copied()).await?;
    let mut by_product: Vec<ProductCount> = by_product
        .into_iter()
        .map(|(id, count)| ProductCount {
            product_id: id.as_uuid(),
            code: codes.get(&id).cloned().unwrap_or_default(),
            count,
        })
        .collect();
    by_product.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
    let total = by_status.ordered + by_status.active + by_status.suspended + by_status.in_progress;
    Ok(HttpResponse::Ok().json(LicenseReport {
        total,
        by_status,
        by_product,
        expiring_within_days: days,
        expiring,
    }))
}

fn parse_bound(
    field: &str,
    raw: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<OffsetDateTime> {
    let Some(raw) = raw else {
        errors.push(FieldError::new(
            field,
            "is required (an RFC 3339 date-time)",
        ));
        return None;
    };
    match OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339) {
        Ok(t) => Some(licentia_persistence::truncate(t)),
        Err(_) => {
            errors.push(FieldError::new(field, "must be an RFC 3339 date-time"));
            None
        }
    }
}

/// Revenue report
///
/// The ledger entries created in [`from`, `to`): charges, refunds and credits (as positive
/// numbers), net charges, and charges and refunds by product. `to` must be after `from`, at
/// most 400 days. Partners report on their own account; admins on one account (`account_id`)
/// or on all.
#[utoipa::path(
    operation_id = "get_revenue_report",
    tag = "reports",
    params(RevenueReportQuery),
    responses(
        (status = 200, description = "The sums", body = RevenueReport),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/reports/revenue")]
pub async fn get_revenue_report(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::BillingRead)?;
    let q: RevenueReportQuery = crate::extract::parse_query(req.query_string())?;
    let mut errors = Vec::new();
    let account = report_account(&state, &principal, q.account_id.as_deref(), &mut errors).await?;
    let from = parse_bound("from", q.from.as_deref(), &mut errors);
    let to = parse_bound("to", q.to.as_deref(), &mut errors);
    if let (Some(from), Some(to)) = (from, to) {
        if to <= from {
            errors.push(FieldError::new("to", "must be after from"));
        } else if to - from > Duration::days(MAX_REVENUE_DAYS) {
            errors.push(FieldError::new(
                "to",
                format!("must be at most {MAX_REVENUE_DAYS} days after from"),
            ));
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let revenue = reports::revenue(state.db.read(), account, from, to).await?;
    let codes = product_codes(&state, revenue.by_product.iter().map(|p| p.product_id)).await?;
    let mut by_product: Vec<ProductRevenueOut> = revenue
        .by_product
        .iter()
        .map(|p| ProductRevenueOut {
            product_id: p.product_id.as_uuid(),
            code: codes.get(&p.product_id).cloned().unwrap_or_default(),
            charges: p.charges,
            refunds: p.refunds,
        })
        .collect();
    by_product.sort_by(|a, b| b.charges.cmp(&a.charges).then_with(|| a.code.cmp(&b.code)));
    Ok(HttpResponse::Ok().json(RevenueReport {
        from,
        to,
        currency: state.currency.as_str().to_owned(),
        charges: revenue.charges,
        refunds: revenue.refunds,
        credits: revenue.credits,
        net_charges: revenue.charges.saturating_sub(revenue.refunds),
        by_product,
    }))
}
