//! Pending items never drift (CONTRACT §5): an unpaid item is priced for its license as it was
//! when the item was created; a later change that alters its price or meaning cancels it in
//! the same transaction (`order.item_cancelled`, reason `stale`), and paying never applies it.
//! The three sequences an adversarial review used to mint money, kept as regression tests,
//! plus the same-order and sweep variants. On a frozen manual clock, so proration is whole.
use licentia_tests::{TestApp, clock_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::renewals::{Ctx, balance, license, order, setup};

/// 12 months for 10,000 (1 month for 1,000) plus `extra` at 1,000 a unit a year (100 a
/// month), 0..=`max`.
pub(crate) async fn extra_product(app: &TestApp, admin: &str, code: &str, max: u32) -> Value {
    let resp = app
        .post(
            "/v1/products",
            admin,
            json!({"code": code, "name": format!("Product {code}"),
                   "prices": [{"period_months": 1, "amount": 1_000}, {"period_months": 12, "amount": 10_000}],
                   "options": [{"code": "extra", "name": "Extra", "min": 0, "max": max,
                                "prices": [{"period_months": 1, "amount": 100}, {"period_months": 12, "amount": 1_000}]}],
                   "max_registrations": null, "transferable": true}),
        )
        .await;
    resp.assert_status(StatusCode::CREATED);
    resp.body
}

async fn configure(app: &TestApp, ctx: &Ctx, id: &str, body: Value) -> licentia_tests::Resp {
    app.put(
        &format!("/v1/licenses/{id}/configuration"),
        &ctx.owner,
        body,
    )
    .await
}

async fn pay(app: &TestApp, ctx: &Ctx, order: &str) -> licentia_tests::Resp {
    app.post(&format!("/v1/orders/{order}/pay"), &ctx.owner, json!({}))
        .await
}

async fn get_order(app: &TestApp, ctx: &Ctx, order: &str) -> Value {
    let resp = app.get(&format!("/v1/orders/{order}"), &ctx.owner).await;
    resp.assert_status(StatusCode::OK);
    resp.body
}

/// The `order.item_cancelled` events of a license.
async fn stale_events(app: &TestApp, ctx: &Ctx, id: &str) -> Vec<Value> {
    let resp = app
        .get(
            &format!("/v1/events?license_id={id}&type=order.item_cancelled&limit=200"),
            &ctx.admin,
        )
        .await;
    resp.assert_status(StatusCode::OK);
    resp.body["items"].as_array().unwrap().clone()
}

/// A license of `product` at `extra`, paid from the balance and active.
async fn active(app: &TestApp, ctx: &Ctx, product: &Value, extra: u32) -> String {
    let body = order(
        app,
        ctx,
        product,
        12,
        json!({"options": {"extra": extra}}),
        json!({"method": "balance"}),
    )
    .await;
    let id = body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&ctx.owner, &id, "active").await;
    id
}

/// Unpaid upgrade → downgrade (refund) → pay the old upgrade → upgrade back: three rounds used
/// to turn 5,000 into 152,000. Now the downgrade cancels the unpaid upgrade, paying it answers
/// 409, and each round ends where it started.
async fn stale_configuration_cannot_mint_money(app: &TestApp) {
    let ctx = setup(app, "mint", 0).await;
    let product = extra_product(app, &ctx.admin, "mint-extra", 50).await;
    // 10,000 + 49 × 1,000 for the license, 5,000 left.
    app.credit(&ctx.admin, &ctx.account, 64_000).await;
    let id = active(app, &ctx, &product, 49).await;
    assert_eq!(balance(app, &ctx).await, 5_000);
    for round in 0..3 {
        let up = configure(
            app,
            &ctx,
            &id,
            json!({"options": {"extra": 50}, "payment": {"method": "new_order", "pay_now": false}}),
        )
        .await;
        up.assert_status(StatusCode::OK);
        assert_eq!(up.body["order"]["status"], "unpaid", "round {round}");
        assert_eq!(up.body["order"]["total"], 1_000);
        assert_eq!(up.body["license"]["options"], json!({"extra": 49}));
        let unpaid = up.body["order"]["id"].as_str().unwrap().to_owned();

        let down = configure(app, &ctx, &id, json!({"options": {"extra": 0}})).await;
        down.assert_status(StatusCode::OK);
        app.wait_status(&ctx.owner, &id, "active").await;
        assert_eq!(balance(app, &ctx).await, 5_000 + 49_000);
        // The downgrade cancelled the upgrade priced for 49 extras.
        let stale = get_order(app, &ctx, &unpaid).await;
        assert_eq!(stale["status"], "cancelled");
        assert_eq!(stale["items"][0]["status"], "cancelled");

        pay(app, &ctx, &unpaid)
            .await
            .assert_problem(StatusCode::CONFLICT, "invalid_transition");
        assert_eq!(
            license(app, &ctx, &id).await["options"],
            json!({"extra": 0})
        );

        let back = configure(app, &ctx, &id, json!({"options": {"extra": 49}})).await;
        back.assert_status(StatusCode::OK);
        app.wait_status(&ctx.owner, &id, "active").await;
        assert_eq!(balance(app, &ctx).await, 5_000, "round {round}");
    }
    let events = stale_events(app, &ctx, &id).await;
    assert_eq!(events.len(), 3);
    for e in &events {
        assert_eq!(e["after"]["reason"], "stale");
        assert!(e["after"]["order_id"].is_string() && e["after"]["item_id"].is_string());
    }
}

/// An unpaid 12-month renewal priced at `extra=0`, then an upgrade to 50: the renewal is
/// stale and paying it cannot buy a year of 50 extras for the price of none.
async fn stale_renewal_after_upgrade(app: &TestApp) {
    let ctx = setup(app, "renew-up", 0).await;
    let product = extra_product(app, &ctx.admin, "renew-extra", 50).await;
    app.credit(&ctx.admin, &ctx.account, 10_000 + 50_000 + 60_000)
        .await;
    let id = active(app, &ctx, &product, 0).await;
    let renewal = app
        .post(
            &format!("/v1/licenses/{id}/renewals"),
            &ctx.owner,
            json!({"period_months": 12, "payment": {"method": "new_order", "pay_now": false}}),
        )
        .await;
    renewal.assert_status(StatusCode::CREATED);
    assert_eq!(renewal.body["order"]["total"], 10_000);
    let unpaid = renewal.body["order"]["id"].as_str().unwrap().to_owned();
    let until = license(app, &ctx, &id).await["valid_until"].clone();

    let up = configure(app, &ctx, &id, json!({"options": {"extra": 50}})).await;
    up.assert_status(StatusCode::OK);
    assert_eq!(up.body["order"]["total"], 50_000);
    app.wait_status(&ctx.owner, &id, "active").await;
    assert_eq!(get_order(app, &ctx, &unpaid).await["status"], "cancelled");
    let before = balance(app, &ctx).await;
    pay(app, &ctx, &unpaid)
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(balance(app, &ctx).await, before);
    assert_eq!(license(app, &ctx, &id).await["valid_until"], until);

    // A renewal ordered now is priced with the 50 extras.
    let priced = app
        .post(
            &format!("/v1/licenses/{id}/renewals"),
            &ctx.owner,
            json!({"period_months": 12, "payment": {"method": "new_order", "pay_now": false}}),
        )
        .await;
    priced.assert_status(StatusCode::CREATED);
    assert_eq!(priced.body["order"]["total"], 60_000);
    let paid = pay(app, &ctx, priced.body["order"]["id"].as_str().unwrap()).await;
    paid.assert_status(StatusCode::OK);
    assert_eq!(paid.body["status"], "paid");
    assert_eq!(balance(app, &ctx).await, before - 60_000);
}

/// An unpaid upgrade to 50 extras on P1, then a switch to P2 (at most 3 extras): the upgrade is
/// stale, paying it answers 409, and the license stays fully usable (no 500 anywhere after).
async fn stale_configuration_after_product_switch(app: &TestApp) {
    let ctx = setup(app, "switch", 0).await;
    let p1 = extra_product(app, &ctx.admin, "switch-p1", 50).await;
    let p2 = extra_product(app, &ctx.admin, "switch-p2", 3).await;
    app.credit(&ctx.admin, &ctx.account, 100_000).await;
    let id = active(app, &ctx, &p1, 0).await;
    let up = configure(
        app,
        &ctx,
        &id,
        json!({"options": {"extra": 50}, "payment": {"method": "new_order", "pay_now": false}}),
    )
    .await;
    up.assert_status(StatusCode::OK);
    let unpaid = up.body["order"]["id"].as_str().unwrap().to_owned();

    let switch = app
        .patch(
            &format!("/v1/licenses/{id}"),
            &ctx.owner,
            json!({"product_id": p2["id"]}),
        )
        .await;
    switch.assert_status(StatusCode::OK);
    app.wait_status(&ctx.owner, &id, "active").await;
    assert_eq!(get_order(app, &ctx, &unpaid).await["status"], "cancelled");
    let before = balance(app, &ctx).await;
    pay(app, &ctx, &unpaid)
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(balance(app, &ctx).await, before);
    let now = license(app, &ctx, &id).await;
    assert_eq!(now["product_id"], p2["id"]);
    assert_eq!(now["options"], json!({"extra": 0}));

    // Everything still answers as it should.
    app.get(
        &format!("/v1/licenses/{id}/renewal-quote?period_months=12"),
        &ctx.owner,
    )
    .await
    .assert_status(StatusCode::OK);
    configure(app, &ctx, &id, json!({"options": {"extra": 3}}))
        .await
        .assert_status(StatusCode::OK);
    app.wait_status(&ctx.owner, &id, "active").await;
    configure(app, &ctx, &id, json!({"options": {"extra": 4}}))
        .await
        .assert_invalid_field("options.extra");
    app.patch(
        &format!("/v1/licenses/{id}"),
        &ctx.owner,
        json!({"product_id": p1["id"]}),
    )
    .await
    .assert_status(StatusCode::OK);
}

/// One order holding a renewal and a configuration change of the same license: paying applies
/// the first and cancels the second (the renewal changed the term it was priced for); only
/// what was applied is charged.
async fn one_order_two_items_of_one_license(app: &TestApp) {
    let ctx = setup(app, "same-order", 0).await;
    let product = extra_product(app, &ctx.admin, "same-order-extra", 50).await;
    app.credit(&ctx.admin, &ctx.account, 100_000).await;
    let id = active(app, &ctx, &product, 0).await;
    let renewal = app
        .post(
            &format!("/v1/licenses/{id}/renewals"),
            &ctx.owner,
            json!({"period_months": 12, "payment": {"method": "new_order", "pay_now": false}}),
        )
        .await;
    renewal.assert_status(StatusCode::CREATED);
    let order_id = renewal.body["order"]["id"].as_str().unwrap().to_owned();
    let up = configure(
        app,
        &ctx,
        &id,
        json!({"options": {"extra": 10}, "payment": {"method": "existing_order", "order_id": order_id}}),
    )
    .await;
    up.assert_status(StatusCode::OK);
    assert_eq!(up.body["order"]["total"], 20_000);
    let before = balance(app, &ctx).await;
    let paid = pay(app, &ctx, &order_id).await;
    paid.assert_status(StatusCode::OK);
    assert_eq!(paid.body["status"], "paid");
    assert_eq!(paid.body["total"], 10_000);
    assert_eq!(paid.body["items"][0]["status"], "fulfilled");
    assert_eq!(paid.body["items"][1]["status"], "cancelled");
    assert_eq!(balance(app, &ctx).await, before - 10_000);
    assert_eq!(
        license(app, &ctx, &id).await["options"],
        json!({"extra": 0})
    );
}

/// The sweep's unpaid auto-renewal order (funds were short) goes stale when the options it
/// was priced for change. A downgrade changes them without adding funds, so the service's own
/// background sweep cannot pay the order in between.
async fn stale_auto_renewal_order(app: &TestApp) {
    let ctx = setup(app, "auto-stale", 0).await;
    let product = extra_product(app, &ctx.admin, "auto-stale-extra", 50).await;
    app.credit(&ctx.admin, &ctx.account, 15_000).await;
    app.clock().set_rfc3339("2025-01-01T00:00:00Z").unwrap();
    let id = active(app, &ctx, &product, 5).await;
    app.patch(
        &format!("/v1/licenses/{id}"),
        &ctx.owner,
        json!({"auto_renew_months": 12}),
    )
    .await
    .assert_status(StatusCode::OK);
    // Within the lead time, with an empty balance: one unpaid renewal order, priced for 5 extras.
    app.clock().set_rfc3339("2025-12-30T00:00:00Z").unwrap();
    app.sweep().await;
    let unpaid = super::renewals::orders(app, &ctx, "unpaid").await;
    assert_eq!(unpaid.len(), 1, "{unpaid:?}");
    assert_eq!(unpaid[0]["total"], 15_000);
    let unpaid = unpaid[0]["id"].as_str().unwrap().to_owned();
    configure(app, &ctx, &id, json!({"options": {"extra": 0}}))
        .await
        .assert_status(StatusCode::OK);
    app.wait_status(&ctx.owner, &id, "active").await;
    assert_eq!(get_order(app, &ctx, &unpaid).await["status"], "cancelled");
    app.credit(&ctx.admin, &ctx.account, 100_000).await;
    let before = balance(app, &ctx).await;
    pay(app, &ctx, &unpaid)
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(balance(app, &ctx).await, before);
    assert_eq!(
        license(app, &ctx, &id).await["options"],
        json!({"extra": 0})
    );
}

clock_test!(
    stale_configuration_cannot_mint_money,
    stale_renewal_after_upgrade,
    stale_configuration_after_product_switch,
    one_order_two_items_of_one_license,
    stale_auto_renewal_order,
);
