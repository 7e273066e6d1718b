//! The harness of Licentia's black-box tests: a real server on a random port, backed by a
//! database of its own (a temporary SQLite file, or a fresh PostgreSQL database that is
//! dropped afterwards), driven over HTTP.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    reason = "test harness: a failed step should fail the test loudly"
)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use licentia_api::Config;
use licentia_api::clock::ManualClock;
use licentia_api::config::Secret;
use licentia_app::provisioning::Provisioner;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The environment variable naming the PostgreSQL server for the suite, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const PG_URL_VAR: &str = "LICENTIA_TEST_DATABASE_URL";

pub const ADMIN_EMAIL: &str = "admin@licentia.test";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const USER_PASSWORD: &str = "partner-password-123";

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs one scenario on SQLite and on PostgreSQL: `db_test!(name);` after `async fn name(app: TestApp)`.
/// `db_test!(config = settings; name)` starts the service with `fn settings(url: &str) -> Config`
/// (a function beside the scenario) instead of the test settings.
#[macro_export]
macro_rules! db_test {
    (config = $config:ident; $($name:ident),+ $(,)?) => {$(
        $crate::on_both_backends!($name, builder => builder.config(super::$config));
    )+};
    ($($name:ident),+ $(,)?) => {$(
        $crate::on_both_backends!($name, builder => builder);
    )+};
}

/// Like [`db_test!`], with the service on a [`ManualClock`] (starting at the current time) that
/// the scenario moves with `app.clock()`; `app.sweep()` runs a sweep at the clock's time.
#[macro_export]
macro_rules! clock_test {
    (config = $config:ident; $($name:ident),+ $(,)?) => {$(
        $crate::on_both_backends!($name, builder => builder
            .config(super::$config)
            .clock(::licentia_api::clock::ManualClock::at_system_time()));
    )+};
    ($($name:ident),+ $(,)?) => {$(
        $crate::on_both_backends!($name, builder => builder
            .clock(::licentia_api::clock::ManualClock::at_system_time()));
    )+};
}

/// The two tests of one scenario (`mod name { sqlite, postgres }`), each starting the service
/// from `TestApp::builder(backend)` as `setup` shapes it; the PostgreSQL one is skipped without
/// `LICENTIA_TEST_DATABASE_URL`.
#[doc(hidden)]
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $builder:ident => $setup:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $builder = $crate::TestApp::builder($crate::Backend::Sqlite);
                let app = $setup.spawn().await;
                super::$name(&app).await;
                app.finish().await;
            }
            #[cfg_attr(
                not(licentia_pg),
                ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
            )]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $builder = $crate::TestApp::builder($crate::Backend::Postgres);
                let Some(app) = $setup.start().await else {
                    return;
                };
                super::$name(&app).await;
                app.finish().await;
            }
        }
    };
}

enum Store {
    Sqlite(PathBuf),
    Postgres {
        admin_url: String,
        name: String,
    },
    /// Another instance's database: its owner removes it.
    Shared,
}

/// A running service with its own database.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub database_url: String,
    server: actix_web::dev::ServerHandle,
    store: Store,
    configure: fn(&str) -> Config,
    /// The service's state, for scenarios that drive it directly (e.g. [`TestApp::sweep`]).
    pub state: licentia_api::AppState,
    clock: Option<Arc<ManualClock>>,
}

/// Settings for test servers: one worker, no rate limits, quiet logs.
pub fn test_config(database_url: &str) -> Config {
    Config {
        database_url: database_url.to_owned(),
        admin_email: ADMIN_EMAIL.into(),
        admin_password: Some(Secret::new(ADMIN_PASSWORD)),
        rate_limit: licentia_api::config::Switch::Off,
        log: "warn".into(),
        workers: 1,
        db_max_connections: std::num::NonZeroU32::new(5).expect("positive"),
        // The suite shares two cores with its own builds and many servers: a request waiting
        // on row locks held by another must not turn into a 503 merely because the machine is
        // busy. The outage test sets its own, short, timeout.
        db_acquire_timeout_ms: licentia_api::config::Millis::new(10_000),
        job_poll_ms: licentia_api::config::Millis::new(50),
        encryption_key: Some(Secret::new("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")),
        ..Config::default()
    }
}

pub fn pg_url_with_db(admin_url: &str, db: &str) -> String {
    // Replace the path (database name) of the URL, keeping any query string.
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// How to start a [`TestApp`]: the database it gets (a fresh one of `backend`), its
/// settings, its business clock and its provisioner.
#[must_use]
pub struct TestAppBuilder {
    backend: Backend,
    configure: fn(&str) -> Config,
    clock: Option<Arc<ManualClock>>,
    provisioner: Option<Arc<dyn Provisioner>>,
}

impl TestAppBuilder {
    /// Settings from `configure` (given the database URL) instead of [`test_config`].
    pub fn config(mut self, configure: fn(&str) -> Config) -> Self {
        self.configure = configure;
        self
    }

    /// The service's business clock (terms, renewals, proration, sweeps): `app.clock()`.
    pub fn clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A provisioner instead of the local one (e.g. one that fails).
    pub fn provisioner(mut self, provisioner: Arc<dyn Provisioner>) -> Self {
        self.provisioner = Some(provisioner);
        self
    }

    /// The running service; `None` when PostgreSQL is asked for and the suite has none (the
    /// test is then skipped; `.ci/run` always sets it).
    pub async fn start(self) -> Option<TestApp> {
        let (url, store) = match self.backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!(
                    "licentia-test-{}.db",
                    uuid::Uuid::new_v4().simple()
                ));
                let url = format!("sqlite://{}?mode=rwc", path.display());
                (url, Store::Sqlite(path))
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
                    eprintln!("{PG_URL_VAR} is not set: skipping the PostgreSQL run of this test");
                    return None;
                };
                let name = format!("licentia_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(admin_url.as_str())
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{PG_URL_VAR} is set but PostgreSQL is unreachable: {e}")
                    });
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .unwrap();
                admin.close().await.ok();
                let url = pg_url_with_db(&admin_url, &name);
                (url, Store::Postgres { admin_url, name })
            }
        };
        Some(
            TestApp::start(
                self.backend,
                url,
                store,
                self.configure,
                self.clock,
                self.provisioner,
            )
            .await,
        )
    }

    /// The running service; panics when PostgreSQL is asked for and not configured.
    pub async fn spawn(self) -> TestApp {
        self.start().await.expect("PostgreSQL is not configured")
    }
}

impl TestApp {
    /// A service on a fresh database of `backend`, with [`test_config`]'s settings, the system
    /// clock and the local provisioner unless the builder says otherwise.
    pub fn builder(backend: Backend) -> TestAppBuilder {
        TestAppBuilder {
            backend,
            configure: test_config,
            clock: None,
            provisioner: None,
        }
    }

    async fn start(
        backend: Backend,
        url: String,
        store: Store,
        configure: fn(&str) -> Config,
        clock: Option<Arc<ManualClock>>,
        provisioner: Option<Arc<dyn Provisioner>>,
    ) -> TestApp {
        let mut state = licentia_api::prepare(configure(&url), true)
            .await
            .expect("service state");
        if let Some(clock) = &clock {
            state.ctx.clock = clock.clone();
        }
        if let Some(provisioner) = provisioner {
            state.ctx.provisioner = provisioner;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = licentia_api::serve(state.clone(), listener).unwrap();
        let handle = server.handle();
        tokio::spawn(server);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            client,
            backend,
            database_url: url,
            server: handle,
            store,
            configure,
            state,
            clock,
        }
    }

    /// The manual clock of a service started with [`TestAppBuilder::clock`].
    #[track_caller]
    pub fn clock(&self) -> &ManualClock {
        self.clock.as_deref().expect(
            "this TestApp runs on the system clock; start it with TestApp::builder(..).clock(..)",
        )
    }

    /// Runs one sweep (auto-renewal, expiry, grace deletion, expiring-soon notices) now, at the
    /// service's clock, as the background worker would.
    pub async fn sweep(&self) -> licentia_app::sweeps::SweepReport {
        licentia_app::sweeps::run(&self.state).await.expect("sweep")
    }

    /// Another server process of the same service: a second `prepare` + `serve` on the same
    /// database with its own port, pool and job worker, as a second `licentia serve` would
    /// be. Finish it before the first instance; finishing it leaves the database in place.
    pub async fn spawn_second_instance(&self) -> TestApp {
        Self::start(
            self.backend,
            self.database_url.clone(),
            Store::Shared,
            self.configure,
            self.clock.clone(),
            Some(self.state.ctx.provisioner.clone()),
        )
        .await
    }

    /// [`TestApp::spawn_second_instance`] with settings of its own.
    pub async fn spawn_second_instance_with(&self, configure: fn(&str) -> Config) -> TestApp {
        Self::start(
            self.backend,
            self.database_url.clone(),
            Store::Shared,
            configure,
            self.clock.clone(),
            Some(self.state.ctx.provisioner.clone()),
        )
        .await
    }

    /// Stops the server and removes the database.
    pub async fn finish(self) {
        self.server.stop(false).await;
        match &self.store {
            Store::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm", ".key"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Store::Postgres { admin_url, name } => {
                let admin = Database::connect(admin_url.as_str()).await.unwrap();
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .unwrap();
                admin.close().await.ok();
            }
            Store::Shared => {}
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }
    /// `GET path` as `token`, asserting `status`; the body decoded as `T`, e.g. the service's
    /// own `LicenseOut` or `Page<OrderOut>`.
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        status: StatusCode,
    ) -> T {
        self.get(path, token).await.decode(status)
    }

    /// `POST path` with `body` (any serializable value) as `token`, asserting `status`; the
    /// answer decoded as `T`.
    pub async fn post_as<In: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &In,
        status: StatusCode,
    ) -> T {
        let body = serde_json::to_value(body).expect("a request body serializes");
        self.post(path, token, body).await.decode(status)
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Logs in and returns the full token response.
    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// An access token of the bootstrap admin.
    pub async fn admin_token(&self) -> String {
        let resp = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        resp.assert_status(StatusCode::OK);
        resp.body["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates a partner account and returns its id.
    pub async fn create_partner(&self, admin: &str, name: &str) -> String {
        let resp = self
            .post("/v1/accounts", admin, json!({"name": name}))
            .await;
        resp.assert_status(StatusCode::CREATED);
        resp.body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a user of `account` with `role` and returns an access token for it.
    pub async fn user_token(&self, admin: &str, account: &str, role: &str) -> String {
        let email = format!("{role}-{}@partner.test", uuid::Uuid::new_v4().simple());
        let resp = self
            .post(
                &format!("/v1/accounts/{account}/users"),
                admin,
                json!({"email": email, "password": USER_PASSWORD, "role": role}),
            )
            .await;
        resp.assert_status(StatusCode::CREATED);
        let login = self.login(&email, USER_PASSWORD).await;
        login.assert_status(StatusCode::OK);
        login.body["access_token"].as_str().unwrap().to_owned()
    }

    /// A partner with an owner: `(account_id, owner_token)`.
    pub async fn partner_with_owner(&self, admin: &str, name: &str) -> (String, String) {
        let account = self.create_partner(admin, name).await;
        let token = self.user_token(admin, &account, "owner").await;
        (account, token)
    }

    /// Polls the license until its status is `status` (provisioning runs as a job).
    pub async fn wait_status(&self, token: &str, license: &str, status: &str) -> Value {
        for _ in 0..100 {
            let resp = self.get(&format!("/v1/licenses/{license}"), token).await;
            resp.assert_status(StatusCode::OK);
            if resp.body["status"] == status {
                return resp.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("license {license} never reached {status}");
    }

    /// Credits an account (admin) with `amount` minor units.
    pub async fn credit(&self, admin: &str, account: &str, amount: i64) {
        self.post(
            &format!("/v1/accounts/{account}/credits"),
            admin,
            json!({"amount": amount, "reference": "test top-up"}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }

    /// Creates a product with a 1- and 12-month price and one option; returns it.
    pub async fn create_product(&self, admin: &str, code: &str) -> Value {
        let resp = self
            .post(
                "/v1/products",
                admin,
                json!({
                    "code": code,
                    "name": format!("Product {code}"),
                    "prices": [{"period_months": 1, "amount": 1000}, {"period_months": 12, "amount": 10000}],
                    "options": [{"code": "extra_domains", "name": "Extra domains", "min": 0, "max": 10,
                                 "prices": [{"period_months": 1, "amount": 100}, {"period_months": 12, "amount": 1000}]}],
                    "max_registrations": 3,
                    "transferable": true
                }),
            )
            .await;
        resp.assert_status(StatusCode::CREATED);
        resp.body
    }
}

/// A response read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub async fn from(res: reqwest::Response) -> Resp {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts `status` and decodes the body as `T`: a field renamed, dropped or re-typed on
    /// the wire fails here, naming the type.
    #[track_caller]
    pub fn decode<T: DeserializeOwned>(&self, status: StatusCode) -> T {
        self.assert_status(status);
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "the body does not decode as {}: {e}; body: {}",
                std::any::type_name::<T>(),
                self.text
            )
        })
    }

    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts an RFC 9457 problem with this status and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, code: &str) -> &Self {
        self.assert_status(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "content type of {}",
            self.text
        );
        assert_eq!(self.body["code"], code, "problem code in {}", self.text);
        assert_eq!(
            self.body["status"],
            status.as_u16(),
            "problem status in {}",
            self.text
        );
        assert!(
            self.body["type"].is_string()
                && self.body["title"].is_string()
                && self.body["detail"].is_string()
        );
        self
    }

    /// Asserts a 422 naming `field` among its errors.
    #[track_caller]
    pub fn assert_invalid_field(&self, field: &str) -> &Self {
        self.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let errors = self.body["errors"].as_array().expect("errors array");
        assert!(
            errors.iter().any(|e| e["field"] == field),
            "expected an error on {field}: {}",
            self.text
        );
        self
    }
}

/// Until `done` holds or five seconds pass (well inside the caches' 60 s entry age, so what
/// ends the wait is the database's notice, not the age), asking every 20 ms; how long it took.
pub async fn within_notice<F, Fut>(mut done: F) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(5) {
        if done().await {
            return start.elapsed();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the change did not reach the other process within 5 s");
}
