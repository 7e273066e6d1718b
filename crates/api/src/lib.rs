//! Licentia's HTTP API: actix-web handlers, authentication, problem responses, the OpenAPI
//! document, configuration and start-up. The `licentia` binary is a thin CLI over this.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod csv;
pub mod document;
pub mod dto;
pub mod error;
pub mod event_stream;
pub mod extract;
pub mod fallback;
pub mod idempotency;
pub mod jwt;
pub mod keyring;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod pagination;
pub mod read;
pub mod routes;
pub mod seed;
pub mod service;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod text_guard;
pub mod usage;
pub mod worker;

pub use config::Config;
pub use licentia_app::{clock, crypto};
pub use startup::{prepare, serve, serve_with_worker};
pub use state::AppState;
