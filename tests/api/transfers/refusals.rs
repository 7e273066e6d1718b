//! Every refusal of the handshake: who may offer what to whom, the lockout after five wrong
//! secrets (THREATS #12), and the parties' exclusive view of a transfer.
use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::json;

use super::{accept, active_license, events, id_of, offer, setup};

async fn every_refusal(app: &TestApp) {
    let ctx = setup(app).await;
    let license = active_license(app, &ctx, "Refused").await;
    let path = format!("/v1/licenses/{license}/transfers");
    let to = json!({"to_account_id": ctx.receiver_account});

    // 403: a viewer holds no transfers:write.
    let viewer = app
        .user_token(&ctx.admin, &ctx.sender_account, "viewer")
        .await;
    app.post(&path, &viewer, to.clone())
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // 404: another partner's license, or none.
    app.post(&path, &ctx.receiver, to.clone())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let unknown = format!("/v1/licenses/{}/transfers", uuid::Uuid::now_v7());
    app.post(&unknown, &ctx.sender, to.clone())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // 422: the own account, an unknown account, the provider, bad secrets, unknown fields.
    for receiver in [
        ctx.sender_account.clone(),
        uuid::Uuid::now_v7().to_string(),
        app.get("/v1/me", &ctx.admin).await.body["account"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    ] {
        app.post(&path, &ctx.sender, json!({"to_account_id": receiver}))
            .await
            .assert_invalid_field("to_account_id");
    }
    for secret in ["eleven-char".to_owned(), "x".repeat(257)] {
        app.post(
            &path,
            &ctx.sender,
            json!({"to_account_id": ctx.receiver_account, "secret": secret}),
        )
        .await
        .assert_invalid_field("secret");
    }
    app.post(
        &path,
        &ctx.sender,
        json!({"to_account_id": ctx.receiver_account, "status": "accepted"}),
    )
    .await
    .assert_invalid_field("status");
    app.post(&path, &ctx.sender, json!({"to_account_id": "nope"}))
        .await
        .assert_invalid_field("to_account_id");

    // 409: one pending transfer per license (the dry run says so too).
    let first = offer(app, &ctx, &license, Some("twelve chars")).await;
    for dry in ["", "?dry_run=true"] {
        app.post(&format!("{path}{dry}"), &ctx.sender, to.clone())
            .await
            .assert_problem(StatusCode::CONFLICT, "already_exists");
    }
    app.post(
        &format!("/v1/transfers/{}/cancel", id_of(&first)),
        &ctx.sender,
        json!({}),
    )
    .await
    .assert_status(StatusCode::OK);

    // 409: a license not active nor suspended by the partner or for expiry.
    app.post(
        &format!("/v1/licenses/{license}/disable"),
        &ctx.admin,
        json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    for dry in ["", "?dry_run=true"] {
        app.post(&format!("{path}{dry}"), &ctx.sender, to.clone())
            .await
            .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    }
    let manual = active_license(app, &ctx, "Manual").await;
    app.post(
        &format!("/v1/licenses/{manual}/disable"),
        &ctx.sender,
        json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    offer(app, &ctx, &manual, None).await;
    let unpaid = app
        .post(
            "/v1/licenses",
            &ctx.sender,
            json!({"product_id": ctx.product["id"], "name": "Unpaid", "ip": "192.0.2.31",
                   "period_months": 1, "payment": {"method": "new_order"}}),
        )
        .await;
    unpaid.assert_status(StatusCode::CREATED);
    let unpaid = id_of(&unpaid.body["license"]);
    app.post(
        &format!("/v1/licenses/{unpaid}/transfers"),
        &ctx.sender,
        to.clone(),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    let deleted = active_license(app, &ctx, "Deleted").await;
    app.delete(&format!("/v1/licenses/{deleted}"), &ctx.sender)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.post(
        &format!("/v1/licenses/{deleted}/transfers"),
        &ctx.sender,
        to.clone(),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");

    // 409: a product that is not transferable.
    let other = active_license(app, &ctx, "Not transferable").await;
    app.patch(
        &format!("/v1/products/{}", ctx.product["id"].as_str().unwrap()),
        &ctx.admin,
        json!({"transferable": false}),
    )
    .await
    .assert_status(StatusCode::OK);
    app.post(
        &format!("/v1/licenses/{other}/transfers"),
        &ctx.sender,
        to.clone(),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");

    // None of the refusals created anything.
    let outgoing = app
        .get("/v1/transfers?direction=outgoing", &ctx.sender)
        .await;
    let statuses: Vec<&str> = outgoing.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "cancelled"]);

    // The list's own refusals.
    for bad in [
        "direction=sideways",
        "status=done",
        "limit=0",
        "cursor=garbage",
        "foo=1",
    ] {
        let resp = app.get(&format!("/v1/transfers?{bad}"), &ctx.sender).await;
        resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
}

async fn lockout_after_five_wrong_secrets(app: &TestApp) {
    let ctx = setup(app).await;
    let license = active_license(app, &ctx, "Guarded").await;
    let other_license = active_license(app, &ctx, "Other").await;
    let created = offer(app, &ctx, &license, None).await;
    let transfer = id_of(&created);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let other = offer(app, &ctx, &other_license, None).await;
    let other_secret = other["secret"].as_str().unwrap().to_owned();

    // Another transfer's secret answers exactly like nonsense, of any length.
    let wrong = [
        other_secret.clone(),
        "nonsense".to_owned(),
        String::new(),
        "x".repeat(5000),
    ];
    let mut answers = Vec::new();
    for (n, guess) in wrong.iter().enumerate() {
        let resp = accept(app, &ctx.receiver, &transfer, guess).await;
        resp.assert_problem(StatusCode::FORBIDDEN, "invalid_secret");
        answers.push(resp.text);
        let got = app
            .get(&format!("/v1/transfers/{transfer}"), &ctx.receiver)
            .await;
        assert_eq!(got.body["status"], "pending");
        assert_eq!(got.body["failed_attempts"], n + 1);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");

    // The fifth wrong secret expires the offer; then even the right one is refused.
    accept(app, &ctx.receiver, &transfer, "still wrong")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "invalid_secret");
    let got = app
        .get(&format!("/v1/transfers/{transfer}"), &ctx.receiver)
        .await;
    assert_eq!(got.body["status"], "expired");
    assert_eq!(got.body["failed_attempts"], 5);
    accept(app, &ctx.receiver, &transfer, &secret)
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    for token in [&ctx.sender, &ctx.receiver] {
        assert_eq!(events(app, token, "transfer.expired").await, 1);
    }
    // The license stayed with the sender, and may be offered again.
    let still = app
        .get(&format!("/v1/licenses/{license}"), &ctx.sender)
        .await;
    assert_eq!(still.body["account_id"], ctx.sender_account.as_str());
    offer(app, &ctx, &license, None).await;
    // The other offer was untouched by the guesses.
    accept(app, &ctx.receiver, &id_of(&other), &other_secret)
        .await
        .assert_status(StatusCode::OK);
}

async fn only_the_parties_see_it(app: &TestApp) {
    let ctx = setup(app).await;
    let license = active_license(app, &ctx, "Private").await;
    let created = offer(app, &ctx, &license, None).await;
    let transfer = id_of(&created);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let (_, third) = app.partner_with_owner(&ctx.admin, "Third").await;

    // A third partner: as if it did not exist, whatever it tries.
    app.get(&format!("/v1/transfers/{transfer}"), &third)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    accept(app, &third, &transfer, &secret)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    for action in ["reject", "cancel"] {
        app.post(
            &format!("/v1/transfers/{transfer}/{action}"),
            &third,
            json!({}),
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(
        app.get("/v1/transfers", &third).await.body["items"],
        json!([])
    );
    assert_eq!(events(app, &third, "transfer.created").await, 0);
    // An unknown id answers the same.
    let unknown = uuid::Uuid::now_v7();
    app.get(&format!("/v1/transfers/{unknown}"), &ctx.receiver)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    accept(app, &ctx.receiver, &unknown.to_string(), &secret)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Each party may only take its own side's actions.
    accept(app, &ctx.sender, &transfer, &secret)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post(
        &format!("/v1/transfers/{transfer}/reject"),
        &ctx.sender,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post(
        &format!("/v1/transfers/{transfer}/cancel"),
        &ctx.receiver,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // A receiver's viewer may look but not accept.
    let viewer = app
        .user_token(&ctx.admin, &ctx.receiver_account, "viewer")
        .await;
    app.get(&format!("/v1/transfers/{transfer}"), &viewer)
        .await
        .assert_status(StatusCode::OK);
    accept(app, &viewer, &transfer, &secret)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // The provider's administrators see every transfer.
    app.get(&format!("/v1/transfers/{transfer}"), &ctx.admin)
        .await
        .assert_status(StatusCode::OK);
    let all = app.get("/v1/transfers", &ctx.admin).await;
    assert_eq!(all.body["items"][0]["id"], transfer.as_str());
    // Nothing of that changed the offer.
    let got = app
        .get(&format!("/v1/transfers/{transfer}"), &ctx.receiver)
        .await;
    assert_eq!(got.body["status"], "pending");
    assert_eq!(got.body["failed_attempts"], 0);
}

db_test!(
    every_refusal,
    lockout_after_five_wrong_secrets,
    only_the_parties_see_it
);
