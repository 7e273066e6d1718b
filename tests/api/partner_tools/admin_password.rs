//! The administrator password at work: the provisioner receives it decrypted with every job
//! that provisions or changes a license, and it appears in no response, event, webhook body
//! or log line — not even when the provisioner's own error message quotes it.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use licentia_app::provisioning::{ProvisionJob, Provisioner};
use licentia_tests::{Resp, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{all_pages, receiving};
use crate::webhooks::{Receiver, register};

/// Records what each job brought; fails its first job with a message that quotes the password.
#[derive(Default)]
struct Recording {
    seen: Mutex<Vec<(String, Option<String>)>>,
    failed_once: AtomicBool,
}

impl Provisioner for Recording {
    fn apply(&self, job: &ProvisionJob<'_>) -> Result<(), String> {
        let password = job.admin_password.map(|p| p.expose().to_owned());
        self.seen
            .lock()
            .unwrap()
            .push((job.license.id.to_string(), password.clone()));
        if let Some(password) = password
            && !self.failed_once.swap(true, Ordering::SeqCst)
        {
            return Err(format!(
                "ssh root@{} refused the password {password}",
                job.license.ip
            ));
        }
        Ok(())
    }
}

impl Recording {
    fn of(&self, license: &str) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| id == license)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

/// Every log line of this test process at `warn` and above, and everything Licentia's own
/// crates log at any level, scanned for the passwords as it is written.
struct LogScan {
    needles: Mutex<Vec<String>>,
    hits: Mutex<Vec<String>>,
    lines: AtomicUsize,
}

static SCAN: OnceLock<Option<&'static LogScan>> = OnceLock::new();

struct ScanWriter(&'static LogScan);

impl std::io::Write for ScanWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.lines.fetch_add(1, Ordering::SeqCst);
        for needle in self.0.needles.lock().unwrap().iter() {
            if text.contains(needle.as_str()) {
                self.0.hits.lock().unwrap().push(text.clone().into_owned());
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide log scanner (`None` when another subscriber was installed first).
fn log_scan() -> Option<&'static LogScan> {
    *SCAN.get_or_init(|| {
        let scan: &'static LogScan = Box::leak(Box::new(LogScan {
            needles: Mutex::default(),
            hits: Mutex::default(),
            lines: AtomicUsize::new(0),
        }));
        let installed = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "warn,licentia_api=trace,licentia_persistence=trace,licentia_domain=trace,tracing_actix_web=trace",
            ))
            .with_writer(move || ScanWriter(scan))
            .with_ansi(false)
            .try_init()
            .is_ok();
        installed.then_some(scan)
    })
}

/// Every answer the scenario read, to search afterwards.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn keep(&mut self, r: Resp) -> Resp {
        self.0.push(format!("{:?} {}", r.headers, r.text));
        r
    }
}

async fn password_reaches_the_provisioner_only(app: &TestApp, provisioner: &Recording) {
    let scan = log_scan();
    let first = format!("First-{}", uuid::Uuid::new_v4().simple());
    let second = format!("Second-{}", uuid::Uuid::new_v4().simple());
    if let Some(scan) = scan {
        scan.needles
            .lock()
            .unwrap()
            .extend([first.clone(), second.clone()]);
    }
    let mut seen = Seen::default();
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "password-at-work").await;
    let (account, owner) = app.partner_with_owner(&admin, "Passwords").await;
    app.credit(&admin, &account, 100_000).await;
    let receiver = Receiver::start(&[]).await;
    register(app, &owner, &receiver.url("/all"), json!(["*"])).await;
    register(app, &admin, &receiver.url("/provider"), json!(["*"])).await;

    let r = seen.keep(
        app.post(
            "/v1/licenses",
            &owner,
            json!({"product_id": product["id"], "name": "Server", "ip": "192.0.2.90",
                   "period_months": 12, "admin_password": first, "payment": {"method": "balance"}}),
        )
        .await,
    );
    r.assert_status(StatusCode::CREATED);
    let id = r.body["license"]["id"].as_str().unwrap().to_owned();
    // The first attempt fails quoting the password: the license shows it redacted.
    let mut redacted = None;
    for _ in 0..200 {
        let got = seen.keep(app.get(&format!("/v1/licenses/{id}"), &owner).await);
        if let Some(error) = got.body["provisioning_error"].as_str() {
            redacted = Some(error.to_owned());
            break;
        }
        if got.body["status"] == "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(error) = redacted {
        assert_eq!(error, "ssh root@192.0.2.90 refused the password [redacted]");
    }
    let active = app.wait_status(&owner, &id, "active").await;
    seen.0.push(active.to_string());
    assert_eq!(active["provisioning_error"], Value::Null);
    let jobs = provisioner.of(&id);
    assert!(jobs.len() >= 2, "a failed attempt and a retry: {jobs:?}");
    assert!(jobs.iter().all(|p| p.as_deref() == Some(first.as_str())));

    // A change of the password and of the address: the modification brings the new one.
    let r = seen.keep(
        app.patch(
            &format!("/v1/licenses/{id}"),
            &owner,
            json!({"admin_password": second, "ip": "192.0.2.91"}),
        )
        .await,
    );
    r.assert_status(StatusCode::OK);
    app.wait_status(&owner, &id, "active").await;
    assert_eq!(
        provisioner.of(&id).last().unwrap().as_deref(),
        Some(second.as_str())
    );
    // A change that provisions nothing runs no job.
    let before = provisioner.of(&id).len();
    seen.keep(
        app.patch(
            &format!("/v1/licenses/{id}"),
            &owner,
            json!({"name": "Renamed"}),
        )
        .await,
    )
    .assert_status(StatusCode::OK);
    // Re-enabling provisions again, with the password.
    for action in ["disable", "enable"] {
        seen.keep(
            app.post(&format!("/v1/licenses/{id}/{action}"), &owner, json!({}))
                .await,
        )
        .assert_status(StatusCode::OK);
    }
    app.wait_status(&owner, &id, "active").await;
    let jobs = provisioner.of(&id);
    assert_eq!(jobs.len(), before + 1, "{jobs:?}");
    assert_eq!(jobs.last().unwrap().as_deref(), Some(second.as_str()));
    // Clearing it: the next job has none.
    seen.keep(
        app.patch(
            &format!("/v1/licenses/{id}"),
            &owner,
            json!({"admin_password": null, "ip": "192.0.2.92"}),
        )
        .await,
    )
    .assert_status(StatusCode::OK);
    app.wait_status(&owner, &id, "active").await;
    assert_eq!(provisioner.of(&id).last().unwrap(), &None);

    // Nowhere else: responses, the event log, webhook bodies, delivery logs, the license.
    let events = all_pages(app, &admin, "/v1/events").await;
    seen.0.push(serde_json::to_string(&events).unwrap());
    seen.0
        .push(app.get(&format!("/v1/licenses/{id}"), &admin).await.text);
    seen.0
        .push(app.get("/v1/webhook-endpoints", &owner).await.text);
    receiver.wait_for("/all", 3).await;
    for path in ["/all", "/provider"] {
        for hit in receiver.hits(path) {
            seen.0.push(String::from_utf8_lossy(&hit.body).into_owned());
        }
    }
    let everything = seen.0.join("\n");
    assert!(everything.contains(&id), "the search covers the license");
    for password in [&first, &second] {
        assert!(
            !everything.contains(password.as_str()),
            "the password leaked into an answer, an event or a webhook"
        );
    }
    match scan {
        Some(scan) => {
            assert!(
                scan.lines.load(Ordering::SeqCst) > 0,
                "the log scanner saw nothing"
            );
            let hits = scan.hits.lock().unwrap();
            assert!(hits.is_empty(), "the password was logged: {hits:?}");
        }
        None => eprintln!("another log subscriber is installed: the log was not scanned"),
    }
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_password_at_work_sqlite() {
    let provisioner = Arc::new(Recording::default());
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(receiving)
        .provisioner(provisioner.clone())
        .spawn()
        .await;
    password_reaches_the_provisioner_only(&app, &provisioner).await;
    app.finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_password_at_work_postgres() {
    let provisioner = Arc::new(Recording::default());
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .config(receiving)
        .provisioner(provisioner.clone())
        .start()
        .await
    else {
        return;
    };
    password_reaches_the_provisioner_only(&app, &provisioner).await;
    app.finish().await;
}
