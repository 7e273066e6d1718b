//! THREATS #17: a client that sends its request head slowly is cut at the request timeout,
//! one that sends its body slowly is cut with 408 at the body deadline (CONTRACT §9: 10 s
//! after the head), and the server keeps answering everyone else meanwhile.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use licentia_tests::{Resp, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn one_second(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        request_timeout_secs: licentia_api::config::Secs::new(1),
        ..licentia_tests::test_config(url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_at_the_request_timeout() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(one_second)
        .spawn()
        .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let slow = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        // One byte a ~300 ms, never finishing the head.
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n" {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            if started.elapsed() > Duration::from_secs(4) {
                break;
            }
        }
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        (
            started.elapsed(),
            String::from_utf8_lossy(&buf).into_owned(),
        )
    });
    // Meanwhile the service answers others at once.
    for _ in 0..5 {
        let r = app.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (elapsed, answer) = tokio::task::spawn_blocking(move || slow.join().unwrap())
        .await
        .unwrap();
    // Cut well before the client would have finished (~10 s at this pace): a 408 or a close.
    assert!(
        elapsed < Duration::from_secs(8),
        "the slow client was not cut: {elapsed:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "unexpected answer: {answer}"
    );
    app.finish().await;
}

fn two_second_bodies(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        body_timeout_secs: licentia_api::config::Secs::new(2),
        ..licentia_tests::test_config(url)
    }
}

/// What a slow client saw: how long after its head the answer came, and the answer.
struct SlowAnswer {
    after_head: Duration,
    text: String,
}

impl SlowAnswer {
    #[track_caller]
    fn assert_408(&self) {
        assert!(
            self.text.starts_with("HTTP/1.1 408"),
            "expected a 408, got: {}",
            self.text
        );
        let body = self.text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let problem: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        assert_eq!(problem["code"], "request_timeout", "{}", self.text);
        assert_eq!(problem["status"], 408, "{}", self.text);
        assert!(
            self.text
                .to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{}",
            self.text
        );
    }
}

/// Sends the head of a request at once, then its body one byte a second (announcing a
/// longer one than it will ever send), and reads the answer on the side.
fn trickle(addr: &str, head: &str, body_len: usize) -> SlowAnswer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let head_sent = Instant::now();
    let mut reader = stream.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for _ in 0..body_len {
                if stop.load(Ordering::Relaxed) || stream.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    reader
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let mut first = None;
    let mut chunk = [0_u8; 4096];
    // The answer may be followed by a reset (the server closes with the rest of the body
    // unread): keep what arrived before it.
    while let Ok(n) = reader.read(&mut chunk) {
        if n == 0 {
            break;
        }
        first.get_or_insert_with(|| head_sent.elapsed());
        buf.extend_from_slice(&chunk[..n]);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    SlowAnswer {
        after_head: first.unwrap_or_else(|| head_sent.elapsed()),
        text: String::from_utf8_lossy(&buf).into_owned(),
    }
}

fn post_head(path: &str, extra_headers: &str, body_len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {body_len}\r\n{extra_headers}\r\n"
    )
}

/// The login body (no credentials needed) sent at 1 byte/s: 408 at the configured deadline,
/// while the service answers others at once.
async fn slow_login_body(app: &TestApp, deadline: Duration) {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let slow = std::thread::spawn(move || trickle(&addr, &post_head("/v1/auth/token", "", 60), 60));
    for _ in 0..5 {
        let r = app.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Logging in works meanwhile.
    app.admin_token().await;
    let answer = tokio::task::spawn_blocking(move || slow.join().unwrap())
        .await
        .unwrap();
    answer.assert_408();
    assert!(
        answer.after_head >= deadline - Duration::from_millis(200)
            && answer.after_head < deadline + Duration::from_secs(3),
        "cut after {:?}, the deadline is {deadline:?}",
        answer.after_head
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_with_408_at_the_configured_deadline() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(two_second_bodies)
        .spawn()
        .await;
    slow_login_body(&app, Duration::from_secs(2)).await;
    app.finish().await;
}

/// The contract's 10 s, with the default configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_with_408_after_ten_seconds_by_default() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .spawn()
        .await;
    assert_eq!(app.state.config.body_timeout_secs.get(), 10);
    slow_login_body(&app, Duration::from_secs(10)).await;
    app.finish().await;
}

/// A keyed write whose body stalls: the idempotency middleware, which reads the body first,
/// answers 408 too, and keeps no trace of the key (a retry runs as new).
async fn slow_keyed_body(app: &TestApp) {
    let admin = app.admin_token().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let headers = format!("Authorization: Bearer {admin}\r\nIdempotency-Key: slow-1\r\n");
    let slow =
        std::thread::spawn(move || trickle(&addr, &post_head("/v1/accounts", &headers, 40), 40));
    let answer = tokio::task::spawn_blocking(move || slow.join().unwrap())
        .await
        .unwrap();
    answer.assert_408();
    assert!(
        answer.after_head < Duration::from_secs(5),
        "{:?}",
        answer.after_head
    );
    let retry = app
        .client
        .post(app.url("/v1/accounts"))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "slow-1")
        .json(&json!({"name": "Slow"}))
        .send()
        .await
        .unwrap();
    let retry = Resp::from(retry).await;
    retry.assert_status(StatusCode::CREATED);
    assert!(retry.header("idempotent-replayed").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_keyed_bodies_are_cut_and_leave_no_key_sqlite() {
    let app = TestApp::builder(licentia_tests::Backend::Sqlite)
        .config(two_second_bodies)
        .spawn()
        .await;
    slow_keyed_body(&app).await;
    app.finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_keyed_bodies_are_cut_and_leave_no_key_postgres() {
    let Some(app) = TestApp::builder(licentia_tests::Backend::Postgres)
        .config(two_second_bodies)
        .start()
        .await
    else {
        return;
    };
    slow_keyed_body(&app).await;
    app.finish().await;
}
