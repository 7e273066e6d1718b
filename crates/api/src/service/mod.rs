//! Transaction scripts: the orchestration of one business operation across repositories,
//! always inside the caller's transaction.
pub mod billing;
pub mod bulk;
pub mod event_stream;
pub mod lifecycle;
pub mod provisioning;
pub mod renewal;
pub mod sweeps;
pub mod transfers;
pub mod webhooks;
