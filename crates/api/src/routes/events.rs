//! `/v1/events`: the audit log of every state change, newest first, and its live stream
//! (`/v1/events/stream`, Server-Sent Events). A partner sees its own account's events; the
//! provider's administrators see every account's.
use actix_web::{HttpRequest, HttpResponse, get, web};
use licentia_domain::auth::Scope;
use licentia_domain::ids::{AccountId, LicenseId};
use licentia_persistence::repo::event_stream::{self, StreamFilter};
use licentia_persistence::repo::events;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::Principal;
pub use crate::dto::{ActorKindOut, ActorOut, EventOut};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::pagination::{CursorKey, Page, page_of, parse_limit};
use crate::state::AppState;

/// The longest event type the filter accepts.
const MAX_TYPE_LEN: usize = 64;

/// Event list filters; all optional, combined with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only the events of this license.
    #[param(value_type = Option<Uuid>)]
    pub license_id: Option<String>,
    /// Only events of exactly this type, e.g. `license.suspended`.
    #[serde(rename = "type")]
    #[param(min_length = 1, max_length = 64, pattern = "^[a-z0-9_.]+$")]
    pub event_type: Option<String>,
    /// Only this account's events (provider administrators only; 422 for partners).
    #[param(value_type = Option<Uuid>)]
    pub account_id: Option<String>,
    /// Page size, 1..200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn parse_uuid(field: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<Uuid> {
    raw.parse::<Uuid>()
        .map_err(|_| errors.push(FieldError::new(field, "must be a UUID")))
        .ok()
}

fn valid_type(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_TYPE_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

/// List events
///
/// Newest first, keyset-paged. A partner sees only its own account's events (a license of
/// another account simply has none); administrators see every account's and may filter by
/// `account_id`. An unknown parameter or a bad value is 422 naming it.
#[utoipa::path(
    operation_id = "list_events",
    tag = "events",
    params(EventQuery),
    responses(
        (status = 200, description = "A page of events, newest first", body = Page<EventOut>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/events")]
pub async fn list_events(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<EventQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let q = query.into_inner();
    let mut errors = Vec::new();
    let limit = parse_limit(q.limit.as_deref())
        .map_err(|e| errors.push(e))
        .unwrap_or(1);
    let license_id = q
        .license_id
        .as_deref()
        .and_then(|raw| parse_uuid("license_id", raw, &mut errors))
        .map(LicenseId::from_uuid);
    if q.event_type.as_deref().is_some_and(|t| !valid_type(t)) {
        errors.push(FieldError::new(
            "type",
            format!("must be an event type such as license.activated (at most {MAX_TYPE_LEN} characters of a-z, 0-9, _ and .)"),
        ));
    }
    let mut account = (!principal.is_admin()).then(|| principal.account_id());
    if let Some(raw) = q.account_id.as_deref() {
        if principal.is_admin() {
            account = parse_uuid("account_id", raw, &mut errors).map(AccountId::from_uuid);
        } else {
            errors.push(FieldError::new(
                "account_id",
                "only the provider's administrators may filter by account",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // The cursor is bound to the caller and to the exact filter it came from.
    let scope = format!(
        "{}|events|{:?}|{:?}|{:?}",
        principal.account_id(),
        q.license_id,
        q.event_type,
        q.account_id
    );
    let after = match &q.cursor {
        Some(c) => Some(state.cursors.decode(&scope, c)?.id),
        None => None,
    };
    let rows = events::list(
        state.db.conn(),
        account,
        license_id,
        q.event_type.as_deref(),
        after,
        limit + 1,
    )
    .await?;
    let page = page_of(
        rows,
        limit,
        &state.cursors,
        &scope,
        |e| CursorKey {
            id: e.id.as_uuid(),
            value: None,
        },
        EventOut::from,
    );
    Ok(HttpResponse::Ok().json(page))
}

/// Stream filters and the resume point; all optional.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume right after this event (an `id:` the stream sent). The `Last-Event-ID` header,
    /// which browsers send when they reconnect, takes precedence.
    #[param(value_type = Option<Uuid>)]
    pub after: Option<String>,
    /// Only the events of this license.
    #[param(value_type = Option<Uuid>)]
    pub license_id: Option<String>,
    /// Only events of exactly this type, e.g. `license.activated`.
    #[serde(rename = "type")]
    #[param(min_length = 1, max_length = 64, pattern = "^[a-z0-9_.]+$")]
    pub event_type: Option<String>,
    /// Only this account's events (provider administrators only; 422 for partners).
    #[param(value_type = Option<Uuid>)]
    pub account_id: Option<String>,
}

/// Stream events live
///
/// Server-Sent Events (`text/event-stream`) of the caller's events as they are committed, by
/// any server process: a partner's own account's, every account's for the provider's
/// administrators. Each message is `id:` the event id, `event:` its type and `data:` the event
/// as `GET /v1/events` shows it, one JSON object on one line. Without a resume point the stream
/// starts with the events committed after it opened; with `Last-Event-ID` (or `?after=`) it
/// resumes right after that event, with no gap and no duplicate. A comment line
/// (`: keep-alive`) comes every 15 s. At most 10 streams per account are open at once
/// (429 `rate_limited` beyond). Streams end when the server shuts down; reconnect with
/// `Last-Event-ID`.
#[utoipa::path(
    operation_id = "stream_events",
    tag = "events",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<Uuid>, Header, description = "Resume right after this event (sent by browsers when they reconnect)"),
    ),
    responses(
        (status = 200, description = "The event stream (Server-Sent Events)", content_type = "text/event-stream", body = crate::openapi::types::EventStreamMessage,
            example = json!({"id": "019a0c5e-6f21-7a3b-8c4d-5e6f7a8b9c0d", "event": "license.activated",
                "data": "{\"id\":\"019a0c5e-6f21-7a3b-8c4d-5e6f7a8b9c0d\",\"type\":\"license.activated\"}"})),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
        (status = 429, response = crate::openapi::TooManyRequests),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[get("/v1/events/stream")]
pub async fn stream_events(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    query: web::Query<StreamQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::LicensesRead)?;
    let q = query.into_inner();
    let mut errors = Vec::new();
    let license_id = q
        .license_id
        .as_deref()
        .and_then(|raw| parse_uuid("license_id", raw, &mut errors))
        .map(LicenseId::from_uuid);
    if q.event_type.as_deref().is_some_and(|t| !valid_type(t)) {
        errors.push(FieldError::new(
            "type",
            format!("must be an event type such as license.activated (at most {MAX_TYPE_LEN} characters of a-z, 0-9, _ and .)"),
        ));
    }
    let mut account = (!principal.is_admin()).then(|| principal.account_id());
    if let Some(raw) = q.account_id.as_deref() {
        if principal.is_admin() {
            account = parse_uuid("account_id", raw, &mut errors).map(AccountId::from_uuid);
        } else {
            errors.push(FieldError::new(
                "account_id",
                "only the provider's administrators may filter by account",
            ));
        }
    }
    // The header a reconnecting browser sends wins over the query of the first request.
    let header = req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().map(str::trim).unwrap_or("?"))
        .filter(|v| !v.is_empty());
    let resume = match (header, q.after.as_deref()) {
        (Some(raw), _) => {
            parse_uuid("Last-Event-ID", raw, &mut errors).map(|id| ("Last-Event-ID", id))
        }
        (None, Some(raw)) => parse_uuid("after", raw, &mut errors).map(|id| ("after", id)),
        (None, None) => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // A partner resumes only after one of its own events (another's is as unknown as none).
    let scope = (!principal.is_admin()).then(|| principal.account_id());
    let resume = match resume {
        Some((field, id)) => Some(
            event_stream::position_of(state.db.conn(), scope, id)
                .await?
                .ok_or_else(|| ApiError::field(field, "no such event"))?,
        ),
        None => None,
    };
    crate::event_stream::open(
        &state.events,
        crate::event_stream::StreamRequest {
            filter: StreamFilter {
                account,
                license_id,
                event_type: q.event_type,
            },
            account: principal.account_id(),
            resume,
        },
    )
    .await
}
