//! Shapes of the document that code generators depend on and utoipa does not write itself.
//!
//! - `servers`: the default local address first (generated clients take the first server as
//!   their default base URL), then `/`, the server that serves the document.
//! - Pages: utoipa names `Page<LicenseOut>` `Page_LicenseOut` and inlines its item schema, so
//!   clients got `PageLicenseOutItemsInner` instead of `LicenseOut`. Each page becomes
//!   `PageLicenseOut` with `items: {type: array, items: {$ref: LicenseOut}}`, and every
//!   reference to it follows the new name.
//! - Request body examples: interactive docs prefill "Try it out" from the media type's
//!   `example`, so a body whose schema has `examples` shows its first one there too.
//! - Optional request bodies: utoipa writes `Option<T>` as `oneOf: [T, null]`, which says a JSON
//!   `null` body is accepted (it is not: a body is an object or absent) and made the Python
//!   client send `null`-ish placeholders. An optional body is `T` with `required: false`.
use utoipa::Modify;
use utoipa::openapi::schema::{ArrayItems, Schema};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::{Ref, RefOr};

/// The address `licentia serve` listens on by default (`LICENTIA_BIND`).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

const SCHEMAS: &str = "#/components/schemas/";

pub struct SdkShape;

impl Modify for SdkShape {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.servers = Some(vec![
            ServerBuilder::new()
                .url(DEFAULT_SERVER)
                .description(Some(
                    "A local `licentia serve` on its default address (`LICENTIA_BIND`)",
                ))
                .build(),
            ServerBuilder::new()
                .url("/")
                .description(Some("The server that serves this document"))
                .build(),
        ]);
        optional_bodies(openapi);
        body_examples(openapi);
        let renamed = name_pages(openapi);
        if renamed.is_empty() {
            return;
        }
        for operation in crate::openapi::operations(openapi) {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                for content in response.content.values_mut() {
                    if let RefOr::T(content) = content
                        && let Some(RefOr::Ref(r)) = content.schema.as_mut()
                        && let Some((_, new)) = renamed
                            .iter()
                            .find(|(old, _)| r.ref_location == format!("{SCHEMAS}{old}"))
                    {
                        r.ref_location = format!("{SCHEMAS}{new}");
                    }
                }
            }
        }
    }
}

/// Renames each `Page_X` to `PageX` with its items referring to `X`; returns (old, new) names.
fn name_pages(openapi: &mut utoipa::openapi::OpenApi) -> Vec<(String, String)> {
    let Some(components) = openapi.components.as_mut() else {
        return Vec::new();
    };
    let pages: Vec<String> = components
        .schemas
        .keys()
        .filter(|name| name.starts_with("Page_"))
        .cloned()
        .collect();
    let mut renamed = Vec::new();
    for old in pages {
        let item = &old["Page_".len()..];
        if !components.schemas.contains_key(item) {
            continue;
        }
        let Some(mut page) = components.schemas.remove(&old) else {
            continue;
        };
        if let RefOr::T(Schema::Object(object)) = &mut page
            && let Some(RefOr::T(Schema::Array(items))) = object.properties.get_mut("items")
        {
            items.items =
                ArrayItems::RefOrSchema(Box::new(RefOr::Ref(Ref::from_schema_name(item))));
        }
        let new = format!("Page{item}");
        components.schemas.insert(new.clone(), page);
        renamed.push((old, new));
    }
    renamed
}

/// An optional request body of `oneOf: [$ref, null]` becomes the `$ref` alone.
fn optional_bodies(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::Type;
    use utoipa::openapi::{Required, schema::SchemaType};
    for operation in crate::openapi::operations_with_body(openapi) {
        let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
            continue;
        };
        if body.required == Some(Required::True) {
            continue;
        }
        for content in body.content.values_mut() {
            let RefOr::T(content) = content else { continue };
            let Some(RefOr::T(Schema::OneOf(one_of))) = content.schema.as_ref() else {
                continue;
            };
            let is_null = |s: &RefOr<Schema>| {
                matches!(s, RefOr::T(Schema::Object(o))
                    if o.schema_type == SchemaType::Type(Type::Null))
            };
            if let [only @ RefOr::Ref(_), null] | [null, only @ RefOr::Ref(_)] =
                one_of.items.as_slice()
                && is_null(null)
            {
                content.schema = Some(only.clone());
                // Said outright: some tools take a missing `required` for "required".
                body.required = Some(Required::False);
            }
        }
    }
}

/// Copies the first of `examples` of each request body's schema to the media type's `example`.
fn body_examples(openapi: &mut utoipa::openapi::OpenApi) {
    let Some(components) = openapi.components.as_ref() else {
        return;
    };
    for item in openapi.paths.paths.values_mut() {
        for operation in [item.post.as_mut(), item.put.as_mut(), item.patch.as_mut()]
            .into_iter()
            .flatten()
        {
            let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
                continue;
            };
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else { continue };
                let Some(RefOr::Ref(r)) = content.schema.as_ref() else {
                    continue;
                };
                let name = r.ref_location.trim_start_matches(SCHEMAS);
                if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get(name)
                    && let Some(example) = object.examples.first()
                    && content.example.is_none()
                {
                    content.example = Some(example.clone());
                }
            }
        }
    }
}
