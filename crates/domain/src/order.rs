//! The closed sets of orders (CONTRACT §5): where an order and its items stand, and what an
//! item pays for. The database column, the JSON field and the OpenAPI enum share one spelling.
use crate::text_enum::text_enum;

text_enum! {
    /// Where an order stands.
    pub enum OrderStatus("order status") {
        /// Not paid yet; its pending items wait for the payment.
        Unpaid => "unpaid",
        Paid => "paid",
        Cancelled => "cancelled",
    }
}

text_enum! {
    /// Where an order item stands: `pending` until its order is paid, then `fulfilled`;
    /// `cancelled` when its order was cancelled or its license changed (stale).
    pub enum ItemStatus("order item status") {
        Pending => "pending",
        Fulfilled => "fulfilled",
        Cancelled => "cancelled",
    }
}

text_enum! {
    /// What an order item pays for.
    pub enum ItemKind("order item kind") {
        /// A new license.
        LicenseOrder => "license_order",
        /// Another term of a license.
        Renewal => "renewal",
        /// New option quantities (or a product switch) of a license.
        ConfigurationChange => "configuration_change",
    }
}
