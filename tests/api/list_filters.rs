//! The license list's filters, checked by their results (not only their 422s): product,
//! validity range, period, external id and metadata — each also through
//! `GET /v1/licenses/count`, which must agree with the list.
use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn names(r: &licentia_tests::Resp) -> Vec<String> {
    r.assert_status(StatusCode::OK);
    let mut out: Vec<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

async fn matches(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let listed = names(
        &app.get(&format!("/v1/licenses?{query}&limit=200"), token)
            .await,
    );
    let count = app.get(&format!("/v1/licenses/count?{query}"), token).await;
    count.assert_status(StatusCode::OK);
    assert_eq!(
        count.body["count"].as_u64().unwrap() as usize,
        listed.len(),
        "count and list disagree on {query}"
    );
    listed
}

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap().replace('+', "%2B")
}

async fn filters_by_result(app: &TestApp) {
    let admin = app.admin_token().await;
    let panel = app.create_product(&admin, "flt-panel").await;
    let mail = app.create_product(&admin, "flt-mail").await;
    let (account, owner) = app.partner_with_owner(&admin, "Filtered").await;
    let (_, other) = app.partner_with_owner(&admin, "Other filtered").await;
    app.credit(&admin, &account, 1_000_000).await;
    // (name, product, period, paid, external id, metadata)
    type Spec<'a> = (&'a str, &'a Value, u32, bool, Option<&'a str>, Value);
    let specs: [Spec; 5] = [
        (
            "p-monthly",
            &panel,
            1,
            true,
            Some("INV-1"),
            json!({"env": "prod", "team": "a"}),
        ),
        (
            "p-yearly",
            &panel,
            12,
            true,
            Some("INV-10"),
            json!({"env": "prod", "team": "b"}),
        ),
        (
            "m-yearly",
            &mail,
            12,
            true,
            None,
            json!({"env": "dev", "x.y": "dotted", "a\"b": "q'uote"}),
        ),
        (
            "m-ordered",
            &mail,
            12,
            false,
            Some("inv-1"),
            json!({"env": "Prod"}),
        ),
        ("p-ordered", &panel, 1, false, None, json!({})),
    ];
    for (name, product, period, paid, external, metadata) in &specs {
        let payment = if *paid {
            json!({"method": "balance"})
        } else {
            json!({"method": "new_order"})
        };
        let r = app
            .post(
                "/v1/licenses",
                &owner,
                json!({"product_id": product["id"], "name": name, "ip": "192.0.2.40",
                       "period_months": period, "external_id": external,
                       "metadata": metadata, "payment": payment}),
            )
            .await;
        r.assert_status(StatusCode::CREATED);
        if *paid {
            let id = r.body["license"]["id"].as_str().unwrap();
            app.wait_status(&owner, id, "active").await;
        }
    }
    // Another partner's license matches the same filters and must never show.
    app.post(
        "/v1/licenses",
        &other,
        json!({"product_id": panel["id"], "name": "foreign", "ip": "192.0.2.40",
               "period_months": 1, "external_id": "INV-1", "metadata": {"env": "prod"},
               "payment": {"method": "new_order"}}),
    )
    .await
    .assert_status(StatusCode::CREATED);

    let now = OffsetDateTime::now_utc();
    let q = |s: String| s;
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            q(format!("product_id={}", panel["id"].as_str().unwrap())),
            vec!["p-monthly", "p-ordered", "p-yearly"],
        ),
        (
            q(format!("product_id={}", mail["id"].as_str().unwrap())),
            vec!["m-ordered", "m-yearly"],
        ),
        (q(format!("product_id={}", uuid::Uuid::now_v7())), vec![]),
        ("period_months=1".into(), vec!["p-monthly", "p-ordered"]),
        (
            "period_months=12".into(),
            vec!["m-ordered", "m-yearly", "p-yearly"],
        ),
        ("period_months=3".into(), vec![]),
        // The validity range: unpaid licenses have no valid_until and match no bound.
        (
            format!("valid_until_to={}", at(now + time::Duration::days(60))),
            vec!["p-monthly"],
        ),
        (
            format!("valid_until_from={}", at(now + time::Duration::days(60))),
            vec!["m-yearly", "p-yearly"],
        ),
        (
            format!(
                "valid_until_from={}&valid_until_to={}",
                at(now),
                at(now + time::Duration::days(400))
            ),
            vec!["m-yearly", "p-monthly", "p-yearly"],
        ),
        (format!("valid_until_to={}", at(now)), vec![]),
        // Exact, case-sensitive external ids.
        ("external_id=INV-1".into(), vec!["p-monthly"]),
        ("external_id=INV-10".into(), vec!["p-yearly"]),
        ("external_id=inv-1".into(), vec!["m-ordered"]),
        ("external_id=INV".into(), vec![]),
        // Metadata: exact string values, every filter must hold.
        ("metadata.env=prod".into(), vec!["p-monthly", "p-yearly"]),
        ("metadata.env=prod&metadata.team=b".into(), vec!["p-yearly"]),
        ("metadata.env=prod&metadata.team=c".into(), vec![]),
        ("metadata.env=Prod".into(), vec!["m-ordered"]),
        ("metadata.env=pro".into(), vec![]),
        (
            "metadata.team=a&metadata.env=prod&period_months=1".into(),
            vec!["p-monthly"],
        ),
        ("metadata.x.y=dotted".into(), vec!["m-yearly"]),
        ("metadata.a%22b=q%27uote".into(), vec!["m-yearly"]),
        ("metadata.missing=prod".into(), vec![]),
        ("metadata.env=".into(), vec![]),
        // Combined with the other filters.
        (
            format!(
                "metadata.env=prod&product_id={}&status=active",
                panel["id"].as_str().unwrap()
            ),
            vec!["p-monthly", "p-yearly"],
        ),
        ("status=ordered&period_months=12".into(), vec!["m-ordered"]),
    ];
    for (query, expected) in &cases {
        assert_eq!(matches(app, &owner, query).await, *expected, "{query}");
    }
    // Admins see every account's (the foreign one too) unless they name one.
    assert_eq!(
        matches(app, &admin, "external_id=INV-1").await,
        ["foreign", "p-monthly"]
    );
    assert_eq!(
        matches(
            app,
            &admin,
            &format!("external_id=INV-1&account_id={account}")
        )
        .await,
        ["p-monthly"]
    );

    // Metadata filters page with cursors bound to them.
    let first = app
        .get("/v1/licenses?metadata.env=prod&sort=name&limit=1", &owner)
        .await;
    assert_eq!(names(&first), ["p-monthly"]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(
            &format!("/v1/licenses?metadata.env=prod&sort=name&limit=1&cursor={cursor}"),
            &owner,
        )
        .await;
    assert_eq!(names(&second), ["p-yearly"]);
    assert_eq!(second.body["next_cursor"], Value::Null);
    app.get(
        &format!("/v1/licenses?metadata.env=dev&sort=name&limit=1&cursor={cursor}"),
        &owner,
    )
    .await
    .assert_invalid_field("cursor");

    let long_key = "k".repeat(65);
    let long_value = "v".repeat(513);
    for (query, field) in [
        (
            "metadata.a=1&metadata.b=2&metadata.c=3&metadata.d=4".to_owned(),
            "metadata".to_owned(),
        ),
        ("metadata.=x".to_owned(), "metadata.".to_owned()),
        (
            format!("metadata.{long_key}=x"),
            format!("metadata.{long_key}"),
        ),
        (format!("metadata.k={long_value}"), "metadata.k".to_owned()),
        (
            "metadata.env=a&metadata.env=b".to_owned(),
            "metadata.env".to_owned(),
        ),
        ("metadata=x".to_owned(), "metadata".to_owned()),
        ("external_ids=x".to_owned(), "external_ids".to_owned()),
    ] {
        app.get(&format!("/v1/licenses?{query}"), &owner)
            .await
            .assert_invalid_field(&field);
        app.get(&format!("/v1/licenses/count?{query}"), &owner)
            .await
            .assert_invalid_field(&field);
    }
    // Count takes the filters only.
    for (query, field) in [
        ("sort=name", "sort"),
        ("limit=5", "limit"),
        ("cursor=x", "cursor"),
    ] {
        app.get(&format!("/v1/licenses/count?{query}"), &owner)
            .await
            .assert_invalid_field(field);
    }
    app.get(&format!("/v1/licenses/count?account_id={account}"), &owner)
        .await
        .assert_invalid_field("account_id");
    let all = app.get("/v1/licenses/count", &owner).await;
    assert_eq!(all.body, json!({"count": 5}));
}

db_test!(filters_by_result);
