//! The transfer (import) handshake between partners (CONTRACT §6): the owner offers a license
//! with a secret (`POST /v1/licenses/{id}/transfers`), the receiver accepts it with the
//! secret or rejects it, the sender may cancel it; `/v1/transfers` lists and shows offers to
//! both parties and to nobody else.
mod accept;
mod decide;

pub use accept::accept_transfer;
pub use decide::{cancel_transfer, reject_transfer};

use actix_web::{HttpResponse, get, post, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::{AccountId, LicenseId, TransferId};
use licentia_domain::transfer::TransferStatus;
use licentia_persistence::PersistenceError;
use licentia_persistence::repo::licenses::{self, Scope as LicenseScope};
use licentia_persistence::repo::products;
use licentia_persistence::repo::transfers::{self, Direction, Transfer, Viewer};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::licenses::{DryRunQuery, visible_license};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::pagination::{CursorKey, Page, page_of, parse_limit};
use crate::state::AppState;
use licentia_app::transfers::{self as service, Preview};

mod offer;
pub use offer::*;

// The schema of the use cases' [`Preview`].
/// What the receiver is offered: the license as the receiver will get it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LicensePreview {
    /// The license's name.
    name: String,
    /// Canonical text of the licensed IPv4 or IPv6 address.
    #[schema(value_type = crate::openapi::types::IpAddress)]
    ip: String,
    /// Code of the licensed product.
    product_code: String,
    /// Name of the licensed product.
    product_name: String,
    /// Length of the current term in months.
    #[schema(value_type = crate::openapi::types::PeriodMonths)]
    period_months: u32,
    /// End of the paid term.
    #[schema(format = DateTime)]
    valid_until: Option<String>,
}

/// A transfer offer, as both parties see it. The secret is never part of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferOut {
    /// UUIDv7.
    pub id: Uuid,
    /// The license on offer.
    pub license_id: Uuid,
    /// The account offering the license.
    pub from_account_id: Uuid,
    /// The account the license is offered to.
    pub to_account_id: Uuid,
    /// `pending`, `accepted`, `rejected`, `cancelled` or `expired`.
    #[schema(value_type = crate::openapi::types::TransferStatus, example = "pending")]
    pub status: licentia_domain::transfer::TransferStatus,
    /// Wrong secrets presented so far; the fifth expires the offer.
    pub failed_attempts: u32,
    /// When a pending offer lapses (it is `expired` from then on).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The license on offer: as it is now while pending; as it was offered (or, once
    /// accepted, handed over) afterwards.
    #[schema(value_type = LicensePreview)]
    pub license: Preview,
    /// When the offer was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the transfer last changed (a decision, or a counted wrong secret).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the offer was accepted, rejected, cancelled or expired; null while pending.
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
}

/// A new offer, with its secret: the only response that ever shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTransfer {
    /// UUIDv7.
    pub id: Uuid,
    /// The license on offer.
    pub license_id: Uuid,
    /// The account offering the license (the license's owner).
    pub from_account_id: Uuid,
    /// The account the license is offered to.
    pub to_account_id: Uuid,
    /// Always `pending`.
    #[schema(value_type = crate::openapi::types::TransferStatus, example = "pending")]
    pub status: licentia_domain::transfer::TransferStatus,
    /// When the offer lapses.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The secret the receiver accepts with. Shown only here; stored only as a hash.
    pub secret: String,
    /// The license on offer, as the receiver sees it.
    #[schema(value_type = LicensePreview)]
    pub license: Preview,
    /// When the offer was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What the receiver would be offered (`POST /v1/licenses/{id}/transfers/preview`); nothing
/// was created.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferPreview {
    /// The license that would be on offer.
    pub license_id: Uuid,
    /// The account offering it.
    pub from_account_id: Uuid,
    /// The account it would be offered to.
    pub to_account_id: Uuid,
    /// `pending`: the status the offer would start in.
    #[schema(value_type = crate::openapi::types::TransferStatus, example = "pending")]
    pub status: licentia_domain::transfer::TransferStatus,
    /// When the offer would lapse if created now.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The license as the receiver would see it.
    #[schema(value_type = LicensePreview)]
    pub license: Preview,
}

/// An offer of a license to another account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTransfer {
    /// The receiving partner account; not the license's own.
    pub to_account_id: Uuid,
    /// 12..256 characters; when omitted, a random one of 43 characters is generated.
    #[schema(min_length = 12, max_length = 256)]
    pub secret: Option<String>,
}

/// The caller's view of transfers: its two sides, or everything for provider staff.
pub(crate) fn viewer(principal: &Principal) -> Viewer {
    if principal.is_admin() {
        Viewer::All
    } else {
        Viewer::Party(principal.account_id())
    }
}

/// The transfer's current view: a lapsed pending offer is expired (and persisted) first.
pub(crate) async fn transfer_out(state: &AppState, t: Transfer) -> ApiResult<TransferOut> {
    let t = service::expire_if_lapsed(state, t).await?;
    let live = if t.state.status == TransferStatus::Pending {
        live_preview(state, t.license_id).await?
    } else {
        None
    };
    let license = match live {
        Some(preview) => preview,
        None => serde_json::from_value(t.license_preview.clone())
            .map_err(|_| PersistenceError::Corrupt(format!("transfer {} license_preview", t.id)))?,
    };
    Ok(TransferOut {
        id: t.id.as_uuid(),
        license_id: t.license_id.as_uuid(),
        from_account_id: t.from_account_id.as_uuid(),
        to_account_id: t.to_account_id.as_uuid(),
        status: t.state.status,
        failed_attempts: t.state.failed_attempts,
        expires_at: t.state.expires_at,
        license,
        created_at: t.created_at,
        updated_at: t.updated_at,
        decided_at: t.decided_at,
    })
}

async fn live_preview(state: &AppState, id: LicenseId) -> ApiResult<Option<Preview>> {
    let db = state.db.conn();
    let Some(license) = licenses::find(db, LicenseScope::All, id).await? else {
        return Ok(None);
    };
    let product = products::find(db, license.product_id).await?;
    Ok(product.map(|p| Preview::of(&license, &p)))
}

/// Transfer list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransferQuery {
    /// `incoming` (offers to the caller's account; with `status=pending`, the "pending import
    /// approval" list) or `outgoing` (offers from it). Omitted: both (for the provider's
    /// administrators: every transfer).
    #[param(value_type = Option<crate::openapi::types::TransferDirection>, inline)]
    pub direction: Option<String>,
    /// `pending`, `accepted`, `rejected`, `cancelled` or `expired`.
    #[param(value_type = Option<crate::openapi::types::TransferStatus>)]
    pub status: Option<String>,
    /// Page size, 1..200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List transfers
///
/// Newest first. Never shows a secret.
#[utoipa::path(
    operation_id = "list_transfers",
    tag = "transfers",
    params(TransferQuery),
    responses(
        (status = 200, description = "A page of transfers, newest first", body = Page<TransferOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/transfers")]
pub async fn list_transfers(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<TransferQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let q = query.into_inner();
    let mut errors = Vec::new();
    let limit = parse_limit(q.limit.as_deref())
        .map_err(|e| errors.push(e))
        .unwrap_or(1);
    let account = principal.account_id();
    let direction = match q.direction.as_deref() {
        Some("incoming") => Direction::Incoming(account),
        Some("outgoing") => Direction::Outgoing(account),
        None if principal.is_admin() => Direction::All,
        None => Direction::Either(account),
        Some(_) => {
            errors.push(FieldError::new("direction", "must be incoming or outgoing"));
            Direction::Either(account)
        }
    };
    let status = match q.status.as_deref().map(str::parse::<TransferStatus>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => {
            errors.push(FieldError::new(
                "status",
                "must be pending, accepted, rejected, cancelled or expired",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let scope = format!(
        "{account}|transfers|{}|{}",
        q.direction.as_deref().unwrap_or(""),
        q.status.as_deref().unwrap_or("")
    );
    let after = match &q.cursor {
        Some(c) => Some(state.cursors.decode(&scope, c)?.id),
        None => None,
    };
    // Lapsed offers are expired before listing, so that `status` filters what callers see.
    let lapsed_of = match direction {
        Direction::All => Viewer::All,
        _ => Viewer::Party(account),
    };
    service::expire_lapsed(&state, lapsed_of, state.clock.now()).await?;
    let rows = transfers::list(state.db.conn(), direction, status, after, limit + 1).await?;
    let key_of = |t: &Transfer| CursorKey {
        id: t.id.as_uuid(),
        value: None,
    };
    let page = page_of(rows, limit, &state.cursors, &scope, key_of, |t| t);
    let mut items = Vec::with_capacity(page.items.len());
    for t in page.items {
        items.push(transfer_out(&state, t).await?);
    }
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Get a transfer
///
/// For the sender and the receiver; anyone else gets 404. Never shows the secret.
#[utoipa::path(
    operation_id = "get_transfer",
    tag = "transfers",
    params(("id" = Uuid, Path, description = "Transfer id")),
    responses(
        (status = 200, description = "The transfer", body = TransferOut),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/transfers/{id}")]
pub async fn get_transfer(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let t = transfers::find(
        state.db.conn(),
        viewer(&principal),
        TransferId::from_uuid(id.into_inner()),
    )
    .await?
    .ok_or(ApiError::not_found())?;
    Ok(HttpResponse::Ok().json(transfer_out(&state, t).await?))
}
