//! Who calls a use case, as the use cases see it.
use licentia_domain::license::Actor as LifecycleActor;
use licentia_persistence::repo::events::Actor;
use licentia_persistence::repo::licenses::Scope as LicenseScope;

/// Who makes a change: which licenses they reach, their role in the state machine, and how
/// events name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub scope: LicenseScope,
    pub role: LifecycleActor,
    pub actor: Actor,
}

impl Caller {
    /// A provider's administrator: every license, the administrator's transitions.
    pub fn admin(actor: Actor) -> Self {
        Self {
            scope: LicenseScope::All,
            role: LifecycleActor::Admin,
            actor,
        }
    }

    /// A partner: the account's own licenses, the partner's transitions.
    pub fn partner(account: licentia_domain::ids::AccountId, actor: Actor) -> Self {
        Self {
            scope: LicenseScope::Tenant(account),
            role: LifecycleActor::Partner,
            actor,
        }
    }
}
