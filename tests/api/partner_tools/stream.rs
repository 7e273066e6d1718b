//! `GET /v1/events/stream`: Server-Sent Events of the caller's events, committed by any server
//! process; resumable with `Last-Event-ID` / `?after=` with no gap and no duplicate; a comment
//! every 15 s; at most 10 open streams per account; ends when the server shuts down.
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use licentia_tests::{Backend, TestApp, db_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{active_license, all_pages};

/// One SSE block: a message (`id`, `event`, `data`), or only comments.
#[derive(Clone, Debug, Default)]
pub struct Message {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comments: Vec<String>,
}

/// A client reading an event stream block by block.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// Opens `/v1/events/stream{query}`; asserts 200 `text/event-stream` and reads the opening
    /// comment, after which the stream's starting point is fixed.
    pub async fn open(app: &TestApp, token: &str, query: &str, last_event_id: Option<&str>) -> Sse {
        let response = Self::request(app, token, query, last_event_id).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut sse = Sse {
            response,
            buffer: String::new(),
        };
        let first = sse.next(Duration::from_secs(10)).await.expect("opening");
        assert_eq!(first.comments, ["stream open"], "{first:?}");
        sse
    }

    pub async fn request(
        app: &TestApp,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        let mut req = app
            .client
            .get(app.url(&format!("/v1/events/stream{query}")))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        req.send().await.unwrap()
    }

    /// The next block within `wait`, or `None` when none came (or the stream ended).
    pub async fn next(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message::default();
                for line in block.lines() {
                    if let Some(comment) = line.strip_prefix(':') {
                        message.comments.push(comment.trim().to_owned());
                    } else if let Some((field, value)) = line.split_once(": ") {
                        match field {
                            "id" => message.id = Some(value.to_owned()),
                            "event" => message.event = Some(value.to_owned()),
                            "data" => message.data.push_str(value),
                            _ => {}
                        }
                    }
                }
                return Some(message);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next event (skipping comments) within `wait`.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Message> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.next(left).await?;
            if m.id.is_some() {
                return Some(m);
            }
        }
    }

    /// Events until `done` says stop (that one included), failing after `wait`.
    pub async fn until(&mut self, wait: Duration, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .next_event(left)
                .await
                .unwrap_or_else(|| panic!("the stream ended or went quiet; got {out:?}"));
            let event = checked(&m);
            let stop = done(&event);
            out.push(event);
            if stop {
                return out;
            }
        }
    }

    /// Every event that arrives within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while let Some(m) = self
            .next_event(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            out.push(checked(&m));
        }
        out
    }
}

/// A message's event, checked against its `id:` and `event:` lines.
fn checked(m: &Message) -> Value {
    let event: Value = serde_json::from_str(&m.data).unwrap();
    assert_eq!(event["id"].as_str(), m.id.as_deref(), "{m:?}");
    assert_eq!(event["type"].as_str(), m.event.as_deref(), "{m:?}");
    event
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

const WAIT: Duration = Duration::from_secs(30);

/// A stream on one process sees what another commits, only its own account's (admins: all),
/// exactly as `GET /v1/events` shows it; a reconnect with `Last-Event-ID` on the other process
/// gets exactly what was missed; `?after=` likewise.
async fn streams_across_processes(app: &TestApp) {
    let second;
    let other = if app.backend == Backend::Postgres {
        second = Some(app.spawn_second_instance().await);
        second.as_ref().unwrap()
    } else {
        second = None;
        app
    };
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "streamed").await;
    let (a, owner_a) = app.partner_with_owner(&admin, "Stream A").await;
    let (b, owner_b) = app.partner_with_owner(&admin, "Stream B").await;
    app.credit(&admin, &a, 100_000).await;
    app.credit(&admin, &b, 100_000).await;
    // Events committed before a stream opens are not sent.
    let early = active_license(app, &owner_a, &product, "192.0.2.60").await;

    let mut stream_a = Sse::open(other, &owner_a, "", None).await;
    let mut stream_b = Sse::open(other, &owner_b, "", None).await;
    let mut stream_admin = Sse::open(other, &admin, "", None).await;
    let mut only_early = Sse::open(other, &owner_a, &format!("?license_id={early}"), None).await;

    // Work on the first process.
    let license = active_license(app, &owner_a, &product, "192.0.2.61").await;
    let got_a = stream_a
        .until(WAIT, |e| {
            e["type"] == "license.activated" && e["license_id"] == license.as_str()
        })
        .await;
    assert!(
        got_a.iter().all(|e| e["account_id"] == a.as_str()),
        "{got_a:?}"
    );
    assert!(
        got_a.iter().all(|e| e["license_id"] != early.as_str()),
        "an event from before the stream opened: {got_a:?}"
    );
    assert_eq!(got_a[0]["type"], "license.ordered", "{got_a:?}");
    // Exactly the log's events, in the same shape.
    let log = all_pages(app, &owner_a, &format!("/v1/events?license_id={license}")).await;
    let by_id: std::collections::HashMap<String, Value> = log
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_owned(), e.clone()))
        .collect();
    for e in &got_a {
        if e["license_id"] == license.as_str() {
            assert_eq!(&by_id[e["id"].as_str().unwrap()], e);
        }
    }
    let streamed_for_license: BTreeSet<String> = got_a
        .iter()
        .filter(|e| e["license_id"] == license.as_str())
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        streamed_for_license,
        by_id.keys().cloned().collect::<BTreeSet<_>>()
    );

    // B's work reaches B's stream and the admin's, never A's.
    let license_b = active_license(app, &owner_b, &product, "192.0.2.62").await;
    let got_b = stream_b
        .until(WAIT, |e| {
            e["type"] == "license.activated" && e["license_id"] == license_b.as_str()
        })
        .await;
    assert!(got_b.iter().all(|e| e["account_id"] == b.as_str()));
    let got_admin = stream_admin
        .until(WAIT, |e| {
            e["type"] == "license.activated" && e["license_id"] == license_b.as_str()
        })
        .await;
    let admin_ids: HashSet<String> = ids(&got_admin).into_iter().collect();
    assert!(ids(&got_a).iter().all(|id| admin_ids.contains(id)));
    assert!(ids(&got_b).iter().all(|id| admin_ids.contains(id)));
    // The filter: nothing about other licenses.
    assert!(
        only_early
            .drain(Duration::from_millis(500))
            .await
            .is_empty()
    );

    // A disconnects after its license's first events; more happens meanwhile.
    let kept = 2;
    drop(stream_a);
    let last_seen = got_a[kept - 1]["id"].as_str().unwrap().to_owned();
    for action in ["disable", "enable"] {
        app.post(
            &format!("/v1/licenses/{license}/{action}"),
            &owner_a,
            json!({}),
        )
        .await
        .assert_status(StatusCode::OK);
    }
    app.wait_status(&owner_a, &license, "active").await;
    let b_extra = active_license(app, &owner_b, &product, "192.0.2.63").await;
    // Early's events arrive in its filtered stream.
    app.post(
        &format!("/v1/licenses/{early}/disable"),
        &owner_a,
        json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    let early_events = only_early
        .until(WAIT, |e| e["type"] == "license.suspended")
        .await;
    assert_eq!(early_events.len(), 1, "{early_events:?}");

    // Everything A has after `last_seen`, from A's log (its own account's events).
    let everything: Vec<Value> = {
        let mut log = all_pages(app, &owner_a, "/v1/events").await;
        log.reverse();
        log
    };
    let received: HashSet<String> = ids(&got_a[..kept]).into_iter().collect();
    let before_stream: HashSet<String> = everything
        .iter()
        .take_while(|e| e["id"] != got_a[0]["id"])
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = everything
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .filter(|id| !received.contains(id) && !before_stream.contains(id))
        .collect();

    // Resume on the first process with Last-Event-ID.
    let mut resumed = Sse::open(app, &owner_a, "", Some(&last_seen)).await;
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let m = resumed
            .next_event(WAIT)
            .await
            .unwrap_or_else(|| panic!("missing events: got {got:?}, expected {expected:?}"));
        got.push(checked(&m));
    }
    got.extend(resumed.drain(Duration::from_millis(800)).await);
    let got_ids = ids(&got);
    let unique: BTreeSet<String> = got_ids.iter().cloned().collect();
    assert_eq!(unique.len(), got_ids.len(), "a duplicate: {got_ids:?}");
    assert_eq!(unique, expected, "not exactly what was missed");
    assert!(got.iter().all(|e| e["license_id"] != b_extra.as_str()));

    // `?after=` does the same; the header wins over it.
    let mut after = Sse::open(other, &owner_a, &format!("?after={last_seen}"), None).await;
    let mut again = Vec::new();
    while again.len() < expected.len() {
        again.push(checked(
            &after.next_event(WAIT).await.expect("resumed by ?after="),
        ));
    }
    assert_eq!(ids(&again).into_iter().collect::<BTreeSet<_>>(), expected);
    let newest = got.last().unwrap()["id"].as_str().unwrap().to_owned();
    let mut header_wins =
        Sse::open(app, &owner_a, &format!("?after={last_seen}"), Some(&newest)).await;
    assert!(
        header_wins
            .drain(Duration::from_millis(800))
            .await
            .is_empty()
    );

    // Resume points must be the caller's own events.
    let b_event = got_b[0]["id"].as_str().unwrap().to_owned();
    let refused = Sse::request(app, &owner_a, "", Some(&b_event)).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "Last-Event-ID");
    for (query, header, field) in [
        ("?after=nope", None, "after"),
        ("", Some("nope"), "Last-Event-ID"),
        (
            &format!("?after={}", uuid::Uuid::now_v7()) as &str,
            None,
            "after",
        ),
        (
            "?account_id=00000000-0000-0000-0000-000000000000",
            None,
            "account_id",
        ),
        ("?bogus=1", None, "bogus"),
    ] {
        let r = Sse::request(app, &owner_a, query, header).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    // An admin may resume after anyone's event, and filter by account.
    let mut admin_b = Sse::open(
        other,
        &admin,
        &format!("?account_id={b}&after={b_event}"),
        None,
    )
    .await;
    let rest = admin_b
        .until(WAIT, |e| {
            e["type"] == "license.activated" && e["license_id"] == b_extra.as_str()
        })
        .await;
    assert!(rest.iter().all(|e| e["account_id"] == b.as_str()));
    drop((
        stream_b,
        stream_admin,
        only_early,
        resumed,
        after,
        header_wins,
        admin_b,
    ));
    if let Some(second) = second {
        second.finish().await;
    }
}

/// Ten open streams per account (on any process), whatever the rate limit setting; a closed
/// stream frees its slot; idle streams get a comment every 15 s.
async fn streams_are_capped_and_kept_alive(app: &TestApp) {
    let second;
    let other = if app.backend == Backend::Postgres {
        second = Some(app.spawn_second_instance().await);
        second.as_ref().unwrap()
    } else {
        second = None;
        app
    };
    let admin = app.admin_token().await;
    let (_, owner) = app.partner_with_owner(&admin, "Capped").await;
    let (_, neighbour) = app.partner_with_owner(&admin, "Neighbour").await;
    let mut open = Vec::new();
    for n in 0..10 {
        let instance = if n % 2 == 0 { app } else { other };
        open.push(Sse::open(instance, &owner, "", None).await);
    }
    for instance in [app, other] {
        let r = Sse::request(instance, &owner, "", None).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().contains_key("retry-after"));
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "rate_limited");
    }
    // Another account is not affected.
    let neighbours = Sse::open(app, &neighbour, "", None).await;
    // Closing one frees a slot (once the server sees the client gone).
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(40);
    let reopened = loop {
        let r = Sse::request(app, &owner, "", None).await;
        if r.status() == StatusCode::OK {
            break r;
        }
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    drop(reopened);
    // Idle: a comment line every 15 s.
    let stream = &mut open[0];
    let m = stream
        .next(Duration::from_secs(20))
        .await
        .expect("a heartbeat");
    assert_eq!(m.comments, ["keep-alive"], "{m:?}");
    assert!(m.id.is_none());
    drop((open, neighbours));
    if let Some(second) = second {
        second.finish().await;
    }
}

db_test!(streams_across_processes, streams_are_capped_and_kept_alive);

/// The real binary: SIGTERM ends open streams at once, and the process exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_on_sigterm() {
    use std::process::{Command, Stdio};
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        std::path::PathBuf::from,
    );
    let bin = target.join("debug/licentia");
    if !bin.exists() {
        eprintln!(
            "{} is missing: skipping the stream SIGTERM test",
            bin.display()
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("licentia-sse-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("licentia.toml"), "").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(&bin);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LICENTIA_") {
            command.env_remove(key);
        }
    }
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let mut child = command
        .arg("serve")
        .env("LICENTIA_CONFIG", dir.join("licentia.toml"))
        .env(
            "LICENTIA_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("licentia.db").display()),
        )
        .env("LICENTIA_BIND", format!("127.0.0.1:{port}"))
        .env("LICENTIA_ADMIN_EMAIL", licentia_tests::ADMIN_EMAIL)
        .env("LICENTIA_ADMIN_PASSWORD", licentia_tests::ADMIN_PASSWORD)
        .env("LICENTIA_RATE_LIMIT", "off")
        .env("LICENTIA_WORKERS", "2")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login: Value = client
        .post(format!("{base}/v1/auth/token"))
        .json(&json!({"email": licentia_tests::ADMIN_EMAIL, "password": licentia_tests::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let mut response = client
        .get(format!("{base}/v1/events/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with(": stream open"));
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    // The stream ends cleanly (the body is complete), promptly.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match response.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the stream is still open 10 s after SIGTERM");
    assert!(ended.is_ok(), "the stream broke off: {ended:?}");
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(exit.success(), "exit status {exit:?}; log: {log}");
}
