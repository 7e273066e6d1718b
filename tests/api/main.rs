//! Black-box HTTP tests of the whole service, each run on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected shapes")]

mod accounts;
mod api_keys;
mod auth;
mod authority;
mod bad_input;
mod bulk;
mod concurrency;
mod configuration;
mod events;
mod faults;
mod idempotency;
mod ledger;
mod license_edit;
mod licensed_software;
mod licenses;
mod metrics;
mod money_invariants;
mod openapi;
mod payment_scope;
mod products;
mod provisioning;
mod renewals;
mod security;
mod seed;
mod slow_clients;
mod stale_items;
mod sweeps;
mod system;
mod transfers;
mod value_invariants;
mod webhooks;
