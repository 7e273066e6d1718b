//! The business settings of the use cases, typed: built once from the configuration, so no use
//! case parses, clamps or defaults a number of its own (the configuration owns the defaults).
use time::Duration;

/// Terms, windows and limits of the license life cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long a transfer offer stays open.
    pub transfer_ttl: Duration,
    /// How often the sweep runs (at least a second).
    pub sweep_interval: Duration,
    /// How long before the end of its term a license is auto-renewed.
    pub renew_lead: Duration,
    /// How long an expired license is kept before it is deleted.
    pub grace: Duration,
    /// How long before the end of its term a license is announced as expiring.
    pub expiring_soon: Duration,
    /// How many times a provisioning job is tried.
    pub provision_attempts: i32,
    /// The most licenses one bulk operation may change.
    pub bulk_max_matches: u64,
}
