//! CSV exports (CONTRACT §11): `Accept: text/csv` on the license list and the ledger — every
//! match, the list's filters, RFC 4180 quoting, formula-safe text, numbers left as numbers,
//! streamed across batches.
use licentia_domain::ids::LicenseId;
use licentia_domain::license_record::License;
use licentia_persistence::repo::licenses::{self, Scope};
use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

const LICENSES_HEADER: &str = "id,name,ip,product_code,period_months,status,valid_until,auto_renew_months,external_id,created_at,last_validated_at";
const LEDGER_HEADER: &str = "id,created_at,kind,amount,reference,order_id";

/// An RFC 4180 reader, written here independently of the service: rows of fields, and for
/// each field whether it was quoted.
fn parse_csv(text: &str) -> Vec<Vec<(String, bool)>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                quoted = true;
            }
            ',' => row.push((
                std::mem::take(&mut field),
                std::mem::replace(&mut quoted, false),
            )),
            '\r' => assert_eq!(chars.next(), Some('\n'), "CR without LF"),
            '\n' => panic!("a bare LF ends a row"),
            c => field.push(c),
        }
        if c == '\r' {
            row.push((
                std::mem::take(&mut field),
                std::mem::replace(&mut quoted, false),
            ));
            rows.push(std::mem::take(&mut row));
        }
    }
    assert!(!in_quotes, "unterminated quote");
    assert!(
        row.is_empty() && field.is_empty(),
        "the last row has no CRLF"
    );
    rows
}

async fn csv(app: &TestApp, path: &str, token: &str) -> licentia_tests::Resp {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(res).await
}

/// Data rows as plain values, checking the header and that every data field is quoted.
fn table(resp: &licentia_tests::Resp, header: &str) -> Vec<Vec<String>> {
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(resp.text.split("\r\n").next(), Some(header));
    let rows = parse_csv(&resp.text);
    let columns = header.split(',').count();
    rows.into_iter()
        .skip(1)
        .map(|row| {
            assert_eq!(row.len(), columns, "{row:?}");
            row.into_iter()
                .map(|(value, quoted)| {
                    assert!(quoted, "every field is quoted: {value}");
                    value
                })
                .collect()
        })
        .collect()
}

async fn order(app: &TestApp, token: &str, product: &Value, body: Value) -> Value {
    let mut full = json!({"product_id": product["id"], "ip": "192.0.2.30", "period_months": 12,
                          "payment": {"method": "new_order"}});
    for (k, v) in body.as_object().unwrap() {
        full[k] = v.clone();
    }
    let r = app.post("/v1/licenses", token, full).await;
    r.assert_status(StatusCode::CREATED);
    r.body["license"].clone()
}

async fn license_export(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "csv-panel").await;
    let (_, owner) = app.partner_with_owner(&admin, "Exporter").await;
    let (_, other) = app.partner_with_owner(&admin, "Someone else").await;
    let names = [
        "Acme, \"International\"",
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "-2+3",
        "@SUM(A1:A2)",
        "+1 555",
        "plain",
    ];
    let mut made = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let external = if i == 1 { json!("=ext") } else { Value::Null };
        made.push(
            order(
                app,
                &owner,
                &product,
                json!({"name": name, "external_id": external, "auto_renew_months": 12,
                       "metadata": {"team": if i % 2 == 0 { "even" } else { "odd" }}}),
            )
            .await,
        );
    }
    let theirs = order(app, &other, &product, json!({"name": "Not yours"})).await;

    let export = csv(app, "/v1/licenses", &owner).await;
    assert_eq!(
        export.header("content-disposition"),
        Some("attachment; filename=\"licenses.csv\"")
    );
    let rows = table(&export, LICENSES_HEADER);
    assert_eq!(rows.len(), names.len());
    assert!(!export.text.contains(theirs["id"].as_str().unwrap()));
    // Newest first, like the list's default.
    let json_list = app.get("/v1/licenses?limit=200", &owner).await;
    let ids: Vec<&str> = json_list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ids);
    let by_id = |id: &str| rows.iter().find(|r| r[0] == id).unwrap().clone();
    let quoted = by_id(made[0]["id"].as_str().unwrap());
    assert_eq!(
        quoted,
        [
            made[0]["id"].as_str().unwrap(),
            "Acme, \"International\"",
            "192.0.2.30",
            "csv-panel",
            "12",
            "ordered",
            "",
            "12",
            "",
            made[0]["created_at"].as_str().unwrap(),
            "",
        ]
    );
    // Formula-like text gets a leading apostrophe; numbers stay numbers.
    let formula = by_id(made[1]["id"].as_str().unwrap());
    assert_eq!(formula[1], "'=HYPERLINK(\"http://evil.example\",\"x\")");
    assert_eq!(formula[8], "'=ext");
    assert_eq!(by_id(made[2]["id"].as_str().unwrap())[1], "'-2+3");
    assert_eq!(by_id(made[3]["id"].as_str().unwrap())[1], "'@SUM(A1:A2)");
    assert_eq!(by_id(made[4]["id"].as_str().unwrap())[1], "'+1 555");
    assert_eq!(by_id(made[5]["id"].as_str().unwrap())[1], "plain");
    // The raw text: quoted fields, doubled quotes, CRLF.
    assert!(export.text.contains("\"Acme, \"\"International\"\"\""));

    // The list's filters and sort apply.
    let filtered = table(
        &csv(app, "/v1/licenses?metadata.team=even&sort=name", &owner).await,
        LICENSES_HEADER,
    );
    assert_eq!(
        filtered.iter().map(|r| r[1].as_str()).collect::<Vec<_>>(),
        ["'+1 555", "'-2+3", "Acme, \"International\""]
    );
    let none = csv(app, "/v1/licenses?status=active", &owner).await;
    assert_eq!(table(&none, LICENSES_HEADER).len(), 0);
    assert_eq!(none.text, format!("{LICENSES_HEADER}\r\n"));
    // Admins export everyone's.
    let all = table(&csv(app, "/v1/licenses", &admin).await, LICENSES_HEADER);
    assert_eq!(all.len(), names.len() + 1);

    // Paging does not apply to an export; bad filters are 422 as for JSON.
    for (query, field) in [
        ("limit=10", "limit"),
        ("cursor=abc", "cursor"),
        ("status=nope", "status"),
        ("bogus=1", "bogus"),
    ] {
        csv(app, &format!("/v1/licenses?{query}"), &owner)
            .await
            .assert_invalid_field(field);
    }
    // JSON stays the default, and wins when preferred.
    for accept in [
        "application/json",
        "*/*",
        "application/json, text/csv;q=0.5",
    ] {
        let r = app
            .client
            .get(app.url("/v1/licenses"))
            .bearer_auth(&owner)
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        let r = licentia_tests::Resp::from(r).await;
        r.assert_status(StatusCode::OK);
        assert!(r.body["items"].is_array(), "{accept}");
    }
    // Without licenses:read: 403 before anything is read.
    let key = app
        .post(
            "/v1/api-keys",
            &owner,
            json!({"name": "billing only", "scopes": ["billing:read"]}),
        )
        .await;
    let res = app
        .client
        .get(app.url("/v1/licenses"))
        .header("X-API-Key", key.body["key"].as_str().unwrap())
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(res)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

/// More rows than one batch: every row once, in order, across batch boundaries.
async fn license_export_streams_batches(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "csv-bulk").await;
    let (_, owner) = app.partner_with_owner(&admin, "Big exporter").await;
    let first = order(app, &owner, &product, json!({"name": "template"})).await;
    let template = licenses::find(
        app.state.db.conn(),
        Scope::All,
        LicenseId::from_uuid(first["id"].as_str().unwrap().parse().unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    let total = 2_345;
    let copies: Vec<License> = (1..total)
        .map(|i| License {
            id: LicenseId::new(),
            name: format!("bulk {:05}", (i * 7919) % total),
            registration_key: format!("bulk-{i}-{}", uuid::Uuid::new_v4().simple()),
            ..template.clone()
        })
        .collect();
    for chunk in copies.chunks(500) {
        licenses::insert_batch(app.state.db.conn(), chunk)
            .await
            .unwrap();
    }

    let rows = table(&csv(app, "/v1/licenses", &owner).await, LICENSES_HEADER);
    assert_eq!(rows.len(), total);
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(ids, sorted, "newest (largest UUIDv7) first, each once");

    let by_name = table(
        &csv(app, "/v1/licenses?sort=name", &owner).await,
        LICENSES_HEADER,
    );
    assert_eq!(by_name.len(), total);
    let names: Vec<&str> = by_name.iter().map(|r| r[1].as_str()).collect();
    let mut expected = names.clone();
    expected.sort_unstable();
    assert_eq!(names, expected);
    let count = app.get("/v1/licenses/count", &owner).await;
    assert_eq!(count.body["count"], total as u64);
}

async fn ledger_export(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "csv-ledger").await;
    let (account, owner) = app.partner_with_owner(&admin, "Bookkeeper").await;
    let (_, other) = app.partner_with_owner(&admin, "Outsider").await;
    for reference in ["Wire, \"2024-118\"", "=1+1", "-refund?", "@home"] {
        app.post(
            &format!("/v1/accounts/{account}/credits"),
            &admin,
            json!({"amount": 50_000, "reference": reference}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }
    let bought = app
        .post(
            "/v1/licenses",
            &owner,
            json!({"product_id": product["id"], "name": "Paid", "ip": "192.0.2.31",
                   "period_months": 12, "payment": {"method": "balance"}}),
        )
        .await;
    bought.assert_status(StatusCode::CREATED);
    let order_id = bought.body["order"]["id"].as_str().unwrap().to_owned();

    let path = format!("/v1/accounts/{account}/ledger");
    let export = csv(app, &path, &owner).await;
    let rows = table(&export, LEDGER_HEADER);
    let json_rows = app.get(&path, &owner).await.body["items"].clone();
    assert_eq!(rows.len(), json_rows.as_array().unwrap().len());
    assert_eq!(rows.len(), 5);
    for (row, entry) in rows.iter().zip(json_rows.as_array().unwrap()) {
        assert_eq!(row[0], entry["id"].as_str().unwrap());
        assert_eq!(row[1], entry["created_at"].as_str().unwrap());
        assert_eq!(row[2], entry["kind"].as_str().unwrap());
        assert_eq!(row[3], entry["amount"].as_i64().unwrap().to_string());
    }
    assert_eq!(rows[0][4], "Wire, \"2024-118\"");
    assert_eq!(rows[0][5], "");
    assert_eq!(rows[1][4], "'=1+1");
    assert_eq!(rows[2][4], "'-refund?");
    assert_eq!(rows[3][4], "'@home");
    // The charge: a negative number, not escaped as text.
    assert_eq!(rows[4][2], "charge");
    assert_eq!(rows[4][3], "-10000");
    assert_eq!(rows[4][5], order_id);

    // Same authorization as JSON: another partner 404, admins any account.
    csv(app, &path, &other)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        table(&csv(app, &path, &admin).await, LEDGER_HEADER).len(),
        5
    );
    csv(app, &format!("{path}?limit=2"), &owner)
        .await
        .assert_invalid_field("limit");
}

db_test!(
    license_export,
    license_export_streams_batches,
    ledger_export
);
