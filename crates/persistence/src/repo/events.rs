//! The event log: every state change writes one row in the same transaction as the change.
use licentia_domain::ids::{AccountId, EventId, LicenseId};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::events;
use crate::error::Result;

/// Who caused an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    User,
    ApiKey,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::System => "system",
        }
    }
}

/// The actor of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<Uuid>,
}

impl Actor {
    pub const SYSTEM: Actor = Actor {
        kind: ActorKind::System,
        id: None,
    };
}

/// An event to record.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub account_id: AccountId,
    pub license_id: Option<LicenseId>,
    pub actor: Actor,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Records an event; call it with the transaction that makes the change.
pub async fn record(
    db: &impl ConnectionTrait,
    event: NewEvent,
) -> Result<(EventId, OffsetDateTime)> {
    let id = EventId::new();
    let now = crate::now();
    let row = events::ActiveModel {
        id: Set(id.as_uuid()),
        event_type: Set(event.event_type.to_owned()),
        account_id: Set(event.account_id.as_uuid()),
        license_id: Set(event.license_id.map(|l| l.as_uuid())),
        actor_kind: Set(event.actor.kind.as_str().to_owned()),
        actor_id: Set(event.actor.id),
        before: Set(event.before),
        after: Set(event.after),
        created_at: Set(now),
    };
    events::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok((id, now))
}
