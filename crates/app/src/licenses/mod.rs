//! Use cases of the license aggregate.
pub mod bulk;
pub mod renew;
pub mod transition;
