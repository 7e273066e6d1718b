//! Paying an existing order through `existing_order` + `pay_now` pays every item of that order,
//! so it needs `billing:write` like `POST /v1/orders/{id}/pay` (CONTRACT §5): a key holding
//! only `licenses:write` may add to an unpaid order but not pay it, on every route that takes
//! a payment.
use licentia_tests::{Resp, TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn with_key(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Value,
) -> Resp {
    Resp::from(
        app.client
            .request(method, app.url(path))
            .header("X-API-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn existing_order_pay_now_needs_billing_write(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "pay-scope").await;
    let (account, owner) = app.partner_with_owner(&admin, "Scoped").await;
    app.credit(&admin, &account, 200_000).await;
    let key = app
        .post(
            "/v1/api-keys",
            &owner,
            json!({"name": "writer", "scopes": ["licenses:read", "licenses:write"]}),
        )
        .await;
    key.assert_status(StatusCode::CREATED);
    let key = key.body["key"].as_str().unwrap().to_owned();
    // An unpaid invoice of the owner's, and an active license.
    let unpaid = app
        .post(
            "/v1/licenses",
            &owner,
            json!({"product_id": product["id"], "name": "Invoice", "ip": "192.0.2.1", "period_months": 12,
                   "payment": {"method": "new_order", "pay_now": false}}),
        )
        .await;
    unpaid.assert_status(StatusCode::CREATED);
    let order = unpaid.body["order"]["id"].as_str().unwrap().to_owned();
    let active = app
        .post(
            "/v1/licenses",
            &owner,
            json!({"product_id": product["id"], "name": "Active", "ip": "192.0.2.2", "period_months": 12,
                   "payment": {"method": "balance"}}),
        )
        .await;
    active.assert_status(StatusCode::CREATED);
    let license = active.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&owner, &license, "active").await;
    let balance = || async {
        app.get(&format!("/v1/accounts/{account}"), &owner)
            .await
            .body["balance"]
            .as_i64()
            .unwrap()
    };
    let before = balance().await;
    let pay = json!({"method": "existing_order", "order_id": order, "pay_now": true});
    let post = reqwest::Method::POST;
    with_key(
        app,
        post.clone(),
        "/v1/licenses",
        &key,
        json!({"product_id": product["id"], "name": "Sneaky", "ip": "192.0.2.3", "period_months": 12, "payment": pay}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    with_key(
        app,
        post.clone(),
        &format!("/v1/licenses/{license}/renewals"),
        &key,
        json!({"period_months": 12, "payment": pay}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    with_key(
        app,
        reqwest::Method::PUT,
        &format!("/v1/licenses/{license}/configuration"),
        &key,
        json!({"options": {"extra_domains": 3}, "payment": pay}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(balance().await, before);
    let still = app.get(&format!("/v1/orders/{order}"), &owner).await;
    assert_eq!(still.body["status"], "unpaid");
    assert_eq!(still.body["items"].as_array().unwrap().len(), 1);
    // Adding to the order without paying it is a licenses:write matter.
    with_key(
        app,
        post,
        &format!("/v1/licenses/{license}/renewals"),
        &key,
        json!({"period_months": 12, "payment": {"method": "existing_order", "order_id": order, "pay_now": false}}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    assert_eq!(balance().await, before);
}

db_test!(existing_order_pay_now_needs_billing_write);
