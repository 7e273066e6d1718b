//! Checks made before the pool connects, so that a wrong `LICENTIA_DATABASE_URL` is named in
//! words a newcomer can act on instead of "pool timed out" or SQLite's "unable to open database
//! file".
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use crate::error::PersistenceError;

/// Where a `postgres://` URL points: `host:port` (port 5432 when absent), or `None` for a
/// Unix socket (`host=/run/postgresql` or no host at all).
pub fn postgres_address(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // Several hosts (`h1,h2`): the first is enough to say where we tried.
    let host_port = host_port.split(',').next().unwrap_or("");
    if host_port.is_empty() {
        return None;
    }
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host.to_owned(), after.strip_prefix(':').unwrap_or(""))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p),
            None => (host_port.to_owned(), ""),
        }
    };
    let port = if port.is_empty() {
        5432
    } else {
        port.parse().ok()?
    };
    Some((host, port))
}

/// Fails with the host and port when nothing accepts a TCP connection there.
pub fn reach_postgres(url: &str, timeout: Duration) -> Result<(), PersistenceError> {
    let Some((host, port)) = postgres_address(url) else {
        return Ok(());
    };
    let unreachable = |why: String| {
        PersistenceError::Unavailable(format!(
            "cannot reach PostgreSQL at {host}:{port} ({why}); is it running, and is the \
             database URL right?"
        ))
    };
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("the host name does not resolve: {e}")))?
        .collect();
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(unreachable(last))
}

/// The URL to connect with: a PostgreSQL URL on the loopback interface (`127.0.0.1`, `::1`,
/// `localhost`) that does not choose `sslmode` gets `sslmode=disable`. The driver's default
/// (`prefer`) would encrypt traffic that never leaves the kernel: on this path that cost
/// validate about a sixth of its rate. Any other host, and any URL that says `sslmode`, is
/// left as written.
pub fn connect_url(url: &str) -> std::borrow::Cow<'_, str> {
    let loopback = postgres_address(url)
        .is_some_and(|(host, _)| matches!(host.as_str(), "127.0.0.1" | "::1" | "localhost"));
    if !loopback || url.contains("sslmode=") {
        return std::borrow::Cow::Borrowed(url);
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    std::borrow::Cow::Owned(format!("{url}{separator}sslmode=disable"))
}

/// The file a `sqlite:` URL names, or `None` for an in-memory database.
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(path)
}

/// Fails when the folder that should hold the SQLite file does not exist (SQLite would say
/// only "unable to open database file").
pub fn sqlite_folder(url: &str) -> Result<(), PersistenceError> {
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    let folder = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    match folder {
        Some(folder) if !folder.is_dir() => Err(PersistenceError::Unavailable(format!(
            "the folder {} for the SQLite database {path} does not exist; create it first",
            folder.display()
        ))),
        _ if sqlite_mode_given(url) && !url.contains("mode=rwc") && !Path::new(path).exists() => {
            Err(PersistenceError::Unavailable(format!(
                "the SQLite database {path} does not exist; `?mode=rwc` (or no mode) creates it"
            )))
        }
        _ => Ok(()),
    }
}

/// Whether the URL chooses its own open mode (`?mode=ro|rw|rwc|memory`); without one the file
/// is created when missing.
pub fn sqlite_mode_given(url: &str) -> bool {
    url.split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("mode=")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_addresses() {
        let a = |u| postgres_address(u);
        assert_eq!(a("postgres://u:p@db:6543/x"), Some(("db".into(), 6543)));
        assert_eq!(a("postgres://db/x"), Some(("db".into(), 5432)));
        assert_eq!(
            a("postgresql://u@[::1]:5433/x?sslmode=disable"),
            Some(("::1".into(), 5433))
        );
        assert_eq!(a("postgres:///x?host=/run/postgresql"), None);
        assert_eq!(a("postgres://u@h1:1,h2:2/x"), Some(("h1".into(), 1)));
    }

    #[test]
    fn loopback_connects_without_tls_unless_told() {
        assert_eq!(
            connect_url("postgres://u@127.0.0.1:5432/x"),
            "postgres://u@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(
            connect_url("postgres://u@localhost/x?application_name=a"),
            "postgres://u@localhost/x?application_name=a&sslmode=disable"
        );
        assert_eq!(
            connect_url("postgres://u@127.0.0.1/x?sslmode=require"),
            "postgres://u@127.0.0.1/x?sslmode=require"
        );
        assert_eq!(
            connect_url("postgres://u@db.internal/x"),
            "postgres://u@db.internal/x"
        );
        assert_eq!(connect_url("sqlite://l.db"), "sqlite://l.db");
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://data/l.db?mode=rwc"),
            Some("data/l.db")
        );
        assert_eq!(sqlite_path("sqlite:l.db"), Some("l.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert!(sqlite_mode_given("sqlite://l.db?mode=rwc"));
        assert!(!sqlite_mode_given("sqlite://l.db"));
        assert!(sqlite_folder("sqlite://l.db").is_ok());
        let missing = sqlite_folder("sqlite:///nonexistent-licentia-folder/l.db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            missing.contains("the folder /nonexistent-licentia-folder for the SQLite database"),
            "{missing}"
        );
    }

    #[test]
    fn unreachable_postgres_is_named() {
        // A port nothing listens on: bind one, learn it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let url = format!("postgres://u@127.0.0.1:{port}/x");
        let e = reach_postgres(&url, Duration::from_secs(1))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
