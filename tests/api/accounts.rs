use licentia_tests::{TestApp, USER_PASSWORD, db_test};
use reqwest::StatusCode;
use serde_json::json;

async fn admin_manages_accounts(app: &TestApp) {
    let admin = app.admin_token().await;
    let created = app
        .post(
            "/v1/accounts",
            &admin,
            json!({"name": "Acme Hosting", "credit_limit": 5000}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["kind"], "partner");
    assert_eq!(created.body["balance"], 0);
    assert_eq!(created.body["credit_limit"], 5000);
    assert_eq!(created.body["currency"], "USD");
    assert!(created.body["created_at"].as_str().unwrap().ends_with('Z'));

    let got = app.get(&format!("/v1/accounts/{id}"), &admin).await;
    got.assert_status(StatusCode::OK);
    assert_eq!(got.body["name"], "Acme Hosting");

    let patched = app
        .patch(
            &format!("/v1/accounts/{id}"),
            &admin,
            json!({"name": "Acme", "credit_limit": 0}),
        )
        .await;
    patched.assert_status(StatusCode::OK);
    assert_eq!(patched.body["name"], "Acme");
    assert_eq!(patched.body["credit_limit"], 0);

    // Validation: each bad value is 422 naming the field, and changes nothing.
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "credit_limit": -1}), "credit_limit"),
        (
            json!({"name": "x", "credit_limit": 1_000_000_000_001_i64}),
            "credit_limit",
        ),
        (json!({"name": "x", "balance": 10}), "balance"),
        (json!({"name": "x", "credit_limit": 1.5}), "credit_limit"),
        (json!({"name": "x", "credit_limit": "10"}), "credit_limit"),
    ] {
        app.post("/v1/accounts", &admin, body)
            .await
            .assert_invalid_field(field);
    }
    app.patch(
        &format!("/v1/accounts/{id}"),
        &admin,
        json!({"kind": "provider"}),
    )
    .await
    .assert_invalid_field("kind");
    let unchanged = app.get(&format!("/v1/accounts/{id}"), &admin).await;
    assert_eq!(unchanged.body["name"], "Acme");

    // Unknown and malformed ids are 404.
    app.get(&format!("/v1/accounts/{}", uuid::Uuid::now_v7()), &admin)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get("/v1/accounts/not-a-uuid", &admin)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // The list pages with a cursor.
    for i in 0..3 {
        app.create_partner(&admin, &format!("Partner {i}")).await;
    }
    let first = app.get("/v1/accounts?limit=2", &admin).await;
    first.assert_status(StatusCode::OK);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let mut seen: Vec<String> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    let mut next = Some(cursor);
    while let Some(c) = next {
        let page = app
            .get(&format!("/v1/accounts?limit=2&cursor={c}"), &admin)
            .await;
        page.assert_status(StatusCode::OK);
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned()),
        );
        next = page.body["next_cursor"].as_str().map(str::to_owned);
    }
    // Provider + Acme + 3 partners, each exactly once.
    assert_eq!(seen.len(), 5);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    for bad in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "limit=-1",
        "cursor=garbage",
        "foo=1",
    ] {
        let field = bad.split('=').next().unwrap();
        app.get(&format!("/v1/accounts?{bad}"), &admin)
            .await
            .assert_invalid_field(field);
    }
}

async fn partners_are_confined(app: &TestApp) {
    let admin = app.admin_token().await;
    let (a, owner_a) = app.partner_with_owner(&admin, "A").await;
    let (b, _owner_b) = app.partner_with_owner(&admin, "B").await;

    // Own account visible, another tenant's is 404, provider routes 403.
    app.get(&format!("/v1/accounts/{a}"), &owner_a)
        .await
        .assert_status(StatusCode::OK);
    app.get(&format!("/v1/accounts/{b}"), &owner_a)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get("/v1/accounts", &owner_a)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post("/v1/accounts", &owner_a, json!({"name": "Mine"}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.patch(
        &format!("/v1/accounts/{a}"),
        &owner_a,
        json!({"credit_limit": 1_000_000}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.get(&format!("/v1/accounts/{b}/users"), &owner_a)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

async fn users_lifecycle(app: &TestApp) {
    let admin = app.admin_token().await;
    let (a, owner_a) = app.partner_with_owner(&admin, "A").await;
    let (b, _) = app.partner_with_owner(&admin, "B").await;

    // The owner adds an operator; the operator can log in.
    let created = app
        .post(
            &format!("/v1/accounts/{a}/users"),
            &owner_a,
            json!({"email": "Ops@A.test", "password": USER_PASSWORD, "role": "operator"}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    assert_eq!(created.body["email"], "ops@a.test");
    assert!(created.body.get("password").is_none() && created.body.get("password_hash").is_none());
    let op_id = created.body["id"].as_str().unwrap().to_owned();
    let op_login = app.login("ops@a.test", USER_PASSWORD).await;
    op_login.assert_status(StatusCode::OK);
    let op = op_login.body["access_token"].as_str().unwrap().to_owned();

    // The same address again: 409.
    app.post(
        &format!("/v1/accounts/{a}/users"),
        &owner_a,
        json!({"email": "ops@a.test", "password": USER_PASSWORD, "role": "viewer"}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "already_exists");
    // Bad role, bad e-mail, short password: 422 on each field. (Asking for `admin` is 403:
    // authority beyond the owner's own, see authority.rs.)
    let bad = app
        .post(
            &format!("/v1/accounts/{a}/users"),
            &owner_a,
            json!({"email": "nope", "password": "short", "role": "superuser"}),
        )
        .await;
    bad.assert_invalid_field("email")
        .assert_invalid_field("password")
        .assert_invalid_field("role");
    // An operator lacks account:admin.
    app.get(&format!("/v1/accounts/{a}/users"), &op)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // Another tenant's account: 404.
    app.post(
        &format!("/v1/accounts/{b}/users"),
        &owner_a,
        json!({"email": "x@b.test", "password": USER_PASSWORD, "role": "viewer"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let list = app.get(&format!("/v1/accounts/{a}/users"), &owner_a).await;
    list.assert_status(StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(list.body["next_cursor"], serde_json::Value::Null);

    // Deleting the operator revokes its access at once.
    app.delete(&format!("/v1/accounts/{a}/users/{op_id}"), &owner_a)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.get("/v1/me", &op)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.delete(&format!("/v1/accounts/{a}/users/{op_id}"), &owner_a)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // The last owner stays.
    let owner_id = app.get("/v1/me", &owner_a).await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/v1/accounts/{a}/users/{owner_id}"), &owner_a)
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
}

db_test!(
    admin_manages_accounts,
    partners_are_confined,
    users_lifecycle
);
