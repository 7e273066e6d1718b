//! Probes from the threat model (docs/threats.md). The route × role × tenant matrix is generated from the OpenAPI
//! document, so every new route is covered automatically.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use licentia_tests::{ADMIN_EMAIL, TestApp, db_test};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const JWT_SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

fn known_secret(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        jwt_secret: Some(licentia_api::config::Secret::new(JWT_SECRET)),
        ..licentia_tests::test_config(url)
    }
}

/// Operations reserved to the provider's administrators: 403 for every partner caller,
/// before any look-up of the id (CONTRACT §0).
/// Writes every logged-in user may make about itself, whatever its role.
const SELF_SERVICE: &[&str] = &["change_my_password"];

const PROVIDER_ONLY: &[&str] = &[
    "create_account",
    "list_accounts",
    "update_account",
    "create_product",
    "update_product",
    "archive_product",
    "create_credit",
    "retry_provisioning",
    "rotate_signing_key",
];

/// Every operation of the document: (method, path template, operationId, protected).
fn operations() -> Vec<(Method, String, String, bool)> {
    let doc: Value = serde_json::from_str(&licentia_api::document::document_json()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let protected = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            out.push((
                method,
                path.clone(),
                op["operationId"].as_str().unwrap().to_owned(),
                protected,
            ));
        }
    }
    out
}

fn fill(path: &str, id: &str) -> String {
    let mut out = String::new();
    for seg in path.split('/') {
        if !out.is_empty() || !seg.is_empty() {
            out.push('/');
        }
        out.push_str(if seg.starts_with('{') { id } else { seg });
    }
    out
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> licentia_tests::Resp {
    let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
    app.call(method, path, token, body).await
}

/// Protected routes answer 401 without credentials — before looking at ids or bodies.
async fn every_protected_route_needs_credentials(app: &TestApp) {
    let random = uuid::Uuid::now_v7().to_string();
    let mut checked = 0;
    for (method, path, id, protected) in operations() {
        if !protected {
            continue;
        }
        let r = send(app, method.clone(), &fill(&path, &random), None).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{id} {method} {path}: {}",
            r.text
        );
        assert!(r.header("www-authenticate").is_some(), "{id}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} protected operations");
}

/// Provider routes answer 403 to every partner role; viewers get 403 on every write.
async fn role_matrix(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner) = app.partner_with_owner(&admin, "Matrix").await;
    let viewer = app.user_token(&admin, &account, "viewer").await;
    let random = uuid::Uuid::now_v7().to_string();
    let mut cells = 0;
    for (method, path, id, protected) in operations() {
        if !protected {
            continue;
        }
        let url = fill(&path, &random);
        if PROVIDER_ONLY.contains(&id.as_str()) {
            for token in [&owner, &viewer] {
                let r = send(app, method.clone(), &url, Some(token)).await;
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{id} as partner: {}",
                    r.text
                );
                cells += 1;
            }
        } else if method != Method::GET && !SELF_SERVICE.contains(&id.as_str()) {
            // Viewers hold only :read scopes; everything that writes is refused before any
            // look-up of the (random) id.
            let r = send(app, method.clone(), &url, Some(&viewer)).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{id} {method} {path} as viewer: {}",
                r.text
            );
            cells += 1;
        }
    }
    assert!(cells >= 20, "only {cells} cells");
}

/// Partner B sees none of partner A's resources: every route with an id answers 404 to B
/// for A's ids, and lists never show them.
async fn tenant_matrix(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "matrix").await;
    let (a, owner_a) = app.partner_with_owner(&admin, "A").await;
    let (_, owner_b) = app.partner_with_owner(&admin, "B").await;
    let ordered = app
        .post(
            "/v1/licenses",
            &owner_a,
            json!({"product_id": product["id"], "name": "A's", "ip": "192.0.2.1", "period_months": 12,
                   "payment": {"method": "new_order"}}),
        )
        .await;
    ordered.assert_status(StatusCode::CREATED);
    let license = ordered.body["license"]["id"].as_str().unwrap().to_owned();
    let order = ordered.body["order"]["id"].as_str().unwrap().to_owned();
    let key = app
        .post(
            "/v1/api-keys",
            &owner_a,
            json!({"name": "k", "scopes": ["licenses:read"]}),
        )
        .await;
    let key_id = key.body["id"].as_str().unwrap().to_owned();
    let bulk = app
        .post(
            "/v1/licenses/bulk",
            &owner_a,
            json!({"action": "disable", "filter": {}, "dry_run": true}),
        )
        .await;
    bulk.assert_status(StatusCode::ACCEPTED);
    let bulk_id = bulk.body["id"].as_str().unwrap().to_owned();
    // Subscribed to an event this scenario never produces, so nothing is ever delivered.
    let hook = app
        .post(
            "/v1/webhook-endpoints",
            &owner_a,
            json!({"url": "https://1.1.1.1/hook", "event_types": ["transfer.expired"]}),
        )
        .await;
    hook.assert_status(StatusCode::CREATED);
    let hook_id = hook.body["id"].as_str().unwrap().to_owned();
    let mut cells = 0;
    for (method, path, id, protected) in operations() {
        if !protected || !path.contains("{id}") {
            continue;
        }
        let target = if path.starts_with("/v1/licenses/") {
            &license
        } else if path.starts_with("/v1/orders/") {
            &order
        } else if path.starts_with("/v1/accounts/") {
            &a
        } else if path.starts_with("/v1/api-keys/") {
            &key_id
        } else if path.starts_with("/v1/bulk-operations/") {
            &bulk_id
        } else if path.starts_with("/v1/webhook-endpoints/") {
            &hook_id
        } else {
            continue;
        };
        let r = send(app, method.clone(), &fill(&path, target), Some(&owner_b)).await;
        let expected = if PROVIDER_ONLY.contains(&id.as_str()) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(r.status, expected, "{id} {method} {path} as B: {}", r.text);
        cells += 1;
    }
    assert!(cells >= 10, "only {cells} cells");
    for list in [
        "/v1/licenses",
        "/v1/orders",
        "/v1/licenses?status=ordered,deleted",
    ] {
        let r = app.get(list, &owner_b).await;
        assert!(
            !r.text.contains(&license) && !r.text.contains(&order),
            "{list} leaks A's data"
        );
    }
    // A's license still as it was.
    assert_eq!(
        app.get(&format!("/v1/licenses/{license}"), &owner_a)
            .await
            .body["status"],
        "ordered"
    );
}

/// Responses never carry hashes, secrets or internals.
async fn no_secrets_in_responses(app: &TestApp) {
    let admin = app.admin_token().await;
    let (account, owner) = app.partner_with_owner(&admin, "Leaky").await;
    let mut seen = String::new();
    for path in [
        "/v1/me",
        "/v1/accounts",
        &format!("/v1/accounts/{account}/users"),
        "/v1/products",
    ] {
        seen.push_str(&app.get(path, &admin).await.text);
    }
    seen.push_str(&app.get("/v1/me", &owner).await.text);
    for needle in [
        "$argon2",
        "password_hash",
        "key_hash",
        "token_hash",
        "admin_password",
        "SELECT",
        "panicked",
    ] {
        assert!(!seen.contains(needle), "a response contains {needle}");
    }
}

db_test!(
    every_protected_route_needs_credentials,
    role_matrix,
    tenant_matrix,
    no_secrets_in_responses
);

fn token(header: Header, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// RFC 8725 probes: each forged or stale token answers 401 `invalid_token`.
async fn jwt_probes(app: &TestApp) {
    let good = app.admin_token().await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(good.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let me = app.get("/v1/me", &good).await;
    let sub = me.body["user"]["id"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |exp: i64, nbf: i64, iss: &str, aud: &str| json!({"sub": sub, "iss": iss, "aud": aud, "iat": now, "nbf": nbf, "exp": exp});
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(kid.clone());
    // Sanity: a token we sign like the service does is accepted.
    let ours = token(
        hs.clone(),
        &claims(now + 60, now, "licentia", "licentia-api"),
        JWT_SECRET,
    );
    app.get("/v1/me", &ours).await.assert_status(StatusCode::OK);

    let mut probes: Vec<(&str, String)> = vec![
        (
            "another key",
            token(
                hs.clone(),
                &claims(now + 60, now, "licentia", "licentia-api"),
                "another-secret-0123456789-0123456789",
            ),
        ),
        (
            "expired past leeway",
            token(
                hs.clone(),
                &claims(now - 120, now - 200, "licentia", "licentia-api"),
                JWT_SECRET,
            ),
        ),
        (
            "nbf in the future",
            token(
                hs.clone(),
                &claims(now + 600, now + 300, "licentia", "licentia-api"),
                JWT_SECRET,
            ),
        ),
        (
            "wrong issuer",
            token(
                hs.clone(),
                &claims(now + 60, now, "evil", "licentia-api"),
                JWT_SECRET,
            ),
        ),
        (
            "wrong audience",
            token(
                hs.clone(),
                &claims(now + 60, now, "licentia", "other"),
                JWT_SECRET,
            ),
        ),
        (
            "no exp",
            token(
                hs.clone(),
                &json!({"sub": sub, "iss": "licentia", "aud": "licentia-api", "iat": now, "nbf": now}),
                JWT_SECRET,
            ),
        ),
    ];
    let mut unknown_kid = hs.clone();
    unknown_kid.kid = Some("not-a-key".into());
    probes.push((
        "unknown kid",
        token(
            unknown_kid,
            &claims(now + 60, now, "licentia", "licentia-api"),
            JWT_SECRET,
        ),
    ));
    let mut hs512 = Header::new(Algorithm::HS512);
    hs512.kid = Some(kid.clone());
    probes.push((
        "other algorithm",
        token(
            hs512,
            &claims(now + 60, now, "licentia", "licentia-api"),
            JWT_SECRET,
        ),
    ));
    // alg:none: header and payload, empty signature.
    let none_header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    let payload =
        URL_SAFE_NO_PAD.encode(claims(now + 60, now, "licentia", "licentia-api").to_string());
    probes.push(("alg none", format!("{none_header}.{payload}.")));
    // The good token's signature on a changed payload.
    let mut parts: Vec<String> = ours.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(json!({"sub": uuid::Uuid::now_v7(), "iss": "licentia", "aud": "licentia-api", "iat": now, "nbf": now, "exp": now + 60}).to_string());
    probes.push(("changed payload", parts.join(".")));
    for (what, jwt) in probes {
        let r = app.get("/v1/me", &jwt).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("error=\"invalid_token\""),
            "{what}"
        );
    }
    // A token in the query string is not a credential.
    let r = app
        .call(
            Method::GET,
            &format!("/v1/me?access_token={ours}"),
            None,
            None,
        )
        .await;
    r.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(ADMIN_EMAIL, me.body["user"]["email"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_probes_sqlite() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(known_secret)
        .spawn()
        .await;
    jwt_probes(&app).await;
    app.finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_probes_postgres() {
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .config(known_secret)
        .start()
        .await
    else {
        return;
    };
    jwt_probes(&app).await;
    app.finish().await;
}
