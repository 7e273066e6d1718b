//! Registering, reading, changing and deleting webhook endpoints: the SSRF guard at
//! registration (THREATS #18 (docs/threats.md)), the secret shown once, validation, scopes and tenancy.
use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::json;
use tokio::task::JoinSet;

use super::{Receiver, receiving_test, register};

/// Every internal address, in every spelling, and every non-HTTP scheme → 422.
const REFUSED: &[&str] = &[
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8080/hook",
    "http://[::1]/hook",
    "http://0x7f000001/hook",
    "http://2130706433/hook",
    "http://127.1/hook",
    "http://0177.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.10.10/",
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.1.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd00::1]/",
    "http://[::]/",
    "http://localhost/hook",
    "http://localhost:9000/hook",
    "file:///etc/passwd",
    "gopher://example.com:70/_x",
    "ftp://example.com/",
    "javascript:alert(1)",
    "//example.com/hook",
    "not a url",
    "http://user:password@8.8.8.8/hook",
];

async fn internal_urls_are_refused(app: &TestApp) {
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Probe").await;
    for url in REFUSED {
        let r = app
            .post(
                "/v1/webhook-endpoints",
                &owner,
                json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_url");
        assert_eq!(r.body["errors"][0]["field"], "url", "{url}: {}", r.text);
    }
    // The provider's staff are held to the same rule.
    let r = app
        .post(
            "/v1/webhook-endpoints",
            &admin,
            json!({"url": "http://169.254.169.254/", "event_types": ["*"]}),
        )
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_url");
    // A public address literal is fine (no DNS needed); nothing was stored for the refusals.
    let (id, _) = register(app, &owner, "https://8.8.8.8/licentia", json!(["*"])).await;
    let list = app.get("/v1/webhook-endpoints", &owner).await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    // A change of URL is checked like a new one.
    let r = app
        .patch(
            &format!("/v1/webhook-endpoints/{id}"),
            &owner,
            json!({"url": "http://[::1]:8080/"}),
        )
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_url");
    let same = app
        .get(&format!("/v1/webhook-endpoints/{id}"), &owner)
        .await;
    assert_eq!(same.body["url"], "https://8.8.8.8/licentia");
}

/// The allow list lets exactly the listed host through, in any spelling of that address,
/// and nothing else.
async fn only_listed_hosts_are_allowed(app: &TestApp) {
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Local").await;
    let receiver = Receiver::start(&[]).await;
    register(app, &owner, &receiver.url("/ok"), json!(["*"])).await;
    for url in [
        "http://127.0.0.2/hook",
        "http://localhost/hook",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
    ] {
        app.post(
            "/v1/webhook-endpoints",
            &owner,
            json!({"url": url, "event_types": ["*"]}),
        )
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_url");
    }
    receiver.stop().await;
}

/// The secret appears in the creation response only; reads never show it.
async fn secret_is_shown_once(app: &TestApp) {
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Secretive").await;
    let created = app
        .post(
            "/v1/webhook-endpoints",
            &owner,
            json!({"url": "https://8.8.4.4/hook", "event_types": ["license.activated", "license.activated", "order.paid"]}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["enabled"], true);
    assert_eq!(
        created.body["event_types"],
        json!(["license.activated", "order.paid"])
    );
    let reads = [
        app.get(&format!("/v1/webhook-endpoints/{id}"), &owner)
            .await,
        app.get("/v1/webhook-endpoints", &owner).await,
        app.get("/v1/webhook-endpoints", &admin).await,
        app.patch(
            &format!("/v1/webhook-endpoints/{id}"),
            &owner,
            json!({"enabled": false}),
        )
        .await,
        app.get(&format!("/v1/webhook-endpoints/{id}/deliveries"), &owner)
            .await,
    ];
    for r in reads {
        r.assert_status(StatusCode::OK);
        assert!(!r.text.contains(&secret), "secret in {}", r.text);
        assert!(!r.text.contains("secret"), "secret field in {}", r.text);
    }
}

/// Bodies are validated; PATCH changes what it names; DELETE removes the endpoint.
async fn endpoints_are_edited_and_deleted(app: &TestApp) {
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Editor").await;
    for (body, field) in [
        (
            json!({"url": "https://8.8.8.8/", "event_types": []}),
            "event_types",
        ),
        (
            json!({"url": "https://8.8.8.8/", "event_types": ["license.nope"]}),
            "event_types[0]",
        ),
        (
            json!({"url": "https://8.8.8.8/", "event_types": ["*", "Order.Paid"]}),
            "event_types[1]",
        ),
        (
            json!({"url": "https://8.8.8.8/", "event_types": ["*"], "secret": "mine"}),
            "secret",
        ),
        (json!({"url": "https://8.8.8.8/"}), "event_types"),
        (json!({"event_types": ["*"]}), "url"),
    ] {
        app.post("/v1/webhook-endpoints", &owner, body)
            .await
            .assert_invalid_field(field);
    }
    let (id, _) = register(app, &owner, "https://8.8.8.8/a", json!(["*"])).await;
    let path = format!("/v1/webhook-endpoints/{id}");
    let r = app
        .patch(
            &path,
            &owner,
            json!({"url": "https://1.1.1.1/b", "event_types": ["transfer.created"], "enabled": false}),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["url"], "https://1.1.1.1/b");
    assert_eq!(r.body["event_types"], json!(["transfer.created"]));
    assert_eq!(r.body["enabled"], false);
    app.patch(&path, &owner, json!({"enabled": true}))
        .await
        .assert_status(StatusCode::OK);
    let got = app.get(&path, &owner).await;
    assert_eq!(got.body["enabled"], true);
    assert_eq!(got.body["url"], "https://1.1.1.1/b");
    app.patch(&path, &owner, json!({"event_types": ["nope"]}))
        .await
        .assert_invalid_field("event_types[0]");
    app.patch(&path, &owner, json!({"status": "on"}))
        .await
        .assert_invalid_field("status");
    app.delete(&path, &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.get(&path, &owner)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&path, &owner)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("{path}/deliveries"), &owner)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// Partner B cannot see, change or delete A's endpoints or read their deliveries; A's viewer
/// reads but cannot write; the provider sees every account's endpoints.
async fn endpoints_are_tenant_scoped(app: &TestApp) {
    let admin = app.admin_token().await;
    let (a, owner_a) = app.partner_with_owner(&admin, "A").await;
    let (_, owner_b) = app.partner_with_owner(&admin, "B").await;
    let viewer_a = app.user_token(&admin, &a, "viewer").await;
    let operator_a = app.user_token(&admin, &a, "operator").await;
    let (id, _) = register(app, &owner_a, "https://8.8.8.8/a", json!(["*"])).await;
    let path = format!("/v1/webhook-endpoints/{id}");
    for r in [
        app.get(&path, &owner_b).await,
        app.get(&format!("{path}/deliveries"), &owner_b).await,
        app.patch(&path, &owner_b, json!({"enabled": false})).await,
        app.delete(&path, &owner_b).await,
    ] {
        r.assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    let listed = app.get("/v1/webhook-endpoints", &owner_b).await;
    assert!(!listed.text.contains(&id), "B's list shows A's endpoint");
    // Reads need licenses:read; writes account:admin (owners only, among partner roles).
    app.get(&path, &viewer_a)
        .await
        .assert_status(StatusCode::OK);
    app.get(&format!("{path}/deliveries"), &viewer_a)
        .await
        .assert_status(StatusCode::OK);
    for token in [&viewer_a, &operator_a] {
        app.patch(&path, token, json!({"enabled": false}))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        app.delete(&path, token)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        app.post(
            "/v1/webhook-endpoints",
            token,
            json!({"url": "https://8.8.8.8/", "event_types": ["*"]}),
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let everyone = app.get("/v1/webhook-endpoints", &admin).await;
    assert!(everyone.text.contains(&id));
    let got = app.get(&path, &admin).await;
    got.assert_status(StatusCode::OK);
    assert_eq!(got.body["account_id"], a.as_str());
    // A is untouched by B's attempts.
    assert_eq!(app.get(&path, &owner_a).await.body["enabled"], true);
}

/// Lists page with cursors bound to the caller.
async fn endpoint_lists_page(app: &TestApp) {
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Many").await;
    let (_, other) = app.partner_with_owner(&admin, "Other").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            register(app, &owner, &format!("https://8.8.8.8/{i}"), json!(["*"]))
                .await
                .0,
        );
    }
    let first = app.get("/v1/webhook-endpoints?limit=2", &owner).await;
    first.assert_status(StatusCode::OK);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(
            &format!("/v1/webhook-endpoints?limit=2&cursor={cursor}"),
            &owner,
        )
        .await;
    let mut seen: Vec<String> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["items"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(second.body["next_cursor"].is_null());
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    app.get(
        &format!("/v1/webhook-endpoints?limit=2&cursor={cursor}"),
        &other,
    )
    .await
    .assert_invalid_field("cursor");
    app.get("/v1/webhook-endpoints?limit=0", &owner)
        .await
        .assert_invalid_field("limit");
}

/// Registrations sent all at once never pass the cap of endpoints per account: each counts
/// the account's endpoints with the account locked.
async fn the_endpoint_cap_holds_under_parallel_requests(app: &TestApp) {
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Crowd").await;
    let cap = usize::try_from(licentia_api::routes::webhooks::MAX_ENDPOINTS).unwrap();
    let mut tasks = JoinSet::new();
    for i in 0..cap + 10 {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/v1/webhook-endpoints"),
            owner.clone(),
        );
        tasks.spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"url": format!("http://127.0.0.1:9/{i}"), "event_types": ["*"]}))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let statuses = tasks.join_all().await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (cap, 10), "{statuses:?}");
    let listed = app.get("/v1/webhook-endpoints?limit=200", &owner).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), cap);
}

db_test!(
    internal_urls_are_refused,
    secret_is_shown_once,
    endpoints_are_edited_and_deleted,
    endpoints_are_tenant_scoped,
    endpoint_lists_page
);
receiving_test!(
    only_listed_hosts_are_allowed,
    the_endpoint_cap_holds_under_parallel_requests
);
