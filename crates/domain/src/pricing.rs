//! Catalog prices and the money rules of CONTRACT §3 and §5.
//!
//! Amounts here are bare `i64` minor units: one currency per deployment, so the catalog does
//! not repeat it on every price (see [`crate::money`]).

mod prorate;
mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::money;
use crate::period::Period;

pub use prorate::prorate;
pub use validate::{PricingViolation, is_valid_option_code};

/// Errors from computing a price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// The product (or one of its options) has no price for this period.
    #[error("period of {0} months is not offered for this product")]
    PeriodNotOffered(Period),
    /// The requested options name one the product does not have.
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    /// An option quantity is outside the option's `[min, max]`.
    #[error("option `{code}` must be between {min} and {max} (got {got})")]
    OptionOutOfBounds {
        /// The option's code.
        code: String,
        /// Smallest allowed quantity.
        min: u32,
        /// Largest allowed quantity.
        max: u32,
        /// The quantity asked for.
        got: u32,
    },
    /// The amount does not fit in an `i64` of minor units.
    #[error("amount overflow")]
    Overflow,
    /// The cost is beyond [`MAX_AMOUNT`](money::MAX_AMOUNT) minor units (or would overflow
    /// on the way there).
    #[error("the amount exceeds 10^15 minor units")]
    AmountTooLarge,
}

/// A cost step: `None` (an overflow) or a value beyond [`MAX_AMOUNT`](money::MAX_AMOUNT) is
/// [`PricingError::AmountTooLarge`].
fn within_bound(amount: Option<i64>) -> Result<i64, PricingError> {
    amount
        .and_then(|a| money::bounded(a).ok())
        .ok_or(PricingError::AmountTooLarge)
}

/// The price of one period: `{period_months, amount}` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodPrice {
    /// The term length this price buys.
    #[serde(rename = "period_months")]
    pub period: Period,
    /// Price in minor units (≥ 0 once validated).
    pub amount: i64,
}

/// One configurable option of a product (e.g. extra domains), priced per unit and period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductOption {
    /// Stable code, `^[a-z0-9][a-z0-9_-]{0,63}$`, the key in a license's `options` map.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Smallest quantity; also the quantity assumed when an order omits the option.
    pub min: u32,
    /// Largest quantity.
    pub max: u32,
    /// Per-unit price, one per product period.
    pub prices: Vec<PeriodPrice>,
}

impl ProductOption {
    /// The per-unit price for `period`, if offered.
    #[must_use]
    pub fn price_for(&self, period: Period) -> Option<i64> {
        find_price(&self.prices, period)
    }
}

/// A product's price list and options.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProductPricing {
    /// Base price per allowed period.
    pub prices: Vec<PeriodPrice>,
    /// Configurable options.
    pub options: Vec<ProductOption>,
}

impl ProductPricing {
    /// The base price for `period`, if the product offers it.
    #[must_use]
    pub fn price_for(&self, period: Period) -> Option<i64> {
        find_price(&self.prices, period)
    }

    /// The periods the product is sold for, in catalog order.
    #[must_use]
    pub fn periods(&self) -> Vec<Period> {
        self.prices.iter().map(|p| p.period).collect()
    }

    /// The option with this code.
    #[must_use]
    pub fn option(&self, code: &str) -> Option<&ProductOption> {
        self.options.iter().find(|o| o.code == code)
    }

    /// Every option with a quantity: the given one, or `min` when omitted. Unknown codes and
    /// out-of-bounds quantities are refused, so the result is what a license stores.
    pub fn normalize_options(
        &self,
        requested: &BTreeMap<String, u32>,
    ) -> Result<BTreeMap<String, u32>, PricingError> {
        if let Some(unknown) = requested.keys().find(|code| self.option(code).is_none()) {
            return Err(PricingError::UnknownOption(unknown.clone()));
        }
        self.options
            .iter()
            .map(|option| {
                let qty = requested.get(&option.code).copied().unwrap_or(option.min);
                check_bounds(option, qty)?;
                Ok((option.code.clone(), qty))
            })
            .collect()
    }

    /// Cost of one term: base price for `period` + Σ quantity × option unit price for `period`.
    /// Options missing from `options` count at their `min`. Every step is checked: a price,
    /// line or total beyond [`MAX_AMOUNT`](money::MAX_AMOUNT) (or one that would overflow) is
    /// [`PricingError::AmountTooLarge`].
    pub fn cost(
        &self,
        period: Period,
        options: &BTreeMap<String, u32>,
    ) -> Result<i64, PricingError> {
        let base = self
            .price_for(period)
            .ok_or(PricingError::PeriodNotOffered(period))?;
        // Normalising first reports unknown codes and bad quantities before any arithmetic.
        let quantities = self.normalize_options(options)?;
        let base = within_bound(Some(base))?;
        self.options.iter().try_fold(base, |total, option| {
            let qty = quantities.get(&option.code).copied().unwrap_or(option.min);
            let unit = option
                .price_for(period)
                .ok_or(PricingError::PeriodNotOffered(period))?;
            let line = within_bound(unit.checked_mul(i64::from(qty)))?;
            within_bound(total.checked_add(line))
        })
    }
}

fn find_price(prices: &[PeriodPrice], period: Period) -> Option<i64> {
    prices.iter().find(|p| p.period == period).map(|p| p.amount)
}

fn check_bounds(option: &ProductOption, qty: u32) -> Result<(), PricingError> {
    if (option.min..=option.max).contains(&qty) {
        Ok(())
    } else {
        Err(PricingError::OptionOutOfBounds {
            code: option.code.clone(),
            min: option.min,
            max: option.max,
            got: qty,
        })
    }
}

#[cfg(test)]
mod tests;
