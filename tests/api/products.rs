use licentia_tests::{TestApp, db_test};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn catalog_crud(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "ispmanager-business").await;
    let id = product["id"].as_str().unwrap().to_owned();
    assert_eq!(
        product["prices"],
        json!([{"period_months": 1, "amount": 1000}, {"period_months": 12, "amount": 10000}])
    );
    assert_eq!(product["options"][0]["code"], "extra_domains");
    assert_eq!(product["max_registrations"], 3);
    assert_eq!(product["transferable"], true);
    assert_eq!(product["archived"], false);

    // The same code again: 409.
    let dup = app
        .post("/v1/products", &admin, json!({"code": "ispmanager-business", "name": "X", "prices": [{"period_months": 1, "amount": 1}]}))
        .await;
    dup.assert_problem(StatusCode::CONFLICT, "already_exists");

    // Every partner role reads the catalog.
    let (_, owner) = app.partner_with_owner(&admin, "Reader").await;
    let list = app.get("/v1/products", &owner).await;
    list.assert_status(StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    app.get(&format!("/v1/products/{id}"), &owner)
        .await
        .assert_status(StatusCode::OK);

    // A partner cannot write it: 403, and nothing changes.
    app.post(
        "/v1/products",
        &owner,
        json!({"code": "p2", "name": "P2", "prices": [{"period_months": 1, "amount": 1}]}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.patch(
        &format!("/v1/products/{id}"),
        &owner,
        json!({"name": "Hacked"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(&format!("/v1/products/{id}/archive"), &owner, json!({}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    // Admin edits: name, prices, seats to unlimited.
    let patched = app
        .patch(
            &format!("/v1/products/{id}"),
            &admin,
            json!({"name": "ISPmanager Business", "max_registrations": null,
                   "prices": [{"period_months": 1, "amount": 1100}, {"period_months": 12, "amount": 11000}]}),
        )
        .await;
    patched.assert_status(StatusCode::OK);
    assert_eq!(patched.body["name"], "ISPmanager Business");
    assert_eq!(patched.body["max_registrations"], serde_json::Value::Null);
    assert_eq!(patched.body["prices"][0]["amount"], 1100);

    // Archive hides it from the default list; include_archived shows it.
    let archived = app
        .post(&format!("/v1/products/{id}/archive"), &admin, json!({}))
        .await;
    archived.assert_status(StatusCode::OK);
    assert_eq!(archived.body["archived"], true);
    assert_eq!(
        app.get("/v1/products", &owner).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        app.get("/v1/products?include_archived=true", &owner)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.get("/v1/products?include_archived=maybe", &owner)
        .await
        .assert_invalid_field("include_archived");

    app.get(&format!("/v1/products/{}", uuid::Uuid::now_v7()), &owner)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.call(Method::GET, "/v1/products", None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn catalog_validation(app: &TestApp) {
    let admin = app.admin_token().await;
    let base =
        || json!({"code": "p", "name": "P", "prices": [{"period_months": 1, "amount": 100}]});
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            json!({"code": "p", "name": "P", "prices": [{"period_months": 2, "amount": 100}]}),
            "prices[0].period_months",
        ),
        (
            json!({"code": "p", "name": "P", "prices": [{"period_months": 1, "amount": -1}]}),
            "prices[0].amount",
        ),
        (
            json!({"code": "p", "name": "P", "prices": [{"period_months": 1, "amount": 1.5}]}),
            "prices[0].amount",
        ),
        (
            json!({"code": "p", "name": "P", "prices": [{"period_months": 1, "amount": "100"}]}),
            "prices[0].amount",
        ),
        (
            json!({"code": "p", "name": "P", "prices": [{"period_months": 1, "amount": 1, "currency": "EUR"}]}),
            "prices[0].currency",
        ),
        (json!({"code": "p", "name": "P", "prices": []}), "prices"),
        (
            json!({"code": "Bad Code", "name": "P", "prices": [{"period_months": 1, "amount": 1}]}),
            "code",
        ),
        (
            json!({"code": "p", "name": "", "prices": [{"period_months": 1, "amount": 1}]}),
            "name",
        ),
        (
            json!({"code": "p", "name": "P", "prices": [{"period_months": 1, "amount": 1}], "id": "x"}),
            "id",
        ),
        (
            json!({"code": "p", "name": "P", "prices": [{"period_months": 1, "amount": 1}, {"period_months": 1, "amount": 2}]}),
            "prices[1].period_months",
        ),
    ];
    for (body, field) in cases {
        app.post("/v1/products", &admin, body)
            .await
            .assert_invalid_field(field);
    }
    // An option whose prices do not cover the product's periods.
    let mut with_option = base();
    with_option["options"] = json!([{"code": "o", "name": "O", "min": 0, "max": 5, "prices": []}]);
    let resp = app.post("/v1/products", &admin, with_option).await;
    resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // Nothing was created by any of these.
    let list = app.get("/v1/products?include_archived=true", &admin).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0);
    // The good body still works.
    app.post("/v1/products", &admin, base())
        .await
        .assert_status(StatusCode::CREATED);
}

db_test!(catalog_crud, catalog_validation);

/// CONTRACT §0: authentication (401) → permission (403) → existence (404) → body (422).
async fn order_of_checks(app: &TestApp) {
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Orderly").await;
    let bad_body = json!({"code": "Bad Code", "prices": "nope", "extra": 1});
    app.call(Method::POST, "/v1/products", None, Some(bad_body.clone()))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.post("/v1/products", &owner, bad_body.clone())
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let missing = format!("/v1/products/{}", uuid::Uuid::now_v7());
    app.patch(&missing, &admin, json!({"name": 5}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // A non-JSON body to a partner is still 403, not 415.
    let res = app
        .client
        .post(app.url("/v1/products"))
        .bearer_auth(&owner)
        .body("x=1")
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(res)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post("/v1/products", &admin, bad_body)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

db_test!(order_of_checks);
