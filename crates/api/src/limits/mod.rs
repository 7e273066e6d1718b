//! Every rate limit of the service (CONTRACT §9), off entirely with `LICENTIA_RATE_LIMIT=off`.
//!
//! - [`KeyedLimiter`]s (in-process GCRA) guard the hot and cheap paths without touching the
//!   database: validations and deregistrations per registration key and per client address,
//!   refreshes per token family. Several `licentia serve` processes each count on their own,
//!   so behind a load balancer the effective limit is up to N times the configured one: a
//!   limit that protects the service, not a billing quota.
//! - [`SharedLimit`]s are counted in the database, so every process counts against one
//!   allowance, and an attempt is counted atomically *before* the work it limits: 48 parallel
//!   wrong passwords check at most 5. Failed logins and transfer accepts use them.
//!
//! Both answer with one [`Decision`]: `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` (draft-ietf-httpapi-ratelimit-headers) describe it, and a refusal is a 429
//! `rate_limited` problem with `Retry-After`.
mod keyed;
mod shared;

use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

pub use keyed::KeyedLimiter;
pub use shared::{Attempt, LOGIN_FAILURES, Reservation, SharedLimit, TRANSFER_ACCEPTS};

use crate::error::ApiError;

/// Requests per minute per registration key on `POST /v1/validate` and
/// `POST /v1/deregistrations`.
pub const VALIDATE_PER_KEY_PER_MINUTE: u32 = 600;
/// Requests per minute per client address on `POST /v1/validate` and
/// `POST /v1/deregistrations`.
pub const VALIDATE_PER_IP_PER_MINUTE: u32 = 6_000;
/// Refreshes per minute per token family.
pub const REFRESH_PER_FAMILY_PER_MINUTE: u32 = 30;

/// The outcome of one check, with what the `RateLimit-*` headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        limit: u32,
        /// Requests left right now.
        remaining: u32,
        /// Seconds until the full allowance is back.
        reset_secs: u64,
    },
    Limited {
        limit: u32,
        /// Seconds until the next request may pass (at least 1).
        retry_after_secs: u64,
    },
}

impl Decision {
    /// The `RateLimit-*` headers of this decision.
    pub fn headers(&self) -> [(HeaderName, HeaderValue); 3] {
        let (limit, remaining, reset) = match *self {
            Decision::Allowed {
                limit,
                remaining,
                reset_secs,
            } => (limit, remaining, reset_secs),
            Decision::Limited {
                limit,
                retry_after_secs,
            } => (limit, 0, retry_after_secs),
        };
        [
            (
                HeaderName::from_static("ratelimit-limit"),
                HeaderValue::from(limit),
            ),
            (
                HeaderName::from_static("ratelimit-remaining"),
                HeaderValue::from(remaining),
            ),
            (
                HeaderName::from_static("ratelimit-reset"),
                HeaderValue::from(reset),
            ),
        ]
    }

    /// The 429 problem response for a `Limited` decision; `None` when allowed.
    pub fn refusal(&self) -> Option<HttpResponse> {
        let Decision::Limited {
            retry_after_secs, ..
        } = *self
        else {
            return None;
        };
        let mut res = ApiError::RateLimited {
            retry_after: retry_after_secs,
        }
        .error_response();
        // `ApiError` sets `Retry-After` and part of the `RateLimit-*` set; these complete it.
        for (name, value) in self.headers() {
            res.headers_mut().insert(name, value);
        }
        Some(res)
    }
}

/// The in-process limits of one serving process.
pub struct Limits {
    /// `false` with `LICENTIA_RATE_LIMIT=off`, which turns off the [`SharedLimit`]s as well.
    pub enabled: bool,
    /// `POST /v1/auth/refresh` per token family.
    pub refresh: KeyedLimiter<uuid::Uuid>,
    /// `POST /v1/validate`.
    pub validate: PerClient,
    /// `POST /v1/deregistrations` (its own allowances, as large as validate's).
    pub deregister: PerClient,
}

/// A licensed software's call limited per registration key and per client address.
pub struct PerClient {
    /// Keyed by the registration key's SHA-256.
    pub per_key: KeyedLimiter<[u8; 32]>,
    pub per_ip: KeyedLimiter<IpAddr>,
}

impl PerClient {
    fn new() -> Self {
        Self {
            per_key: KeyedLimiter::per_minute(per_minute(VALIDATE_PER_KEY_PER_MINUTE)),
            per_ip: KeyedLimiter::per_minute(per_minute(VALIDATE_PER_IP_PER_MINUTE)),
        }
    }
}

fn per_minute(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            refresh: KeyedLimiter::per_minute(per_minute(REFRESH_PER_FAMILY_PER_MINUTE)),
            validate: PerClient::new(),
            deregister: PerClient::new(),
        }
    }
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_the_headers() {
        let decision = Decision::Limited {
            limit: 600,
            retry_after_secs: 2,
        };
        let Some(res) = decision.refusal() else {
            panic!("a Limited decision must refuse");
        };
        assert_eq!(res.status().as_u16(), 429);
        let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("retry-after"), Some("2"));
        assert_eq!(header("ratelimit-limit"), Some("600"));
        assert_eq!(header("ratelimit-remaining"), Some("0"));
        assert_eq!(header("ratelimit-reset"), Some("2"));
        assert!(
            Decision::Allowed {
                limit: 1,
                remaining: 0,
                reset_secs: 1
            }
            .refusal()
            .is_none()
        );
    }
}
