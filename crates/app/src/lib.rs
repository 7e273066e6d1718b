//! Licentia's use cases: what the service does, one module per aggregate and verb, each taking
//! a [`Ctx`] (database, clock, policy), the caller and a command, and answering an outcome or
//! an [`AppError`]. Money rules (CONTRACT §5: pricing, charges, pending items) live here, once.
//!
//! Imports go one way: the API crate calls this crate; this crate calls the persistence and
//! domain crates; nothing here knows HTTP, actix or the API's types.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod caller;
pub mod clock;
pub mod crypto;
pub mod error;
pub mod fulfil;
pub mod licenses;
pub mod orders;
pub mod payment;
pub mod policy;
pub mod provisioner;
pub mod provisioning;
pub mod registrations;
pub mod snapshot;
pub mod sweeps;
pub mod transfers;
pub mod tx;

use std::sync::Arc;

use licentia_domain::money::Currency;
use licentia_persistence::Db;

pub use error::{AppError, AppResult, FieldError};
pub use payment::Payment;
pub use policy::Policy;

/// What every use case runs with; cheap to clone (handles and `Arc`s).
#[derive(Clone)]
pub struct Ctx {
    pub db: Db,
    /// "Now" for business rules (terms, renewals, expiry); tests inject a manual clock.
    pub clock: Arc<dyn clock::Clock>,
    /// The business settings, typed and checked once at start-up.
    pub policy: Arc<Policy>,
    /// The currency of every account, order and price.
    pub currency: Currency,
    /// AES-256-GCM key for secrets at rest (e.g. `admin_password`).
    pub encryption_key: Arc<[u8; 32]>,
    /// Applies licenses to the licensed software (the local provisioner by default).
    pub provisioner: Arc<dyn provisioner::Provisioner>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("db", &self.db)
            .field("policy", &self.policy)
            .field("currency", &self.currency)
            .finish_non_exhaustive()
    }
}
