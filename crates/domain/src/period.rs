//! Billing periods: the term lengths a product may be sold for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A period outside {1, 3, 6, 12, 24, 36} months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("period_months must be one of 1, 3, 6, 12, 24, 36 (got {0})")]
pub struct PeriodError(pub i64);

/// A term length in months, one of {1, 3, 6, 12, 24, 36}.
///
/// Serialized as the bare integer (`period_months` on the wire); deserializing validates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
// Deserializing through i64 makes 7, -1 and 2^40 all fail the same validation with one message.
#[serde(try_from = "i64", into = "u32")]
pub struct Period(u8);

impl Period {
    /// One month.
    pub const M1: Period = Period(1);
    /// Three months.
    pub const M3: Period = Period(3);
    /// Six months.
    pub const M6: Period = Period(6);
    /// Twelve months.
    pub const M12: Period = Period(12);
    /// Twenty-four months.
    pub const M24: Period = Period(24);
    /// Thirty-six months.
    pub const M36: Period = Period(36);

    /// Every allowed period, ascending.
    pub const ALL: [Period; 6] = [
        Self::M1,
        Self::M3,
        Self::M6,
        Self::M12,
        Self::M24,
        Self::M36,
    ];

    /// Validates a month count.
    pub fn new(months: i64) -> Result<Period, PeriodError> {
        Self::ALL
            .into_iter()
            .find(|p| i64::from(p.0) == months)
            .ok_or(PeriodError(months))
    }

    /// The length in months.
    #[must_use]
    pub const fn months(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<i64> for Period {
    type Error = PeriodError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<u32> for Period {
    type Error = PeriodError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(i64::from(value))
    }
}

impl TryFrom<i32> for Period {
    type Error = PeriodError;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        Self::new(i64::from(value))
    }
}

impl From<Period> for u32 {
    fn from(p: Period) -> Self {
        p.months()
    }
}

impl From<Period> for i64 {
    fn from(p: Period) -> Self {
        i64::from(p.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_six_periods_exist() {
        let ok: Vec<u32> = (-5..=40)
            .filter_map(|m| Period::new(m).ok())
            .map(Period::months)
            .collect();
        assert_eq!(ok, vec![1, 3, 6, 12, 24, 36]);
        assert_eq!(Period::new(2), Err(PeriodError(2)));
        assert!(Period::try_from(i64::MAX).is_err());
        assert_eq!(Period::try_from(12_u32).unwrap(), Period::M12);
    }

    #[test]
    fn serde_is_the_integer_and_validates() {
        assert_eq!(serde_json::to_string(&Period::M24).unwrap(), "24");
        assert_eq!(serde_json::from_str::<Period>("6").unwrap(), Period::M6);
        assert!(serde_json::from_str::<Period>("7").is_err());
        assert!(serde_json::from_str::<Period>("-1").is_err());
        assert!(serde_json::from_str::<Period>("\"12\"").is_err());
    }
}
