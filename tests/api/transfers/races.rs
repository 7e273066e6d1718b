//! Concurrency (THREATS #13: concurrent accepts, accept racing cancel) and the accept rate
//! limit, which only runs with rate limits on.
use std::sync::Arc;

use licentia_api::Config;
use licentia_tests::{TestApp, db_test, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use super::{Ctx, accept, active_license, events, id_of, offer, setup};

/// Fires every `(token, path, body)` POST at once (released together by a barrier) and
/// answers the statuses in the same order.
async fn fire(app: &TestApp, requests: Vec<(String, String, Value)>) -> Vec<(StatusCode, Value)> {
    let gate = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(token, path, body)| {
            let client = app.client.clone();
            let url = app.url(&path);
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                gate.wait().await;
                let res = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let resp = licentia_tests::Resp::from(res).await;
                (resp.status, resp.body)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

async fn owner_of(app: &TestApp, ctx: &Ctx, license: &str) -> String {
    let got = app
        .get(&format!("/v1/licenses/{license}"), &ctx.admin)
        .await;
    got.assert_status(StatusCode::OK);
    got.body["account_id"].as_str().unwrap().to_owned()
}

async fn concurrent_accepts_have_one_winner(app: &TestApp) {
    let ctx = setup(app).await;
    let license = active_license(app, &ctx, "Contested").await;
    let created = offer(app, &ctx, &license, None).await;
    let path = format!("/v1/transfers/{}/accept", id_of(&created));
    let body = json!({"secret": created["secret"]});
    let answers = fire(
        app,
        (0..10)
            .map(|_| (ctx.receiver.clone(), path.clone(), body.clone()))
            .collect(),
    )
    .await;
    let won = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(won, 1, "{answers:?}");
    for (status, body) in &answers {
        if *status != StatusCode::OK {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["code"], "invalid_transition");
        }
    }
    assert_eq!(owner_of(app, &ctx, &license).await, ctx.receiver_account);
    for token in [&ctx.sender, &ctx.receiver] {
        assert_eq!(events(app, token, "transfer.accepted").await, 1);
    }
    assert_eq!(events(app, &ctx.receiver, "license.updated").await, 1);
}

async fn accept_racing_cancel_has_one_winner(app: &TestApp) {
    let ctx = setup(app).await;
    for round in 0..4 {
        let license = active_license(app, &ctx, &format!("Race {round}")).await;
        let created = offer(app, &ctx, &license, None).await;
        let transfer = id_of(&created);
        let accept_call = (
            ctx.receiver.clone(),
            format!("/v1/transfers/{transfer}/accept"),
            json!({"secret": created["secret"]}),
        );
        let cancel_call = (
            ctx.sender.clone(),
            format!("/v1/transfers/{transfer}/cancel"),
            json!({}),
        );
        // Alternate who is sent first, so either may win.
        let answers = if round % 2 == 0 {
            fire(app, vec![accept_call, cancel_call]).await
        } else {
            let mut a = fire(app, vec![cancel_call, accept_call]).await;
            a.reverse();
            a
        };
        let (accepted, cancelled) = (&answers[0], &answers[1]);
        let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        assert_eq!(ok, 1, "round {round}: {answers:?}");
        let loser = if accepted.0 == StatusCode::OK {
            cancelled
        } else {
            accepted
        };
        assert_eq!(loser.0, StatusCode::CONFLICT, "{}", loser.1);
        assert_eq!(loser.1["code"], "invalid_transition");
        let got = app
            .get(&format!("/v1/transfers/{transfer}"), &ctx.sender)
            .await;
        let owner = owner_of(app, &ctx, &license).await;
        if accepted.0 == StatusCode::OK {
            assert_eq!(got.body["status"], "accepted");
            assert_eq!(owner, ctx.receiver_account);
        } else {
            assert_eq!(got.body["status"], "cancelled");
            assert_eq!(owner, ctx.sender_account);
        }
    }
}

db_test!(
    concurrent_accepts_have_one_winner,
    accept_racing_cancel_has_one_winner
);

fn rate_limited(url: &str) -> Config {
    Config {
        rate_limit: licentia_api::config::Switch::On,
        ..test_config(url)
    }
}

/// 20 attempts a minute per receiving account pass (whatever they answer); the next is 429
/// with `Retry-After`, on every transfer of that account.
async fn accept_attempts_are_rate_limited(app: &TestApp) {
    let ctx = setup(app).await;
    let first = active_license(app, &ctx, "Limited").await;
    let second = active_license(app, &ctx, "Also limited").await;
    let created = offer(app, &ctx, &first, None).await;
    let other = offer(app, &ctx, &second, None).await;
    let transfer = id_of(&created);
    for attempt in 0..20 {
        let resp = accept(app, &ctx.receiver, &transfer, "wrong").await;
        let expected = if attempt < 5 {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::CONFLICT
        };
        resp.assert_status(expected);
    }
    for (id, secret) in [
        (&transfer, &created["secret"]),
        (&id_of(&other), &other["secret"]),
    ] {
        let resp = accept(app, &ctx.receiver, id, secret.as_str().unwrap()).await;
        resp.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let wait: u64 = resp.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(resp.header("ratelimit-limit"), Some("20"));
        assert_eq!(resp.header("ratelimit-remaining"), Some("0"));
    }
    // The limit is the receiver's: the offer itself is untouched and still pending.
    let got = app
        .get(&format!("/v1/transfers/{}", id_of(&other)), &ctx.receiver)
        .await;
    assert_eq!(got.body["status"], "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_rate_limit_sqlite() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(rate_limited)
        .spawn()
        .await;
    accept_attempts_are_rate_limited(&app).await;
    app.finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_rate_limit_postgres() {
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .config(rate_limited)
        .start()
        .await
    else {
        return;
    };
    accept_attempts_are_rate_limited(&app).await;
    app.finish().await;
}
