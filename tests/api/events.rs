//! `GET /v1/events`: every state change is in the log, scoped to its tenant, filterable and
//! keyset-paged newest first.
use std::collections::HashSet;

use licentia_tests::{TestApp, db_test};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn order_body(product: &Value, payment: Value) -> Value {
    json!({"product_id": product["id"], "name": "Web 1", "ip": "192.0.2.10", "period_months": 12,
           "options": {"extra_domains": 2}, "payment": payment})
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap()
}

fn types(page: &Value) -> Vec<&str> {
    items(page)
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

/// Every event of the query, following `next_cursor` with pages of `limit`.
async fn all_events(app: &TestApp, token: &str, query: &str, limit: u32) -> Vec<Value> {
    let sep = if query.is_empty() { "" } else { "&" };
    let mut path = format!("/v1/events?{query}{sep}limit={limit}");
    let mut out = Vec::new();
    loop {
        let page = app.get(&path, token).await;
        page.assert_status(StatusCode::OK);
        assert!(items(&page.body).len() <= limit as usize);
        out.extend(items(&page.body).iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/events?{query}{sep}limit={limit}&cursor={c}"),
            None => return out,
        }
    }
}

/// Asserts ids strictly descending: newest first.
#[track_caller]
fn assert_newest_first(events: &[Value]) {
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {ids:?}"
    );
}

async fn lifecycle_writes_events(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (a, owner) = app.partner_with_owner(&admin, "A").await;
    let me = app.get("/v1/me", &owner).await;
    me.assert_status(StatusCode::OK);
    let owner_id = me.body["user"]["id"].as_str().unwrap().to_owned();
    app.credit(&admin, &a, 50_000).await;

    // Ordering on an invoice: `license.ordered` by the user, nothing before it.
    let ordered = app
        .post(
            "/v1/licenses",
            &owner,
            order_body(&product, json!({"method": "new_order"})),
        )
        .await;
    ordered.assert_status(StatusCode::CREATED);
    let lic = ordered.body["license"]["id"].as_str().unwrap().to_owned();
    let order = ordered.body["order"]["id"].as_str().unwrap().to_owned();
    let page = app
        .get(&format!("/v1/events?license_id={lic}"), &owner)
        .await;
    page.assert_status(StatusCode::OK);
    assert_eq!(types(&page.body), ["license.ordered"]);
    assert_eq!(page.body["next_cursor"], Value::Null);
    let ev = &items(&page.body)[0];
    assert_eq!(ev["license_id"], lic.as_str());
    assert_eq!(ev["account_id"], a.as_str());
    assert_eq!(ev["actor"], json!({"kind": "user", "id": owner_id}));
    assert_eq!(ev["before"], Value::Null);
    assert_eq!(ev["after"]["status"], "ordered");
    assert!(ev["created_at"].as_str().unwrap().ends_with('Z'));

    // Paying writes `order.paid`; provisioning then writes `license.activated` as the system.
    app.post(&format!("/v1/orders/{order}/pay"), &owner, json!({}))
        .await
        .assert_status(StatusCode::OK);
    let paid = app.get("/v1/events?type=order.paid", &owner).await;
    paid.assert_status(StatusCode::OK);
    assert_eq!(types(&paid.body), ["order.paid"]);
    let ev = &items(&paid.body)[0];
    assert_eq!(ev["account_id"], a.as_str());
    assert_eq!(ev["after"]["order_id"], order.as_str());
    assert_eq!(ev["actor"]["kind"], "user");
    app.wait_status(&owner, &lic, "active").await;
    let activated = app
        .get(
            &format!("/v1/events?license_id={lic}&type=license.activated"),
            &owner,
        )
        .await;
    activated.assert_status(StatusCode::OK);
    assert_eq!(types(&activated.body), ["license.activated"]);
    let ev = &items(&activated.body)[0];
    assert_eq!(ev["actor"], json!({"kind": "system", "id": null}));
    assert_eq!(ev["before"]["status"], "in_progress");
    assert_eq!(ev["after"]["status"], "active");
    assert!(ev["after"]["valid_until"].is_string());

    // Disabling writes `license.suspended` with the status before and after.
    app.post(&format!("/v1/licenses/{lic}/disable"), &owner, json!({}))
        .await
        .assert_status(StatusCode::OK);
    let suspended = app
        .get(
            &format!("/v1/events?license_id={lic}&type=license.suspended"),
            &owner,
        )
        .await;
    suspended.assert_status(StatusCode::OK);
    let ev = &items(&suspended.body)[0];
    assert_eq!(items(&suspended.body).len(), 1);
    assert_eq!(ev["before"]["status"], "active");
    assert_eq!(ev["after"]["status"], "suspended");
    assert_eq!(ev["after"]["suspension_reason"], "manual");
    assert_eq!(ev["actor"], json!({"kind": "user", "id": owner_id}));

    // The license's whole history, newest first: ordered … activated … suspended.
    let history = app
        .get(&format!("/v1/events?license_id={lic}"), &owner)
        .await;
    history.assert_status(StatusCode::OK);
    let history = items(&history.body).clone();
    assert_newest_first(&history);
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"license.suspended"));
    assert_eq!(kinds.last(), Some(&"license.ordered"));
    assert_eq!(
        kinds.iter().filter(|t| **t == "license.activated").count(),
        1
    );
    assert!(history.iter().all(|e| e["license_id"] == lic.as_str()));

    // A second license, paid at once; the filters combine.
    let second = app
        .post(
            "/v1/licenses",
            &owner,
            order_body(&product, json!({"method": "balance"})),
        )
        .await;
    second.assert_status(StatusCode::CREATED);
    let lic2 = second.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&owner, &lic2, "active").await;
    let both = app.get("/v1/events?type=license.ordered", &owner).await;
    both.assert_status(StatusCode::OK);
    assert_eq!(items(&both.body).len(), 2);
    assert_eq!(items(&both.body)[0]["license_id"], lic2.as_str());
    assert_eq!(items(&both.body)[1]["license_id"], lic.as_str());
    let one = app
        .get(
            &format!("/v1/events?type=license.ordered&license_id={lic2}"),
            &owner,
        )
        .await;
    assert_eq!(items(&one.body).len(), 1);
    let none = app
        .get(
            &format!("/v1/events?type=license.suspended&license_id={lic2}"),
            &owner,
        )
        .await;
    none.assert_status(StatusCode::OK);
    assert!(items(&none.body).is_empty());
    assert_eq!(
        app.get("/v1/events?type=no.such_type", &owner).await.body["items"],
        json!([])
    );

    // A viewer reads the log too.
    let viewer = app.user_token(&admin, &a, "viewer").await;
    let seen = all_events(app, &viewer, "", 50).await;
    assert!(seen.len() >= 7, "{seen:?}");
    assert!(seen.iter().all(|e| e["account_id"] == a.as_str()));

    // Partner B sees none of A's events, not even when it names A's license.
    let (b, b_owner) = app.partner_with_owner(&admin, "B").await;
    let b_events = all_events(app, &b_owner, "", 50).await;
    assert!(b_events.iter().all(|e| e["account_id"] == b.as_str()));
    let foreign = app
        .get(&format!("/v1/events?license_id={lic}"), &b_owner)
        .await;
    foreign.assert_status(StatusCode::OK);
    assert_eq!(foreign.body, json!({"items": [], "next_cursor": null}));
    app.get(&format!("/v1/events?account_id={a}"), &b_owner)
        .await
        .assert_invalid_field("account_id");
    app.get(&format!("/v1/events?account_id={a}"), &owner)
        .await
        .assert_invalid_field("account_id");

    // The provider sees every account's, and may narrow to one.
    let everything = all_events(app, &admin, "", 200).await;
    assert_newest_first(&everything);
    assert!(everything.iter().any(|e| e["account_id"] == a.as_str()));
    let only_a = all_events(app, &admin, &format!("account_id={a}"), 200).await;
    assert_eq!(only_a, seen);
    let only_b = all_events(app, &admin, &format!("account_id={b}"), 200).await;
    assert!(only_b.iter().all(|e| e["account_id"] == b.as_str()));
    let admin_lic = app
        .get(&format!("/v1/events?license_id={lic}"), &admin)
        .await;
    assert_eq!(items(&admin_lic.body), &history);
}

async fn events_page_with_cursors(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (_, owner) = app.partner_with_owner(&admin, "Pager").await;
    let (_, other) = app.partner_with_owner(&admin, "Other").await;
    for _ in 0..5 {
        app.post(
            "/v1/licenses",
            &owner,
            order_body(&product, json!({"method": "new_order"})),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }

    let whole = app
        .get("/v1/events?type=license.ordered&limit=200", &owner)
        .await;
    let whole = items(&whole.body).clone();
    assert_eq!(whole.len(), 5);
    assert_newest_first(&whole);

    // Pages of two: 2 + 2 + 1, the same rows in the same order, no repeats.
    let first = app
        .get("/v1/events?type=license.ordered&limit=2", &owner)
        .await;
    first.assert_status(StatusCode::OK);
    assert_eq!(items(&first.body).len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let paged = all_events(app, &owner, "type=license.ordered", 2).await;
    assert_eq!(paged, whole);
    let ids: HashSet<&str> = paged.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5);
    let exact = app
        .get("/v1/events?type=license.ordered&limit=5", &owner)
        .await;
    assert_eq!(exact.body["next_cursor"], Value::Null);

    // A cursor belongs to its caller and its filter.
    app.get(
        &format!("/v1/events?type=license.ordered&limit=2&cursor={cursor}"),
        &other,
    )
    .await
    .assert_invalid_field("cursor");
    app.get(
        &format!("/v1/events?type=order.paid&limit=2&cursor={cursor}"),
        &owner,
    )
    .await
    .assert_invalid_field("cursor");
    app.get(&format!("/v1/events?limit=2&cursor={cursor}"), &owner)
        .await
        .assert_invalid_field("cursor");
}

async fn bad_event_queries(app: &TestApp) {
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Picky").await;
    for (query, field) in [
        ("foo=1", "foo"),
        ("license=1", "license"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=201", "limit"),
        ("limit=1000000", "limit"),
        ("limit=abc", "limit"),
        ("license_id=nope", "license_id"),
        ("type=", "type"),
        ("type=License%20Activated", "type"),
        ("cursor=garbage", "cursor"),
        ("cursor=", "cursor"),
    ] {
        let got = app.get(&format!("/v1/events?{query}"), &owner).await;
        got.assert_invalid_field(field);
    }
    let long = "a".repeat(65);
    app.get(&format!("/v1/events?type={long}"), &owner)
        .await
        .assert_invalid_field("type");
    app.get("/v1/events?account_id=nope", &admin)
        .await
        .assert_invalid_field("account_id");
    app.call(Method::GET, "/v1/events", None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

db_test!(
    lifecycle_writes_events,
    events_page_with_cursors,
    bad_event_queries
);
