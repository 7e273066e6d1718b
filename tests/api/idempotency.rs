//! `Idempotency-Key` (CONTRACT §5, THREATS #11): retries replay the first response, once per
//! caller and key, sequentially and concurrently.
use licentia_tests::{Resp, TestApp, db_test};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

const REPLAYED: &str = "idempotent-replayed";

fn order(product: &Value) -> Value {
    json!({"product_id": product["id"], "name": "Web 1", "ip": "192.0.2.10", "period_months": 12,
           "options": {"extra_domains": 2}, "payment": {"method": "balance"}})
}

/// 12 months of the test product with two extra domains.
const ORDER_PRICE: i64 = 12_000;

async fn send(
    client: &reqwest::Client,
    url: String,
    method: Method,
    token: &str,
    key: Option<&str>,
    body: &Value,
) -> Resp {
    let mut req = client.request(method, url).bearer_auth(token).json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    Resp::from(req.send().await.unwrap()).await
}

async fn post_with_key(app: &TestApp, path: &str, token: &str, key: &str, body: &Value) -> Resp {
    send(
        &app.client,
        app.url(path),
        Method::POST,
        token,
        Some(key),
        body,
    )
    .await
}

async fn balance(app: &TestApp, token: &str, account: &str) -> i64 {
    let got = app.get(&format!("/v1/accounts/{account}"), token).await;
    got.assert_status(StatusCode::OK);
    got.body["balance"].as_i64().unwrap()
}

async fn count(app: &TestApp, token: &str, path: &str) -> usize {
    let got = app.get(path, token).await;
    got.assert_status(StatusCode::OK);
    got.body["items"].as_array().unwrap().len()
}

/// A partner with a funded owner and a product: `(account, owner, product)`.
async fn buyer(app: &TestApp, admin: &str, code: &str, funds: i64) -> (String, String, Value) {
    let product = app.create_product(admin, code).await;
    let (account, owner) = app.partner_with_owner(admin, "Buyer").await;
    if funds > 0 {
        app.credit(admin, &account, funds).await;
    }
    (account, owner, product)
}

async fn sequential_retries_replay_the_first_response(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner, product) = buyer(app, &admin, "panel", 100_000).await;
    let body = order(&product);

    let first = post_with_key(app, "/v1/licenses", &owner, "order-1", &body).await;
    first.assert_status(StatusCode::CREATED);
    assert_eq!(first.header(REPLAYED), None);
    for _ in 1..20 {
        let again = post_with_key(app, "/v1/licenses", &owner, "order-1", &body).await;
        again.assert_status(StatusCode::CREATED);
        assert_eq!(again.header(REPLAYED), Some("true"));
        assert_eq!(again.text, first.text);
        assert_eq!(again.header("content-type"), first.header("content-type"));
        assert_eq!(again.header("etag"), first.header("etag"));
        assert_eq!(again.header("location"), first.header("location"));
    }
    // One charge, one order, one license.
    assert_eq!(balance(app, &owner, &account).await, 100_000 - ORDER_PRICE);
    assert_eq!(count(app, &owner, "/v1/orders").await, 1);
    assert_eq!(count(app, &owner, "/v1/licenses").await, 1);
    assert_eq!(
        count(app, &owner, &format!("/v1/accounts/{account}/ledger")).await,
        2
    );

    // The key belongs to the user, not to the token: after a new login it still replays.
    let email = app.get("/v1/me", &owner).await.body["user"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let login = app.login(&email, licentia_tests::USER_PASSWORD).await;
    let token = login.body["access_token"].as_str().unwrap();
    let replay = post_with_key(app, "/v1/licenses", token, "order-1", &body).await;
    replay.assert_status(StatusCode::CREATED);
    assert_eq!(replay.header(REPLAYED), Some("true"));
    assert_eq!(replay.text, first.text);
}

async fn concurrent_retries_have_one_effect(app: &TestApp) {
    let admin = app.admin_token().await;
    let account = app.create_partner(&admin, "Topped up").await;
    let path = format!("/v1/accounts/{account}/credits");
    let body = json!({"amount": 5_000, "reference": "Wire 77"});

    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let (client, url, token, body) = (
            app.client.clone(),
            app.url(&path),
            admin.clone(),
            body.clone(),
        );
        tasks.spawn(async move {
            send(&client, url, Method::POST, &token, Some("credit-77"), &body).await
        });
    }
    let responses = tasks.join_all().await;
    let originals: Vec<&Resp> = responses
        .iter()
        .filter(|r| r.status == StatusCode::CREATED && r.header(REPLAYED).is_none())
        .collect();
    assert_eq!(originals.len(), 1, "exactly one request ran");
    let original = originals[0];
    for resp in &responses {
        if resp.status == StatusCode::CONFLICT {
            resp.assert_problem(StatusCode::CONFLICT, "request_in_progress");
            assert_eq!(resp.header("retry-after"), Some("1"));
        } else {
            resp.assert_status(StatusCode::CREATED);
            assert_eq!(resp.text, original.text);
        }
    }
    // Once the first is done, every retry replays it.
    let later = post_with_key(app, &path, &admin, "credit-77", &body).await;
    later.assert_status(StatusCode::CREATED);
    assert_eq!(later.header(REPLAYED), Some("true"));
    assert_eq!(later.text, original.text);

    let ledger = app
        .get(&format!("/v1/accounts/{account}/ledger"), &admin)
        .await;
    assert_eq!(ledger.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(balance(app, &admin, &account).await, 5_000);
}

async fn key_reused_for_another_request_is_refused(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner, product) = buyer(app, &admin, "panel", 100_000).await;
    let body = order(&product);
    post_with_key(app, "/v1/licenses", &owner, "k-1", &body)
        .await
        .assert_status(StatusCode::CREATED);

    let mut other = body.clone();
    other["name"] = json!("Web 2");
    let reused = post_with_key(app, "/v1/licenses", &owner, "k-1", &other).await;
    reused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    // Another path or query string is another request too.
    let license = app.get("/v1/licenses", &owner).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post_with_key(
        app,
        &format!("/v1/licenses/{license}/disable"),
        &owner,
        "k-1",
        &body,
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    post_with_key(app, "/v1/licenses?dry_run=true", &owner, "k-1", &body)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");

    assert_eq!(balance(app, &owner, &account).await, 100_000 - ORDER_PRICE);
    assert_eq!(count(app, &owner, "/v1/licenses").await, 1);
}

async fn keys_are_scoped_per_caller(app: &TestApp) {
    let admin = app.admin_token().await;
    let (a, owner_a, product) = buyer(app, &admin, "panel", 100_000).await;
    let (b, owner_b) = app.partner_with_owner(&admin, "Other buyer").await;
    app.credit(&admin, &b, 100_000).await;
    let body = order(&product);

    let first = post_with_key(app, "/v1/licenses", &owner_a, "shared-key", &body).await;
    first.assert_status(StatusCode::CREATED);
    let second = post_with_key(app, "/v1/licenses", &owner_b, "shared-key", &body).await;
    second.assert_status(StatusCode::CREATED);
    assert_eq!(second.header(REPLAYED), None);
    assert_ne!(first.body["license"]["id"], second.body["license"]["id"]);
    assert_eq!(second.body["license"]["account_id"], b.as_str());
    assert_eq!(balance(app, &owner_a, &a).await, 100_000 - ORDER_PRICE);
    assert_eq!(balance(app, &owner_b, &b).await, 100_000 - ORDER_PRICE);

    // Another user of the same account is another caller as well.
    let operator = app.user_token(&admin, &a, "operator").await;
    let third = post_with_key(app, "/v1/licenses", &operator, "shared-key", &body).await;
    third.assert_status(StatusCode::CREATED);
    assert_eq!(third.header(REPLAYED), None);
    assert_eq!(count(app, &owner_a, "/v1/licenses").await, 2);
}

async fn malformed_keys_are_refused(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner, product) = buyer(app, &admin, "panel", 100_000).await;
    let body = order(&product);

    let too_long = "k".repeat(256);
    post_with_key(app, "/v1/licenses", &owner, &too_long, &body)
        .await
        .assert_invalid_field("Idempotency-Key");
    post_with_key(app, "/v1/licenses", &owner, "", &body)
        .await
        .assert_invalid_field("Idempotency-Key");
    let non_ascii = app
        .client
        .post(app.url("/v1/licenses"))
        .bearer_auth(&owner)
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    Resp::from(non_ascii)
        .await
        .assert_invalid_field("Idempotency-Key");
    assert_eq!(balance(app, &owner, &account).await, 100_000);

    // 255 characters is the longest key.
    let longest = "k".repeat(255);
    post_with_key(app, "/v1/licenses", &owner, &longest, &body)
        .await
        .assert_status(StatusCode::CREATED);

    // Without credentials the key is not looked at: the handler answers 401.
    let anonymous = app
        .client
        .post(app.url("/v1/licenses"))
        .header("Idempotency-Key", too_long)
        .json(&body)
        .send()
        .await
        .unwrap();
    Resp::from(anonymous)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn client_errors_are_replayed(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner, product) = buyer(app, &admin, "panel", 0).await;
    let body = order(&product);

    let short = post_with_key(app, "/v1/licenses", &owner, "poor", &body).await;
    short.assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    assert_eq!(short.header(REPLAYED), None);
    app.credit(&admin, &account, 100_000).await;
    // The key's outcome is settled: funds added since do not change it.
    let again = post_with_key(app, "/v1/licenses", &owner, "poor", &body).await;
    again.assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    assert_eq!(again.header(REPLAYED), Some("true"));
    assert_eq!(again.text, short.text);
    assert_eq!(count(app, &owner, "/v1/licenses").await, 0);

    // A new key is a new request.
    post_with_key(app, "/v1/licenses", &owner, "rich", &body)
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(balance(app, &owner, &account).await, 100_000 - ORDER_PRICE);
}

async fn without_a_key_there_is_no_protection(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner, product) = buyer(app, &admin, "panel", 100_000).await;
    let body = order(&product);
    for _ in 0..2 {
        app.post("/v1/licenses", &owner, body.clone())
            .await
            .assert_status(StatusCode::CREATED);
    }
    assert_eq!(
        balance(app, &owner, &account).await,
        100_000 - 2 * ORDER_PRICE
    );
    assert_eq!(count(app, &owner, "/v1/licenses").await, 2);

    // Logging in is not protected: the same key yields two distinct sessions.
    let email = app.get("/v1/me", &owner).await.body["user"]["email"].clone();
    let login = json!({"email": email, "password": licentia_tests::USER_PASSWORD});
    let mut refresh = Vec::new();
    for _ in 0..2 {
        let resp = app
            .client
            .post(app.url("/v1/auth/token"))
            .header("Idempotency-Key", "login")
            .json(&login)
            .send()
            .await
            .unwrap();
        let resp = Resp::from(resp).await;
        resp.assert_status(StatusCode::OK);
        assert_eq!(resp.header(REPLAYED), None);
        refresh.push(resp.body["refresh_token"].clone());
    }
    assert_ne!(refresh[0], refresh[1]);
}

db_test!(
    sequential_retries_replay_the_first_response,
    concurrent_retries_have_one_effect,
    key_reused_for_another_request_is_refused,
    keys_are_scoped_per_caller,
    malformed_keys_are_refused,
    client_errors_are_replayed,
    without_a_key_there_is_no_protection,
);

/// A replayable response that shows a secret once (a new API key) is not kept in clear.
async fn stored_responses_are_encrypted(app: &TestApp) {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Secretive").await;
    let send = || {
        app.client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(&owner)
            .header("idempotency-key", "create-key-1")
            .json(&serde_json::json!({"name": "ci", "scopes": ["licenses:read"]}))
            .send()
    };
    let first = licentia_tests::Resp::from(send().await.unwrap()).await;
    first.assert_status(reqwest::StatusCode::CREATED);
    let key = first.body["key"].as_str().unwrap().to_owned();
    let again = licentia_tests::Resp::from(send().await.unwrap()).await;
    assert_eq!(
        again.body["key"],
        key.as_str(),
        "the replay still shows the key to its creator"
    );
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT response_body FROM idempotency_keys",
        ))
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let body: Vec<u8> = row.try_get("", "response_body").unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains(&key),
            "the key is stored in clear"
        );
    }
    db.close().await.ok();
}

db_test!(stored_responses_are_encrypted);

/// Rows in the idempotency store.
async fn stored_keys(app: &TestApp) -> i64 {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM idempotency_keys",
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    db.close().await.ok();
    n
}

/// A replay goes only to a caller that authenticates now (CONTRACT §2): a revoked API key —
/// even one replaying the response that showed a freshly minted key's secret — and a deleted
/// user's still-valid token get 401, never the stored response.
async fn replays_reauthenticate(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner) = app.partner_with_owner(&admin, "Revoker").await;
    // An API key that mints another key, with a key.
    let minter = app
        .post(
            "/v1/api-keys",
            &owner,
            json!({"name": "minter", "scopes": ["account:admin", "licenses:read"]}),
        )
        .await;
    minter.assert_status(StatusCode::CREATED);
    let minter_key = minter.body["key"].as_str().unwrap().to_owned();
    let mint = || {
        app.client
            .post(app.url("/v1/api-keys"))
            .header("X-API-Key", &minter_key)
            .header("Idempotency-Key", "mint-1")
            .json(&json!({"name": "minted", "scopes": ["licenses:read"]}))
            .send()
    };
    let first = Resp::from(mint().await.unwrap()).await;
    first.assert_status(StatusCode::CREATED);
    let replay = Resp::from(mint().await.unwrap()).await;
    replay.assert_status(StatusCode::CREATED);
    assert_eq!(replay.header(REPLAYED), Some("true"));
    app.delete(
        &format!("/v1/api-keys/{}", minter.body["id"].as_str().unwrap()),
        &owner,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    let revoked = Resp::from(mint().await.unwrap()).await;
    revoked.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(!revoked.text.contains(first.body["key"].as_str().unwrap()));

    // A deleted user's token, still within its lifetime.
    let operator_email = format!("op-{}@example.test", uuid::Uuid::new_v4().simple());
    let created = app
        .post(
            &format!("/v1/accounts/{account}/users"),
            &owner,
            json!({"email": operator_email, "password": licentia_tests::USER_PASSWORD, "role": "operator"}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let operator = app
        .login(&operator_email, licentia_tests::USER_PASSWORD)
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let product = app.create_product(&admin, "reauth").await;
    app.credit(&admin, &account, 50_000).await;
    let first = post_with_key(app, "/v1/licenses", &operator, "order-1", &order(&product)).await;
    first.assert_status(StatusCode::CREATED);
    app.delete(
        &format!(
            "/v1/accounts/{account}/users/{}",
            created.body["id"].as_str().unwrap()
        ),
        &owner,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    post_with_key(app, "/v1/licenses", &operator, "order-1", &order(&product))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// Requests that fail authentication write nothing, the idempotency store included.
async fn failed_authentication_stores_nothing(app: &TestApp) {
    let before = stored_keys(app).await;
    for n in 0..20 {
        let garbage = Resp::from(
            app.client
                .post(app.url("/v1/licenses"))
                .header("X-API-Key", format!("lk_garbage_{n}"))
                .header("Idempotency-Key", format!("garbage-{n}"))
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        garbage.assert_status(StatusCode::UNAUTHORIZED);
        let bad_token = send(
            &app.client,
            app.url("/v1/licenses"),
            Method::POST,
            "not-a-jwt",
            Some(&format!("bad-token-{n}")),
            &json!({}),
        )
        .await;
        bad_token.assert_status(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(stored_keys(app).await, before);
}

db_test!(replays_reauthenticate, failed_authentication_stores_nothing);
