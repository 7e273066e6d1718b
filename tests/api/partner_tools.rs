//! Partner tools (CONTRACT §12): causes and notes of disables and deletes, trials, webhook
//! ping and redelivery, the live event stream, and the administrator password at work.
mod admin_password;
mod causes;
mod stream;
mod trials;
mod webhook_tools;

use licentia_tests::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The service may call webhook receivers on 127.0.0.1; retries come fast.
pub fn receiving(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        webhook_allowed_hosts: "127.0.0.1".into(),
        webhook_retry_base_ms: licentia_api::config::Millis::new(10),
        ..licentia_tests::test_config(url)
    }
}

/// A product with a 1- and a 12-month price, one option, and `trial_days` of trial.
pub async fn trial_product(app: &TestApp, admin: &str, code: &str, trial_days: i64) -> Value {
    let r = app
        .post(
            "/v1/products",
            admin,
            json!({
                "code": code,
                "name": format!("Trial {code}"),
                "prices": [{"period_months": 1, "amount": 1000}, {"period_months": 12, "amount": 10000}],
                "options": [{"code": "extra", "name": "Extra", "min": 0, "max": 10,
                             "prices": [{"period_months": 1, "amount": 100}, {"period_months": 12, "amount": 1000}]}],
                "transferable": true,
                "trial_days": trial_days
            }),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    assert_eq!(r.body["trial_days"], trial_days);
    r.body
}

/// Orders a license paid from the balance and waits until it is active; returns its id.
pub async fn active_license(app: &TestApp, token: &str, product: &Value, ip: &str) -> String {
    let r = app
        .post(
            "/v1/licenses",
            token,
            json!({"product_id": product["id"], "name": "Tools", "ip": ip, "period_months": 12,
                   "payment": {"method": "balance"}}),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    let id = r.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(token, &id, "active").await;
    id
}

/// Every page of a list, oldest page last (as the list orders it).
pub async fn all_pages(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=200&cursor={c}"),
            None => format!("{path}{sep}limit=200"),
        };
        let r = app.get(&url, token).await;
        r.assert_status(StatusCode::OK);
        out.extend(r.body["items"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}
