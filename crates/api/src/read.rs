//! Reads that may be served by the read replica (CONTRACT §10): what the licensed software
//! asks for. Each goes where [`licentia_persistence::Db::read`] says, and is retried once on the
//! other server when that one turns out to be unreachable before the next probe notices, so a
//! validation fails only when neither the primary nor the replica answers.
use licentia_domain::ids::ProductId;
use licentia_persistence::PersistenceError;
use licentia_persistence::repo::registrations::{self, ValidationView};

use crate::error::ApiResult;
use crate::state::AppState;

/// The license (and the fingerprint's registration) that a registration key names.
pub async fn validation_view(
    state: &AppState,
    key: &str,
    key_hash: &str,
    fingerprint: Option<&str>,
) -> ApiResult<Option<ValidationView>> {
    let first = registrations::validation_view(state.db.read(), key, key_hash, fingerprint).await;
    match (first, state.db.read_fallback()) {
        (Err(PersistenceError::Unavailable(_)), Some(other)) => {
            Ok(registrations::validation_view(other, key, key_hash, fingerprint).await?)
        }
        (result, _) => Ok(result?),
    }
}

/// A product's code (cached after the first read).
pub async fn product_code(state: &AppState, product: ProductId) -> ApiResult<String> {
    match state.product_codes.code(state.db.read(), product).await {
        Err(e) if state.db.read_fallback().is_some() => {
            tracing::debug!(error = ?e, "product code from the other server");
            let other = state.db.read_fallback().unwrap_or(state.db.conn());
            state.product_codes.code(other, product).await
        }
        other => other,
    }
}
