//! The transfer handshake (CONTRACT §6, THREATS #12–13): offer, accept with the secret,
//! reject, cancel, every refusal, the lockout after five wrong secrets, and who may see what.
//! The refusals live in `refusals`, expiry by time in `expiry`, concurrency and rate limits
//! in `races`.
mod expiry;
mod races;
mod refusals;

use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A sender with an active license and a receiver, both partners with an owner.
pub struct Ctx {
    pub admin: String,
    pub product: Value,
    pub sender_account: String,
    pub sender: String,
    pub receiver_account: String,
    pub receiver: String,
}

pub async fn setup(app: &TestApp) -> Ctx {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (sender_account, sender) = app.partner_with_owner(&admin, "Sender").await;
    app.credit(&admin, &sender_account, 500_000).await;
    let (receiver_account, receiver) = app.partner_with_owner(&admin, "Receiver").await;
    Ctx {
        admin,
        product,
        sender_account,
        sender,
        receiver_account,
        receiver,
    }
}

/// Orders a 12-month license for the sender, paid from the balance; waits until it is active.
pub async fn active_license(app: &TestApp, ctx: &Ctx, name: &str) -> String {
    let ordered = app
        .post(
            "/v1/licenses",
            &ctx.sender,
            json!({"product_id": ctx.product["id"], "name": name, "ip": "192.0.2.30",
                   "period_months": 12, "payment": {"method": "balance"}}),
        )
        .await;
    ordered.assert_status(StatusCode::CREATED);
    let id = ordered.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&ctx.sender, &id, "active").await;
    id
}

/// Offers the license to the receiver; answers the created transfer.
pub async fn offer(app: &TestApp, ctx: &Ctx, license: &str, secret: Option<&str>) -> Value {
    let mut body = json!({"to_account_id": ctx.receiver_account});
    if let Some(secret) = secret {
        body["secret"] = json!(secret);
    }
    let created = app
        .post(
            &format!("/v1/licenses/{license}/transfers"),
            &ctx.sender,
            body,
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    created.body
}

pub fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

pub async fn accept(
    app: &TestApp,
    token: &str,
    transfer: &str,
    secret: &str,
) -> licentia_tests::Resp {
    app.post(
        &format!("/v1/transfers/{transfer}/accept"),
        token,
        json!({"secret": secret}),
    )
    .await
}

/// How many events of `event_type` the caller's account has.
pub async fn events(app: &TestApp, token: &str, event_type: &str) -> usize {
    let page = app
        .get(&format!("/v1/events?type={event_type}"), token)
        .await;
    page.assert_status(StatusCode::OK);
    page.body["items"].as_array().unwrap().len()
}

async fn handshake_moves_the_license(app: &TestApp) {
    let ctx = setup(app).await;
    let license = active_license(app, &ctx, "Web 1").await;
    // Auto-renewal on, and an unpaid renewal order: both belong to the sender.
    app.patch(
        &format!("/v1/licenses/{license}"),
        &ctx.sender,
        json!({"auto_renew_months": 1}),
    )
    .await
    .assert_status(StatusCode::OK);
    let renewal = app
        .post(
            &format!("/v1/licenses/{license}/renewals"),
            &ctx.sender,
            json!({"period_months": 1, "payment": {"method": "new_order"}}),
        )
        .await;
    renewal.assert_status(StatusCode::CREATED);
    let order = id_of(&renewal.body["order"]);
    let version = renewal.body["license"]["version"].as_i64().unwrap();

    // The dry run shows the receiver's preview and creates nothing.
    let dry = app
        .post(
            &format!("/v1/licenses/{license}/transfers?dry_run=true"),
            &ctx.sender,
            json!({"to_account_id": ctx.receiver_account}),
        )
        .await;
    dry.assert_status(StatusCode::OK);
    assert_eq!(dry.body["status"], "pending");
    assert_eq!(dry.body["to_account_id"], ctx.receiver_account.as_str());
    assert_eq!(dry.body["license"]["name"], "Web 1");
    assert!(dry.body.get("secret").is_none() && dry.body.get("id").is_none());
    let outgoing = app
        .get("/v1/transfers?direction=outgoing", &ctx.sender)
        .await;
    assert_eq!(outgoing.body["items"], json!([]));
    assert_eq!(events(app, &ctx.sender, "transfer.created").await, 0);

    let created = offer(app, &ctx, &license, None).await;
    let transfer = id_of(&created);
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32, "{secret}");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["license_id"], license.as_str());
    assert_eq!(created["from_account_id"], ctx.sender_account.as_str());
    assert_eq!(created["to_account_id"], ctx.receiver_account.as_str());
    assert!(created["expires_at"].as_str().unwrap().ends_with('Z'));
    let preview = &created["license"];
    assert_eq!(preview["name"], "Web 1");
    assert_eq!(preview["ip"], "192.0.2.30");
    assert_eq!(preview["product_code"], "panel");
    assert_eq!(preview["product_name"], "Product panel");
    assert_eq!(preview["period_months"], 12);
    assert!(preview["valid_until"].is_string());

    // The receiver's "pending import approval" list, and the transfer itself: no secret.
    let incoming = app
        .get(
            "/v1/transfers?direction=incoming&status=pending",
            &ctx.receiver,
        )
        .await;
    incoming.assert_status(StatusCode::OK);
    assert_eq!(incoming.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(incoming.body["items"][0]["id"], transfer.as_str());
    assert_eq!(incoming.body["items"][0]["license"]["name"], "Web 1");
    assert!(!incoming.text.contains(&secret) && !incoming.text.contains("secret"));
    let got = app
        .get(&format!("/v1/transfers/{transfer}"), &ctx.receiver)
        .await;
    got.assert_status(StatusCode::OK);
    assert!(!got.text.contains(&secret) && !got.text.contains("secret"));
    assert_eq!(got.body["failed_attempts"], 0);
    assert!(got.body["decided_at"].is_null());
    for list in ["direction=outgoing", "direction=incoming&status=accepted"] {
        let other = app
            .get(&format!("/v1/transfers?{list}"), &ctx.receiver)
            .await;
        assert_eq!(other.body["items"], json!([]), "{list}");
    }
    app.get(&format!("/v1/licenses/{license}"), &ctx.receiver)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    for token in [&ctx.sender, &ctx.receiver] {
        assert_eq!(events(app, token, "transfer.created").await, 1);
    }

    let accepted = accept(app, &ctx.receiver, &transfer, &secret).await;
    accepted.assert_status(StatusCode::OK);
    assert!(!accepted.text.contains(&secret));
    let moved = &accepted.body["license"];
    assert_eq!(accepted.body["transfer"]["status"], "accepted");
    assert!(accepted.body["transfer"]["decided_at"].is_string());
    assert_eq!(moved["account_id"], ctx.receiver_account.as_str());
    assert_eq!(moved["status"], "active");
    assert!(moved["auto_renew_months"].is_null());
    assert!(moved["version"].as_i64().unwrap() > version);
    assert_eq!(
        accepted.header("etag"),
        Some(format!("\"{}\"", moved["version"]).as_str())
    );

    // The license is the receiver's now; the sender's unpaid renewal is cancelled.
    let now_theirs = app
        .get(&format!("/v1/licenses/{license}"), &ctx.receiver)
        .await;
    now_theirs.assert_status(StatusCode::OK);
    assert_eq!(now_theirs.body["account_id"], ctx.receiver_account.as_str());
    app.get(&format!("/v1/licenses/{license}"), &ctx.sender)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let order = app.get(&format!("/v1/orders/{order}"), &ctx.sender).await;
    assert_eq!(order.body["status"], "cancelled", "{}", order.text);
    for token in [&ctx.sender, &ctx.receiver] {
        assert_eq!(events(app, token, "transfer.accepted").await, 1);
    }
    assert_eq!(events(app, &ctx.receiver, "license.updated").await, 1);

    // Both parties still see the decided transfer, as it was handed over.
    let outgoing = app
        .get(
            "/v1/transfers?direction=outgoing&status=accepted",
            &ctx.sender,
        )
        .await;
    assert_eq!(outgoing.body["items"][0]["id"], transfer.as_str());
    assert_eq!(outgoing.body["items"][0]["license"]["name"], "Web 1");
    // Done is done.
    accept(app, &ctx.receiver, &transfer, &secret)
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.post(
        &format!("/v1/transfers/{transfer}/reject"),
        &ctx.receiver,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.post(
        &format!("/v1/transfers/{transfer}/cancel"),
        &ctx.sender,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");

    // The new owner may offer it on, with a secret of its own choosing, back to the sender.
    let back = app
        .post(
            &format!("/v1/licenses/{license}/transfers"),
            &ctx.receiver,
            json!({"to_account_id": ctx.sender_account, "secret": "a chosen secret ✓"}),
        )
        .await;
    back.assert_status(StatusCode::CREATED);
    assert_eq!(back.body["secret"], "a chosen secret ✓");
    accept(app, &ctx.sender, &id_of(&back.body), "a chosen secret ✓")
        .await
        .assert_status(StatusCode::OK);
}

async fn reject_cancel_and_delete(app: &TestApp) {
    let ctx = setup(app).await;
    let license = active_license(app, &ctx, "Declined").await;

    let rejected = offer(app, &ctx, &license, None).await;
    let id = id_of(&rejected);
    let resp = app
        .post(
            &format!("/v1/transfers/{id}/reject"),
            &ctx.receiver,
            json!({}),
        )
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.body["status"], "rejected");
    assert!(resp.body["decided_at"].is_string());
    accept(
        app,
        &ctx.receiver,
        &id,
        rejected["secret"].as_str().unwrap(),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.post(
        &format!("/v1/transfers/{id}/cancel"),
        &ctx.sender,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");

    let cancelled = offer(app, &ctx, &license, None).await;
    let id = id_of(&cancelled);
    let resp = app
        .post(
            &format!("/v1/transfers/{id}/cancel"),
            &ctx.sender,
            json!({}),
        )
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.body["status"], "cancelled");
    accept(
        app,
        &ctx.receiver,
        &id,
        cancelled["secret"].as_str().unwrap(),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.post(
        &format!("/v1/transfers/{id}/reject"),
        &ctx.receiver,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    for token in [&ctx.sender, &ctx.receiver] {
        assert_eq!(events(app, token, "transfer.rejected").await, 1);
        assert_eq!(events(app, token, "transfer.cancelled").await, 1);
    }

    // Deleting the license cancels its pending offer.
    let pending = offer(app, &ctx, &license, None).await;
    let id = id_of(&pending);
    app.delete(&format!("/v1/licenses/{license}"), &ctx.sender)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let got = app.get(&format!("/v1/transfers/{id}"), &ctx.receiver).await;
    assert_eq!(got.body["status"], "cancelled");
    accept(app, &ctx.receiver, &id, pending["secret"].as_str().unwrap())
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    for token in [&ctx.sender, &ctx.receiver] {
        assert_eq!(events(app, token, "transfer.cancelled").await, 2);
    }
    let kept = app
        .get(&format!("/v1/licenses/{license}"), &ctx.sender)
        .await;
    assert_eq!(kept.body["status"], "deleted");
    assert_eq!(kept.body["account_id"], ctx.sender_account.as_str());
}

db_test!(handshake_moves_the_license, reject_cancel_and_delete);
