use licentia_tests::{TestApp, db_test};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn order_body(product: &Value, payment: Value) -> Value {
    json!({"product_id": product["id"], "name": "Web 1", "ip": "192.0.2.10", "period_months": 12,
           "options": {"extra_domains": 2}, "payment": payment})
}

async fn balance_order_activates(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (account, owner) = app.partner_with_owner(&admin, "Buyer").await;
    app.credit(&admin, &account, 20_000).await;

    // 12 months: 10000 + 2 × 1000.
    let dry = app
        .post(
            "/v1/licenses?dry_run=true",
            &owner,
            order_body(&product, json!({"method": "balance"})),
        )
        .await;
    dry.assert_status(StatusCode::OK);
    assert_eq!(dry.body["amount"], 12_000);
    assert_eq!(dry.body["currency"], "USD");
    assert!(dry.body["valid_until_after"].is_string());
    // The dry run changed nothing.
    assert_eq!(
        app.get(&format!("/v1/accounts/{account}"), &owner)
            .await
            .body["balance"],
        20_000
    );
    assert_eq!(
        app.get("/v1/orders", &owner).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let ordered = app
        .post(
            "/v1/licenses",
            &owner,
            order_body(&product, json!({"method": "balance"})),
        )
        .await;
    ordered.assert_status(StatusCode::CREATED);
    let license = &ordered.body["license"];
    assert_eq!(license["status"], "in_progress");
    assert_eq!(license["product_code"], "panel");
    assert_eq!(license["options"], json!({"extra_domains": 2}));
    assert!(license.get("admin_password").is_none());
    assert_eq!(ordered.body["order"]["status"], "paid");
    assert_eq!(ordered.body["order"]["total"], 12_000);
    assert_eq!(ordered.body["order"]["items"][0]["status"], "fulfilled");
    let id = license["id"].as_str().unwrap().to_owned();

    let active = app.wait_status(&owner, &id, "active").await;
    assert!(active["valid_until"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        app.get(&format!("/v1/accounts/{account}"), &owner)
            .await
            .body["balance"],
        8_000
    );

    // Not enough left for a second one: 402, and nothing changes.
    let short = app
        .post(
            "/v1/licenses",
            &owner,
            order_body(&product, json!({"method": "balance"})),
        )
        .await;
    short.assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    let dry = app
        .post(
            "/v1/licenses?dry_run=true",
            &owner,
            order_body(&product, json!({"method": "balance"})),
        )
        .await;
    dry.assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    assert_eq!(
        app.get(&format!("/v1/accounts/{account}"), &owner)
            .await
            .body["balance"],
        8_000
    );
    assert_eq!(
        app.get("/v1/orders", &owner).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Disable, enable, delete.
    let disabled = app
        .post(&format!("/v1/licenses/{id}/disable"), &owner, json!({}))
        .await;
    disabled.assert_status(StatusCode::OK);
    assert_eq!(disabled.body["status"], "suspended");
    assert_eq!(disabled.body["suspension_reason"], "manual");
    app.post(&format!("/v1/licenses/{id}/disable"), &owner, json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    let enabled = app
        .post(&format!("/v1/licenses/{id}/enable"), &owner, json!({}))
        .await;
    enabled.assert_status(StatusCode::OK);
    assert_eq!(enabled.body["status"], "in_progress");
    app.wait_status(&owner, &id, "active").await;

    // An admin suspension is lifted by admins only.
    app.post(&format!("/v1/licenses/{id}/disable"), &admin, json!({}))
        .await
        .assert_status(StatusCode::OK);
    app.post(&format!("/v1/licenses/{id}/enable"), &owner, json!({}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(&format!("/v1/licenses/{id}/enable"), &admin, json!({}))
        .await
        .assert_status(StatusCode::OK);
    let current = app.wait_status(&owner, &id, "active").await;

    // If-Match: a stale version is 412.
    let stale = app
        .client
        .post(app.url(&format!("/v1/licenses/{id}/disable")))
        .bearer_auth(&owner)
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(stale)
        .await
        .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let got = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(
        got.header("etag").unwrap(),
        format!("\"{}\"", current["version"])
    );

    app.delete(&format!("/v1/licenses/{id}"), &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/v1/licenses/{id}"), &owner).await.body["status"],
        "deleted"
    );
    app.delete(&format!("/v1/licenses/{id}"), &owner)
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
}

async fn invoice_orders(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (account, owner) = app.partner_with_owner(&admin, "Invoiced").await;

    // Unpaid order: the license waits in `ordered` with no valid_until.
    let first = app
        .post(
            "/v1/licenses",
            &owner,
            order_body(&product, json!({"method": "new_order"})),
        )
        .await;
    first.assert_status(StatusCode::CREATED);
    assert_eq!(first.body["license"]["status"], "ordered");
    assert_eq!(first.body["license"]["valid_until"], Value::Null);
    let order_id = first.body["order"]["id"].as_str().unwrap().to_owned();
    let l1 = first.body["license"]["id"].as_str().unwrap().to_owned();

    // A second license joins the same order.
    let second = app
        .post(
            "/v1/licenses",
            &owner,
            order_body(
                &product,
                json!({"method": "existing_order", "order_id": order_id}),
            ),
        )
        .await;
    second.assert_status(StatusCode::CREATED);
    assert_eq!(second.body["order"]["total"], 24_000);
    let l2 = second.body["license"]["id"].as_str().unwrap().to_owned();

    // Paying with nothing on the balance: 402, still unpaid.
    app.post(&format!("/v1/orders/{order_id}/pay"), &owner, json!({}))
        .await
        .assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    assert_eq!(
        app.get(&format!("/v1/orders/{order_id}"), &owner)
            .await
            .body["status"],
        "unpaid"
    );

    app.credit(&admin, &account, 30_000).await;
    let paid = app
        .post(&format!("/v1/orders/{order_id}/pay"), &owner, json!({}))
        .await;
    paid.assert_status(StatusCode::OK);
    assert_eq!(paid.body["status"], "paid");
    assert!(paid.body["paid_at"].is_string());
    app.wait_status(&owner, &l1, "active").await;
    app.wait_status(&owner, &l2, "active").await;
    assert_eq!(
        app.get(&format!("/v1/accounts/{account}"), &owner)
            .await
            .body["balance"],
        6_000
    );
    app.post(&format!("/v1/orders/{order_id}/pay"), &owner, json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.post(&format!("/v1/orders/{order_id}/cancel"), &owner, json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");

    // Cancelling an unpaid license order deletes its license.
    let third = app
        .post(
            "/v1/licenses",
            &owner,
            order_body(&product, json!({"method": "new_order"})),
        )
        .await;
    let o3 = third.body["order"]["id"].as_str().unwrap().to_owned();
    let l3 = third.body["license"]["id"].as_str().unwrap().to_owned();
    let cancelled = app
        .post(&format!("/v1/orders/{o3}/cancel"), &owner, json!({}))
        .await;
    cancelled.assert_status(StatusCode::OK);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(
        app.get(&format!("/v1/licenses/{l3}"), &owner).await.body["status"],
        "deleted"
    );

    // new_order with pay_now pays at once.
    let now_paid = app
        .post(
            "/v1/licenses",
            &owner,
            order_body(&product, json!({"method": "new_order", "pay_now": true})),
        )
        .await;
    now_paid.assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    app.credit(&admin, &account, 6_000).await;
    let now_paid = app
        .post(
            "/v1/licenses",
            &owner,
            order_body(&product, json!({"method": "new_order", "pay_now": true})),
        )
        .await;
    now_paid.assert_status(StatusCode::CREATED);
    assert_eq!(now_paid.body["order"]["status"], "paid");
    assert_eq!(
        app.get("/v1/orders?status=paid", &owner).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    app.get("/v1/orders?status=bogus", &owner)
        .await
        .assert_invalid_field("status");
}

async fn order_validation_and_tenancy(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (_, owner_a) = app.partner_with_owner(&admin, "A").await;
    let (b, owner_b) = app.partner_with_owner(&admin, "B").await;
    let good = order_body(&product, json!({"method": "new_order"}));
    let cases = [
        ("ip", json!("999.1.1.1")),
        ("period_months", json!(2)),
        ("period_months", json!(3)),
        ("name", json!("")),
        ("product_id", json!(uuid::Uuid::now_v7())),
        ("options.extra_domains", json!({"extra_domains": 11})),
        ("options.nope", json!({"nope": 1})),
        ("account_id", json!(b)),
        ("status", json!("active")),
        ("valid_until", json!("2030-01-01T00:00:00Z")),
    ];
    for (field, value) in cases {
        let mut body = good.clone();
        let key = field.split('.').next().unwrap();
        body[key] = value;
        app.post("/v1/licenses", &owner_a, body)
            .await
            .assert_invalid_field(field);
    }
    let mut bad_payment = good.clone();
    bad_payment["payment"] = json!({"method": "cash"});
    app.post("/v1/licenses", &owner_a, bad_payment)
        .await
        .assert_invalid_field("payment.method");
    assert_eq!(
        app.get("/v1/orders", &owner_a).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // B's order and license are invisible to A.
    let ob = app.post("/v1/licenses", &owner_b, good.clone()).await;
    let lb = ob.body["license"]["id"].as_str().unwrap();
    let order_b = ob.body["order"]["id"].as_str().unwrap();
    app.get(&format!("/v1/licenses/{lb}"), &owner_a)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post(&format!("/v1/licenses/{lb}/disable"), &owner_a, json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("/v1/orders/{order_b}"), &owner_a)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post(&format!("/v1/orders/{order_b}/pay"), &owner_a, json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let mut into_b = good.clone();
    into_b["payment"] = json!({"method": "existing_order", "order_id": order_b});
    app.post("/v1/licenses", &owner_a, into_b)
        .await
        .assert_invalid_field("payment.order_id");

    // A viewer cannot order.
    let account_a = app.get("/v1/me", &owner_a).await.body["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let viewer = app.user_token(&admin, &account_a, "viewer").await;
    app.post("/v1/licenses", &viewer, good)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.call(Method::GET, &format!("/v1/licenses/{lb}"), None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

db_test!(
    balance_order_activates,
    invoice_orders,
    order_validation_and_tenancy
);

async fn list_filters_and_pages(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (_, owner) = app.partner_with_owner(&admin, "Lister").await;
    let (_, other) = app.partner_with_owner(&admin, "Other").await;
    let mut ids = Vec::new();
    for (name, ip) in [
        ("Alpha Web", "10.1.0.5"),
        ("beta mail", "10.2.0.7"),
        ("Gamma WEB", "2001:db8::1"),
    ] {
        let mut body = order_body(&product, json!({"method": "new_order"}));
        body["name"] = json!(name);
        body["ip"] = json!(ip);
        let r = app.post("/v1/licenses", &owner, body).await;
        r.assert_status(StatusCode::CREATED);
        ids.push(r.body["license"]["id"].as_str().unwrap().to_owned());
    }
    app.post(
        "/v1/licenses",
        &other,
        order_body(&product, json!({"method": "new_order"})),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let names = |r: &licentia_tests::Resp| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_owned())
            .collect()
    };

    // Default: newest first, only the caller's.
    let all = app.get("/v1/licenses", &owner).await;
    all.assert_status(StatusCode::OK);
    assert_eq!(names(&all), ["Gamma WEB", "beta mail", "Alpha Web"]);
    assert_eq!(
        names(&app.get("/v1/licenses?name=web", &owner).await),
        ["Gamma WEB", "Alpha Web"]
    );
    assert_eq!(
        names(
            &app.get("/v1/licenses?ip=10.0.0.0/8&sort=name", &owner)
                .await
        ),
        ["Alpha Web", "beta mail"]
    );
    assert_eq!(
        names(&app.get("/v1/licenses?ip=10.2.0.7", &owner).await),
        ["beta mail"]
    );
    assert_eq!(
        names(&app.get("/v1/licenses?ip=2001:db8::/32", &owner).await),
        ["Gamma WEB"]
    );
    assert_eq!(
        names(&app.get("/v1/licenses?sort=-name", &owner).await),
        ["Gamma WEB", "beta mail", "Alpha Web"]
    );
    assert_eq!(
        names(
            &app.get(&format!("/v1/licenses?id={}", ids[1]), &owner)
                .await
        ),
        ["beta mail"]
    );
    assert_eq!(
        names(
            &app.get("/v1/licenses?status=ordered&period_months=12", &owner)
                .await
        )
        .len(),
        3
    );
    assert_eq!(
        names(&app.get("/v1/licenses?status=active", &owner).await).len(),
        0
    );

    // Deleted licenses appear only when asked for.
    app.delete(&format!("/v1/licenses/{}", ids[0]), &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        names(&app.get("/v1/licenses", &owner).await),
        ["Gamma WEB", "beta mail"]
    );
    assert_eq!(
        names(&app.get("/v1/licenses?status=deleted", &owner).await),
        ["Alpha Web"]
    );

    // Keyset pages with a cursor bound to the query and the caller.
    let first = app
        .get(
            "/v1/licenses?sort=name&limit=1&status=ordered,deleted",
            &owner,
        )
        .await;
    assert_eq!(names(&first), ["Alpha Web"]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(
            &format!("/v1/licenses?sort=name&limit=1&status=ordered,deleted&cursor={cursor}"),
            &owner,
        )
        .await;
    assert_eq!(names(&second), ["beta mail"]);
    app.get(
        &format!("/v1/licenses?sort=name&limit=1&status=ordered,deleted&cursor={cursor}"),
        &other,
    )
    .await
    .assert_invalid_field("cursor");
    app.get(
        &format!("/v1/licenses?sort=-name&limit=1&cursor={cursor}"),
        &owner,
    )
    .await
    .assert_invalid_field("cursor");

    // Admins see everyone's and may filter by account; partners may not.
    assert_eq!(names(&app.get("/v1/licenses", &admin).await).len(), 3);
    let me = app.get("/v1/me", &owner).await.body["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        names(
            &app.get(&format!("/v1/licenses?account_id={me}"), &admin)
                .await
        )
        .len(),
        2
    );
    app.get(&format!("/v1/licenses?account_id={me}"), &owner)
        .await
        .assert_invalid_field("account_id");

    for (query, field) in [
        ("bogus=1", "bogus"),
        ("status=nope", "status"),
        ("ip=10.0.0.0/99", "ip"),
        ("sort=price", "sort"),
        ("period_months=5", "period_months"),
        ("valid_until_from=yesterday", "valid_until_from"),
        ("limit=0", "limit"),
        ("limit=1000000", "limit"),
        ("cursor=garbage", "cursor"),
        ("product_id=x", "product_id"),
    ] {
        app.get(&format!("/v1/licenses?{query}"), &owner)
            .await
            .assert_invalid_field(field);
    }
}

db_test!(list_filters_and_pages);
