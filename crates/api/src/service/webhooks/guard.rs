//! The SSRF guard for webhook URLs (THREATS.md #18). A URL must be absolute `http`/`https`
//! with a host and no credentials, and every address its host is or resolves to must be a
//! public unicast address — unless the host is listed exactly in
//! `LICENTIA_WEBHOOK_ALLOWED_HOSTS`. The check runs at registration and again at every
//! delivery, whose connection is then pinned to the addresses checked (no DNS rebinding).
//!
//! Numeric host forms (`0x7f000001`, `2130706433`, `127.1`, `0177.0.0.1`) need no special
//! case: the WHATWG URL parser turns them into the IPv4 address they mean.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use url::Host;

/// The longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2048;

/// How long a host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Parses a webhook URL: absolute, `http` or `https`, with a host and without credentials.
/// The error says what is wrong, phrased to follow "url ".
pub fn parse(raw: &str) -> Result<Url, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw.trim()).map_err(|e| format!("is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "has the scheme {}; only http and https are allowed",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not carry credentials; receivers authenticate deliveries by their signature"
                .into(),
        );
    }
    Ok(url)
}

/// Why the service must not connect to `ip`, or `None` for a public unicast address.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("a cloud metadata address")
    } else if a == 0 {
        Some("an unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if a == 100 && (b & 0xc0) == 64 {
        Some("a shared (CGNAT) address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if a >= 240 {
        Some("a reserved or broadcast address")
    } else if a == 192 && b == 0 && c == 0 {
        Some("an IETF protocol address")
    } else if a == 198 && (b & 0xfe) == 18 {
        Some("a benchmarking network address")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // ::ffff:a.b.c.d is the IPv4 address itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let seg = ip.segments();
    let [e0, e1] = seg[6].to_be_bytes();
    let [e2, e3] = seg[7].to_be_bytes();
    let embedded = Ipv4Addr::new(e0, e1, e2, e3);
    if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if seg[..6] == [0; 6] {
        // ::a.b.c.d, deprecated IPv4-compatible addresses: nothing public lives there.
        Some("an IPv4-compatible address")
    } else if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4] {
        // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
        forbidden_v4(embedded)
    } else if (seg[0] & 0xfe00) == 0xfc00 {
        Some("a unique local (private) address")
    } else if (seg[0] & 0xffc0) == 0xfe80 {
        Some("a link-local address")
    } else if (seg[0] & 0xffc0) == 0xfec0 {
        Some("a site-local address")
    } else if (seg[0] & 0xff00) == 0xff00 {
        Some("a multicast address")
    } else if seg[0] == 0x0100 && seg[1..4] == [0; 3] {
        Some("a discard-only address")
    } else {
        None
    }
}

/// The URL's host as an allow-list entry is written: a lower-case name, or an IP literal
/// (IPv6 without brackets).
fn host_key(host: &Host<&str>) -> String {
    match host {
        Host::Domain(name) => name.trim_end_matches('.').to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    }
}

/// Whether the URL's host is listed, exactly, in `allowed` (lower-case entries).
pub fn is_allowed(url: &Url, allowed: &[String]) -> bool {
    let Some(host) = url.host() else {
        return false;
    };
    let key = host_key(&host);
    allowed
        .iter()
        .any(|entry| entry.trim_start_matches('[').trim_end_matches(']') == key)
}

/// Resolves the URL's host (with tokio's resolver) and checks every address; the addresses
/// come back for the connection to be pinned to them. A host name with one forbidden address
/// among public ones is refused as a whole.
pub async fn resolve(url: &Url, allowed: &[String]) -> Result<Vec<SocketAddr>, String> {
    let host = url.host().ok_or_else(|| "has no host".to_owned())?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "has no port".to_owned())?;
    let addrs: Vec<SocketAddr> = match host {
        Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Host::Domain(name) => {
            let found =
                tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port)))
                    .await
                    .map_err(|_| format!("has a host ({name}) that did not resolve in time"))?
                    .map_err(|_| format!("has a host ({name}) that does not resolve"))?
                    .collect::<Vec<_>>();
            if found.is_empty() {
                return Err(format!("has a host ({name}) without addresses"));
            }
            found
        }
    };
    if !is_allowed(url, allowed) {
        for addr in &addrs {
            if let Some(why) = forbidden(addr.ip()) {
                return Err(format!(
                    "points to {why} ({}); webhooks are only delivered to public addresses",
                    addr.ip()
                ));
            }
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_literal(raw: &str) -> bool {
        let url = parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        match url.host() {
            Some(Host::Ipv4(ip)) => forbidden(IpAddr::V4(ip)).is_some(),
            Some(Host::Ipv6(ip)) => forbidden(IpAddr::V6(ip)).is_some(),
            _ => panic!("{raw} is not an IP literal"),
        }
    }

    #[test]
    fn internal_addresses_in_every_spelling_are_refused() {
        for raw in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0.0.0.0/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.1.1/",
            "http://100.64.0.1/",
            "http://100.127.255.255/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::10.0.0.1]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[fe80::1]/",
            "http://[ff02::1]/",
        ] {
            assert!(refused_literal(raw), "{raw} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for raw in [
            "https://8.8.8.8/hook",
            "http://172.32.0.1/",
            "http://100.128.0.1/",
            "http://[2001:4860:4860::8888]/",
            "http://[64:ff9b::8.8.8.8]/",
            "http://[::ffff:8.8.8.8]/",
        ] {
            assert!(!refused_literal(raw), "{raw} should pass");
        }
    }

    #[test]
    fn only_http_urls_with_a_host_and_no_credentials() {
        for raw in [
            "file:///etc/passwd",
            "gopher://example.com/",
            "ftp://example.com/",
            "javascript:alert(1)",
            "/relative/path",
            "http://user:pass@example.com/",
            "http://user@example.com/",
            "",
        ] {
            assert!(parse(raw).is_err(), "{raw} should be refused");
        }
        assert!(parse(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
        assert!(parse("https://example.com:8443/hooks?x=1").is_ok());
    }

    #[test]
    fn the_allow_list_matches_hosts_exactly() {
        let allowed = vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "hooks.local".into(),
        ];
        let ok = |raw: &str| is_allowed(&parse(raw).unwrap_or_else(|e| panic!("{e}")), &allowed);
        assert!(ok("http://127.0.0.1:9000/"));
        // The same address spelled otherwise is the same host once parsed.
        assert!(ok("http://0x7f000001:9000/"));
        assert!(ok("http://[::1]/"));
        assert!(ok("http://HOOKS.local/"));
        assert!(!ok("http://127.0.0.2/"));
        assert!(!ok("http://sub.hooks.local/"));
        assert!(!ok("http://localhost/"));
    }

    #[tokio::test]
    async fn names_are_checked_by_what_they_resolve_to() {
        let url = parse("http://localhost:1/").unwrap_or_else(|e| panic!("{e}"));
        let refused = resolve(&url, &[]).await;
        assert!(refused.is_err(), "{refused:?}");
        let allowed = resolve(&url, &["localhost".to_owned()]).await;
        assert!(allowed.is_ok_and(|a| a.iter().all(|s| s.port() == 1)));
    }
}
