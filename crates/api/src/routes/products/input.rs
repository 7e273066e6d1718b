//! The catalog's wire types and the parsing of prices, options and trial days.
#[allow(clippy::wildcard_imports)]
use super::*;

/// A price for one period.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceDto {
    /// Months: one of 1, 3, 6, 12, 24, 36.
    #[schema(value_type = crate::openapi::types::PeriodMonths)]
    pub period_months: i64,
    /// Amount in minor units of the deployment's currency, 0..10^12.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, example = 12000)]
    pub amount: i64,
}

/// A configurable option of a product, priced per unit and period.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionDto {
    /// Stable code, e.g. `extra_domains`: lower-case letters, digits, `-`, `_`; 1..64
    /// characters; unique within the product.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", example = "extra_domains")]
    pub code: String,
    /// Display name, 1..200 characters, not only white space.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: String,
    /// Smallest quantity a license may have (0..2^32-1).
    #[schema(value_type = i64, minimum = 0, maximum = 4_294_967_295_i64)]
    pub min: u32,
    /// Largest quantity a license may have (0..2^32-1); not below `min`.
    #[schema(value_type = i64, minimum = 0, maximum = 4_294_967_295_i64)]
    pub max: u32,
    /// Unit price per period; exactly one per product period.
    #[schema(min_items = 1)]
    pub prices: Vec<PriceDto>,
}

/// A software product.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductOut {
    pub id: Uuid,
    /// Unique code, e.g. `ispmanager-business`.
    pub code: String,
    pub name: String,
    /// One price per orderable period.
    pub prices: Vec<PriceDto>,
    /// The license configuration options.
    pub options: Vec<OptionDto>,
    /// Seats per license; null is unlimited.
    pub max_registrations: Option<u32>,
    /// Whether licenses of this product may move between partners.
    pub transferable: bool,
    /// Days of a free trial license (`POST /v1/licenses` with `"trial": true`); 0: none.
    #[schema(minimum = 0, maximum = 90)]
    pub trial_days: u32,
    /// Archived products cannot be ordered; existing licenses keep working.
    pub archived: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

pub(super) fn price_out(p: &PeriodPrice) -> PriceDto {
    PriceDto {
        period_months: i64::from(p.period.months()),
        amount: p.amount,
    }
}

impl From<Product> for ProductOut {
    fn from(p: Product) -> Self {
        Self {
            id: p.id.as_uuid(),
            code: p.code,
            name: p.name,
            prices: p.pricing.prices.iter().map(price_out).collect(),
            options: p
                .pricing
                .options
                .iter()
                .map(|o| OptionDto {
                    code: o.code.clone(),
                    name: o.name.clone(),
                    min: o.min,
                    max: o.max,
                    prices: o.prices.iter().map(price_out).collect(),
                })
                .collect(),
            max_registrations: p.max_registrations,
            transferable: p.transferable,
            trial_days: p.trial_days,
            archived: p.archived,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A new product.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// Unique code: lower-case letters, digits, `-`, `_`; 1..64 characters.
    #[garde(custom(product_code))]
    #[schema(
        pattern = "^[a-z0-9][a-z0-9_-]{0,63}$",
        example = "ispmanager-business"
    )]
    pub code: String,
    /// Display name, 1..200 characters.
    #[garde(length(chars, min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200, example = "ISPmanager Business")]
    pub name: String,
    /// One price per orderable period (at least one; each period once).
    #[garde(skip)]
    #[schema(min_items = 1)]
    pub prices: Vec<PriceDto>,
    /// Configuration options (default none).
    #[garde(skip)]
    #[serde(default)]
    pub options: Vec<OptionDto>,
    /// Seats per license; omit or null for unlimited.
    #[garde(range(min = 1))]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4_294_967_295_i64)]
    pub max_registrations: Option<u32>,
    /// Whether licenses may move between partners (default true).
    #[garde(skip)]
    pub transferable: Option<bool>,
    /// Days of a free trial (1..90), or 0 for none (the default).
    #[garde(skip)]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 90)]
    pub trial_days: Option<i64>,
}

/// `trial_days` as given: 0..=90, else a 422 naming it.
pub(super) fn trial_days(raw: Option<i64>, errors: &mut Vec<FieldError>) -> Option<u32> {
    let days = raw?;
    match u32::try_from(days) {
        Ok(d) if d <= MAX_TRIAL_DAYS => Some(d),
        _ => {
            errors.push(FieldError::new(
                "trial_days",
                format!("must be from 1 to {MAX_TRIAL_DAYS}, or 0 for no trial"),
            ));
            None
        }
    }
}

fn product_code(code: &str, _: &()) -> garde::Result {
    if valid_product_code(code) {
        Ok(())
    } else {
        Err(garde::Error::new(
            "must be 1..64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit",
        ))
    }
}

/// `Some(None)` when the field is present and null, `None` when absent.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a product; absent fields stay as they are.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    #[garde(length(chars, min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Replaces every price (at least one; each period once).
    #[garde(skip)]
    #[schema(min_items = 1)]
    pub prices: Option<Vec<PriceDto>>,
    /// Replaces every option.
    #[garde(skip)]
    pub options: Option<Vec<OptionDto>>,
    /// Seats per license; null makes it unlimited.
    #[garde(skip)]
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4_294_967_295_i64)]
    pub max_registrations: Option<Option<u32>>,
    #[garde(skip)]
    pub transferable: Option<bool>,
    /// Days of a free trial (1..90), or 0 for none. Licenses already on trial keep theirs.
    #[garde(skip)]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 90)]
    pub trial_days: Option<i64>,
    /// Archive (true) or restore (false).
    #[garde(skip)]
    pub archived: Option<bool>,
}

/// Turns the wire prices into domain prices, collecting every problem.
pub(super) fn parse_prices(
    field: &str,
    prices: &[PriceDto],
    errors: &mut Vec<FieldError>,
) -> Vec<PeriodPrice> {
    let mut out = Vec::with_capacity(prices.len());
    for (i, p) in prices.iter().enumerate() {
        let period = Period::new(p.period_months);
        if period.is_err() {
            errors.push(FieldError::new(
                format!("{field}[{i}].period_months"),
                "must be one of 1, 3, 6, 12, 24, 36",
            ));
        }
        if !(0..=MAX_AMOUNT).contains(&p.amount) {
            errors.push(FieldError::new(
                format!("{field}[{i}].amount"),
                format!("must be from 0 to {MAX_AMOUNT}"),
            ));
        }
        if let Ok(period) = period {
            out.push(PeriodPrice {
                period,
                amount: p.amount,
            });
        }
    }
    out
}

pub(super) fn parse_pricing(
    prices: &[PriceDto],
    options: &[OptionDto],
    errors: &mut Vec<FieldError>,
) -> ProductPricing {
    let before = errors.len();
    let prices = parse_prices("prices", prices, errors);
    let options = options
        .iter()
        .enumerate()
        .map(|(i, o)| {
            if o.name.is_empty() || o.name.chars().count() > 200 {
                errors.push(FieldError::new(
                    format!("options[{i}].name"),
                    "must be 1..200 characters",
                ));
            }
            ProductOption {
                code: o.code.clone(),
                name: o.name.clone(),
                min: o.min,
                max: o.max,
                prices: parse_prices(&format!("options[{i}].prices"), &o.prices, errors),
            }
        })
        .collect();
    let pricing = ProductPricing { prices, options };
    // Structural rules only make sense once every value parsed.
    if errors.len() == before
        && let Err(violations) = pricing.validate()
    {
        errors.extend(
            violations
                .into_iter()
                .map(|v| FieldError::new(v.field, v.message)),
        );
    }
    pricing
}

pub(super) fn guard_write(principal: &Principal) -> ApiResult<()> {
    principal.require_admin()
}
