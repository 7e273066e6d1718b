//! What events record of a license: its state before and after a change.
use licentia_domain::license_record::{Cause, License};

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
