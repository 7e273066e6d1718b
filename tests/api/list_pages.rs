//! License list pages kept in memory (`LICENTIA_PAGE_CACHE_MB`, PostgreSQL): a kept page is
//! answered only when the database finds the same rows at the same row versions, so whatever
//! changes a license — an edit through the API, another process's write that leaves `version`
//! alone (a registration count, a validation), a new license, a delete, a move to another
//! partner — shows on the very next request, exactly as a server that keeps nothing shows it.
use licentia_api::Config;
use licentia_persistence::entities::licenses;
use licentia_tests::{TestApp, db_test, test_config, within_notice};
use reqwest::StatusCode;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, ExprTrait, QueryFilter};
use serde_json::{Value, json};

/// A server that keeps no pages: the reference.
fn keeps_nothing(url: &str) -> Config {
    Config {
        page_cache_mb: 0,
        ..test_config(url)
    }
}

/// A small deterministic generator (xorshift), so that a failing sequence can be replayed from
/// the seed the test prints.
struct Steps(u64);

impl Steps {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The pages a partner sees, as `(path, answer)`: several sorts and sizes, and the second
/// page through the first page's cursor.
async fn pages(app: &TestApp, token: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for sort in ["name", "-name", "-created_at", "valid_until"] {
        for limit in [2, 50] {
            let path = format!("/v1/licenses?limit={limit}&sort={sort}");
            let first = app.get(&path, token).await;
            first.assert_status(StatusCode::OK);
            if let Some(cursor) = first.body["next_cursor"].as_str() {
                let next = format!("{path}&cursor={cursor}");
                let second = app.get(&next, token).await;
                second.assert_status(StatusCode::OK);
                out.push((next, second.body));
            }
            out.push((path, first.body));
        }
    }
    // A filtered page (the other hot-path pool).
    let path = "/v1/licenses?limit=3&sort=name&status=active".to_owned();
    let filtered = app.get(&path, token).await;
    filtered.assert_status(StatusCode::OK);
    out.push((path, filtered.body));
    out
}

async fn order(app: &TestApp, token: &str, product: &Value, name: &str) -> String {
    let created = app
        .post(
            "/v1/licenses",
            token,
            json!({"product_id": product["id"], "name": name, "ip": "192.0.2.10",
                   "period_months": 1, "payment": {"method": "balance"}}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    created.body["license"]["id"]
        .as_str()
        .or_else(|| created.body["id"].as_str())
        .expect("the new license's id")
        .to_owned()
}

/// Until no license is being provisioned (the job worker moves new and renamed licenses from
/// `in_progress` to `active` in the background), so that two servers read the same rows.
async fn settled(app: &TestApp, admin: &str) {
    let start = std::time::Instant::now();
    loop {
        let all = app.get("/v1/licenses?limit=200", admin).await;
        all.assert_status(StatusCode::OK);
        let busy = all.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["status"] == "in_progress");
        if !busy {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "provisioning did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Writes to a license row straight in the database, as another process (or a job) does.
async fn write_row(app: &TestApp, id: &str, column: licenses::Column, value: Expr) {
    licenses::Entity::update_many()
        .col_expr(column, value)
        .filter(licenses::Column::Id.eq(uuid::Uuid::parse_str(id).unwrap()))
        .exec(app.state.db.conn())
        .await
        .unwrap();
}

/// After every step of a random sequence of changes, a server that keeps pages answers every
/// page exactly as a server that keeps none; unchanged pages are answered from memory.
async fn kept_pages_answer_as_fresh_reads(app: &TestApp) {
    let keeping = app.spawn_second_instance().await;
    let plain = app.spawn_second_instance_with(keeps_nothing).await;
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "kept").await;
    let (account, owner) = app.partner_with_owner(&admin, "Keeper").await;
    let (other_account, other_owner) = app.partner_with_owner(&admin, "Neighbour").await;
    app.credit(&admin, &account, 10_000_000).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(order(app, &owner, &product, &format!("web-{i}.example.org")).await);
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("step seed {seed}");
    let mut steps = Steps(seed);
    let mut created = 0;
    for step in 0..14 {
        let id = ids[steps.below(ids.len() as u64) as usize].clone();
        let what = steps.below(7);
        match what {
            0 => {
                let name = format!("renamed-{step}.example.org");
                let edited = app
                    .patch(&format!("/v1/licenses/{id}"), &owner, json!({"name": name}))
                    .await;
                // A deleted license is not edited (409); a moved one is another's (404).
                assert!(
                    [StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::CONFLICT]
                        .contains(&edited.status),
                    "{:?}",
                    edited.body
                );
            }
            1 => {
                let count = Expr::col(licenses::Column::RegistrationsCount).add(1);
                write_row(app, &id, licenses::Column::RegistrationsCount, count).await;
            }
            2 => {
                let at = time::OffsetDateTime::now_utc() - time::Duration::seconds(step);
                write_row(app, &id, licenses::Column::LastValidatedAt, Expr::value(at)).await;
            }
            3 => {
                created += 1;
                let name = format!("added-{created}.example.org");
                ids.push(order(app, &owner, &product, &name).await);
            }
            4 => {
                app.delete(&format!("/v1/licenses/{id}"), &owner).await;
            }
            5 => {
                let to = Expr::value(uuid::Uuid::parse_str(&other_account).unwrap());
                write_row(app, &id, licenses::Column::AccountId, to).await;
            }
            _ => {}
        }
        settled(app, &admin).await;
        for token in [&owner, &other_owner, &admin] {
            let expected = pages(&plain, token).await;
            // Twice: the second answers come from memory where nothing changed.
            for _ in 0..2 {
                let got = pages(&keeping, token).await;
                for ((path, want), (_, have)) in expected.iter().zip(&got) {
                    assert_eq!(have, want, "step {step} (change {what}): {path}");
                }
            }
        }
    }
    if app.backend == licentia_tests::Backend::Postgres {
        assert!(
            keeping.state.pages.hits() > 0,
            "pages were answered from memory"
        );
    }
    assert_eq!(plain.state.pages.hits(), 0);
    keeping.finish().await;
    plain.finish().await;
}

/// A product renamed on one process shows in the pages another process had kept, as soon as
/// that process's catalog hears of it (the same notice as without kept pages).
async fn a_renamed_product_shows_in_kept_pages(app: &TestApp) {
    let keeping = app.spawn_second_instance().await;
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "named").await;
    let (account, owner) = app.partner_with_owner(&admin, "Renamer").await;
    app.credit(&admin, &account, 1_000_000).await;
    order(app, &owner, &product, "web.example.org").await;
    for _ in 0..3 {
        let page = keeping.get("/v1/licenses?sort=name", &owner).await;
        assert_eq!(page.body["items"][0]["product_name"], "Product named");
    }
    app.patch(
        &format!("/v1/products/{}", product["id"].as_str().unwrap()),
        &admin,
        json!({"name": "Renamed"}),
    )
    .await
    .assert_status(StatusCode::OK);
    within_notice(|| async {
        keeping.get("/v1/licenses?sort=name", &owner).await.body["items"][0]["product_name"]
            == "Renamed"
    })
    .await;
    keeping.finish().await;
}

db_test!(
    kept_pages_answer_as_fresh_reads,
    a_renamed_product_shows_in_kept_pages
);
