//! Roles, scopes and account kinds (CONTRACT §1).

use crate::text_enum::text_enum;

/// The shortest password anywhere: a user's (created or changed) and the bootstrap admin's
/// (`LICENTIA_ADMIN_PASSWORD`). The API's `routes::users` repeats it in its `garde` attribute.
pub const MIN_PASSWORD_CHARS: usize = 12;

text_enum! {
    /// A user's role. `admin` is provider staff; the others are partner roles.
    pub enum Role("role") {
        /// Provider staff: passes every check.
        Admin => "admin",
        /// Partner owner: every partner scope, including managing users and API keys.
        Owner => "owner",
        /// Partner operator: reads and writes, but cannot manage the account.
        Operator => "operator",
        /// Partner viewer: read-only.
        Viewer => "viewer",
    }
}

text_enum! {
    /// A permission carried by a user (through its role) or by an API key.
    pub enum Scope("scope") {
        /// Read licenses, registrations, events.
        LicensesRead => "licenses:read",
        /// Order, edit, enable/disable, delete licenses.
        LicensesWrite => "licenses:write",
        /// Read orders, balance and ledger.
        BillingRead => "billing:read",
        /// Pay and cancel orders, renew, change configurations.
        BillingWrite => "billing:write",
        /// Offer, accept, reject and cancel transfers.
        TransfersWrite => "transfers:write",
        /// Manage the own account's users and API keys (never provider routes).
        AccountAdmin => "account:admin",
    }
}

text_enum! {
    /// Whether an account is the provider itself or a partner.
    pub enum AccountKind("account kind") {
        /// The company running Licentia.
        Provider => "provider",
        /// A reseller or customer.
        Partner => "partner",
    }
}

impl Scope {
    /// Every scope, in declaration order.
    pub const ALL: [Scope; 6] = [
        Scope::LicensesRead,
        Scope::LicensesWrite,
        Scope::BillingRead,
        Scope::BillingWrite,
        Scope::TransfersWrite,
        Scope::AccountAdmin,
    ];

    /// True for the `:read` scopes.
    #[must_use]
    pub const fn is_read(self) -> bool {
        matches!(self, Scope::LicensesRead | Scope::BillingRead)
    }
}

const READ_SCOPES: [Scope; 2] = [Scope::LicensesRead, Scope::BillingRead];
const OPERATOR_SCOPES: [Scope; 5] = [
    Scope::LicensesRead,
    Scope::LicensesWrite,
    Scope::BillingRead,
    Scope::BillingWrite,
    Scope::TransfersWrite,
];

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Owner, Role::Operator, Role::Viewer];

    /// The scopes this role implies. `admin` lists every scope, but authorization should also
    /// let it through provider-only routes, which no scope grants.
    #[must_use]
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            // Admin lists every scope so scope checks alone never lock provider staff out.
            Role::Admin | Role::Owner => &Scope::ALL,
            Role::Operator => &OPERATOR_SCOPES,
            Role::Viewer => &READ_SCOPES,
        }
    }

    /// Whether this role implies `scope`.
    #[must_use]
    pub fn has_scope(self, scope: Scope) -> bool {
        self.scopes().contains(&scope)
    }

    /// Roles a partner account's users may hold.
    #[must_use]
    pub const fn is_partner_role(self) -> bool {
        !matches!(self, Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        for scope in Scope::ALL {
            assert_eq!(scope.to_string().parse::<Scope>().unwrap(), scope);
        }
        for kind in [AccountKind::Provider, AccountKind::Partner] {
            assert_eq!(kind.as_str().parse::<AccountKind>().unwrap(), kind);
        }
        assert_eq!(Scope::AccountAdmin.as_str(), "account:admin");
        let err = "superuser".parse::<Role>().unwrap_err();
        assert_eq!(err.to_string(), "unknown role `superuser`");
        assert!("Admin".parse::<Role>().is_err());
    }

    #[test]
    fn roles_imply_scopes() {
        assert_eq!(
            Role::Viewer.scopes(),
            &[Scope::LicensesRead, Scope::BillingRead]
        );
        assert!(Role::Viewer.scopes().iter().all(|s| s.is_read()));
        assert!(!Role::Operator.has_scope(Scope::AccountAdmin));
        assert_eq!(Role::Operator.scopes().len(), Scope::ALL.len() - 1);
        for scope in Scope::ALL {
            assert!(Role::Owner.has_scope(scope));
            assert!(Role::Admin.has_scope(scope));
        }
        assert!(!Role::Admin.is_partner_role());
        assert!(Role::Viewer.is_partner_role());
    }

    #[test]
    fn serde_uses_the_wire_strings() {
        assert_eq!(
            serde_json::to_string(&Scope::TransfersWrite).unwrap(),
            "\"transfers:write\""
        );
        assert_eq!(
            serde_json::from_str::<AccountKind>("\"partner\"").unwrap(),
            AccountKind::Partner
        );
        assert!(serde_json::from_str::<Role>("\"root\"").is_err());
    }
}
