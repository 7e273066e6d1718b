//! Validation messages for people: serde and garde describe a bad value in Rust's words
//! (`invalid type: string "12", expected i64`, `expected internally tagged enum Payment`,
//! `length is lower than 12`); an API user reads JSON's (`must be an integer, not the string
//! "12"`). Messages that are already plain pass through unchanged.

/// The JSON (and API) name of what serde expected.
fn expected(rust: &str) -> String {
    let rust = rust.trim();
    let plain = match rust {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => Some("an integer"),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => Some("a non-negative integer"),
        "f32" | "f64" => Some("a number"),
        "a string" | "a borrowed string" | "string" => Some("a string"),
        "a boolean" | "bool" => Some("true or false"),
        "a sequence" | "a tuple" => Some("an array"),
        "a map" | "unit" => Some("an object"),
        "a character" | "char" => Some("a single character"),
        _ => None,
    };
    if let Some(plain) = plain {
        return plain.to_owned();
    }
    if rust == "internally tagged enum Payment" {
        return "an object with `method`: `balance`, `new_order` or `existing_order`".to_owned();
    }
    if rust.starts_with("struct ")
        || rust.starts_with("internally tagged enum ")
        || rust.starts_with("map ")
    {
        return "an object".to_owned();
    }
    if rust.starts_with("enum ") || rust.starts_with("variant identifier") {
        return "one of the documented values".to_owned();
    }
    if rust.contains("UUID") || rust.contains("Uuid") {
        return "a UUID".to_owned();
    }
    rust.to_owned()
}

/// The JSON name of what was sent, from serde's `Unexpected` (`string "12"`, `integer `5``).
fn got(rust: &str) -> String {
    let rust = rust.trim();
    let strip = |prefix: &str| {
        rust.strip_prefix(prefix)
            .map(|v| v.trim().trim_matches('`').to_owned())
    };
    if let Some(text) = rust.strip_prefix("string ") {
        return format!("the string {}", text.trim());
    }
    for prefix in ["integer", "floating point", "boolean", "char"] {
        if let Some(value) = strip(prefix) {
            return value;
        }
    }
    match rust {
        "null" | "unit" => "null".to_owned(),
        "map" => "an object".to_owned(),
        "sequence" => "an array".to_owned(),
        other => other.to_owned(),
    }
}

/// Rephrases one serde or garde message; anything it does not recognise is returned as is.
pub fn humanize(message: &str) -> String {
    let message = message.trim();
    // serde: `invalid type: <got>, expected <expected>` / `invalid value: …`.
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((sent, wanted)) = rest.rsplit_once(", expected ")
        {
            return format!("must be {}, not {}", expected(wanted), got(sent));
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some((value, wanted)) = rest.split_once(", expected ")
    {
        let wanted = wanted.trim_start_matches("one of ");
        return format!("{value} is not one of {wanted}");
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, wanted) = rest.split_once(", ").unwrap_or((rest, ""));
        return match wanted.strip_prefix("expected one of ") {
            Some(fields) => format!("{field} is not a field here; the fields are {fields}"),
            None => match wanted.strip_prefix("expected ") {
                Some(one) => format!("{field} is not a field here; the field is {one}"),
                None => format!("{field} is not a field here"),
            },
        };
    }
    if message.starts_with("missing field ") {
        return "is required".to_owned();
    }
    if let Some(rest) = message.strip_prefix("duplicate field ") {
        return format!("{rest} appears twice");
    }
    if message.starts_with("UUID parsing failed")
        || message.starts_with("invalid length: expected length 32")
    {
        return "must be a UUID".to_owned();
    }
    // garde.
    if let Some(n) = message.strip_prefix("length is lower than ") {
        return format!("must be at least {n} characters long");
    }
    if let Some(n) = message.strip_prefix("length is greater than ") {
        return format!("must be at most {n} characters long");
    }
    if let Some(n) = message.strip_prefix("lower than ") {
        return format!("must be at least {n}");
    }
    if let Some(n) = message.strip_prefix("greater than ") {
        return format!("must be at most {n}");
    }
    if let Some(reason) = message.strip_prefix("not a valid email: ") {
        return format!("must be an email address ({reason})");
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::humanize;

    #[test]
    fn rust_words_become_json_words() {
        for (serde, human) in [
            (
                "invalid type: string \"12\", expected i64",
                "must be an integer, not the string \"12\"",
            ),
            (
                "invalid type: integer `5`, expected a string",
                "must be a string, not 5",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "must be a non-negative integer, not -1",
            ),
            (
                "invalid type: floating point `1.5`, expected i64",
                "must be an integer, not 1.5",
            ),
            (
                "invalid type: string \"balance\", expected internally tagged enum Payment",
                "must be an object with `method`: `balance`, `new_order` or `existing_order`, \
                 not the string \"balance\"",
            ),
            (
                "invalid type: null, expected struct DisableLicense",
                "must be an object, not null",
            ),
            (
                "invalid type: sequence, expected a map",
                "must be an object, not an array",
            ),
            (
                "unknown variant `cash`, expected one of `balance`, `existing_order`, `new_order`",
                "`cash` is not one of `balance`, `existing_order`, `new_order`",
            ),
            (
                "unknown field `foo`, expected one of `a`, `b`",
                "`foo` is not a field here; the fields are `a`, `b`",
            ),
            (
                "unknown field `foo`, there are no fields",
                "`foo` is not a field here",
            ),
            ("missing field `method`", "is required"),
            (
                "length is lower than 12",
                "must be at least 12 characters long",
            ),
            (
                "greater than 1000000000000",
                "must be at most 1000000000000",
            ),
            ("must be 1..200 characters", "must be 1..200 characters"),
        ] {
            assert_eq!(humanize(serde), human, "{serde}");
        }
    }
}
