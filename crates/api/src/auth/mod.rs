//! Authentication: API keys and the principal extractor (the routes that log in, refresh and
//! log out are `routes::auth`; the access tokens' keys are `crate::jwt`).
pub mod api_key;
pub mod principal;

pub use principal::{Caller, Principal};

pub use licentia_domain::auth::MIN_PASSWORD_CHARS;
