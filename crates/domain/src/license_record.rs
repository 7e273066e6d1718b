//! A license as stored: identity, ownership, the provisioned fields and its [`Lifecycle`].
use std::collections::BTreeMap;
use std::net::IpAddr;

use time::OffsetDateTime;

use crate::ids::{AccountId, LicenseId, ProductId};
use crate::license::Lifecycle;
use crate::period::Period;
use crate::text_enum::text_enum;

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
    /// A free trial (CONTRACT §12): no charge for its term; it converts to a paid license
    /// with its first paid renewal.
    pub trial: bool,
    /// Why it was disabled: kept while it stays suspended by that disable, cleared otherwise
    /// ([`License::drop_stale_annotations`]).
    pub suspension: Annotation,
    /// Why it was deleted (set by a delete; deletion is final).
    pub deletion: Annotation,
    /// Bumped by every change; the `ETag`.
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When the licensed software last validated the license's key (null until then). Usage,
    /// not state: written only by the usage flush, never by a save of the license.
    pub last_validated_at: Option<OffsetDateTime>,
}

text_enum! {
    /// Why a partner or an admin disabled or deleted a license (CONTRACT §12).
    pub enum Cause("cause") {
        /// The end customer asked for it.
        CustomerRequest => "customer_request",
        /// The end customer did not pay.
        NonPayment => "non_payment",
        /// Fraud, spam or another abuse of the license.
        Abuse => "abuse",
        /// Anything else; the note says what.
        Other => "other",
    }
}

/// The longest note a disable or delete may carry, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// The cause and note given with a disable or a delete; both optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotation {
    pub cause: Option<Cause>,
    pub note: Option<String>,
}

impl License {
    /// Forgets the disable's cause and note once the license is no longer suspended by that
    /// disable: an enable, a suspension for expiry, a deletion. They stay while it is
    /// `suspended` (`manual`/`admin`), also through a modification that returns there.
    pub fn drop_stale_annotations(&mut self) {
        use crate::license::{LicenseStatus, SuspensionReason};
        let lc = &self.lifecycle;
        let suspended_by_disable = |reason: Option<SuspensionReason>| {
            matches!(
                reason,
                Some(SuspensionReason::Manual | SuspensionReason::Admin)
            )
        };
        let keep = match lc.status {
            LicenseStatus::Suspended => suspended_by_disable(lc.suspension_reason),
            LicenseStatus::InProgress => lc.resumes_to.is_some_and(|s| {
                s.status == LicenseStatus::Suspended && suspended_by_disable(s.reason)
            }),
            _ => false,
        };
        if !keep {
            self.suspension = Annotation::default();
        }
    }
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
    fn causes_parse_and_stale_annotations_go() {
        use crate::license::{Lifecycle, SuspensionReason};
        assert_eq!("non_payment".parse::<Cause>(), Ok(Cause::NonPayment));
        assert!("fraud".parse::<Cause>().is_err());
        let note = Annotation {
            cause: Some(Cause::Abuse),
            note: Some("spam".into()),
        };
        let suspended = Lifecycle {
            status: crate::license::LicenseStatus::Active,
            suspension_reason: None,
            valid_until: Some(time::macros::datetime!(2030-01-01 0:00 UTC)),
            came_from: None,
            resumes_to: None,
        }
        .disable(crate::license::Actor::Partner)
        .unwrap();
        let keeps = |lifecycle: Lifecycle| {
            let mut l = sample(lifecycle);
            l.suspension = note.clone();
            l.drop_stale_annotations();
            l.suspension == note
        };
        assert!(keeps(suspended.clone()));
        // A modification of the suspended license returns to the suspension: kept.
        assert!(keeps(suspended.clone().begin_modification().unwrap()));
        // Enabled, expired, deleted: gone.
        let now = time::macros::datetime!(2029-01-01 0:00 UTC);
        assert!(!keeps(
            suspended
                .clone()
                .enable(crate::license::Actor::Partner, now)
                .unwrap()
        ));
        let expired = suspended
            .clone()
            .expire(time::macros::datetime!(2031-01-01 0:00 UTC))
            .unwrap();
        assert_eq!(expired.suspension_reason, Some(SuspensionReason::Expired));
        assert!(!keeps(expired));
        assert!(!keeps(suspended.delete().unwrap()));
    }

    fn sample(lifecycle: crate::license::Lifecycle) -> License {
        let now = time::macros::datetime!(2028-01-01 0:00 UTC);
        License {
            id: LicenseId::new(),
            account_id: AccountId::new(),
            product_id: ProductId::new(),
            name: "x".into(),
            ip: "192.0.2.1".parse().unwrap(),
            period: Period::M1,
            lifecycle,
            options: BTreeMap::new(),
            auto_renew: None,
            registration_key: "k".repeat(16),
            registrations_count: 0,
            provisioning_error: None,
            external_id: None,
            metadata: BTreeMap::new(),
            trial: false,
            suspension: Annotation::default(),
            deletion: Annotation::default(),
            version: 1,
            created_at: now,
            updated_at: now,
            last_validated_at: None,
        }
    }

    #[test]
    fn registration_keys() {
        assert!(valid_registration_key("abcdefgh_ijkl-mnop"));
        assert!(!valid_registration_key("short"));
        assert!(!valid_registration_key("has spaces in it!!"));
    }
}
