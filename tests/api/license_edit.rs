use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn active_license(
    app: &TestApp,
    admin: &str,
    owner: &str,
    account: &str,
    product: &Value,
) -> String {
    app.credit(admin, account, 100_000).await;
    let r = app
        .post(
            "/v1/licenses",
            owner,
            json!({"product_id": product["id"], "name": "Edit me", "ip": "192.0.2.1", "period_months": 12,
                   "payment": {"method": "balance"}}),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    let id = r.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(owner, &id, "active").await;
    id
}

async fn edit_fields_and_states(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (account, owner) = app.partner_with_owner(&admin, "Editor").await;
    let id = active_license(app, &admin, &owner, &account, &product).await;
    let path = format!("/v1/licenses/{id}");

    // Unprovisioned fields: recorded at once, status unchanged.
    let r = app
        .patch(
            &path,
            &owner,
            json!({"name": "Renamed", "external_id": "INV-7", "metadata": {"team": "ops"},
                                     "auto_renew_months": 12, "admin_password": "hunter2-secret"}),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["name"], "Renamed");
    assert_eq!(r.body["external_id"], "INV-7");
    assert_eq!(r.body["metadata"], json!({"team": "ops"}));
    assert_eq!(r.body["auto_renew_months"], 12);
    assert_eq!(r.body["status"], "active");
    assert!(r.body.get("admin_password").is_none() && !r.text.contains("hunter2"));
    let etag = r.header("etag").unwrap().to_owned();

    // A provisioned field passes through in_progress; while there, provisioned edits are 409.
    let old_key = r.body["registration_key"].as_str().unwrap().to_owned();
    let r = app
        .patch(
            &path,
            &owner,
            json!({"ip": "2001:db8::5", "registration_key": "rotate"}),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["ip"], "2001:db8::5");
    assert_ne!(r.body["registration_key"], old_key);
    let shown = r.body["status"].as_str().unwrap().to_owned();
    assert!(shown == "in_progress" || shown == "active");
    app.wait_status(&owner, &id, "active").await;

    // If-Match with a stale tag: 412, nothing changes.
    let stale = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&owner)
        .header("if-match", etag)
        .json(&json!({"name": "Lost update"}))
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(stale)
        .await
        .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    assert_eq!(app.get(&path, &owner).await.body["name"], "Renamed");

    // Fields the caller may not write, and bad values: 422.
    for (body, field) in [
        (json!({"status": "active"}), "status"),
        (json!({"account_id": account}), "account_id"),
        (json!({"version": 9}), "version"),
        (
            json!({"valid_until": "2040-01-01T00:00:00Z"}),
            "valid_until",
        ),
        (json!({"ip": "not-an-ip"}), "ip"),
        (json!({"registration_key": "short"}), "registration_key"),
        (json!({"auto_renew_months": 5}), "auto_renew_months"),
        (json!({"name": ""}), "name"),
        (json!({"product_id": uuid::Uuid::now_v7()}), "product_id"),
    ] {
        app.patch(&path, &owner, body)
            .await
            .assert_invalid_field(field);
    }
    // Admins may move valid_until.
    let r = app
        .patch(
            &path,
            &admin,
            json!({"valid_until": "2040-01-31T00:00:00+02:00"}),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["valid_until"], "2040-01-30T22:00:00Z");

    // Deleted: every edit is 409.
    app.delete(&path, &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.patch(&path, &owner, json!({"name": "Ghost"}))
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
}

async fn ordered_license_rules_and_product_change(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (account, owner) = app.partner_with_owner(&admin, "Switcher").await;
    // An ordered license: ip may change, product may not.
    let ordered = app
        .post(
            "/v1/licenses",
            &owner,
            json!({"product_id": product["id"], "name": "Later", "ip": "192.0.2.9", "period_months": 12,
                   "payment": {"method": "new_order"}}),
        )
        .await;
    let oid = ordered.body["license"]["id"].as_str().unwrap().to_owned();
    let r = app
        .patch(
            &format!("/v1/licenses/{oid}"),
            &owner,
            json!({"ip": "192.0.2.10"}),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["status"], "ordered");
    let bigger = app
        .post(
            "/v1/products",
            &admin,
            json!({"code": "panel-pro", "name": "Pro", "prices": [{"period_months": 12, "amount": 22000}],
                   "options": [{"code": "extra_domains", "name": "Extra", "min": 0, "max": 10,
                                "prices": [{"period_months": 12, "amount": 1000}]}]}),
        )
        .await;
    bigger.assert_status(StatusCode::CREATED);
    app.patch(
        &format!("/v1/licenses/{oid}"),
        &owner,
        json!({"product_id": bigger.body["id"]}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");

    // An active license moves to the dearer product: about the full difference is charged
    // (the whole term is left), and it comes back active.
    let id = active_license(app, &admin, &owner, &account, &product).await;
    let before = app
        .get(&format!("/v1/accounts/{account}"), &owner)
        .await
        .body["balance"]
        .as_i64()
        .unwrap();
    let r = app
        .patch(
            &format!("/v1/licenses/{id}"),
            &owner,
            json!({"product_id": bigger.body["id"]}),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.body["product_code"], "panel-pro");
    let after = app
        .get(&format!("/v1/accounts/{account}"), &owner)
        .await
        .body["balance"]
        .as_i64()
        .unwrap();
    let charged = before - after;
    assert!((11_990..=12_000).contains(&charged), "charged {charged}");
    app.wait_status(&owner, &id, "active").await;
    // Back to the cheaper one: about the same is credited.
    let r = app
        .patch(
            &format!("/v1/licenses/{id}"),
            &owner,
            json!({"product_id": product["id"]}),
        )
        .await;
    r.assert_status(StatusCode::OK);
    let back = app
        .get(&format!("/v1/accounts/{account}"), &owner)
        .await
        .body["balance"]
        .as_i64()
        .unwrap();
    assert!(
        (11_980..=12_000).contains(&(back - after)),
        "credited {}",
        back - after
    );
    // A product without the license's period is refused.
    let monthly = app
        .post("/v1/products", &admin, json!({"code": "monthly", "name": "M", "prices": [{"period_months": 1, "amount": 100}]}))
        .await;
    app.wait_status(&owner, &id, "active").await;
    app.patch(
        &format!("/v1/licenses/{id}"),
        &owner,
        json!({"product_id": monthly.body["id"]}),
    )
    .await
    .assert_invalid_field("product_id");
    // Another tenant: 404.
    let (_, stranger) = app.partner_with_owner(&admin, "Stranger").await;
    app.patch(
        &format!("/v1/licenses/{id}"),
        &stranger,
        json!({"name": "Mine"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

db_test!(
    edit_fields_and_states,
    ordered_license_rules_and_product_change
);
