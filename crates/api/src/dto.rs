//! Wire types shared by the handlers and the adapters below them (the live event stream
//! frames events exactly as `GET /v1/events` lists them).
use licentia_persistence::repo::events::{ActorKind, Event};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// What kind of caller caused an event.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKindOut {
    /// A user (JWT).
    User,
    /// An API key.
    ApiKey,
    /// The service itself (job worker, sweeps).
    System,
}

impl From<ActorKind> for ActorKindOut {
    fn from(kind: ActorKind) -> Self {
        match kind {
            ActorKind::User => Self::User,
            ActorKind::ApiKey => Self::ApiKey,
            ActorKind::System => Self::System,
        }
    }
}

/// Who caused an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActorOut {
    /// `user`, `api_key` or `system`.
    pub kind: ActorKindOut,
    /// The user's or API key's id; null for `system`.
    pub id: Option<Uuid>,
}

/// One state change.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Event id (UUIDv7: ordering by id is ordering by time); webhook receivers dedupe by it.
    pub id: Uuid,
    /// The event type, e.g. `license.activated`, `order.paid`.
    #[serde(rename = "type")]
    #[schema(value_type = crate::openapi::types::EventType, example = "license.activated")]
    pub event_type: licentia_domain::event::EventType,
    /// The license the event is about, if any.
    pub license_id: Option<Uuid>,
    /// The account the event belongs to.
    pub account_id: Uuid,
    /// Who caused it.
    pub actor: ActorOut,
    /// The changed resource before the change (null when it did not exist or does not apply).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The changed resource after the change.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<Event> for EventOut {
    fn from(e: Event) -> Self {
        Self {
            id: e.id.as_uuid(),
            event_type: e.event_type,
            license_id: e.license_id.map(|l| l.as_uuid()),
            account_id: e.account_id.as_uuid(),
            actor: ActorOut {
                kind: e.actor.kind.into(),
                id: e.actor.id,
            },
            before: e.before,
            after: e.after,
            created_at: e.created_at,
        }
    }
}
