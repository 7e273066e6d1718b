//! A license as stored: identity, ownership, the provisioned fields and its [`Lifecycle`].
use std::collections::BTreeMap;
use std::net::IpAddr;

use time::OffsetDateTime;

use crate::ids::{AccountId, LicenseId, ProductId};
use crate::license::Lifecycle;
use crate::period::Period;

/// A software license.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct License {
    pub id: LicenseId,
    pub account_id: AccountId,
    pub product_id: ProductId,
    pub name: String,
    pub ip: IpAddr,
    /// The current term's length: the order period, then the last renewal's.
    pub period: Period,
    pub lifecycle: Lifecycle,
    /// Quantity per option code, every option of the product present.
    pub options: BTreeMap<String, u32>,
    pub auto_renew: Option<Period>,
    pub registration_key: String,
    pub registrations_count: u32,
    pub provisioning_error: Option<String>,
    pub external_id: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Bumped by every change; the `ETag`.
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The canonical text of an IP address (IPv4-mapped IPv6 addresses are shown as IPv4).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A 16-byte, order-preserving key of an address (IPv4 as IPv4-mapped IPv6), so that a CIDR
/// filter is a range scan on both databases.
pub fn ip_key(ip: IpAddr) -> [u8; 16] {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Registration keys given by a partner: 16..128 characters of `[A-Za-z0-9_-]`.
pub fn valid_registration_key(key: &str) -> bool {
    (16..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_keys_order_and_map() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(ip_key(a) < ip_key(b));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(mapped), ip_key(a));
        assert_eq!(canonical_ip(mapped), a);
    }

    #[test]
    fn registration_keys() {
        assert!(valid_registration_key("abcdefgh_ijkl-mnop"));
        assert!(!valid_registration_key("short"));
        assert!(!valid_registration_key("has spaces in it!!"));
    }
}
