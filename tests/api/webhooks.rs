//! Webhooks: signed deliveries to a local receiver (allowed through
//! `LICENTIA_WEBHOOK_ALLOWED_HOSTS`), retries, redirects not followed, the delivery log,
//! refusals at delivery time, and `balance.low`. Registration rules and tenancy are in
//! `webhooks/endpoints.rs`.
mod endpoints;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{KeyInit, Mac};
use licentia_api::Config;
use licentia_tests::{TestApp, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The service under test may call the receiver on 127.0.0.1; retries come fast.
fn receiving(url: &str) -> Config {
    Config {
        webhook_allowed_hosts: "127.0.0.1".into(),
        webhook_retry_base_ms: licentia_api::config::Millis::new(10),
        ..test_config(url)
    }
}

/// Like `db_test!`, with the [`receiving`] configuration.
macro_rules! receiving_test {
    ($($name:ident),+ $(,)?) => {$(
        licentia_tests::on_both_backends!($name, builder => builder.config($crate::webhooks::receiving));
    )+};
}
pub(crate) use receiving_test;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    hits: Mutex<Vec<Hit>>,
    /// Statuses to answer, in order; 200 once it is empty. A 3xx redirects to `/redirected`.
    script: Mutex<VecDeque<u16>>,
}

/// A tiny webhook receiver on 127.0.0.1 that records every request.
pub struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

async fn record(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    shared.hits.lock().unwrap().push(Hit {
        path: req.path().to_owned(),
        headers,
        body: body.to_vec(),
    });
    let status = shared.script.lock().unwrap().pop_front().unwrap_or(200);
    let mut res = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if (300..400).contains(&status) {
        res.insert_header(("Location", "/redirected"));
    }
    res.finish()
}

impl Receiver {
    /// Answers `script` in order, then 200.
    pub async fn start(script: &[u16]) -> Receiver {
        let shared = Arc::new(Shared {
            hits: Mutex::default(),
            script: Mutex::new(script.iter().copied().collect()),
        });
        let data = web::Data::from(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(record))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            port,
            shared,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn hits(&self, path: &str) -> Vec<Hit> {
        let hits = self.shared.hits.lock().unwrap();
        hits.iter().filter(|h| h.path == path).cloned().collect()
    }

    /// Waits until `path` got at least `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Hit> {
        for _ in 0..200 {
            let hits = self.hits(path);
            if hits.len() >= n {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{path} got {} requests, expected {n}",
            self.hits(path).len()
        );
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a delivery as a receiver must: the signature over `<t>.<body>` with the secret,
/// a fresh timestamp, and the event id header matching the body. Returns the body.
pub fn verify(secret: &str, hit: &Hit) -> Value {
    let header = &hit.headers["licentia-signature"];
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature header {header}"));
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&hit.body);
    assert_eq!(hex(&mac.finalize().into_bytes()), v1, "signature");
    let t: i64 = t.parse().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - t).abs() < 300, "timestamp {t} vs now {now}");
    assert_eq!(hit.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["id"], hit.headers["licentia-event-id"].as_str());
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["created_at", "data", "id", "type"]
    );
    body
}

/// Registers an endpoint; returns `(id, secret)`.
pub async fn register(app: &TestApp, token: &str, url: &str, types: Value) -> (String, String) {
    let r = app
        .post(
            "/v1/webhook-endpoints",
            token,
            json!({"url": url, "event_types": types}),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Orders an unpaid license (one `license.ordered` event); returns its id.
pub async fn order(app: &TestApp, token: &str, product: &Value) -> String {
    let r = app
        .post(
            "/v1/licenses",
            token,
            json!({"product_id": product["id"], "name": "Hooked", "ip": "192.0.2.10",
                   "period_months": 12, "payment": {"method": "new_order"}}),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    r.body["license"]["id"].as_str().unwrap().to_owned()
}

/// Polls the endpoint's delivery log until its newest delivery satisfies `done`.
pub async fn wait_delivery(
    app: &TestApp,
    token: &str,
    endpoint: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/v1/webhook-endpoints/{endpoint}/deliveries");
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = app.get(&path, token).await;
        r.assert_status(StatusCode::OK);
        last = r.body["items"][0].clone();
        if !last.is_null() && done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no delivery of {endpoint} reached the expected state; last: {last}");
}

/// A partner's events reach its endpoint signed, once each, and nobody else's do; the
/// provider's endpoint receives every account's.
async fn delivers_signed_events(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "hooks").await;
    let (a, owner_a) = app.partner_with_owner(&admin, "A").await;
    let (b, owner_b) = app.partner_with_owner(&admin, "B").await;
    let receiver = Receiver::start(&[]).await;
    let (endpoint, secret) = register(
        app,
        &owner_a,
        &receiver.url("/a"),
        json!(["license.ordered"]),
    )
    .await;
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 40,
        "{secret}"
    );
    let (_, admin_secret) = register(app, &admin, &receiver.url("/provider"), json!(["*"])).await;

    let license_a = order(app, &owner_a, &product).await;
    let license_b = order(app, &owner_b, &product).await;

    let hits = receiver.wait_for("/a", 1).await;
    let body = verify(&secret, &hits[0]);
    assert_eq!(body["type"], "license.ordered");
    assert_eq!(body["data"]["license_id"], license_a.as_str());
    assert_eq!(body["data"]["account_id"], a.as_str());
    assert_eq!(body["data"]["after"]["status"], "ordered");
    assert!(body["data"]["before"].is_null());
    let created_at = body["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z'), "{created_at}");
    let logged = app.get("/v1/events?type=license.ordered", &owner_a).await;
    assert_eq!(logged.body["items"][0]["id"], body["id"]);

    // The provider's endpoint gets both partners' events; B's never reach A's endpoint.
    let provider_hits = receiver.wait_for("/provider", 2).await;
    let licenses: HashSet<String> = provider_hits
        .iter()
        .map(|h| verify(&admin_secret, h))
        .filter(|b| b["type"] == "license.ordered")
        .map(|b| b["data"]["license_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(licenses.contains(&license_a) && licenses.contains(&license_b));
    let accounts: HashSet<String> = provider_hits
        .iter()
        .map(|h| {
            verify(&admin_secret, h)["data"]["account_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(accounts.contains(&a) && accounts.contains(&b));

    let delivered = wait_delivery(app, &owner_a, &endpoint, |d| d["status"] == "delivered").await;
    assert_eq!(delivered["attempts"], 1);
    assert_eq!(delivered["last_status_code"], 200);
    assert_eq!(delivered["event_id"], body["id"]);
    assert_eq!(delivered["event_type"], "license.ordered");
    assert!(delivered["last_error"].is_null() && delivered["next_attempt_at"].is_null());
    assert!(delivered["delivered_at"].is_string());

    // A disabled endpoint gets nothing new.
    app.patch(
        &format!("/v1/webhook-endpoints/{endpoint}"),
        &owner_a,
        json!({"enabled": false}),
    )
    .await
    .assert_status(StatusCode::OK);
    order(app, &owner_a, &product).await;
    receiver.wait_for("/provider", 3).await;
    assert_eq!(receiver.hits("/a").len(), 1);
    let log = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            &owner_a,
        )
        .await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 1);
    receiver.stop().await;
}

/// A receiver that fails twice gets the event a third time; it dedupes by event id.
async fn failed_deliveries_are_retried(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "retry").await;
    let (_, owner) = app.partner_with_owner(&admin, "Flaky").await;
    let receiver = Receiver::start(&[500, 500]).await;
    let (endpoint, secret) = register(
        app,
        &owner,
        &receiver.url("/hook"),
        json!(["license.ordered"]),
    )
    .await;
    order(app, &owner, &product).await;

    let hits = receiver.wait_for("/hook", 3).await;
    let mut seen = HashSet::new();
    let mut handled = 0;
    for hit in &hits {
        let body = verify(&secret, hit);
        // What a receiver does: act on each event id once.
        if seen.insert(body["id"].as_str().unwrap().to_owned()) {
            handled += 1;
        }
    }
    assert_eq!(handled, 1, "one event, delivered {} times", hits.len());
    let delivered = wait_delivery(app, &owner, &endpoint, |d| d["status"] == "delivered").await;
    assert_eq!(delivered["attempts"], 3);
    assert_eq!(delivered["last_status_code"], 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits("/hook").len(), 3, "no delivery after success");
    receiver.stop().await;
}

/// A redirect is an unsuccessful answer: not followed, logged with its status, retried.
async fn redirects_are_not_followed(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "redirect").await;
    let (_, owner) = app.partner_with_owner(&admin, "Redirected").await;
    let receiver = Receiver::start(&[302; 100]).await;
    let (endpoint, secret) = register(app, &owner, &receiver.url("/hook"), json!(["*"])).await;
    order(app, &owner, &product).await;
    let retried = wait_delivery(app, &owner, &endpoint, |d| {
        d["attempts"].as_i64() >= Some(2)
    })
    .await;
    assert_eq!(retried["status"], "pending");
    assert_eq!(retried["last_status_code"], 302);
    assert!(
        retried["last_error"].as_str().unwrap().contains("redirect"),
        "{retried}"
    );
    assert!(retried["delivered_at"].is_null() && retried["next_attempt_at"].is_string());
    let hits = receiver.wait_for("/hook", 2).await;
    for hit in &hits {
        verify(&secret, hit);
    }
    assert!(
        receiver.hits("/redirected").is_empty(),
        "followed a redirect"
    );
    receiver.stop().await;
}

/// An endpoint whose address became internal after registration (DNS changed, or the allow
/// list did) is not called: the attempt is logged as refused and retried later.
async fn internal_addresses_are_refused_at_delivery(app: &TestApp) {
    use licentia_persistence::repo::webhooks::{NewEndpoint, insert};
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "refused").await;
    let (account, owner) = app.partner_with_owner(&admin, "Rebound").await;
    let sealed =
        licentia_api::crypto::seal(&app.state.encryption_key, b"whsec_test-secret").unwrap();
    let endpoint = insert(
        app.state.db.conn(),
        NewEndpoint {
            account_id: account.parse().unwrap(),
            all_accounts: false,
            url: "http://10.0.0.1:9/hook".into(),
            event_types: vec!["*".into()],
            secret_enc: sealed,
        },
    )
    .await
    .unwrap();
    order(app, &owner, &product).await;
    let refused = wait_delivery(app, &owner, &endpoint.id.to_string(), |d| {
        d["attempts"].as_i64() >= Some(1)
    })
    .await;
    assert_eq!(refused["status"], "pending", "{refused}");
    assert!(refused["last_status_code"].is_null());
    let error = refused["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("refused") && error.contains("10.0.0.1"),
        "{error}"
    );
    assert!(refused["next_attempt_at"].is_string());
}

/// `balance.low`: a charge that leaves less than the same amount available again.
async fn balance_low_is_emitted(app: &TestApp) {
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "low").await;
    let (account, owner) = app.partner_with_owner(&admin, "Thrifty").await;
    let receiver = Receiver::start(&[]).await;
    let (_, secret) = register(app, &owner, &receiver.url("/low"), json!(["balance.low"])).await;
    app.credit(&admin, &account, 20_000).await;
    let buy = || async {
        app.post(
            "/v1/licenses",
            &owner,
            json!({"product_id": product["id"], "name": "Paid", "ip": "192.0.2.11",
                   "period_months": 12, "payment": {"method": "balance"}}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    };
    buy().await; // 10,000 left: enough for another one
    let low = app.get("/v1/events?type=balance.low", &owner).await;
    assert_eq!(low.body["items"].as_array().unwrap().len(), 0);
    buy().await; // nothing left
    let low = app.get("/v1/events?type=balance.low", &owner).await;
    let items = low.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", low.text);
    assert_eq!(items[0]["after"]["balance"], 0);
    assert_eq!(items[0]["after"]["charged"], 10_000);
    let hits = receiver.wait_for("/low", 1).await;
    let body = verify(&secret, &hits[0]);
    assert_eq!(body["type"], "balance.low");
    assert_eq!(body["data"]["account_id"], account.as_str());
    receiver.stop().await;
}

receiving_test!(
    delivers_signed_events,
    failed_deliveries_are_retried,
    redirects_are_not_followed,
    internal_addresses_are_refused_at_delivery,
    balance_low_is_emitted
);
