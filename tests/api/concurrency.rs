//! Money under concurrency (CONTRACT §5): several server processes on one PostgreSQL
//! database never overdraw an account, never take an order's payment twice, and activate
//! every paid license exactly once. The SQLite run drives the same scenario through one
//! process.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use licentia_tests::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

/// One license costs this much: the 1-month price of `create_product`, no options.
const PRICE: i64 = 1000;

fn order_body(product: &Value, name: &str, payment: Value) -> Value {
    json!({"product_id": product["id"], "name": name, "ip": "192.0.2.20", "period_months": 1,
           "payment": payment})
}

/// Fires every `(instance, path, body)` POST at once (released together by a barrier) and
/// answers `(status, body)` in the same order.
async fn fire(
    instances: &[&TestApp],
    token: &str,
    requests: Vec<(usize, String, Value)>,
) -> Vec<(StatusCode, Value)> {
    let gate = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(instance, path, body)| {
            let app = instances[instance % instances.len()];
            let client = app.client.clone();
            let url = app.url(&path);
            let token = token.to_owned();
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                gate.wait().await;
                let res = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let resp = licentia_tests::Resp::from(res).await;
                (resp.status, resp.body)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

/// Every item of a list, following `next_cursor`.
async fn all_pages(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut url = format!("{path}{sep}limit=7");
    let mut out = Vec::new();
    loop {
        let page = app.get(&url, token).await;
        page.assert_status(StatusCode::OK);
        out.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => url = format!("{path}{sep}limit=7&cursor={c}"),
            None => return out,
        }
    }
}

/// The money invariants: balance = Σ ledger ≥ −credit_limit, and no order charged twice.
/// Returns the ledger.
async fn assert_books_balance(app: &TestApp, admin: &str, account: &str) -> Vec<Value> {
    let acct = app.get(&format!("/v1/accounts/{account}"), admin).await;
    acct.assert_status(StatusCode::OK);
    let balance = acct.body["balance"].as_i64().unwrap();
    let credit_limit = acct.body["credit_limit"].as_i64().unwrap();
    let ledger = all_pages(app, admin, &format!("/v1/accounts/{account}/ledger")).await;
    let sum: i64 = ledger.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
    assert_eq!(balance, sum, "balance is not the sum of the ledger");
    assert!(balance >= -credit_limit, "{balance} below -{credit_limit}");
    let mut charges_per_order: HashMap<&str, usize> = HashMap::new();
    for e in ledger.iter().filter(|e| e["kind"] == "charge") {
        *charges_per_order
            .entry(e["order_id"].as_str().expect("a charge names its order"))
            .or_default() += 1;
    }
    assert!(
        charges_per_order.values().all(|n| *n == 1),
        "an order was charged twice: {charges_per_order:?}"
    );
    ledger
}

/// Every license reaches `active`, and its log holds exactly one `license.activated`.
async fn assert_activated_once(app: &TestApp, token: &str, licenses: &[String]) {
    for id in licenses {
        app.wait_status(token, id, "active").await;
    }
    // A second (wrong) activation would come from another worker's pass: give them a few.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for id in licenses {
        let events = all_pages(
            app,
            token,
            &format!("/v1/events?license_id={id}&type=license.activated"),
        )
        .await;
        assert_eq!(events.len(), 1, "license {id} activated {events:?}");
        assert_eq!(events[0]["actor"]["kind"], "system");
    }
}

/// 40 concurrent balance orders against funds for exactly 10 (part balance, part credit
/// limit): exactly 10 × 201, 30 × 402, and the books balance.
async fn balance_orders_never_overdraw(instances: &[&TestApp]) {
    let app = instances[0];
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "race").await;
    let (account, owner) = app.partner_with_owner(&admin, "Racer").await;
    app.credit(&admin, &account, 6 * PRICE).await;
    app.patch(
        &format!("/v1/accounts/{account}"),
        &admin,
        json!({"credit_limit": 4 * PRICE}),
    )
    .await
    .assert_status(StatusCode::OK);

    let requests = (0..40)
        .map(|i| {
            (
                i,
                "/v1/licenses".to_owned(),
                order_body(&product, &format!("race {i}"), json!({"method": "balance"})),
            )
        })
        .collect();
    let answers = fire(instances, &owner, requests).await;
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut created = Vec::new();
    for (status, body) in &answers {
        *by_status.entry(status.as_u16()).or_default() += 1;
        match *status {
            StatusCode::CREATED => {
                assert_eq!(body["order"]["status"], "paid");
                created.push(body["license"]["id"].as_str().unwrap().to_owned());
            }
            StatusCode::PAYMENT_REQUIRED => assert_eq!(body["code"], "insufficient_funds"),
            _ => {}
        }
    }
    assert_eq!(
        by_status,
        BTreeMap::from([(201, 10), (402, 30)]),
        "{answers:?}"
    );

    let ledger = assert_books_balance(app, &admin, &account).await;
    assert_eq!(ledger.len(), 11, "one credit and ten charges: {ledger:?}");
    let acct = app.get(&format!("/v1/accounts/{account}"), &admin).await;
    assert_eq!(acct.body["balance"], -4 * PRICE);

    // A refused order left nothing behind: ten licenses, ten paid orders, ten of each event.
    let licenses = all_pages(app, &owner, "/v1/licenses").await;
    assert_eq!(licenses.len(), 10);
    assert_eq!(all_pages(app, &owner, "/v1/orders").await.len(), 10);
    let ordered = all_pages(app, &owner, "/v1/events?type=license.ordered").await;
    assert_eq!(ordered.len(), 10);
    assert_eq!(
        all_pages(app, &owner, "/v1/events?type=order.paid")
            .await
            .len(),
        10
    );
    assert_activated_once(app, &owner, &created).await;
}

/// 20 unpaid orders, each paid twice at once across the instances, with funds for 15: each
/// order is paid at most once (the other attempt 409, or both 402), exactly 15 are paid,
/// the books balance and every paid license activates exactly once.
async fn orders_are_paid_once(instances: &[&TestApp]) {
    let app = instances[0];
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "invoiced").await;
    let (account, owner) = app.partner_with_owner(&admin, "Payer").await;
    app.credit(&admin, &account, 15 * PRICE).await;

    let mut orders = Vec::new();
    for i in 0..20 {
        let resp = app
            .post(
                "/v1/licenses",
                &owner,
                order_body(
                    &product,
                    &format!("invoice {i}"),
                    json!({"method": "new_order", "pay_now": false}),
                ),
            )
            .await;
        resp.assert_status(StatusCode::CREATED);
        assert_eq!(resp.body["license"]["status"], "ordered");
        orders.push((
            resp.body["order"]["id"].as_str().unwrap().to_owned(),
            resp.body["license"]["id"].as_str().unwrap().to_owned(),
        ));
    }

    // Each order's two attempts go to different instances.
    let requests = orders
        .iter()
        .enumerate()
        .flat_map(|(i, (order, _))| {
            let path = format!("/v1/orders/{order}/pay");
            [(i, path.clone(), json!({})), (i + 1, path, json!({}))]
        })
        .collect();
    let answers = fire(instances, &owner, requests).await;
    let mut paid_licenses = Vec::new();
    let mut unpaid = Vec::new();
    for (pair, (order, license)) in answers.chunks(2).zip(&orders) {
        let mut statuses: Vec<u16> = pair.iter().map(|(s, _)| s.as_u16()).collect();
        statuses.sort_unstable();
        match statuses.as_slice() {
            [200, 409] => {
                let problem = &pair.iter().find(|(s, _)| s.as_u16() == 409).unwrap().1;
                assert_eq!(problem["code"], "invalid_transition");
                paid_licenses.push(license.clone());
            }
            [402, 402] => unpaid.push((order.clone(), license.clone())),
            other => panic!("order {order} answered {other:?}: {pair:?}"),
        }
    }
    assert_eq!(paid_licenses.len(), 15);
    assert_eq!(unpaid.len(), 5);

    let ledger = assert_books_balance(app, &admin, &account).await;
    assert_eq!(
        ledger.len(),
        16,
        "one credit and fifteen charges: {ledger:?}"
    );
    assert_eq!(
        app.get(&format!("/v1/accounts/{account}"), &admin)
            .await
            .body["balance"],
        0
    );
    for (order, license) in &unpaid {
        let got = app.get(&format!("/v1/orders/{order}"), &owner).await;
        assert_eq!(got.body["status"], "unpaid");
        let got = app.get(&format!("/v1/licenses/{license}"), &owner).await;
        assert_eq!(got.body["status"], "ordered");
    }
    let paid_events = all_pages(app, &owner, "/v1/events?type=order.paid").await;
    assert_eq!(paid_events.len(), 15);
    assert_activated_once(app, &owner, &paid_licenses).await;
    for (_, license) in &unpaid {
        let none = app
            .get(
                &format!("/v1/events?license_id={license}&type=license.activated"),
                &owner,
            )
            .await;
        assert_eq!(none.body["items"], json!([]));
    }
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres() {
    let Some(first) = TestApp::builder(Backend::Postgres).start().await else {
        return;
    };
    let second = first.spawn_second_instance().await;
    balance_orders_never_overdraw(&[&first, &second]).await;
    orders_are_paid_once(&[&first, &second]).await;
    second.finish().await;
    first.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_on_sqlite() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    balance_orders_never_overdraw(&[&app]).await;
    orders_are_paid_once(&[&app]).await;
    app.finish().await;
}
