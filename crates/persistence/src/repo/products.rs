//! The product catalog. Prices and options are stored as JSON documents in their own
//! stable shape (not the domain types' serde form), so refactoring the domain never
//! silently changes stored data.
use licentia_domain::ids::ProductId;
use licentia_domain::period::Period;
use licentia_domain::pricing::{PeriodPrice, ProductOption, ProductPricing};
use licentia_domain::product::Product;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::Page;
use crate::entities::products::{self, Column, Entity};
use crate::error::{PersistenceError, Result};

#[derive(Serialize, Deserialize)]
struct StoredPrice {
    period_months: u32,
    amount: i64,
}

#[derive(Serialize, Deserialize)]
struct StoredOption {
    code: String,
    name: String,
    min: u32,
    max: u32,
    prices: Vec<StoredPrice>,
}

fn store_prices(prices: &[PeriodPrice]) -> serde_json::Value {
    let stored: Vec<StoredPrice> = prices
        .iter()
        .map(|p| StoredPrice {
            period_months: p.period.months(),
            amount: p.amount,
        })
        .collect();
    serde_json::to_value(stored).unwrap_or_default()
}

fn load_prices(stored: Vec<StoredPrice>) -> Result<Vec<PeriodPrice>> {
    stored
        .into_iter()
        .map(|p| {
            let period = Period::try_from(p.period_months).map_err(|_| {
                PersistenceError::Corrupt(format!("product period {}", p.period_months))
            })?;
            Ok(PeriodPrice {
                period,
                amount: p.amount,
            })
        })
        .collect()
}

fn store_options(options: &[ProductOption]) -> serde_json::Value {
    let stored: Vec<StoredOption> = options
        .iter()
        .map(|o| StoredOption {
            code: o.code.clone(),
            name: o.name.clone(),
            min: o.min,
            max: o.max,
            prices: o
                .prices
                .iter()
                .map(|p| StoredPrice {
                    period_months: p.period.months(),
                    amount: p.amount,
                })
                .collect(),
        })
        .collect();
    serde_json::to_value(stored).unwrap_or_default()
}

fn load_options(value: serde_json::Value) -> Result<Vec<ProductOption>> {
    let stored: Vec<StoredOption> = serde_json::from_value(value)
        .map_err(|e| PersistenceError::Corrupt(format!("product options: {e}")))?;
    stored
        .into_iter()
        .map(|o| {
            Ok(ProductOption {
                code: o.code,
                name: o.name,
                min: o.min,
                max: o.max,
                prices: load_prices(o.prices)?,
            })
        })
        .collect()
}

impl TryFrom<products::Model> for Product {
    type Error = PersistenceError;
    fn try_from(m: products::Model) -> Result<Self> {
        let prices: Vec<StoredPrice> = serde_json::from_value(m.prices)
            .map_err(|e| PersistenceError::Corrupt(format!("product prices: {e}")))?;
        Ok(Product {
            id: ProductId::from_uuid(m.id),
            code: m.code,
            name: m.name,
            pricing: ProductPricing {
                prices: load_prices(prices)?,
                options: load_options(m.options)?,
            },
            max_registrations: m
                .max_registrations
                .map(|n| {
                    u32::try_from(n)
                        .map_err(|_| PersistenceError::Corrupt(format!("max_registrations {n}")))
                })
                .transpose()?,
            transferable: m.transferable,
            trial_days: u32::try_from(m.trial_days)
                .map_err(|_| PersistenceError::Corrupt(format!("trial_days {}", m.trial_days)))?,
            archived: m.archived,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

fn to_row(p: &Product) -> products::ActiveModel {
    products::ActiveModel {
        id: Set(p.id.as_uuid()),
        code: Set(p.code.clone()),
        name: Set(p.name.clone()),
        prices: Set(store_prices(&p.pricing.prices)),
        options: Set(store_options(&p.pricing.options)),
        max_registrations: Set(p
            .max_registrations
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX))),
        transferable: Set(p.transferable),
        trial_days: Set(i32::try_from(p.trial_days).unwrap_or(i32::MAX)),
        archived: Set(p.archived),
        created_at: Set(crate::truncate(p.created_at)),
        updated_at: Set(crate::truncate(p.updated_at)),
    }
}

/// Inserts a product; a taken code reports [`PersistenceError::Unique`].
pub async fn insert(db: &impl ConnectionTrait, product: &Product) -> Result<Product> {
    Entity::insert(to_row(product))
        .exec_with_returning(db)
        .await?
        .try_into()
}

/// Replaces every stored field of the product (the caller applied the patch to a fresh read).
pub async fn update(db: &impl ConnectionTrait, product: &Product) -> Result<Product> {
    let mut row = to_row(product);
    row.created_at = sea_orm::ActiveValue::NotSet;
    let updated = Entity::update(row).exec(db).await.map_err(|e| match e {
        sea_orm::DbErr::RecordNotUpdated => PersistenceError::NotFound,
        other => other.into(),
    })?;
    updated.try_into()
}

pub async fn find(db: &impl ConnectionTrait, id: ProductId) -> Result<Option<Product>> {
    Entity::find_by_id(id.as_uuid())
        .one(db)
        .await?
        .map(Product::try_from)
        .transpose()
}

/// The products with these ids, in one statement (what a page of licenses refers to).
pub async fn find_many(db: &impl ConnectionTrait, ids: &[ProductId]) -> Result<Vec<Product>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Entity::find()
        .filter(Column::Id.is_in(ids.iter().map(|id| id.as_uuid())))
        .all(db)
        .await?
        .into_iter()
        .map(Product::try_from)
        .collect()
}

/// Every product's id and code, archived ones included (codes never change and products
/// are never deleted): what a serving process keeps in memory from its start.
pub async fn codes(db: &impl ConnectionTrait) -> Result<Vec<(ProductId, String)>> {
    Ok(Entity::find()
        .select_only()
        .column(Column::Id)
        .column(Column::Code)
        .into_tuple::<(uuid::Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, code)| (ProductId::from_uuid(id), code))
        .collect())
}

/// Filters of the catalog list.
#[derive(Clone, Debug, Default)]
pub struct ProductFilter {
    pub include_archived: bool,
    pub code: Option<String>,
}

pub async fn list(
    db: &impl ConnectionTrait,
    filter: &ProductFilter,
    page: Page,
) -> Result<Vec<Product>> {
    let mut q = Entity::find().order_by_asc(Column::Id).limit(page.limit);
    if let Some(after) = page.after {
        q = q.filter(Column::Id.gt(after));
    }
    if !filter.include_archived {
        q = q.filter(Column::Archived.eq(false));
    }
    if let Some(code) = &filter.code {
        q = q.filter(Column::Code.eq(code.as_str()));
    }
    q.all(db)
        .await?
        .into_iter()
        .map(Product::try_from)
        .collect()
}
