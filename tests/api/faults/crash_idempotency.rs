//! Exactly once across crashes (CONTRACT §5): the real binary is killed with SIGKILL in the
//! middle of a burst of orders carrying `Idempotency-Key`s, started again on the same
//! database, and every key is retried with the same body until it is no longer in progress.
//! Each key must end with exactly one license and one charge: a retry replays what committed
//! or runs what did not, never both. On SQLite and on PostgreSQL (a fresh database).
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use licentia_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PG_URL_VAR, USER_PASSWORD};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use super::free_port;

const KEYS: usize = 48;
const PRICE: i64 = 1_000;

/// One run of the server; killed when dropped.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(bin: &PathBuf, dir: &std::path::Path, database_url: &str) -> Server {
        let config = dir.join("licentia.toml");
        std::fs::write(&config, "").unwrap();
        let log_path = dir.join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).unwrap();
        let port = free_port();
        let mut command = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LICENTIA_") {
                command.env_remove(key);
            }
        }
        let child = command
            .arg("serve")
            .env("LICENTIA_CONFIG", &config)
            .env("LICENTIA_DATABASE_URL", database_url)
            .env("LICENTIA_BIND", format!("127.0.0.1:{port}"))
            .env("LICENTIA_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("LICENTIA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            // The same encryption key on both runs: stored responses must decrypt after the
            // restart.
            .env(
                "LICENTIA_ENCRYPTION_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            )
            .env(
                "LICENTIA_JWT_SECRET",
                "crash-test-jwt-secret-of-at-least-32-characters",
            )
            .env("LICENTIA_RATE_LIMIT", "off")
            .env("LICENTIA_LOG", "warn")
            .env("LICENTIA_WORKERS", "2")
            .env("LICENTIA_JOB_POLL_MS", "100")
            .env("LICENTIA_IDEMPOTENCY_STALE_SECS", "2")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log_path,
        };
        let client = super::client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if client
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start: {}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    fn kill(mut self) {
        // SIGKILL: no draining, no cleanup.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn token(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let (status, body) = call(
        client,
        base,
        reqwest::Method::POST,
        "/v1/auth/token",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn order_body(product: &str, key: &str) -> Value {
    json!({"product_id": product, "name": format!("Crash {key}"), "ip": "10.1.2.3",
           "period_months": 12, "external_id": key, "payment": {"method": "balance"}})
}

async fn post_order(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    product: &str,
    key: &str,
) -> Result<(u16, Value, bool), reqwest::Error> {
    let res = client
        .post(format!("{base}/v1/licenses"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&order_body(product, key))
        .send()
        .await?;
    let status = res.status().as_u16();
    let replayed = res.headers().contains_key("idempotent-replayed");
    let body = res.json::<Value>().await?;
    Ok((status, body, replayed))
}

async fn crash_mid_burst(database_url: &str, dir: &std::path::Path, bin: &PathBuf) {
    licentia_api::service::webhooks::install_tls_provider();
    let client = super::client();
    let server = Server::start(bin, dir, database_url).await;
    let base = server.base.clone();
    let admin = token(&client, &base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let post = reqwest::Method::POST;
    let (s, product) = call(
        &client,
        &base,
        post.clone(),
        "/v1/products",
        Some(&admin),
        Some(json!({"code": "crash", "name": "Crash", "prices": [{"period_months": 12, "amount": PRICE}],
                    "options": [], "max_registrations": null, "transferable": false})),
    )
    .await;
    assert_eq!(s, 201, "{product}");
    let product = product["id"].as_str().unwrap().to_owned();
    let (s, account) = call(
        &client,
        &base,
        post.clone(),
        "/v1/accounts",
        Some(&admin),
        Some(json!({"name": "Crash partner"})),
    )
    .await;
    assert_eq!(s, 201, "{account}");
    let account = account["id"].as_str().unwrap().to_owned();
    let (s, body) = call(
        &client,
        &base,
        post.clone(),
        &format!("/v1/accounts/{account}/credits"),
        Some(&admin),
        Some(json!({"amount": 1_000_000, "reference": "crash test"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let email = format!("owner-{}@crash.test", uuid::Uuid::new_v4().simple());
    let (s, body) = call(
        &client,
        &base,
        post.clone(),
        &format!("/v1/accounts/{account}/users"),
        Some(&admin),
        Some(json!({"email": email, "password": USER_PASSWORD, "role": "owner"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let owner = token(&client, &base, &email, USER_PASSWORD).await;

    // The burst; the process is killed once a few orders have been answered.
    let keys: Vec<String> = (0..KEYS)
        .map(|i| format!("crash-{i}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for key in keys.clone() {
        let (client, base, owner, product, answered) = (
            client.clone(),
            base.clone(),
            owner.clone(),
            product.clone(),
            answered.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let res = post_order(&client, &base, &owner, &product, &key).await;
            if res.is_ok() {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            res.map(|(status, _, _)| status).ok()
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < KEYS / 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill();
    let mut before_crash = 0;
    for t in tasks {
        if t.await.unwrap() == Some(201) {
            before_crash += 1;
        }
    }

    // Started again on the same database: every key is retried until it settles.
    let server = Server::start(bin, dir, database_url).await;
    let base = server.base.clone();
    let owner = token(&client, &base, &email, USER_PASSWORD).await;
    let (mut replayed, mut ran, mut conflicts) = (0, 0, 0);
    let mut answers = Vec::new();
    for key in &keys {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body, was_replayed) = post_order(&client, &base, &owner, &product, key)
                .await
                .unwrap();
            if status == 409 && body["code"] == "request_in_progress" {
                conflicts += 1;
                assert!(Instant::now() < deadline, "{key} stayed in progress");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            assert_eq!(status, 201, "{key}: {body}");
            if was_replayed {
                replayed += 1;
            } else {
                ran += 1;
            }
            answers.push((
                key.clone(),
                body["license"]["id"].as_str().unwrap().to_owned(),
            ));
            break;
        }
    }

    // Exactly one license and one charge per key.
    let mut duplicates = 0;
    for (key, license) in &answers {
        let (s, page) = call(
            &client,
            &base,
            reqwest::Method::GET,
            &format!("/v1/licenses?external_id={key}"),
            Some(&owner),
            None,
        )
        .await;
        assert_eq!(s, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        duplicates += items.len().saturating_sub(1);
        assert_eq!(items.len(), 1, "{key}: {items:?}");
        assert_eq!(items[0]["id"].as_str(), Some(license.as_str()), "{key}");
    }
    let mut charges = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/accounts/{account}/ledger?limit=200&cursor={c}"),
            None => format!("/v1/accounts/{account}/ledger?limit=200"),
        };
        let (s, page) = call(
            &client,
            &base,
            reqwest::Method::GET,
            &path,
            Some(&owner),
            None,
        )
        .await;
        assert_eq!(s, 200, "{page}");
        charges.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "charge")
                .map(|e| e["amount"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    eprintln!(
        "crash test: {KEYS} keys, {before_crash} answered before SIGKILL; after restart {replayed} replayed, \
         {ran} ran once, {conflicts} in-progress answers waited out; {} charges; {duplicates} duplicates",
        charges.len()
    );
    assert_eq!(charges.len(), KEYS);
    assert!(charges.iter().all(|c| *c == -PRICE), "{charges:?}");
    assert!(replayed >= before_crash, "every answered key replays");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_mid_burst_sqlite() {
    let Some(bin) = super::licentia_binary("the crash test") else {
        return;
    };
    let dir =
        std::env::temp_dir().join(format!("licentia-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("licentia.db").display());
    crash_mid_burst(&url, &dir, &bin).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_mid_burst_postgres() {
    let Some(bin) = super::licentia_binary("the crash test") else {
        return;
    };
    let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
        eprintln!("{PG_URL_VAR} is not set: skipping the PostgreSQL crash test");
        return;
    };
    let name = format!("licentia_crash_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(admin_url.as_str()).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let dir =
        std::env::temp_dir().join(format!("licentia-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).unwrap();
    let url = licentia_tests::pg_url_with_db(&admin_url, &name);
    crash_mid_burst(&url, &dir, &bin).await;
    let _ = std::fs::remove_dir_all(&dir);
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    admin.close().await.ok();
}
