//! Reads that may be served by the read replica (CONTRACT §10): what the licensed software
//! asks for. Each goes where [`licentia_persistence::Db::lookup`] says, and is retried once on
//! [`licentia_persistence::Db::lookup_fallback`]: with a replica, the other server, when one
//! turns out to be unreachable before the next probe notices, so a validation fails only when
//! neither the primary nor the replica answers; without one, the primary's pinged pool, when
//! the unpinged look-up connection had died.
use licentia_domain::ids::ProductId;
use licentia_persistence::PersistenceError;
use licentia_persistence::repo::registrations::{self, ValidationView};

use crate::error::ApiResult;
use crate::state::AppState;

/// The license (and the fingerprint's registration) that a registration key names: on the
/// primary's hot-path pool without a replica ([`licentia_persistence::hot`]).
pub async fn validation_view(
    state: &AppState,
    key: &str,
    key_hash: &str,
    fingerprint: Option<&str>,
) -> ApiResult<Option<ValidationView>> {
    let first = match state.db.hot_lookup() {
        Some(hot) => registrations::validation_view_hot(hot, key, key_hash, fingerprint).await,
        None => registrations::validation_view(state.db.lookup(), key, key_hash, fingerprint).await,
    };
    match (first, state.db.lookup_fallback()) {
        (Err(PersistenceError::Unavailable(_)), Some(other)) => {
            Ok(registrations::validation_view(other, key, key_hash, fingerprint).await?)
        }
        (result, _) => Ok(result?),
    }
}

/// A product's code (cached after the first read).
pub async fn product_code(state: &AppState, product: ProductId) -> ApiResult<String> {
    match state.product_codes.code(state.db.lookup(), product).await {
        Err(e) if state.db.lookup_fallback().is_some() => {
            tracing::debug!(error = ?e, "product code from the other server");
            let other = state.db.lookup_fallback().unwrap_or(state.db.conn());
            state.product_codes.code(other, product).await
        }
        other => other,
    }
}
