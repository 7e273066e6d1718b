//! Enabling, disabling and deleting a license: one transaction script shared by the single
//! calls (`POST …/enable`, `POST …/disable`, `DELETE …`) and bulk operations.
use licentia_domain::event::EventType;
use licentia_domain::ids::LicenseId;
use licentia_domain::license::{
    Actor as LifecycleActor, LicenseStatus, Lifecycle, TransitionError,
};
use licentia_domain::license_record::{Annotation, License};
use licentia_persistence::DatabaseTransaction;
use licentia_persistence::repo::licenses;
use time::OffsetDateTime;

pub use crate::caller::Caller;
use crate::error::{AppError, AppResult};
use crate::snapshot::{license_snapshot, record_change};
use crate::{provisioning, transfers};

/// A state change a caller asks for by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// `active` → `suspended` (`manual` by a partner, `admin` by an admin).
    Disable,
    /// `suspended` → `in_progress` → `active`.
    Enable,
    /// Any status but `deleted` → `deleted` (soft).
    Delete,
}

impl Transition {
    /// The event the change records.
    pub fn event_type(self) -> EventType {
        match self {
            Self::Disable => EventType::LicenseSuspended,
            Self::Enable => EventType::LicenseEnabled,
            Self::Delete => EventType::LicenseDeleted,
        }
    }

    fn apply(
        self,
        lifecycle: Lifecycle,
        role: LifecycleActor,
        now: OffsetDateTime,
    ) -> Result<Lifecycle, TransitionError> {
        match self {
            Self::Disable => lifecycle.disable(role),
            Self::Enable => lifecycle.enable(role, now),
            Self::Delete => lifecycle.delete(),
        }
    }
}

/// Applies `transition` to the license inside `txn`: locks the orders holding its unpaid items
/// (a deletion cancels them), then the license (404 when the caller cannot reach it); runs
/// `precondition` (e.g. `If-Match`) on the locked row; saves, with `annotation` (the cause and
/// note of a disable or delete; ignored by an enable); queues provisioning when the license
/// entered `in_progress`; on deletion cancels its unpaid order items and pending transfers;
/// records the event (its snapshots carry the cause and note). Returns the saved license.
#[allow(clippy::too_many_arguments)]
pub async fn transition(
    txn: &DatabaseTransaction,
    caller: &Caller,
    id: LicenseId,
    transition: Transition,
    annotation: Annotation,
    now: OffsetDateTime,
    provision_attempts: i32,
    precondition: impl FnOnce(&License) -> AppResult<()>,
) -> AppResult<License> {
    let license = licenses::lock(txn, caller.scope, id)
        .await?
        .ok_or(AppError::NotFound)?;
    precondition(&license)?;
    let before = license_snapshot(&license);
    let mut next = license.clone();
    next.lifecycle = transition.apply(license.lifecycle.clone(), caller.role, now)?;
    match transition {
        Transition::Disable => next.suspension = annotation,
        Transition::Delete => next.deletion = annotation,
        Transition::Enable => {}
    }
    let entered_progress = next.lifecycle.status == LicenseStatus::InProgress;
    let deleted = next.lifecycle.status == LicenseStatus::Deleted;
    let saved = licenses::save(txn, &next, None).await?;
    if entered_progress {
        provisioning::enqueue(txn, saved.id, provision_attempts).await?;
    }
    if deleted {
        transfers::cancel_pending_of_license(txn, saved.id, caller.actor, now).await?;
    }
    record_change(
        txn,
        transition.event_type(),
        caller.actor,
        Some(before),
        &saved,
    )
    .await?;
    Ok(saved)
}
