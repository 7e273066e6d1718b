//! `POST /v1/validate`: every code, independent signature checks, key rotation across
//! processes, and the per-key rate limit.
use licentia_tests::{TestApp, db_test};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{active_license, key_of, public_keys, public_post, validate, verify_independently};

async fn every_code_in_order(app: &TestApp) {
    let (admin, owner, license) = active_license(app, "val-codes").await;
    let key = key_of(&license);
    let id = license["id"].as_str().unwrap().to_owned();
    let keys = public_keys(app).await;
    let check = |answer: &Value, code: &str| {
        assert_eq!(answer["code"], code, "{answer}");
        assert_eq!(answer["valid"], code == "VALID");
        assert!(verify_independently(answer, &keys), "signature of {answer}");
    };

    let unknown = validate(app, json!({"registration_key": "no-such-key-0000000"})).await;
    check(&unknown.body, "NOT_FOUND");
    assert_eq!(unknown.body["license"], Value::Null);
    assert!(unknown.body["issued_at"].as_str().unwrap().ends_with('Z'));

    let valid = validate(app, json!({"registration_key": key})).await;
    check(&valid.body, "VALID");
    assert_eq!(valid.header("cache-control"), Some("no-store"));
    // Rate limits are off in this test app: no RateLimit headers.
    assert!(valid.header("ratelimit-limit").is_none());
    assert_eq!(
        valid.body["license"],
        json!({"id": id, "product_code": "val-codes", "valid_until": license["valid_until"],
               "options": {"extra_domains": 2}})
    );
    let keys_of_answer: Vec<&String> = valid.body.as_object().unwrap().keys().collect();
    assert_eq!(keys_of_answer.len(), 6, "{}", valid.text);

    // IP: compared in canonical form; no ip, no check.
    let mapped = validate(
        app,
        json!({"registration_key": key, "ip": "::ffff:192.0.2.10"}),
    )
    .await;
    check(&mapped.body, "VALID");
    let other_ip = validate(app, json!({"registration_key": key, "ip": "192.0.2.11"})).await;
    check(&other_ip.body, "IP_MISMATCH");
    // An IP mismatch comes before an unregistered fingerprint.
    let both = validate(
        app,
        json!({"registration_key": key, "ip": "2001:db8::1", "fingerprint": "unknown-machine"}),
    )
    .await;
    check(&both.body, "IP_MISMATCH");
    let unregistered = validate(
        app,
        json!({"registration_key": key, "fingerprint": "machine-a"}),
    )
    .await;
    check(&unregistered.body, "NOT_REGISTERED");
    public_post(
        app,
        "/v1/registrations",
        json!({"registration_key": key, "fingerprint": "machine-a"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let registered = validate(
        app,
        json!({"registration_key": key, "fingerprint": "machine-a", "ip": "192.0.2.10"}),
    )
    .await;
    check(&registered.body, "VALID");

    // A modification in progress validates as the state it came from (active).
    app.patch(
        &format!("/v1/licenses/{id}"),
        &owner,
        json!({"ip": "192.0.2.20"}),
    )
    .await
    .assert_status(StatusCode::OK);
    let moving = validate(app, json!({"registration_key": key})).await;
    check(&moving.body, "VALID");
    app.wait_status(&owner, &id, "active").await;

    app.post(&format!("/v1/licenses/{id}/disable"), &owner, json!({}))
        .await
        .assert_status(StatusCode::OK);
    let suspended = validate(
        app,
        json!({"registration_key": key, "ip": "10.9.9.9", "fingerprint": "nope"}),
    )
    .await;
    check(&suspended.body, "SUSPENDED");
    assert_eq!(suspended.body["license"]["id"], id.as_str());

    // Past valid_until (the sweeper has not run): expired, ahead of the suspension.
    app.patch(
        &format!("/v1/licenses/{id}"),
        &admin,
        json!({"valid_until": "2020-01-01T00:00:00Z"}),
    )
    .await
    .assert_status(StatusCode::OK);
    let expired = validate(app, json!({"registration_key": key})).await;
    check(&expired.body, "EXPIRED");
    assert_eq!(
        expired.body["license"]["valid_until"],
        "2020-01-01T00:00:00Z"
    );

    app.delete(&format!("/v1/licenses/{id}"), &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let deleted = validate(app, json!({"registration_key": key})).await;
    check(&deleted.body, "NOT_FOUND");
    assert_eq!(deleted.body["license"], Value::Null);

    // An order not paid yet: never activated.
    let product = app.get("/v1/products", &owner).await.body["items"][0].clone();
    let unpaid = app
        .post(
            "/v1/licenses",
            &owner,
            json!({"product_id": product["id"], "name": "Later", "ip": "192.0.2.30",
                   "period_months": 1, "payment": {"method": "new_order", "pay_now": false}}),
        )
        .await;
    unpaid.assert_status(StatusCode::CREATED);
    let not_active = validate(
        app,
        json!({"registration_key": key_of(&unpaid.body["license"])}),
    )
    .await;
    check(&not_active.body, "NOT_ACTIVE");
    assert_eq!(not_active.body["license"]["valid_until"], Value::Null);
}

async fn bad_requests_are_problems(app: &TestApp) {
    let no_key = public_post(app, "/v1/validate", json!({})).await;
    no_key.assert_invalid_field("registration_key");
    let empty = public_post(app, "/v1/validate", json!({"registration_key": ""})).await;
    empty.assert_invalid_field("registration_key");
    let bad_ip = public_post(
        app,
        "/v1/validate",
        json!({"registration_key": "k".repeat(20), "ip": "300.1.1.1"}),
    )
    .await;
    bad_ip.assert_invalid_field("ip");
    let extra = public_post(
        app,
        "/v1/validate",
        json!({"registration_key": "k".repeat(20), "license_id": "x"}),
    )
    .await;
    extra.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let long = public_post(
        app,
        "/v1/validate",
        json!({"registration_key": "k".repeat(20), "fingerprint": "f".repeat(257)}),
    )
    .await;
    long.assert_invalid_field("fingerprint");
}

/// The signature covers every member but itself: any change breaks it, for the independent
/// verifier and for the domain crate's (the one a client library would reuse).
async fn signatures_verify_and_detect_tampering(app: &TestApp) {
    let (_, _, license) = active_license(app, "val-sig").await;
    let keys = public_keys(app).await;
    let answer = validate(app, json!({"registration_key": key_of(&license)}))
        .await
        .body;
    assert!(verify_independently(&answer, &keys));
    licentia_domain::signing::verify_signed(&answer, &keys).unwrap();
    // The domain's canonical form is the independent one.
    let mut unsigned = answer.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    assert_eq!(
        licentia_domain::signing::canonical_json(&unsigned).unwrap(),
        super::jcs(&unsigned)
    );
    let key = keys[answer["key_id"].as_str().unwrap()];
    licentia_domain::signing::verify(
        &key,
        &serde_json::to_string(&unsigned).unwrap(),
        answer["signature"].as_str().unwrap(),
    )
    .unwrap();

    for (path, value) in [
        ("/valid", json!(false)),
        ("/code", json!("EXPIRED")),
        ("/license/valid_until", json!("2099-01-01T00:00:00Z")),
        ("/license/options/extra_domains", json!(10)),
        ("/issued_at", json!("2030-01-01T00:00:00Z")),
    ] {
        let mut tampered = answer.clone();
        *tampered.pointer_mut(path).unwrap() = value;
        assert!(!verify_independently(&tampered, &keys), "{path} changed");
        assert!(licentia_domain::signing::verify_signed(&tampered, &keys).is_err());
    }

    let current = app.call(Method::GET, "/v1/signing-key", None, None).await;
    current.assert_status(StatusCode::OK);
    assert_eq!(current.body["algorithm"], "Ed25519");
    assert_eq!(current.body["key_id"], answer["key_id"]);
    assert_eq!(
        current.body.as_object().unwrap().len(),
        3,
        "{}",
        current.text
    );
}

/// Rotation: a new current key signs from now on, in this process at once and in another
/// process of the service soon after; the retired key stays listed and verifiable.
async fn rotation_keeps_old_keys_verifiable(app: &TestApp) {
    let (admin, owner, license) = active_license(app, "val-rot").await;
    let key = key_of(&license);
    let before = validate(app, json!({"registration_key": key})).await.body;
    let old_id = before["key_id"].as_str().unwrap().to_owned();
    // A process starting now finds the key and keeps it (the insert of its own candidate
    // does nothing), as when several processes start at once on an empty database.
    let (_, candidate) =
        licentia_api::keyring::generate(app.state.signing.encryption_key()).unwrap();
    let stored =
        licentia_persistence::repo::signing_keys::insert_if_none(app.state.db.conn(), candidate)
            .await
            .unwrap();
    assert!(!stored);
    let second = app.spawn_second_instance().await;
    let via_second = validate(&second, json!({"registration_key": key}))
        .await
        .body;
    assert_eq!(
        via_second["key_id"],
        old_id.as_str(),
        "one key for the service"
    );

    // Only provider admins rotate.
    app.post("/v1/signing-keys/rotate", &owner, json!({}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.call(Method::POST, "/v1/signing-keys/rotate", None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let rotated = app.post("/v1/signing-keys/rotate", &admin, json!({})).await;
    rotated.assert_status(StatusCode::OK);
    let new_id = rotated.body["key_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    assert_eq!(rotated.body["status"], "current");

    let listed = app.call(Method::GET, "/v1/signing-keys", None, None).await;
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["key_id"], new_id.as_str());
    assert_eq!(items[0]["status"], "current");
    assert_eq!(items[1]["key_id"], old_id.as_str());
    assert_eq!(items[1]["status"], "retired");
    assert!(items[1]["retired_at"].is_string());
    assert_eq!(listed.body["next_cursor"], Value::Null);
    let paged = app
        .call(Method::GET, "/v1/signing-keys?limit=1", None, None)
        .await;
    assert_eq!(paged.body["items"][0]["key_id"], new_id.as_str());
    let cursor = paged.body["next_cursor"].as_str().unwrap();
    let rest = app
        .call(
            Method::GET,
            &format!("/v1/signing-keys?limit=1&cursor={cursor}"),
            None,
            None,
        )
        .await;
    assert_eq!(rest.body["items"][0]["key_id"], old_id.as_str());
    assert_eq!(rest.body["next_cursor"], Value::Null);

    let keys = public_keys(app).await;
    assert!(
        verify_independently(&before, &keys),
        "old answers still verify"
    );
    let after = validate(app, json!({"registration_key": key})).await.body;
    assert_eq!(after["key_id"], new_id.as_str());
    assert!(verify_independently(&after, &keys));
    let current = app.call(Method::GET, "/v1/signing-key", None, None).await;
    assert_eq!(current.body["key_id"], new_id.as_str());

    // The other process learns of the rotation (here: when asked for the current key).
    let from_second = second
        .call(Method::GET, "/v1/signing-key", None, None)
        .await;
    assert_eq!(from_second.body["key_id"], new_id.as_str());
    let mut switched = false;
    for _ in 0..100 {
        let answer = validate(&second, json!({"registration_key": key}))
            .await
            .body;
        assert!(verify_independently(&answer, &keys));
        if answer["key_id"] == new_id.as_str() {
            switched = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        switched,
        "the second process still signs with the retired key"
    );
    second.finish().await;
}

db_test!(
    every_code_in_order,
    bad_requests_are_problems,
    signatures_verify_and_detect_tampering,
    rotation_keeps_old_keys_verifiable
);

fn rate_limited(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        rate_limit: licentia_api::config::Switch::On,
        ..licentia_tests::test_config(url)
    }
}

/// 600 validations a minute per key; the next answers 429 with `Retry-After` and the
/// `RateLimit-*` headers, while another key is unaffected.
async fn validate_rate_limit(app: &TestApp) {
    let (_, _, license) = active_license(app, "val-rate").await;
    let key = key_of(&license);
    let body = json!({"registration_key": key});
    let started = std::time::Instant::now();
    let first = validate(app, body.clone()).await;
    assert_eq!(first.header("ratelimit-limit"), Some("600"));
    assert_eq!(first.header("ratelimit-remaining"), Some("599"));
    // The allowance refills by one every 100 ms, so a few more than 600 may pass while
    // the loop runs; the first refusal comes within the minute's allowance plus those.
    let mut allowed: u128 = 1;
    let limited = loop {
        let resp = public_post(app, "/v1/validate", body.clone()).await;
        if resp.status != StatusCode::OK {
            break resp;
        }
        allowed += 1;
        assert!(allowed <= 2_000, "never limited");
    };
    let refills = started.elapsed().as_millis() / 100 + 1;
    assert!(
        (600..=600 + refills).contains(&allowed),
        "{allowed} allowed with {refills} refills"
    );
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(limited.header("ratelimit-limit"), Some("600"));
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    assert_eq!(
        limited.header("ratelimit-reset"),
        Some(retry.to_string().as_str())
    );
    // Unknown keys count on their own.
    let other = validate(app, json!({"registration_key": "another-key-000000"})).await;
    assert_eq!(other.body["code"], "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_rate_limit_sqlite() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(rate_limited)
        .spawn()
        .await;
    validate_rate_limit(&app).await;
    app.finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_rate_limit_postgres() {
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .config(rate_limited)
        .start()
        .await
    else {
        return;
    };
    validate_rate_limit(&app).await;
    app.finish().await;
}
