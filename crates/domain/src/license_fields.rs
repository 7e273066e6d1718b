//! The fields a partner writes on a license, parsed once at the edge: a value of these types is
//! valid by construction, so the use cases never check a name, an address or metadata again.
//! Each `parse` answers the message for the field when the input is not acceptable.
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::license_record::{canonical_ip, valid_registration_key};

/// A license's display name: trimmed, 1..200 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicenseName(String);

impl LicenseName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > Self::MAX_CHARS {
            return Err("must be 1..200 characters");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The address a license is bound to, in canonical form (an IPv4-mapped IPv6 address is its
/// IPv4 address).
pub fn parse_ip(raw: &str) -> Result<IpAddr, &'static str> {
    raw.parse::<IpAddr>()
        .map(canonical_ip)
        .map_err(|_| "must be an IPv4 or IPv6 address")
}

/// The partner's billing reference: 1..128 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalId(String);

impl ExternalId {
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.chars().count() > 128 {
            return Err("must be 1..128 characters");
        }
        Ok(Self(raw))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A license's administrator password as given (at most 256 characters); stored encrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminPasswordText(String);

impl AdminPasswordText {
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        if raw.chars().count() > 256 {
            return Err("at most 256 characters");
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminPasswordText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminPasswordText([redacted])")
    }
}

/// A new registration key: a fresh random one, or one the partner chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChoice {
    Rotate,
    Chosen(String),
}

impl KeyChoice {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw {
            "rotate" => Ok(Self::Rotate),
            key if valid_registration_key(key) => Ok(Self::Chosen(key.to_owned())),
            _ => Err("must be \"rotate\" or 16..128 characters of A-Z a-z 0-9 _ -"),
        }
    }
}

/// A license's metadata: at most 16 keys of 1..64 characters, values of at most 512.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// The metadata, or every problem with it as `(field, message)` (the field is
    /// `metadata` or `metadata.<key>`).
    pub fn parse(raw: BTreeMap<String, String>) -> Result<Self, Vec<(String, &'static str)>> {
        let mut errors = Vec::new();
        if raw.len() > 16 {
            errors.push(("metadata".to_owned(), "at most 16 keys"));
        }
        for (k, v) in &raw {
            if k.is_empty() || k.chars().count() > 64 {
                errors.push((format!("metadata.{k}"), "keys are 1..64 characters"));
            }
            if v.chars().count() > 512 {
                errors.push((format!("metadata.{k}"), "values are at most 512 characters"));
            }
        }
        if errors.is_empty() {
            Ok(Self(raw))
        } else {
            Err(errors)
        }
    }

    pub fn into_inner(self) -> BTreeMap<String, String> {
        self.0
    }
}

/// Option quantities as ordered: each a non-negative integer.
pub fn parse_quantities(
    raw: &BTreeMap<String, i64>,
) -> Result<BTreeMap<String, u32>, Vec<(String, &'static str)>> {
    let mut errors = Vec::new();
    let mut options = BTreeMap::new();
    for (code, qty) in raw {
        match u32::try_from(*qty) {
            Ok(q) => {
                options.insert(code.clone(), q);
            }
            Err(_) => errors.push((format!("options.{code}"), "must be a non-negative integer")),
        }
    }
    if errors.is_empty() {
        Ok(options)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            LicenseName::parse("  shop  ").map(LicenseName::into_inner),
            Ok("shop".to_owned())
        );
        assert!(LicenseName::parse("   ").is_err());
        assert!(LicenseName::parse(&"é".repeat(200)).is_ok());
        assert!(LicenseName::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn addresses_are_canonical() {
        assert_eq!(parse_ip("::ffff:192.0.2.1"), parse_ip("192.0.2.1"));
        assert!(parse_ip("192.0.2.300").is_err());
    }

    #[test]
    fn keys_rotate_or_are_chosen() {
        assert_eq!(KeyChoice::parse("rotate"), Ok(KeyChoice::Rotate));
        assert!(KeyChoice::parse("short").is_err());
        assert!(matches!(
            KeyChoice::parse("ABCDEFGHIJ_klmnop-1"),
            Ok(KeyChoice::Chosen(_))
        ));
    }

    #[test]
    fn metadata_reports_every_bad_entry() {
        let mut raw: BTreeMap<String, String> =
            (0..17).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        raw.insert(String::new(), "x".repeat(513));
        let errors = Metadata::parse(raw).unwrap_err();
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn quantities_are_non_negative() {
        let raw = BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), -1)]);
        assert_eq!(parse_quantities(&raw).unwrap_err()[0].0, "options.b");
    }
}
