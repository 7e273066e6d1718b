//! The authenticated caller. Handlers take a [`Principal`] argument, so a route cannot forget
//! authentication; scope and tenant checks are methods on it.
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use licentia_domain::account::Account;
use licentia_domain::auth::{AccountKind, Role, Scope};
use licentia_domain::ids::{AccountId, ApiKeyId, UserId};
use licentia_persistence::repo::events::{Actor, ActorKind};
use licentia_persistence::repo::{api_keys, users};

use crate::error::ApiError;
use crate::state::AppState;

/// Who is calling: a user (JWT) or an API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    User {
        id: UserId,
        email: String,
    },
    ApiKey {
        id: ApiKeyId,
        name: String,
        prefix: String,
    },
}

/// An authenticated caller with its account, role and scopes.
#[derive(Clone, Debug)]
pub struct Principal {
    pub caller: Caller,
    pub account: Account,
    pub role: Role,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Provider staff: passes every check and sees every tenant.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin && self.account.kind == AccountKind::Provider
    }

    pub fn account_id(&self) -> AccountId {
        self.account.id
    }

    /// 403 unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.is_admin() || self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this operation needs the {} scope",
                scope.as_str()
            )))
        }
    }

    /// 403 unless the caller is provider staff.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this operation is reserved to the provider's administrators".into(),
            ))
        }
    }

    /// Whether the caller may see resources of `account`; others answer 404.
    pub fn can_see(&self, account: AccountId) -> bool {
        self.is_admin() || self.account.id == account
    }

    /// The caller as the use cases of the license life cycle see it: which licenses it
    /// reaches, its role in the state machine, its name in events.
    pub fn caller(&self) -> licentia_app::licenses::transition::Caller {
        use licentia_app::licenses::transition::Caller;
        if self.is_admin() {
            Caller::admin(self.actor())
        } else {
            Caller::partner(self.account_id(), self.actor())
        }
    }

    /// The caller as the actor of an event.
    pub fn actor(&self) -> Actor {
        match &self.caller {
            Caller::User { id, .. } => Actor {
                kind: ActorKind::User,
                id: Some(id.as_uuid()),
            },
            Caller::ApiKey { id, .. } => Actor {
                kind: ActorKind::ApiKey,
                id: Some(id.as_uuid()),
            },
        }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Authenticated already by a middleware of this request (the idempotency check).
        if let Some(principal) = req.extensions().get::<Principal>().cloned() {
            return Box::pin(std::future::ready(Ok(principal)));
        }
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        let api_key = req
            .headers()
            .get("x-api-key")
            .map(|v| v.to_str().map(str::to_owned));
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::internal("application state missing".into()))?;
            match (bearer, api_key) {
                (Some(_), Some(_)) => Err(ApiError::BadRequest(
                    "send either Authorization or X-API-Key, not both".into(),
                )),
                (None, None) => Err(ApiError::unauthorized("authentication required")),
                (Some(value), None) => {
                    let value = value
                        .map_err(|_| ApiError::invalid_token("malformed Authorization header"))?;
                    let token = value
                        .strip_prefix("Bearer ")
                        .or_else(|| value.strip_prefix("bearer "))
                        .ok_or_else(|| ApiError::invalid_token("expected a Bearer token"))?;
                    from_jwt(&state, token.trim()).await
                }
                (None, Some(value)) => {
                    let key =
                        value.map_err(|_| ApiError::invalid_token("malformed X-API-Key header"))?;
                    from_api_key(&state, key.trim()).await
                }
            }
        })
    }
}

async fn from_api_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    // The checksum rejects typos and guesses without touching the database.
    if !crate::auth::api_key::well_formed(key) {
        return Err(ApiError::invalid_token("malformed API key"));
    }
    let db = state.db.conn();
    let hash = licentia_app::crypto::sha256_hex(key);
    let (found, account) = match state.caches.key(&hash) {
        Some(cached) => cached,
        None => {
            let ticket = state.caches.ticket();
            let (found, account) = api_keys::find_with_account(db, &hash)
                .await?
                .ok_or_else(|| ApiError::invalid_token("unknown or revoked API key"))?;
            state.caches.keep_key(ticket, &hash, &found, &account);
            (found, account)
        }
    };
    let now = licentia_persistence::now();
    if found.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::invalid_token("the API key has expired"));
    }
    // At most one write a minute per key; the read above already tells whether it is due.
    if api_keys::touch_due(&found, now) {
        let on_hot = match state.db.hot_primary() {
            Some(hot) => api_keys::touch_hot(hot, found.id, now).await,
            None => Err(licentia_persistence::PersistenceError::Unavailable(
                String::new(),
            )),
        };
        match on_hot {
            Ok(()) => {}
            // No hot-path pool, or its connection had died: through the pinged pool.
            Err(licentia_persistence::PersistenceError::Unavailable(_)) => {
                api_keys::touch(db, found.id, now).await?;
            }
            Err(e) => return Err(e.into()),
        }
        state.caches.touched(&hash, now);
    }
    // A key has no role of its own; report the narrowest role that holds its scopes.
    let role = if found.scopes.contains(&Scope::AccountAdmin) {
        Role::Owner
    } else if found.scopes.iter().any(|s| !s.is_read()) {
        Role::Operator
    } else {
        Role::Viewer
    };
    Ok(Principal {
        caller: Caller::ApiKey {
            id: found.id,
            name: found.name,
            prefix: found.prefix,
        },
        account,
        role,
        scopes: found.scopes,
    })
}

async fn from_jwt(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let claims = state
        .jwt
        .verify(token)
        .map_err(|e| ApiError::invalid_token(e.0))?;
    // A deleted user's still-unexpired token stops working at once.
    let (user, account) = users::find_with_account(state.db.conn(), UserId::from_uuid(claims.sub))
        .await?
        .ok_or_else(|| ApiError::invalid_token("the token's user no longer exists"))?;
    Ok(Principal {
        scopes: user.role.scopes().to_vec(),
        role: user.role,
        caller: Caller::User {
            id: user.id,
            email: user.email,
        },
        account,
    })
}
