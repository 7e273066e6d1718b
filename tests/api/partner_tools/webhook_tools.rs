//! Webhook tools: `POST /v1/webhook-endpoints/{id}/ping` delivers a signed `webhook.ping` to
//! that endpoint only; `POST …/deliveries/{delivery_id}/redeliver` sends the same event (same
//! id, same body) again with a fresh signature. Both need what changing the endpoint needs.
use std::time::Duration;

use licentia_tests::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::receiving;
use crate::webhooks::{Receiver, order, register, verify, wait_delivery};

async fn ping_and_redeliver(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "hook-tools").await;
    let (account, owner) = app.partner_with_owner(&admin, "Hooked").await;
    let viewer = app.user_token(&admin, &account, "viewer").await;
    let operator = app.user_token(&admin, &account, "operator").await;
    let (_, stranger) = app.partner_with_owner(&admin, "Stranger").await;
    let receiver = Receiver::start(&[]).await;
    let (endpoint, secret) = register(
        app,
        &owner,
        &receiver.url("/hooks"),
        json!(["license.ordered"]),
    )
    .await;
    // Another endpoint of the account that takes everything: pings are not for it.
    let (_, all_secret) = register(app, &owner, &receiver.url("/all"), json!(["*"])).await;
    let ping = format!("/v1/webhook-endpoints/{endpoint}/ping");

    // Who may: the permission that changing the endpoint needs.
    for token in [&viewer, &operator] {
        app.post(&ping, token, json!({}))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    app.post(&ping, &stranger, json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post(
        &format!("/v1/webhook-endpoints/{}/ping", uuid::Uuid::now_v7()),
        &owner,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let r = app.post(&ping, &owner, json!({})).await;
    r.assert_status(StatusCode::ACCEPTED);
    assert_eq!(r.body["event_type"], "webhook.ping");
    assert_eq!(r.body["endpoint_id"], endpoint.as_str());
    let hits = receiver.wait_for("/hooks", 1).await;
    let body = verify(&secret, &hits[0]);
    assert_eq!(body["type"], "webhook.ping");
    assert_eq!(body["id"], r.body["event_id"]);
    assert_eq!(body["data"]["after"]["endpoint_id"], endpoint.as_str());
    wait_delivery(app, &owner, &endpoint, |d| d["status"] == "delivered").await;
    // The event is in the account's log.
    let events = app.get("/v1/events?type=webhook.ping", &owner).await;
    assert_eq!(events.body["items"][0]["id"], r.body["event_id"]);

    // A real event, then its redelivery.
    order(app, &owner, &product).await;
    let hits = receiver.wait_for("/hooks", 2).await;
    let first = hits[1].clone();
    let delivered = wait_delivery(app, &owner, &endpoint, |d| {
        d["event_type"] == "license.ordered" && d["status"] == "delivered"
    })
    .await;
    let delivery = delivered["id"].as_str().unwrap().to_owned();
    let redeliver = format!("/v1/webhook-endpoints/{endpoint}/deliveries/{delivery}/redeliver");
    for token in [&viewer, &operator] {
        app.post(&redeliver, token, json!({}))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    app.post(&redeliver, &stranger, json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post(
        &format!(
            "/v1/webhook-endpoints/{endpoint}/deliveries/{}/redeliver",
            uuid::Uuid::now_v7()
        ),
        &owner,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // A new second: the new signature's timestamp differs.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let r = app.post(&redeliver, &owner, json!({})).await;
    r.assert_status(StatusCode::ACCEPTED);
    assert_ne!(r.body["id"], delivered["id"], "a new delivery");
    assert_eq!(r.body["event_id"], delivered["event_id"]);
    assert_eq!(r.body["status"], "pending");
    let hits = receiver.wait_for("/hooks", 3).await;
    let again = &hits[2];
    verify(&secret, again);
    assert_eq!(again.body, first.body, "the same body");
    assert_eq!(
        again.headers["licentia-event-id"],
        first.headers["licentia-event-id"]
    );
    assert_ne!(
        again.headers["licentia-signature"], first.headers["licentia-signature"],
        "a fresh signature"
    );
    let log = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            &owner,
        )
        .await;
    let for_event: Vec<&Value> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event_id"] == delivered["event_id"])
        .collect();
    assert_eq!(for_event.len(), 2, "{}", log.text);

    // The `*` endpoint got the order, never a ping.
    receiver.wait_for("/all", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for hit in receiver.hits("/all") {
        let body = verify(&all_secret, &hit);
        assert_ne!(body["type"], "webhook.ping");
    }

    // A disabled endpoint is not pinged nor redelivered to.
    app.patch(
        &format!("/v1/webhook-endpoints/{endpoint}"),
        &owner,
        json!({"enabled": false}),
    )
    .await
    .assert_status(StatusCode::OK);
    app.post(&ping, &owner, json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    app.post(&redeliver, &owner, json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    // The provider's administrators may ping any endpoint.
    app.patch(
        &format!("/v1/webhook-endpoints/{endpoint}"),
        &owner,
        json!({"enabled": true}),
    )
    .await
    .assert_status(StatusCode::OK);
    app.post(&ping, &admin, json!({}))
        .await
        .assert_status(StatusCode::ACCEPTED);
    receiver.wait_for("/hooks", 4).await;
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_redeliver_sqlite() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(receiving)
        .spawn()
        .await;
    ping_and_redeliver(&app).await;
    app.finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_redeliver_postgres() {
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .config(receiving)
        .start()
        .await
    else {
        return;
    };
    ping_and_redeliver(&app).await;
    app.finish().await;
}
