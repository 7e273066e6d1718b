//! Bulk operations (CONTRACT §4): one action applied to every license a filter matched, as a
//! job. Each item runs in its own transaction through the same code as the single call
//! ([`lifecycle::transition`], the renewal's [`PaymentPlan`], the auto-renewal rule of
//! `PATCH`), so it answers exactly what that call would: `ok` or the problem code.
//!
//! A real run claims each item (its result row) first in the item's transaction and applies
//! the action inside a savepoint: the effect and its `ok` commit together, a refusal rolls
//! back to the savepoint and stores its code instead. Two workers never apply one item twice,
//! and a job interrupted halfway resumes with the items that have no result yet.
//!
//! A dry run applies each item in a transaction that is rolled back. So that funds run out in
//! the dry run where they would in the real one, what the earlier items would have charged is
//! charged first inside that transaction ([`bulk::Operation::simulated_spend`]).
use licentia_domain::bulk::BulkStatus;
use licentia_domain::event::EventType;
use std::collections::BTreeMap;

use licentia_domain::ids::{AccountId, LicenseId};
use licentia_domain::license::Actor as LifecycleActor;
use licentia_domain::license_record::Annotation;
use licentia_domain::period::Period;
use licentia_persistence::repo::jobs::{self, Job};
use licentia_persistence::repo::licenses::{self, Filter, Scope as LicenseScope, Sort};
use licentia_persistence::repo::{bulk, products};
use licentia_persistence::{DatabaseTransaction, PersistenceError, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::renew::RenewLicense;
use super::transition::{self as lifecycle, Caller, Transition};
use crate::error::{AppError, AppResult};
use crate::orders as billing;
use crate::snapshot::{license_snapshot, record_change};
use crate::{Ctx, Payment};

pub const JOB_KIND: &str = "bulk_operation";

/// Items one job run handles before it queues its continuation, so that a large operation
/// neither outlives the job's lease nor holds up the other jobs of its worker.
const BATCH: u64 = 200;

/// Attempts of each job run; runs fail only when the database does.
const JOB_ATTEMPTS: i32 = 10;

/// What a bulk operation does to each license.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Disable,
    Enable,
    Delete,
    /// A renewal for the period, paid from the balance.
    Renew {
        period: Period,
    },
    /// Auto-renewal for the period, or off.
    SetAutoRenew {
        period: Option<Period>,
    },
}

impl Action {
    /// The action's name on the wire and in the database.
    pub fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Enable => "enable",
            Self::Delete => "delete",
            Self::Renew { .. } => "renew",
            Self::SetAutoRenew { .. } => "set_auto_renew",
        }
    }

    /// The action's `params` as stored.
    pub fn params(self) -> serde_json::Value {
        match self {
            Self::Renew { period } => json!({"period_months": period.months()}),
            Self::SetAutoRenew { period } => {
                json!({"auto_renew_months": period.map(Period::months)})
            }
            _ => json!({}),
        }
    }

    fn from_stored(name: &str, params: &serde_json::Value) -> AppResult<Self> {
        let period = |key: &str| -> AppResult<Option<Period>> {
            match params.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .and_then(|n| Period::new(n).ok())
                    .map(Some)
                    .ok_or_else(|| AppError::internal(format!("bulk operation: bad {key}"))),
            }
        };
        Ok(match name {
            "disable" => Self::Disable,
            "enable" => Self::Enable,
            "delete" => Self::Delete,
            "renew" => Self::Renew {
                period: period("period_months")?
                    .ok_or_else(|| AppError::internal("bulk operation: renew without a period"))?,
            },
            "set_auto_renew" => Self::SetAutoRenew {
                period: period("auto_renew_months")?,
            },
            other => {
                return Err(AppError::internal(format!(
                    "bulk operation: unknown action {other}"
                )));
            }
        })
    }
}

/// Creates an operation over the licenses `filter` matches for `caller` (422
/// `too_many_matches` beyond `bulk_max_matches`) and queues its job. An operation that
/// matched nothing is completed at once.
pub async fn create(
    ctx: &Ctx,
    caller: &Caller,
    account: AccountId,
    action: Action,
    filter: &Filter,
    dry_run: bool,
) -> AppResult<(bulk::Operation, licentia_persistence::DatabaseTransaction)> {
    let db = ctx.db.conn();
    let max = ctx.policy.bulk_max_matches;
    let matched = licenses::list(
        db,
        caller.scope,
        filter,
        Sort::CreatedAt { desc: false },
        None,
        max.saturating_add(1),
    )
    .await?;
    if u64::try_from(matched.len()).unwrap_or(u64::MAX) > max {
        return Err(AppError::TooManyMatches { limit: max });
    }
    let id = Uuid::now_v7();
    let txn = licentia_persistence::begin(db).await?;
    let op = bulk::create(
        &txn,
        bulk::NewOperation {
            id,
            account_id: account,
            actor: caller.actor,
            admin: caller.role == LifecycleActor::Admin,
            action: action.name().to_owned(),
            params: action.params(),
            dry_run,
            licenses: matched.iter().map(|l| l.id).collect(),
        },
    )
    .await?;
    if matched.is_empty() {
        bulk::set_status(
            &txn,
            id,
            &[BulkStatus::Pending],
            BulkStatus::Completed,
            None,
        )
        .await?;
    } else {
        enqueue(&txn, id).await?;
    }
    Ok((op, txn))
}

async fn enqueue(db: &impl licentia_persistence::ConnectionTrait, id: Uuid) -> AppResult<()> {
    jobs::enqueue(
        db,
        JOB_KIND,
        json!({"operation_id": id}),
        licentia_persistence::now(),
        JOB_ATTEMPTS,
        None,
    )
    .await?;
    Ok(())
}

/// Runs one batch of an operation's job; the operation becomes `failed` when the job's last
/// attempt fails.
pub async fn run(ctx: &Ctx, job: &Job) -> AppResult<()> {
    let id: Uuid = serde_json::from_value(job.payload["operation_id"].clone())
        .map_err(|e| AppError::internal(format!("bad bulk operation payload: {e}")))?;
    let outcome = run_batch(ctx, id).await;
    if let Err(e) = &outcome
        && job.retry_at(licentia_persistence::now()).is_none()
    {
        bulk::set_status(
            ctx.db.conn(),
            id,
            &[BulkStatus::Pending, BulkStatus::Running],
            BulkStatus::Failed,
            Some(&e.to_string()),
        )
        .await?;
    }
    outcome
}

async fn run_batch(ctx: &Ctx, id: Uuid) -> AppResult<()> {
    let db = ctx.db.conn();
    let Some(op) = bulk::find(db, None, id).await? else {
        return Ok(());
    };
    if op.status.is_finished() {
        return Ok(());
    }
    bulk::set_status(db, id, &[BulkStatus::Pending], BulkStatus::Running, None).await?;
    let action = Action::from_stored(&op.action, &op.params)?;
    let caller = if op.admin {
        Caller {
            scope: LicenseScope::All,
            role: LifecycleActor::Admin,
            actor: op.actor,
        }
    } else {
        Caller {
            scope: LicenseScope::Tenant(op.account_id),
            role: LifecycleActor::Partner,
            actor: op.actor,
        }
    };
    let mut spend: BTreeMap<Uuid, i64> =
        serde_json::from_value(op.simulated_spend.clone()).unwrap_or_default();
    for license in bulk::pending_items(db, id, BATCH).await? {
        if op.dry_run {
            evaluate(ctx, id, &caller, action, license, &mut spend).await?;
        } else {
            apply(ctx, id, &caller, action, license).await?;
        }
    }
    if bulk::remaining(db, id).await? == 0 {
        bulk::set_status(db, id, &[BulkStatus::Running], BulkStatus::Completed, None).await?;
    } else {
        enqueue(db, id).await?;
    }
    Ok(())
}

/// The problem code an item answers with, or the error itself when the whole run should be
/// retried (the database is unavailable or aborted the transaction).
fn item_code(e: AppError) -> AppResult<&'static str> {
    match e {
        AppError::Unavailable => Err(e),
        e => {
            if let AppError::Internal(cause) = &e {
                tracing::error!(cause = %cause.chain(), "bulk operation item failed");
            }
            Ok(e.code().0)
        }
    }
}

/// A real run of one item (see the module documentation).
async fn apply(
    ctx: &Ctx,
    id: Uuid,
    caller: &Caller,
    action: Action,
    license: LicenseId,
) -> AppResult<()> {
    let txn = ctx.begin().await?;
    if !bulk::record_result(&txn, id, license, "ok").await? {
        // Another worker has applied it.
        return Ok(());
    }
    let savepoint = txn.begin().await.map_err(PersistenceError::from)?;
    match perform(&savepoint, ctx, caller, action, license).await {
        Ok(_) => savepoint.commit().await.map_err(PersistenceError::from)?,
        Err(e) => {
            let code = item_code(e)?;
            savepoint.rollback().await.map_err(PersistenceError::from)?;
            bulk::replace_result(&txn, id, license, code).await?;
        }
    }
    txn.commit().await.map_err(PersistenceError::from)?;
    Ok(())
}

/// A dry run of one item (see the module documentation).
async fn evaluate(
    ctx: &Ctx,
    id: Uuid,
    caller: &Caller,
    action: Action,
    license: LicenseId,
    spend: &mut BTreeMap<Uuid, i64>,
) -> AppResult<()> {
    let db = ctx.db.conn();
    let txn = licentia_persistence::begin(db).await?;
    let outcome = async {
        if matches!(action, Action::Renew { .. }) {
            // The license first, then its account: the lock order of every money path.
            let locked = licenses::lock(&txn, caller.scope, license)
                .await?
                .ok_or(AppError::NotFound)?;
            let spent = spend
                .get(&locked.account_id.as_uuid())
                .copied()
                .unwrap_or(0);
            billing::charge(&txn, locked.account_id, spent, "bulk dry run", None).await?;
        }
        perform(&txn, ctx, caller, action, license).await
    }
    .await;
    txn.rollback().await.map_err(PersistenceError::from)?;
    let (code, charged) = match outcome {
        Ok((account, amount)) => ("ok", Some((account, amount))),
        Err(e) => (item_code(e)?, None),
    };
    let txn = licentia_persistence::begin(db).await?;
    if bulk::record_result(&txn, id, license, code).await?
        && let Some((account, amount)) = charged.filter(|(_, amount)| *amount > 0)
    {
        let total = spend.entry(account.as_uuid()).or_insert(0);
        *total = total.saturating_add(amount);
        bulk::set_simulated_spend(&txn, id, json!(spend)).await?;
    }
    txn.commit().await.map_err(PersistenceError::from)?;
    Ok(())
}

/// Applies `action` to one license inside `txn` with the rules of the single call. Returns the
/// license's account and what it was charged.
async fn perform(
    txn: &DatabaseTransaction,
    ctx: &Ctx,
    caller: &Caller,
    action: Action,
    license: LicenseId,
) -> AppResult<(AccountId, i64)> {
    let now = ctx.clock.now();
    let attempts = ctx.policy.provision_attempts;
    let transition = match action {
        Action::Disable => Transition::Disable,
        Action::Enable => Transition::Enable,
        Action::Delete => Transition::Delete,
        Action::Renew { period } => return renew(txn, ctx, caller, license, period).await,
        Action::SetAutoRenew { period } => {
            return set_auto_renew(txn, caller, license, period).await;
        }
    };
    let saved = lifecycle::transition(
        txn,
        caller,
        license,
        transition,
        Annotation::default(),
        now,
        attempts,
        |_| Ok(()),
    )
    .await?;
    Ok((saved.account_id, 0))
}

/// `POST /v1/licenses/{id}/renewals` with `{"method":"balance"}`, for the license's owner as
/// it stands when the item runs.
async fn renew(
    txn: &DatabaseTransaction,
    ctx: &Ctx,
    caller: &Caller,
    license: LicenseId,
    period: Period,
) -> AppResult<(AccountId, i64)> {
    let owner = licenses::find(txn, caller.scope, license)
        .await?
        .ok_or(AppError::NotFound)?
        .account_id;
    let renewed = super::renew::renew(
        txn,
        ctx,
        caller,
        RenewLicense {
            license,
            account: owner,
            period_months: i64::from(period.months()),
            payment: Payment::Balance {},
        },
        |_| Ok(()),
    )
    .await?;
    Ok((renewed.license.account_id, renewed.amount))
}

/// `PATCH /v1/licenses/{id}` with `{"auto_renew_months": …}`.
async fn set_auto_renew(
    txn: &DatabaseTransaction,
    caller: &Caller,
    license: LicenseId,
    period: Option<Period>,
) -> AppResult<(AccountId, i64)> {
    let license = licenses::lock(txn, caller.scope, license)
        .await?
        .ok_or(AppError::NotFound)?;
    license.lifecycle.can_edit_unprovisioned()?;
    if period.is_some() && license.trial {
        return Err(AppError::field(
            "auto_renew_months",
            "cannot be set on a trial; a paid renewal converts it first",
        ));
    }
    if let Some(p) = period {
        let product = products::find(txn, license.product_id)
            .await?
            .ok_or(AppError::NotFound)?;
        if product.pricing.price_for(p).is_none() {
            return Err(AppError::field(
                "auto_renew_months",
                "the product does not offer this period",
            ));
        }
    }
    let before = license_snapshot(&license);
    let mut next = license.clone();
    next.auto_renew = period;
    let saved = licenses::save(txn, &next, None).await?;
    record_change(
        txn,
        EventType::LicenseUpdated,
        caller.actor,
        Some(before),
        &saved,
    )
    .await?;
    Ok((saved.account_id, 0))
}
