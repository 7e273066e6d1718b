//! The public keys that verify signed answers and license files, and their rotation.
//!
//! Rotation is `POST /v1/signing-keys/rotate` (provider admins): a new key becomes current and
//! the old one is retired but stays listed, so everything it signed still verifies. The
//! rotating process signs with the new key at once; the others switch within
//! [`crate::keyring::REFRESH_EVERY`].
use actix_web::{HttpResponse, get, post, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use licentia_domain::event::EventType;
use licentia_domain::signing::ALGORITHM;
use licentia_persistence::PersistenceError;
use licentia_persistence::repo::events::{self, NewEvent};
use licentia_persistence::repo::signing_keys::{self, StoredKey};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::accounts::ListQuery;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::keyring;
use crate::pagination::{CursorKey, Page, parse_limit};
use crate::state::AppState;

/// The key that signs now.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyOut {
    /// Always `Ed25519`.
    #[schema(value_type = crate::openapi::types::SigningAlgorithm, example = "Ed25519")]
    pub algorithm: &'static str,
    /// What signed answers and license files name in their `key_id`.
    pub key_id: String,
    /// Standard base64 of the raw 32-byte public key.
    pub public_key: String,
}

/// A signing key, current or retired.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyEntry {
    /// Always `Ed25519`.
    #[schema(value_type = crate::openapi::types::SigningAlgorithm, example = "Ed25519")]
    pub algorithm: &'static str,
    pub key_id: String,
    /// Standard base64 of the raw 32-byte public key.
    pub public_key: String,
    /// `current` (signs now) or `retired` (still verifies what it signed).
    #[schema(value_type = crate::openapi::types::SigningKeyStatus)]
    pub status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub retired_at: Option<OffsetDateTime>,
}

impl From<StoredKey> for SigningKeyEntry {
    fn from(k: StoredKey) -> Self {
        Self {
            algorithm: ALGORITHM,
            public_key: STANDARD.encode(k.public_key),
            status: if k.current { "current" } else { "retired" },
            key_id: k.key_id,
            created_at: k.created_at,
            retired_at: k.retired_at,
        }
    }
}

/// Get the current signing key
///
/// Public. Verifies the `signature` of `POST /v1/validate` answers and license files signed
/// since the last rotation; older ones name a retired key, see `GET /v1/signing-keys`.
#[utoipa::path(
    operation_id = "get_signing_key",
    tag = "licensed-software",
    responses(
        (status = 200, description = "The current key", body = SigningKeyOut),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    )
)]
#[get("/v1/signing-key")]
pub async fn get_signing_key(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let stored = signing_keys::current(state.db.conn())
        .await?
        .ok_or_else(|| ApiError::internal("no current signing key".into()))?;
    if stored.key_id != state.signing.current().key_id() {
        // Another process rotated: catch up now rather than at the next periodic check.
        state.signing.refresh_in_background();
    }
    Ok(HttpResponse::Ok().json(SigningKeyOut {
        algorithm: ALGORITHM,
        key_id: stored.key_id,
        public_key: STANDARD.encode(stored.public_key),
    }))
}

/// List signing keys
///
/// Public. The current key first, then retired keys from the most recent; every key that
/// ever signed is here, so any signed answer or license file can be verified by its `key_id`.
#[utoipa::path(
    operation_id = "list_signing_keys",
    tag = "licensed-software",
    params(ListQuery),
    responses(
        (status = 200, description = "Current and retired keys", body = Page<SigningKeyEntry>),
        (status = 422, response = crate::openapi::Unprocessable),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    )
)]
#[get("/v1/signing-keys")]
pub async fn list_signing_keys(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    const SCOPE: &str = "public|signing-keys";
    let limit = parse_limit(query.limit.as_deref()).map_err(|e| ApiError::validation(vec![e]))?;
    let after = match &query.cursor {
        Some(c) => state.cursors.decode(SCOPE, c)?.value,
        None => None,
    };
    // A handful of keys (one per rotation): paged in memory, in the listing's order.
    let keys = signing_keys::list(state.db.conn()).await?;
    let start = match after {
        Some(key_id) => keys
            .iter()
            .position(|k| k.key_id == key_id)
            .map_or(keys.len(), |i| i + 1),
        None => 0,
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut items: Vec<StoredKey> = keys.into_iter().skip(start).take(limit + 1).collect();
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|k| {
            state.cursors.encode(
                SCOPE,
                &CursorKey {
                    id: uuid::Uuid::nil(),
                    value: Some(k.key_id.clone()),
                },
            )
        })
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page {
        items: items.into_iter().map(SigningKeyEntry::from).collect(),
        next_cursor,
    }))
}

/// Rotate the signing key
///
/// Provider admins only. Generates a new key that signs from now on; the previous key is
/// retired and stays listed for verification. Other server processes switch within 30 s.
#[utoipa::path(
    operation_id = "rotate_signing_key",
    tag = "licensed-software",
    responses(
        (status = 200, description = "The new current key", body = SigningKeyEntry),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/signing-keys/rotate")]
pub async fn rotate_signing_key(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let internal =
        |e: keyring::KeyringError| ApiError::internal_from("rotating the signing key", e);
    // A rotation that raced another one and lost (unique current key) simply runs again.
    let mut attempt = 0;
    let (pair, retired) = loop {
        attempt += 1;
        let (pair, new) = keyring::generate(state.signing.encryption_key()).map_err(internal)?;
        let txn = state.db.begin().await?;
        let retired = match signing_keys::rotate(&txn, new).await {
            Err(PersistenceError::Unique(_)) if attempt < 3 => continue,
            other => other?,
        };
        events::record(
            &txn,
            NewEvent {
                event_type: EventType::SigningKeyRotated,
                account_id: principal.account_id(),
                license_id: None,
                actor: principal.actor(),
                before: Some(serde_json::json!({"key_id": retired})),
                after: Some(serde_json::json!({"key_id": pair.key_id()})),
            },
        )
        .await?;
        match txn.commit().await.map_err(PersistenceError::from) {
            Err(PersistenceError::Unique(_)) if attempt < 3 => continue,
            other => other?,
        }
        break (pair, retired);
    };
    tracing::info!(key_id = %pair.key_id(), retired = ?retired, "signing key rotated");
    let key_id = pair.key_id().to_owned();
    state.signing.install(pair);
    let entry = signing_keys::list(state.db.conn())
        .await?
        .into_iter()
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| ApiError::internal("the rotated key is not stored".into()))?;
    Ok(HttpResponse::Ok().json(SigningKeyEntry::from(entry)))
}
