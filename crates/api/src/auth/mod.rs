//! Authentication: access tokens, refresh tokens, the principal extractor and the routes.
pub mod api_key;
pub mod handlers;
pub mod jwt;
pub mod principal;

pub use principal::{Caller, Principal};
