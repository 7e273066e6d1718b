//! Seats (CONTRACT §11): the owner frees one machine's seat; the licensed software releases
//! its own; handing a license to another customer with a new registration key.
use licentia_tests::{TestApp, db_test};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::usage::{active, partner, validate};

async fn register(app: &TestApp, key: &str, fingerprint: &str) -> Value {
    let r = app
        .call(
            Method::POST,
            "/v1/registrations",
            None,
            Some(json!({"registration_key": key, "fingerprint": fingerprint})),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    r.body
}

async fn deregister(app: &TestApp, body: Value) -> licentia_tests::Resp {
    app.call(Method::POST, "/v1/deregistrations", None, Some(body))
        .await
}

async fn events_of(app: &TestApp, token: &str, license: &str, kind: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/v1/events?license_id={license}&type={kind}"),
            token,
        )
        .await;
    r.assert_status(StatusCode::OK);
    r.body["items"].as_array().unwrap().clone()
}

async fn fingerprints(app: &TestApp, token: &str, license: &str) -> Vec<String> {
    let r = app
        .get(&format!("/v1/licenses/{license}/registrations"), token)
        .await;
    r.assert_status(StatusCode::OK);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["fingerprint"].as_str().unwrap().to_owned())
        .collect()
}

async fn owner_frees_one_seat(app: &TestApp) {
    let (admin, owner, product) = partner(app, "seats").await;
    let license = active(app, &owner, &product, "Seated").await;
    let id = license["id"].as_str().unwrap().to_owned();
    let key = license["registration_key"].as_str().unwrap().to_owned();
    let first = register(app, &key, "m-1").await;
    register(app, &key, "m-2").await;
    register(app, &key, "m-3").await;
    // Every seat (3) is taken.
    app.call(
        Method::POST,
        "/v1/registrations",
        None,
        Some(json!({"registration_key": key, "fingerprint": "m-4"})),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "registration_limit");
    let seat = format!(
        "/v1/licenses/{id}/registrations/{}",
        first["id"].as_str().unwrap()
    );

    // Another partner, an unknown registration, a registration of another license: 404.
    let (_, stranger) = app.partner_with_owner(&admin, "Stranger").await;
    app.delete(&seat, &stranger)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(
        &format!("/v1/licenses/{id}/registrations/{}", uuid::Uuid::now_v7()),
        &owner,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let other = active(app, &owner, &product, "Other").await;
    app.delete(
        &format!(
            "/v1/licenses/{}/registrations/{}",
            other["id"].as_str().unwrap(),
            first["id"].as_str().unwrap()
        ),
        &owner,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Viewers may not (licenses:write).
    let account = app.get("/v1/me", &owner).await.body["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let viewer = app.user_token(&admin, &account, "viewer").await;
    app.delete(&seat, &viewer)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    app.delete(&seat, &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(fingerprints(app, &owner, &id).await, ["m-2", "m-3"]);
    let shown = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(shown.body["registrations_count"], 2);
    assert_eq!(
        shown.body["version"], license["version"],
        "a seat is not an edit"
    );
    // The machine no longer validates with its fingerprint, and its seat is free again.
    let answer = validate(app, json!({"registration_key": key, "fingerprint": "m-1"})).await;
    assert_eq!(answer["code"], "NOT_REGISTERED");
    register(app, &key, "m-4").await;
    app.delete(&seat, &owner)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let events = events_of(app, &owner, &id, "license.registration_deleted").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"]["kind"], "user");
    assert_eq!(events[0]["before"]["fingerprint"], "m-1");
    assert_eq!(events[0]["before"]["registration_id"], first["id"]);
    assert_eq!(events[0]["after"]["registrations_count"], 2);
    assert_eq!(events[0]["after"]["released_by"], "owner");

    // Admins too.
    let second = app
        .get(&format!("/v1/licenses/{id}/registrations"), &owner)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/v1/licenses/{id}/registrations/{second}"), &admin)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(fingerprints(app, &owner, &id).await, ["m-3", "m-4"]);
}

async fn software_releases_its_seat(app: &TestApp) {
    let (_, owner, product) = partner(app, "release").await;
    let license = active(app, &owner, &product, "Released").await;
    let id = license["id"].as_str().unwrap().to_owned();
    let key = license["registration_key"].as_str().unwrap().to_owned();
    register(app, &key, "m-1").await;
    register(app, &key, "m-2").await;

    // Unknown key or fingerprint: 404, nothing changes.
    deregister(
        app,
        json!({"registration_key": "no-such-key-000000", "fingerprint": "m-1"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    deregister(app, json!({"registration_key": key, "fingerprint": "m-9"}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Bad bodies: 422 naming the field.
    deregister(app, json!({"registration_key": key, "fingerprint": ""}))
        .await
        .assert_invalid_field("fingerprint");
    deregister(app, json!({"registration_key": key}))
        .await
        .assert_invalid_field("fingerprint");
    deregister(
        app,
        json!({"registration_key": key, "fingerprint": "m-1", "extra": 1}),
    )
    .await
    .assert_invalid_field("extra");
    assert_eq!(fingerprints(app, &owner, &id).await, ["m-1", "m-2"]);

    // The software authenticates with its key only; no Idempotency-Key replay applies.
    let release = || {
        app.client
            .post(app.url("/v1/deregistrations"))
            .header("Idempotency-Key", "release-m-1")
            .json(&json!({"registration_key": key, "fingerprint": "m-1"}))
            .send()
    };
    let done = licentia_tests::Resp::from(release().await.unwrap()).await;
    done.assert_status(StatusCode::NO_CONTENT);
    assert!(done.header("idempotent-replayed").is_none());
    let again = licentia_tests::Resp::from(release().await.unwrap()).await;
    again.assert_problem(StatusCode::NOT_FOUND, "not_found");

    assert_eq!(fingerprints(app, &owner, &id).await, ["m-2"]);
    assert_eq!(
        app.get(&format!("/v1/licenses/{id}"), &owner).await.body["registrations_count"],
        1
    );
    let events = events_of(app, &owner, &id, "license.registration_deleted").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"]["kind"], "system");
    assert_eq!(events[0]["before"]["fingerprint"], "m-1");
    assert_eq!(events[0]["after"]["released_by"], "software");
    assert_eq!(events[0]["after"]["registrations_count"], 1);

    // A deleted license has no seats to give back.
    app.delete(&format!("/v1/licenses/{id}"), &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    deregister(app, json!({"registration_key": key, "fingerprint": "m-2"}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

async fn handing_a_license_to_another_customer(app: &TestApp) {
    let (_, owner, product) = partner(app, "handover").await;
    let license = active(app, &owner, &product, "Handed over").await;
    let id = license["id"].as_str().unwrap().to_owned();
    let old_key = license["registration_key"].as_str().unwrap().to_owned();
    register(app, &old_key, "first-customer").await;
    assert_eq!(
        validate(app, json!({"registration_key": old_key})).await["code"],
        "VALID"
    );

    // A chosen key, and the first customer's machines freed in the same edit.
    let chosen = "customer-b_0123456789";
    let edited = app
        .patch(
            &format!("/v1/licenses/{id}"),
            &owner,
            json!({"registration_key": chosen, "delete_registrations": true}),
        )
        .await;
    edited.assert_status(StatusCode::OK);
    assert_eq!(edited.body["registration_key"], chosen);
    assert_eq!(edited.body["registrations_count"], 0);
    // At once: the old key is unknown, the new one validates (as active while it is applied).
    let old = validate(app, json!({"registration_key": old_key})).await;
    assert_eq!(old["code"], "NOT_FOUND");
    assert_eq!(old["license"], Value::Null);
    assert_eq!(
        validate(app, json!({"registration_key": chosen})).await["code"],
        "VALID"
    );
    app.call(
        Method::POST,
        "/v1/registrations",
        None,
        Some(json!({"registration_key": old_key, "fingerprint": "first-customer"})),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.wait_status(&owner, &id, "active").await;

    // "rotate": a fresh key, the chosen one is gone at once.
    let rotated = app
        .patch(
            &format!("/v1/licenses/{id}"),
            &owner,
            json!({"registration_key": "rotate"}),
        )
        .await;
    rotated.assert_status(StatusCode::OK);
    let fresh = rotated.body["registration_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(fresh, chosen);
    assert_eq!(
        validate(app, json!({"registration_key": chosen})).await["code"],
        "NOT_FOUND"
    );
    assert_eq!(
        validate(app, json!({"registration_key": fresh})).await["code"],
        "VALID"
    );
    app.wait_status(&owner, &id, "active").await;

    // A key in use by another license (of any account): 409, and nothing changes.
    let other = active(app, &owner, &product, "Other").await;
    let other_id = other["id"].as_str().unwrap();
    app.patch(
        &format!("/v1/licenses/{other_id}"),
        &owner,
        json!({"registration_key": fresh}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "registration_key_taken");
    let unchanged = app.get(&format!("/v1/licenses/{other_id}"), &owner).await;
    assert_eq!(
        unchanged.body["registration_key"],
        other["registration_key"]
    );
    assert_eq!(unchanged.body["status"], "active");
    // A malformed key: 422.
    app.patch(
        &format!("/v1/licenses/{other_id}"),
        &owner,
        json!({"registration_key": "short"}),
    )
    .await
    .assert_invalid_field("registration_key");
}

db_test!(
    owner_frees_one_seat,
    software_releases_its_seat,
    handing_a_license_to_another_customer
);

fn rate_limited(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        rate_limit: licentia_api::config::Switch::On,
        ..licentia_tests::test_config(url)
    }
}

/// Releasing seats is limited like validation: 600 a minute per key, then 429.
async fn deregistration_rate_limit(app: &TestApp) {
    let (_, owner, product) = partner(app, "release-rate").await;
    let license = active(app, &owner, &product, "Limited").await;
    let key = license["registration_key"].as_str().unwrap().to_owned();
    register(app, &key, "m-1").await;
    let first = deregister(app, json!({"registration_key": key, "fingerprint": "m-1"})).await;
    first.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(first.header("ratelimit-limit"), Some("600"));
    assert_eq!(first.header("ratelimit-remaining"), Some("599"));
    // The allowance refills by one every 100 ms, so a few more than 600 may pass while the
    // loop runs (as for validation).
    let started = std::time::Instant::now();
    let mut allowed: u128 = 1;
    let limited = loop {
        let r = deregister(app, json!({"registration_key": key, "fingerprint": "gone"})).await;
        if r.status != StatusCode::NOT_FOUND {
            break r;
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
    assert!(limited.header("retry-after").is_some());
    // Validation has its own allowance.
    let r = app
        .call(
            Method::POST,
            "/v1/validate",
            None,
            Some(json!({"registration_key": key})),
        )
        .await;
    r.assert_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_rate_limit_sqlite() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(rate_limited)
        .spawn()
        .await;
    deregistration_rate_limit(&app).await;
    app.finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_rate_limit_postgres() {
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .config(rate_limited)
        .start()
        .await
    else {
        return;
    };
    deregistration_rate_limit(&app).await;
    app.finish().await;
}
