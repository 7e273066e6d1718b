//! The OpenAPI document is SDK-grade: what code generators need from it, checked on the
//! generated document. Each check returns the problems it finds; `document_passes_the_lint`
//! requires none, and one test per check proves that it fails on a document broken that way.
//!
//! - `servers` is declared (generated clients take their default base URL from it);
//! - a page refers to its item schema (`PageLicenseOut.items.items` is `$ref: LicenseOut`),
//!   never an inlined copy (clients got `PageLicenseOutItemsInner`);
//! - a closed set is an enum: a string whose description lists its values has `enum`;
//! - an operation has one success schema (a 200 preview next to a 201 made clients type the
//!   created license with the preview's schema);
//! - a union has named variants (`$ref`s) and, when they are objects, a discriminator whose
//!   mapping names each of them;
//! - every example validates against its own schema (JSON Schema 2020-12, formats checked).
use serde_json::{Value, json};

const SCHEMAS: &str = "#/components/schemas/";

/// Strings whose descriptions list words in backquotes that are not the field's values.
const OPEN_VOCABULARY: &[&str] = &[
    // "an absolute `http` or `https` URL": the scheme, not the value.
    "CreateWebhookEndpoint.url",
    "UpdateWebhookEndpoint.url",
    // `ok` or a problem `code`, with examples: the codes grow with the API (§9 lists them).
    "BulkItemResult.result",
];

fn document() -> Value {
    serde_json::from_str(&licentia_api::document::document_json()).unwrap()
}

/// Every schema of the document with a readable location: components, parameters, request and
/// response bodies, and everything nested in them.
fn schemas(doc: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        nested(name, schema, &mut out);
    }
    for (name, response) in doc["components"]["responses"]
        .as_object()
        .into_iter()
        .flatten()
    {
        for (media, content) in response["content"].as_object().into_iter().flatten() {
            nested(
                &format!("response {name} {media}"),
                &content["schema"],
                &mut out,
            );
        }
    }
    for (id, op) in operations(doc) {
        for p in op["parameters"].as_array().into_iter().flatten() {
            let mut schema = p["schema"].clone();
            // A parameter's description is its schema's, for the closed-set check.
            if let (Some(d), Some(s)) = (p.get("description"), schema.as_object_mut()) {
                s.entry("description").or_insert_with(|| d.clone());
            }
            nested(
                &format!("{id} parameter {}", p["name"].as_str().unwrap_or("?")),
                &schema,
                &mut out,
            );
        }
        for (media, content) in op["requestBody"]["content"]
            .as_object()
            .into_iter()
            .flatten()
        {
            nested(&format!("{id} body {media}"), &content["schema"], &mut out);
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            for (media, content) in response["content"].as_object().into_iter().flatten() {
                nested(
                    &format!("{id} {status} {media}"),
                    &content["schema"],
                    &mut out,
                );
            }
        }
    }
    out
}

fn nested(at: &str, schema: &Value, out: &mut Vec<(String, Value)>) {
    if !schema.is_object() {
        return;
    }
    out.push((at.to_owned(), schema.clone()));
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        nested(&format!("{at}.{name}"), property, out);
    }
    for key in ["items", "additionalProperties", "propertyNames"] {
        nested(&format!("{at}[{key}]"), &schema[key], out);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for (i, part) in schema[key].as_array().into_iter().flatten().enumerate() {
            nested(&format!("{at}[{key} {i}]"), part, out);
        }
    }
}

/// (operationId, operation) for every operation.
fn operations(doc: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            out.push((op["operationId"].as_str().unwrap().to_owned(), op.clone()));
        }
    }
    out
}

fn missing_servers(doc: &Value) -> Vec<String> {
    let urls: Vec<&str> = doc["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["url"].as_str())
        .collect();
    let mut problems = Vec::new();
    if !urls.first().is_some_and(|u| u.starts_with("http")) {
        problems.push(format!(
            "servers should start with an absolute URL (the clients' default): {urls:?}"
        ));
    }
    if !urls.contains(&"/") {
        problems.push(format!(
            "servers should offer `/` (the serving host): {urls:?}"
        ));
    }
    problems
}

fn inlined_page_items(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let is_page = schema["properties"].get("next_cursor").is_some()
            && schema["properties"]["items"]["type"] == "array";
        if !is_page {
            continue;
        }
        if name.contains('_') {
            problems.push(format!("page {name}: generated clients mangle `_` names"));
        }
        let item = &schema["properties"]["items"]["items"];
        if !item["$ref"]
            .as_str()
            .is_some_and(|r| r.starts_with(SCHEMAS))
        {
            problems.push(format!("page {name}: its items are inlined, not a $ref"));
        }
    }
    problems
}

/// Backquoted values joined by `,`, `or` or `|` (`` `a`, `b` or `c` ``), at least two.
fn listed_values(description: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut rest = description;
    let mut run: Vec<String> = Vec::new();
    while let Some(start) = rest.find('`') {
        let between = &rest[..start];
        let Some(len) = rest[start + 1..].find('`') else {
            break;
        };
        let word = &rest[start + 1..start + 1 + len];
        let joined = {
            // Text since the previous value, without a parenthesised gloss.
            let text = match (between.find('('), between.rfind(')')) {
                (Some(a), Some(b)) if a < b => format!("{}{}", &between[..a], &between[b + 1..]),
                _ => between.to_owned(),
            };
            let text = text.trim();
            matches!(text, "," | "or" | ", or" | "|" | "/")
        };
        let is_value = word.chars().any(|c| c.is_ascii_alphabetic())
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:*-".contains(c));
        if is_value && (joined || run.is_empty()) {
            run.push(word.to_owned());
        } else {
            if run.len() >= 2 {
                values.append(&mut run);
            }
            run.clear();
            if is_value {
                run.push(word.to_owned());
            }
        }
        rest = &rest[start + 1 + len + 1..];
    }
    if run.len() >= 2 {
        values.append(&mut run);
    }
    values
}

fn untyped_closed_sets(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (at, schema) in schemas(doc) {
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let typed = schema.get("enum").is_some()
            || schema.get("const").is_some()
            || schema.get("format").is_some()
            // A list filter (`status=active,suspended`) is a pattern over the closed set.
            || (at.contains(" parameter ") && schema.get("pattern").is_some());
        if !types.contains(&"string") || typed || OPEN_VOCABULARY.contains(&at.as_str()) {
            continue;
        }
        let description = schema["description"].as_str().unwrap_or_default();
        let values = listed_values(description);
        if !values.is_empty() {
            problems.push(format!(
                "{at}: lists {values:?} in its description but has no enum"
            ));
        }
    }
    problems
}

fn several_success_schemas(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, op) in operations(doc) {
        let mut seen: Vec<(String, Value)> = Vec::new();
        for (status, response) in op["responses"].as_object().unwrap() {
            if !status.starts_with('2') {
                continue;
            }
            if let Some(schema) = response["content"]["application/json"].get("schema")
                && !seen.iter().any(|(_, s)| s == schema)
            {
                seen.push((status.clone(), schema.clone()));
            }
        }
        if seen.len() > 1 {
            let statuses: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
            problems.push(format!(
                "{id}: {statuses:?} answer different schemas; one success schema per operation"
            ));
        }
    }
    problems
}

fn unnamed_union_variants(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (at, schema) in schemas(doc) {
        for key in ["oneOf", "anyOf"] {
            let Some(parts) = schema[key].as_array() else {
                continue;
            };
            let refs: Vec<&str> = parts.iter().filter_map(|p| p["$ref"].as_str()).collect();
            let nulls = parts.iter().filter(|p| p["type"] == "null").count();
            if refs.len() + nulls != parts.len() {
                problems.push(format!("{at}: {key} has inline variants; name each one"));
                continue;
            }
            if refs.len() < 2 {
                continue;
            }
            let mapping = &schema["discriminator"]["mapping"];
            for r in refs {
                if !mapping
                    .as_object()
                    .is_some_and(|m| m.values().any(|v| v == r))
                {
                    problems.push(format!(
                        "{at}: {r} is not in a discriminator mapping of the union"
                    ));
                }
            }
        }
    }
    problems
}

/// Validates `instance` against `schema`, resolving `#/components/...` in `doc`.
fn violations(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    let mut root = schema.clone();
    if let Some(object) = root.as_object_mut() {
        object.insert("components".to_owned(), doc["components"].clone());
    }
    let validator = match jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
    {
        Ok(v) => v,
        Err(e) => return vec![format!("the schema does not compile: {e}")],
    };
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at `{}`", e, e.instance_path()))
        .collect()
}

fn failing_examples(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |at: &str, schema: &Value, example: &Value| {
        for v in violations(doc, schema, example) {
            problems.push(format!("{at}: example {example} fails its schema: {v}"));
        }
    };
    for (at, schema) in schemas(doc) {
        if let Some(example) = schema.get("example") {
            check(&at, &schema, example);
        }
        for example in schema["examples"].as_array().into_iter().flatten() {
            check(&at, &schema, example);
        }
    }
    for (id, op) in operations(doc) {
        let bodies = op["requestBody"]["content"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(m, c)| (format!("{id} body {m}"), c.clone()));
        let responses = op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(status, r)| {
                r["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(m, c)| (format!("{status} {m}"), c.clone()))
                    .collect::<Vec<_>>()
            })
            .map(|(at, c)| (format!("{id} {at}"), c));
        for (at, content) in bodies.chain(responses) {
            if let Some(example) = content.get("example") {
                check(&at, &content["schema"], example);
            }
            for example in content["examples"].as_object().into_iter().flatten() {
                check(&at, &content["schema"], &example.1["value"]);
            }
        }
    }
    problems
}

fn lint(doc: &Value) -> Vec<String> {
    [
        missing_servers(doc),
        inlined_page_items(doc),
        untyped_closed_sets(doc),
        several_success_schemas(doc),
        unnamed_union_variants(doc),
        failing_examples(doc),
    ]
    .concat()
}

#[test]
fn document_passes_the_lint() {
    let problems = lint(&document());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn lint_fails_without_servers() {
    let mut doc = document();
    doc.as_object_mut().unwrap().remove("servers");
    assert_eq!(missing_servers(&doc).len(), 2);
}

#[test]
fn lint_fails_on_an_inlined_page_item() {
    let mut doc = document();
    let license = doc["components"]["schemas"]["LicenseOut"].clone();
    doc["components"]["schemas"]["PageLicenseOut"]["properties"]["items"]["items"] = license;
    let problems = inlined_page_items(&doc);
    assert!(
        problems.iter().any(|p| p.contains("PageLicenseOut")),
        "{problems:?}"
    );
}

#[test]
fn lint_fails_on_an_untyped_closed_set() {
    let mut doc = document();
    doc["components"]["schemas"]["LicenseOut"]["properties"]["status"] = json!({
        "type": "string",
        "description": "`ordered`, `in_progress`, `active`, `suspended` or `deleted`."
    });
    let problems = untyped_closed_sets(&doc);
    assert!(
        problems.iter().any(|p| p.starts_with("LicenseOut.status")),
        "{problems:?}"
    );
    assert_eq!(
        listed_values("`current` (signs now) or `retired` (still verifies)."),
        ["current", "retired"]
    );
    assert!(listed_values("`ok`, or the problem `code` of the call").is_empty());
}

#[test]
fn lint_fails_on_two_success_schemas() {
    let mut doc = document();
    doc["paths"]["/v1/licenses"]["post"]["responses"]["200"] = json!({
        "description": "Dry run",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DryRunOut"}}}
    });
    let problems = several_success_schemas(&doc);
    assert!(
        problems.iter().any(|p| p.starts_with("create_license")),
        "{problems:?}"
    );
}

#[test]
fn lint_fails_on_an_unnamed_union() {
    let mut doc = document();
    let payment = &mut doc["components"]["schemas"]["PaymentIn"];
    payment.as_object_mut().unwrap().remove("discriminator");
    assert!(!unnamed_union_variants(&doc).is_empty());
    doc["components"]["schemas"]["PaymentIn"]["oneOf"][0] = json!({"type": "object"});
    assert!(
        unnamed_union_variants(&doc)
            .iter()
            .any(|p| p.contains("inline variants"))
    );
}

#[test]
fn lint_fails_on_an_example_that_fails_its_schema() {
    let mut doc = document();
    let schema = &mut doc["components"]["schemas"]["CreateLicense"];
    let mut example = schema["examples"][0].clone();
    example["period_months"] = json!(7);
    schema["examples"] = json!([example]);
    let problems = failing_examples(&doc);
    assert!(
        problems.iter().any(|p| p.starts_with("CreateLicense")),
        "{problems:?}"
    );
}

/// The order example is what a partner can paste: no admin-only field, a real-looking name,
/// a payment every partner may use.
#[test]
fn order_example_is_a_partner_order() {
    let doc = document();
    let example = &doc["components"]["schemas"]["CreateLicense"]["examples"][0];
    assert!(example.get("account_id").is_none(), "{example}");
    assert!(
        example["name"]
            .as_str()
            .is_some_and(|n| n.len() > 3 && n.chars().any(char::is_alphabetic)),
        "{example}"
    );
    assert_eq!(example["payment"]["method"], "balance");
}

/// The address patterns accept what the server parses (including IPv4-mapped IPv6) and
/// refuse what it refuses.
#[test]
fn address_patterns_match_the_parser() {
    let doc = document();
    let schema = json!({"$ref": "#/components/schemas/IpAddress"});
    for ok in [
        "192.0.2.10",
        "0.0.0.0",
        "255.255.255.255",
        "2001:db8::10",
        "::1",
        "::",
        "fe80::1:2",
        "::ffff:192.0.2.1",
        "2001:db8:0:0:0:0:2:1",
        "1:2:3:4:5:6:7::",
    ] {
        assert!(ok.parse::<std::net::IpAddr>().is_ok(), "{ok}");
        assert!(violations(&doc, &schema, &json!(ok)).is_empty(), "{ok}");
    }
    for bad in [
        "192.0.2",
        "192.0.2.256",
        "01.2.3.4",
        "2001:db8::g",
        "1::2::3",
        "host",
        "",
    ] {
        assert!(bad.parse::<std::net::IpAddr>().is_err(), "{bad}");
        assert!(!violations(&doc, &schema, &json!(bad)).is_empty(), "{bad}");
    }
    let cidr = json!({"$ref": "#/components/schemas/IpOrCidr"});
    for ok in ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "::1/128"] {
        assert!(violations(&doc, &cidr, &json!(ok)).is_empty(), "{ok}");
    }
    for bad in ["10.0.0.0/33", "2001:db8::/129", "10.0.0.0/"] {
        assert!(!violations(&doc, &cidr, &json!(bad)).is_empty(), "{bad}");
    }
}
