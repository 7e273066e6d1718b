//! `licentia seed`: loads a large, realistic data set for benchmarks (PostgreSQL only).
//!
//! Partner accounts with a balance and an API key each, a small catalog, and licenses with
//! varied names, addresses, products, periods, statuses, expiry dates and registered machines,
//! written in multi-row statements by several connections at once. Rows go through the same
//! row mapping as the service's own inserts, so every seeded license reads back like one
//! ordered through the API.
//!
//! Licence `n` (0-based) is reproducible from `n` alone, so that load generators and pgbench can
//! address it without a list of ids:
//! - id: a UUIDv7 whose timestamp is `base_ms + n * step_ms` and whose last 12 hex digits are
//!   `n` (`TTTTTTTT-TTTT-7000-8000-NNNNNNNNNNNN`), so ids increase with `n` like creation times;
//! - owner: [`account_index`] (every fifth license belongs to account 0, the largest partner);
//! - status: [`status_of`]; registration key: `seedkey-{n:010}`; a machine `machine-{n}-0` is
//!   registered to three licenses in four (`machine-{n}-1` too when `n % 4 == 0`).
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt, stream};
use licentia_domain::auth::{AccountKind, Scope};
use licentia_domain::ids::{AccountId, LicenseId, ProductId, RegistrationId};
use licentia_domain::license::{LicenseStatus, Lifecycle, SuspensionReason};
use licentia_domain::license_record::License;
use licentia_domain::period::Period;
use licentia_domain::pricing::{PeriodPrice, ProductOption, ProductPricing};
use licentia_domain::product::Product;
use licentia_persistence::PersistenceError;
use licentia_persistence::repo::ledger::LedgerKind;
use licentia_persistence::repo::registrations::Registration;
use licentia_persistence::repo::{accounts, api_keys, ledger, licenses, products, registrations};
use licentia_persistence::sea_orm::{DbBackend, EntityTrait, PaginatorTrait};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::state::AppState;

mod settle;

/// Licenses per multi-row statement: 30 columns × 2,000 rows stays under PostgreSQL's 65,535
/// bound values.
const LICENSE_BATCH: usize = 2_000;
/// Statements in flight at once.
const PARALLEL: usize = 4;
/// Each partner's starting balance, minor units: enough for every renewal a benchmark makes.
const STARTING_BALANCE: i64 = 1_000_000_000_000;
/// Seeded licenses were created over this many days before the seed ran.
const HISTORY_DAYS: i64 = 3 * 365;

const WORDS: [&str; 20] = [
    "web", "mail", "db", "shop", "blog", "cloud", "vps", "node", "app", "api", "cdn", "git", "dev",
    "stage", "prod", "backup", "media", "game", "crm", "erp",
];
const TLDS: [&str; 6] = ["com", "net", "org", "io", "de", "ru"];

/// What to load.
#[derive(Clone, Copy, Debug)]
pub struct SeedSize {
    pub accounts: u32,
    pub licenses: u64,
}

/// What a benchmark needs to address the data set; written as JSON next to the run.
#[derive(Debug, Serialize)]
pub struct Manifest {
    pub licenses: u64,
    /// Timestamp (ms since the epoch) in the id of license 0.
    pub base_ms: i64,
    /// Milliseconds between consecutive licenses' ids.
    pub step_ms: i64,
    /// Partner accounts in index order, with an API key holding every partner scope.
    pub accounts: Vec<ManifestAccount>,
    pub products: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ManifestAccount {
    pub id: Uuid,
    pub api_key: String,
}

/// The owner of license `n`: account 0 holds one license in five; accounts 1–9 share about
/// 27 % of them; the rest spread evenly over the other accounts (a few large partners and a
/// long tail, as hosting resellers are).
pub fn account_index(n: u64, accounts: u32) -> u32 {
    let accounts = u64::from(accounts.max(1));
    if accounts == 1 || n.is_multiple_of(5) {
        return 0;
    }
    let m = n / 5;
    let big = accounts.min(10) - 1;
    if big > 0 && (m % 100 < 34 || accounts <= 10) {
        return (1 + m % big) as u32;
    }
    let rest = accounts - 10;
    (10 + (m * 4 + n % 5) % rest) as u32
}

/// The status of license `n`: 82 % active, 4 % suspended by the partner, 6 % suspended because
/// the term ended, 4 % ordered and unpaid, 4 % deleted.
pub fn status_of(n: u64) -> (LicenseStatus, Option<SuspensionReason>) {
    match (n * 7919) % 100 {
        0..72 | 90.. => (LicenseStatus::Active, None),
        72..76 => (LicenseStatus::Suspended, Some(SuspensionReason::Manual)),
        76..82 => (LicenseStatus::Suspended, Some(SuspensionReason::Expired)),
        82..86 => (LicenseStatus::Ordered, None),
        _ => (LicenseStatus::Deleted, None),
    }
}

/// The id of license `n` (see the module documentation).
pub fn license_id(n: u64, base_ms: i64, step_ms: i64) -> Uuid {
    let ms = (base_ms + n as i64 * step_ms) as u64;
    let text = format!(
        "{:08x}-{:04x}-7000-8000-{:012x}",
        ms >> 16,
        ms & 0xffff,
        n & 0xffff_ffff_ffff
    );
    Uuid::parse_str(&text).unwrap_or_else(|_| Uuid::now_v7())
}

fn catalog(now: OffsetDateTime) -> Vec<Product> {
    let price = |months: i64, amount: i64| PeriodPrice {
        period: Period::new(months).unwrap_or(Period::M1),
        amount,
    };
    let product = |code: &str, name: &str, base: i64, options: Vec<ProductOption>| Product {
        id: ProductId::new(),
        code: code.to_owned(),
        name: name.to_owned(),
        pricing: ProductPricing {
            prices: vec![
                price(1, base),
                price(3, base * 3),
                price(6, base * 6),
                price(12, base * 11),
                price(24, base * 21),
                price(36, base * 30),
            ],
            options,
        },
        max_registrations: Some(5),
        transferable: true,
        trial_days: 0,
        archived: false,
        created_at: now,
        updated_at: now,
    };
    let users = |unit: i64| ProductOption {
        code: "users".into(),
        name: "Users".into(),
        min: 1,
        max: 100,
        prices: vec![
            price(1, unit),
            price(3, unit * 3),
            price(6, unit * 6),
            price(12, unit * 11),
        ],
    };
    vec![
        product("seed-panel-lite", "Panel Lite", 500, vec![]),
        product("seed-panel-pro", "Panel Pro", 1_500, vec![users(100)]),
        product(
            "seed-panel-business",
            "Panel Business",
            3_000,
            vec![users(80)],
        ),
        product("seed-backup", "Backup", 300, vec![]),
        product("seed-mail", "Mail Server", 700, vec![]),
    ]
}

fn license(
    n: u64,
    size: SeedSize,
    manifest: &Manifest,
    product_list: &[Product],
    now: OffsetDateTime,
) -> License {
    let mut rng = StdRng::seed_from_u64(n ^ 0x5eed_5eed);
    let product = &product_list[rng.random_range(0..product_list.len())];
    let period = random_period(&mut rng, product);
    let created_ms = manifest.base_ms + n as i64 * manifest.step_ms;
    let created_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(created_ms) * 1_000_000)
        .unwrap_or(now);
    let (status, reason) = status_of(n);
    let future = now + Duration::hours(rng.random_range(24..2 * 365 * 24));
    let past = now - Duration::hours(rng.random_range(1..30 * 24));
    let valid_until = match (status, reason) {
        (LicenseStatus::Ordered, _) => None,
        (LicenseStatus::Suspended, Some(SuspensionReason::Expired))
        | (LicenseStatus::Deleted, _) => Some(past),
        _ => Some(future),
    };
    let ip = random_ip(&mut rng);
    let name = format!(
        "{}-{}-{n}.example.{}",
        WORDS[rng.random_range(0..WORDS.len())],
        WORDS[rng.random_range(0..WORDS.len())],
        TLDS[rng.random_range(0..TLDS.len())]
    );
    let options = product
        .pricing
        .options
        .iter()
        .map(|o| (o.code.clone(), rng.random_range(o.min..=o.max.min(20))))
        .collect::<BTreeMap<_, _>>();
    let registered = registered_machines(n, status);
    License {
        id: LicenseId::from_uuid(license_id(n, manifest.base_ms, manifest.step_ms)),
        account_id: AccountId::from_uuid(
            manifest.accounts[account_index(n, size.accounts) as usize].id,
        ),
        product_id: product.id,
        name,
        ip,
        period,
        lifecycle: Lifecycle {
            status,
            suspension_reason: reason,
            valid_until,
            came_from: None,
            resumes_to: None,
        },
        options,
        auto_renew: (status == LicenseStatus::Active && rng.random_ratio(3, 10)).then_some(period),
        registration_key: format!("seedkey-{n:010}"),
        registrations_count: registered,
        provisioning_error: None,
        external_id: rng.random_ratio(1, 2).then(|| format!("ext-{n}")),
        metadata: BTreeMap::new(),
        trial: false,
        suspension: Default::default(),
        deletion: Default::default(),
        version: 1,
        created_at,
        updated_at: created_at,
        last_validated_at: None,
    }
}

/// A period the product has prices for: one of the usual terms, else a year.
fn random_period(rng: &mut StdRng, product: &Product) -> Period {
    let periods = [1, 3, 6, 12, 12, 12, 24, 36];
    let period = Period::new(periods[rng.random_range(0..periods.len())]).unwrap_or(Period::M1);
    let priced = product
        .pricing
        .options
        .iter()
        .all(|o| o.price_for(period).is_some());
    if priced { period } else { Period::M12 }
}

/// A private IPv4 address nine times in ten, else one of the IPv6 documentation prefix.
fn random_ip(rng: &mut StdRng) -> IpAddr {
    if rng.random_ratio(9, 10) {
        IpAddr::V4(Ipv4Addr::from(
            0x0a00_0000 | rng.random_range(1..0x00ff_ffffu32),
        ))
    } else {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0x0db8,
            rng.random(),
            rng.random(),
            0,
            0,
            0,
            rng.random_range(1..u16::MAX),
        ))
    }
}

/// Machines registered to license `n`: none when unpaid or deleted and for one license in
/// four; two when `n % 4 == 0`.
fn registered_machines(n: u64, status: LicenseStatus) -> u32 {
    match status {
        LicenseStatus::Ordered | LicenseStatus::Deleted => 0,
        _ if n % 4 == 3 => 0,
        _ if n.is_multiple_of(4) => 2,
        _ => 1,
    }
}

/// The partner accounts, each with its starting balance and an API key of every scope but
/// `account:admin`.
async fn seed_accounts(state: &AppState, size: SeedSize) -> Result<Vec<ManifestAccount>, String> {
    let db = state.db.conn();
    stream::iter(0..size.accounts)
        .map(|i| async move {
            let account = accounts::create(
                db,
                accounts::NewAccount {
                    id: AccountId::new(),
                    kind: AccountKind::Partner,
                    name: format!("Seed partner {i:04}"),
                    currency: state.currency,
                    credit_limit: 0,
                },
            )
            .await?;
            ledger::credit(
                db,
                account.id,
                STARTING_BALANCE,
                LedgerKind::Credit,
                "seed",
                None,
            )
            .await?;
            let (key, prefix) = crate::auth::api_key::generate();
            api_keys::insert(
                db,
                api_keys::NewApiKey {
                    account_id: account.id,
                    name: "seed".into(),
                    prefix,
                    key_hash: licentia_app::crypto::sha256_hex(&key),
                    scopes: Scope::ALL
                        .into_iter()
                        .filter(|s| *s != Scope::AccountAdmin)
                        .collect(),
                    expires_at: None,
                },
            )
            .await?;
            Ok::<_, PersistenceError>(ManifestAccount {
                id: account.id.as_uuid(),
                api_key: key,
            })
        })
        .buffered(PARALLEL)
        .try_collect()
        .await
        .map_err(|e| e.to_string())
}

/// The licenses and their registrations, in batches written in parallel.
async fn seed_licenses(
    db: &licentia_persistence::sea_orm::DatabaseConnection,
    size: SeedSize,
    manifest: &Manifest,
    product_list: &[Product],
    now: OffsetDateTime,
    started: Instant,
) -> Result<(), String> {
    let batches = size.licenses.div_ceil(LICENSE_BATCH as u64);
    let manifest_ref = manifest;
    let product_ref = product_list;
    stream::iter(0..batches)
        .map(|b| async move {
            let from = b * LICENSE_BATCH as u64;
            let to = (from + LICENSE_BATCH as u64).min(size.licenses);
            let rows: Vec<License> = (from..to)
                .map(|n| license(n, size, manifest_ref, product_ref, now))
                .collect();
            licenses::insert_batch(db, &rows).await?;
            let regs: Vec<Registration> = rows
                .iter()
                .enumerate()
                .flat_map(|(i, l)| {
                    let n = from + i as u64;
                    (0..l.registrations_count).map(move |m| Registration {
                        id: RegistrationId::new(),
                        license_id: l.id,
                        fingerprint: format!("machine-{n}-{m}"),
                        hostname: Some(l.name.clone()),
                        ip: Some(l.ip),
                        created_at: l.created_at,
                        last_seen_at: None,
                        last_ip: None,
                    })
                })
                .collect();
            registrations::insert_batch(db, &regs).await?;
            Ok::<_, PersistenceError>(to - from)
        })
        .buffer_unordered(PARALLEL)
        .try_fold(0u64, |done, n| async move {
            let done = done + n;
            if done % 100_000 < LICENSE_BATCH as u64 || done == size.licenses {
                tracing::info!(
                    licenses = done,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "licenses seeded"
                );
            }
            Ok(done)
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Loads the data set into an empty PostgreSQL database and returns its manifest.
pub async fn seed(state: &AppState, size: SeedSize) -> Result<Manifest, String> {
    let db = state.db.conn();
    if state.db.backend() != DbBackend::Postgres {
        return Err(
            "seed loads PostgreSQL only (set LICENTIA_DATABASE_URL to a postgres:// URL)".into(),
        );
    }
    let existing = licentia_persistence::entities::licenses::Entity::find()
        .count(db)
        .await
        .map_err(|e| e.to_string())?;
    if existing > 0 {
        return Err(format!(
            "the database already holds {existing} licenses; seed an empty database"
        ));
    }
    if size.accounts == 0 || size.licenses == 0 {
        return Err("--accounts and --licenses must be at least 1".into());
    }
    let started = Instant::now();
    let now = licentia_persistence::now();

    let product_list = catalog(now);
    for p in &product_list {
        products::insert(db, p).await.map_err(|e| e.to_string())?;
    }

    let accounts_list = seed_accounts(state, size).await?;
    tracing::info!(
        accounts = accounts_list.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "accounts seeded"
    );

    let history_ms = HISTORY_DAYS * 86_400_000;
    let manifest = Manifest {
        licenses: size.licenses,
        base_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64 - history_ms,
        step_ms: (history_ms / size.licenses as i64).max(1),
        accounts: accounts_list,
        products: product_list.iter().map(|p| p.code.clone()).collect(),
    };

    seed_licenses(db, size, &manifest, &product_list, now, started).await?;
    settle::settle(state).await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "seed complete"
    );
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_reproducible_and_increase_with_n() {
        let base = 1_700_000_000_000;
        let a = license_id(41, base, 95_000);
        let b = license_id(42, base, 95_000);
        assert!(a < b);
        assert_eq!(a.get_version_num(), 7);
        assert!(b.to_string().ends_with("-00000000002a"));
    }

    #[test]
    fn owners_are_skewed_and_cover_every_account() {
        let mut counts = vec![0u32; 1000];
        for n in 0..100_000 {
            counts[account_index(n, 1000) as usize] += 1;
        }
        assert_eq!(counts[0], 20_000);
        assert!(
            counts[1..10].iter().all(|&c| c > 2_500),
            "{:?}",
            &counts[..10]
        );
        assert!(counts[10..].iter().all(|&c| c > 0));
        assert_eq!(account_index(7, 1), 0);
        assert!((0..1000).all(|n| account_index(n, 3) < 3));
    }

    #[test]
    fn statuses_follow_the_documented_mix() {
        let active = (0..10_000)
            .filter(|&n| status_of(n).0 == LicenseStatus::Active)
            .count();
        assert_eq!(active, 8_200);
    }
}
