//! Bad input never answers 5xx and never writes (CONTRACT §9): text with control characters
//! anywhere (bodies, query parameters, headers the service reads) is 422 naming the field on
//! both databases, and prices that would grow beyond 10^15 minor units are 422
//! `amount_too_large`.
use std::collections::BTreeMap;

use licentia_tests::{Backend, Resp, TestApp, db_test};
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

/// Rows per table: a request that changed nothing leaves every count as it was.
async fn row_counts(app: &TestApp) -> BTreeMap<String, i64> {
    let conn = app.state.db.conn();
    let backend = conn.get_database_backend();
    let list = match app.backend {
        Backend::Sqlite => {
            "SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT tablename::text AS t FROM pg_tables WHERE schemaname = 'public'"
        }
    };
    let tables: Vec<String> = conn
        .query_all_raw(Statement::from_string(backend, list))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "t").unwrap())
        .collect();
    let mut counts = BTreeMap::new();
    for table in tables {
        let sql = format!("SELECT COUNT(*) AS n FROM \"{table}\"");
        let row = conn
            .query_one_raw(Statement::from_string(backend, sql))
            .await
            .unwrap()
            .unwrap();
        counts.insert(table, row.try_get::<i64>("", "n").unwrap());
    }
    counts
}

/// How many items a list endpoint shows (one page is enough for these small sets).
async fn listed(app: &TestApp, path: &str, token: &str) -> usize {
    let r = app.get(path, token).await;
    r.assert_status(StatusCode::OK);
    r.body["items"].as_array().unwrap().len()
}

/// 422 `validation_failed` naming `field`, with the control-character message.
#[track_caller]
fn assert_control(resp: &Resp, field: &str) {
    resp.assert_invalid_field(field);
    assert!(
        resp.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == field
                && e["message"]
                    .as_str()
                    .unwrap()
                    .contains("control characters")),
        "{}",
        resp.text
    );
}

struct Ctx {
    admin: String,
    account: String,
    owner: String,
    product: Value,
    license: String,
}

/// A partner with an owner, credit, a product and one active license.
async fn setup(app: &TestApp) -> Ctx {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "panel").await;
    let (account, owner) = app.partner_with_owner(&admin, "Buyer").await;
    app.credit(&admin, &account, 1_000_000).await;
    let ordered = app
        .post("/v1/licenses", &owner, order(&product, json!({})))
        .await;
    ordered.assert_status(StatusCode::CREATED);
    let license = ordered.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&owner, &license, "active").await;
    Ctx {
        admin,
        account,
        owner,
        product,
        license,
    }
}

fn order(product: &Value, extra: Value) -> Value {
    let mut body = json!({"product_id": product["id"], "name": "Web 1", "ip": "192.0.2.10",
        "period_months": 12, "options": {"extra_domains": 1}, "payment": {"method": "balance"}});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Every body field the issue names, with U+0000 and with other control characters: 422
/// naming the field by its JSON path, and not one row more or less anywhere.
async fn control_characters_in_bodies(app: &TestApp) {
    let ctx = setup(app).await;
    let (admin, owner) = (ctx.admin.as_str(), ctx.owner.as_str());
    let before = row_counts(app).await;
    let licenses = listed(app, "/v1/licenses", owner).await;
    let accounts = listed(app, "/v1/accounts", admin).await;
    let products = listed(app, "/v1/products", admin).await;
    let keys = listed(app, "/v1/api-keys", owner).await;
    let ledger_path = format!("/v1/accounts/{}/ledger", ctx.account);
    let ledger = listed(app, &ledger_path, admin).await;

    // Logging in (no credentials at all).
    for email in [
        "admin\u{0}@licentia.test",
        "a\u{1}@x.test",
        "a\u{85}@x.test",
    ] {
        let r = app.login(email, "whatever-password").await;
        assert_control(&r, "email");
    }

    // Ordering a license: name, external_id, a metadata key and a metadata value.
    let cases = [
        (json!({"name": "Web\u{0}1"}), "name"),
        (json!({"name": "Web\u{7f}"}), "name"),
        (json!({"name": "Web\u{9f}"}), "name"),
        (json!({"external_id": "ext\u{0}"}), "external_id"),
        (json!({"metadata": {"k": "v\u{0}"}}), "metadata.k"),
        (json!({"metadata": {"k": "line\nbreak"}}), "metadata.k"),
        (json!({"metadata": {"k\u{0}": "v"}}), "metadata.k\\u0000"),
    ];
    for (extra, field) in &cases {
        let body = order(&ctx.product, extra.clone());
        assert_control(&app.post("/v1/licenses", owner, body.clone()).await, field);
        assert_control(
            &app.post("/v1/licenses?dry_run=true", owner, body).await,
            field,
        );
    }
    // Editing one.
    let license_path = format!("/v1/licenses/{}", ctx.license);
    assert_control(
        &app.patch(&license_path, owner, json!({"name": "x\u{0}"}))
            .await,
        "name",
    );

    // Accounts, created and renamed.
    for name in ["Acme\u{0}", "Acme\u{1b}[31m", "Acme\u{80}"] {
        assert_control(
            &app.post("/v1/accounts", admin, json!({"name": name})).await,
            "name",
        );
    }
    assert_control(
        &app.patch(
            &format!("/v1/accounts/{}", ctx.account),
            admin,
            json!({"name": "B\u{0}"}),
        )
        .await,
        "name",
    );

    // API keys.
    assert_control(
        &app.post(
            "/v1/api-keys",
            owner,
            json!({"name": "sync\u{0}", "scopes": ["licenses:read"]}),
        )
        .await,
        "name",
    );

    // Products: the product's name and an option's name, created and patched.
    let product = |name: &str, option_name: &str| {
        json!({"code": "new-one", "name": name,
               "prices": [{"period_months": 1, "amount": 100}],
               "options": [{"code": "o", "name": option_name, "min": 0, "max": 1,
                            "prices": [{"period_months": 1, "amount": 1}]}],
               "max_registrations": 1, "transferable": true})
    };
    assert_control(
        &app.post("/v1/products", admin, product("P\u{0}", "O"))
            .await,
        "name",
    );
    assert_control(
        &app.post("/v1/products", admin, product("P", "O\u{0}"))
            .await,
        "options[0].name",
    );
    let product_path = format!("/v1/products/{}", ctx.product["id"].as_str().unwrap());
    assert_control(
        &app.patch(&product_path, admin, json!({"name": "P\u{0}"}))
            .await,
        "name",
    );

    // Credits.
    let credits = format!("/v1/accounts/{}/credits", ctx.account);
    assert_control(
        &app.post(
            &credits,
            admin,
            json!({"amount": 100, "reference": "top-up\u{0}"}),
        )
        .await,
        "reference",
    );

    // Bulk operations: a filter is text too.
    for filter in [json!({"name": "\u{0}"}), json!({"external_id": "x\u{0}"})] {
        let field = format!(
            "filter.{}",
            filter.as_object().unwrap().keys().next().unwrap()
        );
        let r = app
            .post(
                "/v1/licenses/bulk",
                owner,
                json!({"action": "disable", "filter": filter}),
            )
            .await;
        assert_control(&r, &field);
    }

    // Nothing changed: not one row anywhere, and the lists agree.
    assert_eq!(row_counts(app).await, before);
    assert_eq!(listed(app, "/v1/licenses", owner).await, licenses);
    assert_eq!(listed(app, "/v1/accounts", admin).await, accounts);
    assert_eq!(listed(app, "/v1/products", admin).await, products);
    assert_eq!(listed(app, "/v1/api-keys", owner).await, keys);
    assert_eq!(listed(app, &ledger_path, admin).await, ledger);
    let license = app.get(&license_path, owner).await;
    assert_eq!(license.body["status"], "active");
    assert_eq!(license.body["name"], "Web 1");
    let account = app
        .get(&format!("/v1/accounts/{}", ctx.account), admin)
        .await;
    assert_eq!(account.body["name"], "Buyer");
}

/// Query parameters, percent-decoded, and the headers the service reads: 422 naming the
/// parameter (or header), before anything runs — the idempotency store included.
async fn control_characters_in_queries_and_headers(app: &TestApp) {
    let ctx = setup(app).await;
    let (admin, owner) = (ctx.admin.as_str(), ctx.owner.as_str());
    let before = row_counts(app).await;

    for (path, field) in [
        ("/v1/licenses?name=%00", "name"),
        ("/v1/licenses?name=a%00b&limit=5", "name"),
        ("/v1/licenses?external_id=%0A", "external_id"),
        ("/v1/licenses?name=%7F", "name"),
        ("/v1/licenses?name=%C2%85", "name"),
        ("/v1/licenses?na%00me=x", "na\\u0000me"),
        ("/v1/events?type=%00", "type"),
        ("/v1/products?code=%00", "code"),
    ] {
        assert_control(&app.get(path, owner).await, field);
    }
    // Without credentials too: nothing reads a request with such a query.
    let r = app
        .call(Method::GET, "/v1/licenses?name=%00", None, None)
        .await;
    assert_control(&r, "name");

    // A write with an Idempotency-Key and a bad query: refused before the key is stored, so
    // the same key then runs the good request as new (no replay, no 422 for another body).
    let key = "bad-query-key-1";
    let body = json!({"name": "Keyed"});
    let refused = app
        .client
        .post(app.url("/v1/accounts?x=%00"))
        .bearer_auth(admin)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_control(&Resp::from(refused).await, "x");
    assert_eq!(row_counts(app).await, before);
    let created = app
        .client
        .post(app.url("/v1/accounts"))
        .bearer_auth(admin)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let created = Resp::from(created).await;
    created.assert_status(StatusCode::CREATED);
    assert!(created.header("idempotent-replayed").is_none());

    // Headers: a tab is the one control character HTTP lets through in a value.
    let before = row_counts(app).await;
    let license_path = format!("/v1/licenses/{}", ctx.license);
    let r = app
        .client
        .patch(app.url(&license_path))
        .bearer_auth(owner)
        .header("If-Match", "\"1\t2\"")
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_control(&Resp::from(r).await, "If-Match");
    let r = app
        .client
        .post(app.url("/v1/accounts"))
        .bearer_auth(admin)
        .header("Idempotency-Key", "a\tb")
        .json(&json!({"name": "Tabbed"}))
        .send()
        .await
        .unwrap();
    assert_control(&Resp::from(r).await, "Idempotency-Key");
    assert_eq!(row_counts(app).await, before);
    assert_eq!(
        app.get(&license_path, owner).await.body["name"],
        "Web 1",
        "the license was not renamed"
    );
}

/// A product priced at the catalog's maximum with an option sold in huge quantities: every
/// order, dry run and configuration change whose price would pass 10^15 minor units is 422
/// `amount_too_large` (never a 500 from an overflow further on), and changes nothing.
async fn prices_beyond_the_bound(app: &TestApp) {
    let admin = app.admin_token().await;
    let max_price: i64 = 1_000_000_000_000;
    let product = app
        .post(
            "/v1/products",
            &admin,
            json!({
                "code": "gold", "name": "Gold",
                "prices": [{"period_months": 1, "amount": max_price}],
                "options": [{"code": "seats", "name": "Seats", "min": 0, "max": 4_000_000_000_u32,
                             "prices": [{"period_months": 1, "amount": max_price}]}],
                "max_registrations": 1, "transferable": true
            }),
        )
        .await;
    product.assert_status(StatusCode::CREATED);
    let product = product.body;
    let (account, owner) = app.partner_with_owner(&admin, "Whale").await;
    app.credit(&admin, &account, max_price).await;
    let body = |seats: i64, payment: Value| {
        json!({"product_id": product["id"], "name": "Big", "ip": "192.0.2.10",
               "period_months": 1, "options": {"seats": seats}, "payment": payment})
    };
    // Exactly affordable and within the bound: one license, paid in full.
    let ok = app
        .post(
            "/v1/licenses",
            &owner,
            body(0, json!({"method": "balance"})),
        )
        .await;
    ok.assert_status(StatusCode::CREATED);
    let license = ok.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(&owner, &license, "active").await;

    let before = row_counts(app).await;
    // 1000 seats: 1.001 × 10^15, just past the bound. 5 000 000: 5 × 10^18, which fits an
    // i64 and used to reach the database. 4 × 10^9: past i64 itself.
    for seats in [1_000, 5_000_000, 4_000_000_000_i64] {
        for payment in [
            json!({"method": "balance"}),
            json!({"method": "new_order"}),
            json!({"method": "new_order", "pay_now": true}),
        ] {
            for path in ["/v1/licenses", "/v1/licenses?dry_run=true"] {
                let r = app.post(path, &owner, body(seats, payment.clone())).await;
                r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large");
                assert!(
                    r.body["errors"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e["field"] == "options"),
                    "{}",
                    r.text
                );
            }
        }
        // Raising an existing license's option to it: the same answer.
        let path = format!("/v1/licenses/{license}/configuration");
        for path in [path.clone(), format!("{path}?dry_run=true")] {
            app.put(&path, &owner, json!({"options": {"seats": seats}}))
                .await
                .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large");
        }
    }
    assert_eq!(row_counts(app).await, before);
    let account = app.get(&format!("/v1/accounts/{account}"), &admin).await;
    assert_eq!(account.body["balance"], 0);

    // The catalog cannot hold such prices in the first place.
    for amount in [
        json!(max_price + 1),
        json!(1_000_000_000_000_001_i64),
        json!(i64::MAX),
    ] {
        let product = json!({"code": "platinum", "name": "Platinum",
            "prices": [{"period_months": 1, "amount": amount}],
            "max_registrations": 1, "transferable": true});
        app.post("/v1/products", &admin, product)
            .await
            .assert_invalid_field("prices[0].amount");
        let option = json!({"code": "platinum", "name": "Platinum",
            "prices": [{"period_months": 1, "amount": 1}],
            "options": [{"code": "x", "name": "X", "min": 0, "max": 1,
                         "prices": [{"period_months": 1, "amount": amount}]}],
            "max_registrations": 1, "transferable": true});
        app.post("/v1/products", &admin, option)
            .await
            .assert_invalid_field("options[0].prices[0].amount");
        let path = format!(
            "/v1/products/{}",
            product_id(&product_of(app, &admin).await)
        );
        app.patch(
            &path,
            &admin,
            json!({"prices": [{"period_months": 1, "amount": amount}]}),
        )
        .await
        .assert_invalid_field("prices[0].amount");
    }
    assert_eq!(row_counts(app).await, before);
}

async fn product_of(app: &TestApp, admin: &str) -> Value {
    let r = app.get("/v1/products?code=gold", admin).await;
    r.assert_status(StatusCode::OK);
    r.body["items"][0].clone()
}

fn product_id(product: &Value) -> &str {
    product["id"].as_str().unwrap()
}

db_test!(
    control_characters_in_bodies,
    control_characters_in_queries_and_headers,
    prices_beyond_the_bound
);
