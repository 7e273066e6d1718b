//! The SSRF guard for webhook URLs (THREATS #18 (docs/threats.md)). A URL must be absolute `http`/`https`
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
    } else if (a, b, c) == (192, 0, 2) || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113)
    {
        Some("a documentation address")
    } else if a == 198 && (b & 0xfe) == 18 {
        Some("a benchmarking network address")
    } else if (a, b, c) == (192, 88, 99) {
        // The deprecated 6to4 relay anycast prefix (RFC 7526).
        Some("a reserved address")
    } else {
        None
    }
}

/// The IPv4 address in bits `at..at + 32` of `ip`.
fn v4_at(ip: Ipv6Addr, at: u32) -> Ipv4Addr {
    let word = (u128::from(ip) >> (96 - at)) & 0xffff_ffff;
    Ipv4Addr::from(u32::try_from(word).unwrap_or_default())
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    // The forms that carry an IPv4 address and reach it (or claim to) are judged by it.
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4);
    }
    if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if seg[..6] == [0; 6] {
        // ::a.b.c.d, deprecated IPv4-compatible addresses (RFC 4291 §2.5.5.1): nothing
        // public lives there, whatever the IPv4 address.
        Some("an IPv4-compatible address")
    } else if seg[0] == 0x64 && seg[1] == 0xff9b {
        // 64:ff9b::/32 outside the two NAT64 prefixes (handled above) is not allocated.
        Some("a reserved address")
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
    } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        Some("a documentation address")
    } else if seg[0] == 0x3fff && (seg[1] & 0xf000) == 0 {
        // 3fff::/20 (RFC 9637).
        Some("a documentation address")
    } else if seg[0] == 0x2001 && seg[1] == 0x0002 && seg[2] == 0 {
        // 2001:2::/48 (RFC 5180).
        Some("a benchmarking network address")
    } else if seg[0] == 0x2001 && matches!(seg[1] & 0xfff0, 0x0010 | 0x0020) {
        // ORCHID (2001:10::/28) and ORCHIDv2 (2001:20::/28): identifiers, not locators.
        Some("a non-routable identifier address")
    } else if (seg[0] & 0xe000) != 0x2000 {
        // Everything outside global unicast (2000::/3) not named above is reserved
        // (e.g. 5f00::/16, segment routing identifiers).
        Some("a reserved address")
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address stands for, for the forms that embed one:
/// IPv4-mapped `::ffff:0:0/96` and SIIT `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96` and the
/// local-use `64:ff9b:1::/48` (the last 32 bits), and 6to4 `2002::/16` (bits 16..48).
/// Teredo (`2001::/32`) embeds two, the server's (bits 32..64) and the client's (the last 32
/// bits inverted); the one returned is a forbidden one if either is.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let last = v4_at(ip, 96);
    let mapped = seg[..5] == [0; 5] && seg[5] == 0xffff;
    let translated = seg[..4] == [0; 4] && seg[4] == 0xffff && seg[5] == 0;
    let nat64 = seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4];
    let nat64_local = seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 0x0001;
    if mapped || translated || nat64 || nat64_local {
        Some(last)
    } else if seg[0] == 0x2002 {
        Some(v4_at(ip, 16))
    } else if seg[0] == 0x2001 && seg[1] == 0 {
        let server = v4_at(ip, 32);
        let client = Ipv4Addr::from(!u32::from(last));
        Some(if forbidden_v4(server).is_some() {
            server
        } else {
            client
        })
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
    fn documentation_benchmarking_and_reserved_ranges_are_refused() {
        for raw in [
            "http://192.0.2.1/",
            "http://198.51.100.7/",
            "http://203.0.113.9/",
            "http://198.18.0.1/",
            "http://198.19.255.254/",
            "http://192.0.0.8/",
            "http://192.88.99.1/",
            "http://240.0.0.1/",
            "http://[2001:db8::1]/",
            "http://[2001:db8:ffff::1]/",
            "http://[3fff::1]/",
            "http://[3fff:fff::1]/",
            "http://[2001:2::1]/",
            "http://[2001:10::1]/",
            "http://[2001:20::1]/",
            "http://[100::1]/",
            "http://[5f00::1]/",
            "http://[fec0::1]/",
            "http://[64:ff9b:2::1]/",
            "http://[4000::1]/",
        ] {
            assert!(refused_literal(raw), "{raw} should be refused");
        }
        // Just outside the ranges.
        for raw in [
            "http://192.0.3.1/",
            "http://198.20.0.1/",
            "http://203.0.114.1/",
            "http://[2001:db9::1]/",
            "http://[3fff:1000::1]/",
            "http://[2001:3::1]/",
        ] {
            assert!(!refused_literal(raw), "{raw} should pass");
        }
    }

    #[test]
    fn nat64_is_judged_by_the_embedded_address() {
        // 64:ff9b::/96 (RFC 6052) and the local-use 64:ff9b:1::/48 (RFC 8215).
        for raw in [
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b::10.0.0.1]/",
            "http://[64:ff9b:1::7f00:1]/",
            "http://[64:ff9b:1::169.254.169.254]/",
            "http://[64:ff9b:1:ffff::192.168.0.1]/",
            "http://[64:ff9b:1::c000:201]/",
        ] {
            assert!(refused_literal(raw), "{raw} should be refused");
        }
        for raw in ["http://[64:ff9b::8.8.8.8]/", "http://[64:ff9b:1::808:808]/"] {
            assert!(!refused_literal(raw), "{raw} should pass");
        }
    }

    #[test]
    fn six_to_four_is_judged_by_the_embedded_address() {
        // 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16..48.
        for raw in [
            "http://[2002:7f00:1::]/",
            "http://[2002:7f00:1::1]/",
            "http://[2002:a9fe:a9fe::]/",
            "http://[2002:a00:1:5::1]/",
            "http://[2002:c0a8:101::1]/",
            "http://[2002:6440:1::1]/",
            "http://[2002:0:0::1]/",
            "http://[2002:cb00:7101::1]/",
        ] {
            assert!(refused_literal(raw), "{raw} should be refused");
        }
        assert!(!refused_literal("http://[2002:808:808::1]/"));
    }

    #[test]
    fn teredo_is_judged_by_both_embedded_addresses() {
        // 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC, the client inverted.
        // Server 65.54.227.120 (public), client 127.0.0.1.
        assert!(refused_literal(
            "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/"
        ));
        // Server 65.54.227.120, client 169.254.169.254.
        assert!(refused_literal(
            "http://[2001:0:4136:e378:8000:63bf:5601:5601]/"
        ));
        // Server 10.0.0.1 (private), client 8.8.8.8.
        assert!(refused_literal("http://[2001:0:a00:1:0:0:f7f7:f7f7]/"));
        // Server 127.0.0.1, client 8.8.8.8.
        assert!(refused_literal("http://[2001:0:7f00:1::f7f7:f7f7]/"));
        // Both public.
        assert!(!refused_literal(
            "http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/"
        ));
    }

    #[test]
    fn mapped_translated_and_compatible_forms_are_judged_by_the_ipv4_address() {
        for raw in [
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[::ffff:192.0.2.1]/",
            "http://[::ffff:0.0.0.0]/",
            // SIIT ::ffff:0:a.b.c.d (RFC 2765).
            "http://[::ffff:0:7f00:1]/",
            "http://[::ffff:0:a9fe:a9fe]/",
            // IPv4-compatible ::a.b.c.d is deprecated: refused whatever it embeds.
            "http://[::7f00:1]/",
            "http://[::a9fe:a9fe]/",
            "http://[::8.8.8.8]/",
        ] {
            assert!(refused_literal(raw), "{raw} should be refused");
        }
        for raw in ["http://[::ffff:808:808]/", "http://[::ffff:0:808:808]/"] {
            assert!(!refused_literal(raw), "{raw} should pass");
        }
    }

    #[tokio::test]
    async fn listed_hosts_stay_allowed_whatever_they_embed() {
        let allowed = vec!["2002:7f00:1::".to_owned(), "[64:ff9b:1::7f00:1]".to_owned()];
        for raw in [
            "http://[2002:7f00:1::]:9000/",
            "http://[64:ff9b:1::7f00:1]/",
        ] {
            let url = parse(raw).unwrap_or_else(|e| panic!("{e}"));
            assert!(resolve(&url, &allowed).await.is_ok(), "{raw}");
            assert!(resolve(&url, &[]).await.is_err(), "{raw}");
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
