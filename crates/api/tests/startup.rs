//! The binary's start-up, as a newcomer meets it: every mistake in the database URL or the
//! listen address ends in one line that names the problem and what to do, with exit code 1
//! (2 for configuration errors), never a pool timeout or a driver's source line.
//!
//! Being an integration test of this package, it also makes `cargo test --workspace` build
//! `target/debug/licentia`, which the fault tests of `licentia-tests` run.
#![allow(
    clippy::unwrap_used,
    reason = "a failed step should fail the test loudly"
)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_licentia");

/// A folder of its own under the system's temporary folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "licentia-startup-{name}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn licentia(dir: &Scratch, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(&dir.0);
    for (k, _) in std::env::vars() {
        if k.starts_with("LICENTIA_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("LICENTIA_ADMIN_PASSWORD", "startup-admin-password")
        .env("LICENTIA_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(dir: &Scratch, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let Output { status, stderr, .. } = licentia(dir, env, args).output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

#[test]
fn a_missing_sqlite_folder_is_named() {
    let dir = Scratch::new("folder");
    let (code, err) = run(
        &dir,
        &[(
            "LICENTIA_DATABASE_URL",
            "sqlite://no-such-folder/licentia.db",
        )],
        &["migrate"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the folder no-such-folder for the SQLite database")
            && err.contains("does not exist; create it first"),
        "{err}"
    );
}

#[test]
fn a_sqlite_url_without_a_mode_creates_the_file() {
    let dir = Scratch::new("create");
    let (code, err) = run(
        &dir,
        &[("LICENTIA_DATABASE_URL", "sqlite://licentia.db")],
        &["migrate"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(dir.0.join("licentia.db").exists());

    let (code, err) = run(
        &dir,
        &[("LICENTIA_DATABASE_URL", "sqlite://other.db?mode=rw")],
        &["migrate"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`?mode=rwc` (or no mode) creates it"), "{err}");
}

#[test]
fn an_admin_password_for_an_existing_admin_is_said_to_be_ignored() {
    let dir = Scratch::new("admin");
    let env = [
        ("LICENTIA_DATABASE_URL", "sqlite://licentia.db"),
        ("LICENTIA_LOG", "warn"),
        ("LICENTIA_LOG_FORMAT", "json"),
    ];
    let said = |out: Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let first = said(licentia(&dir, &env, &["migrate"]).output().unwrap());
    assert!(!first.contains("is ignored"), "{first}");
    let second = said(licentia(&dir, &env, &["migrate"]).output().unwrap());
    assert!(
        second.contains("LICENTIA_ADMIN_PASSWORD is ignored") && second.contains("/v1/me/password"),
        "{second}"
    );
    assert!(
        !second.contains("startup-admin-password"),
        "the password was logged: {second}"
    );
}

#[test]
fn a_short_admin_password_is_refused() {
    let dir = Scratch::new("short");
    let (code, err) = run(
        &dir,
        &[
            ("LICENTIA_DATABASE_URL", "sqlite://licentia.db"),
            ("LICENTIA_ADMIN_PASSWORD", "short-pass"),
        ],
        &["migrate"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("LICENTIA_ADMIN_PASSWORD") && err.contains("at least 12"),
        "{err}"
    );
    assert!(!err.contains("short-pass"), "{err}");
}

#[test]
fn unreachable_postgres_names_host_and_port() {
    let dir = Scratch::new("pg");
    let port = free_port();
    let url = format!("postgres://licentia:secret-password@127.0.0.1:{port}/licentia");
    let (code, err) = run(&dir, &[("LICENTIA_DATABASE_URL", &url)], &["migrate"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot reach PostgreSQL at 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("timed out"), "{err}");
    assert!(
        !err.contains("secret-password"),
        "the URL's password leaked: {err}"
    );
}

#[test]
fn a_port_in_use_is_said_before_the_database_is_touched() {
    let dir = Scratch::new("port");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // The database is unreachable too: the port must be what the process complains about.
    let url = format!("postgres://licentia@127.0.0.1:{}/licentia", free_port());
    let (code, err) = run(
        &dir,
        &[("LICENTIA_DATABASE_URL", &url), ("LICENTIA_BIND", &addr)],
        &["serve"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("LICENTIA_BIND"),
        "{err}"
    );
}

#[test]
fn a_bind_without_a_port_is_a_configuration_error() {
    let dir = Scratch::new("bind");
    let (code, err) = run(&dir, &[("LICENTIA_BIND", "localhost")], &["serve"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("LICENTIA_BIND") && err.contains("host:port"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn serve_listens_on_localhost_and_port() {
    let dir = Scratch::new("localhost");
    let port = free_port();
    let bind = format!("localhost:{port}");
    let mut child = licentia(
        &dir,
        &[
            ("LICENTIA_DATABASE_URL", "sqlite://licentia.db"),
            ("LICENTIA_BIND", &bind),
        ],
        &["serve"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = None;
    while Instant::now() < deadline && answered.is_none() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited early: {status}");
        }
        answered = healthz(port);
        if answered.is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let answer = answered.expect("no answer on 127.0.0.1 within 60 s");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// `GET /healthz` over a raw connection to 127.0.0.1:port; `None` while nothing answers.
fn healthz(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}
