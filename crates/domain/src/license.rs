//! The license state machine of CONTRACT §4 as pure, typed transitions.
//!
//! Every transition consumes a [`Lifecycle`] and returns the next one or a [`TransitionError`];
//! "now" is always passed in, so the rules are testable without a clock and the caller decides
//! which instant (the request's, the sweeper's) counts.

mod types;

use time::{Duration, OffsetDateTime};

use crate::calendar::{add_months_saturating, renewal_start};
use crate::period::Period;

pub use types::{
    Actor, LicenseStatus, ProvisionedField, Settled, SuspensionReason, TransitionError,
};

use LicenseStatus as S;
use SuspensionReason as R;

/// The status-related part of a license: everything the state machine reads or writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// Current status.
    pub status: LicenseStatus,
    /// Set exactly when `status` is `suspended`.
    pub suspension_reason: Option<SuspensionReason>,
    /// End of the paid term; `None` until the first payment.
    pub valid_until: Option<OffsetDateTime>,
    /// While `in_progress`: the state it came from (what validation reports). Else `None`.
    pub came_from: Option<Settled>,
    /// While `in_progress`: the state provisioning success leads to. Else `None`.
    pub resumes_to: Option<Settled>,
}

impl Lifecycle {
    /// A license whose order is not paid yet.
    #[must_use]
    pub const fn ordered() -> Lifecycle {
        Lifecycle {
            status: S::Ordered,
            suspension_reason: None,
            valid_until: None,
            came_from: None,
            resumes_to: None,
        }
    }

    /// A license ordered and paid at once: activation starts now, the term is `period` long.
    #[must_use]
    pub fn ordered_paid(period: Period, now: OffsetDateTime) -> Lifecycle {
        Self::ordered().activate(period, now)
    }

    /// A free trial starting now: activation (`in_progress` → `active`) of a term that ends at
    /// `until`, with nothing paid.
    #[must_use]
    pub fn trial(until: OffsetDateTime) -> Lifecycle {
        Lifecycle {
            valid_until: Some(until),
            ..Self::ordered()
        }
        .into_progress(Settled::ORDERED, Settled::ACTIVE)
    }

    /// The current state when it is not `in_progress`.
    #[must_use]
    pub fn settled(&self) -> Option<Settled> {
        (self.status != S::InProgress).then_some(Settled {
            status: self.status,
            reason: self.suspension_reason,
        })
    }

    /// The state to validate as: the current one, or `came_from` while `in_progress`.
    ///
    /// An `in_progress` row without `came_from` (which the transitions never produce) is read
    /// as `ordered` when it was never paid and `active` otherwise, the least surprising guess.
    #[must_use]
    pub fn validation_view(&self) -> Settled {
        self.settled()
            .or(self.came_from)
            .unwrap_or(match self.valid_until {
                None => Settled::ORDERED,
                Some(_) => Settled::ACTIVE,
            })
    }

    /// True when `valid_until` is set and not after `now`.
    #[must_use]
    pub fn is_past_valid_until(&self, now: OffsetDateTime) -> bool {
        self.valid_until.is_some_and(|until| until <= now)
    }

    /// The order was paid: `ordered` → `in_progress` (activation), term starts now.
    pub fn pay(self, period: Period, now: OffsetDateTime) -> Result<Lifecycle, TransitionError> {
        self.require(S::Ordered)?;
        Ok(self.activate(period, now))
    }

    /// The order was cancelled: `ordered` → `deleted`.
    pub fn cancel_order(self) -> Result<Lifecycle, TransitionError> {
        self.require(S::Ordered)?;
        Ok(self.settle(Settled::DELETED))
    }

    /// The provisioner finished: `in_progress` → `resumes_to` (`active` when unknown).
    pub fn provisioning_succeeded(self) -> Result<Lifecycle, TransitionError> {
        self.require(S::InProgress)?;
        let target = self.resumes_to.unwrap_or(Settled::ACTIVE);
        Ok(self.settle(target))
    }

    /// `active` → `suspended`: `manual` when the partner disables it, `admin` otherwise.
    pub fn disable(self, actor: Actor) -> Result<Lifecycle, TransitionError> {
        self.require(S::Active)?;
        let reason = match actor {
            Actor::Partner => R::Manual,
            Actor::Admin | Actor::System => R::Admin,
        };
        Ok(self.settle(Settled::suspended(reason)))
    }

    /// `suspended` → `in_progress` → `active`.
    ///
    /// The permission check comes first: a partner asking to lift an admin suspension gets
    /// `Forbidden` even when the term has also ended, because "renew instead" would be advice
    /// it cannot act on by enabling. Then an expired term gives `LicenseExpired`.
    pub fn enable(self, actor: Actor, now: OffsetDateTime) -> Result<Lifecycle, TransitionError> {
        let Some(from) = self.settled().filter(|s| s.status == S::Suspended) else {
            return Err(self.invalid());
        };
        if from.reason == Some(R::Admin) && actor == Actor::Partner {
            return Err(TransitionError::Forbidden);
        }
        // A manual suspension that outlived its term is as expired as one the sweeper marked;
        // the sweeper may simply not have run yet.
        if from.reason == Some(R::Expired) || self.is_past_valid_until(now) {
            return Err(TransitionError::LicenseExpired);
        }
        Ok(self.into_progress(from, Settled::ACTIVE))
    }

    /// The term ran out (sweeper): `active` or `suspended` (`manual`) with `valid_until ≤ now`
    /// → `suspended` (`expired`). An admin suspension keeps its reason so only an admin can
    /// lift it; an `in_progress` license is swept once it settles.
    pub fn expire(self, now: OffsetDateTime) -> Result<Lifecycle, TransitionError> {
        let eligible = matches!(
            (self.status, self.suspension_reason),
            (S::Active, _) | (S::Suspended, Some(R::Manual))
        );
        if !eligible || !self.is_past_valid_until(now) {
            return Err(self.invalid());
        }
        Ok(self.settle(Settled::suspended(R::Expired)))
    }

    /// Whether a renewal may be ordered. `in_progress` is refused as `InvalidTransition` (not
    /// `InProgress`): the contract lists it with `ordered` and `deleted` as plain refusals.
    pub fn can_renew(&self) -> Result<(), TransitionError> {
        match self.status {
            S::Active | S::Suspended => Ok(()),
            S::Ordered | S::InProgress | S::Deleted => Err(self.invalid()),
        }
    }

    /// A paid renewal: `valid_until` = max(`valid_until`, now) + `period`.
    ///
    /// `active` stays `active`; a `manual`/`admin` suspension stays (the partner or admin
    /// suspended it on purpose); an `expired` suspension lifts through `in_progress` → `active`.
    pub fn renew(self, period: Period, now: OffsetDateTime) -> Result<Lifecycle, TransitionError> {
        self.can_renew()?;
        // Active and suspended licenses always have a term; a missing one (legacy or hand-edited
        // row) is treated as ending now rather than refusing a payment already taken.
        let start = renewal_start(self.valid_until.unwrap_or(now), now);
        let valid_until = Some(add_months_saturating(start, period.months()));
        let renewed = Lifecycle {
            valid_until,
            ..self
        };
        match renewed.settled() {
            Some(from) if from.reason == Some(R::Expired) => {
                Ok(renewed.into_progress(from, Settled::ACTIVE))
            }
            _ => Ok(renewed),
        }
    }

    /// Whether a provisioned field may change now. `ip` and `registration_key` may change in
    /// `ordered` (nothing is provisioned yet); every field in `active` and `suspended`. An
    /// `in_progress` license answers `InProgress`; `deleted` and the rest `InvalidTransition`.
    pub fn can_edit_provisioned(&self, field: ProvisionedField) -> Result<(), TransitionError> {
        match (self.status, field) {
            (S::Active | S::Suspended, _) => Ok(()),
            (S::Ordered, ProvisionedField::Ip | ProvisionedField::RegistrationKey) => Ok(()),
            (S::InProgress, _) => Err(TransitionError::InProgress),
            (S::Ordered | S::Deleted, _) => Err(self.invalid()),
        }
    }

    /// Whether fields that are not provisioned (`name`, `metadata`, `auto_renew_months`, …)
    /// may change: in every status but `deleted`.
    pub fn can_edit_unprovisioned(&self) -> Result<(), TransitionError> {
        match self.status {
            S::Deleted => Err(self.invalid()),
            _ => Ok(()),
        }
    }

    /// Whether the option quantities may change (`PUT …/configuration`). `in_progress` answers
    /// `InProgress`, like any edit of a provisioned field; `ordered` and `deleted`
    /// `InvalidTransition`.
    pub fn can_change_configuration(&self) -> Result<(), TransitionError> {
        self.can_edit_provisioned(ProvisionedField::Options)
    }

    /// An edit of a provisioned field was recorded: `active`/`suspended` → `in_progress`, to
    /// come back to the same state. `in_progress` answers `InProgress`; others
    /// `InvalidTransition` (use [`Lifecycle::edit_provisioned`] to also cover `ordered`).
    pub fn begin_modification(self) -> Result<Lifecycle, TransitionError> {
        match self.settled() {
            Some(from) if matches!(from.status, S::Active | S::Suspended) => {
                Ok(self.into_progress(from, from))
            }
            None => Err(TransitionError::InProgress),
            Some(_) => Err(self.invalid()),
        }
    }

    /// Checks and applies an edit of `field`: unchanged in `ordered` (nothing to provision),
    /// through `in_progress` in `active`/`suspended`.
    pub fn edit_provisioned(self, field: ProvisionedField) -> Result<Lifecycle, TransitionError> {
        self.can_edit_provisioned(field)?;
        if self.status == S::Ordered {
            Ok(self)
        } else {
            self.begin_modification()
        }
    }

    /// Soft delete: any status but `deleted` → `deleted`.
    pub fn delete(self) -> Result<Lifecycle, TransitionError> {
        if self.status == S::Deleted {
            return Err(self.invalid());
        }
        Ok(self.settle(Settled::DELETED))
    }

    /// Sweep: `suspended` (`expired`) for longer than `grace` after `valid_until` → `deleted`.
    pub fn grace_expired(
        self,
        now: OffsetDateTime,
        grace: Duration,
    ) -> Result<Lifecycle, TransitionError> {
        // An overflowing deadline is "never": the license is kept rather than deleted early.
        let deadline = self.valid_until.and_then(|until| until.checked_add(grace));
        let over = deadline.is_some_and(|d| d <= now);
        if self.settled() != Some(Settled::suspended(R::Expired)) || !over {
            return Err(self.invalid());
        }
        Ok(self.settle(Settled::DELETED))
    }

    /// Whether the license may be offered to another account: `active`, or `suspended` for
    /// `manual` or `expired` (an admin suspension is the provider's to lift, not to hand on).
    pub fn can_transfer(&self) -> Result<(), TransitionError> {
        match (self.status, self.suspension_reason) {
            (S::Active, _) | (S::Suspended, Some(R::Manual | R::Expired)) => Ok(()),
            _ => Err(self.invalid()),
        }
    }

    fn activate(self, period: Period, now: OffsetDateTime) -> Lifecycle {
        Lifecycle {
            valid_until: Some(add_months_saturating(now, period.months())),
            ..self
        }
        .into_progress(Settled::ORDERED, Settled::ACTIVE)
    }

    fn into_progress(self, came_from: Settled, resumes_to: Settled) -> Lifecycle {
        Lifecycle {
            status: S::InProgress,
            // The reason belongs to `suspended`; while in progress it lives in `came_from`.
            suspension_reason: None,
            came_from: Some(came_from),
            resumes_to: Some(resumes_to),
            ..self
        }
    }

    fn settle(self, to: Settled) -> Lifecycle {
        Lifecycle {
            status: to.status,
            suspension_reason: to.reason,
            came_from: None,
            resumes_to: None,
            ..self
        }
    }

    fn require(&self, status: LicenseStatus) -> Result<(), TransitionError> {
        if self.status == status {
            Ok(())
        } else {
            Err(self.invalid())
        }
    }

    fn invalid(&self) -> TransitionError {
        TransitionError::InvalidTransition { from: self.status }
    }
}

#[cfg(test)]
mod tests;
