use licentia_tests::{TestApp, db_test};
use reqwest::{Method, StatusCode};

async fn probes_docs_and_fallbacks(app: &TestApp) {
    let health = app.call(Method::GET, "/healthz", None, None).await;
    health.assert_status(StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    app.call(Method::GET, "/readyz", None, None)
        .await
        .assert_status(StatusCode::OK);

    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    doc.assert_status(StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));

    let redirect = app.call(Method::GET, "/docs", None, None).await;
    assert!(redirect.status.is_redirection());
    assert_eq!(redirect.header("location"), Some("/docs/"));
    let ui = app.call(Method::GET, "/docs/", None, None).await;
    ui.assert_status(StatusCode::OK);
    assert!(ui.text.contains("swagger"), "the docs page is Swagger UI");

    // Unknown path: 404 problem; known path, wrong method: 405 with Allow.
    app.call(Method::GET, "/v1/nothing-here", None, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let wrong = app.call(Method::PUT, "/v1/products", None, None).await;
    wrong.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let allow = wrong.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let wrong = app
        .call(
            Method::DELETE,
            &format!("/v1/products/{}", uuid::Uuid::now_v7()),
            None,
            None,
        )
        .await;
    wrong.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    // A body over the limit: 413 problem.
    let big = format!(
        "{{\"email\": \"{}\", \"password\": \"x\"}}",
        "a".repeat(70_000)
    );
    let res = app
        .client
        .post(app.url("/v1/auth/token"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(res)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Deeply nested JSON within the limit: 400.
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let res = app
        .client
        .post(app.url("/v1/auth/token"))
        .header("content-type", "application/json")
        .body(nested)
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(res)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
}

db_test!(probes_docs_and_fallbacks);

fn with_cors(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        cors_origins: "https://app.example".into(),
        ..licentia_tests::test_config(url)
    }
}

/// Listed origins get CORS headers; an unlisted one is never reflected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_listed_origins() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(with_cors)
        .spawn()
        .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/v1/products"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert!(ok.status().is_success());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(
        evil.headers()
            .get("access-control-allow-origin")
            .is_none_or(|v| v != "https://evil.example" && v != "*")
    );
    let simple = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        simple
            .headers()
            .get("access-control-allow-origin")
            .is_none_or(|v| v != "https://evil.example" && v != "*")
    );
    app.finish().await;
}
