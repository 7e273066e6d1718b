//! The transfer (import) handshake between partners (CONTRACT §6).
//!
//! The sender offers a license with a secret; the receiver accepts with that secret. Only a
//! hash of the secret is stored, and wrong guesses are counted so a pending offer cannot be
//! brute-forced: the fifth wrong secret expires it.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::text_enum::text_enum;

/// Wrong secrets after which a pending transfer becomes `expired`.
pub const MAX_SECRET_ATTEMPTS: u32 = 5;

/// Shortest secret a sender may choose.
pub const MIN_SECRET_CHARS: usize = 12;
/// Longest secret a sender may choose.
pub const MAX_SECRET_CHARS: usize = 256;

text_enum! {
    /// Where a transfer offer stands.
    pub enum TransferStatus("transfer status") {
        /// Offered, awaiting the receiver.
        Pending => "pending",
        /// The receiver took the license.
        Accepted => "accepted",
        /// The receiver declined.
        Rejected => "rejected",
        /// The sender withdrew the offer.
        Cancelled => "cancelled",
        /// Timed out, or too many wrong secrets.
        Expired => "expired",
    }
}

/// The mutable part of a transfer: what the handshake reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferState {
    /// Current status.
    pub status: TransferStatus,
    /// Wrong secrets presented so far.
    pub failed_attempts: u32,
    /// When a pending offer lapses.
    pub expires_at: OffsetDateTime,
}

/// A refused transfer action. The variants that carry a state carry the one to persist: the
/// action failed, but the attempt still changed the transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The transfer is no longer `pending` (409 `invalid_transition`).
    #[error("invalid transition from transfer status `{from}`")]
    InvalidTransition {
        /// The transfer's current status.
        from: TransferStatus,
    },
    /// The offer had lapsed; the state is now `expired`.
    #[error("transfer has expired")]
    Expired(TransferState),
    /// The secret did not match (403 `invalid_secret`); the attempt is counted and may have
    /// expired the offer.
    #[error("invalid transfer secret")]
    InvalidSecret(TransferState),
}

impl TransferState {
    /// A new pending offer that lapses `ttl` after `now`.
    #[must_use]
    pub fn offer(now: OffsetDateTime, ttl: Duration) -> TransferState {
        TransferState {
            status: TransferStatus::Pending,
            failed_attempts: 0,
            // An absurd TTL from config must not panic; never-expiring is the sane reading.
            expires_at: now.checked_add(ttl).unwrap_or(now),
        }
    }

    /// True when a pending offer's time is up at `now`.
    #[must_use]
    pub fn is_lapsed(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }

    /// The receiver accepts. Expiry is checked before the secret, so a lapsed offer never
    /// tells a guesser whether its secret was right.
    pub fn accept(
        self,
        secret_matches: bool,
        now: OffsetDateTime,
    ) -> Result<TransferState, TransferError> {
        self.require_pending()?;
        if self.is_lapsed(now) {
            return Err(TransferError::Expired(self.with(TransferStatus::Expired)));
        }
        if !secret_matches {
            let failed_attempts = self.failed_attempts.saturating_add(1);
            let status = if failed_attempts >= MAX_SECRET_ATTEMPTS {
                TransferStatus::Expired
            } else {
                TransferStatus::Pending
            };
            return Err(TransferError::InvalidSecret(TransferState {
                status,
                failed_attempts,
                ..self
            }));
        }
        Ok(self.with(TransferStatus::Accepted))
    }

    /// The receiver declines: `pending` → `rejected`.
    pub fn reject(self) -> Result<TransferState, TransferError> {
        self.require_pending()?;
        Ok(self.with(TransferStatus::Rejected))
    }

    /// The sender withdraws (also used when the license is deleted): `pending` → `cancelled`.
    pub fn cancel(self) -> Result<TransferState, TransferError> {
        self.require_pending()?;
        Ok(self.with(TransferStatus::Cancelled))
    }

    /// Sweep: a pending offer whose time is up → `expired`.
    pub fn expire(self, now: OffsetDateTime) -> Result<TransferState, TransferError> {
        self.require_pending()?;
        if !self.is_lapsed(now) {
            return Err(TransferError::InvalidTransition { from: self.status });
        }
        Ok(self.with(TransferStatus::Expired))
    }

    fn with(self, status: TransferStatus) -> TransferState {
        TransferState { status, ..self }
    }

    fn require_pending(&self) -> Result<(), TransferError> {
        if self.status == TransferStatus::Pending {
            Ok(())
        } else {
            Err(TransferError::InvalidTransition { from: self.status })
        }
    }
}

/// SHA-256 of the secret's UTF-8 bytes: what is stored instead of the secret. A fast hash is
/// enough because generated secrets carry ≥ 32 random characters and guesses are capped at
/// [`MAX_SECRET_ATTEMPTS`].
#[must_use]
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time. A stored hash of the
/// wrong length never matches.
#[must_use]
pub fn secret_matches(secret: &str, stored_hash: &[u8]) -> bool {
    hash_secret(secret).as_slice().ct_eq(stored_hash).into()
}

/// Checks a sender-chosen secret: 12..=256 characters (Unicode scalar values).
pub fn validate_given_secret(secret: &str) -> Result<(), String> {
    let chars = secret.chars().count();
    if (MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(format!(
            "must be between {MIN_SECRET_CHARS} and {MAX_SECRET_CHARS} characters (got {chars})"
        ))
    }
}

#[cfg(test)]
mod tests;
