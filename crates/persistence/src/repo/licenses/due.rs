//! What the sweep finds due: renewals, expiries, deletions after grace, notices.
#[allow(clippy::wildcard_imports)]
use super::*;

/// Which licenses a sweep looks at; every variant is re-checked under the row lock by the
/// caller, so a candidate that changed meanwhile is simply skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Auto-renewal on, `active` or `suspended` (not for expiry), `valid_until ≤ until`.
    AutoRenewal { until: OffsetDateTime },
    /// `active` or `suspended` (`manual`) with `valid_until ≤ now`.
    Expiry { now: OffsetDateTime },
    /// `suspended` (`expired`) with `valid_until ≤ cutoff` (now − grace period).
    GraceDeletion { cutoff: OffsetDateTime },
    /// Not `ordered`/`deleted`, `now < valid_until ≤ until`, and no notice for this term yet.
    ExpiringNotice {
        now: OffsetDateTime,
        until: OffsetDateTime,
    },
}

impl Due {
    fn condition(self) -> Condition {
        let status = |s: &'static str| Column::Status.eq(s);
        match self {
            Due::AutoRenewal { until } => Condition::all()
                .add(renewable())
                .add(Column::AutoRenewMonths.is_not_null())
                .add(Column::ValidUntil.lte(crate::truncate(until)))
                .add(
                    Condition::any().add(status("active")).add(
                        Condition::all()
                            .add(status("suspended"))
                            .add(Column::SuspensionReason.ne("expired")),
                    ),
                ),
            Due::Expiry { now } => Condition::all()
                .add(renewable())
                .add(Column::ValidUntil.lte(crate::truncate(now)))
                .add(
                    Condition::any().add(status("active")).add(
                        Condition::all()
                            .add(status("suspended"))
                            .add(Column::SuspensionReason.eq("manual")),
                    ),
                ),
            Due::GraceDeletion { cutoff } => Condition::all()
                .add(status("suspended"))
                .add(Column::SuspensionReason.eq("expired"))
                .add(Column::ValidUntil.lte(crate::truncate(cutoff))),
            Due::ExpiringNotice { now, until } => Condition::all()
                .add(Column::Status.is_in(["active", "suspended", "in_progress"]))
                .add(Column::ValidUntil.gt(crate::truncate(now)))
                .add(Column::ValidUntil.lte(crate::truncate(until)))
                .add(
                    Condition::any()
                        .add(Column::ExpiringNoticeFor.is_null())
                        .add(
                            Expr::col(Column::ExpiringNoticeFor).ne(Expr::col(Column::ValidUntil)),
                        ),
                ),
        }
    }
}

/// The clause of the partial index `ix_licenses_renewable_term` (migration m0013), verbatim:
/// renewals and expiries only ever concern these licenses, and with the clause in their
/// condition PostgreSQL reads them by `(valid_until, id)` from that index (a sweep with
/// nothing due reads one index page) instead of walking every license by id.
fn renewable() -> Expr {
    Expr::cust(licentia_migration::m0013_due_index::RENEWABLE)
}

/// Where a sweep's walk stands: the term end and id of the last candidate it was given.
pub type DueAfter = (OffsetDateTime, LicenseId);

/// Up to `limit` licenses `due` for a sweep, in `(valid_until, id)` order after `after`
/// (keyset), so a sweep walks every candidate once even when some of them are left as they
/// were. Every kind bounds `valid_until`, so no candidate lacks one. A candidate the sweep
/// changed can come back later in the same walk (a renewal that still ends before the bound);
/// the caller skips those it has seen.
pub async fn due(
    db: &impl ConnectionTrait,
    due: Due,
    after: Option<DueAfter>,
    limit: u64,
) -> Result<Vec<License>> {
    let mut q = Entity::find().filter(due.condition());
    if let Some((valid_until, id)) = after {
        q = q.filter(
            Expr::tuple([Expr::col(Column::ValidUntil), Expr::col(Column::Id)]).gt(Expr::tuple([
                Expr::value(crate::truncate(valid_until)),
                Expr::value(id.as_uuid()),
            ])),
        );
    }
    q.order_by(Column::ValidUntil, Order::Asc)
        .order_by(Column::Id, Order::Asc)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(License::try_from)
        .collect()
}

/// Records that the "expiring soon" notice of the term ending at `valid_until` was sent.
/// True only for the one caller that recorded it first, and only while the license still has
/// that term and is not `ordered`/`deleted`: the notice goes out once per term, however many
/// sweeps run at once. The license's `version` does not change (no field of it changed).
pub async fn mark_expiring_notice(
    db: &impl ConnectionTrait,
    id: LicenseId,
    valid_until: OffsetDateTime,
) -> Result<bool> {
    let valid_until = crate::truncate(valid_until);
    let res = Entity::update_many()
        .col_expr(Column::ExpiringNoticeFor, Expr::value(Some(valid_until)))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(Column::ValidUntil.eq(valid_until))
        .filter(Column::Status.is_in(["active", "suspended", "in_progress"]))
        .filter(
            Condition::any()
                .add(Column::ExpiringNoticeFor.is_null())
                .add(Column::ExpiringNoticeFor.ne(valid_until)),
        )
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}
