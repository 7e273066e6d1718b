//! The value invariant (CONTRACT §5) under randomized concurrent sequences across features:
//! orders with every payment method, free trials (their days free and not counted; converted
//! by paid renewals), paid and unpaid renewals, configuration upgrades and downgrades, product
//! switches, payments and cancellations of old orders, enable/disable, transfers, deletes and
//! credits, from several clients — on PostgreSQL through two service instances on one
//! database, on SQLite through one.
//!
//! Afterwards, for every license: Σ charges − Σ refunds for it equals the catalog price of the
//! terms and option-months it actually received, read off its own event log (each term bought
//! at the options it had; each option or product change at the price difference for its term).
//! The business clock is frozen on a day where calendar months are exact, so every proration
//! factor is 1 and the equality is exact. Then every license still answers its reads, quote
//! and configuration preview without a 5xx, and the ledger is consistent per account.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use licentia_api::clock::ManualClock;
use licentia_tests::{Backend, Resp, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CLIENTS: usize = 8;
const ACCOUNTS: usize = 4;
const LICENSES_PER_ACCOUNT: usize = 3;
const MAX_EXTRA: usize = 10;

fn operations() -> usize {
    std::env::var("VALUE_INVARIANT_OPERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())].clone())
    }
}

/// A product of the test catalog: base price and per-unit `extra` price per period.
#[derive(Clone)]
struct Priced {
    id: String,
    base: BTreeMap<u64, i64>,
    extra: BTreeMap<u64, i64>,
}

impl Priced {
    fn cost(&self, period: u64, options: &Value) -> i64 {
        let extra = options["extra"].as_i64().unwrap_or(0);
        self.base[&period] + extra * self.extra[&period]
    }
}

struct Account {
    id: String,
    token: String,
    licenses: Vec<String>,
    unpaid_orders: Vec<String>,
}

struct World {
    admin: String,
    products: Vec<Priced>,
    accounts: Mutex<Vec<Account>>,
    /// Every license ever ordered.
    all_licenses: Mutex<BTreeSet<String>>,
    done: AtomicUsize,
    outcomes: Mutex<BTreeMap<String, BTreeMap<u16, usize>>>,
    violations: Mutex<Vec<String>>,
}

impl World {
    fn record(&self, op: &str, resp: &Resp) {
        *self
            .outcomes
            .lock()
            .unwrap()
            .entry(op.to_owned())
            .or_default()
            .entry(resp.status.as_u16())
            .or_default() += 1;
        // 404: another client moved or deleted the license meanwhile.
        if !matches!(
            resp.status.as_u16(),
            200 | 201 | 204 | 402 | 404 | 409 | 422
        ) {
            self.violations
                .lock()
                .unwrap()
                .push(format!("{op}: unexpected {} {}", resp.status, resp.text));
        }
    }
}

fn payment(rng: &mut Rng, unpaid: &[String]) -> Value {
    let pay_now = rng.below(2) == 0;
    match (rng.below(4), rng.pick(unpaid)) {
        (0, _) => json!({"method": "balance"}),
        (1, _) => json!({"method": "new_order", "pay_now": pay_now}),
        (2, Some(order)) => {
            json!({"method": "existing_order", "order_id": order, "pay_now": pay_now})
        }
        _ => json!({"method": "new_order"}),
    }
}

/// One random operation by one client.
async fn operate(app: &TestApp, world: &World, rng: &mut Rng) {
    let (index, token, license, unpaid, n_accounts) = {
        let accounts = world.accounts.lock().unwrap();
        let index = rng.below(accounts.len());
        let a = &accounts[index];
        (
            index,
            a.token.clone(),
            rng.pick(&a.licenses),
            a.unpaid_orders.clone(),
            accounts.len(),
        )
    };
    let remember_order = |order: &Value| {
        if let Some(id) = order["id"].as_str() {
            let mut accounts = world.accounts.lock().unwrap();
            let list = &mut accounts[index].unpaid_orders;
            list.retain(|o| o != id);
            if order["status"] == "unpaid" {
                list.push(id.to_owned());
            }
        }
    };
    let roll = rng.below(100);
    match (roll, license) {
        (0..=9, _) => {
            let product = rng.pick(&world.products).unwrap();
            // Now and then a free trial (one per product and account, and per address): its
            // days are free and not counted; a paid renewal converts it.
            let trial = rng.below(5) == 0;
            let body = if trial {
                json!({"product_id": product.id, "name": "Trial",
                       "ip": format!("198.51.100.{}", 10 + rng.below(200)),
                       "options": {"extra": rng.below(4)}, "trial": true})
            } else {
                json!({"product_id": product.id, "name": "Value", "ip": "198.51.100.9",
                       "period_months": ([1, 12][rng.below(2)]),
                       "options": {"extra": rng.below(4)},
                       "payment": payment(rng, &unpaid)})
            };
            let resp = app.post("/v1/licenses", &token, body).await;
            let op = if trial {
                "order_trial"
            } else {
                "order_license"
            };
            world.record(op, &resp);
            if resp.status == StatusCode::CREATED {
                remember_order(&resp.body["order"]);
                if let Some(id) = resp.body["license"]["id"].as_str() {
                    world.accounts.lock().unwrap()[index]
                        .licenses
                        .push(id.to_owned());
                    world.all_licenses.lock().unwrap().insert(id.to_owned());
                }
            }
        }
        (10..=29, Some(license)) => {
            let resp = app
                .post(
                    &format!("/v1/licenses/{license}/renewals"),
                    &token,
                    json!({"period_months": ([1, 12][rng.below(2)]), "payment": payment(rng, &unpaid)}),
                )
                .await;
            world.record("renew", &resp);
            if resp.status == StatusCode::CREATED {
                remember_order(&resp.body["order"]);
            }
        }
        (30..=51, Some(license)) => {
            let options = json!({"extra": rng.below(MAX_EXTRA + 1)});
            let body = if rng.below(2) == 0 {
                json!({"options": options, "payment": payment(rng, &unpaid)})
            } else {
                json!({"options": options})
            };
            let resp = app
                .put(
                    &format!("/v1/licenses/{license}/configuration"),
                    &token,
                    body,
                )
                .await;
            world.record("configure", &resp);
            if resp.status == StatusCode::OK && resp.body["order"].is_object() {
                remember_order(&resp.body["order"]);
            }
        }
        (52..=59, Some(license)) => {
            let product = rng.pick(&world.products).unwrap();
            let resp = app
                .patch(
                    &format!("/v1/licenses/{license}"),
                    &token,
                    json!({"product_id": product.id}),
                )
                .await;
            world.record("switch_product", &resp);
        }
        (60..=74, _) => {
            let Some(order) = rng.pick(&unpaid) else {
                return;
            };
            let action = if rng.below(4) == 0 { "cancel" } else { "pay" };
            let resp = app
                .post(&format!("/v1/orders/{order}/{action}"), &token, json!({}))
                .await;
            world.record(&format!("{action}_order"), &resp);
            if resp.status == StatusCode::OK || resp.status == StatusCode::CONFLICT {
                world.accounts.lock().unwrap()[index]
                    .unpaid_orders
                    .retain(|o| *o != order);
            }
        }
        (75..=82, Some(license)) => {
            let action = ["enable", "disable"][rng.below(2)];
            let resp = app
                .post(
                    &format!("/v1/licenses/{license}/{action}"),
                    &token,
                    json!({}),
                )
                .await;
            world.record(action, &resp);
        }
        (83..=88, Some(license)) => {
            let to = (index + 1 + rng.below(n_accounts - 1)) % n_accounts;
            let (to_id, to_token) = {
                let accounts = world.accounts.lock().unwrap();
                (accounts[to].id.clone(), accounts[to].token.clone())
            };
            let offer = app
                .post(
                    &format!("/v1/licenses/{license}/transfers"),
                    &token,
                    json!({"to_account_id": to_id, "secret": "value-invariant-secret"}),
                )
                .await;
            world.record("offer_transfer", &offer);
            let Some(transfer) = offer.body["id"]
                .as_str()
                .filter(|_| offer.status == StatusCode::CREATED)
            else {
                return;
            };
            let accepted = app
                .post(
                    &format!("/v1/transfers/{transfer}/accept"),
                    &to_token,
                    json!({"secret": "value-invariant-secret"}),
                )
                .await;
            world.record("accept_transfer", &accepted);
            if accepted.status == StatusCode::OK {
                let mut accounts = world.accounts.lock().unwrap();
                accounts[index].licenses.retain(|l| *l != license);
                accounts[to].licenses.push(license);
            }
        }
        (89..=94, _) => {
            let amount = 2_000 + rng.below(20_000) as i64;
            let account = world.accounts.lock().unwrap()[index].id.clone();
            let resp = app
                .post(
                    &format!("/v1/accounts/{account}/credits"),
                    &world.admin,
                    json!({"amount": amount, "reference": "value load"}),
                )
                .await;
            world.record("credit", &resp);
        }
        (95..=96, Some(license)) => {
            let resp = app
                .call(
                    Method::DELETE,
                    &format!("/v1/licenses/{license}"),
                    Some(&token),
                    None,
                )
                .await;
            world.record("delete", &resp);
            if resp.status == StatusCode::NO_CONTENT {
                world.accounts.lock().unwrap()[index]
                    .licenses
                    .retain(|l| *l != license);
            }
        }
        _ => return,
    }
    world.done.fetch_add(1, Ordering::SeqCst);
}

async fn all_pages(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=200&cursor={c}"),
            None => format!("{path}{sep}limit=200"),
        };
        let resp = app.get(&url, token).await;
        resp.assert_status(StatusCode::OK);
        out.extend(resp.body["items"].as_array().unwrap().iter().cloned());
        match resp.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// What the license received, priced from the catalog: every term it was given (activation or
/// renewal) at the options it had, plus every option or product change at the difference.
fn value_received(products: &BTreeMap<String, Priced>, events: &[Value]) -> (i64, usize) {
    let mut value = 0;
    let mut changes = 0;
    for e in events {
        let (before, after) = (&e["before"], &e["after"]);
        if !before.is_object() || !after.is_object() || after["valid_until"].is_null() {
            continue;
        }
        let cost = |s: &Value| {
            products[s["product_id"].as_str().unwrap()]
                .cost(s["period_months"].as_u64().unwrap(), &s["options"])
        };
        if before["valid_until"] != after["valid_until"] {
            value += cost(after);
        } else if before["options"] != after["options"]
            || before["product_id"] != after["product_id"]
        {
            // The difference for the term, at the term's length (`period_months` of the license).
            value += cost(after) - cost(before);
            changes += 1;
        }
    }
    (value, changes)
}

async fn check_value(app: &TestApp, world: &World) -> (usize, Vec<String>) {
    let mut violations = Vec::new();
    let products: BTreeMap<String, Priced> = world
        .products
        .iter()
        .map(|p| (p.id.clone(), p.clone()))
        .collect();
    let admin = &world.admin;
    // Per license: Σ fulfilled items of paid orders, and Σ refunds naming it.
    let mut paid: BTreeMap<String, i64> = BTreeMap::new();
    for order in all_pages(app, admin, "/v1/orders?status=paid").await {
        let mut fulfilled = 0;
        for item in order["items"].as_array().unwrap() {
            if item["status"] == "fulfilled" {
                let amount = item["amount"].as_i64().unwrap();
                fulfilled += amount;
                *paid
                    .entry(item["license_id"].as_str().unwrap().to_owned())
                    .or_default() += amount;
            }
        }
        if fulfilled != order["total"].as_i64().unwrap() {
            violations.push(format!(
                "order {}: total != Σ fulfilled {fulfilled}",
                order["id"]
            ));
        }
    }
    let mut refunded: BTreeMap<String, i64> = BTreeMap::new();
    let accounts: Vec<String> = world
        .accounts
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.id.clone())
        .collect();
    for account in &accounts {
        let detail = app
            .get(&format!("/v1/accounts/{account}"), admin)
            .await
            .body;
        let ledger = all_pages(app, admin, &format!("/v1/accounts/{account}/ledger")).await;
        let total: i64 = ledger.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
        if detail["balance"].as_i64() != Some(total) {
            violations.push(format!(
                "{account}: balance {} != Σ ledger {total}",
                detail["balance"]
            ));
        }
        for e in ledger.iter().filter(|e| e["kind"] == "refund") {
            let reference = e["reference"].as_str().unwrap();
            let license = reference.rsplit(' ').next().unwrap().to_owned();
            *refunded.entry(license).or_default() += e["amount"].as_i64().unwrap();
        }
    }
    let licenses: Vec<String> = world.all_licenses.lock().unwrap().iter().cloned().collect();
    for license in &licenses {
        let mut events = all_pages(app, admin, &format!("/v1/events?license_id={license}")).await;
        events.reverse(); // oldest first
        let (value, changes) = value_received(&products, &events);
        let net =
            paid.get(license).copied().unwrap_or(0) - refunded.get(license).copied().unwrap_or(0);
        if (net - value).abs() > changes as i64 {
            violations.push(format!(
                "license {license}: paid − refunded = {net}, received {value} ({changes} changes)"
            ));
        }
        // Nothing left in a state that answers 5xx.
        let got = app.get(&format!("/v1/licenses/{license}"), admin).await;
        if got.status.is_server_error() {
            violations.push(format!("license {license}: GET {}", got.status));
        }
        let quote = app
            .get(
                &format!("/v1/licenses/{license}/renewal-quote?period_months=12"),
                admin,
            )
            .await;
        if quote.status.is_server_error() {
            violations.push(format!("license {license}: quote {}", quote.status));
        }
        let preview = app
            .put(
                &format!("/v1/licenses/{license}/configuration?dry_run=true"),
                admin,
                json!({"options": {"extra": 1}}),
            )
            .await;
        if preview.status.is_server_error() {
            violations.push(format!(
                "license {license}: configuration preview {}",
                preview.status
            ));
        }
    }
    (licenses.len(), violations)
}

async fn product(app: &TestApp, admin: &str, code: &str, scale: i64) -> Priced {
    let resp = app
        .post(
            "/v1/products",
            admin,
            json!({"code": code, "name": code,
                   "prices": [{"period_months": 1, "amount": 1_000 * scale}, {"period_months": 12, "amount": 10_000 * scale}],
                   "options": [{"code": "extra", "name": "Extra", "min": 0, "max": MAX_EXTRA,
                                "prices": [{"period_months": 1, "amount": 100 * scale}, {"period_months": 12, "amount": 1_000 * scale}]}],
                   "max_registrations": null, "transferable": true, "trial_days": 14}),
        )
        .await;
    resp.assert_status(StatusCode::CREATED);
    Priced {
        id: resp.body["id"].as_str().unwrap().to_owned(),
        base: BTreeMap::from([(1, 1_000 * scale), (12, 10_000 * scale)]),
        extra: BTreeMap::from([(1, 100 * scale), (12, 1_000 * scale)]),
    }
}

async fn workload(app: &TestApp, instances: &[Arc<TestApp>]) {
    let admin = app.admin_token().await;
    let products = vec![
        product(app, &admin, "value-a", 1).await,
        product(app, &admin, "value-b", 2).await,
    ];
    let mut accounts = Vec::new();
    let mut all = BTreeSet::new();
    for n in 0..ACCOUNTS {
        let resp = app
            .post(
                "/v1/accounts",
                &admin,
                json!({"name": format!("Value {n}"), "credit_limit": ([0, 20_000][n % 2])}),
            )
            .await;
        resp.assert_status(StatusCode::CREATED);
        let id = resp.body["id"].as_str().unwrap().to_owned();
        let token = app.user_token(&admin, &id, "owner").await;
        app.credit(&admin, &id, 400_000).await;
        let mut licenses = Vec::new();
        for i in 0..LICENSES_PER_ACCOUNT {
            let resp = app
                .post(
                    "/v1/licenses",
                    &token,
                    json!({"product_id": products[i % 2].id, "name": "Seed", "ip": "198.51.100.2",
                           "period_months": 12, "options": {"extra": 1}, "payment": {"method": "balance"}}),
                )
                .await;
            resp.assert_status(StatusCode::CREATED);
            licenses.push(resp.body["license"]["id"].as_str().unwrap().to_owned());
        }
        for l in &licenses {
            app.wait_status(&token, l, "active").await;
            all.insert(l.clone());
        }
        accounts.push(Account {
            id,
            token,
            licenses,
            unpaid_orders: Vec::new(),
        });
    }
    let world = Arc::new(World {
        admin,
        products,
        accounts: Mutex::new(accounts),
        all_licenses: Mutex::new(all),
        done: AtomicUsize::new(0),
        outcomes: Mutex::new(BTreeMap::new()),
        violations: Mutex::new(Vec::new()),
    });
    let target = operations();
    let seed = uuid::Uuid::new_v4().as_u128() as u64 | 1;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let world = Arc::clone(&world);
        let instance = Arc::clone(&instances[client % instances.len()]);
        tasks.push(tokio::spawn(async move {
            let mut rng =
                Rng(seed.wrapping_add((client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
            while world.done.load(Ordering::SeqCst) < target {
                operate(&instance, &world, &mut rng).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let done = world.done.load(Ordering::SeqCst);
    let mut violations = world.violations.lock().unwrap().clone();
    let (licenses, found) = check_value(app, &world).await;
    violations.extend(found);
    eprintln!(
        "value_invariants[{:?}]: {done} operations from {CLIENTS} clients on {} instance(s) in {:.1} s, seed {seed:#x}; {licenses} licenses checked; outcomes {:?}; violations: {}",
        app.backend,
        instances.len(),
        elapsed.as_secs_f64(),
        world.outcomes.lock().unwrap(),
        violations.len()
    );
    for v in violations.iter().take(20) {
        eprintln!("  violation: {v}");
    }
    assert!(done >= target);
    assert!(violations.is_empty(), "{} violations", violations.len());
}

fn unshare(app: Arc<TestApp>) -> TestApp {
    Arc::try_unwrap(app).unwrap_or_else(|_| panic!("a client still holds the instance"))
}

/// A day on which calendar months are exact (no clamping), so proration factors are 1.
fn frozen_clock() -> Arc<ManualClock> {
    let clock = ManualClock::at_system_time();
    clock.set_rfc3339("2026-03-15T12:00:00Z").unwrap();
    clock
}

fn patient(url: &str) -> licentia_api::Config {
    let mut config = licentia_tests::test_config(url);
    config.db_acquire_timeout_ms = licentia_api::config::Millis::new(10_000);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn value_invariant_sqlite() {
    let app = TestApp::builder(Backend::Sqlite)
        .clock(frozen_clock())
        .config(patient)
        .start()
        .await
        .unwrap();
    let app = Arc::new(app);
    workload(&app, &[Arc::clone(&app)]).await;
    unshare(app).finish().await;
}

#[cfg_attr(
    not(licentia_pg),
    ignore = "skipped: PostgreSQL (set LICENTIA_TEST_DATABASE_URL)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn value_invariant_postgres() {
    let Some(app) = TestApp::builder(Backend::Postgres)
        .clock(frozen_clock())
        .config(patient)
        .start()
        .await
    else {
        return;
    };
    let app = Arc::new(app);
    let second = Arc::new(app.spawn_second_instance().await);
    workload(&app, &[Arc::clone(&app), Arc::clone(&second)]).await;
    unshare(second).finish().await;
    unshare(app).finish().await;
}
