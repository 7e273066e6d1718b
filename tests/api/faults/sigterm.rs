//! THREATS #22: SIGTERM under load → the listener closes (new connections are refused), every
//! request already accepted is answered (0 dropped), the process exits 0 and the jobs its
//! worker leased are queued again.
//!
//! Runs the real binary, `target/debug/licentia` (built by `cargo test --workspace` before any
//! test runs; see `super::licentia_binary`), on a temporary SQLite database, and talks raw HTTP/1.1 so that every
//! connection and its fate are visible.
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use licentia_persistence::entities::jobs;
use licentia_tests::{ADMIN_EMAIL, ADMIN_PASSWORD};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, Database, EntityTrait};
use serde_json::{Value, json};

use super::free_port;

/// The server process and its files; killed and removed whatever happens.
struct Server {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    fn start(bin: &PathBuf) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "licentia-sigterm-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).unwrap();
        let config = dir.join("licentia.toml");
        std::fs::write(&config, "").unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut command = Command::new(bin);
        // Only the settings below: none of the caller's LICENTIA_* leaks in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LICENTIA_") {
                command.env_remove(key);
            }
        }
        let child = command
            .arg("serve")
            .env("LICENTIA_CONFIG", &config)
            .env(
                "LICENTIA_DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.join("licentia.db").display()),
            )
            .env("LICENTIA_BIND", addr.to_string())
            .env("LICENTIA_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("LICENTIA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("LICENTIA_RATE_LIMIT", "off")
            .env("LICENTIA_LOG", "info")
            .env("LICENTIA_LOG_FORMAT", "json")
            .env("LICENTIA_WORKERS", "2")
            .env("LICENTIA_JOB_POLL_MS", "100")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while request(addr, "GET", "/healthz", None).is_err() {
            assert!(
                Instant::now() < deadline,
                "the server did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn database_url(&self) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            self.dir.join("licentia.db").display()
        )
    }

    /// The job worker's id, from the start-up line of the JSON log.
    fn worker_id(&self) -> String {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find_map(|line| line["fields"]["worker"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no worker id in the log: {}", self.log()))
    }
}

/// How one request ended.
#[derive(Debug)]
enum Outcome {
    /// A complete response with this status.
    Answered(u16),
    /// The connection was refused: the listener is closed.
    Refused,
    /// Connected, but no complete response: a dropped request.
    Dropped(String),
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Result<u16, Outcome> {
    let mut stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Err(Outcome::Refused),
        Err(e) => return Err(Outcome::Dropped(format!("connect: {e}"))),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(format!("{head}{body}").as_bytes())
        .map_err(|e| Outcome::Dropped(format!("write: {e}")))?;
    read_status(&mut stream)
}

fn read_status(stream: &mut TcpStream) -> Result<u16, Outcome> {
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| Outcome::Dropped(format!("read: {e}")))?;
    let text = String::from_utf8_lossy(&response);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| Outcome::Dropped(format!("no status line in {text:?}")))
}

fn login_body() -> String {
    json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).to_string()
}

/// A job as if the worker had claimed it and were running it: leased to `worker` for a while.
async fn leased_job(url: &str, worker: &str) -> uuid::Uuid {
    let db = Database::connect(url).await.unwrap();
    let now = licentia_persistence::now();
    let id = uuid::Uuid::now_v7();
    jobs::ActiveModel {
        id: Set(id),
        kind: Set("provision".into()),
        payload: Set(json!({"license_id": uuid::Uuid::now_v7()})),
        status: Set("running".into()),
        run_at: Set(now),
        attempts: Set(1),
        max_attempts: Set(5),
        locked_until: Set(Some(now + time::Duration::minutes(10))),
        locked_by: Set(Some(worker.to_owned())),
        last_error: Set(None),
        dedupe_key: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&db)
    .await
    .unwrap();
    db.close().await.ok();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_the_listener_answers_accepted_requests_and_releases_jobs() {
    let Some(bin) = super::licentia_binary("the SIGTERM test") else {
        return;
    };
    let mut server = Server::start(&bin);
    let addr = server.addr;
    let job = leased_job(&server.database_url(), &server.worker_id()).await;

    // A request the server has accepted and is reading when the signal comes: its body is
    // only half sent.
    let body = login_body();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(addr).unwrap();
    write!(
        in_flight,
        "POST /v1/auth/token HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .unwrap();

    // A stream of logins (each a password hash check, so several are in flight at any time)
    // and probes, on fresh connections, from four clients.
    let pause = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (pause, closed, finished) = (pause.clone(), closed.clone(), finished.clone());
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                let mut n = c;
                while !finished.load(Ordering::SeqCst) {
                    // New connections are held back between the signal and the moment the
                    // listener is seen closed: a connection the kernel queued but the server
                    // never accepted is reset when the listener closes, and it is no
                    // accepted request.
                    if pause.load(Ordering::SeqCst) && !closed.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    let sent_after_close = closed.load(Ordering::SeqCst);
                    let outcome = if n % 2 == 0 {
                        request(addr, "POST", "/v1/auth/token", Some(&login_body()))
                    } else {
                        request(addr, "GET", "/healthz", None)
                    };
                    let outcome = outcome.map_or_else(|o| o, Outcome::Answered);
                    if matches!(outcome, Outcome::Refused) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    outcomes.push((sent_after_close, outcome));
                    n += 1;
                }
                outcomes
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(800));
    pause.store(true, Ordering::SeqCst);
    // A client that read `pause` just before it was set may still be connecting; give its
    // connection time to be accepted, so that no connection sits in the kernel's queue when
    // the listener closes (those are reset, and were never accepted requests).
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM failed");
    let signalled = Instant::now();

    // The listener closes at once, while the process still drains the half-sent request.
    loop {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            _ => {}
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "the listener is still open 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    closed.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the process exited without answering the request it had accepted"
    );
    finished.store(true, Ordering::SeqCst);

    in_flight.write_all(rest.as_bytes()).unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let answered = read_status(&mut in_flight);
    assert!(
        matches!(answered, Ok(200)),
        "the request accepted before SIGTERM got {answered:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exit.success(),
        "exit status {exit:?}; log: {}",
        server.log()
    );

    let mut answered = 0;
    let mut refused = 0;
    for client in clients {
        for (after_close, outcome) in client.join().unwrap() {
            match outcome {
                Outcome::Answered(status) => {
                    assert!(status == 200, "a request of the stream got {status}");
                    answered += 1;
                }
                Outcome::Refused => {
                    assert!(after_close, "refused before the listener closed");
                    refused += 1;
                }
                Outcome::Dropped(why) => panic!("a request was dropped: {why}"),
            }
        }
    }
    assert!(answered > 0, "no request of the stream was answered");
    assert!(
        refused > 0,
        "no request of the stream found the listener closed"
    );

    // The job the worker held is queued again, due now, its interrupted attempt not counted.
    let db = Database::connect(server.database_url().as_str())
        .await
        .unwrap();
    let row = jobs::Entity::find_by_id(job)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "queued", "{row:?}");
    assert_eq!(row.locked_by, None, "{row:?}");
    assert_eq!(row.attempts, 0, "{row:?}");
    db.close().await.ok();
    assert!(
        server.log().contains("job worker stopped"),
        "no shutdown line in the log: {}",
        server.log()
    );
    eprintln!(
        "sigterm: {answered} requests answered, {refused} refused after the listener closed, 0 dropped"
    );
}
