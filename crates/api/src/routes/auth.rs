//! `/v1/auth/*` and `/v1/me`.
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use licentia_domain::ids::UserId;
use licentia_persistence::repo::{tokens, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::AccountOut;
use crate::auth::{Caller, Principal};
use crate::error::{ApiError, ApiResult};
use crate::limits::LOGIN_FAILURES;
use crate::state::AppState;
use licentia_app::crypto;

/// Credentials for a password login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The user's e-mail address (case-insensitive).
    #[schema(example = "admin@licentia.local")]
    pub email: String,
    /// The user's password.
    #[schema(format = Password)]
    pub password: String,
}

/// A fresh token pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// An opaque token for `POST /v1/auth/refresh`; single use, rotated on every refresh.
    pub refresh_token: String,
}

/// A refresh token to rotate or revoke.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last token response.
    pub refresh_token: String,
}

/// The logged-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeUser {
    pub id: Uuid,
    pub email: String,
}

/// The API key in use.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeApiKey {
    pub id: Uuid,
    pub name: String,
    /// The key's public prefix.
    pub prefix: String,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The user, when authenticated with a JWT.
    pub user: Option<MeUser>,
    /// The API key, when authenticated with `X-API-Key`.
    pub api_key: Option<MeApiKey>,
    /// `admin`, `owner`, `operator` or `viewer`.
    #[schema(value_type = crate::openapi::types::Role)]
    pub role: licentia_domain::auth::Role,
    /// The scopes the caller holds.
    #[schema(value_type = Vec<crate::openapi::types::ScopeName>)]
    pub scopes: Vec<licentia_domain::auth::Scope>,
    /// The caller's account.
    pub account: AccountOut,
}

async fn issue_pair(state: &AppState, user_id: UserId, family: Uuid) -> ApiResult<TokenResponse> {
    let now = licentia_persistence::now();
    let access_token = state
        .jwt
        .issue(user_id.as_uuid(), now)
        .map_err(ApiError::internal)?;
    let refresh = format!("lrt_{}", crypto::random_token(32));
    let ttl = i64::try_from(state.config.refresh_token_ttl_secs.get()).unwrap_or(i64::MAX);
    tokens::insert(
        state.db.conn(),
        user_id,
        family,
        crypto::sha256_hex(&refresh),
        now.saturating_add(time::Duration::seconds(ttl)),
    )
    .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.jwt.ttl_secs(),
        refresh_token: refresh,
    })
}

/// Log in with e-mail and password
///
/// Returns an access token (JWT) and a refresh token.
#[utoipa::path(
    operation_id = "create_token",
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 422, response = crate::openapi::Unprocessable),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
#[post("/v1/auth/token")]
pub async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: crate::extract::Json<TokenRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner()?;
    // Failed attempts are limited per account and client address (the peer: behind a proxy
    // that is the proxy, which only makes the limit stricter). The attempt is counted in the
    // database before the password is checked, so parallel guesses (on any process) check at
    // most the limit's worth of passwords; a right password gives its attempt back.
    let reservation = if state.limits.enabled {
        let key = throttle_key(&body.email, &req);
        let attempt = LOGIN_FAILURES
            .attempt(state.db.conn(), state.clock.now(), &key)
            .await?;
        if let Some(refusal) = attempt.refusal() {
            return Ok(refusal);
        }
        attempt.into_reservation()
    } else {
        None
    };
    let found = users::find_by_email(state.db.conn(), &body.email).await?;
    let password = body.password;
    let (user, ok) = match found {
        Some((user, hash)) => {
            let ok = web::block(move || crypto::verify_password(&password, &hash))
                .await
                .map_err(|e| ApiError::internal_from("a blocking task failed", e))?;
            (Some(user), ok)
        }
        None => {
            // Same work for unknown addresses, so timing does not reveal which exist.
            web::block(move || crypto::verify_password(&password, crypto::dummy_hash()))
                .await
                .map_err(|e| ApiError::internal_from("a blocking task failed", e))?;
            (None, false)
        }
    };
    match (user, ok) {
        (Some(user), true) => {
            if let Some(reservation) = reservation
                && let Err(e) = reservation.release(state.db.conn()).await
            {
                // The login stands; the attempt merely stays counted until its window passes.
                tracing::warn!(error = %e, "could not give back a successful login's attempt");
            }
            Ok(HttpResponse::Ok().json(issue_pair(&state, user.id, Uuid::now_v7()).await?))
        }
        // The attempt stays counted.
        _ => Err(ApiError::unauthorized("wrong e-mail or password")),
    }
}

/// The login limiter's key: the normalized e-mail address and the client address, hashed (the
/// counters keep no addresses, and any length of input gives a key of one size).
fn throttle_key(email: &str, req: &HttpRequest) -> String {
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    crypto::sha256_hex(&format!(
        "{}\n{peer}",
        licentia_domain::account::normalize_email(email)
    ))
}

/// Rotate a refresh token
///
/// Returns a new token pair; the presented refresh token stops working. Presenting a token
/// that was already rotated revokes its whole family.
#[utoipa::path(
    operation_id = "refresh_token",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 422, response = crate::openapi::Unprocessable),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
#[post("/v1/auth/refresh")]
pub async fn refresh_token(
    state: web::Data<AppState>,
    body: crate::extract::Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner()?;
    let db = state.db.conn();
    let invalid = || ApiError::invalid_token("the refresh token is invalid, expired or revoked");
    let token = tokens::find_by_hash(db, &crypto::sha256_hex(&body.refresh_token))
        .await?
        .ok_or_else(invalid)?;
    if state.limits.enabled
        && let Some(refusal) = state.limits.refresh.check(&token.family_id).refusal()
    {
        return Ok(refusal);
    }
    if token.revoked {
        return Err(invalid());
    }
    if token.used || !tokens::mark_used(db, token.id).await? {
        // A rotated token came back: someone holds a copy. Revoke the whole family.
        tracing::warn!(family = %token.family_id, "refresh token reuse detected; family revoked");
        tokens::revoke_family(db, token.family_id).await?;
        return Err(invalid());
    }
    if token.expires_at <= licentia_persistence::now() {
        return Err(invalid());
    }
    if users::find(db, token.user_id).await?.is_none() {
        return Err(invalid());
    }
    Ok(HttpResponse::Ok().json(issue_pair(&state, token.user_id, token.family_id).await?))
}

/// Log out
///
/// Revokes the refresh token's whole family. Unknown tokens are accepted silently so that
/// logging out twice is harmless.
#[utoipa::path(
    operation_id = "revoke_refresh_token",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 422, response = crate::openapi::Unprocessable),
    )
)]
#[post("/v1/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    body: crate::extract::Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner()?;
    let db = state.db.conn();
    if let Some(token) = tokens::find_by_hash(db, &crypto::sha256_hex(&body.refresh_token)).await? {
        tokens::revoke_family(db, token.family_id).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Who am I
///
/// The caller's identity, role, scopes and account.
#[utoipa::path(
    operation_id = "get_me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        (status = 401, response = crate::openapi::Unauthorized),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/me")]
pub async fn get_me(state: web::Data<AppState>, principal: Principal) -> ApiResult<HttpResponse> {
    let (user, api_key) = match &principal.caller {
        Caller::User { id, email } => (
            Some(MeUser {
                id: id.as_uuid(),
                email: email.clone(),
            }),
            None,
        ),
        Caller::ApiKey { id, name, prefix } => (
            None,
            Some(MeApiKey {
                id: id.as_uuid(),
                name: name.clone(),
                prefix: prefix.clone(),
            }),
        ),
    };
    Ok(HttpResponse::Ok().json(MeResponse {
        user,
        api_key,
        role: principal.role,
        scopes: principal.scopes.to_vec(),
        // Read now: an API key's principal may come from memory with an older balance.
        account: AccountOut::from(
            licentia_persistence::repo::accounts::get(state.db.conn(), principal.account_id())
                .await?,
        ),
    }))
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password in use now.
    #[schema(format = Password)]
    pub current_password: String,
    /// The new password: 12..1024 characters.
    #[schema(format = Password, min_length = 12, max_length = 1024)]
    pub new_password: String,
}

/// Change my password
///
/// For a logged-in user (API keys → 403). A wrong `current_password` answers 401 and counts
/// like a failed login (5 a minute per user and address, then 429). On success every refresh
/// token family of the user is revoked: other sessions must log in again.
#[utoipa::path(
    operation_id = "change_my_password",
    tag = "auth",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; every refresh token of the user is revoked"),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
        (status = 429, response = crate::openapi::TooManyRequests),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/me/password")]
pub async fn change_my_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: crate::extract::Json<PasswordChange>,
) -> ApiResult<HttpResponse> {
    let Caller::User { id, .. } = principal.caller else {
        return Err(ApiError::forbidden(
            "only a logged-in user changes a password; API keys have none".into(),
        ));
    };
    let body = body.into_inner()?;
    let length = body.new_password.chars().count();
    if !(crate::auth::MIN_PASSWORD_CHARS..=1024).contains(&length) {
        return Err(ApiError::field(
            "new_password",
            "must be 12 to 1024 characters",
        ));
    }
    let reservation = if state.limits.enabled {
        let peer = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let key = crypto::sha256_hex(&format!("password-change\n{id}\n{peer}"));
        let attempt = LOGIN_FAILURES
            .attempt(state.db.conn(), state.clock.now(), &key)
            .await?;
        if let Some(refusal) = attempt.refusal() {
            return Ok(refusal);
        }
        attempt.into_reservation()
    } else {
        None
    };
    let db = state.db.conn();
    let stored = users::password_hash(db, id)
        .await?
        .ok_or_else(|| ApiError::invalid_token("the token's user no longer exists"))?;
    let current = body.current_password;
    let ok = web::block(move || crypto::verify_password(&current, &stored))
        .await
        .map_err(|e| ApiError::internal_from("a blocking task failed", e))?;
    if !ok {
        return Err(ApiError::unauthorized("the current password is wrong"));
    }
    if let Some(reservation) = reservation
        && let Err(e) = reservation.release(state.db.conn()).await
    {
        tracing::warn!(error = %e, "could not give back a password change's attempt");
    }
    let new = body.new_password;
    let hash = web::block(move || crypto::hash_password(&new))
        .await
        .map_err(|e| ApiError::internal_from("a blocking task failed", e))?
        .map_err(ApiError::internal)?;
    let txn = licentia_persistence::begin(db).await?;
    users::set_password_hash(&txn, id, &hash).await?;
    tokens::revoke_all_of_user(&txn, id).await?;
    txn.commit()
        .await
        .map_err(licentia_persistence::PersistenceError::from)?;
    Ok(HttpResponse::NoContent().finish())
}
