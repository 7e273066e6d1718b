//! The wire format of the main resources, pinned by snapshots (`tests/api/snapshots/`): a
//! field renamed, dropped, added or re-typed changes a snapshot, on either database. Ids,
//! instants and secrets are replaced by placeholders; everything else is what the service
//! answered. Review a change with `cargo insta review`, or accept it with
//! `INSTA_UPDATE=always cargo test -p licentia-tests --test api wire`.
use licentia_api::Config;
use licentia_api::error::Problem;
use licentia_api::pagination::Page;
use licentia_api::routes::accounts::AccountOut;
use licentia_api::routes::licenses::{LicenseOut, LicenseWithOrder};
use licentia_api::routes::orders::OrderOut;
use licentia_api::routes::registrations::RegistrationOut;
use licentia_domain::license::LicenseStatus;
use licentia_domain::order::OrderStatus;
use licentia_tests::{TestApp, db_test, test_config};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

/// Webhooks may target the loopback address (no delivery is waited for).
fn loopback_webhooks(url: &str) -> Config {
    Config {
        webhook_allowed_hosts: "127.0.0.1".into(),
        ..test_config(url)
    }
}

/// Ids, instants and secrets differ on every run: placeholders keep their place and kind.
fn stable(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), stable_field(key, value)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(stable).collect()),
        other => other.clone(),
    }
}

fn stable_field(key: &str, value: &Value) -> Value {
    const SECRETS: [&str; 5] = [
        "registration_key",
        "signature",
        "secret",
        "key",
        "request_id",
    ];
    let Value::String(_) = value else {
        return stable(value);
    };
    if key == "id" || key.ends_with("_id") {
        json!("[id]")
    } else if key.ends_with("_at") || key == "valid_until" {
        json!("[instant]")
    } else if SECRETS.contains(&key) || key == "public_key" {
        json!("[redacted]")
    } else {
        value.clone()
    }
}

async fn wire_format(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "wire").await;
    insta::assert_json_snapshot!("product", stable(&product));
    let (account, owner) = app.partner_with_owner(&admin, "Wire").await;
    app.credit(&admin, &account, 100_000).await;
    let got = app.get(&format!("/v1/accounts/{account}"), &admin).await;
    insta::assert_json_snapshot!("account", stable(&got.body));
    let typed: AccountOut = got.decode(StatusCode::OK);
    assert_eq!((typed.balance, typed.name.as_str()), (100_000, "Wire"));

    let ordered = app
        .post(
            "/v1/licenses",
            &owner,
            json!({"product_id": product["id"], "name": "wire.example.test", "ip": "192.0.2.7",
                   "period_months": 12, "options": {"extra_domains": 2},
                   "payment": {"method": "balance"}}),
        )
        .await;
    insta::assert_json_snapshot!("license_ordered", stable(&ordered.body));
    let typed: LicenseWithOrder = ordered.decode(StatusCode::CREATED);
    assert_eq!(typed.order.status, OrderStatus::Paid);
    assert_eq!(typed.order.total, 10_000 + 2 * 1_000);
    let id = typed.license.id.to_string();
    let license = app.wait_status(&owner, &id, "active").await;
    insta::assert_json_snapshot!("license", stable(&license));
    let typed: LicenseOut = app
        .get_as(&format!("/v1/licenses/{id}"), &owner, StatusCode::OK)
        .await;
    assert_eq!(typed.status, LicenseStatus::Active);
    assert_eq!(typed.options.get("extra_domains"), Some(&2));
    let orders = app.get("/v1/orders", &owner).await;
    insta::assert_json_snapshot!("order", stable(&orders.body["items"][0]));
    let page: Page<OrderOut> = orders.decode(StatusCode::OK);
    assert_eq!(page.items.len(), 1);
    assert!(page.next_cursor.is_none());

    let key = license["registration_key"].as_str().unwrap();
    let registered = app
        .call(
            Method::POST,
            "/v1/registrations",
            None,
            Some(json!({"registration_key": key, "fingerprint": "machine-1",
                        "hostname": "host.example.test", "ip": "192.0.2.7"})),
        )
        .await;
    insta::assert_json_snapshot!("registration", stable(&registered.body));
    let typed: RegistrationOut = registered.decode(StatusCode::CREATED);
    assert_eq!(typed.fingerprint, "machine-1");
    let validated = app
        .call(
            Method::POST,
            "/v1/validate",
            None,
            Some(json!({"registration_key": key, "fingerprint": "machine-1", "ip": "192.0.2.7"})),
        )
        .await;
    validated.assert_status(StatusCode::OK);
    insta::assert_json_snapshot!("validation", stable(&validated.body));

    let (receiver, _) = app.partner_with_owner(&admin, "Receiver").await;
    let offered = app
        .post(
            &format!("/v1/licenses/{id}/transfers"),
            &owner,
            json!({"to_account_id": receiver}),
        )
        .await;
    offered.assert_status(StatusCode::CREATED);
    insta::assert_json_snapshot!("transfer", stable(&offered.body));

    let endpoint = app
        .post(
            "/v1/webhook-endpoints",
            &owner,
            json!({"url": "http://127.0.0.1:9/hooks", "event_types": ["license.activated"]}),
        )
        .await;
    endpoint.assert_status(StatusCode::CREATED);
    insta::assert_json_snapshot!("webhook_endpoint", stable(&endpoint.body));

    let events = app
        .get(&format!("/v1/events?license_id={id}"), &owner)
        .await;
    events.assert_status(StatusCode::OK);
    insta::assert_json_snapshot!("event", stable(&events.body["items"][0]));

    let missing = app
        .get(&format!("/v1/licenses/{}", uuid::Uuid::now_v7()), &owner)
        .await;
    missing.assert_problem(StatusCode::NOT_FOUND, "not_found");
    insta::assert_json_snapshot!("problem", stable(&missing.body));
    let typed: Problem = missing.decode(StatusCode::NOT_FOUND);
    assert_eq!((typed.status, typed.code.as_str()), (404, "not_found"));
}

db_test!(config = loopback_webhooks; wire_format);
