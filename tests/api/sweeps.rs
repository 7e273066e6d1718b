//! The periodic sweep on a manual clock: expiry, renewal that revives, grace deletion,
//! auto-renewal with and without funds, `license.expiring_soon` once per term, and several
//! sweeps at once (two service instances on PostgreSQL) doing each effect once.
use licentia_tests::{Backend, TestApp, clock_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::renewals::{Ctx, active_license, balance, events, license, order, orders, renew, setup};

async fn expiry_then_renewal_revives(app: &TestApp) {
    let ctx = setup(app, "expiry", 10_000).await;
    app.clock().set_rfc3339("2024-01-10T00:00:00Z").unwrap();
    let id = active_license(app, &ctx, 1, json!({})).await;
    let manual = active_license(app, &ctx, 1, json!({})).await;
    app.post(
        &format!("/v1/licenses/{manual}/disable"),
        &ctx.owner,
        json!({}),
    )
    .await
    .assert_status(StatusCode::OK);

    // Past the term, even before a sweep marks it, enabling is refused.
    app.clock().set_rfc3339("2024-02-10T00:00:01Z").unwrap();
    app.post(
        &format!("/v1/licenses/{manual}/enable"),
        &ctx.owner,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "license_expired");
    app.sweep().await;
    for l in [&id, &manual] {
        let body = license(app, &ctx, l).await;
        assert_eq!(body["status"], "suspended", "{body}");
        assert_eq!(body["suspension_reason"], "expired");
        assert_eq!(events(app, &ctx, l, "license.expired").await, 1);
    }
    app.post(&format!("/v1/licenses/{id}/enable"), &ctx.owner, json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "license_expired");

    // A renewal from now revives it through in_progress.
    let quote = app
        .get(
            &format!("/v1/licenses/{id}/renewal-quote?period_months=1"),
            &ctx.owner,
        )
        .await;
    assert_eq!(quote.body["valid_until_after"], "2024-03-10T00:00:01Z");
    let renewed = renew(app, &ctx, &id, 1, json!({"method": "balance"})).await;
    renewed.assert_status(StatusCode::CREATED);
    assert_eq!(renewed.body["license"]["status"], "in_progress");
    assert_eq!(
        renewed.body["license"]["valid_until"],
        "2024-03-10T00:00:01Z"
    );
    let active = app.wait_status(&ctx.owner, &id, "active").await;
    assert_eq!(active["suspension_reason"], Value::Null);
    app.sweep().await;
    assert_eq!(license(app, &ctx, &id).await["status"], "active");
    assert_eq!(events(app, &ctx, &id, "license.expired").await, 1);
}

async fn grace_deletion(app: &TestApp) {
    let ctx = setup(app, "grace", 20_000).await;
    app.clock().set_rfc3339("2024-01-10T00:00:00Z").unwrap();
    let id = active_license(app, &ctx, 1, json!({})).await;
    let keeper = active_license(app, &ctx, 12, json!({})).await;
    app.clock().set_rfc3339("2024-02-11T00:00:00Z").unwrap();
    app.sweep().await;
    assert_eq!(
        license(app, &ctx, &id).await["suspension_reason"],
        "expired"
    );
    // Two invoices: one only for the expired license, one shared with another license.
    let own = renew(app, &ctx, &id, 1, json!({"method": "new_order"})).await;
    own.assert_status(StatusCode::CREATED);
    let own = own.body["order"]["id"].as_str().unwrap().to_owned();
    let shared = renew(app, &ctx, &keeper, 1, json!({"method": "new_order"})).await;
    let shared = shared.body["order"]["id"].as_str().unwrap().to_owned();
    renew(
        app,
        &ctx,
        &id,
        1,
        json!({"method": "existing_order", "order_id": shared}),
    )
    .await
    .assert_status(StatusCode::CREATED);

    // 29 days after valid_until: kept.
    app.clock().set_rfc3339("2024-03-10T00:00:00Z").unwrap();
    app.sweep().await;
    assert_eq!(license(app, &ctx, &id).await["status"], "suspended");
    // Past 30 days: deleted, its unpaid items cancelled.
    app.clock().set_rfc3339("2024-03-11T00:00:01Z").unwrap();
    app.sweep().await;
    assert_eq!(license(app, &ctx, &id).await["status"], "deleted");
    assert_eq!(events(app, &ctx, &id, "license.deleted").await, 1);
    let own = app.get(&format!("/v1/orders/{own}"), &ctx.owner).await;
    assert_eq!(own.body["status"], "cancelled");
    let shared = app.get(&format!("/v1/orders/{shared}"), &ctx.owner).await;
    assert_eq!(shared.body["status"], "unpaid");
    assert_eq!(shared.body["total"], 1000);
    assert_eq!(shared.body["items"][1]["status"], "cancelled");
    assert_eq!(license(app, &ctx, &keeper).await["status"], "active");
}

async fn auto_renewal_with_funds(app: &TestApp) {
    let ctx = setup(app, "autorenew", 10_000).await;
    app.clock().set_rfc3339("2024-01-10T00:00:00Z").unwrap();
    let id = active_license(app, &ctx, 1, json!({"auto_renew_months": 1})).await;
    assert_eq!(balance(app, &ctx).await, 9000);
    // Four days before the end: outside the 3-day lead time.
    app.clock().set_rfc3339("2024-02-06T00:00:00Z").unwrap();
    app.sweep().await;
    assert_eq!(
        license(app, &ctx, &id).await["valid_until"],
        "2024-02-10T00:00:00Z"
    );
    // Two days before: renewed from the balance, by the term's calendar month.
    app.clock().set_rfc3339("2024-02-08T00:00:00Z").unwrap();
    app.sweep().await;
    app.sweep().await;
    let l = license(app, &ctx, &id).await;
    assert_eq!(l["valid_until"], "2024-03-10T00:00:00Z");
    assert_eq!(l["status"], "active");
    assert_eq!(balance(app, &ctx).await, 8000);
    assert_eq!(events(app, &ctx, &id, "license.renewed").await, 1);
    let paid = orders(app, &ctx, "paid").await;
    assert_eq!(paid.len(), 2);
    assert_eq!(paid[0]["items"][0]["kind"], "renewal");
    assert_eq!(orders(app, &ctx, "unpaid").await.len(), 0);
}

async fn auto_renewal_short_of_funds(app: &TestApp) {
    let ctx = setup(app, "autoshort", 1000).await;
    app.clock().set_rfc3339("2024-01-10T00:00:00Z").unwrap();
    let id = active_license(app, &ctx, 1, json!({"auto_renew_months": 1})).await;
    assert_eq!(balance(app, &ctx).await, 0);

    // Short: one unpaid order for the term and one event, however many sweeps run.
    app.clock().set_rfc3339("2024-02-08T00:00:00Z").unwrap();
    app.sweep().await;
    app.clock().set_rfc3339("2024-02-08T06:00:00Z").unwrap();
    app.sweep().await;
    app.sweep().await;
    let unpaid = orders(app, &ctx, "unpaid").await;
    assert_eq!(unpaid.len(), 1, "{unpaid:?}");
    assert_eq!(unpaid[0]["total"], 1000);
    assert_eq!(unpaid[0]["items"][0]["kind"], "renewal");
    assert_eq!(events(app, &ctx, &id, "license.auto_renew_failed").await, 1);
    assert_eq!(
        license(app, &ctx, &id).await["valid_until"],
        "2024-02-10T00:00:00Z"
    );

    // Money arrives: the next sweep pays that order (no second one).
    app.credit(&ctx.admin, &ctx.account, 1000).await;
    app.sweep().await;
    assert_eq!(orders(app, &ctx, "unpaid").await.len(), 0);
    assert_eq!(orders(app, &ctx, "paid").await.len(), 2);
    assert_eq!(
        license(app, &ctx, &id).await["valid_until"],
        "2024-03-10T00:00:00Z"
    );
    assert_eq!(balance(app, &ctx).await, 0);

    // Next term, short again; the partner cancels the invoice: no new one, and at the end
    // of the term the license expires.
    app.clock().set_rfc3339("2024-03-08T00:00:00Z").unwrap();
    app.sweep().await;
    let unpaid = orders(app, &ctx, "unpaid").await;
    assert_eq!(unpaid.len(), 1);
    assert_eq!(events(app, &ctx, &id, "license.auto_renew_failed").await, 2);
    let invoice = unpaid[0]["id"].as_str().unwrap();
    app.post(
        &format!("/v1/orders/{invoice}/cancel"),
        &ctx.owner,
        json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    app.sweep().await;
    assert_eq!(orders(app, &ctx, "unpaid").await.len(), 0);
    app.clock().set_rfc3339("2024-03-10T00:00:00Z").unwrap();
    app.sweep().await;
    let l = license(app, &ctx, &id).await;
    assert_eq!(l["status"], "suspended");
    assert_eq!(l["suspension_reason"], "expired");
    assert_eq!(events(app, &ctx, &id, "license.auto_renew_failed").await, 2);
}

async fn expiring_soon_once_per_term(app: &TestApp) {
    let ctx = setup(app, "soon", 10_000).await;
    app.clock().set_rfc3339("2024-01-10T00:00:00Z").unwrap();
    let id = active_license(app, &ctx, 1, json!({})).await;
    app.clock().set_rfc3339("2024-02-02T00:00:00Z").unwrap();
    app.sweep().await;
    assert_eq!(events(app, &ctx, &id, "license.expiring_soon").await, 0);
    app.clock().set_rfc3339("2024-02-04T00:00:00Z").unwrap();
    app.sweep().await;
    app.sweep().await;
    app.clock().set_rfc3339("2024-02-05T00:00:00Z").unwrap();
    app.sweep().await;
    assert_eq!(events(app, &ctx, &id, "license.expiring_soon").await, 1);
    // A new term gets its own notice.
    renew(app, &ctx, &id, 1, json!({"method": "balance"}))
        .await
        .assert_status(StatusCode::CREATED);
    app.sweep().await;
    assert_eq!(events(app, &ctx, &id, "license.expiring_soon").await, 1);
    app.clock().set_rfc3339("2024-03-05T00:00:00Z").unwrap();
    app.sweep().await;
    app.sweep().await;
    assert_eq!(events(app, &ctx, &id, "license.expiring_soon").await, 2);
}

/// Nobody calls `sweep()`: the worker queues and runs the sweep of the new time slot.
async fn sweep_runs_in_the_background(app: &TestApp) {
    let ctx = setup(app, "background", 10_000).await;
    app.clock().set_rfc3339("2024-01-10T00:00:00Z").unwrap();
    let id = active_license(app, &ctx, 1, json!({})).await;
    app.clock().set_rfc3339("2024-02-11T00:00:00Z").unwrap();
    let l = app.wait_status(&ctx.owner, &id, "suspended").await;
    assert_eq!(l["suspension_reason"], "expired");
}

/// Many sweeps at once — on PostgreSQL from two service instances — renew, order, notify and
/// expire each license exactly once.
async fn concurrent_sweeps_act_once(app: &TestApp) {
    let ctx = setup(app, "concurrent", 10_000).await;
    app.clock().set_rfc3339("2024-01-10T00:00:00Z").unwrap();
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(active_license(app, &ctx, 1, json!({"auto_renew_months": 1})).await);
    }
    // 4,000 left: exactly four renewals can be paid; two licenses get an unpaid order.
    assert_eq!(balance(app, &ctx).await, 4000);
    // SQLite is one process's database; several processes are a PostgreSQL deployment.
    let second_instance = match app.backend {
        Backend::Postgres => Some(app.spawn_second_instance().await),
        Backend::Sqlite => None,
    };
    let second = second_instance.as_ref().unwrap_or(app);
    app.clock().set_rfc3339("2024-02-08T00:00:00Z").unwrap();
    tokio::join!(
        app.sweep(),
        app.sweep(),
        second.sweep(),
        second.sweep(),
        second.sweep()
    );
    assert_eq!(balance(app, &ctx).await, 0);
    let mut renewed = 0;
    let mut failed = 0;
    for id in &ids {
        let renewals = events(app, &ctx, id, "license.renewed").await;
        let failures = events(app, &ctx, id, "license.auto_renew_failed").await;
        let notices = events(app, &ctx, id, "license.expiring_soon").await;
        assert_eq!(renewals + failures, 1, "license {id}");
        let until = &license(app, &ctx, id).await["valid_until"];
        if renewals == 1 {
            assert_eq!(until, "2024-03-10T00:00:00Z");
            assert_eq!(notices, 0);
        } else {
            assert_eq!(until, "2024-02-10T00:00:00Z");
            assert_eq!(notices, 1);
        }
        renewed += renewals;
        failed += failures;
    }
    assert_eq!((renewed, failed), (4, 2));
    let unpaid = orders(app, &ctx, "unpaid").await;
    assert_eq!(unpaid.len(), 2);
    // And at the end of the term, the two unpaid ones expire once.
    app.clock().set_rfc3339("2024-02-10T00:00:00Z").unwrap();
    tokio::join!(app.sweep(), second.sweep(), app.sweep(), second.sweep());
    let mut expired = 0;
    for id in &ids {
        expired += events(app, &ctx, id, "license.expired").await;
    }
    assert_eq!(expired, 2);
    if let Some(second) = second_instance {
        second.finish().await;
    }
}

/// Orders without clock-driven sweeps still use the manual clock (an unpaid order's term
/// starts when it is paid).
async fn payment_starts_the_term_at_the_clock(app: &TestApp) {
    let ctx: Ctx = setup(app, "paylater", 10_000).await;
    app.clock().set_rfc3339("2024-01-31T12:00:00Z").unwrap();
    let body = order(
        app,
        &ctx,
        &ctx.product,
        1,
        json!({}),
        json!({"method": "new_order"}),
    )
    .await;
    let id = body["license"]["id"].as_str().unwrap().to_owned();
    let invoice = body["order"]["id"].as_str().unwrap().to_owned();
    app.clock().set_rfc3339("2024-03-31T12:00:00Z").unwrap();
    app.post(&format!("/v1/orders/{invoice}/pay"), &ctx.owner, json!({}))
        .await
        .assert_status(StatusCode::OK);
    let l = app.wait_status(&ctx.owner, &id, "active").await;
    assert_eq!(l["valid_until"], "2024-04-30T12:00:00Z");
}

/// Active licenses as the owner counts them.
async fn active_count(app: &TestApp, ctx: &Ctx) -> u32 {
    app.get("/v1/licenses/count?status=active", &ctx.owner)
        .await
        .body["count"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap()
}

/// A sweep walks every due license once, across its batches of 200, when the terms all end
/// at the same instant (the walk's keyset then advances by id alone). The background worker's
/// sweeps are kept out (one time slot of a century): this sweep alone must find them all.
async fn a_sweep_walks_every_due_license(app: &TestApp) {
    const LICENSES: u32 = 230;
    let ctx = setup(app, "walk", 10_000_000).await;
    app.clock().set_rfc3339("2024-01-10T00:00:00Z").unwrap();
    for _ in 0..LICENSES {
        order(
            app,
            &ctx,
            &ctx.product,
            1,
            json!({}),
            json!({"method": "balance"}),
        )
        .await;
    }
    for _ in 0..600 {
        if active_count(app, &ctx).await == LICENSES {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(active_count(app, &ctx).await, LICENSES);

    app.clock().set_rfc3339("2024-02-10T00:00:01Z").unwrap();
    let report = app.sweep().await;
    assert_eq!(report.expired, LICENSES, "{report:?}");
    assert_eq!(active_count(app, &ctx).await, 0);
    let again = app.sweep().await;
    assert_eq!(again.expired, 0, "{again:?}");
}

clock_test!(
    expiry_then_renewal_revives,
    grace_deletion,
    auto_renewal_with_funds,
    auto_renewal_short_of_funds,
    expiring_soon_once_per_term,
    sweep_runs_in_the_background,
    concurrent_sweeps_act_once,
    payment_starts_the_term_at_the_clock,
);

/// Settings whose sweep slot is a century long: the background worker sweeps once, at start.
fn one_slot(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        sweep_interval_secs: licentia_api::config::Secs::new(100 * 365 * 86_400),
        ..licentia_tests::test_config(url)
    }
}

clock_test!(config = one_slot; a_sweep_walks_every_due_license);
