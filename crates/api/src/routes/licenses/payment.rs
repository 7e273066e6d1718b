//! The schema of [`PaymentIn`]: a `oneOf` of named variants with a discriminator mapping on
//! `method`, so that generated clients get `BalancePayment`, `NewOrderPayment` and
//! `ExistingOrderPayment` (not `PaymentInOneOf1`) and pick the variant by `method`.
//!
//! Written by hand because utoipa derives a discriminator only for untagged enums of
//! references, while the Rust type stays internally tagged (serde reads `method`). A test
//! below deserializes each variant's example into [`PaymentIn`], so the two cannot drift.
//!
//! In each variant `method` is optional with its value as the default, and the union requires
//! it: a client that builds a variant sends it (the default), a client whose union writes the
//! tag itself (Rust's `#[serde(tag = "method")]`) does not write it twice, and the document
//! still says that a payment without `method` is invalid.
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{Discriminator, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::PaymentIn;

/// (schema name, `method` value, description).
const VARIANTS: [(&str, &str, &str); 3] = [
    (
        "BalancePayment",
        "balance",
        "Charge the account now; 402 when balance + credit limit do not cover it.",
    ),
    (
        "NewOrderPayment",
        "new_order",
        "Create a new unpaid order (an invoice); with `pay_now`, pay it from the balance at once.",
    ),
    (
        "ExistingOrderPayment",
        "existing_order",
        "Add the item to an unpaid order of the account; with `pay_now` (needs `billing:write`), \
         pay the whole order from the balance at once.",
    ),
];

fn method(value: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([value]))
        .default(Some(value.into()))
        .description(Some(
            "The payment method; the union requires it (it tells the variants apart).",
        ))
}

fn pay_now(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .default(Some(false.into()))
        .description(Some(description))
}

fn variant(value: &str, description: &str) -> Schema {
    let object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .property("method", method(value));
    match value {
        "new_order" => object
            .property("pay_now", pay_now("Pay the order from the balance now."))
            .examples([serde_json::json!({"method": "new_order", "pay_now": false})]),
        "existing_order" => object
            .property(
                "order_id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Uuid,
                    )))
                    .description(Some("An unpaid order of the account.")),
            )
            .required("order_id")
            .property(
                "pay_now",
                pay_now("Pay the whole order from the balance now."),
            )
            .examples([serde_json::json!({
                "method": "existing_order",
                "order_id": "019a0c5e-7d4b-7c1e-9f3a-2b8d6e4f1a90",
                "pay_now": false
            })]),
        _ => object.examples([serde_json::json!({"method": "balance"})]),
    }
    .build()
    .into()
}

impl PartialSchema for PaymentIn {
    fn schema() -> RefOr<Schema> {
        let mut discriminator = Discriminator::new("method");
        let mut one_of = OneOfBuilder::new().description(Some(
            "How an order or renewal is paid, told apart by `method`.",
        ));
        for (name, value, _) in VARIANTS {
            let location = format!("#/components/schemas/{name}");
            discriminator.mapping.insert(value.to_owned(), location);
            one_of = one_of.item(Ref::from_schema_name(name));
        }
        // JSON Schema's `required` beside `oneOf`: utoipa's `OneOf` has no field for it, and
        // its extensions are written as they are.
        let mut required = Extensions::default();
        required.insert("required".to_owned(), serde_json::json!(["method"]));
        one_of
            .discriminator(Some(discriminator))
            .extensions(Some(required))
            .examples([serde_json::json!({"method": "balance"})])
            .into()
    }
}

impl ToSchema for PaymentIn {
    fn name() -> std::borrow::Cow<'static, str> {
        "PaymentIn".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        for (name, value, description) in VARIANTS {
            schemas.push((name.to_owned(), RefOr::T(variant(value, description))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_example_is_a_payment() {
        for (name, value, description) in VARIANTS {
            let Schema::Object(object) = variant(value, description) else {
                panic!("{name} is an object");
            };
            for example in &object.examples {
                let payment: licentia_app::Payment = serde_json::from_value(example.clone())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let debug = format!("{payment:?}").to_lowercase().replace('_', "");
                assert!(
                    debug.starts_with(&value.replace('_', "")),
                    "{name} → {debug}"
                );
            }
        }
    }
}
