//! CONTRACT §11: usage recorded in memory is written on a graceful stop (SIGTERM), not lost
//! with the process. Runs the built binary, `target/debug/licentia`, on a temporary SQLite
//! database with a flush interval far longer than the test, so only the stop can write it.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use licentia_tests::{ADMIN_EMAIL, ADMIN_PASSWORD};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

use super::{client, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_written_on_sigterm_sqlite() {
    let dir =
        std::env::temp_dir().join(format!("licentia-usage-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("licentia.db").display());
    usage_is_written_on_sigterm(&dir, &url).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// On PostgreSQL the pool's connections belong to the HTTP workers' runtimes, which stop
/// before the last flush: the flush must not depend on them.
#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_written_on_sigterm_postgres() {
    let Ok(admin_url) = std::env::var(licentia_tests::PG_URL_VAR) else {
        return;
    };
    let name = format!("licentia_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(admin_url.as_str()).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let dir =
        std::env::temp_dir().join(format!("licentia-usage-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).unwrap();
    usage_is_written_on_sigterm(&dir, &licentia_tests::pg_url_with_db(&admin_url, &name)).await;
    let _ = std::fs::remove_dir_all(&dir);
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    admin.close().await.ok();
}

async fn usage_is_written_on_sigterm(dir: &std::path::Path, url: &str) {
    let Some(bin) = super::licentia_binary("the usage-on-stop test") else {
        return;
    };
    std::fs::write(dir.join("licentia.toml"), "").unwrap();
    let port = free_port();
    let mut command = Command::new(&bin);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LICENTIA_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .arg("serve")
        .env("LICENTIA_CONFIG", dir.join("licentia.toml"))
        .env("LICENTIA_DATABASE_URL", url)
        .env(
            "LICENTIA_ENCRYPTION_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .env("LICENTIA_BIND", format!("127.0.0.1:{port}"))
        .env("LICENTIA_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("LICENTIA_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("LICENTIA_RATE_LIMIT", "off")
        .env("LICENTIA_LOG", "warn")
        .env("LICENTIA_USAGE_FLUSH_SECS", "3600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    // reqwest's rustls has no provider of its own (the service installs ring the same way).
    licentia_api::service::webhooks::install_tls_provider();
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut req = http.post(format!("{base}{path}")).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let login: Value = post(
        "/v1/auth/token",
        None,
        json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let product: Value = post(
        "/v1/products",
        Some(&token),
        json!({"code": "stop", "name": "Stop", "prices": [{"period_months": 1, "amount": 100}],
               "options": [], "max_registrations": 1, "transferable": false}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let ordered: Value = post(
        "/v1/licenses",
        Some(&token),
        json!({"product_id": product["id"], "name": "Stopped", "ip": "192.0.2.50",
               "period_months": 1, "payment": {"method": "new_order"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = ordered["license"]["id"].as_str().unwrap().to_owned();
    let answer: Value = post(
        "/v1/validate",
        None,
        json!({"registration_key": ordered["license"]["registration_key"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answer["code"], "NOT_ACTIVE");
    // Concurrent validations, so that the HTTP workers open pool connections of their own.
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (http, base) = (http.clone(), base.clone());
        let key = ordered["license"]["registration_key"].clone();
        load.spawn(async move {
            http.post(format!("{base}/v1/validate"))
                .json(&json!({"registration_key": key}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    while let Some(done) = load.join_next().await {
        assert_eq!(done.unwrap().unwrap(), 200);
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");

    let db = Database::connect(url).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT last_validated_at FROM licenses WHERE last_validated_at IS NOT NULL",
        ))
        .await
        .unwrap();
    db.close().await.ok();
    assert!(
        row.is_some(),
        "the validation of {id} was not written on SIGTERM"
    );
}
