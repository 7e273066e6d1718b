//! `/v1/accounts/{id}/users`: admins manage every account's users, owners their own.
use actix_web::{HttpResponse, delete, get, post, web};
use garde::Validate;
use licentia_domain::account::User;
use licentia_domain::auth::{AccountKind, Role, Scope};
use licentia_domain::ids::UserId;
use licentia_persistence::PersistenceError;
use licentia_persistence::repo::users::{self, DeleteOutcome};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::{ListQuery, visible_account};
use crate::auth::{Caller, Principal};
use crate::error::{ApiError, ApiResult, AppError, FieldError};
use crate::extract::validate;
use crate::pagination::{CursorKey, Page, page_of};
use crate::state::AppState;
use licentia_app::crypto;

/// A user of an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: Uuid,
    pub account_id: Uuid,
    pub email: String,
    /// `admin` (provider staff), `owner`, `operator` or `viewer`.
    #[schema(value_type = crate::openapi::types::Role)]
    pub role: licentia_domain::auth::Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id.as_uuid(),
            account_id: u.account_id.as_uuid(),
            email: u.email,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

/// Users are people: only a logged-in user manages users (CONTRACT §2); an API key gets 403
/// on every user route, whatever its scopes. Then the route permission, `account:admin`.
fn require_user_manager(principal: &Principal) -> ApiResult<()> {
    if let Caller::ApiKey { .. } = principal.caller {
        return Err(ApiError::forbidden(
            "users are managed by logged-in users, not with API keys".into(),
        ));
    }
    principal.require(Scope::AccountAdmin)
}

/// How much authority a role holds: admin > owner > operator > viewer.
fn rank(role: Role) -> u8 {
    match role {
        Role::Admin => 3,
        Role::Owner => 2,
        Role::Operator => 1,
        Role::Viewer => 0,
    }
}

/// Nobody creates authority beyond their own: a new user's role is at most its creator's, and
/// only the provider's admins create admins.
fn may_grant(principal: &Principal, role: Role) -> bool {
    principal.is_admin() || (role != Role::Admin && rank(role) <= rank(principal.role))
}

/// A new user.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login e-mail address, unique across the service.
    #[garde(email, length(max = 254))]
    #[schema(format = Email, max_length = 254, example = "ops@acme.example")]
    pub email: String,
    /// 12..256 characters.
    #[garde(length(chars, min = 12, max = 256))]
    #[schema(format = Password, min_length = 12, max_length = 256)]
    pub password: String,
    /// `owner`, `operator` or `viewer` for a partner account; `admin` for the provider's.
    #[garde(skip)]
    #[schema(value_type = crate::openapi::types::Role, example = "operator")]
    pub role: String,
}

/// Create a user
#[utoipa::path(
    operation_id = "create_user",
    tag = "users",
    params(("id" = Uuid, Path, description = "Account id")),
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = UserOut),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[post("/v1/accounts/{id}/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    body: crate::extract::Json<CreateUser>,
) -> ApiResult<HttpResponse> {
    require_user_manager(&principal)?;
    let account = visible_account(&state, &principal, id.into_inner()).await?;
    let body = body.into_inner()?;
    let requested = body.role.parse::<Role>().ok();
    if let Some(role) = requested
        && !may_grant(&principal, role)
    {
        // A field the caller may not write (CONTRACT §0): 422, like a key's scopes beyond
        // its creator's.
        return Err(ApiError::field(
            "role",
            format!(
                "you cannot create a user with the role {}, which holds more than yours",
                role.as_str()
            ),
        ));
    }
    let mut errors = match validate(&body) {
        Err(ApiError::App(AppError::Validation { errors, .. })) => errors,
        _ => Vec::new(),
    };
    let role = requested.filter(|role| match account.kind {
        AccountKind::Provider => *role == Role::Admin,
        AccountKind::Partner => *role != Role::Admin,
    });
    if role.is_none() {
        let allowed = match account.kind {
            AccountKind::Provider => "must be admin for the provider's account",
            AccountKind::Partner => "must be one of owner, operator, viewer",
        };
        errors.push(FieldError::new("role", allowed));
    }
    let Some(role) = role.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let password = body.password;
    let hash = web::block(move || crypto::hash_password(&password))
        .await
        .map_err(|e| ApiError::internal_from("a blocking task failed", e))?
        .map_err(ApiError::internal)?;
    match users::create(state.db.conn(), account.id, &body.email, hash, role).await {
        Ok(user) => Ok(HttpResponse::Created().json(UserOut::from(user))),
        Err(PersistenceError::Unique(_)) => Err(ApiError::already_exists(
            "a user with this e-mail address already exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// List an account's users
#[utoipa::path(
    operation_id = "list_users",
    tag = "users",
    params(("id" = Uuid, Path, description = "Account id"), ListQuery),
    responses(
        (status = 200, description = "A page of users", body = Page<UserOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/accounts/{id}/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    require_user_manager(&principal)?;
    let account = visible_account(&state, &principal, id.into_inner()).await?;
    let scope = format!("{}|users|{}", principal.account_id(), account.id);
    let (limit, after) = query.keyset(&state, &scope)?;
    let rows = users::list_for_account(
        state.db.conn(),
        account.id,
        licentia_persistence::repo::Page {
            after,
            limit: limit + 1,
        },
    )
    .await?;
    let page = page_of(
        rows,
        limit,
        &state.cursors,
        &scope,
        |u| CursorKey {
            id: u.id.as_uuid(),
            value: None,
        },
        UserOut::from,
    );
    Ok(HttpResponse::Ok().json(page))
}

/// Delete a user
///
/// The user's refresh tokens go with it and its access tokens stop working at once.
#[utoipa::path(
    operation_id = "delete_user",
    tag = "users",
    params(("id" = Uuid, Path, description = "Account id"), ("user_id" = Uuid, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[delete("/v1/accounts/{id}/users/{user_id}")]
pub async fn delete_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    require_user_manager(&principal)?;
    let (account_id, user_id) = path.into_inner();
    let account = visible_account(&state, &principal, account_id).await?;
    // An account must keep someone able to manage it. The check and the delete are
    // serialized per account, so two concurrent deletes cannot remove its last two keepers.
    let keeper = if account.kind == AccountKind::Provider {
        Role::Admin
    } else {
        Role::Owner
    };
    match users::delete_unless_last(
        state.db.conn(),
        account.id,
        UserId::from_uuid(user_id),
        keeper,
    )
    .await?
    {
        DeleteOutcome::Deleted => {}
        DeleteOutcome::NotFound => return Err(ApiError::not_found()),
        DeleteOutcome::Last => {
            return Err(ApiError::conflict(format!(
                "the account's last {} cannot be deleted",
                keeper.as_str()
            )));
        }
    }
    Ok(HttpResponse::NoContent().finish())
}
