//! Faults (THREATS #21, #22): PostgreSQL going away under load, and SIGTERM under load. Both
//! drive real processes — a private PostgreSQL instance that the test stops and starts, and the
//! built `licentia` binary that the test signals — so each skips, saying why, when what it
//! needs is not there.
mod crash_idempotency;
mod postgres_outage;
mod sigterm;
mod usage_on_stop;

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

/// Says on the terminal why a test did not run. Written to the process's stderr directly, not
/// through `eprintln!`, which the test harness captures and shows only for failures.
fn skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// The debug binary of the workspace, `target/debug/licentia`. `cargo test --workspace` builds
/// it (the `licentia-api` package has an integration test); when only this package is tested
/// and it was never built, the test says so and does not run.
fn licentia_binary(test: &str) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let bin = target.join("debug/licentia");
    if bin.exists() {
        Some(bin)
    } else {
        skip(&format!(
            "{test}: {} is missing; `cargo test --workspace` or `cargo build -p licentia-api` builds it",
            bin.display()
        ));
        None
    }
}

/// A port free at the time of asking.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A client that never waits forever: a request that hangs fails the test instead.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Whether this process runs as root (PostgreSQL refuses to run as root).
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
