//! 422 messages speak JSON, not Rust: what a field must be and what was sent, never a Rust
//! type (`i64`, `internally tagged enum Payment`) or a validator's wording.
use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The message of the 422 that names `field`.
#[track_caller]
fn message(resp: &licentia_tests::Resp, field: &str) -> String {
    resp.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    resp.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == field)
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error for {field}: {}", resp.text))
        .to_owned()
}

async fn validation_messages_speak_json(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (account, owner) = app.partner_with_owner(&admin, "Buyer").await;
    let order = |patch: Value| {
        let mut body = json!({"product_id": product["id"], "name": "shop.example.com panel",
                              "ip": "192.0.2.10", "period_months": 12,
                              "payment": {"method": "balance"}});
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };

    let r = app
        .post(
            "/v1/licenses",
            &owner,
            order(json!({"period_months": "12"})),
        )
        .await;
    assert_eq!(
        message(&r, "period_months"),
        "must be an integer, not the string \"12\""
    );
    let r = app
        .post("/v1/licenses", &owner, order(json!({"payment": "balance"})))
        .await;
    let text = message(&r, "payment");
    assert!(
        text.contains("`method`") && !text.contains("enum"),
        "{text}"
    );
    let r = app
        .post(
            "/v1/licenses",
            &owner,
            order(json!({"payment": {"method": "cash"}})),
        )
        .await;
    let text = message(&r, "payment.method");
    assert!(text.starts_with("`cash` is not one of"), "{text}");
    let r = app
        .post(
            &format!("/v1/accounts/{account}/users"),
            &owner,
            json!({"email": "short@acme.example", "password": "short", "role": "viewer"}),
        )
        .await;
    assert_eq!(
        message(&r, "password"),
        "must be at least 12 characters long"
    );
    for rust in ["i64", "u32", "internally tagged", "length is lower"] {
        assert!(!r.text.contains(rust), "{}", r.text);
    }
}

db_test!(validation_messages_speak_json);
