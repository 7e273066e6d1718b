//! The event log: every state change writes one row in the same transaction as the change.
use licentia_domain::ids::{AccountId, EventId, LicenseId};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entities::events;
use crate::error::Result;

pub use super::event_record::{Actor, ActorKind, Event};

/// An event to record.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: licentia_domain::event::EventType,
    pub account_id: AccountId,
    pub license_id: Option<LicenseId>,
    pub actor: Actor,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Records an event; call it with the transaction that makes the change. The same
/// transaction queues the event's webhook deliveries (the outbox), so a committed change is
/// always announced and a rolled-back one never is.
pub async fn record(
    db: &impl ConnectionTrait,
    event: NewEvent,
) -> Result<(EventId, OffsetDateTime)> {
    let event_type = event.event_type;
    let account = event.account_id;
    let (id, now) = record_undelivered(db, event).await?;
    super::webhooks::enqueue_deliveries(db, id, event_type, account, now).await?;
    Ok((id, now))
}

/// Records an event without queueing it to the subscribed endpoints: for an event meant for
/// one endpoint only (`webhook.ping`), whose caller queues that one delivery itself.
pub async fn record_undelivered(
    db: &impl ConnectionTrait,
    event: NewEvent,
) -> Result<(EventId, OffsetDateTime)> {
    let id = EventId::new();
    let now = crate::now();
    let row = events::ActiveModel {
        id: Set(id.as_uuid()),
        event_type: Set(event.event_type.as_str().to_owned()),
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

/// A keyset page of events, newest first (ids are UUIDv7, so id order is time order): those
/// older than `after` (exclusive), at most `limit`. `account` scopes the list to one tenant;
/// `None` is the provider's view of every account.
pub async fn list(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    license_id: Option<LicenseId>,
    event_type: Option<&str>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Event>> {
    let mut q = events::Entity::find()
        .order_by_desc(events::Column::Id)
        .limit(limit);
    if let Some(account) = account {
        q = q.filter(events::Column::AccountId.eq(account.as_uuid()));
    }
    if let Some(license) = license_id {
        q = q.filter(events::Column::LicenseId.eq(license.as_uuid()));
    }
    if let Some(event_type) = event_type {
        q = q.filter(events::Column::EventType.eq(event_type));
    }
    if let Some(after) = after {
        q = q.filter(events::Column::Id.lt(after));
    }
    q.all(db).await?.into_iter().map(Event::try_from).collect()
}
