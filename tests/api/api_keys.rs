use licentia_tests::{TestApp, db_test, within_notice};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn with_key(app: &TestApp, method: Method, path: &str, key: &str) -> licentia_tests::Resp {
    let res = app
        .client
        .request(method, app.url(path))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(res).await
}

async fn api_key_lifecycle(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner) = app.partner_with_owner(&admin, "Integrator").await;
    let created = app
        .post(
            "/v1/api-keys",
            &owner,
            json!({"name": "sync", "scopes": ["licenses:read", "billing:read"]}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("lic_") && key.starts_with(created.body["prefix"].as_str().unwrap()));

    // Listed without the key.
    let list = app.get("/v1/api-keys", &owner).await;
    list.assert_status(StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(list.body["items"][0].get("key").is_none() && !list.text.contains(&key));

    // The key authenticates, with its scopes only.
    let me = with_key(app, Method::GET, "/v1/me", &key).await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["user"], serde_json::Value::Null);
    assert_eq!(me.body["api_key"]["id"], id.as_str());
    assert_eq!(me.body["account"]["id"], account.as_str());
    assert_eq!(me.body["scopes"], json!(["licenses:read", "billing:read"]));
    with_key(app, Method::GET, "/v1/licenses", &key)
        .await
        .assert_status(StatusCode::OK);
    let res = app
        .client
        .post(app.url("/v1/licenses"))
        .header("x-api-key", &key)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(res)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    with_key(app, Method::GET, "/v1/accounts", &key)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    assert!(app.get("/v1/api-keys", &owner).await.body["items"][0]["last_used_at"].is_string());

    // Bad checksum, unknown key: 401 invalid_token.
    let mut typo = key.clone();
    typo.replace_range(8..9, if &key[8..9] == "a" { "b" } else { "a" });
    let bad = with_key(app, Method::GET, "/v1/me", &typo).await;
    bad.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        bad.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );

    // Scopes the caller lacks, unknown scopes: 422; operators cannot manage keys.
    let operator = app.user_token(&admin, &account, "operator").await;
    app.post(
        "/v1/api-keys",
        &operator,
        json!({"name": "x", "scopes": ["licenses:read"]}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    for (body, field) in [
        (json!({"name": "x", "scopes": ["root"]}), "scopes[0]"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "", "scopes": ["licenses:read"]}), "name"),
        (
            json!({"name": "x", "scopes": ["licenses:read"], "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "scopes": ["licenses:read"], "key": "mine"}),
            "key",
        ),
    ] {
        app.post("/v1/api-keys", &owner, body)
            .await
            .assert_invalid_field(field);
    }

    // Another tenant cannot revoke it; revocation is effective at once.
    let (_, stranger) = app.partner_with_owner(&admin, "Stranger").await;
    app.delete(&format!("/v1/api-keys/{id}"), &stranger)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&format!("/v1/api-keys/{id}"), &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    with_key(app, Method::GET, "/v1/me", &key)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        app.get("/v1/api-keys", &owner).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

async fn expired_keys_stop_working(app: &TestApp) {
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Shortlived").await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let created = app
        .post(
            "/v1/api-keys",
            &owner,
            json!({"name": "t", "scopes": ["licenses:read"], "expires_at": soon}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let key = created.body["key"].as_str().unwrap().to_owned();
    with_key(app, Method::GET, "/v1/me", &key)
        .await
        .assert_status(StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    with_key(app, Method::GET, "/v1/me", &key)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// Two server processes on one database: a key and a product name cached by the second are
/// dropped there when the first changes them (CONTRACT §1: a revoked key stops "at once"). On
/// PostgreSQL the second really serves from memory (checked), so this is the invalidation
/// notice at work; on SQLite nothing is cached and the change is seen on the next request.
async fn changes_reach_every_process(app: &TestApp) {
    let other = app.spawn_second_instance().await;
    if app.backend == licentia_tests::Backend::Postgres {
        within_notice(|| async { app.state.caches.is_live() && other.state.caches.is_live() })
            .await;
    }
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "cached").await;
    let (account, owner) = app.partner_with_owner(&admin, "Two processes").await;
    app.credit(&admin, &account, 100_000).await;
    app.post(
        "/v1/licenses",
        &owner,
        json!({"product_id": product["id"], "name": "Web 1", "ip": "192.0.2.10", "period_months": 1,
               "payment": {"method": "balance"}}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let created = app
        .post(
            "/v1/api-keys",
            &owner,
            json!({"name": "sync", "scopes": ["licenses:read", "licenses:write"]}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    let spare = app
        .post(
            "/v1/api-keys",
            &owner,
            json!({"name": "spare", "scopes": ["licenses:read"]}),
        )
        .await;
    let spare = spare.body["key"].as_str().unwrap().to_owned();

    // The second process authenticates both keys and lists with the product's name.
    for k in [&key, &spare] {
        let page = with_key(&other, Method::GET, "/v1/licenses", k).await;
        page.assert_status(StatusCode::OK);
        assert_eq!(page.body["items"][0]["product_name"], "Product cached");
    }
    if app.backend == licentia_tests::Backend::Postgres {
        let hash = licentia_api::crypto::sha256_hex(&key);
        assert!(
            other.state.caches.key(&hash).is_some(),
            "the key is served from memory"
        );
    }

    // The product renamed on the first: the second lists the new name.
    app.patch(
        &format!("/v1/products/{}", product["id"].as_str().unwrap()),
        &admin,
        json!({"name": "Renamed"}),
    )
    .await
    .assert_status(StatusCode::OK);
    within_notice(|| async {
        with_key(&other, Method::GET, "/v1/licenses", &spare)
            .await
            .body["items"][0]["product_name"]
            == "Renamed"
    })
    .await;

    // The key revoked by the owner on the first: refused there at once, and on the second as
    // soon as the notice is in; the spare key still works on both.
    app.delete(&format!("/v1/api-keys/{key_id}"), &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    with_key(app, Method::GET, "/v1/licenses", &key)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let took = within_notice(|| async {
        with_key(&other, Method::GET, "/v1/licenses", &key)
            .await
            .status
            == StatusCode::UNAUTHORIZED
    })
    .await;
    eprintln!("the revocation reached the second process after {took:?}");
    for target in [app, &other] {
        with_key(target, Method::GET, "/v1/licenses", &spare)
            .await
            .assert_status(StatusCode::OK);
    }
    other.finish().await;
}

db_test!(
    api_key_lifecycle,
    expired_keys_stop_working,
    changes_reach_every_process
);
