//! `GET /v1/licenses`: filters, sorts and keyset pages (the filters are shared with bulk
//! operations), the CSV export of every match, and `GET /v1/licenses/count`.
use std::collections::BTreeMap;
use std::net::IpAddr;

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::{AccountId, LicenseId, ProductId};
use licentia_domain::license_record::License;
use licentia_domain::period::Period;
use licentia_domain::product::Product;
use licentia_persistence::PersistenceError;
use licentia_persistence::repo::licenses::{self, After, Scope as LicenseScope, Sort};
use licentia_persistence::repo::products;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::LicenseOut;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, AppError, FieldError};
use crate::state::AppState;

mod filter;
pub use filter::*;

/// List licenses
///
/// Keyset-paged; filters combine with AND. An unknown parameter or a bad value is 422
/// naming it. `metadata.<key>=<value>` (up to 3) keeps licenses whose metadata has exactly
/// that string value under that key. With `Accept: text/csv` the answer is every matching
/// license as RFC 4180 CSV (no paging: `limit` and `cursor` do not apply), streamed, with the
/// header `id,name,ip,product_code,period_months,status,valid_until,auto_renew_months,external_id,created_at,last_validated_at`;
/// every field is quoted, and a text field starting with `=`, `+`, `-` or `@` is prefixed
/// with `'` so that spreadsheets do not run it as a formula.
#[utoipa::path(
    operation_id = "list_licenses",
    tag = "licenses",
    params(LicenseQuery),
    responses(
        (status = 200, description = "A page of licenses (JSON), or every matching license (CSV)", content(
            (crate::pagination::Page<LicenseOut> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/licenses")]
pub async fn list_licenses(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let (q, filter, filter_key, mut errors) =
        parse_request::<LicenseQuery>(&principal, &req, LicenseQuery::filters)?;
    let csv = crate::csv::wants_csv(&req);
    let limit = crate::pagination::parse_limit(q.limit.as_deref())
        .map_err(|e| errors.push(e))
        .unwrap_or(1);
    let sort_text = q.sort.clone().unwrap_or_else(|| "-created_at".into());
    let sort = parse_sort(&sort_text).unwrap_or_else(|| {
        errors.push(FieldError::new(
            "sort",
            "must be one of created_at, valid_until, name, last_validated_at, optionally prefixed by -",
        ));
        Sort::CreatedAt { desc: true }
    });
    if csv
        && let Err(ApiError::App(AppError::Validation { errors: paging, .. })) =
            crate::csv::no_paging(q.limit.is_some(), q.cursor.is_some())
    {
        errors.extend(paging);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let scope = caller_scope(&principal);
    if csv {
        return Ok(crate::routes::exports::licenses_csv(
            state.into_inner(),
            scope,
            filter,
            sort,
        ));
    }
    // The cursor is bound to the caller and to the exact filter and sort it came from.
    let scope_key = format!(
        "{}|licenses|{sort_text}|{filter_key}",
        principal.account_id(),
    );
    let after = match &q.cursor {
        None => None,
        Some(c) => Some(after_of(sort, state.cursors.decode(&scope_key, c)?)),
    };
    let page = PageRead {
        scope,
        filter: &filter,
        sort,
        after,
        limit,
    };
    // Every page but those by last validation (two statements) may be kept: keyed by all the
    // answer depends on besides its rows and products.
    let kept_key =
        (state.pages.is_on() && !matches!(sort, Sort::LastValidatedAt { .. })).then(|| {
            format!(
                "{scope:?}|{limit}|{scope_key}|{}",
                q.cursor.as_deref().unwrap_or("")
            )
        });
    if let Some(key) = kept_key
        && let Some(hot) = state.db.hot_page(!filter.is_empty())
    {
        return kept_page(&state, hot, key, &page, &scope_key).await;
    }
    let rows = read_page(&state, &page).await?;
    let catalog = catalog_of(&state, product_ids(&rows)).await?;
    let (body, _) = answer(&state, &page, &scope_key, rows, &catalog)?;
    Ok(json_answer(body))
}

/// What a page read is for.
struct PageRead<'a> {
    scope: LicenseScope,
    filter: &'a licenses::Filter,
    sort: Sort,
    after: Option<After>,
    /// Licenses on the page; one more is read to tell whether a next page exists.
    limit: u64,
}

/// A page on PostgreSQL's hot path through [`crate::pages`]: the kept answer when the
/// database still finds the same rows at the same versions and the products read the same;
/// else the page read in full (with its rows' versions) and kept.
async fn kept_page(
    state: &AppState,
    hot: &licentia_persistence::hot::HotPool,
    key: String,
    page: &PageRead<'_>,
    scope_key: &str,
) -> ApiResult<HttpResponse> {
    let (scope, filter, sort, limit) = (page.scope, page.filter, page.sort, page.limit + 1);
    let mut slot = None;
    match state.pages.lookup(&key).await {
        crate::pages::Lookup::Kept(kept) => {
            let now =
                licenses::page_versions_hot(hot, scope, filter, sort, page.after.clone(), limit);
            match now.await {
                Ok(Some(rows)) if rows == kept.rows => {
                    let catalog = catalog_of(state, kept.product_ids()).await?;
                    if kept.products_match(&catalog)
                        && let Some(body) = kept.answer()
                    {
                        state.pages.count("hit");
                        return Ok(json_answer(body));
                    }
                    state.pages.count("changed");
                }
                Ok(_) => state.pages.count("changed"),
                // The connection had died: read in full on the pinged pool below.
                Err(PersistenceError::Unavailable(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        crate::pages::Lookup::Empty(empty) => {
            state.pages.count("miss");
            slot = Some(empty);
        }
        crate::pages::Lookup::Off => {}
    }
    let read =
        licenses::list_hot_versioned(hot, scope, filter, sort, page.after.clone(), limit).await;
    let (rows, versions): (Vec<License>, Vec<_>) = match read {
        Ok(Some(read)) => read
            .into_iter()
            .map(|(l, v)| {
                let id = l.id.as_uuid();
                (l, (id, v))
            })
            .unzip(),
        Ok(None) | Err(PersistenceError::Unavailable(_)) => {
            let rows = read_page(state, page).await?;
            let catalog = catalog_of(state, product_ids(&rows)).await?;
            return Ok(json_answer(
                answer(state, page, scope_key, rows, &catalog)?.0,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let catalog = catalog_of(state, product_ids(&rows)).await?;
    let (body, products) = answer(state, page, scope_key, rows, &catalog)?;
    let kept = crate::pages::Kept::new(versions, &products, &body);
    match slot {
        Some(slot) => slot.fill(kept),
        None => state.pages.keep(key, kept),
    }
    Ok(json_answer(body))
}

/// The JSON answer of a page of `rows` (read with one row beyond the page), and the products
/// it shows.
fn answer<'c>(
    state: &AppState,
    page: &PageRead<'_>,
    scope_key: &str,
    rows: Vec<License>,
    catalog: &'c BTreeMap<ProductId, Product>,
) -> ApiResult<(Bytes, Vec<&'c Product>)> {
    let sort = page.sort;
    let key_of = |l: &License| cursor_key(sort, l);
    let page =
        crate::pagination::page_of(rows, page.limit, &state.cursors, scope_key, key_of, |l| l);
    let mut items = Vec::with_capacity(page.items.len());
    let mut shown: Vec<&Product> = Vec::new();
    for l in page.items {
        if let Some(p) = catalog.get(&l.product_id) {
            if !shown.iter().any(|s| s.id == p.id) {
                shown.push(p);
            }
            items.push(LicenseOut::new(l, p));
        }
    }
    // About a kilobyte a license: one buffer, no regrowth while writing.
    let mut body = Vec::with_capacity(1024 * items.len().min(200) + 256);
    serde_json::to_writer(
        &mut body,
        &crate::pagination::Page {
            items,
            next_cursor: page.next_cursor,
        },
    )
    .map_err(|e| ApiError::internal(format!("serializing a page: {e}")))?;
    Ok((Bytes::from(body), shown))
}

fn json_answer(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}

fn product_ids(rows: &[License]) -> Vec<ProductId> {
    rows.iter()
        .map(|l| l.product_id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn parse_sort(text: &str) -> Option<Sort> {
    Some(match text {
        "created_at" => Sort::CreatedAt { desc: false },
        "-created_at" => Sort::CreatedAt { desc: true },
        "valid_until" => Sort::ValidUntil { desc: false },
        "-valid_until" => Sort::ValidUntil { desc: true },
        "name" => Sort::Name { desc: false },
        "-name" => Sort::Name { desc: true },
        "last_validated_at" => Sort::LastValidatedAt { desc: false },
        "-last_validated_at" => Sort::LastValidatedAt { desc: true },
        _ => return None,
    })
}

fn rfc3339(t: Option<OffsetDateTime>) -> Option<String> {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}

/// Where the page after `key` (a cursor of `sort`) starts.
fn after_of(sort: Sort, key: crate::pagination::CursorKey) -> After {
    let time_value = || {
        key.value.as_deref().and_then(|v| {
            OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()
        })
    };
    match sort {
        Sort::CreatedAt { .. } => After::Id(key.id),
        Sort::ValidUntil { .. } => After::ValidUntil(time_value(), key.id),
        Sort::Name { .. } => After::Name(key.value.clone().unwrap_or_default(), key.id),
        Sort::LastValidatedAt { .. } => After::LastValidatedAt(time_value(), key.id),
    }
}

/// The cursor of a license in a list of `sort`.
fn cursor_key(sort: Sort, l: &License) -> crate::pagination::CursorKey {
    crate::pagination::CursorKey {
        id: l.id.as_uuid(),
        value: match sort {
            Sort::CreatedAt { .. } => None,
            Sort::ValidUntil { .. } => rfc3339(l.lifecycle.valid_until),
            Sort::Name { .. } => Some(l.name.to_lowercase()),
            Sort::LastValidatedAt { .. } => rfc3339(l.last_validated_at),
        },
    }
}

/// One page of rows: on PostgreSQL on a hot-path pool ([`licentia_persistence::hot`]) with
/// the search settings, or without them when nothing is filtered (see
/// [`licentia_persistence::Db::hot_page`]). No pool pings its connections: a page that
/// failed on one that had died is read again on the pinged pool.
async fn read_page(state: &AppState, page: &PageRead<'_>) -> ApiResult<Vec<License>> {
    let (scope, filter, sort, limit) = (page.scope, page.filter, page.sort, page.limit + 1);
    let after = page.after.clone();
    let first = match state.db.hot_page(!filter.is_empty()) {
        Some(hot) => licenses::list_hot(hot, scope, filter, sort, after.clone(), limit).await,
        // SQLite: one pool for everything.
        None => licenses::list(state.db.search(), scope, filter, sort, after.clone(), limit).await,
    };
    match first {
        Err(PersistenceError::Unavailable(_)) => {
            let txn = state.db.begin_search().await?;
            let rows = licenses::list(&txn, scope, filter, sort, after, limit).await?;
            txn.commit().await.map_err(PersistenceError::from)?;
            Ok(rows)
        }
        rows => Ok(rows?),
    }
}

/// The products of a page's licenses: from memory ([`crate::cache`]), or in one statement
/// however many licenses refer to them.
async fn catalog_of(
    state: &AppState,
    product_ids: Vec<ProductId>,
) -> ApiResult<BTreeMap<ProductId, Product>> {
    let (mut found, missing) = state.caches.products(&product_ids);
    if !missing.is_empty() {
        let ticket = state.caches.ticket();
        let read = match products::find_many(state.db.search(), &missing).await {
            Err(PersistenceError::Unavailable(_)) => {
                products::find_many(state.db.conn(), &missing).await?
            }
            read => read?,
        };
        state.caches.keep_products(ticket, &read);
        found.extend(read);
    }
    Ok(found.into_iter().map(|p| (p.id, p)).collect())
}

/// How many licenses match.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LicenseCount {
    pub count: u64,
}

/// Count licenses
///
/// How many licenses the list would show for these filters (every page together); the same
/// filters, `metadata.<key>=<value>` included, with the same rules.
#[utoipa::path(
    operation_id = "count_licenses",
    tag = "licenses",
    params(LicenseFilterQuery),
    responses(
        (status = 200, description = "The number of matching licenses", body = LicenseCount),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/licenses/count")]
pub async fn count_licenses(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let (_, filter, _, errors) =
        parse_request::<LicenseFilterQuery>(&principal, &req, LicenseFilterQuery::clone)?;
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let search = state.db.search();
    let scope = caller_scope(&principal);
    let count = match licenses::count(search, scope, &filter).await {
        Err(PersistenceError::Unavailable(_)) => {
            let txn = state.db.begin_search().await?;
            let count = licenses::count(&txn, scope, &filter).await?;
            txn.commit().await.map_err(PersistenceError::from)?;
            count
        }
        count => count?,
    };
    Ok(HttpResponse::Ok().json(LicenseCount { count }))
}
