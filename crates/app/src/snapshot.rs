//! What events record of a license: its state before and after a change.
use licentia_domain::event::EventType;
use licentia_domain::license_record::{Cause, License};
use licentia_persistence::ConnectionTrait;
use licentia_persistence::repo::events::{self, Actor, NewEvent};

use crate::AppResult;

/// The license's state as events carry it (`before`/`after`).
pub fn license_snapshot(l: &License) -> serde_json::Value {
    serde_json::json!({
        "status": l.lifecycle.status.as_str(),
        "suspension_reason": l.lifecycle.suspension_reason.map(|r| r.as_str()),
        "valid_until": l.lifecycle.valid_until.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        "name": l.name,
        "ip": l.ip.to_string(),
        "product_id": l.product_id,
        "period_months": l.period.months(),
        "options": l.options,
        "auto_renew_months": l.auto_renew.map(|p| p.months()),
        "account_id": l.account_id,
        "version": l.version,
        "trial": l.trial,
        "suspension_cause": l.suspension.cause.map(Cause::as_str),
        "suspension_note": l.suspension.note,
        "deletion_cause": l.deletion.cause.map(Cause::as_str),
        "deletion_note": l.deletion.note,
    })
}

/// Records `event_type` about `after` (the license as saved), with its state `before` the
/// change when there was one.
pub async fn record_change(
    db: &impl ConnectionTrait,
    event_type: EventType,
    actor: Actor,
    before: Option<serde_json::Value>,
    after: &License,
) -> AppResult<()> {
    events::record(
        db,
        NewEvent {
            event_type,
            account_id: after.account_id,
            license_id: Some(after.id),
            actor,
            before,
            after: Some(license_snapshot(after)),
        },
    )
    .await?;
    Ok(())
}
