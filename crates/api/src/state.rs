//! What every handler shares: the database, the configuration and the keys.
use std::sync::Arc;

use licentia_app::Ctx;

use crate::config::Config;
use crate::jwt::JwtKeys;
use crate::pagination::CursorCodec;

/// Application state, cheap to clone (everything behind `Arc` or a pool handle).
///
/// It dereferences to the use cases' [`Ctx`] (database, clock, policy, currency, keys,
/// provisioner), which handlers hand to the use cases as it is.
#[derive(Clone)]
pub struct AppState {
    /// What the use cases run with.
    pub ctx: Ctx,
    pub config: Arc<Config>,
    pub jwt: Arc<JwtKeys>,
    pub cursors: CursorCodec,
    /// The rate limits (see [`crate::limits`]).
    pub limits: Arc<crate::limits::Limits>,
    /// The Ed25519 key that signs validations and license files, decrypted.
    pub signing: Arc<crate::keyring::Keyring>,
    /// Product codes by id, for answers to the licensed software.
    pub product_codes: Arc<crate::catalog::ProductCodes>,
    /// What wakes live event streams, and their shutdown signal.
    pub events: Arc<crate::event_stream::EventHub>,
    /// Validations and machine sightings not yet written (see [`crate::usage`]).
    pub usage: Arc<crate::usage::UsageBuffer>,
    /// API keys and products held in memory while the invalidation feed is live.
    pub caches: Arc<crate::cache::Caches>,
    /// License list pages checked against the database per request (see [`crate::pages`]).
    pub pages: Arc<crate::pages::Pages>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("ctx", &self.ctx)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for AppState {
    type Target = Ctx;

    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}
