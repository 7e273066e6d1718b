//! How an order, a renewal or a configuration change is paid (CONTRACT §5).
use serde::Deserialize;
use uuid::Uuid;

/// How an order or renewal is paid. Its schema (named variants with a discriminator) is
/// written by the API crate's OpenAPI module.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Payment {
    /// Charge the account now; 402 when balance + credit limit do not cover it.
    // A struct variant, not a unit one: serde ignores unknown fields next to the tag of a
    // unit variant even with `deny_unknown_fields`.
    Balance {},
    /// Add the item to an unpaid order of the account.
    ExistingOrder {
        order_id: Uuid,
        /// Pay the whole order from the balance now.
        #[serde(default)]
        pay_now: bool,
    },
    /// Create a new unpaid order (an invoice).
    NewOrder {
        /// Pay the order from the balance now.
        #[serde(default)]
        pay_now: bool,
    },
}

impl Payment {
    /// Whether it pays an existing order now: that pays every item of the order, so it needs
    /// the right to pay orders (`billing:write`, like `POST /v1/orders/{id}/pay`).
    pub fn pays_existing_order(&self) -> bool {
        matches!(self, Self::ExistingOrder { pay_now: true, .. })
    }
}
