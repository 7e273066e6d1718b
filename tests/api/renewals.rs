//! Renewals over HTTP, on a manual clock: calendar arithmetic, every payment method, 402
//! that leaves nothing behind, dry runs, refused states. Shared helpers for the renewal,
//! configuration and sweep tests.
use licentia_tests::{Resp, TestApp, clock_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A partner with an owner, some money and the standard test product.
pub(crate) struct Ctx {
    pub admin: String,
    pub account: String,
    pub owner: String,
    pub product: Value,
}

pub(crate) async fn setup(app: &TestApp, code: &str, funds: i64) -> Ctx {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, code).await;
    let (account, owner) = app.partner_with_owner(&admin, "Renewer").await;
    if funds > 0 {
        app.credit(&admin, &account, funds).await;
    }
    Ctx {
        admin,
        account,
        owner,
        product,
    }
}

/// Orders a license and returns the response body (`{license, order}`).
pub(crate) async fn order(
    app: &TestApp,
    ctx: &Ctx,
    product: &Value,
    months: u32,
    extra: Value,
    payment: Value,
) -> Value {
    let mut body = json!({"product_id": product["id"], "name": "Renewable", "ip": "192.0.2.7",
                          "period_months": months, "payment": payment});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let resp = app.post("/v1/licenses", &ctx.owner, body).await;
    resp.assert_status(StatusCode::CREATED);
    resp.body
}

/// Orders a paid license at the clock's current time and waits until it is active.
pub(crate) async fn active_license(app: &TestApp, ctx: &Ctx, months: u32, extra: Value) -> String {
    let body = order(
        app,
        ctx,
        &ctx.product,
        months,
        extra,
        json!({"method": "balance"}),
    )
    .await;
    let id = body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&ctx.owner, &id, "active").await;
    id
}

pub(crate) async fn balance(app: &TestApp, ctx: &Ctx) -> i64 {
    app.get(&format!("/v1/accounts/{}", ctx.account), &ctx.owner)
        .await
        .body["balance"]
        .as_i64()
        .unwrap()
}

pub(crate) async fn license(app: &TestApp, ctx: &Ctx, id: &str) -> Value {
    let resp = app.get(&format!("/v1/licenses/{id}"), &ctx.owner).await;
    resp.assert_status(StatusCode::OK);
    resp.body
}

pub(crate) async fn orders(app: &TestApp, ctx: &Ctx, status: &str) -> Vec<Value> {
    let resp = app
        .get(&format!("/v1/orders?status={status}"), &ctx.owner)
        .await;
    resp.assert_status(StatusCode::OK);
    resp.body["items"].as_array().unwrap().clone()
}

/// How many events of `event_type` the license has.
pub(crate) async fn events(app: &TestApp, ctx: &Ctx, id: &str, event_type: &str) -> usize {
    let resp = app
        .get(
            &format!("/v1/events?license_id={id}&type={event_type}&limit=200"),
            &ctx.admin,
        )
        .await;
    resp.assert_status(StatusCode::OK);
    resp.body["items"].as_array().unwrap().len()
}

pub(crate) async fn renew(app: &TestApp, ctx: &Ctx, id: &str, months: u32, payment: Value) -> Resp {
    app.post(
        &format!("/v1/licenses/{id}/renewals"),
        &ctx.owner,
        json!({"period_months": months, "payment": payment}),
    )
    .await
}

async fn renewal_calendar_arithmetic(app: &TestApp) {
    let ctx = setup(app, "calendar", 100_000).await;
    app.clock().set_rfc3339("2023-12-31T10:00:00Z").unwrap();
    let id = active_license(app, &ctx, 1, json!({"options": {"extra_domains": 2}})).await;
    assert_eq!(
        license(app, &ctx, &id).await["valid_until"],
        "2024-01-31T10:00:00Z"
    );

    // 1 month: product 1000 + 2 × 100; Jan 31 + 1 month = Feb 29 in a leap year.
    let quote = app
        .get(
            &format!("/v1/licenses/{id}/renewal-quote?period_months=1"),
            &ctx.owner,
        )
        .await;
    quote.assert_status(StatusCode::OK);
    assert_eq!(
        quote.body,
        json!({"period_months": 1, "amount": 1200, "currency": "USD",
               "valid_until_after": "2024-02-29T10:00:00Z"})
    );
    let renewed = renew(app, &ctx, &id, 1, json!({"method": "balance"})).await;
    renewed.assert_status(StatusCode::CREATED);
    assert_eq!(
        renewed.body["license"]["valid_until"],
        "2024-02-29T10:00:00Z"
    );
    assert_eq!(renewed.body["license"]["status"], "active");
    assert_eq!(renewed.body["order"]["status"], "paid");
    assert_eq!(renewed.body["order"]["total"], 1200);
    assert_eq!(renewed.body["order"]["items"][0]["kind"], "renewal");
    assert_eq!(renewed.body["order"]["items"][0]["status"], "fulfilled");
    assert!(renewed.header("etag").is_some());
    // Renewals add to the stored date: Feb 29 + 1 month = Mar 29, not Mar 31.
    let renewed = renew(app, &ctx, &id, 1, json!({"method": "balance"})).await;
    renewed.assert_status(StatusCode::CREATED);
    assert_eq!(
        renewed.body["license"]["valid_until"],
        "2024-03-29T10:00:00Z"
    );
    // Another period the product prices: the license's period_months becomes it.
    let renewed = renew(app, &ctx, &id, 12, json!({"method": "balance"})).await;
    renewed.assert_status(StatusCode::CREATED);
    assert_eq!(
        renewed.body["license"]["valid_until"],
        "2025-03-29T10:00:00Z"
    );
    assert_eq!(renewed.body["license"]["period_months"], 12);
    assert_eq!(renewed.body["order"]["total"], 12_000);
    assert_eq!(
        balance(app, &ctx).await,
        100_000 - 1200 - 1200 - 1200 - 12_000
    );
    assert_eq!(events(app, &ctx, &id, "license.renewed").await, 3);

    // A common year: Jan 31 + 1 month = Feb 28.
    app.clock().set_rfc3339("2022-12-31T23:59:59Z").unwrap();
    let other = active_license(app, &ctx, 1, json!({})).await;
    assert_eq!(
        license(app, &ctx, &other).await["valid_until"],
        "2023-01-31T23:59:59Z"
    );
    let renewed = renew(app, &ctx, &other, 1, json!({"method": "balance"})).await;
    renewed.assert_status(StatusCode::CREATED);
    assert_eq!(
        renewed.body["license"]["valid_until"],
        "2023-02-28T23:59:59Z"
    );

    // Lapsed: the new term starts now, not at the old valid_until.
    app.clock().set_rfc3339("2023-05-31T12:00:00Z").unwrap();
    let quote = app
        .get(
            &format!("/v1/licenses/{other}/renewal-quote?period_months=1"),
            &ctx.owner,
        )
        .await;
    assert_eq!(quote.body["valid_until_after"], "2023-06-30T12:00:00Z");

    // Periods the product does not price, and bad values.
    for bad in ["3", "7", "x"] {
        app.get(
            &format!("/v1/licenses/{id}/renewal-quote?period_months={bad}"),
            &ctx.owner,
        )
        .await
        .assert_invalid_field("period_months");
    }
    app.get(&format!("/v1/licenses/{id}/renewal-quote"), &ctx.owner)
        .await
        .assert_invalid_field("period_months");
    renew(app, &ctx, &id, 3, json!({"method": "balance"}))
        .await
        .assert_invalid_field("period_months");
}

async fn renewal_payment_methods(app: &TestApp) {
    let ctx = setup(app, "payments", 50_000).await;
    app.clock().set_rfc3339("2024-03-15T08:00:00Z").unwrap();
    let id = active_license(app, &ctx, 1, json!({})).await; // 1000
    let start = balance(app, &ctx).await;
    assert_eq!(start, 49_000);

    // new_order, unpaid: nothing changes until the order is paid.
    let unpaid = renew(app, &ctx, &id, 1, json!({"method": "new_order"})).await;
    unpaid.assert_status(StatusCode::CREATED);
    assert_eq!(unpaid.body["order"]["status"], "unpaid");
    assert_eq!(unpaid.body["order"]["total"], 1000);
    assert_eq!(unpaid.body["order"]["items"][0]["kind"], "renewal");
    assert_eq!(unpaid.body["order"]["items"][0]["status"], "pending");
    assert_eq!(
        unpaid.body["license"]["valid_until"],
        "2024-04-15T08:00:00Z"
    );
    let invoice = unpaid.body["order"]["id"].as_str().unwrap().to_owned();

    // existing_order without pay_now: a second item on the same invoice.
    let added = renew(
        app,
        &ctx,
        &id,
        12,
        json!({"method": "existing_order", "order_id": invoice}),
    )
    .await;
    added.assert_status(StatusCode::CREATED);
    assert_eq!(added.body["order"]["id"], invoice.as_str());
    assert_eq!(added.body["order"]["total"], 11_000);
    assert_eq!(balance(app, &ctx).await, start);

    // Paying the invoice applies the first renewal; the second was priced for the term the
    // first one changed, so it went stale and is cancelled, not charged (CONTRACT §5).
    let paid = app
        .post(&format!("/v1/orders/{invoice}/pay"), &ctx.owner, json!({}))
        .await;
    paid.assert_status(StatusCode::OK);
    assert_eq!(paid.body["status"], "paid");
    assert_eq!(paid.body["total"], 1000);
    assert_eq!(paid.body["items"][0]["status"], "fulfilled");
    assert_eq!(paid.body["items"][1]["status"], "cancelled");
    let l = license(app, &ctx, &id).await;
    assert_eq!(l["valid_until"], "2024-05-15T08:00:00Z");
    assert_eq!(l["period_months"], 1);
    assert_eq!(balance(app, &ctx).await, start - 1000);
    assert_eq!(events(app, &ctx, &id, "license.renewed").await, 1);
    assert_eq!(events(app, &ctx, &id, "order.item_cancelled").await, 1);

    // new_order with pay_now, and existing_order with pay_now paying the whole invoice.
    let now_paid = renew(
        app,
        &ctx,
        &id,
        1,
        json!({"method": "new_order", "pay_now": true}),
    )
    .await;
    now_paid.assert_status(StatusCode::CREATED);
    assert_eq!(now_paid.body["order"]["status"], "paid");
    assert_eq!(
        now_paid.body["license"]["valid_until"],
        "2024-06-15T08:00:00Z"
    );
    let invoice = renew(app, &ctx, &id, 1, json!({"method": "new_order"}))
        .await
        .body["order"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let together = renew(
        app,
        &ctx,
        &id,
        1,
        json!({"method": "existing_order", "order_id": invoice, "pay_now": true}),
    )
    .await;
    together.assert_status(StatusCode::CREATED);
    // Paying the whole invoice applies its first renewal and cancels the one added after it.
    assert_eq!(together.body["order"]["status"], "paid");
    assert_eq!(together.body["order"]["total"], 1000);
    assert_eq!(
        together.body["license"]["valid_until"],
        "2024-07-15T08:00:00Z"
    );
    assert_eq!(balance(app, &ctx).await, start - 1000 - 1000 - 1000);

    // A paid or unknown order cannot take the item.
    renew(
        app,
        &ctx,
        &id,
        1,
        json!({"method": "existing_order", "order_id": invoice}),
    )
    .await
    .assert_invalid_field("payment.order_id");
    renew(
        app,
        &ctx,
        &id,
        1,
        json!({"method": "existing_order", "order_id": uuid::Uuid::now_v7()}),
    )
    .await
    .assert_invalid_field("payment.order_id");
    // Unknown fields and methods are 422.
    app.post(
        &format!("/v1/licenses/{id}/renewals"),
        &ctx.owner,
        json!({"period_months": 1, "payment": {"method": "balance"}, "amount": 1}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // Another tenant's license is not there.
    let (_, stranger) = app.partner_with_owner(&ctx.admin, "Stranger").await;
    app.post(
        &format!("/v1/licenses/{id}/renewals"),
        &stranger,
        json!({"period_months": 1, "payment": {"method": "balance"}}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get(
        &format!("/v1/licenses/{id}/renewal-quote?period_months=1"),
        &stranger,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

async fn renewal_short_funds_and_dry_run(app: &TestApp) {
    let ctx = setup(app, "short", 1500).await;
    app.clock().set_rfc3339("2024-05-01T00:00:00Z").unwrap();
    let id = active_license(app, &ctx, 1, json!({})).await;
    let before = license(app, &ctx, &id).await;
    assert_eq!(balance(app, &ctx).await, 500);

    // Dry run: every check, nothing changed.
    let dry = app
        .post(
            &format!("/v1/licenses/{id}/renewals?dry_run=true"),
            &ctx.owner,
            json!({"period_months": 1, "payment": {"method": "new_order"}}),
        )
        .await;
    dry.assert_status(StatusCode::OK);
    assert_eq!(dry.body["amount"], 1000);
    assert_eq!(dry.body["currency"], "USD");
    app.post(
        &format!("/v1/licenses/{id}/renewals?dry_run=true"),
        &ctx.owner,
        json!({"period_months": 1, "payment": {"method": "balance"}}),
    )
    .await
    .assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");

    // 402 for every paying method, and nothing is left behind.
    for payment in [
        json!({"method": "balance"}),
        json!({"method": "new_order", "pay_now": true}),
    ] {
        renew(app, &ctx, &id, 1, payment)
            .await
            .assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    }
    assert_eq!(balance(app, &ctx).await, 500);
    assert_eq!(orders(app, &ctx, "unpaid").await.len(), 0);
    assert_eq!(orders(app, &ctx, "paid").await.len(), 1);
    assert_eq!(license(app, &ctx, &id).await, before);
    assert_eq!(events(app, &ctx, &id, "license.renewed").await, 0);

    // With enough money the dry run answers the new date, still changing nothing.
    app.credit(&ctx.admin, &ctx.account, 1000).await;
    let dry = app
        .post(
            &format!("/v1/licenses/{id}/renewals?dry_run=true"),
            &ctx.owner,
            json!({"period_months": 12, "payment": {"method": "new_order"}}),
        )
        .await;
    dry.assert_status(StatusCode::OK);
    assert_eq!(dry.body["amount"], 10_000);
    // Unpaid, the term does not move.
    assert_eq!(dry.body["valid_until_after"], "2024-06-01T00:00:00Z");
    assert_eq!(balance(app, &ctx).await, 1500);
    let dry = app
        .post(
            &format!("/v1/licenses/{id}/renewals?dry_run=true"),
            &ctx.owner,
            json!({"period_months": 1, "payment": {"method": "balance"}}),
        )
        .await;
    dry.assert_status(StatusCode::OK);
    assert_eq!(dry.body["valid_until_after"], "2024-07-01T00:00:00Z");
    assert_eq!(license(app, &ctx, &id).await, before);
    assert_eq!(balance(app, &ctx).await, 1500);
}

async fn renewal_refused_states(app: &TestApp) {
    let ctx = setup(app, "states", 10_000).await;
    // Ordered (unpaid) and deleted licenses cannot be renewed.
    let ordered = order(
        app,
        &ctx,
        &ctx.product,
        1,
        json!({}),
        json!({"method": "new_order"}),
    )
    .await;
    let oid = ordered["license"]["id"].as_str().unwrap();
    renew(app, &ctx, oid, 1, json!({"method": "balance"}))
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.get(
        &format!("/v1/licenses/{oid}/renewal-quote?period_months=1"),
        &ctx.owner,
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.put(
        &format!("/v1/licenses/{oid}/configuration"),
        &ctx.owner,
        json!({"options": {"extra_domains": 1}}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    let id = active_license(app, &ctx, 1, json!({})).await;
    // If-Match: a stale version is 412 and changes nothing.
    let res = app
        .client
        .post(app.url(&format!("/v1/licenses/{id}/renewals")))
        .bearer_auth(&ctx.owner)
        .header("If-Match", "\"1\"")
        .json(&json!({"period_months": 1, "payment": {"method": "balance"}}))
        .send()
        .await
        .unwrap();
    Resp::from(res)
        .await
        .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    app.delete(&format!("/v1/licenses/{id}"), &ctx.owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    renew(app, &ctx, &id, 1, json!({"method": "balance"}))
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.put(
        &format!("/v1/licenses/{id}/configuration"),
        &ctx.owner,
        json!({"options": {"extra_domains": 1}}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(balance(app, &ctx).await, 9000);
}

clock_test!(
    renewal_calendar_arithmetic,
    renewal_payment_methods,
    renewal_short_funds_and_dry_run,
    renewal_refused_states,
);
