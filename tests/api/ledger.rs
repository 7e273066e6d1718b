//! Credits, the ledger and charges; the job queue's tests live in `jobs`.
mod jobs;

use std::sync::Arc;
use std::time::Duration;

use licentia_persistence::entities::events;
use licentia_persistence::repo::ledger::{self, ChargeOutcome};
use licentia_persistence::{Db, PoolConfig, TransactionTrait};
use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use uuid::Uuid;

/// A second connection pool on the test's database, for checks below the HTTP surface.
async fn direct(app: &TestApp) -> Db {
    let pool = PoolConfig {
        max_connections: 10,
        // Fifty tasks share ten connections on a busy machine: waiting is expected.
        acquire_timeout: Duration::from_secs(60),
        ..PoolConfig::default()
    };
    Db::connect(&app.database_url, &pool).await.unwrap()
}

async fn balance(app: &TestApp, admin: &str, account: &str) -> i64 {
    let got = app.get(&format!("/v1/accounts/{account}"), admin).await;
    got.assert_status(StatusCode::OK);
    got.body["balance"].as_i64().unwrap()
}

fn amounts(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["amount"].as_i64().unwrap())
        .collect()
}

async fn credits_change_balance_and_ledger(app: &TestApp) {
    let admin = app.admin_token().await;
    let (a, owner) = app.partner_with_owner(&admin, "A").await;

    let credited = app
        .post(
            &format!("/v1/accounts/{a}/credits"),
            &admin,
            json!({"amount": 50_000, "reference": "Wire 2024-118"}),
        )
        .await;
    credited.assert_status(StatusCode::CREATED);
    assert_eq!(credited.body["amount"], 50_000);
    assert_eq!(credited.body["kind"], "credit");
    assert_eq!(credited.body["reference"], "Wire 2024-118");
    assert_eq!(credited.body["account_id"], a.as_str());
    assert_eq!(credited.body["order_id"], Value::Null);
    assert!(credited.body["created_at"].as_str().unwrap().ends_with('Z'));
    let first_id = credited.body["id"].as_str().unwrap().to_owned();

    app.post(
        &format!("/v1/accounts/{a}/credits"),
        &admin,
        json!({"amount": 1_000_000_000_000_i64, "reference": "Largest allowed"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    assert_eq!(balance(app, &admin, &a).await, 1_000_000_050_000);

    // The partner reads its own ledger, oldest first.
    let ledger = app.get(&format!("/v1/accounts/{a}/ledger"), &owner).await;
    ledger.assert_status(StatusCode::OK);
    assert_eq!(amounts(&ledger.body), [50_000, 1_000_000_000_000]);
    assert_eq!(ledger.body["items"][0]["id"], first_id.as_str());
    assert_eq!(ledger.body["next_cursor"], Value::Null);

    // The balance is the ledger's sum; each credit wrote an event naming its actor.
    let db = direct(app).await;
    let id: Uuid = a.parse().unwrap();
    assert_eq!(
        ledger::sum(db.conn(), id.into()).await.unwrap(),
        1_000_000_050_000
    );
    let admin_id: Uuid = app.get("/v1/me", &admin).await.body["user"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let credited_events = events::Entity::find()
        .filter(events::Column::AccountId.eq(id))
        .filter(events::Column::EventType.eq("account.credited"))
        .order_by_asc(events::Column::Id)
        .all(db.conn())
        .await
        .unwrap();
    assert_eq!(credited_events.len(), 2);
    let event = &credited_events[0];
    assert_eq!(event.actor_kind, "user");
    assert_eq!(event.actor_id, Some(admin_id));
    assert_eq!(event.before, Some(json!({"balance": 0})));
    let after = event.after.as_ref().unwrap();
    assert_eq!(after["balance"], 50_000);
    assert_eq!(after["ledger_entry_id"], first_id.as_str());
    db.close().await.unwrap();

    // Pages with a cursor: every entry exactly once.
    for i in 1..=4 {
        app.post(
            &format!("/v1/accounts/{a}/credits"),
            &admin,
            json!({"amount": i, "reference": format!("top-up {i}")}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut next = None::<String>;
    loop {
        let path = match &next {
            Some(c) => format!("/v1/accounts/{a}/ledger?limit=4&cursor={c}"),
            None => format!("/v1/accounts/{a}/ledger?limit=4"),
        };
        let page = app.get(&path, &admin).await;
        page.assert_status(StatusCode::OK);
        seen.extend(amounts(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(c) => next = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, [50_000, 1_000_000_000_000, 1, 2, 3, 4]);
    // A cursor is bound to the caller and the list.
    let admin_page = app
        .get(&format!("/v1/accounts/{a}/ledger?limit=1"), &admin)
        .await;
    let cursor = admin_page.body["next_cursor"].as_str().unwrap();
    app.get(
        &format!("/v1/accounts/{a}/ledger?limit=1&cursor={cursor}"),
        &owner,
    )
    .await
    .assert_invalid_field("cursor");
    for bad in ["limit=0", "limit=201", "cursor=garbage", "foo=1"] {
        let field = bad.split('=').next().unwrap();
        app.get(&format!("/v1/accounts/{a}/ledger?{bad}"), &admin)
            .await
            .assert_invalid_field(field);
    }
}

async fn bad_amounts_change_nothing(app: &TestApp) {
    let admin = app.admin_token().await;
    let a = app.create_partner(&admin, "A").await;
    let path = format!("/v1/accounts/{a}/credits");
    let bodies = [
        json!({"amount": 0, "reference": "r"}),
        json!({"amount": -1, "reference": "r"}),
        json!({"amount": 1.5, "reference": "r"}),
        json!({"amount": 1e3, "reference": "r"}),
        json!({"amount": "100", "reference": "r"}),
        json!({"amount": 1_000_000_000_001_i64, "reference": "r"}),
        json!({"amount": i64::MAX, "reference": "r"}),
        json!({"amount": u64::MAX, "reference": "r"}),
        json!({"amount": null, "reference": "r"}),
        json!({"reference": "r"}),
    ];
    for body in bodies {
        let resp = app.post(&path, &admin, body.clone()).await;
        assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        resp.assert_invalid_field("amount");
    }
    // `1e3` as written on the wire is a float in JSON too.
    let raw = app
        .client
        .post(app.url(&path))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"amount": 1e3, "reference": "r"}"#)
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(raw)
        .await
        .assert_invalid_field("amount");
    for (body, field) in [
        (json!({"amount": 10, "reference": ""}), "reference"),
        (
            json!({"amount": 10, "reference": "x".repeat(201)}),
            "reference",
        ),
        (json!({"amount": 10}), "reference"),
        (
            json!({"amount": 10, "reference": "r", "kind": "refund"}),
            "kind",
        ),
        (
            json!({"amount": 10, "reference": "r", "balance": 10}),
            "balance",
        ),
    ] {
        app.post(&path, &admin, body)
            .await
            .assert_invalid_field(field);
    }
    // Malformed JSON is 400; the wrong content type 415.
    let raw = app
        .client
        .post(app.url(&path))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"amount": 10,"#)
        .send()
        .await
        .unwrap();
    licentia_tests::Resp::from(raw)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_json");

    assert_eq!(balance(app, &admin, &a).await, 0);
    let ledger = app.get(&format!("/v1/accounts/{a}/ledger"), &admin).await;
    ledger.assert_status(StatusCode::OK);
    assert!(amounts(&ledger.body).is_empty());
}

async fn credits_are_for_admins_only(app: &TestApp) {
    let admin = app.admin_token().await;
    let (a, owner_a) = app.partner_with_owner(&admin, "A").await;
    let (b, _) = app.partner_with_owner(&admin, "B").await;
    let viewer_a = app.user_token(&admin, &a, "viewer").await;
    let good = json!({"amount": 100, "reference": "self-service"});

    // 401 → 403 → 404 → 422, whatever else is wrong with the request.
    app.call(
        reqwest::Method::POST,
        &format!("/v1/accounts/{a}/credits"),
        None,
        Some(json!({"amount": 0})),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    for (account, body) in [
        (&a, good.clone()),
        (&b, good.clone()),
        (&a, json!({"amount": 0, "reference": ""})),
        (&b, json!({"amount": "lots"})),
    ] {
        app.post(&format!("/v1/accounts/{account}/credits"), &owner_a, body)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    app.post(
        &format!("/v1/accounts/{a}/credits"),
        &viewer_a,
        good.clone(),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let unknown = Uuid::now_v7();
    app.post(
        &format!("/v1/accounts/{unknown}/credits"),
        &admin,
        json!({"amount": 0}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post("/v1/accounts/not-a-uuid/credits", &admin, good.clone())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(balance(app, &admin, &a).await, 0);
    assert_eq!(balance(app, &admin, &b).await, 0);

    // Reading: the account itself (any role: viewers hold billing:read) and admins; other
    // tenants and unknown ids are 404.
    app.get(&format!("/v1/accounts/{a}/ledger"), &owner_a)
        .await
        .assert_status(StatusCode::OK);
    app.get(&format!("/v1/accounts/{a}/ledger"), &viewer_a)
        .await
        .assert_status(StatusCode::OK);
    app.get(&format!("/v1/accounts/{b}/ledger"), &admin)
        .await
        .assert_status(StatusCode::OK);
    app.get(&format!("/v1/accounts/{b}/ledger"), &owner_a)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("/v1/accounts/{unknown}/ledger"), &admin)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.call(
        reqwest::Method::GET,
        &format!("/v1/accounts/{a}/ledger"),
        None,
        None,
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// Fifty concurrent charges of 100 against 1,000 with no credit: exactly ten succeed, and the
/// balance ends at 0 = Σ ledger. Runs on PostgreSQL with ten connections, so charges really
/// overlap.
async fn concurrent_charges_never_overdraw(app: &TestApp) {
    let admin = app.admin_token().await;
    let a = app.create_partner(&admin, "A").await;
    app.post(
        &format!("/v1/accounts/{a}/credits"),
        &admin,
        json!({"amount": 1000, "reference": "funds"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let account: Uuid = a.parse().unwrap();
    let db = direct(app).await;

    // Every connection of the pool opens its transaction, then all charge at once: a
    // read-then-write charge loses updates here (checked by swapping one in).
    let parallel = match db.backend() {
        DbBackend::Sqlite => 1,
        _ => 10,
    };
    let gate = Arc::new(Barrier::new(parallel));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let db = db.clone();
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                let txn = db.conn().begin().await.unwrap();
                gate.wait().await;
                let outcome =
                    ledger::charge(&txn, account.into(), 100, &format!("charge {i}"), None)
                        .await
                        .unwrap();
                txn.commit().await.unwrap();
                matches!(outcome, ChargeOutcome::Charged(_))
            })
        })
        .collect();
    let mut charged = 0;
    for task in tasks {
        if task.await.unwrap() {
            charged += 1;
        }
    }
    assert_eq!(charged, 10);
    assert_eq!(balance(app, &admin, &a).await, 0);
    assert_eq!(ledger::sum(db.conn(), account.into()).await.unwrap(), 0);
    let entries = ledger::list(db.conn(), account.into(), None, 100)
        .await
        .unwrap();
    assert_eq!(entries.len(), 11);
    assert!(
        entries[1..]
            .iter()
            .all(|e| e.amount == -100 && e.kind == ledger::LedgerKind::Charge)
    );

    // Short funds change nothing; an unknown account is not found.
    let txn = db.conn().begin().await.unwrap();
    assert_eq!(
        ledger::charge(&txn, account.into(), 1, "one more", None)
            .await
            .unwrap(),
        ChargeOutcome::InsufficientFunds
    );
    assert!(matches!(
        ledger::charge(&txn, Uuid::now_v7().into(), 1, "nobody", None).await,
        Err(licentia_persistence::PersistenceError::NotFound)
    ));
    txn.commit().await.unwrap();

    // The credit limit is spendable, and no further.
    app.patch(
        &format!("/v1/accounts/{a}"),
        &admin,
        json!({"credit_limit": 250}),
    )
    .await
    .assert_status(StatusCode::OK);
    for (amount, ok) in [(200, true), (100, false), (50, true), (1, false)] {
        let outcome = ledger::charge(db.conn(), account.into(), amount, "on credit", None)
            .await
            .unwrap();
        assert_eq!(matches!(outcome, ChargeOutcome::Charged(_)), ok, "{amount}");
    }
    assert_eq!(balance(app, &admin, &a).await, -250);
    assert_eq!(ledger::sum(db.conn(), account.into()).await.unwrap(), -250);
    db.close().await.unwrap();
}

db_test!(
    credits_change_balance_and_ledger,
    bad_amounts_change_nothing,
    credits_are_for_admins_only,
    concurrent_charges_never_overdraw
);
