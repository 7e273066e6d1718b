//! One test per row of the CONTRACT §4 table, then the refusals.

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

const NOW: OffsetDateTime = datetime!(2024-01-31 12:00 UTC);

fn at(status: LicenseStatus, reason: Option<SuspensionReason>, until: OffsetDateTime) -> Lifecycle {
    Lifecycle {
        status,
        suspension_reason: reason,
        valid_until: Some(until),
        came_from: None,
        resumes_to: None,
    }
}

fn active() -> Lifecycle {
    at(S::Active, None, NOW + Duration::days(10))
}

fn suspended(reason: SuspensionReason) -> Lifecycle {
    at(S::Suspended, Some(reason), NOW + Duration::days(10))
}

fn in_progress() -> Lifecycle {
    active().begin_modification().unwrap()
}

fn deleted() -> Lifecycle {
    active().delete().unwrap()
}

fn invalid(from: LicenseStatus) -> Result<Lifecycle, TransitionError> {
    Err(TransitionError::InvalidTransition { from })
}

/// One license in each state, for "everything else is refused" checks.
fn every_state() -> Vec<Lifecycle> {
    vec![
        Lifecycle::ordered(),
        in_progress(),
        active(),
        suspended(R::Manual),
        suspended(R::Expired),
        suspended(R::Admin),
        deleted(),
    ]
}

#[test]
fn row_order_unpaid() {
    let l = Lifecycle::ordered();
    assert_eq!(l.status, S::Ordered);
    assert_eq!(l.valid_until, None);
    assert_eq!(l.validation_view(), Settled::ORDERED);
}

#[test]
fn row_order_paid_at_once() {
    let l = Lifecycle::ordered_paid(Period::M1, NOW);
    assert_eq!(l.status, S::InProgress);
    // Jan 31 (leap year) + 1 month clamps to Feb 29.
    assert_eq!(l.valid_until, Some(datetime!(2024-02-29 12:00 UTC)));
    assert_eq!(l.came_from, Some(Settled::ORDERED));
    assert_eq!(l.resumes_to, Some(Settled::ACTIVE));
    assert_eq!(l.validation_view(), Settled::ORDERED);
}

#[test]
fn row_ordered_is_paid() {
    let l = Lifecycle::ordered().pay(Period::M12, NOW).unwrap();
    assert_eq!(l, Lifecycle::ordered_paid(Period::M12, NOW));
    assert_eq!(l.valid_until, Some(datetime!(2025-01-31 12:00 UTC)));
}

#[test]
fn row_ordered_is_cancelled() {
    let l = Lifecycle::ordered().cancel_order().unwrap();
    assert_eq!(l.settled(), Some(Settled::DELETED));
}

#[test]
fn row_provisioning_succeeded() {
    let activated = Lifecycle::ordered_paid(Period::M1, NOW);
    let done = activated.provisioning_succeeded().unwrap();
    assert_eq!(done.settled(), Some(Settled::ACTIVE));
    assert_eq!((done.came_from, done.resumes_to), (None, None));
    // A suspended license being modified goes back to suspended.
    let modified = suspended(R::Admin).begin_modification().unwrap();
    assert_eq!(
        modified.provisioning_succeeded().unwrap(),
        suspended(R::Admin)
    );
}

#[test]
fn row_disable() {
    assert_eq!(
        active().disable(Actor::Partner).unwrap(),
        suspended(R::Manual)
    );
    assert_eq!(active().disable(Actor::Admin).unwrap(), suspended(R::Admin));
    assert_eq!(
        active().disable(Actor::System).unwrap(),
        suspended(R::Admin)
    );
}

#[test]
fn row_enable_manual() {
    for actor in [Actor::Partner, Actor::Admin, Actor::System] {
        let l = suspended(R::Manual).enable(actor, NOW).unwrap();
        assert_eq!(l.status, S::InProgress);
        assert_eq!(l.came_from, Some(Settled::suspended(R::Manual)));
        assert_eq!(l.validation_view(), Settled::suspended(R::Manual));
        assert_eq!(l.provisioning_succeeded().unwrap(), active());
    }
}

#[test]
fn row_enable_admin_suspension() {
    let l = suspended(R::Admin).enable(Actor::Admin, NOW).unwrap();
    assert_eq!(l.provisioning_succeeded().unwrap(), active());
    assert_eq!(
        suspended(R::Admin).enable(Actor::Partner, NOW),
        Err(TransitionError::Forbidden)
    );
}

#[test]
fn row_enable_expired() {
    let e = Err(TransitionError::LicenseExpired);
    assert_eq!(suspended(R::Expired).enable(Actor::Partner, NOW), e);
    assert_eq!(suspended(R::Expired).enable(Actor::Admin, NOW), e);
    let lapsed = |r| at(S::Suspended, Some(r), NOW);
    assert_eq!(lapsed(R::Manual).enable(Actor::Partner, NOW), e);
    assert_eq!(lapsed(R::Admin).enable(Actor::Admin, NOW), e);
    // Permission before expiry: the partner cannot enable an admin suspension at all.
    assert_eq!(
        lapsed(R::Admin).enable(Actor::Partner, NOW),
        Err(TransitionError::Forbidden)
    );
}

#[test]
fn row_valid_until_passes() {
    let later = NOW + Duration::days(10);
    let expired = suspended(R::Expired);
    assert_eq!(active().expire(later).unwrap(), expired);
    assert_eq!(suspended(R::Manual).expire(later).unwrap(), expired);
    // Not yet due, or not eligible.
    assert_eq!(active().expire(NOW), invalid(S::Active));
    assert_eq!(suspended(R::Admin).expire(later), invalid(S::Suspended));
    assert_eq!(expired.clone().expire(later), invalid(S::Suspended));
    assert_eq!(in_progress().expire(later), invalid(S::InProgress));
    assert_eq!(Lifecycle::ordered().expire(later), invalid(S::Ordered));
}

#[test]
fn row_paid_renewal() {
    // Active: extends from valid_until (Feb 10 + 1 month).
    let l = active().renew(Period::M1, NOW).unwrap();
    assert_eq!(l.status, S::Active);
    assert_eq!(l.valid_until, Some(datetime!(2024-03-10 12:00 UTC)));
    // Lapsed: extends from now, not from the old valid_until.
    let lapsed = at(S::Active, None, NOW - Duration::days(40));
    let l = lapsed.renew(Period::M1, NOW).unwrap();
    assert_eq!(l.valid_until, Some(datetime!(2024-02-29 12:00 UTC)));
    // Manual and admin suspensions stay.
    for r in [R::Manual, R::Admin] {
        let l = suspended(r).renew(Period::M3, NOW).unwrap();
        assert_eq!(l.settled(), Some(Settled::suspended(r)));
        assert_eq!(l.valid_until, Some(datetime!(2024-05-10 12:00 UTC)));
    }
    // An expired suspension lifts through in_progress.
    let l = at(S::Suspended, Some(R::Expired), NOW - Duration::days(1))
        .renew(Period::M1, NOW)
        .unwrap();
    assert_eq!(l.status, S::InProgress);
    assert_eq!(l.came_from, Some(Settled::suspended(R::Expired)));
    assert_eq!(l.validation_view(), Settled::suspended(R::Expired));
    assert_eq!(l.valid_until, Some(datetime!(2024-02-29 12:00 UTC)));
    assert_eq!(l.provisioning_succeeded().unwrap().status, S::Active);
}

#[test]
fn row_edit_of_provisioned_fields() {
    for start in [active(), suspended(R::Manual), suspended(R::Expired)] {
        let from = start.settled().unwrap();
        let l = start.clone().begin_modification().unwrap();
        assert_eq!(
            (l.status, l.came_from, l.resumes_to),
            (S::InProgress, Some(from), Some(from))
        );
        assert_eq!(l.validation_view(), from);
        assert_eq!(l.provisioning_succeeded().unwrap(), start);
    }
    // In `ordered`, ip and registration_key change without provisioning.
    let o = Lifecycle::ordered();
    assert_eq!(
        o.clone().edit_provisioned(ProvisionedField::Ip),
        Ok(o.clone())
    );
    assert_eq!(
        active().edit_provisioned(ProvisionedField::Options),
        Ok(in_progress())
    );
}

#[test]
fn row_delete() {
    for l in every_state() {
        if l.status == S::Deleted {
            assert_eq!(l.delete(), invalid(S::Deleted));
        } else {
            let d = l.delete().unwrap();
            assert_eq!(d.settled(), Some(Settled::DELETED));
            assert_eq!((d.came_from, d.resumes_to), (None, None));
        }
    }
}

#[test]
fn row_grace_sweep() {
    let grace = Duration::days(30);
    let expired = at(S::Suspended, Some(R::Expired), NOW);
    assert_eq!(
        expired
            .clone()
            .grace_expired(NOW + grace, grace)
            .unwrap()
            .status,
        S::Deleted
    );
    assert_eq!(
        expired.grace_expired(NOW + grace - Duration::SECOND, grace),
        invalid(S::Suspended)
    );
    let manual = at(S::Suspended, Some(R::Manual), NOW);
    assert_eq!(
        manual.grace_expired(NOW + grace, grace),
        invalid(S::Suspended)
    );
    assert_eq!(
        at(S::Active, None, NOW).grace_expired(NOW + grace, grace),
        invalid(S::Active)
    );
}

#[test]
fn provisioned_field_rules() {
    use ProvisionedField::{Ip, Options, ProductId, RegistrationKey};
    let all = [Ip, RegistrationKey, ProductId, Options];
    for f in all {
        assert_eq!(active().can_edit_provisioned(f), Ok(()));
        assert_eq!(suspended(R::Admin).can_edit_provisioned(f), Ok(()));
        assert_eq!(
            in_progress().can_edit_provisioned(f),
            Err(TransitionError::InProgress)
        );
        assert_eq!(
            deleted().can_edit_provisioned(f),
            invalid(S::Deleted).map(|_| ())
        );
    }
    let o = Lifecycle::ordered();
    assert_eq!(o.can_edit_provisioned(Ip), Ok(()));
    assert_eq!(o.can_edit_provisioned(RegistrationKey), Ok(()));
    assert_eq!(
        o.can_edit_provisioned(ProductId),
        invalid(S::Ordered).map(|_| ())
    );
    assert_eq!(
        o.can_edit_provisioned(Options),
        invalid(S::Ordered).map(|_| ())
    );
    assert_eq!(o.clone().edit_provisioned(ProductId), invalid(S::Ordered));
}

#[test]
fn unprovisioned_edits_everywhere_but_deleted() {
    for l in every_state() {
        let expected = if l.status == S::Deleted {
            invalid(S::Deleted).map(|_| ())
        } else {
            Ok(())
        };
        assert_eq!(l.can_edit_unprovisioned(), expected);
    }
}

#[test]
fn renewal_and_configuration_refusals() {
    for l in [Lifecycle::ordered(), in_progress(), deleted()] {
        let from = l.status;
        assert_eq!(l.can_renew(), invalid(from).map(|_| ()));
        assert_eq!(l.clone().renew(Period::M1, NOW), invalid(from));
        let config = if from == S::InProgress {
            Err(TransitionError::InProgress)
        } else {
            invalid(from).map(|_| ())
        };
        assert_eq!(l.can_change_configuration(), config);
    }
    assert_eq!(suspended(R::Expired).can_change_configuration(), Ok(()));
}

#[test]
fn transfer_eligibility() {
    for l in every_state() {
        let ok = matches!(
            (l.status, l.suspension_reason),
            (S::Active, _) | (S::Suspended, Some(R::Manual | R::Expired))
        );
        let expected = if ok {
            Ok(())
        } else {
            invalid(l.status).map(|_| ())
        };
        assert_eq!(l.can_transfer(), expected, "{l:?}");
    }
}

#[test]
fn other_transitions_are_refused_naming_the_status() {
    for l in every_state() {
        let from = l.status;
        if from != S::Ordered {
            assert_eq!(l.clone().pay(Period::M1, NOW), invalid(from));
            assert_eq!(l.clone().cancel_order(), invalid(from));
        }
        if from != S::InProgress {
            assert_eq!(l.clone().provisioning_succeeded(), invalid(from));
        }
        if from != S::Active {
            assert_eq!(l.clone().disable(Actor::Admin), invalid(from));
        }
        if from != S::Suspended {
            assert_eq!(l.clone().enable(Actor::Admin, NOW), invalid(from));
        }
        match from {
            S::Active | S::Suspended => {}
            S::InProgress => assert_eq!(l.begin_modification(), Err(TransitionError::InProgress)),
            _ => assert_eq!(l.begin_modification(), invalid(from)),
        }
    }
    let err = TransitionError::InvalidTransition {
        from: S::InProgress,
    };
    assert_eq!(
        err.to_string(),
        "invalid transition from status `in_progress`"
    );
}

#[test]
fn statuses_round_trip_as_text() {
    for s in [
        S::Ordered,
        S::InProgress,
        S::Active,
        S::Suspended,
        S::Deleted,
    ] {
        assert_eq!(s.as_str().parse::<LicenseStatus>().unwrap(), s);
    }
    for r in [R::Manual, R::Expired, R::Admin] {
        assert_eq!(r.as_str().parse::<SuspensionReason>().unwrap(), r);
    }
    assert_eq!(S::InProgress.to_string(), "in_progress");
    assert!("paused".parse::<LicenseStatus>().is_err());
}

#[test]
fn validation_view_guesses_for_inconsistent_rows() {
    let mut l = in_progress();
    l.came_from = None;
    assert_eq!(l.validation_view(), Settled::ACTIVE);
    l.valid_until = None;
    assert_eq!(l.validation_view(), Settled::ORDERED);
}

#[test]
fn a_trial_activates_like_a_paid_order_for_its_own_term() {
    let until = NOW + Duration::days(14);
    let trial = Lifecycle::trial(until);
    assert_eq!(trial.status, S::InProgress);
    assert_eq!(trial.valid_until, Some(until));
    assert_eq!(trial.validation_view(), Settled::ORDERED);
    let active = trial.provisioning_succeeded().unwrap();
    assert_eq!(active.settled(), Some(Settled::ACTIVE));
    assert_eq!(active.valid_until, Some(until));
}
