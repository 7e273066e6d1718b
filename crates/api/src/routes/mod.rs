//! Every documented route, registered once: the same function feeds the server and the
//! OpenAPI document, so the two cannot drift.
pub mod accounts;
pub mod api_keys;
pub mod auth;
pub mod bulk;
pub mod configuration;
pub mod events;
pub mod exports;
pub mod ledger;
pub mod license_edit;
pub mod license_files;
pub mod licenses;
pub mod metrics;
pub mod orders;
pub mod previews;
pub mod products;
pub mod provisioning;
pub mod registrations;
pub mod renewals;
pub mod reports;
pub mod signing_keys;
pub mod system;
pub mod transfers;
pub mod users;
pub mod validate;
pub mod webhooks;

use utoipa_actix_web::service_config::ServiceConfig;

/// Every route. actix tries routes in registration order (a regex per templated route on the
/// way), and the metrics and tracing middleware look the template up again: the hot paths go
/// first.
pub fn configure(cfg: &mut ServiceConfig<'_>) {
    hot_paths(cfg);
    identity_and_catalog(cfg);
    license_life(cfg);
    platform(cfg);
}

/// The licensed software's calls, list pages, single licenses and the probes.
fn hot_paths(cfg: &mut ServiceConfig<'_>) {
    cfg.service(validate::validate_license)
        .service(registrations::create_registration)
        .service(licenses::list_licenses)
        // Before `/v1/licenses/{id}`, which would take `count` for an id.
        .service(licenses::count_licenses)
        .service(licenses::get_license)
        .service(system::get_health)
        .service(system::get_readiness)
        .service(metrics::get_metrics);
}

/// Sign-in, keys, accounts, their money and users, and the product catalog.
fn identity_and_catalog(cfg: &mut ServiceConfig<'_>) {
    cfg.service(auth::create_token)
        .service(auth::refresh_token)
        .service(auth::logout)
        .service(auth::get_me)
        .service(auth::change_my_password)
        .service(api_keys::create_api_key)
        .service(api_keys::list_api_keys)
        .service(api_keys::delete_api_key)
        .service(accounts::create_account)
        .service(accounts::list_accounts)
        .service(accounts::get_account)
        .service(accounts::update_account)
        .service(ledger::create_credit)
        .service(ledger::list_ledger_entries)
        .service(users::create_user)
        .service(users::list_users)
        .service(users::delete_user)
        .service(products::create_product)
        .service(products::list_products)
        .service(products::get_product)
        .service(products::update_product)
        .service(products::archive_product);
}

/// A license's life: order, previews, edits, transitions, renewals, machines, files.
fn license_life(cfg: &mut ServiceConfig<'_>) {
    cfg.service(licenses::create_license)
        .service(previews::preview_create_license)
        .service(previews::preview_renew_license)
        .service(previews::preview_update_license_configuration)
        .service(previews::preview_create_transfer)
        .service(provisioning::retry_provisioning)
        .service(license_edit::update_license)
        .service(licenses::enable_license)
        .service(licenses::disable_license)
        .service(licenses::delete_license)
        .service(bulk::create_bulk_operation)
        .service(bulk::get_bulk_operation)
        .service(renewals::get_renewal_quote)
        .service(renewals::renew_license)
        .service(configuration::update_license_configuration)
        .service(registrations::list_registrations)
        .service(registrations::delete_registrations)
        .service(registrations::delete_registration)
        .service(registrations::create_deregistration)
        .service(reports::get_license_report)
        .service(reports::get_revenue_report)
        .service(license_files::create_owner_license_file)
        .service(license_files::create_license_file);
}

/// Signing keys, events, orders, transfers and webhooks.
fn platform(cfg: &mut ServiceConfig<'_>) {
    cfg.service(signing_keys::get_signing_key)
        .service(signing_keys::list_signing_keys)
        .service(signing_keys::rotate_signing_key)
        .service(events::list_events)
        .service(events::stream_events)
        .service(orders::list_orders)
        .service(orders::get_order)
        .service(orders::pay_order)
        .service(orders::cancel_order)
        .service(transfers::create_transfer)
        .service(transfers::list_transfers)
        .service(transfers::get_transfer)
        .service(transfers::accept_transfer)
        .service(transfers::reject_transfer)
        .service(transfers::cancel_transfer)
        .service(webhooks::create_webhook_endpoint)
        .service(webhooks::list_webhook_endpoints)
        .service(webhooks::get_webhook_endpoint)
        .service(webhooks::update_webhook_endpoint)
        .service(webhooks::delete_webhook_endpoint)
        .service(webhooks::list_webhook_deliveries)
        .service(webhooks::redeliver_webhook_delivery)
        .service(webhooks::ping_webhook_endpoint);
}
