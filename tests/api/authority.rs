//! Authority (CONTRACT §2, §9, §0): the login throttle counted in the database before the
//! password is checked and shared by every process; the transfer-accept limit likewise; users
//! managed only by people, never with more authority than their creator's; the last owner kept
//! under concurrent deletes; and the order of checks on user and API-key routes.
use std::sync::Arc;

use licentia_persistence::entities::attempt_counters;
use licentia_persistence::sea_orm::sea_query::{Expr, ExprTrait};
use licentia_persistence::sea_orm::{EntityTrait, QueryFilter};
use licentia_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Resp, TestApp, USER_PASSWORD, db_test};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Barrier;

/// Test settings with the rate limits on.
fn limited(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        rate_limit: licentia_api::config::Switch::On,
        ..licentia_tests::test_config(url)
    }
}

/// Runs one scenario with the rate limits on, on SQLite and on PostgreSQL.
macro_rules! limited_test {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let app = licentia_tests::TestApp::builder(licentia_tests::Backend::Sqlite).config(super::limited).spawn().await;
                super::$name(&[&app]).await;
                app.finish().await;
            }
            #[cfg_attr(not(licentia_pg), ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(app) = licentia_tests::TestApp::builder(licentia_tests::Backend::Postgres).config(super::limited).start().await
                else {
                    return;
                };
                super::$name(&[&app]).await;
                app.finish().await;
            }
            /// Two server processes on one PostgreSQL database share the count.
            #[cfg_attr(not(licentia_pg), ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres_two_instances() {
                let Some(app) = licentia_tests::TestApp::builder(licentia_tests::Backend::Postgres).config(super::limited).start().await
                else {
                    return;
                };
                let second = app.spawn_second_instance().await;
                super::$name(&[&app, &second]).await;
                second.finish().await;
                app.finish().await;
            }
        }
    )+};
}

/// A request with an API key instead of a bearer token.
async fn with_key(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Resp {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("x-api-key", key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    Resp::from(req.send().await.unwrap()).await
}

/// Fires `n` requests at once (released together by a barrier), spread over `instances`; each
/// is `make(i)` → `(method, path, bearer token or None, body)`. Answers in order.
async fn fire(
    instances: &[&TestApp],
    n: usize,
    make: impl Fn(usize) -> (Method, String, Option<String>, Option<Value>),
) -> Vec<Resp> {
    let gate = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let app = instances[i % instances.len()];
            let (method, path, token, body) = make(i);
            let mut req = app.client.request(method, app.url(&path));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            if let Some(body) = body {
                req = req.json(&body);
            }
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                gate.wait().await;
                Resp::from(req.send().await.unwrap()).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

/// Moves every counted window of `limit_name` 61 seconds into the past, as if a minute went by.
async fn let_a_minute_pass(app: &TestApp, limit_name: &str) {
    attempt_counters::Entity::update_many()
        .col_expr(
            attempt_counters::Column::WindowStartMs,
            Expr::col(attempt_counters::Column::WindowStartMs).sub(61_000_i64),
        )
        .filter(Expr::col(attempt_counters::Column::LimitName).eq(limit_name))
        .exec(app.state.db.conn())
        .await
        .unwrap();
}

fn statuses(answers: &[Resp]) -> (usize, usize) {
    let unauthorized = answers
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let limited = answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    (unauthorized, limited)
}

/// 48 simultaneous wrong passwords for one account (over every instance) check 5 passwords;
/// the rest, and then the right password, are 429 with `Retry-After` until the window passes.
async fn parallel_wrong_logins_check_at_most_five(instances: &[&TestApp]) {
    let app = instances[0];
    let answers = fire(instances, 48, |i| {
        (
            Method::POST,
            "/v1/auth/token".to_owned(),
            None,
            Some(json!({"email": ADMIN_EMAIL, "password": format!("wrong-guess-{i}")})),
        )
    })
    .await;
    let (unauthorized, limited) = statuses(&answers);
    assert_eq!(
        unauthorized, 5,
        "{unauthorized} wrong passwords were checked"
    );
    assert_eq!(unauthorized + limited, 48, "every answer is 401 or 429");
    for refused in answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
    {
        refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    // The right password is refused too, on every instance, until the window passes.
    for instance in instances {
        instance
            .login(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
    // Another account is not affected.
    app.login("someone-else@licentia.test", "wrong")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let_a_minute_pass(app, "login_failures").await;
    for instance in instances {
        instance
            .login(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .assert_status(StatusCode::OK);
    }
}

/// Right passwords give their attempt back: only failures count.
async fn successful_logins_do_not_count(instances: &[&TestApp]) {
    let app = instances[0];
    for _ in 0..10 {
        app.login(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .assert_status(StatusCode::OK);
    }
    for _ in 0..4 {
        app.login(ADMIN_EMAIL, "wrong-password")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .assert_status(StatusCode::OK);
    // The fifth failure is still answered; the sixth attempt is not.
    app.login(ADMIN_EMAIL, "wrong-password")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

/// Transfer accepts: 20 a minute per receiving account, counted before the transfer is looked
/// up and shared by every instance.
async fn transfer_accepts_are_limited_per_account(instances: &[&TestApp]) {
    let app = instances[0];
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Receiver").await;
    let (_, other) = app.partner_with_owner(&admin, "Other receiver").await;
    let answers = fire(instances, 30, |_| {
        (
            Method::POST,
            format!("/v1/transfers/{}/accept", uuid::Uuid::new_v4()),
            Some(owner.clone()),
            Some(json!({"secret": "not-the-secret"})),
        )
    })
    .await;
    let looked_up = answers
        .iter()
        .filter(|r| r.status == StatusCode::NOT_FOUND)
        .count();
    let limited = answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((looked_up, limited), (20, 10), "20 attempts a minute");
    for refused in answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
    {
        refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert!(refused.header("retry-after").is_some());
    }
    // Another receiving account has its own allowance.
    app.post(
        &format!("/v1/transfers/{}/accept", uuid::Uuid::new_v4()),
        &other,
        json!({"secret": "x"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let_a_minute_pass(app, "transfer_accepts").await;
    app.post(
        &format!("/v1/transfers/{}/accept", uuid::Uuid::new_v4()),
        &owner,
        json!({"secret": "x"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

limited_test!(
    parallel_wrong_logins_check_at_most_five,
    successful_logins_do_not_count,
    transfer_accepts_are_limited_per_account
);

/// Creates a user and answers `(id, access token)`.
async fn user(app: &TestApp, creator: &str, account: &str, role: &str) -> (String, String) {
    let email = format!("{role}-{}@authority.test", uuid::Uuid::new_v4().simple());
    let created = app
        .post(
            &format!("/v1/accounts/{account}/users"),
            creator,
            json!({"email": email, "password": USER_PASSWORD, "role": role}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let login = app.login(&email, USER_PASSWORD).await;
    login.assert_status(StatusCode::OK);
    (
        created.body["id"].as_str().unwrap().to_owned(),
        login.body["access_token"].as_str().unwrap().to_owned(),
    )
}

/// Creates an API key of the caller's account and answers the key.
async fn key(app: &TestApp, token: &str, scopes: Value) -> String {
    let created = app
        .post(
            "/v1/api-keys",
            token,
            json!({"name": "authority", "scopes": scopes}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    created.body["key"].as_str().unwrap().to_owned()
}

fn new_user(role: &str) -> Value {
    json!({
        "email": format!("{role}-{}@authority.test", uuid::Uuid::new_v4().simple()),
        "password": USER_PASSWORD,
        "role": role,
    })
}

/// Users are people: an API key gets 403 on every user route, whatever its scopes — a partner
/// owner's full key and the provider's `account:admin` key alike.
async fn api_keys_never_manage_users(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner) = app.partner_with_owner(&admin, "Keyed").await;
    let (operator_id, _) = user(app, &admin, &account, "operator").await;
    let all = json!([
        "licenses:read",
        "licenses:write",
        "billing:read",
        "billing:write",
        "transfers:write",
        "account:admin"
    ]);
    let partner_key = key(app, &owner, all).await;
    let provider = app.get("/v1/me", &admin).await.body["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let provider_key = key(app, &admin, json!(["account:admin"])).await;
    for (key, account, role) in [
        (&partner_key, &account, "owner"),
        (&partner_key, &account, "viewer"),
        (&provider_key, &provider, "admin"),
    ] {
        with_key(
            app,
            Method::POST,
            &format!("/v1/accounts/{account}/users"),
            key,
            Some(new_user(role)),
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        with_key(
            app,
            Method::GET,
            &format!("/v1/accounts/{account}/users"),
            key,
            None,
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    with_key(
        app,
        Method::DELETE,
        &format!("/v1/accounts/{account}/users/{operator_id}"),
        &partner_key,
        None,
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // Still forbidden for another tenant's account or an unknown one (403 before 404).
    with_key(
        app,
        Method::GET,
        &format!("/v1/accounts/{}/users", uuid::Uuid::new_v4()),
        &partner_key,
        None,
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // Nothing was created or deleted.
    let users = app
        .get(&format!("/v1/accounts/{account}/users"), &owner)
        .await;
    users.assert_status(StatusCode::OK);
    assert_eq!(users.body["items"].as_array().unwrap().len(), 2);
    let provider_users = app
        .get(&format!("/v1/accounts/{provider}/users"), &admin)
        .await;
    assert_eq!(provider_users.body["items"].as_array().unwrap().len(), 1);
}

/// Nobody creates a user with more authority than their own: only admins create admins, an
/// owner creates owners and below, operators and viewers create nobody.
async fn roles_never_escalate(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner) = app.partner_with_owner(&admin, "Ladder").await;
    let (_, operator) = user(app, &admin, &account, "operator").await;
    let (_, viewer) = user(app, &admin, &account, "viewer").await;
    let users = format!("/v1/accounts/{account}/users");
    // A partner owner asking for an admin: a role it may not grant (422 naming `role`), and
    // nothing is created.
    app.post(&users, &owner, new_user("admin"))
        .await
        .assert_invalid_field("role");
    assert_eq!(
        app.get(&users, &owner).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Operators and viewers manage no users at all.
    for (token, role) in [
        (&operator, "owner"),
        (&operator, "operator"),
        (&viewer, "owner"),
        (&viewer, "viewer"),
    ] {
        app.post(&users, token, new_user(role))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    // An owner may create owners and below.
    for role in ["owner", "operator", "viewer"] {
        app.post(&users, &owner, new_user(role))
            .await
            .assert_status(StatusCode::CREATED);
    }
    // Admins create admins, in the provider's account only.
    let provider = app.get("/v1/me", &admin).await.body["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/v1/accounts/{provider}/users"),
        &admin,
        new_user("admin"),
    )
    .await
    .assert_status(StatusCode::CREATED);
    app.post(&users, &admin, new_user("admin"))
        .await
        .assert_invalid_field("role");
    // Nobody but the above got in.
    let listed = app.get(&users, &owner).await;
    let roles: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["role"].as_str().unwrap())
        .collect();
    assert!(!roles.contains(&"admin"), "{roles:?}");
    assert_eq!(roles.len(), 6, "{roles:?}");
}

/// A key's scopes ⊆ its creator's, for keys created by keys too; and no key outlives the key
/// that created it.
async fn keys_never_escalate(app: &TestApp) {
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Key ladder").await;
    let narrow = key(app, &owner, json!(["account:admin", "licenses:read"])).await;
    let wider = with_key(
        app,
        Method::POST,
        "/v1/api-keys",
        &narrow,
        Some(json!({"name": "wider", "scopes": ["licenses:read", "licenses:write"]})),
    )
    .await;
    wider.assert_invalid_field("scopes[1]");
    let same = with_key(
        app,
        Method::POST,
        "/v1/api-keys",
        &narrow,
        Some(json!({"name": "same", "scopes": ["licenses:read"]})),
    )
    .await;
    same.assert_status(StatusCode::CREATED);
    assert_eq!(same.body["scopes"], json!(["licenses:read"]));
    // A key without account:admin creates no keys.
    let reader = same.body["key"].as_str().unwrap().to_owned();
    with_key(
        app,
        Method::POST,
        "/v1/api-keys",
        &reader,
        Some(json!({"name": "x", "scopes": ["licenses:read"]})),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    // An expiring key's keys expire no later than it does.
    let until = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .replace_nanosecond(0)
        .unwrap();
    let until_text = until
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let expiring = app
        .post(
            "/v1/api-keys",
            &owner,
            json!({"name": "expiring", "scopes": ["account:admin", "licenses:read"],
                   "expires_at": until_text}),
        )
        .await;
    expiring.assert_status(StatusCode::CREATED);
    let expiring = expiring.body["key"].as_str().unwrap().to_owned();
    let inherited = with_key(
        app,
        Method::POST,
        "/v1/api-keys",
        &expiring,
        Some(json!({"name": "child", "scopes": ["licenses:read"]})),
    )
    .await;
    inherited.assert_status(StatusCode::CREATED);
    let child_expiry = time::OffsetDateTime::parse(
        inherited.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(child_expiry, until);
    let later = (until + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    with_key(
        app,
        Method::POST,
        "/v1/api-keys",
        &expiring,
        Some(json!({"name": "later", "scopes": ["licenses:read"], "expires_at": later})),
    )
    .await
    .assert_invalid_field("expires_at");
}

/// Order of checks: route permission (403) before the path's account (404). A viewer — of its
/// own account or another — lacks account:admin; an owner of another account gets 404.
async fn permission_comes_before_existence(app: &TestApp) {
    let admin = app.admin_token().await;
    let (a, owner_a) = app.partner_with_owner(&admin, "A").await;
    let (b, owner_b) = app.partner_with_owner(&admin, "B").await;
    let owner_a_id = app.get("/v1/me", &owner_a).await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, viewer_b) = user(app, &admin, &b, "viewer").await;
    let (_, operator_b) = user(app, &admin, &b, "operator").await;
    let unknown = uuid::Uuid::new_v4();
    for token in [&viewer_b, &operator_b] {
        for account in [a.as_str(), b.as_str(), &unknown.to_string()] {
            app.get(&format!("/v1/accounts/{account}/users"), token)
                .await
                .assert_problem(StatusCode::FORBIDDEN, "forbidden");
            app.post(
                &format!("/v1/accounts/{account}/users"),
                token,
                new_user("viewer"),
            )
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
            app.delete(&format!("/v1/accounts/{account}/users/{owner_a_id}"), token)
                .await
                .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        }
        // API-key routes: the same order.
        app.get("/v1/api-keys", token)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        app.delete(&format!("/v1/api-keys/{unknown}"), token)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        app.post("/v1/api-keys", token, json!({"name": "", "scopes": []}))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    // With the permission, another tenant's account is 404, and then the body is checked.
    app.get(&format!("/v1/accounts/{a}/users"), &owner_b)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post(
        &format!("/v1/accounts/{a}/users"),
        &owner_b,
        json!({"email": "nope", "password": "short", "role": "viewer"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&format!("/v1/accounts/{a}/users/{owner_a_id}"), &owner_b)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&format!("/v1/api-keys/{unknown}"), &owner_b)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// Two owners deleting each other at the same moment: one wins, the account keeps an owner.
/// The same when an admin deletes both at once.
async fn last_owner_survives_concurrent_deletes(app: &TestApp) {
    let admin = app.admin_token().await;
    let rounds = if app.backend == licentia_tests::Backend::Postgres {
        8
    } else {
        3
    };
    for round in 0..rounds {
        let account = app.create_partner(&admin, &format!("Pair {round}")).await;
        let (one, one_token) = user(app, &admin, &account, "owner").await;
        let (two, two_token) = user(app, &admin, &account, "owner").await;
        // Each owner deletes the other.
        let answers = fire(&[app], 2, |i| {
            let (token, victim) = if i == 0 {
                (&one_token, &two)
            } else {
                (&two_token, &one)
            };
            (
                Method::DELETE,
                format!("/v1/accounts/{account}/users/{victim}"),
                Some(token.clone()),
                None,
            )
        })
        .await;
        let deleted = answers
            .iter()
            .filter(|r| r.status == StatusCode::NO_CONTENT)
            .count();
        assert_eq!(deleted, 1, "round {round}: {answers:?}");
        for loser in answers
            .iter()
            .filter(|r| r.status != StatusCode::NO_CONTENT)
        {
            // Refused as the last owner, or its token died with its user.
            assert!(
                loser.status == StatusCode::CONFLICT || loser.status == StatusCode::UNAUTHORIZED,
                "round {round}: {loser:?}"
            );
        }
        assert_owners(app, &admin, &account, 1).await;

        // An admin deleting both owners at once.
        let account = app
            .create_partner(&admin, &format!("Admin pair {round}"))
            .await;
        let (one, _) = user(app, &admin, &account, "owner").await;
        let (two, _) = user(app, &admin, &account, "owner").await;
        let answers = fire(&[app], 2, |i| {
            let victim = if i == 0 { &one } else { &two };
            (
                Method::DELETE,
                format!("/v1/accounts/{account}/users/{victim}"),
                Some(admin.clone()),
                None,
            )
        })
        .await;
        let mut got: Vec<StatusCode> = answers.iter().map(|r| r.status).collect();
        got.sort();
        assert_eq!(
            got,
            [StatusCode::NO_CONTENT, StatusCode::CONFLICT],
            "round {round}: {answers:?}"
        );
        assert_owners(app, &admin, &account, 1).await;
    }
}

async fn assert_owners(app: &TestApp, admin: &str, account: &str, expected: usize) {
    let listed = app
        .get(&format!("/v1/accounts/{account}/users"), admin)
        .await;
    listed.assert_status(StatusCode::OK);
    let owners = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["role"] == "owner")
        .count();
    assert_eq!(owners, expected, "{}", listed.text);
}

db_test!(
    api_keys_never_manage_users,
    roles_never_escalate,
    keys_never_escalate,
    permission_comes_before_existence,
    last_owner_survives_concurrent_deletes
);
