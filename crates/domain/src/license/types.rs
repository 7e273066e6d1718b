//! The vocabulary of the license state machine: statuses, reasons, actors and errors.

use serde::{Deserialize, Serialize};

use crate::text_enum::text_enum;

text_enum! {
    /// Where a license is in its life (CONTRACT §4).
    pub enum LicenseStatus("license status") {
        /// Ordered, not paid: nothing provisioned, no `valid_until`.
        Ordered => "ordered",
        /// The provisioner is applying an activation, a modification or a re-enable.
        InProgress => "in_progress",
        /// Paid and provisioned.
        Active => "active",
        /// Switched off; see [`SuspensionReason`].
        Suspended => "suspended",
        /// Soft-deleted; terminal.
        Deleted => "deleted",
    }
}

text_enum! {
    /// Why a license is suspended.
    pub enum SuspensionReason("suspension reason") {
        /// Disabled by its partner; the partner may enable it again.
        Manual => "manual",
        /// `valid_until` passed; only a renewal lifts it.
        Expired => "expired",
        /// Disabled by the provider; only an admin may enable it.
        Admin => "admin",
    }
}

/// A status other than `in_progress`, with its suspension reason when suspended.
///
/// While a license is `in_progress`, it remembers one of these as where it came from (what
/// validation reports) and one as where provisioning success leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Settled {
    /// The status (never `in_progress` when built by this crate).
    pub status: LicenseStatus,
    /// Set exactly when `status` is `suspended`.
    pub reason: Option<SuspensionReason>,
}

impl Settled {
    /// `ordered`.
    pub const ORDERED: Settled = Settled::plain(LicenseStatus::Ordered);
    /// `active`.
    pub const ACTIVE: Settled = Settled::plain(LicenseStatus::Active);
    /// `deleted`.
    pub const DELETED: Settled = Settled::plain(LicenseStatus::Deleted);

    /// A non-suspended status.
    #[must_use]
    pub const fn plain(status: LicenseStatus) -> Settled {
        Settled {
            status,
            reason: None,
        }
    }

    /// `suspended` for `reason`.
    #[must_use]
    pub const fn suspended(reason: SuspensionReason) -> Settled {
        Settled {
            status: LicenseStatus::Suspended,
            reason: Some(reason),
        }
    }
}

/// Who performs an enable or disable: it decides the suspension reason and who may lift it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A partner user or API key acting on its own license.
    Partner,
    /// Provider staff.
    Admin,
    /// The service itself (sweeper, bulk jobs run for an admin); has admin authority.
    System,
}

/// A field whose change must be applied by the provisioner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProvisionedField {
    /// The licensed IP address.
    Ip,
    /// The key licensed software authenticates with.
    RegistrationKey,
    /// The product (a change of edition).
    ProductId,
    /// The option quantities (the configuration).
    Options,
}

/// A transition the state machine refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// Not allowed from the current status (409 `invalid_transition`).
    #[error("invalid transition from status `{from}`")]
    InvalidTransition {
        /// The license's current status.
        from: LicenseStatus,
    },
    /// Enabling a license whose term has ended; it must be renewed (409 `license_expired`).
    #[error("license has expired; renew it instead")]
    LicenseExpired,
    /// The actor may not perform this transition (403), e.g. a partner lifting an admin
    /// suspension.
    #[error("only an administrator can enable a license suspended by an administrator")]
    Forbidden,
    /// The license is `in_progress`; provisioned fields cannot change until it settles (409).
    #[error("license is `in_progress`; wait until provisioning finishes")]
    InProgress,
}
