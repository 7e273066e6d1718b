//! The use cases without HTTP: a `Ctx` on a fresh SQLite database, commands in, outcomes and
//! `AppError`s out, the books checked through the repositories.
#![allow(clippy::unwrap_used)]
use std::collections::BTreeMap;
use std::sync::Arc;

use licentia_app::clock::SystemClock;
use licentia_app::licenses::edit::{self, EditLicense};
use licentia_app::licenses::order::{self, OrderLicense, Ordered, Term};
use licentia_app::licenses::transition::Caller;
use licentia_app::provisioning::LocalProvisioner;
use licentia_app::tx::commit;
use licentia_app::{AppError, Ctx, Payment, Policy};
use licentia_domain::auth::AccountKind;
use licentia_domain::ids::{AccountId, ProductId};
use licentia_domain::license::LicenseStatus;
use licentia_domain::license_fields::{LicenseName, Metadata, parse_ip};
use licentia_domain::money::Currency;
use licentia_domain::period::Period;
use licentia_domain::pricing::{PeriodPrice, ProductPricing};
use licentia_domain::product::Product;
use licentia_persistence::repo::accounts::{self, NewAccount};
use licentia_persistence::repo::events::Actor;
use licentia_persistence::repo::ledger::{self, LedgerKind};
use licentia_persistence::repo::products;
use licentia_persistence::{Db, PoolConfig};

/// A database file removed when the test ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

async fn ctx() -> (Ctx, Scratch) {
    let path = std::env::temp_dir().join(format!("licentia-app-{}.db", uuid::Uuid::now_v7()));
    let scratch = Scratch(path.clone());
    let db = Db::connect(
        &format!("sqlite://{}?mode=rwc", path.display()),
        &PoolConfig::default(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let ctx = Ctx {
        db,
        clock: Arc::new(SystemClock),
        policy: Arc::new(Policy {
            transfer_ttl: time::Duration::hours(72),
            sweep_interval: time::Duration::seconds(60),
            renew_lead: time::Duration::days(3),
            grace: time::Duration::days(30),
            expiring_soon: time::Duration::days(7),
            provision_attempts: 3,
            bulk_max_matches: 100,
        }),
        currency: Currency::parse("USD").unwrap(),
        encryption_key: Arc::new([7; 32]),
        provisioner: Arc::new(LocalProvisioner),
    };
    (ctx, scratch)
}

async fn partner(ctx: &Ctx, balance: i64) -> AccountId {
    let account = accounts::create(
        ctx.db.conn(),
        NewAccount {
            id: AccountId::new(),
            kind: AccountKind::Partner,
            name: "Partner".into(),
            currency: ctx.currency,
            credit_limit: 0,
        },
    )
    .await
    .unwrap();
    if balance > 0 {
        ledger::credit(
            ctx.db.conn(),
            account.id,
            balance,
            LedgerKind::Credit,
            "top-up",
            None,
        )
        .await
        .unwrap();
    }
    account.id
}

async fn product(ctx: &Ctx, code: &str, twelve_months: i64, trial_days: u32) -> Product {
    let now = licentia_persistence::now();
    products::insert(
        ctx.db.conn(),
        &Product {
            id: ProductId::new(),
            code: code.into(),
            name: code.into(),
            pricing: ProductPricing {
                prices: vec![PeriodPrice {
                    period: Period::new(12).unwrap(),
                    amount: twelve_months,
                }],
                options: vec![],
            },
            max_registrations: None,
            transferable: true,
            trial_days,
            archived: false,
            created_at: now,
            updated_at: now,
        },
    )
    .await
    .unwrap()
}

fn command(account: AccountId, product: &Product, ip: &str, term: Term) -> OrderLicense {
    OrderLicense {
        account_id: account,
        product_id: product.id,
        name: LicenseName::parse("shop").unwrap(),
        ip: parse_ip(ip).unwrap(),
        term,
        options: BTreeMap::new(),
        auto_renew: None,
        admin_password: None,
        external_id: None,
        metadata: Metadata::default(),
    }
}

fn paid() -> Term {
    Term::Paid {
        period: Period::new(12).unwrap(),
        payment: Payment::Balance {},
    }
}

async fn place(ctx: &Ctx, cmd: OrderLicense) -> Result<Ordered, AppError> {
    let txn = ctx.begin().await?;
    let ordered = order::order(ctx, &txn, Actor::SYSTEM, cmd).await?;
    commit(txn).await?;
    Ok(ordered)
}

/// Runs the queued provisioning jobs, as the worker would.
async fn provision(ctx: &Ctx) {
    let jobs = licentia_persistence::repo::jobs::claim_kinds(
        &ctx.db,
        "use-case-tests",
        std::time::Duration::from_secs(60),
        16,
        &[licentia_app::provisioning::JOB_KIND],
    )
    .await
    .unwrap();
    for job in jobs {
        licentia_app::provisioning::run(ctx, ctx.provisioner.as_ref(), &job)
            .await
            .unwrap();
        licentia_persistence::repo::jobs::complete(ctx.db.conn(), job.id)
            .await
            .unwrap();
    }
}

async fn balance(ctx: &Ctx, account: AccountId) -> i64 {
    accounts::get(ctx.db.conn(), account).await.unwrap().balance
}

#[tokio::test]
async fn an_order_paid_from_the_balance_charges_it_once() {
    let (ctx, _db) = ctx().await;
    let account = partner(&ctx, 10_000).await;
    let product = product(&ctx, "panel", 6_000, 0).await;
    let ordered = place(&ctx, command(account, &product, "192.0.2.1", paid()))
        .await
        .unwrap();
    assert_eq!(ordered.cost, 6_000);
    assert_eq!(ordered.license.lifecycle.status, LicenseStatus::InProgress);
    assert_eq!(
        ordered.order.unwrap().status,
        licentia_domain::order::OrderStatus::Paid
    );
    assert_eq!(balance(&ctx, account).await, 4_000);
    // The second one is refused whole: nothing is charged, no license is written.
    let err = place(&ctx, command(account, &product, "192.0.2.2", paid()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppError::InsufficientFunds {
                needed: 6_000,
                available: 4_000
            }
        ),
        "{err:?}"
    );
    assert_eq!(balance(&ctx, account).await, 4_000);
}

#[tokio::test]
async fn a_trial_is_free_and_taken_once_per_address() {
    let (ctx, _db) = ctx().await;
    let first = partner(&ctx, 0).await;
    let second = partner(&ctx, 0).await;
    let product = product(&ctx, "panel", 6_000, 14).await;
    let trial = place(&ctx, command(first, &product, "192.0.2.1", Term::Trial))
        .await
        .unwrap();
    assert!(trial.license.trial);
    assert_eq!(trial.cost, 0);
    assert!(trial.order.is_none());
    let again = place(
        &ctx,
        command(second, &product, "::ffff:192.0.2.1", Term::Trial),
    )
    .await;
    assert!(matches!(again, Err(AppError::TrialUsed)), "{again:?}");
}

#[tokio::test]
async fn an_order_names_every_field_the_product_refuses() {
    let (ctx, _db) = ctx().await;
    let account = partner(&ctx, 0).await;
    let product = product(&ctx, "panel", 6_000, 0).await;
    let mut cmd = command(account, &product, "192.0.2.1", Term::Trial);
    cmd.options.insert("extra".into(), 1);
    let err = place(&ctx, cmd).await.unwrap_err();
    let fields: Vec<_> = err
        .field_errors()
        .unwrap_or_default()
        .iter()
        .map(|e| e.field.as_str())
        .collect();
    assert_eq!(fields, ["trial"], "{err:?}");
    let mut cmd = command(account, &product, "192.0.2.1", paid());
    cmd.options.insert("extra".into(), 1);
    cmd.auto_renew = Some(Period::new(1).unwrap());
    let err = place(&ctx, cmd).await.unwrap_err();
    let fields: Vec<_> = err
        .field_errors()
        .unwrap_or_default()
        .iter()
        .map(|e| e.field.as_str())
        .collect();
    assert_eq!(fields, ["options.extra", "auto_renew_months"], "{err:?}");
}

#[tokio::test]
async fn a_product_switch_charges_the_prorated_difference() {
    let (ctx, _db) = ctx().await;
    let account = partner(&ctx, 20_000).await;
    let cheap = product(&ctx, "small", 6_000, 0).await;
    let dear = product(&ctx, "large", 12_000, 0).await;
    let ordered = place(&ctx, command(account, &cheap, "192.0.2.1", paid()))
        .await
        .unwrap();
    assert_eq!(balance(&ctx, account).await, 14_000);
    provision(&ctx).await;
    let caller = Caller::partner(account, Actor::SYSTEM);
    let edited = edit::edit(
        &ctx,
        &caller,
        ordered.license.id,
        cheap.clone(),
        EditLicense {
            product_id: Some(dear.id),
            ..EditLicense::default()
        },
        |_| Ok(()),
    )
    .await
    .unwrap();
    assert_eq!(edited.product.id, dear.id);
    // Switched on the first day of a 12-month term: (12,000 − 6,000) × 365/365, give or take
    // the rounding of the seconds already gone.
    let charged = 14_000 - balance(&ctx, account).await;
    assert!((5_990..=6_000).contains(&charged), "{charged}");
    // Another tenant reaches nothing.
    let stranger = Caller::partner(partner(&ctx, 0).await, Actor::SYSTEM);
    let err = edit::edit(
        &ctx,
        &stranger,
        ordered.license.id,
        dear,
        EditLicense::default(),
        |_| Ok(()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AppError::NotFound), "{err:?}");
}

#[test]
fn every_failure_has_a_stable_code() {
    let all = [
        AppError::NotFound,
        AppError::TrialUsed,
        AppError::InsufficientFunds {
            needed: 1,
            available: 0,
        },
        AppError::PreconditionFailed,
        AppError::Unavailable,
        AppError::field("name", "must be 1..200 characters"),
        AppError::validation(vec![licentia_app::FieldError::amount_too_large("options")]),
    ];
    let codes: Vec<_> = all.iter().map(|e| e.code().0).collect();
    assert_eq!(
        codes,
        [
            "not_found",
            "trial_used",
            "insufficient_funds",
            "precondition_failed",
            "service_unavailable",
            "validation_failed",
            "amount_too_large"
        ]
    );
}
