//! Accounts (the provider and its partners) and their users.
use time::OffsetDateTime;

use crate::auth::{AccountKind, Role};
use crate::ids::{AccountId, UserId};
use crate::money::Currency;
use crate::text_enum::text_enum;

text_enum! {
    /// Why money moved on an account's ledger.
    pub enum LedgerKind("ledger kind") {
        /// Money added by the provider (a top-up).
        Credit => "credit",
        /// Money spent on an order; the only negative kind.
        Charge => "charge",
        /// Money given back for a cancelled purchase.
        Refund => "refund",
    }
}

/// A tenant: the provider itself or one partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub kind: AccountKind,
    pub name: String,
    pub currency: Currency,
    /// Minor units; always the sum of the account's ledger.
    pub balance: i64,
    /// How far below zero the balance may go, in minor units (≥ 0).
    pub credit_limit: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Account {
    /// What the account can still spend: balance plus credit, saturating rather than wrapping.
    pub fn available(&self) -> i64 {
        self.balance.saturating_add(self.credit_limit)
    }
}

/// A person who logs in; belongs to exactly one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub account_id: AccountId,
    /// Stored lower-cased so that look-ups are case-insensitive.
    pub email: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
}

/// Normalises an e-mail address for storage and look-up.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}
