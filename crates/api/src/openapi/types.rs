//! Schemas of wire values whose rules their Rust type cannot state (a `String` that must be an
//! IP address, an `i64` that must be a billing period). DTO fields point at them with
//! `#[schema(value_type = …)]` / `#[param(value_type = …)]`, so the document says exactly what
//! the handlers accept and clients (and property-based tests) can generate valid values.
use licentia_domain::period::Period;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::{PartialSchema, ToSchema};

/// Text without control characters (C0, DEL, C1), as `char::is_control` sees them.
pub const NO_CONTROL_CHARS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// A product or option code: lower-case letters, digits, `-` and `_`, 1..64 characters.
pub const OPTION_CODE: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

/// A CIDR block of IPv4 addresses: `10.0.0.0/8`.
const IPV4_CIDR: &str = "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$";

/// A CIDR block of IPv6 addresses in hexadecimal groups (`2001:db8::/32`).
const IPV6_CIDR: &str = "^(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}|:((:[0-9a-fA-F]{1,4}){1,7}|:))/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$";

fn string_format(format: KnownFormat) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(format)))
}

/// A term length in months: 1, 3, 6, 12, 24 or 36.
pub struct PeriodMonths;

impl PartialSchema for PeriodMonths {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .enum_values(Some(Period::ALL.map(Period::months)))
            .description(Some("A term length in months: 1, 3, 6, 12, 24 or 36."))
            .examples([12])
            .into()
    }
}

impl ToSchema for PeriodMonths {}

/// An IPv4 or IPv6 address.
pub struct IpAddress;

impl PartialSchema for IpAddress {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(string_format(KnownFormat::Ipv4))
            .item(string_format(KnownFormat::Ipv6))
            .description(Some("An IPv4 or IPv6 address."))
            .examples(["192.0.2.10"])
            .into()
    }
}

impl ToSchema for IpAddress {}

/// An IPv4 or IPv6 address, or a CIDR block of either.
pub struct IpOrCidr;

impl PartialSchema for IpOrCidr {
    fn schema() -> RefOr<Schema> {
        let cidr = |pattern: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
        };
        AnyOfBuilder::new()
            .item(string_format(KnownFormat::Ipv4))
            .item(string_format(KnownFormat::Ipv6))
            .item(cidr(IPV4_CIDR))
            .item(cidr(IPV6_CIDR))
            .description(Some(
                "An IPv4 or IPv6 address, or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).",
            ))
            .examples(["10.0.0.0/8"])
            .into()
    }
}

impl ToSchema for IpOrCidr {}

/// A free-form string map: at most 16 keys of 1..64 characters, values of at most 512.
pub struct Metadata;

impl PartialSchema for Metadata {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(64)),
            ))
            .additional_properties(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(512)),
            ))
            .max_properties(Some(16))
            .description(Some(
                "Free-form strings: at most 16 keys of 1..64 characters, values of at most 512.",
            ))
            .examples([serde_json::json!({"customer": "c-1042"})])
            .into()
    }
}

impl ToSchema for Metadata {}

/// Quantity per option code.
pub struct OptionQuantities;

impl PartialSchema for OptionQuantities {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(OPTION_CODE)),
            ))
            .additional_properties(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(u32::MAX)),
            ))
            .description(Some(
                "Quantity per option code of the product; each within the option's `min..=max`.",
            ))
            .examples([serde_json::json!({"extra_domains": 5})])
            .into()
    }
}

impl ToSchema for OptionQuantities {}

/// The scopes an API key can grant.
const SCOPES: [&str; 6] = [
    "licenses:read",
    "licenses:write",
    "billing:read",
    "billing:write",
    "transfers:write",
    "account:admin",
];

/// A scope: `licenses:read`, `licenses:write`, `billing:read`, `billing:write`,
/// `transfers:write` or `account:admin`.
pub struct ScopeName;

impl PartialSchema for ScopeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(SCOPES))
            .description(Some("A permission an API key grants."))
            .into()
    }
}

impl ToSchema for ScopeName {}

/// An event type a webhook endpoint can subscribe to, or `*` for all of them.
pub struct WebhookEventType;

impl PartialSchema for WebhookEventType {
    fn schema() -> RefOr<Schema> {
        let mut types = vec![crate::service::webhooks::ALL_TYPES];
        types.extend_from_slice(crate::service::webhooks::EVENT_TYPES);
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(types))
            .description(Some(
                "An event type a webhook endpoint receives, or `*` for all of them.",
            ))
            .into()
    }
}

impl ToSchema for WebhookEventType {}

#[cfg(test)]
mod tests {
    use licentia_domain::auth::Scope;

    #[test]
    fn documented_scopes_are_the_domain_scopes() {
        for name in super::SCOPES {
            assert!(name.parse::<Scope>().is_ok(), "{name}");
        }
    }
}
