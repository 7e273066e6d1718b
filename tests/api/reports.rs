//! Reports (CONTRACT §11): licenses by status and product with those expiring soon, and
//! revenue from the ledger by period and product; tenant-scoped, admins across accounts.
use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

async fn order(
    app: &TestApp,
    token: &str,
    product: &Value,
    period: u32,
    payment: Value,
) -> licentia_tests::Resp {
    let r = app
        .post(
            "/v1/licenses",
            token,
            json!({"product_id": product["id"], "name": "Reported", "ip": "192.0.2.20",
                   "period_months": period, "options": {"extra_domains": 2}, "payment": payment}),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    r
}

async fn active(app: &TestApp, token: &str, product: &Value, period: u32) -> String {
    let r = order(app, token, product, period, json!({"method": "balance"})).await;
    let id = r.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(token, &id, "active").await;
    id
}

async fn report(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app
        .get(&format!("/v1/reports/licenses?{query}"), token)
        .await;
    r.assert_status(StatusCode::OK);
    r.body
}

async fn license_report(app: &TestApp) {
    let admin = app.admin_token().await;
    let panel = app.create_product(&admin, "rep-panel").await;
    let mail = app.create_product(&admin, "rep-mail").await;
    let (a, owner_a) = app.partner_with_owner(&admin, "Reporter A").await;
    let (b, owner_b) = app.partner_with_owner(&admin, "Reporter B").await;
    app.credit(&admin, &a, 1_000_000).await;
    app.credit(&admin, &b, 1_000_000).await;

    // A: panel ×3 active (one for 1 month), one of them then suspended; mail ×1 ordered;
    // panel ×1 deleted (not counted).
    active(app, &owner_a, &panel, 12).await;
    let monthly = active(app, &owner_a, &panel, 1).await;
    let suspended = active(app, &owner_a, &panel, 12).await;
    app.post(
        &format!("/v1/licenses/{suspended}/disable"),
        &owner_a,
        json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    order(app, &owner_a, &mail, 12, json!({"method": "new_order"})).await;
    let deleted = active(app, &owner_a, &panel, 12).await;
    app.delete(&format!("/v1/licenses/{deleted}"), &owner_a)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // B: mail ×2 active.
    active(app, &owner_b, &mail, 12).await;
    active(app, &owner_b, &mail, 1).await;

    let mine = report(app, &owner_a, "").await;
    assert_eq!(mine["total"], 4, "{mine}");
    assert_eq!(
        mine["by_status"],
        json!({"ordered": 1, "active": 2, "suspended": 1, "in_progress": 0})
    );
    assert_eq!(
        mine["by_product"],
        json!([
            {"product_id": panel["id"], "code": "rep-panel", "count": 3},
            {"product_id": mail["id"], "code": "rep-mail", "count": 1},
        ])
    );
    assert_eq!(mine["expiring_within_days"], 30);
    // A month is 28 to 31 days: within 32 days, never within 27.
    assert_eq!(
        report(app, &owner_a, "expiring_within_days=27").await["expiring"],
        0
    );
    let soon = report(app, &owner_a, "expiring_within_days=32").await;
    assert_eq!(soon["expiring"], 1, "only {monthly}: {soon}");
    assert_eq!(soon["expiring_within_days"], 32);

    // Partners: their own account, named or not; another one is 422.
    let me = report(app, &owner_a, &format!("account_id={a}")).await;
    assert_eq!(me["total"], 4);
    app.get(&format!("/v1/reports/licenses?account_id={b}"), &owner_a)
        .await
        .assert_invalid_field("account_id");
    // Admins: one account or all.
    assert_eq!(
        report(app, &admin, &format!("account_id={b}")).await["total"],
        2
    );
    let all = report(app, &admin, "expiring_within_days=32").await;
    assert_eq!(all["total"], 6);
    assert_eq!(all["by_status"]["active"], 4);
    assert_eq!(all["expiring"], 2);
    assert_eq!(all["by_product"][0]["code"], "rep-mail");
    assert_eq!(all["by_product"][0]["count"], 3);
    app.get(
        &format!("/v1/reports/licenses?account_id={}", uuid::Uuid::now_v7()),
        &admin,
    )
    .await
    .assert_invalid_field("account_id");
    // Viewers read reports (licenses:read).
    let viewer = app.user_token(&admin, &a, "viewer").await;
    assert_eq!(report(app, &viewer, "").await["total"], 4);

    for (query, field) in [
        ("expiring_within_days=0", "expiring_within_days"),
        ("expiring_within_days=366", "expiring_within_days"),
        ("expiring_within_days=soon", "expiring_within_days"),
        ("account_id=nope", "account_id"),
        ("status=active", "status"),
    ] {
        app.get(&format!("/v1/reports/licenses?{query}"), &owner_a)
            .await
            .assert_invalid_field(field);
    }
}

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap().replace('+', "%2B")
}

async fn revenue(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app
        .get(&format!("/v1/reports/revenue?{query}"), token)
        .await;
    r.assert_status(StatusCode::OK);
    r.body
}

async fn ledger_sum(app: &TestApp, token: &str, account: &str, kind: &str) -> i64 {
    let r = app
        .get(&format!("/v1/accounts/{account}/ledger?limit=200"), token)
        .await;
    r.assert_status(StatusCode::OK);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["amount"].as_i64().unwrap().abs())
        .sum()
}

async fn revenue_report(app: &TestApp) {
    let admin = app.admin_token().await;
    let panel = app.create_product(&admin, "rev-panel").await;
    let mail = app.create_product(&admin, "rev-mail").await;
    let (a, owner_a) = app.partner_with_owner(&admin, "Payer A").await;
    let (b, owner_b) = app.partner_with_owner(&admin, "Payer B").await;
    let start = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    app.credit(&admin, &a, 500_000).await;
    app.credit(&admin, &b, 100_000).await;

    // A: a panel license paid at once (12 months: 10000 + 2 × 1000).
    let first = active(app, &owner_a, &panel, 12).await;
    // One invoice for two licenses of two products, paid in one charge.
    let invoice = order(app, &owner_a, &panel, 1, json!({"method": "new_order"})).await;
    let order_id = invoice.body["order"]["id"].as_str().unwrap().to_owned();
    order(
        app,
        &owner_a,
        &mail,
        1,
        json!({"method": "existing_order", "order_id": order_id}),
    )
    .await;
    app.post(&format!("/v1/orders/{order_id}/pay"), &owner_a, json!({}))
        .await
        .assert_status(StatusCode::OK);
    // A downgrade of the first license: a refund for the panel.
    app.put(
        &format!("/v1/licenses/{first}/configuration"),
        &owner_a,
        json!({"options": {"extra_domains": 0}}),
    )
    .await
    .assert_status(StatusCode::OK);
    // B: one mail license.
    active(app, &owner_b, &mail, 12).await;
    let end = OffsetDateTime::now_utc() + time::Duration::seconds(5);

    let charges = ledger_sum(app, &owner_a, &a, "charge").await;
    let refunds = ledger_sum(app, &owner_a, &a, "refund").await;
    // 12000 + (1000 + 200) + (1000 + 200).
    assert_eq!(charges, 14_400);
    assert!(refunds > 0 && refunds <= 2_000, "{refunds}");

    let period = format!("from={}&to={}", at(start), at(end));
    let mine = revenue(app, &owner_a, &period).await;
    assert_eq!(mine["currency"], "USD");
    assert_eq!(mine["charges"], charges);
    assert_eq!(mine["refunds"], refunds);
    assert_eq!(mine["credits"], 500_000);
    assert_eq!(mine["net_charges"], charges - refunds);
    assert!(mine["from"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        mine["by_product"],
        json!([
            {"product_id": panel["id"], "code": "rev-panel", "charges": 13_200, "refunds": refunds},
            {"product_id": mail["id"], "code": "rev-mail", "charges": 1_200, "refunds": 0},
        ]),
        "{mine}"
    );
    // The same with the account named; a viewer reads it too (billing:read).
    let viewer = app.user_token(&admin, &a, "viewer").await;
    assert_eq!(
        revenue(app, &viewer, &format!("{period}&account_id={a}")).await,
        mine
    );
    app.get(
        &format!("/v1/reports/revenue?{period}&account_id={b}"),
        &owner_a,
    )
    .await
    .assert_invalid_field("account_id");

    // Admins: everyone, or one account.
    let all = revenue(app, &admin, &period).await;
    assert_eq!(all["charges"], charges + 12_000);
    assert_eq!(all["credits"], 600_000);
    assert_eq!(
        all["by_product"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["charges"].as_i64().unwrap())
            .sum::<i64>(),
        all["charges"].as_i64().unwrap(),
        "every charge is attributed to products: {all}"
    );
    assert_eq!(
        revenue(app, &admin, &format!("{period}&account_id={a}")).await,
        mine
    );
    // Entries written before the allocations existed (migration m0009) are attributed the
    // same way by the migration's backfill: from the order's items and the refund's license.
    {
        use sea_orm::ConnectionTrait;
        let db = app.state.db.conn();
        db.execute_unprepared("DELETE FROM ledger_allocations")
            .await
            .unwrap();
        assert_eq!(
            revenue(app, &owner_a, &period).await["by_product"],
            json!([])
        );
        licentia_migration::m0009_usage::backfill_allocations(db)
            .await
            .unwrap();
        // Twice: what has its allocations is left alone.
        licentia_migration::m0009_usage::backfill_allocations(db)
            .await
            .unwrap();
    }
    assert_eq!(revenue(app, &owner_a, &period).await, mine);
    assert_eq!(revenue(app, &admin, &period).await, all);

    // A period with nothing in it.
    let empty = revenue(
        app,
        &admin,
        &format!(
            "from={}&to={}",
            at(start - time::Duration::days(30)),
            at(start - time::Duration::days(1))
        ),
    )
    .await;
    assert_eq!(
        (
            empty["charges"].clone(),
            empty["refunds"].clone(),
            empty["credits"].clone()
        ),
        (json!(0), json!(0), json!(0))
    );
    assert_eq!(empty["by_product"], json!([]));

    let now = OffsetDateTime::now_utc();
    for (query, field) in [
        (format!("to={}", at(now)), "from"),
        (format!("from={}", at(now)), "to"),
        (format!("from=yesterday&to={}", at(now)), "from"),
        (format!("from={}&to={}", at(now), at(now)), "to"),
        (
            format!("from={}&to={}", at(now), at(now - time::Duration::days(1))),
            "to",
        ),
        (
            format!(
                "from={}&to={}",
                at(now - time::Duration::days(401)),
                at(now)
            ),
            "to",
        ),
        (format!("{period}&bogus=1"), "bogus"),
    ] {
        app.get(&format!("/v1/reports/revenue?{query}"), &owner_a)
            .await
            .assert_invalid_field(field);
    }
    // Exactly 400 days is allowed, any offset accepted.
    revenue(
        app,
        &owner_a,
        &format!(
            "from={}&to={}",
            "2025-01-01T00:00:00%2B02:00",
            at(
                OffsetDateTime::parse("2025-01-01T00:00:00+02:00", &Rfc3339).unwrap()
                    + time::Duration::days(400)
            )
        ),
    )
    .await;
}

db_test!(license_report, revenue_report);
