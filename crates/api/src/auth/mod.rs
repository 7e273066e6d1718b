//! Authentication: access tokens, refresh tokens, the principal extractor and the routes.
pub mod handlers;
pub mod jwt;
pub mod principal;

pub use principal::{Caller, Principal};
