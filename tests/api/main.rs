//! Black-box HTTP tests of the whole service, each run on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected shapes")]

mod accounts;
mod api_keys;
mod auth;
mod idempotency;
mod ledger;
mod license_edit;
mod licenses;
mod openapi;
mod products;
mod security;
mod system;
