//! The checked-in document is the generated one, and every operation follows the house rules.
use std::collections::HashSet;

#[test]
fn checked_in_document_is_fresh() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    let generated = licentia_api::document::document_json();
    if on_disk != generated {
        let _ = std::fs::write(
            std::env::temp_dir().join("licentia-openapi.generated.json"),
            &generated,
        );
    }
    assert!(
        on_disk == generated,
        "openapi/openapi.json is stale: run `cargo run -p licentia-api -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_operation_is_documented() {
    let doc: serde_json::Value =
        serde_json::from_str(&licentia_api::document::document_json()).unwrap();
    assert_eq!(doc["info"]["license"]["identifier"], "Apache-2.0");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    let mut ids = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(
                id.contains('_') && id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{id} is not <verb>_<resource>"
            );
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{id} has no summary"
            );
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{id} has no tags"
            );
            let responses = op["responses"].as_object().unwrap();
            let protected = op.get("security").is_some();
            if protected {
                assert!(
                    responses.contains_key("401"),
                    "{id} is protected but documents no 401"
                );
            }
        }
    }
    assert!(ids.len() >= 18);
}
