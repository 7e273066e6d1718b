//! What `POST /v1/validate` answers (CONTRACT §7): the first matching code wins.
use std::net::IpAddr;

use time::OffsetDateTime;

use crate::license::{LicenseStatus, Lifecycle, SuspensionReason};
use crate::license_record::canonical_ip;

/// The outcome of a validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValidationCode {
    /// Unknown key, or a deleted license.
    NotFound,
    /// Ordered, never activated.
    NotActive,
    /// Past `valid_until`, or suspended for expiry.
    Expired,
    /// Suspended for another reason.
    Suspended,
    /// An `ip` was given and is not the license's.
    IpMismatch,
    /// A fingerprint was given and is not registered.
    NotRegistered,
    Valid,
}

impl ValidationCode {
    /// The wire spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "NOT_FOUND",
            Self::NotActive => "NOT_ACTIVE",
            Self::Expired => "EXPIRED",
            Self::Suspended => "SUSPENDED",
            Self::IpMismatch => "IP_MISMATCH",
            Self::NotRegistered => "NOT_REGISTERED",
            Self::Valid => "VALID",
        }
    }

    /// Every code, in the order they are checked.
    pub const ALL: [ValidationCode; 7] = [
        Self::NotFound,
        Self::NotActive,
        Self::Expired,
        Self::Suspended,
        Self::IpMismatch,
        Self::NotRegistered,
        Self::Valid,
    ];
}

/// What the software asked about, beyond the key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// The address the software runs on, when it sent one.
    pub ip: Option<IpAddr>,
    /// `Some(registered)` when a fingerprint was sent: whether it is registered.
    pub fingerprint_registered: Option<bool>,
}

/// The code for a license found by its key. An `in_progress` license is judged as the state
/// it came from ([`Lifecycle::validation_view`]); a term that ran out counts as expired even
/// before the sweeper has marked it.
#[must_use]
pub fn validate(
    lifecycle: &Lifecycle,
    license_ip: IpAddr,
    claims: Claims,
    now: OffsetDateTime,
) -> ValidationCode {
    let view = lifecycle.validation_view();
    match view.status {
        LicenseStatus::Deleted => return ValidationCode::NotFound,
        LicenseStatus::Ordered => return ValidationCode::NotActive,
        // `validation_view` never answers `in_progress`; treat it as active if it ever did.
        LicenseStatus::Active | LicenseStatus::InProgress | LicenseStatus::Suspended => {}
    }
    if view.reason == Some(SuspensionReason::Expired) || lifecycle.is_past_valid_until(now) {
        return ValidationCode::Expired;
    }
    if view.status == LicenseStatus::Suspended {
        return ValidationCode::Suspended;
    }
    if claims
        .ip
        .is_some_and(|ip| canonical_ip(ip) != canonical_ip(license_ip))
    {
        return ValidationCode::IpMismatch;
    }
    if claims.fingerprint_registered == Some(false) {
        return ValidationCode::NotRegistered;
    }
    ValidationCode::Valid
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::license::{Actor, Settled};
    use crate::period::Period;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn active() -> Lifecycle {
        Lifecycle::ordered_paid(Period::new(12).unwrap(), NOW - Duration::days(1))
            .provisioning_succeeded()
            .unwrap()
    }

    fn check(lc: &Lifecycle, claims: Claims) -> ValidationCode {
        validate(lc, ip("10.0.0.1"), claims, NOW)
    }

    #[test]
    fn codes_in_order() {
        let none = Claims::default();
        assert_eq!(
            check(&Lifecycle::ordered(), none),
            ValidationCode::NotActive
        );
        assert_eq!(
            check(&Lifecycle::ordered().delete().unwrap(), none),
            ValidationCode::NotFound
        );
        assert_eq!(check(&active(), none), ValidationCode::Valid);
        let manual = active().disable(Actor::Partner).unwrap();
        assert_eq!(check(&manual, none), ValidationCode::Suspended);
        let expired = active().expire(NOW + Duration::days(400)).unwrap();
        assert_eq!(check(&expired, none), ValidationCode::Expired);
        // Past the term but not swept yet: expired all the same, even when suspended by hand.
        let late = |lc: &Lifecycle| validate(lc, ip("10.0.0.1"), none, NOW + Duration::days(400));
        assert_eq!(late(&active()), ValidationCode::Expired);
        assert_eq!(late(&manual), ValidationCode::Expired);
        // Expiry wins over an IP mismatch and an unknown fingerprint.
        let all_wrong = Claims {
            ip: Some(ip("10.0.0.2")),
            fingerprint_registered: Some(false),
        };
        assert_eq!(check(&expired, all_wrong), ValidationCode::Expired);
        assert_eq!(check(&active(), all_wrong), ValidationCode::IpMismatch);
        let unregistered = Claims {
            ip: Some(ip("::ffff:10.0.0.1")),
            fingerprint_registered: Some(false),
        };
        assert_eq!(
            check(&active(), unregistered),
            ValidationCode::NotRegistered
        );
        let registered = Claims {
            ip: Some(ip("10.0.0.1")),
            fingerprint_registered: Some(true),
        };
        assert_eq!(check(&active(), registered), ValidationCode::Valid);
    }

    #[test]
    fn in_progress_validates_as_where_it_came_from() {
        let activating = Lifecycle::ordered_paid(Period::new(1).unwrap(), NOW);
        assert_eq!(activating.status, LicenseStatus::InProgress);
        assert_eq!(
            check(&activating, Claims::default()),
            ValidationCode::NotActive
        );
        let modifying = active().begin_modification().unwrap();
        assert_eq!(check(&modifying, Claims::default()), ValidationCode::Valid);
        let suspended_modifying = active()
            .disable(Actor::Admin)
            .unwrap()
            .begin_modification()
            .unwrap();
        assert_eq!(
            suspended_modifying.came_from,
            Some(Settled::suspended(SuspensionReason::Admin))
        );
        assert_eq!(
            check(&suspended_modifying, Claims::default()),
            ValidationCode::Suspended
        );
    }

    #[test]
    fn wire_spellings() {
        let all: Vec<&str> = ValidationCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            all,
            [
                "NOT_FOUND",
                "NOT_ACTIVE",
                "EXPIRED",
                "SUSPENDED",
                "IP_MISMATCH",
                "NOT_REGISTERED",
                "VALID"
            ]
        );
    }
}
