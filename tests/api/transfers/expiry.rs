//! Offers lapse after `LICENTIA_TRANSFER_TTL_HOURS` (default 168): a lapsed pending offer is
//! `expired` to every reader and action (and persisted by the first), and the sweep expires
//! the rest in bulk. Runs on a manual clock.
use licentia_tests::{TestApp, clock_test};
use reqwest::StatusCode;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::{accept, active_license, events, id_of, offer, setup};

fn at(value: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().unwrap(), &Rfc3339).unwrap()
}

async fn offers_lapse_after_the_ttl(app: &TestApp) {
    let ctx = setup(app).await;
    let first = active_license(app, &ctx, "Lapsing").await;
    let second = active_license(app, &ctx, "Lapsing too").await;

    // Read: pending until the last instant, expired from `expires_at` on.
    let created = offer(app, &ctx, &first, None).await;
    let transfer = id_of(&created);
    assert_eq!(
        at(&created["expires_at"]) - at(&created["created_at"]),
        Duration::hours(168)
    );
    app.clock()
        .advance(Duration::hours(168) - Duration::seconds(1));
    let got = app
        .get(&format!("/v1/transfers/{transfer}"), &ctx.receiver)
        .await;
    assert_eq!(got.body["status"], "pending");
    app.clock().advance(Duration::seconds(1));
    let got = app
        .get(&format!("/v1/transfers/{transfer}"), &ctx.receiver)
        .await;
    assert_eq!(got.body["status"], "expired");
    assert!(got.body["decided_at"].is_string());
    for token in [&ctx.sender, &ctx.receiver] {
        assert_eq!(events(app, token, "transfer.expired").await, 1);
    }
    accept(
        app,
        &ctx.receiver,
        &transfer,
        created["secret"].as_str().unwrap(),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");

    // Accept, reject and cancel of lapsed offers: 409, and the expiry is kept.
    let to_accept = offer(app, &ctx, &first, None).await;
    let to_cancel = offer(app, &ctx, &second, None).await;
    app.clock().advance(Duration::hours(169));
    accept(
        app,
        &ctx.receiver,
        &id_of(&to_accept),
        to_accept["secret"].as_str().unwrap(),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.post(
        &format!("/v1/transfers/{}/cancel", id_of(&to_cancel)),
        &ctx.sender,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.post(
        &format!("/v1/transfers/{}/reject", id_of(&to_cancel)),
        &ctx.receiver,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    for token in [&ctx.sender, &ctx.receiver] {
        assert_eq!(events(app, token, "transfer.expired").await, 3);
    }
    let pending = app
        .get(
            "/v1/transfers?direction=incoming&status=pending",
            &ctx.receiver,
        )
        .await;
    assert_eq!(pending.body["items"], json!([]));
    let expired = app
        .get(
            "/v1/transfers?direction=incoming&status=expired",
            &ctx.receiver,
        )
        .await;
    assert_eq!(expired.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        app.get(&format!("/v1/licenses/{first}"), &ctx.sender)
            .await
            .body["account_id"],
        ctx.sender_account.as_str()
    );

    // Unread lapsed offers: the pending-list filter and the sweep both expire them.
    let listed = offer(app, &ctx, &first, None).await;
    app.clock().advance(Duration::hours(169));
    let pending = app
        .get(
            "/v1/transfers?direction=outgoing&status=pending",
            &ctx.sender,
        )
        .await;
    assert_eq!(pending.body["items"], json!([]));
    let got = app
        .get(&format!("/v1/transfers/{}", id_of(&listed)), &ctx.sender)
        .await;
    assert_eq!(got.body["status"], "expired");
    // A lapsed offer does not block a new one, even before anything noticed it lapsed.
    offer(app, &ctx, &second, None).await;
    app.clock().advance(Duration::hours(169));
    offer(app, &ctx, &second, None).await;
    let swept = offer(app, &ctx, &first, None).await;
    app.clock().advance(Duration::hours(169));
    // The service's own worker queues a sweep as soon as the clock enters a new slot, so it
    // may expire the two lapsed offers before this sweep does: between them, both are expired.
    let report = app.sweep().await;
    assert!(report.transfers_expired <= 2, "{report:?}");
    for token in [&ctx.sender, &ctx.receiver] {
        assert_eq!(events(app, token, "transfer.expired").await, 7);
    }
    assert_eq!(app.sweep().await.transfers_expired, 0);
    let got = app
        .get(&format!("/v1/transfers/{}", id_of(&swept)), &ctx.receiver)
        .await;
    assert_eq!(got.body["status"], "expired");
}

clock_test!(offers_lapse_after_the_ttl);
