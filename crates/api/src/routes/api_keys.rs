//! `/v1/api-keys`: an account's keys for partner integrations. The key is shown once, at
//! creation; afterwards only its prefix.
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::ApiKeyId;
use licentia_persistence::repo::api_keys::{self, ApiKey, NewApiKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::ListQuery;
use crate::auth::{Caller, Principal, api_key};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::pagination::{CursorKey, Page, page_of};
use crate::state::AppState;
use licentia_app::crypto;

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, 1..100 characters, not only white space.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]",
        example = "billing sync"
    )]
    pub name: String,
    /// Scopes the key grants (at least one); each must be one the caller holds.
    #[schema(
        value_type = Vec<crate::openapi::types::ScopeName>,
        min_items = 1,
        example = json!(["licenses:read", "licenses:write"])
    )]
    pub scopes: Vec<String>,
    /// When the key stops working; null or absent for never.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = Vec<crate::openapi::types::ScopeName>)]
    pub scopes: Vec<licentia_domain::auth::Scope>,
    /// The key's first characters.
    pub prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Last use, updated at most once a minute.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// A freshly created key: the only time `key` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = Vec<crate::openapi::types::ScopeName>)]
    pub scopes: Vec<licentia_domain::auth::Scope>,
    pub prefix: String,
    /// The key, for `X-API-Key`. Store it now: it is never shown again.
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.as_uuid(),
            name: k.name,
            scopes: k.scopes.clone(),
            prefix: k.prefix,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// Create an API key
///
/// Keys belong to the caller's account and grant at most the caller's scopes.
#[utoipa::path(
    operation_id = "create_api_key",
    tag = "api-keys",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created; `key` is shown only here", body = CreatedApiKey),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: crate::extract::Json<CreateApiKey>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::AccountAdmin)?;
    let body = body.into_inner()?;
    // No key outlives the key that created it: that would be authority its creator does not
    // hold (CONTRACT §2). Absent, the expiry is the creator's; later, 422.
    let creator_expiry = creating_key_expiry(&state, &req, &principal).await?;
    let expires_at = body.expires_at.or(creator_expiry);
    let mut errors = Vec::new();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "must be 1..100 characters"));
    }
    let mut scopes = Vec::new();
    for (i, s) in body.scopes.iter().enumerate() {
        match s.parse::<Scope>() {
            Ok(scope) if principal.is_admin() || principal.scopes.contains(&scope) => {
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
            Ok(_) => errors.push(FieldError::new(
                format!("scopes[{i}]"),
                "you do not hold this scope",
            )),
            Err(_) => errors.push(FieldError::new(format!("scopes[{i}]"), "unknown scope")),
        }
    }
    if body.scopes.is_empty() {
        errors.push(FieldError::new("scopes", "at least one scope"));
    }
    let now = licentia_persistence::now();
    if expires_at.is_some_and(|at| at <= now) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    } else if let (Some(at), Some(limit)) = (expires_at, creator_expiry)
        && at > limit
    {
        errors.push(FieldError::new(
            "expires_at",
            "must not be later than the expiry of the API key creating it",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (key, prefix) = api_key::generate();
    let stored = api_keys::insert(
        state.db.conn(),
        NewApiKey {
            account_id: principal.account_id(),
            name,
            prefix,
            key_hash: crypto::sha256_hex(&key),
            scopes,
            expires_at,
        },
    )
    .await?;
    let out = ApiKeyOut::from(stored);
    Ok(HttpResponse::Created().json(CreatedApiKey {
        id: out.id,
        name: out.name,
        scopes: out.scopes,
        prefix: out.prefix,
        key,
        created_at: out.created_at,
        expires_at: out.expires_at,
    }))
}

/// When the caller is an API key that expires, its expiry; `None` for users and keys that
/// never expire.
async fn creating_key_expiry(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
) -> ApiResult<Option<OffsetDateTime>> {
    let Caller::ApiKey { id, .. } = &principal.caller else {
        return Ok(None);
    };
    let gone = || ApiError::invalid_token("unknown or revoked API key");
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(gone)?;
    let found = api_keys::find_with_account(state.db.conn(), &crypto::sha256_hex(key.trim()))
        .await?
        .filter(|(found, _)| found.id == *id)
        .ok_or_else(gone)?;
    Ok(found.0.expires_at)
}

/// List API keys
#[utoipa::path(
    operation_id = "list_api_keys",
    tag = "api-keys",
    params(ListQuery),
    responses(
        (status = 200, description = "The account's live keys", body = Page<ApiKeyOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/api-keys")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::AccountAdmin)?;
    let scope = format!("{}|api-keys", principal.account_id());
    let (limit, after) = query.keyset(&state, &scope)?;
    let rows = api_keys::list(state.db.conn(), principal.account_id(), after, limit + 1).await?;
    let page = page_of(
        rows,
        limit,
        &state.cursors,
        &scope,
        |k| CursorKey {
            id: k.id.as_uuid(),
            value: None,
        },
        ApiKeyOut::from,
    );
    Ok(HttpResponse::Ok().json(page))
}

/// Revoke an API key
///
/// Effective at once: the next request with the key answers 401.
#[utoipa::path(
    operation_id = "delete_api_key",
    tag = "api-keys",
    params(("id" = Uuid, Path, description = "API key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[delete("/v1/api-keys/{id}")]
pub async fn delete_api_key(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::AccountAdmin)?;
    let id = ApiKeyId::from_uuid(id.into_inner());
    let db = state.db.conn();
    let target = api_keys::find_live(db, principal.account_id(), id)
        .await?
        .ok_or(ApiError::not_found())?;
    // A key manages only keys whose scopes are within its own (CONTRACT §1).
    if matches!(principal.caller, crate::auth::Caller::ApiKey { .. })
        && !target.scopes.iter().all(|s| principal.scopes.contains(s))
    {
        return Err(ApiError::forbidden(
            "an API key may revoke only keys whose scopes are within its own".into(),
        ));
    }
    if !api_keys::revoke(db, principal.account_id(), id).await? {
        return Err(ApiError::not_found());
    }
    // Effective at once here; other processes drop it when the database's notice arrives.
    state.caches.forget_keys();
    Ok(HttpResponse::NoContent().finish())
}
