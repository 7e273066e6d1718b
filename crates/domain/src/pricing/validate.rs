//! Catalog validation: the rules a product's price list must satisfy before it is stored.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{PeriodPrice, ProductOption, ProductPricing};
use crate::period::Period;

/// One broken catalog rule, addressed by a JSON-pointer-like path (`prices[1].amount`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingViolation {
    /// Path of the offending field, relative to the product body.
    pub field: String,
    /// What is wrong, for humans.
    pub message: String,
}

impl PricingViolation {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// True when `code` matches `^[a-z0-9][a-z0-9_-]{0,63}$`.
#[must_use]
pub fn is_valid_option_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    let lead_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    lead_ok
        && bytes.len() <= 64
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

impl ProductPricing {
    /// Checks every catalog rule and reports all violations at once, so an admin fixes a
    /// product in one round trip rather than one error at a time.
    pub fn validate(&self) -> Result<(), Vec<PricingViolation>> {
        let mut out = Vec::new();
        if self.prices.is_empty() {
            out.push(PricingViolation::new(
                "prices",
                "at least one price is required",
            ));
        }
        check_price_list(&self.prices, "prices", &mut out);
        // Option prices are checked against the set, so a duplicate product period is reported
        // once (above) and not again for every option.
        let periods: BTreeSet<Period> = self.prices.iter().map(|p| p.period).collect();

        let mut codes = BTreeSet::new();
        for (i, option) in self.options.iter().enumerate() {
            let at = format!("options[{i}]");
            // A malformed code is not also reported as a duplicate: one message per problem.
            if !is_valid_option_code(&option.code) {
                out.push(PricingViolation::new(
                    format!("{at}.code"),
                    "must match ^[a-z0-9][a-z0-9_-]{0,63}$",
                ));
            } else if !codes.insert(option.code.as_str()) {
                out.push(PricingViolation::new(
                    format!("{at}.code"),
                    format!("duplicate option code `{}`", option.code),
                ));
            }
            if option.name.trim().is_empty() {
                out.push(PricingViolation::new(
                    format!("{at}.name"),
                    "must not be empty",
                ));
            }
            if option.min > option.max {
                out.push(PricingViolation::new(
                    format!("{at}.min"),
                    format!("min ({}) must not exceed max ({})", option.min, option.max),
                ));
            }
            check_option_prices(option, &periods, &at, &mut out);
        }

        if out.is_empty() { Ok(()) } else { Err(out) }
    }
}

/// Periods unique and amounts non-negative within one price list.
fn check_price_list(prices: &[PeriodPrice], at: &str, out: &mut Vec<PricingViolation>) {
    let mut seen = BTreeSet::new();
    for (i, price) in prices.iter().enumerate() {
        if !seen.insert(price.period) {
            out.push(PricingViolation::new(
                format!("{at}[{i}].period_months"),
                format!("duplicate period {}", price.period),
            ));
        }
        if price.amount < 0 {
            out.push(PricingViolation::new(
                format!("{at}[{i}].amount"),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// An option must price exactly the product's periods: `cost` needs a unit price for every
/// period the product can be ordered or renewed for.
fn check_option_prices(
    option: &ProductOption,
    product_periods: &BTreeSet<Period>,
    at: &str,
    out: &mut Vec<PricingViolation>,
) {
    let list = format!("{at}.prices");
    check_price_list(&option.prices, &list, out);
    for (k, price) in option.prices.iter().enumerate() {
        if !product_periods.contains(&price.period) {
            out.push(PricingViolation::new(
                format!("{list}[{k}].period_months"),
                format!(
                    "period {} is not one of the product's periods",
                    price.period
                ),
            ));
        }
    }
    let missing: Vec<String> = product_periods
        .iter()
        .filter(|p| option.price_for(**p).is_none())
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() {
        out.push(PricingViolation::new(
            list,
            format!(
                "needs exactly one price per product period; missing {}",
                missing.join(", ")
            ),
        ));
    }
}
