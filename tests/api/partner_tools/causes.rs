//! Causes and notes: `POST …/disable` `{cause?, note?}` and `DELETE …?cause=&note=` show on the
//! license and in the events; a disable's cause goes with the suspension; bad values are 422
//! naming the field, after the 404 of an unknown license; bulk actions keep working without.
use licentia_tests::{TestApp, db_test};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{active_license, all_pages};

async fn disable_and_delete_record_why(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "causes").await;
    let (account, owner) = app.partner_with_owner(&admin, "Causes").await;
    app.credit(&admin, &account, 100_000).await;
    let id = active_license(app, &owner, &product, "192.0.2.40").await;
    let disable = format!("/v1/licenses/{id}/disable");

    // Bad input: 422 naming the field; the license is unchanged.
    app.post(&disable, &owner, json!({"cause": "fraud"}))
        .await
        .assert_invalid_field("cause");
    app.post(&disable, &owner, json!({"note": "x".repeat(501)}))
        .await
        .assert_invalid_field("note");
    app.post(&disable, &owner, json!({"reason": "manual"}))
        .await
        .assert_invalid_field("reason");
    app.post(&disable, &owner, json!({"note": "a\u{0000}b"}))
        .await
        .assert_invalid_field("note");
    let malformed = app
        .client
        .post(app.url(&disable))
        .bearer_auth(&owner)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    // 404 comes before 422.
    let unknown = uuid::Uuid::now_v7();
    app.post(
        &format!("/v1/licenses/{unknown}/disable"),
        &owner,
        json!({"cause": "fraud"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.call(
        Method::DELETE,
        &format!("/v1/licenses/{unknown}?cause=fraud"),
        Some(&owner),
        None,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.get(&format!("/v1/licenses/{id}"), &owner).await.body["status"],
        "active"
    );

    // A note of exactly 500 characters (not bytes) is fine.
    let note = "é".repeat(500);
    let r = app
        .post(
            &disable,
            &owner,
            json!({"cause": "non_payment", "note": note}),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["status"], "suspended");
    assert_eq!(r.body["suspension_reason"], "manual");
    assert_eq!(r.body["suspension_cause"], "non_payment");
    assert_eq!(r.body["suspension_note"], note);
    assert_eq!(r.body["deletion_cause"], serde_json::Value::Null);
    let got = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(got.body["suspension_cause"], "non_payment");
    let events = all_pages(
        app,
        &owner,
        &format!("/v1/events?license_id={id}&type=license.suspended"),
    )
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["after"]["suspension_cause"], "non_payment");
    assert_eq!(events[0]["after"]["suspension_note"], note);
    assert_eq!(
        events[0]["before"]["suspension_cause"],
        serde_json::Value::Null
    );

    // Enabling clears them, also once it is active again.
    let r = app
        .post(&format!("/v1/licenses/{id}/enable"), &owner, json!({}))
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["suspension_cause"], serde_json::Value::Null);
    assert_eq!(r.body["suspension_note"], serde_json::Value::Null);
    let active = app.wait_status(&owner, &id, "active").await;
    assert_eq!(active["suspension_cause"], serde_json::Value::Null);

    // No body at all, and an admin's disable with only a note.
    let r = app.call(Method::POST, &disable, Some(&owner), None).await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["suspension_cause"], serde_json::Value::Null);
    app.post(&format!("/v1/licenses/{id}/enable"), &owner, json!({}))
        .await
        .assert_status(StatusCode::OK);
    app.wait_status(&owner, &id, "active").await;
    let r = app
        .post(&disable, &admin, json!({"note": "held for review"}))
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["suspension_reason"], "admin");
    assert_eq!(r.body["suspension_cause"], serde_json::Value::Null);
    assert_eq!(r.body["suspension_note"], "held for review");

    // Delete: the query's cause and note; bad ones are 422 naming the parameter.
    let delete = |query: &str| format!("/v1/licenses/{id}{query}");
    let owner_ref = owner.as_str();
    let call =
        |path: String| async move { app.call(Method::DELETE, &path, Some(owner_ref), None).await };
    call(delete("?cause=fraud"))
        .await
        .assert_invalid_field("cause");
    call(delete(&format!("?note={}", "n".repeat(501))))
        .await
        .assert_invalid_field("note");
    call(delete("?reason=x"))
        .await
        .assert_invalid_field("reason");
    call(delete("?cause=abuse&note=spam%20relay"))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let gone = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(gone.body["status"], "deleted");
    assert_eq!(gone.body["deletion_cause"], "abuse");
    assert_eq!(gone.body["deletion_note"], "spam relay");
    // The admin's suspension note went with the suspension.
    assert_eq!(gone.body["suspension_note"], serde_json::Value::Null);
    let deleted = all_pages(
        app,
        &owner,
        &format!("/v1/events?license_id={id}&type=license.deleted"),
    )
    .await;
    assert_eq!(deleted[0]["after"]["deletion_cause"], "abuse");
    assert_eq!(deleted[0]["after"]["deletion_note"], "spam relay");

    // An empty cause and note (`?cause=&note=`) are none.
    let other = active_license(app, &owner, &product, "192.0.2.41").await;
    app.call(
        Method::DELETE,
        &format!("/v1/licenses/{other}?cause=&note="),
        Some(&owner),
        None,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    let gone = app.get(&format!("/v1/licenses/{other}"), &owner).await;
    assert_eq!(gone.body["deletion_cause"], serde_json::Value::Null);
    assert_eq!(gone.body["deletion_note"], serde_json::Value::Null);
}

/// Bulk disable and delete go on as before: no cause, no note.
async fn bulk_actions_need_no_cause(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "bulk-causes").await;
    let (account, owner) = app.partner_with_owner(&admin, "Bulk causes").await;
    app.credit(&admin, &account, 100_000).await;
    let id = active_license(app, &owner, &product, "192.0.2.42").await;
    for action in ["disable", "delete"] {
        let r = app
            .post(
                "/v1/licenses/bulk",
                &owner,
                json!({"action": action, "filter": {"id": id}}),
            )
            .await;
        r.assert_status(StatusCode::ACCEPTED);
        let op = r.body["id"].as_str().unwrap().to_owned();
        let mut done = serde_json::Value::Null;
        for _ in 0..200 {
            done = app
                .get(&format!("/v1/bulk-operations/{op}"), &owner)
                .await
                .body;
            if done["status"] == "completed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["results"][0]["result"], "ok", "{done}");
    }
    let gone = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(gone.body["status"], "deleted");
    assert_eq!(gone.body["deletion_cause"], serde_json::Value::Null);
}

/// A transfer hands over a suspended license without the sender's reasons.
async fn a_transfer_leaves_the_senders_note_behind(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "causes-moved").await;
    let (account, owner) = app.partner_with_owner(&admin, "Sender").await;
    let (receiver, receiver_owner) = app.partner_with_owner(&admin, "Receiver").await;
    app.credit(&admin, &account, 100_000).await;
    let id = active_license(app, &owner, &product, "192.0.2.43").await;
    app.post(
        &format!("/v1/licenses/{id}/disable"),
        &owner,
        json!({"cause": "customer_request", "note": "sold to Receiver"}),
    )
    .await
    .assert_status(StatusCode::OK);
    let offer = app
        .post(
            &format!("/v1/licenses/{id}/transfers"),
            &owner,
            json!({"to_account_id": receiver, "secret": "a-long-enough-secret"}),
        )
        .await;
    offer.assert_status(StatusCode::CREATED);
    let transfer = offer.body["id"].as_str().unwrap();
    let accepted = app
        .post(
            &format!("/v1/transfers/{transfer}/accept"),
            &receiver_owner,
            json!({"secret": "a-long-enough-secret"}),
        )
        .await;
    accepted.assert_status(StatusCode::OK);
    let moved = app
        .get(&format!("/v1/licenses/{id}"), &receiver_owner)
        .await;
    assert_eq!(moved.body["status"], "suspended");
    assert_eq!(moved.body["suspension_cause"], serde_json::Value::Null);
    assert_eq!(moved.body["suspension_note"], serde_json::Value::Null);
    assert!(!moved.text.contains("sold to Receiver"));
}

db_test!(
    disable_and_delete_record_why,
    bulk_actions_need_no_cause,
    a_transfer_leaves_the_senders_note_behind
);
