//! Money: integer minor units in one ISO 4217-shaped currency.
//!
//! There are no floats anywhere in Licentia; an amount is an `i64` count of the currency's
//! minor unit (cents for USD). All arithmetic is checked so that an overflow is an error the
//! caller sees, never a silent wrap.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors from money arithmetic and currency parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The result does not fit in an `i64` of minor units.
    #[error("amount overflow")]
    Overflow,
    /// The operands are in different currencies.
    #[error("currency mismatch")]
    CurrencyMismatch,
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

/// An amount of money in integer minor units of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    amount: i64,
    currency: Currency,
}

impl Money {
    /// `amount` minor units of `currency`.
    #[must_use]
    pub const fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// Zero in `currency`.
    #[must_use]
    pub const fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// The amount in minor units (may be negative: credits, refunds, balances).
    #[must_use]
    pub const fn amount(&self) -> i64 {
        self.amount
    }

    /// The currency.
    #[must_use]
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// `self + other`; both must share a currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(amount, self.currency))
    }

    /// `self - other`; both must share a currency.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self
            .amount
            .checked_sub(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(amount, self.currency))
    }

    /// `self × factor` (e.g. option quantity × unit price).
    pub fn checked_mul(self, factor: i64) -> Result<Money, MoneyError> {
        let amount = self
            .amount
            .checked_mul(factor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(amount, self.currency))
    }

    /// `-self`; fails only for `i64::MIN`, whose negation does not fit.
    #[expect(
        clippy::should_implement_trait,
        reason = "fallible, so it cannot be std::ops::Neg"
    )]
    pub fn neg(self) -> Result<Money, MoneyError> {
        let amount = self.amount.checked_neg().ok_or(MoneyError::Overflow)?;
        Ok(Self::new(amount, self.currency))
    }

    /// `self`, when its magnitude is at most [`MAX_AMOUNT`] (see [`bounded`]).
    pub const fn bounded(self) -> Result<Money, MoneyError> {
        match bounded(self.amount) {
            Ok(_) => Ok(self),
            Err(e) => Err(e),
        }
    }

    /// True when the amount is below zero.
    #[must_use]
    pub const fn is_negative(&self) -> bool {
        self.amount < 0
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch)
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Minor units and code; formatting with a decimal point needs the currency's exponent,
        // which is a presentation concern outside the domain.
        write!(f, "{} {}", self.amount, self.currency)
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
    fn arithmetic_is_checked() {
        let a = Money::new(150, usd());
        let b = Money::new(50, usd());
        assert_eq!(a.checked_add(b).unwrap().amount(), 200);
        assert_eq!(b.checked_sub(a).unwrap().amount(), -100);
        assert_eq!(a.checked_mul(3).unwrap().amount(), 450);
        assert_eq!(a.neg().unwrap().amount(), -150);
        assert_eq!(Money::zero(usd()).amount(), 0);
        let max = Money::new(i64::MAX, usd());
        assert_eq!(max.checked_add(b), Err(MoneyError::Overflow));
        assert_eq!(max.checked_mul(2), Err(MoneyError::Overflow));
        assert_eq!(Money::new(i64::MIN, usd()).neg(), Err(MoneyError::Overflow));
        assert_eq!(
            Money::new(i64::MIN, usd()).checked_sub(b),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn amounts_are_bounded_at_ten_to_the_fifteenth() {
        assert_eq!(MAX_AMOUNT, 10_i64.pow(15));
        for ok in [0, 1, -1, MAX_AMOUNT, -MAX_AMOUNT] {
            assert_eq!(bounded(ok), Ok(ok));
            assert_eq!(Money::new(ok, usd()).bounded(), Ok(Money::new(ok, usd())));
        }
        for bad in [MAX_AMOUNT + 1, -MAX_AMOUNT - 1, i64::MAX, i64::MIN] {
            assert_eq!(bounded(bad), Err(MoneyError::TooLarge));
            assert_eq!(Money::new(bad, usd()).bounded(), Err(MoneyError::TooLarge));
        }
    }

    #[test]
    fn currencies_do_not_mix() {
        let eur = Money::new(1, Currency::parse("EUR").unwrap());
        let usd = Money::new(1, usd());
        assert_eq!(usd.checked_add(eur), Err(MoneyError::CurrencyMismatch));
        assert_eq!(usd.checked_sub(eur), Err(MoneyError::CurrencyMismatch));
    }
}
