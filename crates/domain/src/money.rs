//! Money: integer minor units in one ISO 4217-shaped currency per deployment.
//!
//! There are no floats anywhere in Licentia; an amount is an `i64` count of the currency's
//! minor unit (cents for USD), bounded by [`MAX_AMOUNT`] so that no sum the service or the
//! database computes can overflow. The currency is the deployment's ([`Currency`]), so an
//! amount carries none of its own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors from amounts and currency parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The currency code is not exactly three ASCII uppercase letters.
    #[error("invalid currency code: expected three uppercase letters")]
    InvalidCurrency,
    /// A computed amount is beyond [`MAX_AMOUNT`] (in magnitude).
    #[error("amount exceeds 10^15 minor units")]
    TooLarge,
}

/// The largest magnitude a price, cost or any other computed amount may have: 10^15 minor
/// units (ten trillion dollars in cents). Far above any real price, and far enough below
/// `i64::MAX` (≈ 9.2 × 10^18) that sums of a few thousand such amounts, and the database's
/// own `balance + credit_limit` arithmetic, cannot overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// `amount` itself when its magnitude is at most [`MAX_AMOUNT`], else
/// [`MoneyError::TooLarge`].
pub const fn bounded(amount: i64) -> Result<i64, MoneyError> {
    if amount.unsigned_abs() <= MAX_AMOUNT.unsigned_abs() {
        Ok(amount)
    } else {
        Err(MoneyError::TooLarge)
    }
}

/// A currency code: exactly three ASCII uppercase letters (e.g. `USD`).
///
/// Stored inline as three bytes so the type is `Copy` and never allocates.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// The United States dollar, the default of a deployment.
    pub const USD: Self = Self(*b"USD");

    /// Parses a currency code; only `[A-Z]{3}` is accepted (no case folding, so the stored
    /// configuration value is exactly what appears on the wire).
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(MoneyError::InvalidCurrency),
        }
    }

    /// The three-letter code.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII uppercase, so this never fails; the fallback keeps
        // the function total without a panic path.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn currency_accepts_only_three_uppercase_letters() {
        assert_eq!(usd().as_str(), "USD");
        assert_eq!(usd().to_string(), "USD");
        for bad in ["usd", "US", "USDX", "", "U$D", "ÜSD", "US1"] {
            assert_eq!(
                Currency::parse(bad),
                Err(MoneyError::InvalidCurrency),
                "{bad}"
            );
        }
    }

    #[test]
    fn currency_serde_validates() {
        assert_eq!(serde_json::to_string(&usd()).unwrap(), "\"USD\"");
        assert_eq!(
            serde_json::from_str::<Currency>("\"EUR\"")
                .unwrap()
                .as_str(),
            "EUR"
        );
        assert!(serde_json::from_str::<Currency>("\"eur\"").is_err());
    }

    #[test]
    fn amounts_are_bounded_at_ten_to_the_fifteenth() {
        assert_eq!(MAX_AMOUNT, 10_i64.pow(15));
        for ok in [0, 1, -1, MAX_AMOUNT, -MAX_AMOUNT] {
            assert_eq!(bounded(ok), Ok(ok));
        }
        for bad in [MAX_AMOUNT + 1, -MAX_AMOUNT - 1, i64::MAX, i64::MIN] {
            assert_eq!(bounded(bad), Err(MoneyError::TooLarge));
        }
    }
}
