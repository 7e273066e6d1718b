//! The pools that skip the ping on checkout (PostgreSQL): validations and license files read
//! through one, list pages and counts through another. Their idle connections die when the
//! database server restarts; a request that meets one must still succeed (it is read again on
//! the pinged pool), never answer 503. Here the server's connections are ended from outside
//! (`pg_terminate_backend`), as a restart would end them.
use licentia_tests::TestApp;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

use super::{active_license, key_of, validate};

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_pooled_connections_are_not_errors() {
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .start()
        .await
    else {
        return;
    };
    let (_admin, owner, license) = active_license(&app, "dead-conns").await;
    let key = key_of(&license);
    // Every pool has an idle connection now.
    check(&app, &owner, &key).await;

    let outside = Database::connect(app.database_url.as_str()).await.unwrap();
    for round in 0..3 {
        let ended = outside
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            ))
            .await
            .unwrap()
            .and_then(|row| row.try_get::<i64>("", "n").ok())
            .unwrap_or(0);
        assert!(
            ended > 0,
            "round {round}: no connection of the server to end"
        );
        check(&app, &owner, &key).await;
    }
    outside.close().await.ok();
    app.finish().await;
}

/// A validation, a list page and a count, each answered as if nothing had happened.
async fn check(app: &TestApp, owner: &str, key: &str) {
    let answer = validate(app, json!({"registration_key": key})).await;
    answer.assert_status(StatusCode::OK);
    assert_eq!(answer.body["code"], "VALID", "{:?}", answer.body);
    let page = app.get("/v1/licenses?limit=5&sort=name", owner).await;
    page.assert_status(StatusCode::OK);
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(1));
    let count = app.get("/v1/licenses/count?status=active", owner).await;
    count.assert_status(StatusCode::OK);
    assert_eq!(count.body["count"], 1);
}
