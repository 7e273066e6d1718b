//! Proration of a price difference over the rest of a term (configuration changes).

use time::OffsetDateTime;

use super::PricingError;

/// `delta × (time left ÷ term length)`, rounded to the minor unit.
///
/// - Time is counted in whole seconds (sub-second parts of the differences are truncated).
/// - Time left is `term_end − now`, clamped to `[0, term length]`: a change before the term
///   starts pays the full delta, one after it ends pays nothing.
/// - Rounding is half-up on the magnitude, i.e. half away from zero, so the rule is symmetric:
///   `prorate(-x, ..) == -prorate(x, ..)` and an upgrade followed by the matching downgrade at
///   the same instant nets to zero. Intermediates are `i128`, so no product can overflow.
/// - An empty or inverted term (`term_end ≤ term_start`) has no time left and yields 0.
///
/// The result's magnitude never exceeds `|delta|`.
pub fn prorate(
    delta: i64,
    term_start: OffsetDateTime,
    term_end: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<i64, PricingError> {
    let length = i128::from((term_end - term_start).whole_seconds());
    if length <= 0 {
        return Ok(0);
    }
    let left = i128::from((term_end - now).whole_seconds()).clamp(0, length);
    let numerator = i128::from(delta) * left;
    // Round |n / length| half-up, then restore the sign: (2|n| + length) / (2·length).
    let magnitude = (numerator.abs() * 2 + length) / (length * 2);
    let rounded = if numerator < 0 { -magnitude } else { magnitude };
    i64::try_from(rounded).map_err(|_| PricingError::Overflow)
}
