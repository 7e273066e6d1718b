//! What every handler shares: the database, the configuration and the keys.
use std::sync::Arc;

use licentia_domain::money::Currency;
use licentia_persistence::Db;

use crate::auth::jwt::JwtKeys;
use crate::config::Config;
use crate::pagination::CursorCodec;

/// Application state, cheap to clone (everything behind `Arc` or a pool handle).
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub jwt: Arc<JwtKeys>,
    pub currency: Currency,
    pub cursors: CursorCodec,
}
