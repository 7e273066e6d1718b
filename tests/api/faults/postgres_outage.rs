//! THREATS #21: PostgreSQL stopped mid-load → 503 problem+json within the pool's acquire
//! timeout (no hang, no 500); back to normal within 10 s of the database returning, without a
//! restart; the ledger intact.
//!
//! The machine's shared PostgreSQL serves other tests, so this one starts a private instance
//! (`initdb` + `pg_ctl` into a temporary directory, trust authentication, a free port) and
//! stops and starts that; the instance and its directory are removed even when the test fails.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use licentia_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PG_URL_VAR, test_config};
use serde_json::{Value, json};

use super::{client, free_port, is_root};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The pool's acquire timeout in this test; a refused request must come back within it plus
/// a margin for a busy machine.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// A PostgreSQL instance of this test's own.
struct PrivatePg {
    dir: PathBuf,
    port: u16,
    /// Run the tools as the `postgres` user (the test runs as root, which PostgreSQL refuses).
    as_postgres: bool,
}

impl PrivatePg {
    /// Creates and starts the instance, or `None` (with the reason printed) when this machine
    /// cannot.
    fn start() -> Option<PrivatePg> {
        if std::env::var(PG_URL_VAR).is_err() {
            eprintln!("{PG_URL_VAR} is not set: skipping the PostgreSQL outage test");
            return None;
        }
        if !Path::new(PG_BIN).join("initdb").exists() || !Path::new(PG_BIN).join("pg_ctl").exists()
        {
            super::skip(&format!(
                "the PostgreSQL outage test: {PG_BIN}/initdb or pg_ctl is missing"
            ));
            return None;
        }
        let as_postgres = is_root();
        let dir = if as_postgres {
            let out = Command::new("runuser")
                .args([
                    "-u",
                    "postgres",
                    "--",
                    "mktemp",
                    "-d",
                    "/tmp/licentia-pg-XXXXXX",
                ])
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
                }
                _ => {
                    super::skip(
                        "the PostgreSQL outage test: running as root without a usable `postgres` user",
                    );
                    return None;
                }
            }
        } else {
            let dir =
                std::env::temp_dir().join(format!("licentia-pg-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir(&dir).unwrap();
            dir
        };
        // From here on, Drop cleans up whatever happens.
        let pg = PrivatePg {
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, tool: &str) -> Command {
        let path = Path::new(PG_BIN).join(tool);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    #[track_caller]
    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server the way an operator or a crash would: sessions are cut off.
    fn stop_server(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                self.data().to_str().unwrap_or("."),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One request of the load and how it ended.
#[derive(Debug)]
struct Sample {
    kind: &'static str,
    started: Instant,
    elapsed: Duration,
    /// `None` when no response came (connection error or the client's timeout: a hang).
    status: Option<u16>,
    content_type: String,
    code: String,
}

struct Load {
    base: String,
    token: String,
    account: String,
}

impl Load {
    async fn one(&self, http: &reqwest::Client, n: usize) -> Sample {
        let (kind, request) = match n % 4 {
            0 => (
                "get_account",
                http.get(format!("{}/v1/accounts/{}", self.base, self.account)),
            ),
            1 => (
                "create_credit",
                http.post(format!(
                    "{}/v1/accounts/{}/credits",
                    self.base, self.account
                ))
                .json(&json!({"amount": 100, "reference": "load"})),
            ),
            2 => (
                "list_ledger",
                http.get(format!(
                    "{}/v1/accounts/{}/ledger?limit=5",
                    self.base, self.account
                )),
            ),
            _ => ("readyz", http.get(format!("{}/readyz", self.base))),
        };
        let started = Instant::now();
        let res = request.bearer_auth(&self.token).send().await;
        let (status, content_type, body) = match res {
            Ok(res) => {
                let status = res.status().as_u16();
                let content_type = res
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                (Some(status), content_type, body)
            }
            Err(_) => (None, String::new(), Value::Null),
        };
        Sample {
            kind,
            started,
            elapsed: started.elapsed(),
            status,
            content_type,
            code: body["code"].as_str().unwrap_or_default().to_owned(),
        }
    }
}

/// Every page of the account's ledger: (number of `load` credits, sum of amounts).
async fn ledger_totals(http: &reqwest::Client, load: &Load) -> (usize, i64) {
    let (mut credits, mut sum, mut cursor) = (0, 0, None::<String>);
    loop {
        let mut url = format!(
            "{}/v1/accounts/{}/ledger?limit=200",
            load.base, load.account
        );
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .bearer_auth(&load.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for entry in page["items"].as_array().unwrap() {
            sum += entry["amount"].as_i64().unwrap();
            if entry["reference"] == "load" {
                credits += 1;
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (credits, sum),
        }
    }
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_answers_503_then_recovers_with_the_ledger_intact() {
    let Some(pg) = PrivatePg::start() else { return };
    let mut config = test_config(&pg.url());
    config.db_acquire_timeout_ms =
        licentia_api::config::Millis::new(u64::try_from(ACQUIRE_TIMEOUT.as_millis()).unwrap());
    let state = licentia_api::prepare(config, true).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = licentia_api::serve(state, listener).unwrap();
    let handle = server.handle();
    tokio::spawn(server);
    let http = client();

    let login: Value = http
        .post(format!("{base}/v1/auth/token"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let account: Value = http
        .post(format!("{base}/v1/accounts"))
        .bearer_auth(&token)
        .json(&json!({"name": "Outage partner"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let load = Arc::new(Load {
        base: base.clone(),
        token,
        account: account["id"].as_str().unwrap().to_owned(),
    });

    // Four clients hammer reads, money moves and the readiness probe throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (load, stop, http) = (load.clone(), stop.clone(), http.clone());
        clients.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut n = c;
            while !stop.load(Ordering::Relaxed) {
                samples.push(load.one(&http, n).await);
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.stop_server();
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // PostgreSQL accepts connections before `pg_ctl start` returns: the outage ends here.
    let restart_at = Instant::now();
    pg.start_server();
    let up_at = Instant::now();

    // Back to normal without a restart: the probe and an authenticated read succeed again.
    let recovered_at = loop {
        let ready = http.get(format!("{base}/readyz")).send().await;
        let read = load.one(&http, 0).await;
        if ready.is_ok_and(|r| r.status() == 200) && read.status == Some(200) {
            break Instant::now();
        }
        assert!(
            up_at.elapsed() < Duration::from_secs(10),
            "not back to normal 10 s after PostgreSQL returned (last read: {read:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for c in clients {
        samples.extend(c.await.unwrap());
    }

    // No hang, no 500: every request got an answer; every refusal is a 503 problem in time.
    for s in &samples {
        let status = s
            .status
            .unwrap_or_else(|| panic!("no answer (a hang or a dropped connection): {s:?}"));
        assert!(
            status < 500 || status == 503,
            "a server error other than 503: {s:?}"
        );
        if status == 503 {
            assert_eq!(s.content_type, "application/problem+json", "{s:?}");
            assert_eq!(s.code, "service_unavailable", "{s:?}");
            assert!(
                s.elapsed <= ANSWER_WITHIN,
                "503 after {:?}, beyond the acquire timeout: {s:?}",
                s.elapsed
            );
        }
    }
    // While the database was down (after the first second), nothing succeeded by accident.
    let during: Vec<_> = samples
        .iter()
        .filter(|s| {
            s.started > down_at + Duration::from_millis(500) && s.started + s.elapsed < restart_at
        })
        .collect();
    assert!(!during.is_empty(), "no request ran during the outage");
    assert!(
        during.iter().all(|s| s.status == Some(503)),
        "a request succeeded while PostgreSQL was down: {:?}",
        during.iter().find(|s| s.status != Some(503))
    );
    let before = samples.iter().filter(|s| s.started < down_at).count();
    let after = samples
        .iter()
        .filter(|s| s.started > recovered_at && s.status.is_some_and(|st| st < 300))
        .count();
    assert!(
        before > 0 && after > 0,
        "load before {before}, after {after}"
    );

    // The ledger is intact: every acknowledged credit is in it, nothing else moved money that
    // was not asked for, and the balance is the sum of the ledger.
    let acknowledged = samples
        .iter()
        .filter(|s| s.kind == "create_credit" && s.status == Some(201))
        .count();
    let refused = samples
        .iter()
        .filter(|s| s.kind == "create_credit" && s.status == Some(503))
        .count();
    let (credits, sum) = ledger_totals(&http, &load).await;
    assert!(
        credits >= acknowledged && credits <= acknowledged + refused,
        "{credits} credits in the ledger for {acknowledged} acknowledged ({refused} refused)"
    );
    let account: Value = http
        .get(format!("{base}/v1/accounts/{}", load.account))
        .bearer_auth(&load.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["balance"].as_i64(), Some(sum), "balance ≠ Σ ledger");
    eprintln!(
        "postgres outage: {} requests ({} during the outage, all 503), {acknowledged} credits acknowledged, back {:?} after PostgreSQL returned",
        samples.len(),
        during.len(),
        recovered_at - up_at
    );
    handle.stop(true).await;
}
