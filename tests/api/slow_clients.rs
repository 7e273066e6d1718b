//! THREATS #17: a client that sends its request head slowly is cut at the request timeout,
//! and the server keeps answering everyone else meanwhile.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use licentia_tests::TestApp;
use reqwest::{Method, StatusCode};

fn one_second(url: &str) -> licentia_api::Config {
    licentia_api::Config {
        request_timeout_secs: 1,
        ..licentia_tests::test_config(url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_at_the_request_timeout() {
    let app = TestApp::spawn_sqlite_with(one_second).await;
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
