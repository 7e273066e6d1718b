//! Schemas of wire values whose rules their Rust type cannot state (a `String` that must be an
//! IP address, an `i64` that must be a billing period). DTO fields point at them with
//! `#[schema(value_type = …)]` / `#[param(value_type = …)]`, so the document says exactly what
//! the handlers accept and clients (and property-based tests) can generate valid values.
use licentia_domain::auth::{AccountKind as AccountKindValue, Role as RoleValue, Scope};
use licentia_domain::license::{
    LicenseStatus as LicenseStatusValue, SuspensionReason as SuspensionReasonValue,
};
use licentia_domain::period::Period;
use licentia_domain::transfer::TransferStatus as TransferStatusValue;
use utoipa::openapi::RefOr;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// Text without control characters (C0, DEL, C1), as `char::is_control` sees them.
pub const NO_CONTROL_CHARS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// A product or option code: lower-case letters, digits, `-` and `_`, 1..64 characters.
pub const OPTION_CODE: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

/// One IPv4 octet, without leading zeros.
macro_rules! octet {
    () => {
        "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    };
}

/// A dotted IPv4 address.
macro_rules! ipv4 {
    () => {
        concat!("(", octet!(), "\\.){3}", octet!())
    };
}

/// An IPv6 address in hexadecimal groups, `::` compressed or not, or with an IPv4 tail.
macro_rules! ipv6 {
    () => {
        concat!(
            "([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}",
            "|([0-9a-fA-F]{1,4}:){1,7}:",
            "|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}",
            "|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}",
            "|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}",
            "|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}",
            "|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}",
            "|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}",
            "|:((:[0-9a-fA-F]{1,4}){1,7}|:)",
            "|::([fF]{4}(:0{1,4})?:)?",
            ipv4!(),
            "|([0-9a-fA-F]{1,4}:){1,4}:",
            ipv4!()
        )
    };
}

/// An IPv4 or IPv6 address, as the whole string.
pub const IP_ADDRESS: &str = concat!("^(", ipv4!(), "|", ipv6!(), ")$");

/// An IPv4 or IPv6 address with an optional prefix length, as the whole string.
pub const IP_OR_CIDR: &str = concat!(
    "^((",
    ipv4!(),
    ")(/(3[0-2]|[12]?[0-9]))?|(",
    ipv6!(),
    ")(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$"
);

/// A term length in months: 1, 3, 6, 12, 24 or 36.
pub struct PeriodMonths;

impl PartialSchema for PeriodMonths {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .enum_values(Some(Period::ALL.map(Period::months)))
            .description(Some("A term length in months: 1, 3, 6, 12, 24 or 36."))
            .examples([12])
            // Names for generated enums (`M12`, not `VALUE_12` or `Variant12`).
            .extensions(Some(
                ExtensionsBuilder::new()
                    .add(
                        "x-enum-varnames",
                        Period::ALL.map(|p| format!("M{}", p.months())).to_vec(),
                    )
                    .build(),
            ))
            .into()
    }
}

impl ToSchema for PeriodMonths {}

/// An IPv4 or IPv6 address.
pub struct IpAddress;

impl PartialSchema for IpAddress {
    fn schema() -> RefOr<Schema> {
        // One string schema, not `anyOf` two formats: generated clients turn a union of two
        // strings into an empty object. The pattern accepts what the server parses (dotted
        // IPv4 without leading zeros; IPv6 in hexadecimal groups, with an embedded IPv4 tail).
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(IP_ADDRESS))
            .max_length(Some(45))
            .description(Some(
                "An IPv4 address (`192.0.2.10`) or an IPv6 address (`2001:db8::10`); answers \
                 show its canonical text (an IPv4-mapped IPv6 address is its IPv4 address).",
            ))
            .examples(["192.0.2.10"])
            .into()
    }
}

impl ToSchema for IpAddress {}

/// An IPv4 or IPv6 address, or a CIDR block of either.
pub struct IpOrCidr;

impl PartialSchema for IpOrCidr {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(IP_OR_CIDR))
            .max_length(Some(49))
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

/// A scope: `licenses:read`, `licenses:write`, `billing:read`, `billing:write`,
/// `transfers:write` or `account:admin`.
pub struct ScopeName;

impl PartialSchema for ScopeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Scope::ALL.map(Scope::as_str)))
            .description(Some("A permission an API key grants."))
            .into()
    }
}

impl ToSchema for ScopeName {}

/// An event type a webhook endpoint can subscribe to, or `*` for all of them.
pub struct WebhookEventType;

impl PartialSchema for WebhookEventType {
    fn schema() -> RefOr<Schema> {
        let mut types = vec![licentia_persistence::repo::webhooks::ALL_TYPES];
        types.extend(licentia_domain::event::EventType::delivered().map(|t| t.as_str()));
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

/// A string schema listing every value of a closed set.
pub(crate) fn string_enum<'a>(
    values: impl IntoIterator<Item = &'a str>,
    description: &str,
) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .into()
}

/// Declares schema types for closed sets of strings: `Name => "description", values;`.
/// DTO fields point at them with `#[schema(value_type = …)]`; the values come from the Rust
/// enum where there is one, so the document cannot list a value the code does not know.
macro_rules! string_enums {
    ($( $(#[$meta:meta])* $name:ident => $description:literal, $values:expr; )+) => {
        $(
            $(#[$meta])*
            pub struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    string_enum($values, $description)
                }
            }

            impl ToSchema for $name {}
        )+
    };
}

string_enums! {
    /// Where a license is in its life.
    LicenseStatus => "Where a license is in its life: `ordered` (not paid), `in_progress` (being \
        provisioned), `active`, `suspended` or `deleted`.",
        LicenseStatusValue::VARIANTS.iter().map(|v| v.as_str());
    /// Why a license is suspended.
    SuspensionReason => "Why a license is suspended: `manual` (by its partner), `expired` (its \
        term ended) or `admin` (by the provider).",
        SuspensionReasonValue::VARIANTS.iter().map(|v| v.as_str());
    /// Where a transfer offer stands.
    TransferStatus => "Where a transfer offer stands.",
        TransferStatusValue::VARIANTS.iter().map(|v| v.as_str());
    /// Which side of a transfer the caller is on.
    TransferDirection => "`incoming`: offers to the caller's account; `outgoing`: offers from it.",
        ["incoming", "outgoing"];
    /// A user's role.
    Role => "A user's role: `admin` (provider staff), `owner`, `operator` or `viewer`.",
        RoleValue::VARIANTS.iter().map(|v| v.as_str());
    /// Whether an account is the provider or a partner.
    AccountKind => "`provider` (the company running Licentia) or `partner`.",
        AccountKindValue::VARIANTS.iter().map(|v| v.as_str());
    /// Why a license was disabled or deleted (CONTRACT §12).
    LicenseCause => "Why a license was disabled or deleted: `customer_request`, `non_payment`, \
        `abuse` or `other`.",
        licentia_domain::license_record::Cause::VARIANTS.iter().map(|v| v.as_str());
    /// Where an order stands.
    OrderStatus => "Where an order stands.",
        licentia_domain::order::OrderStatus::VARIANTS.iter().map(|v| v.as_str());
    /// Where an order item stands.
    OrderItemStatus => "`pending` until its order is paid, then `fulfilled`; `cancelled` when \
        its order was cancelled or its license changed (stale).",
        licentia_domain::order::ItemStatus::VARIANTS.iter().map(|v| v.as_str());
    /// What an order item pays for.
    OrderItemKind => "What an order item pays for.",
        licentia_domain::order::ItemKind::VARIANTS.iter().map(|v| v.as_str());
    /// What moved an account's balance.
    LedgerEntryKind => "What moved the balance: `credit` (by the provider), `charge` or `refund`.",
        licentia_domain::account::LedgerKind::VARIANTS.iter().map(|v| v.as_str());
    /// Where a bulk operation stands.
    BulkStatus => "Where a bulk operation stands.",
        licentia_domain::bulk::BulkStatus::VARIANTS.iter().map(|v| v.as_str());
    /// Whether a signing key signs now.
    SigningKeyStatus => "`current` (signs now) or `retired` (still verifies what it signed).",
        ["current", "retired"];
    /// Where a webhook delivery stands.
    DeliveryStatus => "`pending` (retries remain), `delivered` (a 2xx answer) or `failed` (given up).",
        licentia_domain::event::DeliveryStatus::VARIANTS.iter().map(|v| v.as_str());
    /// The type of an event.
    EventType => "The type of an event (the webhook event types, plus `account.credited` and \
        `signing_key.rotated`, which are recorded but not delivered).",
        licentia_domain::event::EventType::VARIANTS.iter().map(|t| t.as_str());
}

string_enums! {
    /// What a validation answers.
    ValidationCode => "The first that applies, in this order: `NOT_FOUND`, `NOT_ACTIVE`, `EXPIRED`, \
        `SUSPENDED`, `IP_MISMATCH`, `NOT_REGISTERED`, `VALID`.",
        licentia_domain::validation::ValidationCode::ALL.iter().map(|c| c.as_str());
    /// The signature algorithm.
    SigningAlgorithm => "The signature algorithm: `Ed25519`.", ["Ed25519"];
    /// Whether the service can serve.
    ReadinessStatus => "`ok` when every configured database answers; `degraded` when one of them \
        does not (the other serves).",
        ["ok", "degraded"];
    /// The liveness probe's answer.
    HealthStatus => "Always `ok` when the probe passes.", ["ok"];
}

/// One message of a Server-Sent Events stream, as a client reads it: `id` (the event id),
/// `event` (its type) and `data` (the event as `GET /v1/events` shows it, as one line of JSON);
/// the first message carries `retry` (milliseconds) instead. Comment lines are not messages.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EventStreamMessage {
    /// The event's id: resume after it with `Last-Event-ID`.
    pub id: Option<String>,
    /// The event's type.
    #[schema(value_type = Option<EventType>)]
    pub event: Option<String>,
    /// The event, one JSON object.
    pub data: Option<String>,
    /// How long to wait before reconnecting, in milliseconds.
    pub retry: Option<u64>,
}
