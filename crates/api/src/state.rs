//! What every handler shares: the database, the configuration and the keys.
use std::sync::Arc;

use licentia_domain::money::Currency;
use licentia_persistence::Db;

use crate::auth::jwt::JwtKeys;
use crate::clock::Clock;
use crate::config::Config;
use crate::pagination::CursorCodec;

/// Application state, cheap to clone (everything behind `Arc` or a pool handle).
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub jwt: Arc<JwtKeys>,
    pub currency: Currency,
    pub cursors: CursorCodec,
    /// AES-256-GCM key for secrets at rest (e.g. `admin_password`).
    pub encryption_key: Arc<[u8; 32]>,
    /// Applies licenses to the licensed software (the local provisioner by default).
    pub provisioner: Arc<dyn crate::service::provisioning::Provisioner>,
    /// In-process rate limits.
    pub limits: Arc<crate::rate_limit::Limits>,
    /// The Ed25519 key that signs validations and license files, decrypted.
    pub signing: Arc<crate::keyring::Keyring>,
    /// In-process GCRA limits of `POST /v1/validate`.
    pub validate_limits: Arc<crate::keyed_limit::ValidateLimits>,
    /// "Now" for business rules (terms, renewals, expiry); tests inject a manual clock.
    pub clock: Arc<dyn Clock>,
    /// Product codes by id, for answers to the licensed software.
    pub product_codes: Arc<crate::catalog::ProductCodes>,
    /// What wakes live event streams, and their shutdown signal.
    pub events: Arc<crate::service::event_stream::EventHub>,
    /// Validations and machine sightings not yet written (see [`crate::usage`]).
    pub usage: Arc<crate::usage::UsageBuffer>,
    /// In-process GCRA limits of `POST /v1/deregistrations` (the same allowances as validate's).
    pub deregister_limits: Arc<crate::keyed_limit::ValidateLimits>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.db)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
