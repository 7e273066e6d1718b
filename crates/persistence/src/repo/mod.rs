//! Repositories: one module per aggregate. Partner-facing reads take the caller's account id,
//! so an unscoped query stands out in review.
pub mod accounts;
pub mod api_keys;
pub mod bulk;
pub mod events;
pub mod idempotency;
pub mod jobs;
pub mod ledger;
pub mod licenses;
pub mod orders;
pub mod products;
pub mod registrations;
pub mod settings;
pub mod signing_keys;
pub mod tokens;
pub mod transfers;
pub mod users;
pub mod webhooks;

/// A keyset page: rows after `after` (exclusive), at most `limit`.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub after: Option<uuid::Uuid>,
    pub limit: u64,
}
