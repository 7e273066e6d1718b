//! Typed identifiers.
//!
//! Every entity gets its own newtype over [`Uuid`] so that a `LicenseId` can never be passed
//! where an `AccountId` is expected. New ids are UUIDv7: time-ordered, which keeps B-tree
//! indexes compact and makes `ORDER BY id` roughly creation order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (e.g. read from the database or a path parameter).
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            #[must_use]
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Hyphenated lowercase, the same text the API puts on the wire.
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

define_id!(
    /// Identifies an account (the provider or a partner).
    AccountId
);
define_id!(
    /// Identifies a user of an account.
    UserId
);
define_id!(
    /// Identifies a catalog product.
    ProductId
);
define_id!(
    /// Identifies a license.
    LicenseId
);
define_id!(
    /// Identifies an order (invoice).
    OrderId
);
define_id!(
    /// Identifies one item of an order.
    OrderItemId
);
define_id!(
    /// Identifies a license transfer offer.
    TransferId
);
define_id!(
    /// Identifies a domain event.
    EventId
);
define_id!(
    /// Identifies a ledger entry.
    LedgerEntryId
);
define_id!(
    /// Identifies an API key.
    ApiKeyId
);
define_id!(
    /// Identifies a refresh token.
    RefreshTokenId
);
define_id!(
    /// Identifies a background job.
    JobId
);
define_id!(
    /// Identifies a registration of licensed software.
    RegistrationId
);
define_id!(
    /// Identifies a webhook endpoint.
    WebhookEndpointId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_v7_and_ordered() {
        let a = LicenseId::new();
        let b = LicenseId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a <= b);
    }

    #[test]
    fn display_and_parse_round_trip() {
        let id = AccountId::new();
        let text = id.to_string();
        assert_eq!(text.parse::<AccountId>().unwrap(), id);
        assert!("not-a-uuid".parse::<AccountId>().is_err());
    }

    #[test]
    fn serde_is_transparent() {
        let uuid = Uuid::nil();
        let id = OrderId::from_uuid(uuid);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{uuid}\""));
        assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
        assert_eq!(Uuid::from(id), uuid);
        assert_eq!(OrderId::from(uuid), id);
    }
}
