//! `/v1/products`: the catalog. Every authenticated caller reads it; admins write it.
use actix_web::{HttpResponse, get, patch, post, web};
use garde::Validate;
use licentia_domain::ids::ProductId;
use licentia_domain::period::Period;
use licentia_domain::pricing::{PeriodPrice, ProductOption, ProductPricing};
use licentia_domain::product::{MAX_TRIAL_DAYS, Product, valid_product_code};
use licentia_persistence::PersistenceError;
use licentia_persistence::repo::products::{self, ProductFilter};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::accounts::MAX_AMOUNT;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, AppError, FieldError};
use crate::extract::validate;
use crate::pagination::{CursorKey, Page, page_of, parse_limit};
use crate::state::AppState;

mod input;
pub use input::*;

/// Create a product
#[utoipa::path(
    operation_id = "create_product",
    tag = "products",
    request_body = CreateProduct,
    responses(
        (status = 201, description = "Created", body = ProductOut),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/products")]
pub async fn create_product(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::extract::Json<CreateProduct>,
) -> ApiResult<HttpResponse> {
    guard_write(&principal)?;
    let body = body.into_inner()?;
    let mut errors = match validate(&body) {
        Err(ApiError::App(AppError::Validation { errors, .. })) => errors,
        _ => Vec::new(),
    };
    let pricing = parse_pricing(&body.prices, &body.options, &mut errors);
    let trial = trial_days(body.trial_days, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = licentia_persistence::now();
    let product = Product {
        id: ProductId::new(),
        code: body.code,
        name: body.name,
        pricing,
        max_registrations: body.max_registrations,
        transferable: body.transferable.unwrap_or(true),
        trial_days: trial.unwrap_or(0),
        archived: false,
        created_at: now,
        updated_at: now,
    };
    match products::insert(state.db.conn(), &product).await {
        Ok(product) => Ok(HttpResponse::Created().json(ProductOut::from(product))),
        Err(PersistenceError::Unique(_)) => Err(ApiError::already_exists(
            "a product with this code already exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Catalog filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Page size, 1..200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Include archived products (default false).
    #[param(value_type = Option<bool>)]
    pub include_archived: Option<String>,
    /// Only the product with this code.
    pub code: Option<String>,
}

/// List products
#[utoipa::path(
    operation_id = "list_products",
    tag = "products",
    params(ProductQuery),
    responses(
        (status = 200, description = "A page of products", body = Page<ProductOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/products")]
pub async fn list_products(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ProductQuery>,
) -> ApiResult<HttpResponse> {
    let query = query.into_inner();
    let mut errors = Vec::new();
    let limit = parse_limit(query.limit.as_deref())
        .map_err(|e| errors.push(e))
        .unwrap_or(1);
    let include_archived = match query.include_archived.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            errors.push(FieldError::new("include_archived", "must be true or false"));
            false
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let scope = format!(
        "{}|products|{include_archived}|{}",
        principal.account_id(),
        query.code.as_deref().unwrap_or("")
    );
    let after = match &query.cursor {
        Some(c) => Some(state.cursors.decode(&scope, c)?.id),
        None => None,
    };
    let filter = ProductFilter {
        include_archived,
        code: query.code,
    };
    let rows = products::list(
        state.db.conn(),
        &filter,
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
        |p| CursorKey {
            id: p.id.as_uuid(),
            value: None,
        },
        ProductOut::from,
    );
    Ok(HttpResponse::Ok().json(page))
}

async fn load(state: &AppState, id: Uuid) -> ApiResult<Product> {
    products::find(state.db.conn(), ProductId::from_uuid(id))
        .await?
        .ok_or(ApiError::not_found())
}

/// Get a product
#[utoipa::path(
    operation_id = "get_product",
    tag = "products",
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/products/{id}")]
pub async fn get_product(
    state: web::Data<AppState>,
    _principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(ProductOut::from(load(&state, id.into_inner()).await?)))
}

/// Update a product
///
/// Price changes apply to later orders and renewals; existing licenses keep working.
#[utoipa::path(
    operation_id = "update_product",
    tag = "products",
    params(("id" = Uuid, Path, description = "Product id")),
    request_body = UpdateProduct,
    responses(
        (status = 200, description = "The updated product", body = ProductOut),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[patch("/v1/products/{id}")]
pub async fn update_product(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    body: crate::extract::Json<UpdateProduct>,
) -> ApiResult<HttpResponse> {
    guard_write(&principal)?;
    let mut product = load(&state, id.into_inner()).await?;
    let body = body.into_inner()?;
    let mut errors = match validate(&body) {
        Err(ApiError::App(AppError::Validation { errors, .. })) => errors,
        _ => Vec::new(),
    };
    if body.prices.is_some() || body.options.is_some() {
        let prices = body
            .prices
            .unwrap_or_else(|| product.pricing.prices.iter().map(price_out).collect());
        let options = body
            .options
            .unwrap_or_else(|| ProductOut::from(product.clone()).options);
        product.pricing = parse_pricing(&prices, &options, &mut errors);
    }
    let trial = trial_days(body.trial_days, &mut errors);
    if let Some(Some(0)) = body.max_registrations {
        errors.push(FieldError::new(
            "max_registrations",
            "must be at least 1, or null for unlimited",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if let Some(name) = body.name {
        product.name = name;
    }
    if let Some(max) = body.max_registrations {
        product.max_registrations = max;
    }
    if let Some(transferable) = body.transferable {
        product.transferable = transferable;
    }
    if let Some(days) = trial {
        product.trial_days = days;
    }
    if let Some(archived) = body.archived {
        product.archived = archived;
    }
    product.updated_at = licentia_persistence::now();
    let product = products::update(state.db.conn(), &product).await?;
    state.caches.forget_products();
    Ok(HttpResponse::Ok().json(ProductOut::from(product)))
}

/// Archive a product
///
/// Archived products cannot be ordered; existing licenses keep working. Archiving twice is
/// harmless.
#[utoipa::path(
    operation_id = "archive_product",
    tag = "products",
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The archived product", body = ProductOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/products/{id}/archive")]
pub async fn archive_product(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    guard_write(&principal)?;
    let mut product = load(&state, id.into_inner()).await?;
    if !product.archived {
        product.archived = true;
        product.updated_at = licentia_persistence::now();
        product = products::update(state.db.conn(), &product).await?;
        state.caches.forget_products();
    }
    Ok(HttpResponse::Ok().json(ProductOut::from(product)))
}
