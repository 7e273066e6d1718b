//! The typed values of [`super::Config`]: each parses (or fails, naming its variable) when the
//! configuration is loaded, so nothing downstream re-reads a string.
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A secret value: its `Debug` never shows it.
#[derive(Clone, Default, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

/// Environment values are parsed as TOML-like scalars, so a secret made only of digits
/// arrives as a number; it is still a string to us.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Int(i64),
            UInt(u64),
            Float(f64),
            Bool(bool),
        }
        Ok(Secret(match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Int(n) => n.to_string(),
            Scalar::UInt(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }))
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `on` or `off` (`LICENTIA_RATE_LIMIT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

/// How log lines are written (`LICENTIA_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The HMAC algorithms access tokens may be signed with (`LICENTIA_JWT_ALGORITHM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
}

impl JwtAlgorithm {
    pub fn algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::HS256 => jsonwebtoken::Algorithm::HS256,
            Self::HS384 => jsonwebtoken::Algorithm::HS384,
            Self::HS512 => jsonwebtoken::Algorithm::HS512,
        }
    }
}

/// The address to listen on (`LICENTIA_BIND`): an IP and port, or a host name and port
/// (`localhost:8080`) resolved when the configuration is loaded, IPv4 first. Kept with the
/// text it was given, which is what it serializes back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    text: String,
    addr: SocketAddr,
}

impl Bind {
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(Self {
            text: text.to_owned(),
            addr: resolve(text)?,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<SocketAddr> for Bind {
    fn from(addr: SocketAddr) -> Self {
        Self {
            text: addr.to_string(),
            addr,
        }
    }
}

impl Serialize for Bind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Bind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Bind::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `host:port` → the address to listen on (an IPv4 one when the name has both).
fn resolve(bind: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = bind.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let not_an_address =
        || format!("is not host:port (e.g. 127.0.0.1:8080 or localhost:8080): {bind:?}");
    if !bind.contains(':') {
        return Err(not_an_address());
    }
    let addrs: Vec<SocketAddr> = bind
        .to_socket_addrs()
        .map_err(|e| format!("{bind:?} does not resolve: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(not_an_address)
}

/// A list given as one comma-separated string (`a, b`), as environment variables give it,
/// or as a TOML array; blank items are dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ListForm", into = "Vec<String>")]
pub struct List(Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum ListForm {
    Text(String),
    Items(Vec<String>),
}

impl From<ListForm> for List {
    fn from(form: ListForm) -> Self {
        match form {
            ListForm::Text(text) => Self::from(text.as_str()),
            ListForm::Items(items) => Self::from(items.join(",").as_str()),
        }
    }
}

impl From<&str> for List {
    fn from(text: &str) -> Self {
        Self(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

impl From<List> for Vec<String> {
    fn from(list: List) -> Self {
        list.0
    }
}

impl List {
    pub fn items(&self) -> &[String] {
        &self.0
    }
}

/// Declares a positive whole number of some unit, as a setting's name says it (`_secs`,
/// `_ms`, `_hours`, `_days`): zero or a negative number fails when the configuration is
/// loaded, naming the variable.
macro_rules! positive_span {
    ($(#[$meta:meta])* $name:ident, $per_unit:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(NonZeroU64);

        impl $name {
            /// `n` of the unit; 0 counts as 1 (the setting is positive).
            pub const fn new(n: u64) -> Self {
                match NonZeroU64::new(n) {
                    Some(n) => Self(n),
                    None => Self(NonZeroU64::MIN),
                }
            }

            /// The number as configured.
            pub const fn get(self) -> u64 {
                self.0.get()
            }

            /// The span (saturating, at about 585 million years).
            pub const fn duration(self) -> Duration {
                Duration::from_millis(self.0.get().saturating_mul($per_unit))
            }
        }
    };
}

positive_span!(
    /// A positive number of milliseconds.
    Millis,
    1
);
positive_span!(
    /// A positive number of seconds.
    Secs,
    1_000
);
positive_span!(
    /// A positive number of hours.
    Hours,
    3_600_000
);
positive_span!(
    /// A positive number of days.
    Days,
    86_400_000
);
