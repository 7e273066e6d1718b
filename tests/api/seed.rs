//! `licentia seed`: the benchmark data set reads back through the API like licenses ordered
//! there, and its reproducible ids, keys and owners are what the benchmark scripts rely on.
use licentia_api::seed::{self, SeedSize, account_index, license_id, status_of};
use licentia_domain::license::LicenseStatus;
use licentia_tests::{Backend, Resp, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn with_key(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Resp {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("X-API-Key", key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    Resp::from(req.send().await.unwrap()).await
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_licenses_read_back_through_the_api() {
    let Some(app) = TestApp::builder(Backend::Postgres).start().await else {
        return;
    };
    let size = SeedSize {
        accounts: 3,
        licenses: 2_500,
    };
    let manifest = seed::seed(&app.state, size).await.unwrap();
    assert_eq!(manifest.accounts.len(), 3);
    let key = &manifest.accounts[0].api_key;
    let account = manifest.accounts[0].id.to_string();

    // The seed leaves the due work done, as a running service would: the next sweep finds
    // nothing to renew, expire, delete or announce.
    let sweep = licentia_app::sweeps::run(&app.state).await.unwrap();
    assert_eq!(
        (sweep.renewed, sweep.renewal_orders, sweep.expired),
        (0, 0, 0),
        "{sweep:?}"
    );
    assert_eq!(
        (sweep.deleted, sweep.notified, sweep.errors),
        (0, 0, 0),
        "{sweep:?}"
    );

    // The largest partner sees exactly its own licenses, deleted ones excepted.
    let expected = (0..size.licenses)
        .filter(|&n| account_index(n, size.accounts) == 0)
        .filter(|&n| status_of(n).0 != LicenseStatus::Deleted)
        .count();
    let (mut seen, mut cursor) = (0, None::<String>);
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/licenses?limit=200&cursor={c}"),
            None => "/v1/licenses?limit=200".to_owned(),
        };
        let page = with_key(&app, Method::GET, &path, key, None).await;
        page.assert_status(StatusCode::OK);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.iter().all(|l| l["account_id"] == account.as_str()));
        seen += items.len();
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    // License n is addressable from n alone: id, key, status and machines.
    let n = (1..size.licenses)
        .find(|&n| {
            account_index(n, size.accounts) == 0
                && n % 4 == 1
                && status_of(n).0 == LicenseStatus::Active
        })
        .unwrap();
    let id = license_id(n, manifest.base_ms, manifest.step_ms);
    let got = with_key(&app, Method::GET, &format!("/v1/licenses/{id}"), key, None).await;
    got.assert_status(StatusCode::OK);
    assert_eq!(got.body["registration_key"], format!("seedkey-{n:010}"));
    assert_eq!(got.body["status"], "active");
    assert_eq!(got.body["registrations_count"], 1);

    let valid = app
        .client
        .post(app.url("/v1/validate"))
        .json(&json!({"registration_key": format!("seedkey-{n:010}"), "fingerprint": format!("machine-{n}-0")}))
        .send()
        .await
        .unwrap();
    let valid = Resp::from(valid).await;
    valid.assert_status(StatusCode::OK);
    assert_eq!(valid.body["code"], "VALID", "{}", valid.text);

    // Another partner's license is not found with this key.
    let other = (0..size.licenses)
        .find(|&n| account_index(n, size.accounts) == 1)
        .unwrap();
    let other_id = license_id(other, manifest.base_ms, manifest.step_ms);
    with_key(
        &app,
        Method::GET,
        &format!("/v1/licenses/{other_id}"),
        key,
        None,
    )
    .await
    .assert_status(StatusCode::NOT_FOUND);

    // Renewal from the seeded balance charges it and extends the term.
    let before = got.body["valid_until"].as_str().unwrap().to_owned();
    let admin = app.admin_token().await;
    let balance = |body: &serde_json::Value| body["balance"].as_i64().unwrap();
    let start = app.get(&format!("/v1/accounts/{account}"), &admin).await;
    start.assert_status(StatusCode::OK);
    let renewed = with_key(
        &app,
        Method::POST,
        &format!("/v1/licenses/{id}/renewals"),
        key,
        Some(json!({"period_months": 1, "payment": {"method": "balance"}})),
    )
    .await;
    renewed.assert_status(StatusCode::CREATED);
    assert!(renewed.body["license"]["valid_until"].as_str().unwrap() > before.as_str());
    let acct = app.get(&format!("/v1/accounts/{account}"), &admin).await;
    acct.assert_status(StatusCode::OK);
    let charged = renewed.body["order"]["total"].as_i64().unwrap();
    assert!(charged > 0);
    assert_eq!(
        balance(&acct.body),
        balance(&start.body) - charged,
        "{}",
        acct.text
    );

    // A database that holds licenses is never seeded again.
    let again = seed::seed(&app.state, size).await.unwrap_err();
    assert!(again.contains("already holds"), "{again}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_refuses_sqlite() {
    let app = TestApp::builder(Backend::Sqlite).spawn().await;
    let err = seed::seed(
        &app.state,
        SeedSize {
            accounts: 1,
            licenses: 10,
        },
    )
    .await
    .unwrap_err();
    assert!(err.contains("PostgreSQL"), "{err}");
    app.finish().await;
}
