//! `GET /metrics`: Prometheus text with request histograms by route template and the job
//! queue gauges.
use licentia_tests::{TestApp, db_test};
use reqwest::{Method, StatusCode};

/// The sample lines of `metric` whose labels include every one of `labels`.
fn samples<'a>(text: &'a str, metric: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(metric) && labels.iter().all(|label| l.contains(label)))
        .collect()
}

async fn metrics_show_routes_and_queue(app: &TestApp) {
    let admin = app.admin_token().await;
    app.get("/v1/products", &admin)
        .await
        .assert_status(StatusCode::OK);
    let unknown = uuid::Uuid::now_v7().to_string();
    app.get(&format!("/v1/licenses/{unknown}"), &admin)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    licentia_api::metrics::webhook_failed();

    let res = app.call(Method::GET, "/metrics", None, None).await;
    res.assert_status(StatusCode::OK);
    assert!(
        res.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        res.header("content-type")
    );
    let text = &res.text;
    // Latency by route template and status: a histogram with buckets, a count and a sum.
    let route = r#"route="/v1/licenses/{id}""#;
    let found = r#"status="404""#;
    for suffix in ["_bucket", "_count", "_sum"] {
        let metric = format!("licentia_http_request_duration_seconds{suffix}");
        assert!(
            !samples(text, &metric, &[route, found, r#"method="GET""#]).is_empty(),
            "no {metric} for {route} {found}:\n{text}"
        );
    }
    assert!(
        !samples(
            text,
            "licentia_http_request_duration_seconds_count",
            &[r#"route="/v1/products""#, r#"status="200""#]
        )
        .is_empty()
    );
    assert!(
        samples(
            text,
            "licentia_http_request_duration_seconds_bucket",
            &[route]
        )
        .iter()
        .any(|l| l.contains(r#"le="+Inf""#))
    );
    // Raw paths never become labels.
    assert!(
        !text.contains(&unknown),
        "a raw path leaked into the labels"
    );
    // The queue gauges, the pool, the webhook failure counter.
    for gauge in [
        "licentia_job_queue_depth ",
        "licentia_job_oldest_queued_age_seconds ",
        "licentia_webhook_delivery_failures_total ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(gauge)),
            "no {gauge}:\n{text}"
        );
    }
    assert!(!samples(text, "licentia_db_pool_connections", &[r#"state="max""#]).is_empty());
    assert!(text.contains("# TYPE licentia_http_request_duration_seconds histogram"));
}

db_test!(metrics_show_routes_and_queue);
