//! Trials: `trial_days` on products; `POST /v1/licenses` with `"trial": true` gives a free,
//! active license for that many days; one per (product, account) and one per (product,
//! address) across accounts — also under concurrency; no transfer, no auto-renewal, no
//! configuration or product change while a trial; a paid renewal (any payment method)
//! converts it, its term starting at max(`valid_until`, now).
use std::sync::Arc;

use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{all_pages, trial_product};

fn at(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

fn trial_body(product: &Value, ip: &str) -> Value {
    json!({"product_id": product["id"], "name": "Try me", "ip": ip, "trial": true})
}

async fn products_offer_trials(app: &TestApp) {
    let admin = app.admin_token().await;
    let plain = app.create_product(&admin, "no-trial").await;
    assert_eq!(plain["trial_days"], 0);
    let base =
        json!({"code": "bad-trial", "name": "Bad", "prices": [{"period_months": 1, "amount": 1}]});
    for days in [json!(91), json!(-1), json!(1_000_000_000_000_i64)] {
        let mut body = base.clone();
        body["trial_days"] = days;
        app.post("/v1/products", &admin, body)
            .await
            .assert_invalid_field("trial_days");
    }
    let product = trial_product(app, &admin, "trial-patch", 30).await;
    let path = format!("/v1/products/{}", product["id"].as_str().unwrap());
    app.patch(&path, &admin, json!({"trial_days": 120}))
        .await
        .assert_invalid_field("trial_days");
    let r = app.patch(&path, &admin, json!({"trial_days": 0})).await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["trial_days"], 0);
    let r = app.patch(&path, &admin, json!({"name": "Renamed"})).await;
    assert_eq!(r.body["trial_days"], 0);
    // Partners read it; only admins write it.
    let (_, owner) = app.partner_with_owner(&admin, "Reader").await;
    assert_eq!(app.get(&path, &owner).await.body["trial_days"], 0);
    app.patch(&path, &owner, json!({"trial_days": 7}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

async fn trial_lifecycle(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = trial_product(app, &admin, "trial-life", 14).await;
    let plain = app.create_product(&admin, "trial-none").await;
    let (a, owner_a) = app.partner_with_owner(&admin, "Trial A").await;
    let (b, owner_b) = app.partner_with_owner(&admin, "Trial B").await;

    // Refusals: 422 naming the field.
    app.post("/v1/licenses", &owner_a, trial_body(&plain, "203.0.113.5"))
        .await
        .assert_invalid_field("trial");
    let mut with_payment = trial_body(&product, "203.0.113.5");
    with_payment["payment"] = json!({"method": "balance"});
    app.post("/v1/licenses", &owner_a, with_payment)
        .await
        .assert_invalid_field("payment");
    let mut with_period = trial_body(&product, "203.0.113.5");
    with_period["period_months"] = json!(1);
    app.post("/v1/licenses", &owner_a, with_period)
        .await
        .assert_invalid_field("period_months");
    let mut with_auto = trial_body(&product, "203.0.113.5");
    with_auto["auto_renew_months"] = json!(1);
    app.post("/v1/licenses", &owner_a, with_auto)
        .await
        .assert_invalid_field("auto_renew_months");
    // Without a trial, payment and period stay required.
    app.post(
        "/v1/licenses",
        &owner_a,
        json!({"product_id": product["id"], "name": "x", "ip": "203.0.113.5", "period_months": 1}),
    )
    .await
    .assert_invalid_field("payment");
    app.post(
        "/v1/licenses",
        &owner_a,
        json!({"product_id": product["id"], "name": "x", "ip": "203.0.113.5", "payment": {"method": "balance"}}),
    )
    .await
    .assert_invalid_field("period_months");

    // A's trial: free, active, 14 days, the shortest priced period.
    let before = OffsetDateTime::now_utc();
    let mut body = trial_body(&product, "203.0.113.5");
    body["options"] = json!({"extra": 2});
    body["admin_password"] = json!("trial-root-password");
    let r = app.post("/v1/licenses", &owner_a, body).await;
    r.assert_status(StatusCode::CREATED);
    assert_eq!(r.body["order"], Value::Null);
    let trial = r.body["license"].clone();
    let id = trial["id"].as_str().unwrap().to_owned();
    assert_eq!(trial["trial"], true);
    assert_eq!(trial["period_months"], 1);
    assert_eq!(trial["auto_renew_months"], Value::Null);
    assert!(matches!(
        trial["status"].as_str(),
        Some("in_progress" | "active")
    ));
    let until = at(&trial["valid_until"]);
    let days = time::Duration::days(14);
    assert!(
        until >= before + days - time::Duration::seconds(1)
            && until <= OffsetDateTime::now_utc() + days,
        "{until}"
    );
    let active = app.wait_status(&owner_a, &id, "active").await;
    assert_eq!(active["trial"], true);
    let activated = all_pages(
        app,
        &owner_a,
        &format!("/v1/events?license_id={id}&type=license.activated"),
    )
    .await;
    assert_eq!(activated.len(), 1, "activated through the provisioner");
    // Nothing was charged or ordered.
    assert_eq!(
        app.get(&format!("/v1/accounts/{a}"), &owner_a).await.body["balance"],
        0
    );
    assert!(all_pages(app, &owner_a, "/v1/orders").await.is_empty());

    // One per (product, account), one per (product, address) — compared canonically.
    app.post(
        "/v1/licenses",
        &owner_a,
        trial_body(&product, "203.0.113.6"),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "trial_used");
    app.post(
        "/v1/licenses",
        &owner_b,
        trial_body(&product, "203.0.113.5"),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "trial_used");
    app.post(
        "/v1/licenses",
        &owner_b,
        trial_body(&product, "::ffff:203.0.113.5"),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "trial_used");
    // B's trial elsewhere.
    let r = app
        .post(
            "/v1/licenses",
            &owner_b,
            trial_body(&product, "2001:db8::7"),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    let trial_b = r.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&owner_b, &trial_b, "active").await;

    // What a trial cannot do.
    let offer = app
        .post(
            &format!("/v1/licenses/{id}/transfers"),
            &owner_a,
            json!({"to_account_id": b}),
        )
        .await;
    offer.assert_problem(StatusCode::CONFLICT, "trial_license");
    app.patch(
        &format!("/v1/licenses/{id}"),
        &owner_a,
        json!({"auto_renew_months": 12}),
    )
    .await
    .assert_invalid_field("auto_renew_months");
    app.put(
        &format!("/v1/licenses/{id}/configuration"),
        &owner_a,
        json!({"options": {"extra": 3}}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "trial_license");
    let other = trial_product(app, &admin, "trial-other", 7).await;
    app.patch(
        &format!("/v1/licenses/{id}"),
        &owner_a,
        json!({"product_id": other["id"]}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "trial_license");
    // It may move only to an address that had no trial of the product (B's is taken) …
    app.patch(
        &format!("/v1/licenses/{id}"),
        &owner_a,
        json!({"ip": "2001:db8:0:0:0:0:0:7"}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "trial_used");
    // … and then that address is taken too, as the old one stays.
    let r = app
        .patch(
            &format!("/v1/licenses/{id}"),
            &owner_a,
            json!({"ip": "203.0.113.9", "auto_renew_months": null}),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["ip"], "203.0.113.9");
    app.wait_status(&owner_a, &id, "active").await;
    let (_, owner_c) = app.partner_with_owner(&admin, "Trial C").await;
    for ip in ["203.0.113.9", "203.0.113.5"] {
        app.post("/v1/licenses", &owner_c, trial_body(&product, ip))
            .await
            .assert_problem(StatusCode::CONFLICT, "trial_used");
    }

    // Conversion by a renewal from the balance: the paid term starts at the trial's end.
    app.credit(&admin, &a, 50_000).await;
    let trial_until =
        at(&app.get(&format!("/v1/licenses/{id}"), &owner_a).await.body["valid_until"]);
    let r = app
        .post(
            &format!("/v1/licenses/{id}/renewals"),
            &owner_a,
            json!({"period_months": 12, "payment": {"method": "balance"}}),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    let converted = &r.body["license"];
    assert_eq!(converted["trial"], false);
    assert_eq!(converted["period_months"], 12);
    let paid_until = at(&converted["valid_until"]);
    let expected = trial_until.replace_year(trial_until.year() + 1).unwrap();
    assert_eq!(paid_until, expected);
    // 12 months at the options it had: 10000 + 2 × 1000.
    assert_eq!(r.body["order"]["total"], 12_000);
    assert_eq!(
        app.get(&format!("/v1/accounts/{a}"), &owner_a).await.body["balance"],
        38_000
    );
    // Now an ordinary license.
    app.patch(
        &format!("/v1/licenses/{id}"),
        &owner_a,
        json!({"auto_renew_months": 12}),
    )
    .await
    .assert_status(StatusCode::OK);
    app.post(
        &format!("/v1/licenses/{id}/transfers"),
        &owner_a,
        json!({"to_account_id": b}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    // Still A's one trial of the product.
    app.post(
        "/v1/licenses",
        &owner_a,
        trial_body(&product, "198.51.100.77"),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "trial_used");

    // B converts with an unpaid order, paid later.
    app.credit(&admin, &b, 50_000).await;
    let r = app
        .post(
            &format!("/v1/licenses/{trial_b}/renewals"),
            &owner_b,
            json!({"period_months": 1, "payment": {"method": "new_order"}}),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    assert_eq!(r.body["license"]["trial"], true, "not paid yet");
    let order = r.body["order"]["id"].as_str().unwrap().to_owned();
    app.post(&format!("/v1/orders/{order}/pay"), &owner_b, json!({}))
        .await
        .assert_status(StatusCode::OK);
    let paid = app.get(&format!("/v1/licenses/{trial_b}"), &owner_b).await;
    assert_eq!(paid.body["trial"], false);
    let renewed = all_pages(
        app,
        &owner_b,
        &format!("/v1/events?license_id={trial_b}&type=license.renewed"),
    )
    .await;
    assert_eq!(renewed[0]["before"]["trial"], true);
    assert_eq!(renewed[0]["after"]["trial"], false);

    // An admin orders a trial for an account; admins' own trials count for the provider.
    let (d, _) = app.partner_with_owner(&admin, "Trial D").await;
    let mut for_d = trial_body(&product, "192.0.2.200");
    for_d["account_id"] = json!(d);
    let r = app.post("/v1/licenses", &admin, for_d).await;
    r.assert_status(StatusCode::CREATED);
    assert_eq!(r.body["license"]["account_id"], d.as_str());
}

/// Many requests at once for the same address (several accounts), and for the same account
/// (several addresses): exactly one trial each.
async fn one_trial_under_concurrency(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = trial_product(app, &admin, "trial-race", 7).await;
    let mut owners = Vec::new();
    for n in 0..6 {
        owners.push(
            app.partner_with_owner(&admin, &format!("Racer {n}"))
                .await
                .1,
        );
    }
    let client = Arc::new(app.client.clone());
    let url = app.url("/v1/licenses");
    let race = |requests: Vec<(String, Value)>| {
        let client = Arc::clone(&client);
        let url = url.clone();
        async move {
            let mut set = tokio::task::JoinSet::new();
            for (token, body) in requests {
                let (client, url) = (Arc::clone(&client), url.clone());
                set.spawn(async move {
                    let r = client
                        .post(url)
                        .bearer_auth(token)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = r.status();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    (status, body)
                });
            }
            let mut out = Vec::new();
            while let Some(done) = set.join_next().await {
                out.push(done.unwrap());
            }
            out
        }
    };
    // Six accounts, one address (one written as its IPv4-mapped IPv6 form).
    let same_ip: Vec<(String, Value)> = owners
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let ip = if n % 2 == 0 {
                "198.51.100.50"
            } else {
                "::ffff:198.51.100.50"
            };
            (t.clone(), trial_body(&product, ip))
        })
        .collect();
    let outcomes = race(same_ip).await;
    let created = outcomes
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    for (status, body) in &outcomes {
        if *status != StatusCode::CREATED {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["code"], "trial_used", "{body}");
        }
    }
    // One account (one that has no trial yet), six addresses.
    let winner_account = outcomes
        .iter()
        .find(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, b)| b["license"]["account_id"].as_str().unwrap().to_owned())
        .unwrap();
    let mut idle = None;
    for t in &owners {
        let me = app.get("/v1/me", t).await;
        if me.body["account"]["id"] != winner_account.as_str() {
            idle = Some(t.clone());
            break;
        }
    }
    let idle = idle.unwrap();
    let same_account = (0..6)
        .map(|n| {
            (
                idle.clone(),
                trial_body(&product, &format!("198.51.100.{}", 60 + n)),
            )
        })
        .collect();
    let outcomes = race(same_account).await;
    let created = outcomes
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|(s, b)| *s == StatusCode::CREATED || b["code"] == "trial_used"),
        "{outcomes:?}"
    );
}

db_test!(
    products_offer_trials,
    trial_lifecycle,
    one_trial_under_concurrency
);
