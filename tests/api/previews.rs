//! Previews (CONTRACT §4): `POST /v1/licenses/preview`, `…/renewals/preview`,
//! `…/configuration/preview` and `…/transfers/preview` take the real operation's body, make
//! every check it makes (scope, existence, state, funds) and answer what it would do, changing
//! nothing; what they announce is what the real operation then does.
use licentia_tests::{Resp, TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn order(product: &Value, payment: Value) -> Value {
    json!({"product_id": product["id"], "name": "shop.example.com panel", "ip": "192.0.2.10",
           "period_months": 12, "options": {"extra_domains": 2}, "payment": payment})
}

/// 12 months of the test product with two extra domains.
const ORDER_PRICE: i64 = 12_000;

async fn balance(app: &TestApp, token: &str, account: &str) -> i64 {
    let resp = app.get(&format!("/v1/accounts/{account}"), token).await;
    resp.assert_status(StatusCode::OK);
    resp.body["balance"].as_i64().unwrap()
}

async fn count(app: &TestApp, token: &str, path: &str) -> usize {
    let resp = app.get(path, token).await;
    resp.assert_status(StatusCode::OK);
    resp.body["items"].as_array().unwrap().len()
}

async fn post_with_key(app: &TestApp, path: &str, token: &str, key: &str, body: &Value) -> Resp {
    let req = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body);
    Resp::from(req.send().await.unwrap()).await
}

/// An active license paid from the balance: (account, owner token, product, license id).
async fn active_license(app: &TestApp, admin: &str) -> (String, String, Value, String) {
    let product = app.create_product(admin, "panel").await;
    let (account, owner) = app.partner_with_owner(admin, "Buyer").await;
    app.credit(admin, &account, 100_000).await;
    let ordered = app
        .post(
            "/v1/licenses",
            &owner,
            order(&product, json!({"method": "balance"})),
        )
        .await;
    ordered.assert_status(StatusCode::CREATED);
    let id = ordered.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&owner, &id, "active").await;
    (account, owner, product, id)
}

async fn order_preview_checks_everything_and_changes_nothing(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (account, owner) = app.partner_with_owner(&admin, "Buyer").await;
    app.credit(&admin, &account, 20_000).await;
    let body = order(&product, json!({"method": "balance"}));

    let preview = app.post("/v1/licenses/preview", &owner, body.clone()).await;
    preview.assert_status(StatusCode::OK);
    assert_eq!(preview.body["amount"], ORDER_PRICE);
    assert_eq!(preview.body["currency"], "USD");
    assert!(preview.body["valid_until_after"].is_string());
    assert!(preview.body.get("license").is_none());
    assert_eq!(balance(app, &owner, &account).await, 20_000);
    assert_eq!(count(app, &owner, "/v1/orders").await, 0);
    assert_eq!(count(app, &owner, "/v1/licenses").await, 0);

    // Unpaid: the license would stay `ordered`, without `valid_until`.
    let unpaid = app
        .post(
            "/v1/licenses/preview",
            &owner,
            order(&product, json!({"method": "new_order"})),
        )
        .await;
    unpaid.assert_status(StatusCode::OK);
    assert_eq!(unpaid.body["amount"], ORDER_PRICE);
    assert_eq!(unpaid.body["valid_until_after"], Value::Null);

    // The same checks as the order: funds, fields a partner may not write, scopes.
    let (_, poor_owner) = app.partner_with_owner(&admin, "Poor").await;
    app.post("/v1/licenses/preview", &poor_owner, body.clone())
        .await
        .assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    let mut foreign = body.clone();
    foreign["account_id"] = json!(account);
    app.post("/v1/licenses/preview", &owner, foreign)
        .await
        .assert_invalid_field("account_id");
    let viewer = app.user_token(&admin, &account, "viewer").await;
    app.post("/v1/licenses/preview", &viewer, body.clone())
        .await
        .assert_status(StatusCode::FORBIDDEN);

    // Previews are exempt from `Idempotency-Key`: the header is ignored, never replayed.
    for other in [
        body.clone(),
        order(&product, json!({"method": "new_order"})),
    ] {
        let r = post_with_key(app, "/v1/licenses/preview", &owner, "same-key", &other).await;
        r.assert_status(StatusCode::OK);
        assert!(r.header("idempotent-replayed").is_none());
    }

    // What the preview announced is what the order does.
    let ordered = app.post("/v1/licenses", &owner, body).await;
    ordered.assert_status(StatusCode::CREATED);
    assert_eq!(ordered.body["order"]["total"], preview.body["amount"]);
    assert_eq!(balance(app, &owner, &account).await, 20_000 - ORDER_PRICE);
}

async fn renewal_preview_announces_the_renewal(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner, product, id) = active_license(app, &admin).await;
    let before = balance(app, &owner, &account).await;
    let path = format!("/v1/licenses/{id}/renewals");
    let body = json!({"period_months": 1, "payment": {"method": "balance"}});

    let preview = app
        .post(&format!("{path}/preview"), &owner, body.clone())
        .await;
    preview.assert_status(StatusCode::OK);
    // 1 month: 1000 + 2 × 100.
    assert_eq!(preview.body["amount"], 1200);
    assert_eq!(balance(app, &owner, &account).await, before);
    let unchanged = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_ne!(
        unchanged.body["valid_until"],
        preview.body["valid_until_after"]
    );

    let renewed = app.post(&path, &owner, body).await;
    renewed.assert_status(StatusCode::CREATED);
    assert_eq!(
        renewed.body["license"]["valid_until"],
        preview.body["valid_until_after"]
    );
    assert_eq!(renewed.body["order"]["total"], preview.body["amount"]);
    assert_eq!(balance(app, &owner, &account).await, before - 1200);

    // The same state check as the renewal: an unpaid (`ordered`) license is refused.
    let unpaid = app
        .post(
            "/v1/licenses",
            &owner,
            order(&product, json!({"method": "new_order"})),
        )
        .await;
    let unpaid_id = unpaid.body["license"]["id"].as_str().unwrap();
    app.post(
        &format!("/v1/licenses/{unpaid_id}/renewals/preview"),
        &owner,
        json!({"period_months": 1, "payment": {"method": "balance"}}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    // Another tenant's license does not exist for the caller.
    let (_, stranger) = app.partner_with_owner(&admin, "Stranger").await;
    app.post(
        &format!("{path}/preview"),
        &stranger,
        json!({"period_months": 1, "payment": {"method": "balance"}}),
    )
    .await
    .assert_status(StatusCode::NOT_FOUND);
}

async fn configuration_preview_is_the_prorated_delta(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner, _, id) = active_license(app, &admin).await;
    let before = balance(app, &owner, &account).await;
    let path = format!("/v1/licenses/{id}/configuration");

    let up = app
        .post(
            &format!("{path}/preview"),
            &owner,
            json!({"options": {"extra_domains": 4}}),
        )
        .await;
    up.assert_status(StatusCode::OK);
    let delta = up.body["amount"].as_i64().unwrap();
    assert!(delta > 0 && delta <= 2000, "{delta}");
    let down = app
        .post(
            &format!("{path}/preview"),
            &owner,
            json!({"options": {"extra_domains": 0}}),
        )
        .await;
    down.assert_status(StatusCode::OK);
    assert!(down.body["amount"].as_i64().unwrap() < 0);
    let license = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(license.body["options"], json!({"extra_domains": 2}));
    assert_eq!(balance(app, &owner, &account).await, before);

    // Out of bounds: the same 422 as the change.
    app.post(
        &format!("{path}/preview"),
        &owner,
        json!({"options": {"extra_domains": 11}}),
    )
    .await
    .assert_invalid_field("options.extra_domains");

    let changed = app
        .put(&path, &owner, json!({"options": {"extra_domains": 4}}))
        .await;
    changed.assert_status(StatusCode::OK);
    assert_eq!(changed.body["order"]["total"], delta);
}

async fn transfer_preview_creates_no_offer(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner, _, id) = active_license(app, &admin).await;
    let (receiver, _) = app.partner_with_owner(&admin, "Receiver").await;
    let path = format!("/v1/licenses/{id}/transfers");

    let preview = app
        .post(
            &format!("{path}/preview"),
            &owner,
            json!({"to_account_id": receiver}),
        )
        .await;
    preview.assert_status(StatusCode::OK);
    assert_eq!(preview.body["status"], "pending");
    assert_eq!(preview.body["license_id"], id.as_str());
    assert_eq!(preview.body["from_account_id"], account.as_str());
    assert_eq!(preview.body["to_account_id"], receiver.as_str());
    assert_eq!(preview.body["license"]["name"], "shop.example.com panel");
    assert!(preview.body.get("secret").is_none());
    assert_eq!(count(app, &owner, "/v1/transfers").await, 0);

    app.post(
        &format!("{path}/preview"),
        &owner,
        json!({"to_account_id": account}),
    )
    .await
    .assert_invalid_field("to_account_id");

    let offer = app
        .post(&path, &owner, json!({"to_account_id": receiver}))
        .await;
    offer.assert_status(StatusCode::CREATED);
    assert!(offer.body["expires_at"].is_string());
    // One pending offer per license: the preview now answers the 409 the offer would.
    app.post(
        &format!("{path}/preview"),
        &owner,
        json!({"to_account_id": receiver}),
    )
    .await
    .assert_status(StatusCode::CONFLICT);
}

db_test!(
    order_preview_checks_everything_and_changes_nothing,
    renewal_preview_announces_the_renewal,
    configuration_preview_is_the_prorated_delta,
    transfer_preview_creates_no_offer,
);
