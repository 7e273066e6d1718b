//! States in the document a rule every handler enforces (CONTRACT §9): text anywhere in a
//! request — body strings and map keys, query and header parameters — holds no control
//! character (C0, DEL, C1), else 422. utoipa knows nothing of it, so property-based tests
//! (schemathesis) sent such text as valid and clients were not told.
//!
//! Each free-text string a request can carry gets [`NO_CONTROL_CHARS`] as its `pattern`. A
//! string with a `format` (but `password`), an `enum` or a `pattern` of its own is left alone (formats and
//! enums hold no control character, and the patterns of this API are classes of allowed
//! characters), except a pattern that is one negated class (`[^…]`: "contains a character
//! other than these"), which is merged with the rule into one pattern.
use utoipa::Modify;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, KnownFormat, Schema, SchemaFormat, SchemaType, Type,
};

use super::types::NO_CONTROL_CHARS;

/// The control characters, as the body of a regular-expression class.
const CONTROLS: &str = "\\u0000-\\u001F\\u007F-\\u009F";

pub struct PlainText;

fn is_string(schema_type: &SchemaType) -> bool {
    match schema_type {
        SchemaType::Type(t) => *t == Type::String,
        SchemaType::Array(types) => types.contains(&Type::String),
        SchemaType::AnyValue => false,
    }
}

/// Formats that say how text is used, not what it may hold (`password`).
fn is_free_text(format: &SchemaFormat) -> bool {
    matches!(format, SchemaFormat::KnownFormat(KnownFormat::Password))
        || matches!(format, SchemaFormat::Custom(name) if name == "password")
}

/// The pattern a free-text string gets, given the one it has.
fn with_rule(pattern: Option<&str>) -> Option<String> {
    match pattern {
        None => Some(NO_CONTROL_CHARS.to_owned()),
        // "Some character other than these": some character other than these and the
        // controls, among characters that are no controls.
        Some(p)
            if p.starts_with("[^")
                && p.ends_with(']')
                && !p[2..p.len() - 1].contains(['[', ']']) =>
        {
            let others = &p[2..p.len() - 1];
            Some(format!(
                "^[^{CONTROLS}]*[^{others}{CONTROLS}][^{CONTROLS}]*$"
            ))
        }
        Some(_) => None,
    }
}

fn visit(schema: &mut RefOr<Schema>, refs: &mut Vec<String>) {
    match schema {
        RefOr::Ref(r) => {
            if let Some(name) = r.ref_location.strip_prefix("#/components/schemas/") {
                refs.push(name.to_owned());
            }
        }
        RefOr::T(schema) => visit_schema(schema, refs),
    }
}

fn visit_schema(schema: &mut Schema, refs: &mut Vec<String>) {
    match schema {
        Schema::Object(object) => {
            if is_string(&object.schema_type)
                && object.format.as_ref().is_none_or(is_free_text)
                && object.enum_values.is_none()
                && let Some(pattern) = with_rule(object.pattern.as_deref())
            {
                object.pattern = Some(pattern);
            }
            for property in object.properties.values_mut() {
                visit(property, refs);
            }
            if let Some(AdditionalProperties::RefOr(extra)) =
                object.additional_properties.as_deref_mut()
            {
                visit(extra, refs);
            }
            if let Some(names) = object.property_names.as_deref_mut() {
                visit_schema(names, refs);
            }
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                visit(items, refs);
            }
        }
        Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(|i| visit(i, refs)),
        Schema::AnyOf(any_of) => any_of.items.iter_mut().for_each(|i| visit(i, refs)),
        Schema::AllOf(all_of) => all_of.items.iter_mut().for_each(|i| visit(i, refs)),
        _ => {}
    }
}

impl Modify for PlainText {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut refs = Vec::new();
        for operation in crate::openapi::operations(openapi) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter
                    && let Some(schema) = parameter.schema.as_mut()
                {
                    visit(schema, &mut refs);
                }
            }
            let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
                continue;
            };
            for content in body.content.values_mut() {
                if let RefOr::T(content) = content
                    && let Some(schema) = content.schema.as_mut()
                {
                    visit(schema, &mut refs);
                }
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let mut done = std::collections::BTreeSet::new();
        while let Some(name) = refs.pop() {
            if done.insert(name.clone())
                && let Some(schema) = components.schemas.get_mut(&name)
            {
                visit(schema, &mut refs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_rule;

    #[test]
    fn a_negated_class_is_merged_with_the_rule() {
        assert_eq!(
            with_rule(Some("[^ a]")).as_deref(),
            Some(
                "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^ a\\u0000-\\u001F\\u007F-\\u009F]\
                 [^\\u0000-\\u001F\\u007F-\\u009F]*$"
            )
        );
        assert_eq!(with_rule(Some("^[a-z]+$")), None);
        assert!(with_rule(None).is_some());
    }
}
