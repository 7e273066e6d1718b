//! An event as the log keeps it: who caused it ([`Actor`]) and the recorded row ([`Event`]).
//! Below both the log's writes (`events`) and the deliveries that read an event back
//! (`webhooks`, `event_stream`).
use licentia_domain::event::EventType;
use licentia_domain::ids::{AccountId, EventId, LicenseId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::events;
use crate::error::{Result, parse};

/// Who caused an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    User,
    ApiKey,
    System,
}

impl ActorKind {
    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::System => "system",
        }
    }
}

impl std::str::FromStr for ActorKind {
    type Err = licentia_domain::ParseEnumError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "user" => Ok(Self::User),
            "api_key" => Ok(Self::ApiKey),
            "system" => Ok(Self::System),
            _ => Err(licentia_domain::ParseEnumError {
                what: "actor kind",
                value: s.to_owned(),
            }),
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

/// A recorded event, as read back from the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub event_type: EventType,
    pub account_id: AccountId,
    pub license_id: Option<LicenseId>,
    pub actor: Actor,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub created_at: OffsetDateTime,
}

impl TryFrom<events::Model> for Event {
    type Error = crate::error::PersistenceError;

    fn try_from(m: events::Model) -> Result<Self> {
        Ok(Self {
            id: EventId::from_uuid(m.id),
            actor: Actor {
                kind: parse("event.actor_kind", &m.actor_kind)?,
                id: m.actor_id,
            },
            event_type: parse("event.event_type", &m.event_type)?,
            account_id: AccountId::from_uuid(m.account_id),
            license_id: m.license_id.map(LicenseId::from_uuid),
            before: m.before,
            after: m.after,
            created_at: m.created_at,
        })
    }
}
