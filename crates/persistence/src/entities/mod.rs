//! sea-orm entities: one module per table. They stay inside this crate's repositories'
//! signatures as rows; callers get domain records.
pub mod accounts;
pub mod api_keys;
pub mod attempt_counters;
pub mod bulk_operation_items;
pub mod bulk_operations;
pub mod event_streams;
pub mod events;
pub mod idempotency_keys;
pub mod jobs;
pub mod ledger_allocations;
pub mod ledger_entries;
pub mod licenses;
pub mod order_items;
pub mod orders;
pub mod products;
pub mod refresh_tokens;
pub mod registrations;
pub mod settings;
pub mod signing_keys;
pub mod transfers;
pub mod trial_addresses;
pub mod trials;
pub mod users;
pub mod webhook_deliveries;
pub mod webhook_endpoints;
