//! Usage (CONTRACT §11): `last_validated_at` on licenses, `last_seen_at` and `last_ip` on
//! registrations — recorded in memory by validations, written in batches by each process's
//! flush, only ever forward — and the list's idle-license filters and sort that use them.
use licentia_domain::ids::{LicenseId, RegistrationId};
use licentia_tests::{TestApp, db_test};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A partner with one product and money: `(admin, owner, product)`.
pub async fn partner(app: &TestApp, code: &str) -> (String, String, Value) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, code).await;
    let (account, owner) = app.partner_with_owner(&admin, "Usage").await;
    app.credit(&admin, &account, 1_000_000).await;
    (admin, owner, product)
}

/// An active 12-month license of `product` named `name` at 192.0.2.10.
pub async fn active(app: &TestApp, owner: &str, product: &Value, name: &str) -> Value {
    let ordered = app
        .post(
            "/v1/licenses",
            owner,
            json!({"product_id": product["id"], "name": name, "ip": "192.0.2.10",
                   "period_months": 12, "payment": {"method": "balance"}}),
        )
        .await;
    ordered.assert_status(StatusCode::CREATED);
    let id = ordered.body["license"]["id"].as_str().unwrap().to_owned();
    app.wait_status(owner, &id, "active").await
}

pub async fn validate(app: &TestApp, body: Value) -> Value {
    let r = app
        .call(Method::POST, "/v1/validate", None, Some(body))
        .await;
    r.assert_status(StatusCode::OK);
    r.body
}

/// Writes what the service's validations recorded, as its background flush would.
pub async fn flush(app: &TestApp) {
    app.state.usage.flush(&app.state.db).await.unwrap();
}

fn instant(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

/// To the microsecond, as the databases keep it.
fn micros(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1_000
}

async fn validations_are_buffered_then_written_forward(app: &TestApp) {
    let (_, owner, product) = partner(app, "usage").await;
    let license = active(app, &owner, &product, "Used").await;
    let id = license["id"].as_str().unwrap().to_owned();
    let key = license["registration_key"].as_str().unwrap().to_owned();
    assert_eq!(license["last_validated_at"], Value::Null);

    // A registration records its own sighting at once, with the address it reported.
    let reg = app
        .call(
            Method::POST,
            "/v1/registrations",
            None,
            Some(json!({"registration_key": key, "fingerprint": "m-1", "ip": "198.51.100.7"})),
        )
        .await;
    reg.assert_status(StatusCode::CREATED);
    assert_eq!(reg.body["last_ip"], "198.51.100.7");
    assert_eq!(reg.body["last_seen_at"], reg.body["created_at"]);

    // Validation writes nothing in its request path: the license is unchanged until a flush.
    let answer = validate(
        app,
        json!({"registration_key": key, "fingerprint": "m-1", "ip": "192.0.2.10"}),
    )
    .await;
    assert_eq!(answer["code"], "VALID");
    let before = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(before.body["last_validated_at"], Value::Null);
    assert_eq!(app.state.usage.pending(), 2, "the license and the machine");

    flush(app).await;
    assert_eq!(app.state.usage.pending(), 0);
    let after = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(
        micros(instant(&after.body["last_validated_at"])),
        micros(instant(&answer["issued_at"])),
        "last_validated_at is the instant of the last answer"
    );
    assert!(
        after.body["last_validated_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // Usage is not an edit: the version and ETag stay.
    assert_eq!(after.body["version"], before.body["version"]);
    assert_eq!(after.header("etag"), before.header("etag"));
    let machines = app
        .get(&format!("/v1/licenses/{id}/registrations"), &owner)
        .await;
    let machine = &machines.body["items"][0];
    assert_eq!(
        micros(instant(&machine["last_seen_at"])),
        micros(instant(&answer["issued_at"]))
    );
    assert_eq!(machine["last_ip"], "192.0.2.10");

    // Without an `ip`, the address of the connection.
    let second = validate(app, json!({"registration_key": key, "fingerprint": "m-1"})).await;
    flush(app).await;
    let machine = &app
        .get(&format!("/v1/licenses/{id}/registrations"), &owner)
        .await
        .body["items"][0];
    assert_eq!(machine["last_ip"], "127.0.0.1");
    assert_eq!(
        micros(instant(&machine["last_seen_at"])),
        micros(instant(&second["issued_at"]))
    );

    // Writes only move forward: an older instant (another process's late flush) changes nothing.
    let latest =
        app.get(&format!("/v1/licenses/{id}"), &owner).await.body["last_validated_at"].clone();
    let license_id = LicenseId::from_uuid(id.parse().unwrap());
    let registration_id =
        RegistrationId::from_uuid(machine["id"].as_str().unwrap().parse().unwrap());
    let old = OffsetDateTime::now_utc() - time::Duration::hours(1);
    app.state.usage.record(
        license_id,
        Some(registration_id),
        old,
        Some("203.0.113.1".parse().unwrap()),
    );
    flush(app).await;
    let unchanged = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(unchanged.body["last_validated_at"], latest);
    let machine = &app
        .get(&format!("/v1/licenses/{id}/registrations"), &owner)
        .await
        .body["items"][0];
    assert_eq!(machine["last_ip"], "127.0.0.1");

    // Each process flushes its own buffer; the latest instant wins whoever writes last.
    let other = app.spawn_second_instance().await;
    let third = validate(&other, json!({"registration_key": key})).await;
    app.state.usage.record(license_id, None, old, None);
    other.state.usage.flush(&other.state.db).await.unwrap();
    flush(app).await;
    let moved = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(
        micros(instant(&moved.body["last_validated_at"])),
        micros(instant(&third["issued_at"]))
    );
    other.finish().await;

    // Unknown keys record nothing; neither do deleted licenses (they answer NOT_FOUND).
    validate(app, json!({"registration_key": "no-such-key-0000000000"})).await;
    app.delete(&format!("/v1/licenses/{id}"), &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let gone = validate(app, json!({"registration_key": key})).await;
    assert_eq!(gone["code"], "NOT_FOUND");
    assert_eq!(app.state.usage.pending(), 0);
}

fn flush_every_second(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        usage_flush_secs: licentia_api::config::Secs::new(1),
        ..licentia_tests::test_config(url)
    }
}

/// The background flush writes within its interval, without anyone asking.
async fn background_flush(app: &TestApp) {
    let (_, owner, product) = partner(app, "usage-bg").await;
    let license = active(app, &owner, &product, "Flushed").await;
    let id = license["id"].as_str().unwrap();
    validate(
        app,
        json!({"registration_key": license["registration_key"]}),
    )
    .await;
    for _ in 0..100 {
        let now = app.get(&format!("/v1/licenses/{id}"), &owner).await;
        if now.body["last_validated_at"].is_string() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the usage was not written within 5 s of a 1 s flush interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_flush_sqlite() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(flush_every_second)
        .spawn()
        .await;
    background_flush(&app).await;
    app.finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_flush_postgres() {
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .config(flush_every_second)
        .start()
        .await
    else {
        return;
    };
    background_flush(&app).await;
    app.finish().await;
}

fn names(r: &licentia_tests::Resp) -> Vec<String> {
    r.assert_status(StatusCode::OK);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of `query` with `limit=1`, following the cursors.
async fn all_pages(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("/v1/licenses?{query}&limit=1"),
            Some(c) => format!("/v1/licenses?{query}&limit=1&cursor={c}"),
        };
        let page = app.get(&url, token).await;
        out.extend(names(&page));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
        assert!(out.len() < 50, "pages never end");
    }
}

async fn count(app: &TestApp, token: &str, query: &str) -> u64 {
    let r = app.get(&format!("/v1/licenses/count?{query}"), token).await;
    r.assert_status(StatusCode::OK);
    r.body["count"].as_u64().unwrap()
}

async fn idle_filters_and_validation_order(app: &TestApp) {
    let (_, owner, product) = partner(app, "idle").await;
    let mut ids = std::collections::BTreeMap::new();
    for name in ["old", "recent", "middle", "never-a", "never-b"] {
        let l = active(app, &owner, &product, name).await;
        ids.insert(name, l);
    }
    // "recent" validates for real; the others at chosen instants.
    validate(
        app,
        json!({"registration_key": ids["recent"]["registration_key"]}),
    )
    .await;
    let now = OffsetDateTime::now_utc();
    let at = |name: &str, t: OffsetDateTime| {
        let id = LicenseId::from_uuid(ids[name]["id"].as_str().unwrap().parse().unwrap());
        app.state.usage.record(id, None, t, None);
    };
    at("old", now - time::Duration::days(40));
    at("middle", now - time::Duration::days(3));
    flush(app).await;

    let cutoff = (now - time::Duration::days(30)).format(&Rfc3339).unwrap();
    let week = (now - time::Duration::days(7)).format(&Rfc3339).unwrap();
    let now_text = now.format(&Rfc3339).unwrap();
    // (filters, expected names sorted by name)
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("never_validated=true".into(), vec!["never-a", "never-b"]),
        (
            "never_validated=false".into(),
            vec!["middle", "old", "recent"],
        ),
        (format!("validated_before={cutoff}"), vec!["old"]),
        (format!("validated_before={week}"), vec!["old"]),
        (
            format!("validated_before={now_text}"),
            vec!["middle", "old", "recent"],
        ),
        (
            format!("validated_before={now_text}&never_validated=false"),
            vec!["middle", "old", "recent"],
        ),
        (
            format!("validated_before={now_text}&never_validated=true"),
            vec![],
        ),
    ];
    for (filters, expected) in &cases {
        assert_eq!(
            names(
                &app.get(&format!("/v1/licenses?{filters}&sort=name"), &owner)
                    .await
            ),
            *expected,
            "{filters}"
        );
        assert_eq!(
            count(app, &owner, filters).await,
            expected.len() as u64,
            "{filters}"
        );
    }
    assert_eq!(
        names(&app.get("/v1/licenses?sort=last_validated_at", &owner).await),
        ["old", "middle", "recent", "never-a", "never-b"]
    );
    assert_eq!(
        names(
            &app.get("/v1/licenses?sort=-last_validated_at", &owner)
                .await
        ),
        ["recent", "middle", "old", "never-b", "never-a"]
    );
    // Never-validated licenses come last in either direction, in id order (the newest first
    // when descending); keyset pages walk both parts without a gap or a repeat.
    assert_eq!(
        all_pages(app, &owner, "sort=last_validated_at").await,
        ["old", "middle", "recent", "never-a", "never-b"]
    );
    assert_eq!(
        all_pages(app, &owner, "sort=-last_validated_at").await,
        ["recent", "middle", "old", "never-b", "never-a"]
    );
    assert_eq!(
        all_pages(app, &owner, "sort=last_validated_at&never_validated=true").await,
        ["never-a", "never-b"]
    );
    assert_eq!(count(app, &owner, "never_validated=true").await, 2);
    assert_eq!(count(app, &owner, "never_validated=false").await, 3);
    assert_eq!(count(app, &owner, "").await, 5);
    // A cursor is bound to its sort.
    let first = app
        .get("/v1/licenses?sort=last_validated_at&limit=1", &owner)
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    app.get(
        &format!("/v1/licenses?sort=-last_validated_at&limit=1&cursor={cursor}"),
        &owner,
    )
    .await
    .assert_invalid_field("cursor");

    for (query, field) in [
        ("never_validated=maybe", "never_validated"),
        ("validated_before=yesterday", "validated_before"),
        ("sort=last_validated", "sort"),
    ] {
        app.get(&format!("/v1/licenses?{query}"), &owner)
            .await
            .assert_invalid_field(field);
        if field != "sort" {
            app.get(&format!("/v1/licenses/count?{query}"), &owner)
                .await
                .assert_invalid_field(field);
        }
    }
}

db_test!(
    validations_are_buffered_then_written_forward,
    idle_filters_and_validation_order
);
