//! `POST /v1/registrations` and the owner's view of a license's machines.
use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{active_license, key_of, public_post};

async fn register(app: &TestApp, key: &str, fingerprint: &str) -> licentia_tests::Resp {
    public_post(
        app,
        "/v1/registrations",
        json!({"registration_key": key, "fingerprint": fingerprint}),
    )
    .await
}

async fn count_of(app: &TestApp, owner: &str, id: &str) -> Value {
    app.get(&format!("/v1/licenses/{id}"), owner).await.body["registrations_count"].clone()
}

async fn seats_idempotency_and_delete_all(app: &TestApp) {
    let (admin, owner, license) = active_license(app, "reg-seats").await;
    let key = key_of(&license);
    let id = license["id"].as_str().unwrap().to_owned();

    let first = public_post(
        app,
        "/v1/registrations",
        json!({"registration_key": key, "fingerprint": "m-1", "hostname": "web1.example",
               "ip": "::ffff:192.0.2.77"}),
    )
    .await;
    first.assert_status(StatusCode::CREATED);
    assert_eq!(first.body["fingerprint"], "m-1");
    assert_eq!(first.body["hostname"], "web1.example");
    assert_eq!(first.body["ip"], "192.0.2.77", "canonical form");
    assert!(first.body["created_at"].as_str().unwrap().ends_with('Z'));
    // With its usage (CONTRACT §11): seen now, from the address it reported.
    assert_eq!(first.body["last_seen_at"], first.body["created_at"]);
    assert_eq!(first.body["last_ip"], "192.0.2.77");
    assert_eq!(first.body.as_object().unwrap().len(), 7, "{}", first.text);

    // The same fingerprint again: 200 with the same registration, no new seat; only its
    // usage moved (seen again, from this connection's address).
    let again = register(app, &key, "m-1").await;
    again.assert_status(StatusCode::OK);
    let mut same = again.body.clone();
    for usage in ["last_seen_at", "last_ip"] {
        same[usage] = first.body[usage].clone();
    }
    assert_eq!(same, first.body);
    let seen = |r: &licentia_tests::Resp| {
        time::OffsetDateTime::parse(
            r.body["last_seen_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert!(seen(&again) >= seen(&first));
    assert_eq!(again.body["last_ip"], "127.0.0.1");
    assert_eq!(count_of(app, &owner, &id).await, 1);

    register(app, &key, "m-2")
        .await
        .assert_status(StatusCode::CREATED);
    register(app, &key, "m-3")
        .await
        .assert_status(StatusCode::CREATED);
    let full = register(app, &key, "m-4").await;
    full.assert_problem(StatusCode::CONFLICT, "registration_limit");
    // A registered machine still gets its seat back when the license is full.
    register(app, &key, "m-2")
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(count_of(app, &owner, &id).await, 3);

    let listed = app
        .get(&format!("/v1/licenses/{id}/registrations?limit=2"), &owner)
        .await;
    listed.assert_status(StatusCode::OK);
    let fingerprints: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(fingerprints, ["m-1", "m-2"]);
    let cursor = listed.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(
            &format!("/v1/licenses/{id}/registrations?limit=2&cursor={cursor}"),
            &owner,
        )
        .await;
    assert_eq!(rest.body["items"][0]["fingerprint"], "m-3");
    assert_eq!(rest.body["next_cursor"], Value::Null);

    // Another partner sees nothing; a viewer reads but cannot delete.
    let (_, stranger) = app.partner_with_owner(&admin, "Stranger").await;
    app.get(&format!("/v1/licenses/{id}/registrations"), &stranger)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&format!("/v1/licenses/{id}/registrations"), &stranger)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let account = license["account_id"].as_str().unwrap();
    let viewer = app.user_token(&admin, account, "viewer").await;
    app.get(&format!("/v1/licenses/{id}/registrations"), &viewer)
        .await
        .assert_status(StatusCode::OK);
    app.delete(&format!("/v1/licenses/{id}/registrations"), &viewer)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    let deleted = app
        .delete(&format!("/v1/licenses/{id}/registrations"), &owner)
        .await;
    deleted.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(count_of(app, &owner, &id).await, 0);
    let empty = app
        .get(&format!("/v1/licenses/{id}/registrations"), &owner)
        .await;
    assert_eq!(empty.body["items"], json!([]));
    let events = app
        .get(
            &format!("/v1/events?license_id={id}&type=license.registrations_deleted"),
            &owner,
        )
        .await;
    assert_eq!(
        events.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        events.text
    );

    // The seats are free again; PATCH delete_registrations frees them too.
    register(app, &key, "m-4")
        .await
        .assert_status(StatusCode::CREATED);
    register(app, &key, "m-5")
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(count_of(app, &owner, &id).await, 2);
    app.patch(
        &format!("/v1/licenses/{id}"),
        &owner,
        json!({"delete_registrations": true}),
    )
    .await
    .assert_status(StatusCode::OK);
    assert_eq!(count_of(app, &owner, &id).await, 0);
    let after_patch = app
        .get(&format!("/v1/licenses/{id}/registrations"), &owner)
        .await;
    assert_eq!(after_patch.body["items"], json!([]));
    register(app, &key, "m-4")
        .await
        .assert_status(StatusCode::CREATED);
}

async fn unknown_keys_and_bad_bodies(app: &TestApp) {
    let (_, owner, license) = active_license(app, "reg-bad").await;
    register(app, "no-such-registration-key", "m-1")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let key = key_of(&license);
    public_post(app, "/v1/registrations", json!({"registration_key": key}))
        .await
        .assert_invalid_field("fingerprint");
    public_post(
        app,
        "/v1/registrations",
        json!({"registration_key": key, "fingerprint": "m", "ip": "nope"}),
    )
    .await
    .assert_invalid_field("ip");
    public_post(
        app,
        "/v1/registrations",
        json!({"registration_key": key, "fingerprint": "m", "hostname": "h".repeat(254)}),
    )
    .await
    .assert_invalid_field("hostname");
    public_post(
        app,
        "/v1/registrations",
        json!({"registration_key": key, "fingerprint": "bad\u{7}bell"}),
    )
    .await
    .assert_invalid_field("fingerprint");
    // A deleted license's key is unknown.
    let id = license["id"].as_str().unwrap();
    app.delete(&format!("/v1/licenses/{id}"), &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    register(app, &key, "m-1")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// Twelve machines register at once for three seats: exactly three get one.
async fn concurrent_registrations_respect_the_limit(app: &TestApp) {
    let (_, owner, license) = active_license(app, "reg-race").await;
    let key = key_of(&license);
    let attempts = (0..12).map(|i| {
        let key = key.clone();
        async move { register(app, &key, &format!("racer-{i}")).await.status }
    });
    let statuses = futures_join_all(attempts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (3, 9), "{statuses:?}");
    let id = license["id"].as_str().unwrap();
    assert_eq!(count_of(app, &owner, id).await, 3);
}

/// Runs the futures concurrently on the test's runtime.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, out) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

db_test!(
    seats_idempotency_and_delete_all,
    unknown_keys_and_bad_bodies,
    concurrent_registrations_respect_the_limit
);
