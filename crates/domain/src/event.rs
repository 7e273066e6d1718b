//! The types of the events the service records (the audit log, webhooks, the live stream). One
//! enum: the database column, the JSON `type`, the webhook subscription list and the OpenAPI
//! enum share its spelling.
use crate::text_enum::text_enum;

text_enum! {
    /// What happened.
    pub enum EventType("event type") {
        LicenseOrdered => "license.ordered",
        LicenseActivated => "license.activated",
        LicenseUpdated => "license.updated",
        LicenseSuspended => "license.suspended",
        LicenseEnabled => "license.enabled",
        LicenseRenewed => "license.renewed",
        LicenseExpiringSoon => "license.expiring_soon",
        LicenseExpired => "license.expired",
        LicenseDeleted => "license.deleted",
        LicenseProvisioningFailed => "license.provisioning_failed",
        LicenseAutoRenewFailed => "license.auto_renew_failed",
        LicenseRegistrationCreated => "license.registration_created",
        LicenseRegistrationDeleted => "license.registration_deleted",
        LicenseRegistrationsDeleted => "license.registrations_deleted",
        TransferCreated => "transfer.created",
        TransferAccepted => "transfer.accepted",
        TransferRejected => "transfer.rejected",
        TransferCancelled => "transfer.cancelled",
        TransferExpired => "transfer.expired",
        OrderPaid => "order.paid",
        OrderItemCancelled => "order.item_cancelled",
        BalanceLow => "balance.low",
        WebhookPing => "webhook.ping",
        /// Recorded, not delivered to webhooks.
        AccountCredited => "account.credited",
        /// Recorded, not delivered to webhooks.
        SigningKeyRotated => "signing_key.rotated",
    }
}

impl EventType {
    /// Whether webhooks deliver it (an endpoint may subscribe to it).
    #[must_use]
    pub const fn is_delivered(self) -> bool {
        !matches!(self, Self::AccountCredited | Self::SigningKeyRotated)
    }

    /// The types an endpoint may subscribe to, in declaration order.
    pub fn delivered() -> impl Iterator<Item = EventType> {
        Self::VARIANTS.iter().copied().filter(|t| t.is_delivered())
    }
}

text_enum! {
    /// Where one event's delivery to one webhook endpoint stands.
    pub enum DeliveryStatus("webhook delivery status") {
        /// Not delivered yet; `next_attempt_at` says when the next attempt runs.
        Pending => "pending",
        /// A 2xx answer was received.
        Delivered => "delivered",
        /// Given up: attempts exhausted, or the endpoint was disabled.
        Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_resource_dot_action() {
        for t in EventType::VARIANTS {
            let (resource, action) = t.as_str().split_once('.').unwrap_or_default();
            assert!(!resource.is_empty() && !action.is_empty(), "{t}");
        }
        assert_eq!(
            EventType::delivered().count(),
            EventType::VARIANTS.len() - 2
        );
    }
}
