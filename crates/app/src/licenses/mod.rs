//! Use cases of the license aggregate.
pub mod bulk;
pub mod configure;
pub mod edit;
pub mod order;
pub mod renew;
pub mod transition;
