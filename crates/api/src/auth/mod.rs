//! Authentication: access tokens, refresh tokens and the principal extractor (the routes that
//! log in, refresh and log out are `routes::auth`).
pub mod api_key;
pub mod jwt;
pub mod principal;

pub use principal::{Caller, Principal};

/// The shortest password anywhere: a user's (created or changed) and the bootstrap admin's
/// (`LICENTIA_ADMIN_PASSWORD`). `routes::users` repeats it in its `garde` attribute.
pub const MIN_PASSWORD_CHARS: usize = 12;
