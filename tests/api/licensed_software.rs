//! Licensed software (CONTRACT §7): registrations, signed validation, signing keys and their
//! rotation, offline license files, and the rate limits of validation.
//!
//! Signatures are checked with an implementation independent of the service's: the
//! `ed25519-compact` crate over a canonical form computed here, so a bug shared by the
//! service's signer and its domain verifier cannot go unnoticed.
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use licentia_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod dead_connections;
mod files;
mod registrations;
mod validation;

/// A licensed software's call: no credentials.
pub async fn public_post(app: &TestApp, path: &str, body: Value) -> licentia_tests::Resp {
    app.call(Method::POST, path, None, Some(body)).await
}

pub async fn validate(app: &TestApp, body: Value) -> licentia_tests::Resp {
    let resp = public_post(app, "/v1/validate", body).await;
    resp.assert_status(StatusCode::OK);
    resp
}

/// A partner owning one active license of a product with 3 seats:
/// `(admin, owner, license)`, the license as `GET /v1/licenses/{id}` shows it.
pub async fn active_license(app: &TestApp, product_code: &str) -> (String, String, Value) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, product_code).await;
    let (account, owner) = app.partner_with_owner(&admin, "Licensee").await;
    app.credit(&admin, &account, 100_000).await;
    let ordered = app
        .post(
            "/v1/licenses",
            &owner,
            json!({"product_id": product["id"], "name": "Server", "ip": "192.0.2.10",
                   "period_months": 12, "options": {"extra_domains": 2},
                   "payment": {"method": "balance"}}),
        )
        .await;
    ordered.assert_status(StatusCode::CREATED);
    let id = ordered.body["license"]["id"].as_str().unwrap().to_owned();
    let license = app.wait_status(&owner, &id, "active").await;
    (admin, owner, license)
}

pub fn key_of(license: &Value) -> String {
    license["registration_key"].as_str().unwrap().to_owned()
}

/// RFC 8785 for the JSON the service emits (integers, strings, booleans, null, arrays,
/// objects), written independently of the service's implementation.
pub fn jcs(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| {
                let a: Vec<u16> = a.0.encode_utf16().collect();
                let b: Vec<u16> = b.0.encode_utf16().collect();
                a.cmp(&b)
            });
            let inner: Vec<String> = members
                .into_iter()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), jcs(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(jcs).collect();
            format!("[{}]", inner.join(","))
        }
        Value::Number(n) => {
            assert!(n.is_i64() || n.is_u64(), "the service emits integers only");
            n.to_string()
        }
        other => serde_json::to_string(other).unwrap(),
    }
}

/// Public keys by id, from `GET /v1/signing-keys`.
pub async fn public_keys(app: &TestApp) -> BTreeMap<String, [u8; 32]> {
    let resp = app.call(Method::GET, "/v1/signing-keys", None, None).await;
    resp.assert_status(StatusCode::OK);
    resp.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert_eq!(k["algorithm"], "Ed25519");
            let raw = STANDARD.decode(k["public_key"].as_str().unwrap()).unwrap();
            (
                k["key_id"].as_str().unwrap().to_owned(),
                <[u8; 32]>::try_from(raw).unwrap(),
            )
        })
        .collect()
}

/// Verifies a signed answer with `ed25519-compact` over this file's own canonical form.
pub fn verify_independently(answer: &Value, keys: &BTreeMap<String, [u8; 32]>) -> bool {
    let key = keys
        .get(answer["key_id"].as_str().unwrap())
        .expect("the answer names a listed key");
    let signature = STANDARD
        .decode(answer["signature"].as_str().unwrap())
        .unwrap();
    assert_eq!(signature.len(), 64);
    let mut unsigned = answer.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    let public = ed25519_compact::PublicKey::from_slice(key).unwrap();
    let signature = ed25519_compact::Signature::from_slice(&signature).unwrap();
    public.verify(jcs(&unsigned), &signature).is_ok()
}
