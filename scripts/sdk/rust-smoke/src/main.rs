//! Smoke flow with the generated Rust client, run by scripts/sdk.sh:
//! `licentia-sdk-smoke BASE ADMIN_EMAIL ADMIN_PASSWORD`.
//!
//! The same flow as scripts/sdk_smoke.py and scripts/sdk/ts/smoke.ts: log in, product, partner,
//! credit, preview and order, filtered list, preview and renew (the new `valid_until` is the
//! preview's), disable/enable, preview and transfer, validate with an Ed25519 signature check
//! over the RFC 8785 canonical JSON of the answer without `signature`. Every step asserts the
//! objects it gets back; the first failure ends the run with a non-zero status.
use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use licentia_client::apis::configuration::Configuration;
use licentia_client::apis::{
    accounts_api, auth_api, billing_api, licensed_software_api, licenses_api, products_api,
    transfers_api, users_api,
};
use licentia_client::models::{
    AcceptTransfer, BalancePayment, CreateAccount, CreateCredit, CreateLicense, CreateProduct,
    CreateRenewal, CreateTransfer, CreateUser, DisableLicense, LicenseOut, LicenseStatus,
    OrderStatus, PaymentIn, PeriodMonths, PriceDto, Role, SigningAlgorithm, SuspensionReason,
    TokenRequest, TransferStatus, ValidateRequest, ValidationCode,
};

type Result<T> = std::result::Result<T, String>;

struct Flow {
    base: String,
    run: String,
    steps: usize,
}

impl Flow {
    fn config(&self, token: Option<String>) -> Configuration {
        Configuration {
            base_path: self.base.clone(),
            bearer_access_token: token,
            ..Configuration::default()
        }
    }

    /// The value of a call, or its error named by the step.
    fn ok<T, E: Debug>(&mut self, step: &str, result: std::result::Result<T, E>) -> Result<T> {
        let value = result.map_err(|e| format!("{step}: {e:?}"))?;
        self.steps += 1;
        println!("  ok  {step}");
        Ok(value)
    }

    async fn login(&mut self, email: &str, password: &str) -> Result<Configuration> {
        let request = TokenRequest::new(email.to_owned(), password.to_owned());
        let result = auth_api::create_token(&self.config(None), request).await;
        let token = self.ok(&format!("log in as {email}"), result)?;
        check("token type", &token.token_type, &"Bearer".to_owned())?;
        Ok(self.config(Some(token.access_token)))
    }

    async fn partner_with_owner(
        &mut self,
        admin: &Configuration,
        name: &str,
    ) -> Result<(String, Configuration)> {
        let result =
            accounts_api::create_account(admin, CreateAccount::new(name.to_owned()), None).await;
        let account = self.ok(&format!("create partner {name}"), result)?;
        check("partner name", &account.name, &name.to_owned())?;
        let email = format!(
            "owner-{}-{}@sdk.test",
            name.to_lowercase().replace(' ', "-"),
            self.run
        );
        let password = format!("owner-password-{}", self.run);
        let user = CreateUser::new(email.clone(), password.clone(), Role::Owner);
        let id = account.id.to_string();
        let result = users_api::create_user(admin, &id, user, None).await;
        let user = self.ok(&format!("create owner of {name}"), result)?;
        check("owner role", &user.role, &Role::Owner)?;
        Ok((id, self.login(&email, &password).await?))
    }
}

fn check<T: PartialEq + Debug>(what: &str, actual: &T, expected: &T) -> Result<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected:?}, got {actual:?}"))
    }
}

async fn wait_active(client: &Configuration, id: &str) -> Result<LicenseOut> {
    let mut status = None;
    for _ in 0..100 {
        let current = licenses_api::get_license(client, id)
            .await
            .map_err(|e| format!("get license {id}: {e:?}"))?;
        if current.status == LicenseStatus::Active {
            return Ok(current);
        }
        status = Some(current.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "license {id} did not become active (status {status:?})"
    ))
}

fn balance() -> Option<Option<Box<PaymentIn>>> {
    Some(Some(Box::new(PaymentIn::Balance(Box::new(
        BalancePayment::new(),
    )))))
}

async fn flow(flow: &mut Flow, admin_email: &str, admin_password: &str) -> Result<()> {
    let admin = flow.login(admin_email, admin_password).await?;
    let run = flow.run.clone();
    let prices = [PeriodMonths::M1, PeriodMonths::M3, PeriodMonths::M12]
        .into_iter()
        .map(|m| PriceDto::new(1000 * m as i64, m))
        .collect();
    let mut product =
        CreateProduct::new(format!("sdk-rs-{run}"), "SDK smoke product".into(), prices);
    product.transferable = Some(Some(true));
    let result = products_api::create_product(&admin, product, None).await;
    let product = flow.ok("create product", result)?;
    check("product code", &product.code, &format!("sdk-rs-{run}"))?;

    let (partner, owner) = flow.partner_with_owner(&admin, "SDK partner").await?;
    let credit = CreateCredit::new(100_000, "sdk smoke".into());
    let key = format!("sdk-credit-{run}");
    let result = billing_api::create_credit(&admin, &partner, credit, Some(&key)).await;
    let credit = flow.ok("credit partner", result)?;
    check("credited amount", &credit.amount, &100_000)?;

    let mut order = CreateLicense::new("192.0.2.40".into(), format!("sdk-{run}"), product.id);
    order.period_months = Some(Some(PeriodMonths::M1));
    order.payment = balance();
    let result = licenses_api::preview_create_license(&owner, order.clone()).await;
    let preview = flow.ok("preview the order", result)?;
    check("previewed amount", &preview.amount, &1000)?;
    let key = format!("sdk-order-{run}");
    let result = licenses_api::create_license(&owner, order, Some(&key)).await;
    let created = flow.ok("order license (balance)", result)?;
    let id = created.license.id.to_string();
    check(
        "ordered license name",
        &created.license.name,
        &format!("sdk-{run}"),
    )?;
    check(
        "ordered license ip",
        &created.license.ip,
        &"192.0.2.40".to_owned(),
    )?;
    let paid = created.order.flatten().ok_or("the order is missing")?;
    check("order status", &paid.status, &OrderStatus::Paid)?;
    check("order total", &paid.total, &preview.amount)?;
    check(
        "order's license",
        &paid.items[0].license_id,
        &created.license.id,
    )?;
    let before = wait_active(&owner, &id).await?;

    let name = format!("sdk-{run}");
    let result = licenses_api::list_licenses(
        &owner,
        None,
        Some(&name),
        None,
        None,
        None,
        Some("active"),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        Some(10),
        None,
    )
    .await;
    let page = flow.ok("list licenses filtered by name and status", result)?;
    let ids: Vec<String> = page.items.iter().map(|l| l.id.to_string()).collect();
    check("filtered list", &ids, &vec![id.clone()])?;
    check("last page", &page.next_cursor.flatten(), &None)?;

    let renewal = CreateRenewal::new(
        PaymentIn::Balance(Box::new(BalancePayment::new())),
        PeriodMonths::M3,
    );
    let result = licenses_api::preview_renew_license(&owner, &id, renewal.clone()).await;
    let quote = flow.ok("preview the renewal", result)?;
    check("renewal price", &quote.amount, &3000)?;
    let key = format!("sdk-renew-{run}");
    let result = licenses_api::renew_license(&owner, &id, renewal, Some(&key)).await;
    let renewed = flow.ok("renew license (balance)", result)?;
    let expected = quote.valid_until_after.flatten();
    check(
        "renewed valid_until",
        &renewed.license.valid_until.flatten(),
        &expected,
    )?;
    check(
        "renewed period",
        &renewed.license.period_months,
        &PeriodMonths::M3,
    )?;
    if renewed.license.valid_until.flatten() <= before.valid_until.flatten() {
        return Err("the renewal did not extend valid_until".into());
    }
    let active = wait_active(&owner, &id).await?;
    check(
        "renewed valid_until once active",
        &active.valid_until.flatten(),
        &expected,
    )?;

    // An empty body, not `None`: this generator sends `None` as a JSON `null` body, which the
    // API refuses (a body is an object or absent).
    let why = Some(DisableLicense::new());
    let result = licenses_api::disable_license(&owner, &id, None, why).await;
    let disabled = flow.ok("disable license", result)?;
    check(
        "disabled status",
        &disabled.status,
        &LicenseStatus::Suspended,
    )?;
    check(
        "suspension reason",
        &disabled.suspension_reason.flatten(),
        &Some(SuspensionReason::Manual),
    )?;
    let result = licenses_api::enable_license(&owner, &id, None).await;
    flow.ok("enable license", result)?;
    let enabled = wait_active(&owner, &id).await?;
    check(
        "enabled license",
        &enabled.suspension_reason.flatten(),
        &None,
    )?;

    let (receiver, receiver_owner) = flow.partner_with_owner(&admin, "SDK receiver").await?;
    let offer = CreateTransfer::new(receiver.parse().map_err(|e| format!("{e:?}"))?);
    let result = transfers_api::preview_create_transfer(&owner, &id, offer.clone()).await;
    let seen = flow.ok("preview the transfer", result)?;
    check(
        "previewed receiver",
        &seen.to_account_id.to_string(),
        &receiver,
    )?;
    check(
        "previewed license",
        &seen.license.name,
        &format!("sdk-{run}"),
    )?;
    let result = transfers_api::create_transfer(&owner, &id, offer, None).await;
    let offer = flow.ok("offer transfer", result)?;
    check("offer status", &offer.status, &TransferStatus::Pending)?;
    let accept = AcceptTransfer::new(offer.secret.clone());
    let result =
        transfers_api::accept_transfer(&receiver_owner, &offer.id.to_string(), accept, None).await;
    let accepted = flow.ok("accept transfer with the secret", result)?;
    check(
        "accepted transfer",
        &accepted.transfer.status,
        &TransferStatus::Accepted,
    )?;
    check(
        "new owner",
        &accepted.license.account_id.to_string(),
        &receiver,
    )?;
    let result = licenses_api::get_license(&receiver_owner, &id).await;
    let moved = flow.ok("receiver sees the license", result)?;
    check(
        "receiver's license",
        &moved.account_id.to_string(),
        &receiver,
    )?;

    let software = flow.config(None);
    let request = ValidateRequest::new(moved.registration_key.clone());
    let result = licensed_software_api::validate_license(&software, request.clone()).await;
    let validation = flow.ok("validate the license", result)?;
    check(
        "validation",
        &(validation.valid, validation.code),
        &(true, ValidationCode::Valid),
    )?;
    let claims = validation
        .license
        .flatten()
        .ok_or("no license in the answer")?;
    check("validated license", &claims.id, &moved.id)?;
    let result = licensed_software_api::get_signing_key(&software).await;
    let key = flow.ok("get the signing key", result)?;
    check(
        "signing key algorithm",
        &key.algorithm,
        &SigningAlgorithm::Ed25519,
    )?;
    check("signing key id", &key.key_id, &validation.key_id)?;

    // The typed answer re-serialized is not the bytes that were signed (times are parsed), so
    // the signature is checked on a raw answer fetched over the client's own connection pool.
    let raw = software
        .client
        .post(format!("{}/v1/validate", flow.base))
        .json(&request)
        .send()
        .await
        .map_err(|e| format!("validate (raw): {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("validate (raw): {e}"))?;
    let mut answer: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| format!("validate (raw): {e}"))?;
    let signature = answer
        .as_object_mut()
        .and_then(|a| a.remove("signature"))
        .and_then(|s| s.as_str().map(str::to_owned))
        .ok_or("the answer has no signature")?;
    check(
        "raw answer's key",
        &answer["key_id"],
        &serde_json::json!(key.key_id),
    )?;
    // RFC 8785 for this answer (objects, strings, integers, booleans, null): serde_json's map
    // is sorted by key, and its compact output escapes strings as JCS does.
    let canonical = serde_json::to_vec(&answer).map_err(|e| e.to_string())?;
    let public_key = STANDARD
        .decode(&key.public_key)
        .map_err(|e| format!("public key: {e}"))?;
    let public_key =
        ed25519_compact::PublicKey::from_slice(&public_key).map_err(|e| format!("{e:?}"))?;
    let signature = STANDARD
        .decode(signature)
        .map_err(|e| format!("signature: {e}"))?;
    let signature =
        ed25519_compact::Signature::from_slice(&signature).map_err(|e| format!("{e:?}"))?;
    public_key
        .verify(&canonical, &signature)
        .map_err(|e| format!("the validation answer's signature does not verify: {e:?}"))?;
    flow.steps += 1;
    println!("  ok  the validation answer's signature verifies");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, email, password] = args.as_slice() else {
        eprintln!("usage: licentia-sdk-smoke BASE ADMIN_EMAIL ADMIN_PASSWORD");
        std::process::exit(2);
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut state = Flow {
        base: base.clone(),
        run: format!("{:08x}", nanos ^ std::process::id()),
        steps: 0,
    };
    match flow(&mut state, email, password).await {
        Ok(()) => println!("SDK smoke flow (Rust) passed: {} steps", state.steps),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
