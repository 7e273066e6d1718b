use licentia_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, db_test};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn login_good_and_bad(app: &TestApp) {
    let ok = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    ok.assert_status(StatusCode::OK);
    assert_eq!(ok.body["token_type"], "Bearer");
    assert_eq!(ok.body["expires_in"], 900);
    assert!(ok.body["refresh_token"].as_str().unwrap().len() > 30);
    // E-mail look-up is case-insensitive.
    app.login(&ADMIN_EMAIL.to_uppercase(), ADMIN_PASSWORD)
        .await
        .assert_status(StatusCode::OK);

    let bad = app.login(ADMIN_EMAIL, "wrong-password").await;
    bad.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        bad.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    app.login("nobody@licentia.test", ADMIN_PASSWORD)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    // Malformed JSON is 400; a well-formed body with an unknown field is 422.
    let malformed = app
        .client
        .post(app.url("/v1/auth/token"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(malformed)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
    app.call(
        Method::POST,
        "/v1/auth/token",
        None,
        Some(json!({"email": ADMIN_EMAIL, "password": "x", "otp": 1})),
    )
    .await
    .assert_invalid_field("otp");
    // Wrong content type is 415.
    let text = app
        .client
        .post(app.url("/v1/auth/token"))
        .body("email=a")
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(text)
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

async fn refresh_rotation_and_reuse(app: &TestApp) {
    let first = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let r1 = first.body["refresh_token"].as_str().unwrap().to_owned();
    let second = app
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    second.assert_status(StatusCode::OK);
    let r2 = second.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let access = second.body["access_token"].as_str().unwrap();
    app.get("/v1/me", access)
        .await
        .assert_status(StatusCode::OK);

    // Reusing the rotated token fails and revokes the family: r2 stops working too.
    let reuse = app
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    reuse.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        reuse
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    app.call(
        Method::POST,
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": r2})),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    // Another family is untouched by that, and logout revokes it.
    let other = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let r3 = other.body["refresh_token"].as_str().unwrap().to_owned();
    app.call(
        Method::POST,
        "/v1/auth/logout",
        None,
        Some(json!({"refresh_token": r3})),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    app.call(
        Method::POST,
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": r3})),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.call(
        Method::POST,
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": "garbage"})),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn me_and_bad_credentials(app: &TestApp) {
    let admin = app.admin_token().await;
    let me = app.get("/v1/me", &admin).await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["user"]["email"], ADMIN_EMAIL);
    assert_eq!(me.body["api_key"], serde_json::Value::Null);
    assert_eq!(me.body["role"], "admin");
    assert_eq!(me.body["account"]["kind"], "provider");
    assert_eq!(me.body["account"]["currency"], "USD");
    assert_eq!(me.body["scopes"].as_array().unwrap().len(), 6);

    let (account, viewer) = {
        let account = app.create_partner(&admin, "Viewer Co").await;
        let token = app.user_token(&admin, &account, "viewer").await;
        (account, token)
    };
    let me = app.get("/v1/me", &viewer).await;
    assert_eq!(me.body["role"], "viewer");
    assert_eq!(me.body["account"]["id"], account.as_str());
    assert_eq!(me.body["scopes"], json!(["licenses:read", "billing:read"]));

    // No credentials: 401 with a challenge and no error parameter.
    let none = app.call(Method::GET, "/v1/me", None, None).await;
    none.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let challenge = none.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer") && !challenge.contains("error="));
    // A tampered token: 401 invalid_token.
    let parts: Vec<&str> = admin.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        parts[2].chars().rev().collect::<String>()
    );
    let bad = app.get("/v1/me", &tampered).await;
    bad.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        bad.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    app.get("/v1/me", "not.a.jwt")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // Two credentials at once: 400.
    let both = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(&admin)
        .header("x-api-key", "lic_x")
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(both)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
}

db_test!(
    login_good_and_bad,
    refresh_rotation_and_reuse,
    me_and_bad_credentials
);

fn limited(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        rate_limit: licentia_api::config::Switch::On,
        ..licentia_tests::test_config(url)
    }
}

/// Five failed logins a minute per account and address, then 429 with Retry-After even for
/// the right password; other accounts are unaffected.
async fn login_throttle(app: &TestApp) {
    for _ in 0..5 {
        app.login(ADMIN_EMAIL, "wrong-password")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let limited = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    app.login("someone-else@licentia.test", "x")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttle_sqlite() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(limited)
        .spawn()
        .await;
    login_throttle(&app).await;
    app.finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttle_postgres() {
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .config(limited)
        .start()
        .await
    else {
        return;
    };
    login_throttle(&app).await;
    app.finish().await;
}

/// `POST /v1/me/password` (CONTRACT §2): a logged-in user changes its password; every refresh
/// token family is revoked; a wrong current password is 401; a short new one 422; API keys 403.
async fn password_change(app: &TestApp) {
    let admin = app.admin_token().await;
    let account = app.create_partner(&admin, "Changer").await;
    let email = format!("changer-{}@example.test", uuid::Uuid::new_v4().simple());
    app.post(
        &format!("/v1/accounts/{account}/users"),
        &admin,
        json!({"email": email, "password": licentia_tests::USER_PASSWORD, "role": "owner"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let login = app.login(&email, licentia_tests::USER_PASSWORD).await;
    login.assert_status(StatusCode::OK);
    let token = login.body["access_token"].as_str().unwrap().to_owned();
    let refresh = login.body["refresh_token"].as_str().unwrap().to_owned();
    let new_password = "a-brand-new-password-42";

    app.post(
        "/v1/me/password",
        &token,
        json!({"current_password": "not-the-password", "new_password": new_password}),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.post(
        "/v1/me/password",
        &token,
        json!({"current_password": licentia_tests::USER_PASSWORD, "new_password": "short"}),
    )
    .await
    .assert_invalid_field("new_password");
    let key = app
        .post(
            "/v1/api-keys",
            &token,
            json!({"name": "k", "scopes": ["account:admin"]}),
        )
        .await;
    key.assert_status(StatusCode::CREATED);
    let with_key = licentia_tests::Resp::from(
        app.client
            .post(app.url("/v1/me/password"))
            .header("X-API-Key", key.body["key"].as_str().unwrap())
            .json(&json!({"current_password": licentia_tests::USER_PASSWORD, "new_password": new_password}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    with_key.assert_problem(StatusCode::FORBIDDEN, "forbidden");

    app.post(
        "/v1/me/password",
        &token,
        json!({"current_password": licentia_tests::USER_PASSWORD, "new_password": new_password}),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    app.login(&email, licentia_tests::USER_PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.login(&email, new_password)
        .await
        .assert_status(StatusCode::OK);
    app.call(
        Method::POST,
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
}

db_test!(password_change);
