//! Webhook endpoints and their delivery log, which is also the outbox: [`enqueue_deliveries`]
//! runs inside [`super::events::record`], so a delivery (and the `webhook_delivery` job that
//! works it) is written in the same transaction as its event — committed together or not at
//! all.
use licentia_domain::event::EventType;
use licentia_domain::ids::{AccountId, EventId, JobId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::event_record::Event;
use super::jobs;
use crate::entities::events as event_rows;
use crate::entities::webhook_deliveries::{self as deliveries, Column as D};
use crate::entities::webhook_endpoints::{self as endpoints, Column as E};
use crate::error::{PersistenceError, Result};

/// The job kind that works one delivery.
pub const JOB_KIND: &str = "webhook_delivery";

/// Attempts per delivery. With the default schedule (1 s doubling to a 1 h cap) the last
/// attempt comes a little more than 24 h after the first.
pub const MAX_ATTEMPTS: i32 = 36;

/// The `event_types` entry that subscribes to every type.
pub const ALL_TYPES: &str = "*";

/// `last_error` keeps the start of the message.
const MAX_ERROR_CHARS: usize = 1_000;

pub use licentia_domain::event::DeliveryStatus;

/// A registered endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub id: Uuid,
    pub account_id: AccountId,
    /// The provider's endpoints receive the events of every account.
    pub all_accounts: bool,
    pub url: String,
    pub event_types: Vec<String>,
    /// The signing secret, sealed with the service's encryption key; never sent anywhere.
    pub secret_enc: Vec<u8>,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Endpoint {
    /// Whether the endpoint subscribes to `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types
            .iter()
            .any(|t| t == ALL_TYPES || t == event_type)
    }
}

impl TryFrom<endpoints::Model> for Endpoint {
    type Error = PersistenceError;
    fn try_from(m: endpoints::Model) -> Result<Self> {
        let event_types = serde_json::from_value(m.event_types).map_err(|_| {
            PersistenceError::Corrupt(format!("webhook endpoint {} event_types", m.id))
        })?;
        Ok(Self {
            id: m.id,
            account_id: AccountId::from_uuid(m.account_id),
            all_accounts: m.all_accounts,
            url: m.url,
            event_types,
            secret_enc: m.secret_enc,
            enabled: m.enabled,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// What registering an endpoint stores.
#[derive(Clone, Debug)]
pub struct NewEndpoint {
    pub account_id: AccountId,
    pub all_accounts: bool,
    pub url: String,
    pub event_types: Vec<String>,
    pub secret_enc: Vec<u8>,
}

pub async fn insert(db: &impl ConnectionTrait, new: NewEndpoint) -> Result<Endpoint> {
    let now = crate::now();
    let row = endpoints::ActiveModel {
        id: Set(Uuid::now_v7()),
        account_id: Set(new.account_id.as_uuid()),
        all_accounts: Set(new.all_accounts),
        url: Set(new.url),
        event_types: Set(serde_json::json!(new.event_types)),
        secret_enc: Set(new.secret_enc),
        enabled: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    };
    endpoints::Entity::insert(row)
        .exec_with_returning(db)
        .await?
        .try_into()
}

/// Restricts a query to `account`'s endpoints; `None` is the provider's view of all.
fn scoped(account: Option<AccountId>) -> Condition {
    match account {
        Some(account) => Condition::all().add(E::AccountId.eq(account.as_uuid())),
        None => Condition::all(),
    }
}

/// The endpoint, when `account` (or the provider, with `None`) may see it.
pub async fn find(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    id: Uuid,
) -> Result<Option<Endpoint>> {
    endpoints::Entity::find_by_id(id)
        .filter(scoped(account))
        .one(db)
        .await?
        .map(Endpoint::try_from)
        .transpose()
}

/// Endpoints oldest first, keyset-paged by id.
pub async fn list(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Endpoint>> {
    let mut q = endpoints::Entity::find()
        .filter(scoped(account))
        .order_by_asc(E::Id)
        .limit(limit);
    if let Some(after) = after {
        q = q.filter(E::Id.gt(after));
    }
    q.all(db)
        .await?
        .into_iter()
        .map(Endpoint::try_from)
        .collect()
}

/// How many endpoints the account has registered.
async fn count(db: &impl ConnectionTrait, account: AccountId) -> Result<u64> {
    Ok(endpoints::Entity::find()
        .filter(E::AccountId.eq(account.as_uuid()))
        .count(db)
        .await?)
}

/// Inserts `new` unless its account already has `max` endpoints (`None` then). The account's
/// row is locked first (inside the caller's transaction), so registrations running at once
/// count one after the other and never pass `max` together.
pub async fn insert_within(
    txn: &sea_orm::DatabaseTransaction,
    new: NewEndpoint,
    max: u64,
) -> Result<Option<Endpoint>> {
    super::accounts::lock(txn, new.account_id).await?;
    if count(txn, new.account_id).await? >= max {
        return Ok(None);
    }
    insert(txn, new).await.map(Some)
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Applies `changes` to a visible endpoint; `None` when it is not (or no longer) there.
pub async fn update(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    id: Uuid,
    changes: EndpointChanges,
) -> Result<Option<Endpoint>> {
    let mut q = endpoints::Entity::update_many()
        .col_expr(E::UpdatedAt, Expr::value(crate::now()))
        .filter(E::Id.eq(id))
        .filter(scoped(account));
    if let Some(url) = changes.url {
        q = q.col_expr(E::Url, Expr::value(url));
    }
    if let Some(types) = changes.event_types {
        q = q.col_expr(E::EventTypes, Expr::value(serde_json::json!(types)));
    }
    if let Some(enabled) = changes.enabled {
        q = q.col_expr(E::Enabled, Expr::value(enabled));
    }
    if q.exec(db).await?.rows_affected == 0 {
        return Ok(None);
    }
    find(db, account, id).await
}

/// Deletes a visible endpoint and, with it, its delivery log. False when there is none.
pub async fn delete(
    db: &impl ConnectionTrait,
    account: Option<AccountId>,
    id: Uuid,
) -> Result<bool> {
    deliveries::Entity::delete_many()
        .filter(
            D::EndpointId.in_subquery(sea_orm::QueryTrait::into_query(
                endpoints::Entity::find()
                    .select_only()
                    .column(E::Id)
                    .filter(E::Id.eq(id))
                    .filter(scoped(account)),
            )),
        )
        .exec(db)
        .await?;
    let res = endpoints::Entity::delete_many()
        .filter(E::Id.eq(id))
        .filter(scoped(account))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// The outbox: one pending delivery, and one job to work it, per enabled endpoint that
/// subscribes to the event — the account's own endpoints and the provider's. Call it with the
/// transaction that records the event. Returns how many deliveries were queued.
pub async fn enqueue_deliveries(
    db: &impl ConnectionTrait,
    event_id: EventId,
    event_type: EventType,
    account: AccountId,
    now: OffsetDateTime,
) -> Result<usize> {
    let targets = endpoints::Entity::find()
        .filter(E::Enabled.eq(true))
        .filter(
            Condition::any()
                .add(E::AccountId.eq(account.as_uuid()))
                .add(E::AllAccounts.eq(true)),
        )
        .all(db)
        .await?;
    let mut queued = 0;
    for row in targets {
        let endpoint = Endpoint::try_from(row)?;
        if !endpoint.wants(event_type.as_str()) {
            continue;
        }
        queue_delivery(db, endpoint.id, event_id, event_type, now).await?;
        queued += 1;
    }
    Ok(queued)
}

/// Queues one delivery of the event to one endpoint, with the job that works it, whatever the
/// endpoint subscribes to: a redelivery, or a `webhook.ping`. Returns the new delivery.
pub async fn queue_delivery(
    db: &impl ConnectionTrait,
    endpoint_id: Uuid,
    event_id: EventId,
    event_type: EventType,
    now: OffsetDateTime,
) -> Result<Delivery> {
    let id = Uuid::now_v7();
    let now = crate::truncate(now);
    let delivery = deliveries::ActiveModel {
        id: Set(id),
        endpoint_id: Set(endpoint_id),
        event_id: Set(event_id.as_uuid()),
        event_type: Set(event_type.as_str().to_owned()),
        status: Set(DeliveryStatus::Pending.as_str().to_owned()),
        attempts: Set(0),
        last_status_code: Set(None),
        last_error: Set(None),
        next_attempt_at: Set(Some(now)),
        delivered_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let row = deliveries::Entity::insert(delivery)
        .exec_with_returning(db)
        .await?;
    jobs::enqueue(
        db,
        JOB_KIND,
        serde_json::json!({ "delivery_id": id }),
        now,
        MAX_ATTEMPTS,
        None,
    )
    .await?;
    Delivery::try_from(row)
}

/// One delivery of an endpoint; `None` when the endpoint has no such delivery.
pub async fn find_delivery(
    db: &impl ConnectionTrait,
    endpoint_id: Uuid,
    id: Uuid,
) -> Result<Option<Delivery>> {
    deliveries::Entity::find_by_id(id)
        .filter(D::EndpointId.eq(endpoint_id))
        .one(db)
        .await?
        .map(Delivery::try_from)
        .transpose()
}

/// One delivery of one event to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl TryFrom<deliveries::Model> for Delivery {
    type Error = PersistenceError;
    fn try_from(m: deliveries::Model) -> Result<Self> {
        Ok(Self {
            id: m.id,
            endpoint_id: m.endpoint_id,
            event_id: EventId::from_uuid(m.event_id),
            event_type: crate::error::parse("webhook_delivery.event_type", &m.event_type)?,
            status: crate::error::parse("webhook_delivery.status", &m.status)?,
            attempts: m.attempts,
            last_status_code: m.last_status_code,
            last_error: m.last_error,
            next_attempt_at: m.next_attempt_at,
            delivered_at: m.delivered_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// A delivery with its endpoint and event: what the worker needs to send it. `None` when the
/// delivery is gone (its endpoint was deleted).
pub async fn delivery_context(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<(Delivery, Endpoint, Event)>> {
    let Some(delivery) = deliveries::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let delivery = Delivery::try_from(delivery)?;
    let Some(endpoint) = endpoints::Entity::find_by_id(delivery.endpoint_id)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let event = event_rows::Entity::find_by_id(delivery.event_id.as_uuid())
        .one(db)
        .await?
        .ok_or_else(|| PersistenceError::Corrupt(format!("delivery {id} without its event")))?;
    Ok(Some((delivery, endpoint.try_into()?, event.try_into()?)))
}

/// The endpoint's deliveries, newest first, keyset-paged by id.
pub async fn list_deliveries(
    db: &impl ConnectionTrait,
    endpoint_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Delivery>> {
    let mut q = deliveries::Entity::find()
        .filter(D::EndpointId.eq(endpoint_id))
        .order_by_desc(D::Id)
        .limit(limit);
    if let Some(after) = after {
        q = q.filter(D::Id.lt(after));
    }
    q.all(db)
        .await?
        .into_iter()
        .map(Delivery::try_from)
        .collect()
}

/// The outcome of one attempt, as the delivery log shows it.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub status: DeliveryStatus,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why the attempt failed (refused address, timeout, connection error, non-2xx answer).
    pub error: Option<String>,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
}

/// Writes an attempt's outcome and, in the caller's transaction, finishes or reschedules
/// its job: complete when delivered or failed for good, queued again
/// at `next_attempt_at` otherwise.
pub async fn record_attempt(
    db: &impl ConnectionTrait,
    id: Uuid,
    job: JobId,
    attempt: Attempt,
) -> Result<()> {
    let error = attempt
        .error
        .as_deref()
        .map(|e| e.chars().take(MAX_ERROR_CHARS).collect::<String>());
    deliveries::Entity::update_many()
        .col_expr(D::Status, Expr::value(attempt.status.as_str()))
        .col_expr(D::Attempts, Expr::value(attempt.attempts))
        .col_expr(
            D::LastStatusCode,
            Expr::value(attempt.status_code.map(i32::from)),
        )
        .col_expr(D::LastError, Expr::value(error.clone()))
        .col_expr(
            D::NextAttemptAt,
            Expr::value(attempt.next_attempt_at.map(crate::truncate)),
        )
        .col_expr(
            D::DeliveredAt,
            Expr::value(attempt.delivered_at.map(crate::truncate)),
        )
        .col_expr(D::UpdatedAt, Expr::value(crate::now()))
        .filter(D::Id.eq(id))
        .exec(db)
        .await?;
    match (attempt.status, attempt.next_attempt_at) {
        (DeliveryStatus::Pending, Some(at)) => {
            jobs::fail(
                db,
                job,
                error.as_deref().unwrap_or("not delivered"),
                Some(at),
            )
            .await?;
        }
        (DeliveryStatus::Failed, _) => {
            jobs::fail(db, job, error.as_deref().unwrap_or("given up"), None).await?;
        }
        _ => {
            jobs::complete(db, job).await?;
        }
    }
    Ok(())
}
