//! Licentia's pure domain core.
//!
//! Types and rules only: ids, money, periods, calendar arithmetic, catalog pricing, the license
//! state machine, the transfer handshake, roles and scopes. No I/O happens here, so every rule
//! is unit-testable without a database or a clock.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod account;
pub mod auth;
pub mod bulk;
pub mod calendar;
pub mod event;
pub mod ids;
pub mod license;
pub mod license_fields;
pub mod license_file;
pub mod license_record;
pub mod money;
pub mod order;
pub mod period;
pub mod pricing;
pub mod product;
pub mod signing;
pub mod transfer;
pub mod validation;

mod text_enum;

pub use text_enum::ParseEnumError;
