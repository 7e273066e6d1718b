//! A failing provisioner: retried with backoff while the license stays `in_progress` with
//! `provisioning_error`; after the last attempt an event and an admin retry.
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use licentia_app::provisioning::ProvisionJob;
use licentia_tests::TestApp;
use reqwest::StatusCode;
use serde_json::json;

/// Fails its first `failures` calls, then succeeds.
struct Flaky {
    failures: AtomicU32,
}

impl licentia_app::provisioning::Provisioner for Flaky {
    fn apply(&self, _job: &ProvisionJob<'_>) -> Result<(), String> {
        let left = self.failures.load(Ordering::SeqCst);
        if left == 0 {
            return Ok(());
        }
        self.failures.store(left - 1, Ordering::SeqCst);
        Err("the licensing backend answered 503".into())
    }
}

fn two_attempts(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        provision_attempts: std::num::NonZeroU32::new(2).expect("positive"),
        ..licentia_tests::test_config(url)
    }
}

async fn failing_provisioning(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "flaky").await;
    let (account, owner) = app.partner_with_owner(&admin, "Unlucky").await;
    app.credit(&admin, &account, 50_000).await;
    let r = app
        .post(
            "/v1/licenses",
            &owner,
            json!({"product_id": product["id"], "name": "Flaky", "ip": "192.0.2.3", "period_months": 12,
                   "payment": {"method": "balance"}}),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    let id = r.body["license"]["id"].as_str().unwrap().to_owned();

    // Two attempts (one retry after the backoff), both failing: the error is visible and the
    // license stays in_progress; an event says so.
    let mut failed = false;
    for _ in 0..80 {
        let events = app
            .get(
                &format!("/v1/events?license_id={id}&type=license.provisioning_failed"),
                &admin,
            )
            .await;
        if !events.body["items"].as_array().unwrap().is_empty() {
            failed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(failed, "no license.provisioning_failed event");
    let stuck = app.get(&format!("/v1/licenses/{id}"), &owner).await;
    assert_eq!(stuck.body["status"], "in_progress");
    assert_eq!(
        stuck.body["provisioning_error"],
        "the licensing backend answered 503"
    );

    // Only admins retry; the next attempt succeeds and clears the error.
    app.post(
        &format!("/v1/licenses/{id}/provisioning/retry"),
        &owner,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(
        &format!("/v1/licenses/{id}/provisioning/retry"),
        &admin,
        json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    let active = app.wait_status(&owner, &id, "active").await;
    assert_eq!(active["provisioning_error"], serde_json::Value::Null);
    app.post(
        &format!("/v1/licenses/{id}/provisioning/retry"),
        &admin,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
}

fn flaky() -> Arc<dyn licentia_app::provisioning::Provisioner> {
    Arc::new(Flaky {
        failures: AtomicU32::new(2),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_provisioning_sqlite() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(two_attempts)
        .provisioner(flaky())
        .spawn()
        .await;
    failing_provisioning(&app).await;
    app.finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_provisioning_postgres() {
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .config(two_attempts)
        .provisioner(flaky())
        .start()
        .await
    else {
        return;
    };
    failing_provisioning(&app).await;
    app.finish().await;
}
