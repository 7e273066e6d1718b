//! Calendar-month arithmetic for terms and renewals (CONTRACT §5).
//!
//! A term of N months ends on the same day of the month N months later; when that day does not
//! exist the date clamps to the last day of the target month (Jan 31 + 1 month = Feb 28, or
//! Feb 29 in a leap year). Time of day and UTC offset are kept as they are.

use time::{Date, Month, OffsetDateTime};

/// The result would fall outside the range of dates `time` can represent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The target year is outside the supported range (±9999).
    #[error("date out of range")]
    OutOfRange,
}

/// `t` plus `months` calendar months, clamping the day to the target month's last day.
///
/// Clamping means the operation is not associative: `add(add(t, 1), 1)` may be up to three days
/// earlier than `add(t, 2)` (Jan 31 → Feb 28 → Mar 28 vs Mar 31). Renewals therefore always add
/// to the stored `valid_until`, never re-derive it from a chain of earlier terms.
///
/// It is monotone in `months`, and in the *date* of `t`; two instants on different days of one
/// month that clamp to the same target day keep their own times of day, so their order can flip.
pub fn add_months(t: OffsetDateTime, months: u32) -> Result<OffsetDateTime, CalendarError> {
    shift(t, i64::from(months))
}

/// Like [`add_months`], but a result past the last representable day (9999-12-31) is that day.
///
/// State transitions use this so that a license pushed to the end of time by an admin cannot
/// make a renewal fail; nothing meaningful lies beyond year 9999 anyway.
#[must_use]
pub fn add_months_saturating(t: OffsetDateTime, months: u32) -> OffsetDateTime {
    add_months(t, months).unwrap_or_else(|_| t.replace_date(Date::MAX))
}

/// `t` minus `months` calendar months, clamping the day like [`add_months`]. Used to find the
/// start of the current term: `valid_until − period_months`.
pub fn sub_months(t: OffsetDateTime, months: u32) -> Result<OffsetDateTime, CalendarError> {
    shift(t, -i64::from(months))
}

/// Where a renewal's new term starts: the later of the current `valid_until` and now, so a
/// lapsed license is not charged for time it was already expired.
#[must_use]
pub fn renewal_start(valid_until: OffsetDateTime, now: OffsetDateTime) -> OffsetDateTime {
    valid_until.max(now)
}

/// The number of months since year 0 of `date`'s month; lets tests and callers compare months
/// without caring about year boundaries.
#[must_use]
pub fn month_index(date: Date) -> i64 {
    i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1
}

fn shift(t: OffsetDateTime, delta: i64) -> Result<OffsetDateTime, CalendarError> {
    let target = month_index(t.date())
        .checked_add(delta)
        .ok_or(CalendarError::OutOfRange)?;
    let year = i32::try_from(target.div_euclid(12)).map_err(|_| CalendarError::OutOfRange)?;
    // rem_euclid(12) is in 0..12, so month numbers are 1..=12 and the conversions cannot fail;
    // mapping the impossible error keeps the code panic-free anyway.
    let month_number =
        u8::try_from(target.rem_euclid(12) + 1).map_err(|_| CalendarError::OutOfRange)?;
    let month = Month::try_from(month_number).map_err(|_| CalendarError::OutOfRange)?;
    let day = t.day().min(month.length(year));
    let date = Date::from_calendar_date(year, month, day).map_err(|_| CalendarError::OutOfRange)?;
    Ok(t.replace_date(date))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;
    use time::{Duration, UtcOffset};

    #[test]
    fn jan_31_clamps_to_end_of_february() {
        assert_eq!(
            add_months(datetime!(2023-01-31 10:00 UTC), 1).unwrap(),
            datetime!(2023-02-28 10:00 UTC)
        );
        assert_eq!(
            add_months(datetime!(2024-01-31 10:00 UTC), 1).unwrap(),
            datetime!(2024-02-29 10:00 UTC)
        );
    }

    #[test]
    fn feb_29_plus_a_year_is_feb_28() {
        assert_eq!(
            add_months(datetime!(2024-02-29 00:00 UTC), 12).unwrap(),
            datetime!(2025-02-28 00:00 UTC)
        );
        assert_eq!(
            add_months(datetime!(2024-02-29 00:00 UTC), 48).unwrap(),
            datetime!(2028-02-29 00:00 UTC)
        );
    }

    #[test]
    fn december_rolls_into_next_year() {
        assert_eq!(
            add_months(datetime!(2024-12-15 08:30 +02:00), 1).unwrap(),
            datetime!(2025-01-15 08:30 +02:00)
        );
        assert_eq!(
            sub_months(datetime!(2025-01-15 08:30 UTC), 1).unwrap(),
            datetime!(2024-12-15 08:30 UTC)
        );
        assert_eq!(
            add_months(datetime!(2024-11-30 00:00 UTC), 36).unwrap(),
            datetime!(2027-11-30 00:00 UTC)
        );
    }

    #[test]
    fn sub_months_clamps_too() {
        assert_eq!(
            sub_months(datetime!(2024-03-31 12:00 UTC), 1).unwrap(),
            datetime!(2024-02-29 12:00 UTC)
        );
    }

    #[test]
    fn offset_and_time_are_kept() {
        let t = datetime!(2024-05-31 23:59:59.123 -07:00);
        let r = add_months(t, 1).unwrap();
        assert_eq!(r, datetime!(2024-06-30 23:59:59.123 -07:00));
        assert_eq!(r.offset(), UtcOffset::from_hms(-7, 0, 0).unwrap());
    }

    #[test]
    fn out_of_range_is_an_error() {
        assert_eq!(
            add_months(datetime!(9999-12-01 00:00 UTC), 1),
            Err(CalendarError::OutOfRange)
        );
        assert_eq!(
            add_months(datetime!(2024-01-01 00:00 UTC), u32::MAX),
            Err(CalendarError::OutOfRange)
        );
        assert_eq!(
            sub_months(datetime!(-9999-01-01 00:00 UTC), 1),
            Err(CalendarError::OutOfRange)
        );
    }

    #[test]
    fn saturating_stops_at_the_last_day() {
        assert_eq!(
            add_months_saturating(datetime!(9999-11-30 06:00 UTC), 12),
            datetime!(9999-12-31 06:00 UTC)
        );
        assert_eq!(
            add_months_saturating(datetime!(2024-01-31 06:00 UTC), 1),
            datetime!(2024-02-29 06:00 UTC)
        );
    }

    #[test]
    fn renewal_starts_at_the_later_instant() {
        let a = datetime!(2024-01-01 00:00 UTC);
        let b = datetime!(2024-06-01 00:00 UTC);
        assert_eq!(renewal_start(a, b), b);
        assert_eq!(renewal_start(b, a), b);
    }

    /// Instants from 1900 to 2200 with an arbitrary whole-hour offset.
    fn instant() -> impl Strategy<Value = OffsetDateTime> {
        (-2_208_988_800_i64..7_258_118_400, -12_i8..=14).prop_map(|(secs, hours)| {
            OffsetDateTime::from_unix_timestamp(secs)
                .unwrap()
                .to_offset(UtcOffset::from_hms(hours, 0, 0).unwrap())
        })
    }

    proptest! {
        #[test]
        fn chained_additions_differ_only_by_the_clamp(t in instant(), n in 0_u32..60, m in 0_u32..60) {
            let chained = add_months(add_months(t, n).unwrap(), m).unwrap();
            let direct = add_months(t, n + m).unwrap();
            let gap = direct - chained;
            prop_assert!(gap >= Duration::ZERO && gap <= Duration::days(3), "{t} {n} {m}: {gap}");
            if t.day() <= 28 {
                prop_assert_eq!(chained, direct);
            }
        }

        #[test]
        fn monotone_in_months(t in instant(), n in 0_u32..120, k in 0_u32..120) {
            prop_assert!(add_months(t, n).unwrap() <= add_months(t, n + k).unwrap());
        }

        #[test]
        fn monotone_in_the_date(t in instant(), later_by in 0_i64..400 * 86_400, n in 0_u32..120) {
            let u = t + Duration::seconds(later_by);
            prop_assert!(add_months(t, n).unwrap().date() <= add_months(u, n).unwrap().date());
        }

        #[test]
        fn lands_in_the_right_month(t in instant(), n in 0_u32..1000) {
            let r = add_months(t, n).unwrap();
            prop_assert_eq!(month_index(r.date()), month_index(t.date()) + i64::from(n));
            prop_assert_eq!(r.time(), t.time());
            prop_assert_eq!(r.offset(), t.offset());
            prop_assert!(r.day() <= t.day());
        }

        #[test]
        fn sub_undoes_add_for_early_days(t in instant(), n in 0_u32..120) {
            prop_assume!(t.day() <= 28);
            prop_assert_eq!(sub_months(add_months(t, n).unwrap(), n).unwrap(), t);
        }
    }
}
