//! `PUT /v1/licenses/{id}/configuration` over HTTP, on a manual clock: exact proration both
//! ways (half-up rounding), payment methods, 402 that changes nothing, bounds, If-Match.
use licentia_tests::{Resp, TestApp, clock_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::renewals::{active_license, balance, events, license, order, orders, setup};

async fn with_if_match(app: &TestApp, token: &str, path: &str, etag: &str, body: Value) -> Resp {
    let res = app
        .client
        .put(app.url(path))
        .bearer_auth(token)
        .header("If-Match", etag)
        .json(&body)
        .send()
        .await
        .unwrap();
    Resp::from(res).await
}

/// A product priced so that proration rounds: 12 months for 10000 plus 7 per seat.
async fn seats_product(app: &TestApp, admin: &str) -> Value {
    let resp = app
        .post(
            "/v1/products",
            admin,
            json!({"code": "seats", "name": "Seats", "prices": [{"period_months": 12, "amount": 10_000}],
                   "options": [{"code": "seats", "name": "Seats", "min": 0, "max": 100,
                                "prices": [{"period_months": 12, "amount": 7}]}],
                   "max_registrations": null, "transferable": false}),
        )
        .await;
    resp.assert_status(StatusCode::CREATED);
    resp.body
}

async fn configuration_proration(app: &TestApp) {
    let ctx = setup(app, "config", 20_000).await;
    let seats = seats_product(app, &ctx.admin).await;
    // A 366-day term: 2024-01-01 .. 2025-01-01.
    app.clock().set_rfc3339("2024-01-01T00:00:00Z").unwrap();
    let body = order(
        app,
        &ctx,
        &seats,
        12,
        json!({"options": {"seats": 1}}),
        json!({"method": "balance"}),
    )
    .await;
    let id = body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&ctx.owner, &id, "active").await;
    assert_eq!(balance(app, &ctx).await, 20_000 - 10_007);
    let path = format!("/v1/licenses/{id}/configuration");

    // Half the term left (183 of 366 days): +1 seat = 7 × ½ = 3.5 → 4 (half-up).
    app.clock().set_rfc3339("2024-07-02T00:00:00Z").unwrap();
    let dry = app
        .put(
            &format!("{path}?dry_run=true"),
            &ctx.owner,
            json!({"options": {"seats": 2}}),
        )
        .await;
    dry.assert_status(StatusCode::OK);
    assert_eq!(dry.body["amount"], 4);
    assert_eq!(balance(app, &ctx).await, 9993);
    let up = app
        .put(&path, &ctx.owner, json!({"options": {"seats": 2}}))
        .await;
    up.assert_status(StatusCode::OK);
    assert_eq!(up.body["license"]["options"], json!({"seats": 2}));
    assert_eq!(up.body["license"]["status"], "in_progress");
    assert_eq!(up.body["order"]["status"], "paid");
    assert_eq!(up.body["order"]["total"], 4);
    assert_eq!(up.body["order"]["items"][0]["kind"], "configuration_change");
    assert_eq!(balance(app, &ctx).await, 9989);
    app.wait_status(&ctx.owner, &id, "active").await;

    // The matching downgrade at the same instant credits 3.5 → 4: the pair nets to zero.
    let dry = app
        .put(
            &format!("{path}?dry_run=true"),
            &ctx.owner,
            json!({"options": {"seats": 1}}),
        )
        .await;
    assert_eq!(dry.body["amount"], -4);
    let down = app
        .put(&path, &ctx.owner, json!({"options": {"seats": 1}}))
        .await;
    down.assert_status(StatusCode::OK);
    assert_eq!(down.body["order"], Value::Null);
    assert_eq!(down.body["license"]["options"], json!({"seats": 1}));
    assert_eq!(balance(app, &ctx).await, 9993);
    let ledger = app
        .get(&format!("/v1/accounts/{}/ledger", ctx.account), &ctx.owner)
        .await;
    let last = ledger.body["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "refund");
    assert_eq!(last["amount"], 4);
    app.wait_status(&ctx.owner, &id, "active").await;

    // A third of the term left (122 of 366 days): +3 seats = 21 / 3 = 7 exactly; +1 = 2.33 → 2.
    app.clock().set_rfc3339("2024-09-01T00:00:00Z").unwrap();
    let up = app
        .put(&path, &ctx.owner, json!({"options": {"seats": 4}}))
        .await;
    up.assert_status(StatusCode::OK);
    assert_eq!(up.body["order"]["total"], 7);
    app.wait_status(&ctx.owner, &id, "active").await;
    let up = app
        .put(&path, &ctx.owner, json!({"options": {"seats": 5}}))
        .await;
    assert_eq!(up.body["order"]["total"], 2);
    app.wait_status(&ctx.owner, &id, "active").await;
    assert_eq!(balance(app, &ctx).await, 9993 - 7 - 2);
    // The same options again: nothing to charge, nothing to provision.
    let same = app
        .put(&path, &ctx.owner, json!({"options": {"seats": 5}}))
        .await;
    same.assert_status(StatusCode::OK);
    assert_eq!(same.body["license"]["status"], "active");
    assert_eq!(same.body["order"], Value::Null);

    // Bounds and shapes: 422 naming the option.
    app.put(&path, &ctx.owner, json!({"options": {"seats": 101}}))
        .await
        .assert_invalid_field("options.seats");
    app.put(&path, &ctx.owner, json!({"options": {"seats": -1}}))
        .await
        .assert_invalid_field("options.seats");
    app.put(&path, &ctx.owner, json!({"options": {"bogus": 1}}))
        .await
        .assert_invalid_field("options.bogus");

    // If-Match: stale → 412; current → applied.
    let etag = app
        .get(&format!("/v1/licenses/{id}"), &ctx.owner)
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    with_if_match(
        app,
        &ctx.owner,
        &path,
        "\"1\"",
        json!({"options": {"seats": 6}}),
    )
    .await
    .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let ok = with_if_match(
        app,
        &ctx.owner,
        &path,
        &etag,
        json!({"options": {"seats": 6}}),
    )
    .await;
    ok.assert_status(StatusCode::OK);
    assert_eq!(ok.body["order"]["total"], 2);
    app.wait_status(&ctx.owner, &id, "active").await;
}

async fn configuration_payment_methods(app: &TestApp) {
    let ctx = setup(app, "cfgpay", 12_000).await;
    app.clock().set_rfc3339("2024-01-01T00:00:00Z").unwrap();
    // 12 months with 0 extra domains: 10000; each domain is 1000 a year.
    let id = active_license(app, &ctx, 12, json!({})).await;
    let path = format!("/v1/licenses/{id}/configuration");
    app.clock().set_rfc3339("2024-07-02T00:00:00Z").unwrap();
    assert_eq!(balance(app, &ctx).await, 2000);

    // 3 domains for half the term: 1500; 5 domains: 2500 > 2000 available → 402, no change.
    let before = license(app, &ctx, &id).await;
    app.put(&path, &ctx.owner, json!({"options": {"extra_domains": 5}}))
        .await
        .assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    app.put(
        &format!("{path}?dry_run=true"),
        &ctx.owner,
        json!({"options": {"extra_domains": 5}}),
    )
    .await
    .assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    assert_eq!(license(app, &ctx, &id).await, before);
    assert_eq!(balance(app, &ctx).await, 2000);
    assert_eq!(orders(app, &ctx, "unpaid").await.len(), 0);

    // An invoice instead: the change waits for its payment.
    let invoiced = app
        .put(
            &path,
            &ctx.owner,
            json!({"options": {"extra_domains": 5}, "payment": {"method": "new_order"}}),
        )
        .await;
    invoiced.assert_status(StatusCode::OK);
    assert_eq!(invoiced.body["order"]["status"], "unpaid");
    assert_eq!(invoiced.body["order"]["total"], 2500);
    assert_eq!(
        invoiced.body["license"]["options"],
        json!({"extra_domains": 0})
    );
    assert_eq!(invoiced.body["license"]["status"], "active");
    let invoice = invoiced.body["order"]["id"].as_str().unwrap().to_owned();
    app.post(&format!("/v1/orders/{invoice}/pay"), &ctx.owner, json!({}))
        .await
        .assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    app.credit(&ctx.admin, &ctx.account, 500).await;
    app.post(&format!("/v1/orders/{invoice}/pay"), &ctx.owner, json!({}))
        .await
        .assert_status(StatusCode::OK);
    let l = app.wait_status(&ctx.owner, &id, "active").await;
    assert_eq!(l["options"], json!({"extra_domains": 5}));
    assert_eq!(balance(app, &ctx).await, 0);

    // A downgrade credits the balance whatever the payment says.
    let down = app
        .put(
            &path,
            &ctx.owner,
            json!({"options": {"extra_domains": 1}, "payment": {"method": "new_order"}}),
        )
        .await;
    down.assert_status(StatusCode::OK);
    assert_eq!(down.body["order"], Value::Null);
    assert_eq!(balance(app, &ctx).await, 2000);
    let l = app.wait_status(&ctx.owner, &id, "active").await;
    assert_eq!(l["options"], json!({"extra_domains": 1}));
    assert!(events(app, &ctx, &id, "license.updated").await >= 2);
}

clock_test!(configuration_proration, configuration_payment_methods);
