//! Rate limits on transfer accept attempts (CONTRACT §9: at least 20 a minute per receiving
//! account), checked before any database work of the attempt, with governor's GCRA through
//! [`KeyedLimiter`]: per receiving account, and per transfer.
//!
//! The limits live in the process. Several processes multiply what one caller may send, but
//! brute force stays out of reach anyway: the fifth wrong secret expires the offer (counted in
//! the database), and this limit only keeps one caller from hammering the service.
use std::num::NonZeroU32;
use std::sync::LazyLock;

use actix_web::HttpResponse;
use licentia_domain::ids::{AccountId, TransferId};

use crate::keyed_limit::KeyedLimiter;

/// Accept attempts allowed per minute, per receiving account and per transfer (in a burst or
/// spread out).
pub const ACCEPTS_PER_MINUTE: NonZeroU32 = match NonZeroU32::new(20) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

static PER_ACCOUNT: LazyLock<KeyedLimiter<AccountId>> =
    LazyLock::new(|| KeyedLimiter::per_minute(ACCEPTS_PER_MINUTE));
static PER_TRANSFER: LazyLock<KeyedLimiter<TransferId>> =
    LazyLock::new(|| KeyedLimiter::per_minute(ACCEPTS_PER_MINUTE));

/// Counts an accept attempt by `account` on `transfer`: `None` when allowed, else the 429
/// `rate_limited` answer (with `Retry-After` and the `RateLimit-*` headers).
pub fn check_accept(account: AccountId, transfer: TransferId) -> Option<HttpResponse> {
    PER_ACCOUNT
        .check(&account)
        .refusal()
        .or_else(|| PER_TRANSFER.check(&transfer).refusal())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(answer: Option<HttpResponse>) -> bool {
        answer.is_some_and(|res| {
            res.status().as_u16() == 429 && res.headers().contains_key("retry-after")
        })
    }

    #[test]
    fn twenty_a_minute_per_receiving_account() {
        let account = AccountId::new();
        for _ in 0..ACCEPTS_PER_MINUTE.get() {
            // A new transfer each time: only the account's allowance is spent.
            assert!(check_accept(account, TransferId::new()).is_none());
        }
        assert!(refused(check_accept(account, TransferId::new())));
        // Another receiving account has its own allowance.
        assert!(check_accept(AccountId::new(), TransferId::new()).is_none());
    }

    #[test]
    fn twenty_a_minute_per_transfer() {
        let transfer = TransferId::new();
        for _ in 0..ACCEPTS_PER_MINUTE.get() {
            assert!(check_accept(AccountId::new(), transfer).is_none());
        }
        assert!(refused(check_accept(AccountId::new(), transfer)));
    }
}
