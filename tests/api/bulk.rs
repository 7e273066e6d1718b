//! Bulk operations: dry runs that change nothing, real runs with partial failures, the match
//! limit, validation and tenant isolation.
use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// One partner with an owner, money and the standard product (1 month = 1000).
struct Ctx {
    admin: String,
    account: String,
    owner: String,
    product: Value,
}

async fn setup(app: &TestApp, code: &str, name: &str, funds: i64) -> Ctx {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, code).await;
    let (account, owner) = app.partner_with_owner(&admin, name).await;
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

/// Orders a one-month license named `name`; paid from the balance it is waited for until
/// active, else it stays `ordered`.
async fn license(app: &TestApp, ctx: &Ctx, name: &str, paid: bool) -> String {
    let payment = if paid {
        json!({"method": "balance"})
    } else {
        json!({"method": "new_order"})
    };
    let resp = app
        .post(
            "/v1/licenses",
            &ctx.owner,
            json!({"product_id": ctx.product["id"], "name": name, "ip": "192.0.2.10",
                   "period_months": 1, "payment": payment}),
        )
        .await;
    resp.assert_status(StatusCode::CREATED);
    let id = resp.body["license"]["id"].as_str().unwrap().to_owned();
    if paid {
        app.wait_status(&ctx.owner, &id, "active").await;
    }
    id
}

/// Starts a bulk operation and waits until it is completed; returns it.
async fn run(app: &TestApp, token: &str, body: Value) -> Value {
    let created = app.post("/v1/licenses/bulk", token, body).await;
    created.assert_status(StatusCode::ACCEPTED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/bulk-operations/{id}").as_str())
    );
    for _ in 0..200 {
        let op = app.get(&format!("/v1/bulk-operations/{id}"), token).await;
        op.assert_status(StatusCode::OK);
        if op.body["status"] == "completed" {
            return op.body;
        }
        assert_ne!(op.body["status"], "failed", "{}", op.text);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("bulk operation {id} never completed");
}

/// `{license_id: result}` of an operation.
fn results(op: &Value) -> std::collections::BTreeMap<String, String> {
    op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["license_id"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn status(app: &TestApp, ctx: &Ctx, id: &str) -> Value {
    let resp = app.get(&format!("/v1/licenses/{id}"), &ctx.owner).await;
    resp.assert_status(StatusCode::OK);
    resp.body
}

async fn balance(app: &TestApp, ctx: &Ctx) -> i64 {
    app.get(&format!("/v1/accounts/{}", ctx.account), &ctx.owner)
        .await
        .body["balance"]
        .as_i64()
        .unwrap()
}

async fn event_count(app: &TestApp, ctx: &Ctx) -> usize {
    let page = app.get("/v1/events?limit=200", &ctx.owner).await;
    page.assert_status(StatusCode::OK);
    page.body["items"].as_array().unwrap().len()
}

/// Three active licenses (one then disabled) and an unpaid one; 1,500 left on the balance,
/// enough for one one-month renewal (1,000).
async fn fleet(app: &TestApp, ctx: &Ctx) -> [String; 4] {
    let a = license(app, ctx, "alpha", true).await;
    let b = license(app, ctx, "beta", true).await;
    let c = license(app, ctx, "gamma", true).await;
    let d = license(app, ctx, "delta", false).await;
    app.post(&format!("/v1/licenses/{c}/disable"), &ctx.owner, json!({}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(balance(app, ctx).await, 1_500);
    [a, b, c, d]
}

async fn dry_run_changes_nothing(app: &TestApp) {
    let ctx = setup(app, "bulk-dry", "Dry", 4_500).await;
    let [a, b, c, d] = fleet(app, &ctx).await;
    let events = event_count(app, &ctx).await;

    let op = run(
        app,
        &ctx.owner,
        json!({"action": "disable", "filter": {}, "dry_run": true}),
    )
    .await;
    assert_eq!(op["dry_run"], true);
    assert_eq!(op["action"], "disable");
    assert_eq!(op["total"], 4);
    assert_eq!(op["done"], 4);
    let got = results(&op);
    assert_eq!(got[&a], "ok");
    assert_eq!(got[&b], "ok");
    assert_eq!(got[&c], "invalid_transition");
    assert_eq!(got[&d], "invalid_transition");

    // The renewal runs out of funds after the first license, as the real run would.
    let op = run(
        app,
        &ctx.owner,
        json!({"action": "renew", "filter": {"status": "active,suspended,ordered"},
               "params": {"period_months": 1}, "dry_run": true}),
    )
    .await;
    let got = results(&op);
    assert_eq!(got[&a], "ok");
    assert_eq!(got[&b], "insufficient_funds");
    assert_eq!(got[&c], "insufficient_funds");
    assert_eq!(got[&d], "invalid_transition");

    // Nothing changed: statuses, money, terms, events.
    for (id, expected) in [
        (&a, "active"),
        (&b, "active"),
        (&c, "suspended"),
        (&d, "ordered"),
    ] {
        assert_eq!(status(app, &ctx, id).await["status"], expected);
    }
    assert_eq!(balance(app, &ctx).await, 1_500);
    assert_eq!(event_count(app, &ctx).await, events);
}

async fn real_run_with_partial_failures(app: &TestApp) {
    let ctx = setup(app, "bulk-real", "Real", 4_500).await;
    let [a, b, c, d] = fleet(app, &ctx).await;
    let a_until = status(app, &ctx, &a).await["valid_until"].clone();

    // Disable: the suspended and the unpaid license refuse.
    let op = run(app, &ctx.owner, json!({"action": "disable", "filter": {}})).await;
    let got = results(&op);
    assert_eq!(got.len(), 4);
    assert_eq!(got[&a], "ok");
    assert_eq!(got[&b], "ok");
    assert_eq!(got[&c], "invalid_transition");
    assert_eq!(got[&d], "invalid_transition");
    for id in [&a, &b, &c] {
        let l = status(app, &ctx, id).await;
        assert_eq!(l["status"], "suspended");
        assert_eq!(l["suspension_reason"], "manual");
    }
    assert_eq!(status(app, &ctx, &d).await["status"], "ordered");

    // Renew from the balance: funds for one renewal only.
    let op = run(
        app,
        &ctx.owner,
        json!({"action": "renew", "filter": {"status": "suspended,ordered"},
               "params": {"period_months": 1}}),
    )
    .await;
    let got = results(&op);
    assert_eq!(got[&a], "ok");
    assert_eq!(got[&b], "insufficient_funds");
    assert_eq!(got[&c], "insufficient_funds");
    assert_eq!(got[&d], "invalid_transition");
    assert_eq!(balance(app, &ctx).await, 500);
    assert_ne!(status(app, &ctx, &a).await["valid_until"], a_until);
    let orders = app.get("/v1/orders?status=paid", &ctx.owner).await;
    let renewals = orders.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["items"][0]["kind"] == "renewal")
        .count();
    assert_eq!(renewals, 1, "one paid renewal order");

    // Auto-renewal on for a filtered subset (by name), then off.
    let op = run(
        app,
        &ctx.owner,
        json!({"action": "set_auto_renew", "filter": {"name": "ALP"},
               "params": {"auto_renew_months": 12}}),
    )
    .await;
    assert_eq!(op["total"], 1);
    assert_eq!(results(&op)[&a], "ok");
    assert_eq!(status(app, &ctx, &a).await["auto_renew_months"], 12);
    assert!(status(app, &ctx, &b).await["auto_renew_months"].is_null());
    run(
        app,
        &ctx.owner,
        json!({"action": "set_auto_renew", "filter": {"id": a},
               "params": {"auto_renew_months": null}}),
    )
    .await;
    assert!(status(app, &ctx, &a).await["auto_renew_months"].is_null());

    // Enable everything suspended; delete the unpaid one.
    let op = run(
        app,
        &ctx.owner,
        json!({"action": "enable", "filter": {"status": "suspended"}}),
    )
    .await;
    assert_eq!(op["total"], 3);
    assert!(results(&op).values().all(|r| r == "ok"), "{op}");
    for id in [&a, &b, &c] {
        app.wait_status(&ctx.owner, id, "active").await;
    }
    let op = run(
        app,
        &ctx.owner,
        json!({"action": "delete", "filter": {"status": "ordered"}}),
    )
    .await;
    assert_eq!(results(&op)[&d], "ok");
    assert_eq!(status(app, &ctx, &d).await["status"], "deleted");

    // Each applied item wrote its own event, named after the caller.
    let events = app
        .get(
            &format!("/v1/events?license_id={b}&type=license.suspended"),
            &ctx.owner,
        )
        .await;
    let items = events.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["actor"]["kind"], "user");

    // An operation that matches nothing is completed at once.
    let op = run(
        app,
        &ctx.owner,
        json!({"action": "disable", "filter": {"name": "no such license"}}),
    )
    .await;
    assert_eq!(op["total"], 0);
    assert_eq!(op["results"], json!([]));
}

async fn bad_requests(app: &TestApp) {
    let ctx = setup(app, "bulk-bad", "Bad", 0).await;
    let cases = [
        (json!({"action": "explode", "filter": {}}), "action"),
        (
            json!({"action": "renew", "filter": {}}),
            "params.period_months",
        ),
        (
            json!({"action": "renew", "filter": {}, "params": {"period_months": 5}}),
            "params.period_months",
        ),
        (
            json!({"action": "disable", "filter": {}, "params": {"period_months": 1}}),
            "params.period_months",
        ),
        (
            json!({"action": "set_auto_renew", "filter": {}, "params": {}}),
            "params.auto_renew_months",
        ),
        (
            json!({"action": "disable", "filter": {}, "params": {"colour": 1}}),
            "params.colour",
        ),
        (
            json!({"action": "disable", "filter": {"ip": "not-an-ip"}}),
            "filter.ip",
        ),
        (
            json!({"action": "disable", "filter": {"status": "gone"}}),
            "filter.status",
        ),
        (
            json!({"action": "disable", "filter": {"account_id": ctx.account}}),
            "filter.account_id",
        ),
        (
            json!({"action": "disable", "filter": {"sort": "name"}}),
            "filter.sort",
        ),
        (json!({"action": "disable"}), "filter"),
    ];
    for (body, field) in cases {
        let r = app
            .post("/v1/licenses/bulk", &ctx.owner, body.clone())
            .await;
        r.assert_invalid_field(field);
    }
    let viewer = app.user_token(&ctx.admin, &ctx.account, "viewer").await;
    app.post(
        "/v1/licenses/bulk",
        &viewer,
        json!({"action": "disable", "filter": {}}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.get(
        &format!("/v1/bulk-operations/{}", uuid::Uuid::now_v7()),
        &ctx.owner,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

async fn tenants_are_isolated(app: &TestApp) {
    let a = setup(app, "bulk-tenant", "A", 2_000).await;
    let (b_account, b_owner) = app.partner_with_owner(&a.admin, "B").await;
    app.credit(&a.admin, &b_account, 1_000).await;
    let b = Ctx {
        admin: a.admin.clone(),
        account: b_account,
        owner: b_owner,
        product: a.product.clone(),
    };
    let a1 = license(app, &a, "a-one", true).await;
    let a2 = license(app, &a, "a-two", true).await;
    let b1 = license(app, &b, "b-one", true).await;

    // B's operation over "everything" reaches only B's license.
    let op = run(app, &b.owner, json!({"action": "disable", "filter": {}})).await;
    assert_eq!(op["total"], 1);
    assert_eq!(results(&op)[&b1], "ok");
    assert_eq!(status(app, &a, &a1).await["status"], "active");
    // Naming A's license explicitly matches nothing for B.
    let op = run(
        app,
        &b.owner,
        json!({"action": "delete", "filter": {"id": a1}}),
    )
    .await;
    assert_eq!(op["total"], 0);

    // A's operation is A's: B gets 404, the admin sees it.
    let op = run(
        app,
        &a.owner,
        json!({"action": "disable", "filter": {"id": a2}}),
    )
    .await;
    let id = op["id"].as_str().unwrap();
    app.get(&format!("/v1/bulk-operations/{id}"), &b.owner)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("/v1/bulk-operations/{id}"), &a.admin)
        .await
        .assert_status(StatusCode::OK);

    // An admin may target one account; the suspension is administrative.
    let op = run(
        app,
        &a.admin,
        json!({"action": "disable", "filter": {"account_id": a.account}}),
    )
    .await;
    assert_eq!(op["total"], 2);
    assert_eq!(results(&op)[&a1], "ok");
    assert_eq!(results(&op)[&a2], "invalid_transition");
    assert_eq!(status(app, &a, &a1).await["suspension_reason"], "admin");
    // …which the partner cannot lift.
    let op = run(
        app,
        &a.owner,
        json!({"action": "enable", "filter": {"id": a1}}),
    )
    .await;
    assert_eq!(results(&op)[&a1], "forbidden");
    assert_eq!(status(app, &b, &b1).await["status"], "suspended");
}

db_test!(
    dry_run_changes_nothing,
    real_run_with_partial_failures,
    bad_requests,
    tenants_are_isolated
);

fn two_matches_at_most(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        bulk_max_matches: std::num::NonZeroU64::new(2).expect("positive"),
        ..licentia_tests::test_config(url)
    }
}

async fn too_many_matches(app: &TestApp) {
    let ctx = setup(app, "bulk-many", "Many", 3_000).await;
    let first = license(app, &ctx, "one", true).await;
    license(app, &ctx, "two", true).await;
    license(app, &ctx, "three", true).await;
    app.post(
        "/v1/licenses/bulk",
        &ctx.owner,
        json!({"action": "disable", "filter": {}, "dry_run": true}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "too_many_matches");
    // Nothing was started.
    assert_eq!(status(app, &ctx, &first).await["status"], "active");
    // Narrowed down to the limit, it runs.
    let op = run(
        app,
        &ctx.owner,
        json!({"action": "disable", "filter": {"name": "t"}}),
    )
    .await;
    assert_eq!(op["total"], 2);
}

db_test!(config = two_matches_at_most; too_many_matches);
