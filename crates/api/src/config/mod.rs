//! Layered configuration: defaults, then an optional `licentia.toml`, then `LICENTIA_*`
//! environment variables. A bad value stops the start with one line naming it.
mod values;

use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use licentia_domain::money::Currency;
use serde::{Deserialize, Serialize};

pub use values::{Bind, Days, Hours, JwtAlgorithm, List, LogFormat, Millis, Secret, Secs, Switch};

/// Every setting of the service. Field names are the environment variables without the
/// `LICENTIA_` prefix, lower-cased.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    pub database_url: String,
    pub bind: Bind,
    pub admin_email: String,
    pub admin_password: Option<Secret>,
    pub currency: Currency,
    pub jwt_secret: Option<Secret>,
    pub jwt_algorithm: JwtAlgorithm,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// Clock skew tolerated on `exp`/`nbf`; kept small on purpose.
    pub jwt_leeway_secs: u64,
    pub access_token_ttl_secs: Secs,
    pub refresh_token_ttl_secs: Secs,
    pub provision_attempts: NonZeroU32,
    pub encryption_key: Option<Secret>,
    pub job_poll_ms: Millis,
    pub sweep_interval_secs: Secs,
    pub renew_lead_days: Days,
    pub grace_days: Days,
    pub expiring_soon_days: Days,
    pub transfer_ttl_hours: Hours,
    pub license_file_ttl_days: Days,
    pub body_limit_bytes: NonZeroU64,
    pub cors_origins: List,
    /// Host names or IP literals webhooks may target even when they are (or resolve to)
    /// loopback, private or link-local addresses; comma-separated, matched exactly.
    pub webhook_allowed_hosts: List,
    /// The first webhook retry waits this long; each next one twice as long, up to an hour.
    pub webhook_retry_base_ms: Millis,
    pub rate_limit: Switch,
    pub log: String,
    pub log_format: LogFormat,
    pub db_max_connections: NonZeroU32,
    /// Connections each HTTP worker holds in each of the two hot-path pools on PostgreSQL
    /// (validation look-ups and unfiltered list pages; filtered list pages).
    pub db_hot_connections: NonZeroU32,
    pub db_acquire_timeout_ms: Millis,
    /// MiB of license list pages each process keeps and checks per request against the
    /// database (PostgreSQL); 0 keeps none.
    pub page_cache_mb: u64,
    pub request_timeout_secs: Secs,
    /// A request body must arrive within this many seconds of its head (else 408).
    pub body_timeout_secs: Secs,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// The most licenses one bulk operation may match (more: 422 `too_many_matches`).
    pub bulk_max_matches: NonZeroU64,
    /// An `Idempotency-Key` still in progress after this long belongs to a request whose
    /// process died; a retry with it may run (its effect commits only with its own claim).
    pub idempotency_stale_secs: u64,
    /// How often each serving process writes the usage it recorded (`last_validated_at`,
    /// registrations' `last_seen_at`); a crash loses at most this much.
    pub usage_flush_secs: Secs,
    /// A PostgreSQL streaming replica for validations, license files, reports and exports.
    pub read_database_url: Option<String>,
    /// The replica is bypassed while its replayed WAL position is behind the primary's for
    /// longer than this (unless the primary is unreachable).
    pub read_max_lag_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://licentia.db?mode=rwc".into(),
            bind: Bind::from(std::net::SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_email: "admin@licentia.local".into(),
            admin_password: None,
            currency: Currency::USD,
            jwt_secret: None,
            jwt_algorithm: JwtAlgorithm::HS256,
            jwt_issuer: "licentia".into(),
            jwt_audience: "licentia-api".into(),
            jwt_leeway_secs: 5,
            access_token_ttl_secs: Secs::new(900),
            refresh_token_ttl_secs: Secs::new(30 * 24 * 3600),
            provision_attempts: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            encryption_key: None,
            job_poll_ms: Millis::new(1000),
            sweep_interval_secs: Secs::new(60),
            renew_lead_days: Days::new(3),
            grace_days: Days::new(30),
            expiring_soon_days: Days::new(7),
            transfer_ttl_hours: Hours::new(168),
            license_file_ttl_days: Days::new(30),
            body_limit_bytes: NonZeroU64::new(65536).unwrap_or(NonZeroU64::MIN),
            cors_origins: List::default(),
            webhook_allowed_hosts: List::default(),
            webhook_retry_base_ms: Millis::new(1000),
            rate_limit: Switch::On,
            log: "info".into(),
            log_format: LogFormat::Text,
            db_max_connections: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            db_hot_connections: NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN),
            db_acquire_timeout_ms: Millis::new(2000),
            page_cache_mb: 16,
            request_timeout_secs: Secs::new(30),
            body_timeout_secs: Secs::new(10),
            workers: 0,
            bulk_max_matches: NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN),
            idempotency_stale_secs: 30,
            usage_flush_secs: Secs::new(60),
            read_database_url: None,
            read_max_lag_secs: 10,
        }
    }
}

/// A configuration problem, already phrased as the one line to print.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// The use cases' business settings, typed. Day and hour counts are capped (at ~10,000
    /// years, and a century for transfer offers) so no date arithmetic can overflow.
    pub fn policy(&self) -> licentia_app::Policy {
        fn seconds(n: u64, unit: u64, cap: u64) -> time::Duration {
            time::Duration::seconds(i64::try_from(n.min(cap) * unit).unwrap_or(i64::MAX))
        }
        const DAY: u64 = 86_400;
        const MAX_DAYS: u64 = 3_652_500;
        licentia_app::Policy {
            transfer_ttl: seconds(self.transfer_ttl_hours.get(), 3_600, 100 * 366 * 24),
            sweep_interval: seconds(self.sweep_interval_secs.get(), 1, MAX_DAYS * DAY),
            renew_lead: seconds(self.renew_lead_days.get(), DAY, MAX_DAYS),
            grace: seconds(self.grace_days.get(), DAY, MAX_DAYS),
            expiring_soon: seconds(self.expiring_soon_days.get(), DAY, MAX_DAYS),
            provision_attempts: i32::try_from(self.provision_attempts.get()).unwrap_or(i32::MAX),
            bulk_max_matches: self.bulk_max_matches.get(),
        }
    }

    /// Loads defaults → file → environment. `file` is `--config`/`LICENTIA_CONFIG`; without
    /// it, `./licentia.toml` is read when present.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let path = file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("licentia.toml"));
        if file.is_some() && !path.exists() {
            return Err(ConfigError(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        // The default file is optional; a file named explicitly must exist (checked above).
        if path.exists() {
            figment = figment.merge(Toml::file_exact(&path));
        }
        let figment = figment.merge(Env::prefixed("LICENTIA_").ignore(&["config"]));
        Self::from_figment(&figment)
    }

    /// Extracts and validates; public so that tests can layer their own values.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|e| ConfigError(describe(&e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |var: &str, why: &str| {
            Err(ConfigError(format!(
                "LICENTIA_{} {why}",
                var.to_uppercase()
            )))
        };
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return bad(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }
        if let Some(secret) = &self.jwt_secret
            && secret.expose().len() < 32
        {
            return bad("jwt_secret", "must be at least 32 characters");
        }
        if let Some(key) = &self.encryption_key
            && licentia_app::crypto::decode_key(key.expose()).is_none()
        {
            return bad("encryption_key", "must be 32 bytes, base64-encoded");
        }
        if let Some(password) = &self.admin_password
            && password.expose().chars().count() < licentia_domain::auth::MIN_PASSWORD_CHARS
        {
            return bad(
                "admin_password",
                &format!(
                    "must be at least {} characters, like every password",
                    licentia_domain::auth::MIN_PASSWORD_CHARS
                ),
            );
        }
        if !self.admin_email.contains('@') {
            return bad("admin_email", "is not an e-mail address");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return bad("log", "is not a valid tracing filter");
        }
        Ok(())
    }

    pub fn rate_limit_enabled(&self) -> bool {
        self.rate_limit == Switch::On
    }

    /// `webhook_allowed_hosts` lower-cased (host names compare case-insensitively).
    pub fn webhook_allowed_hosts(&self) -> Vec<String> {
        self.webhook_allowed_hosts
            .items()
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect()
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

/// Turns a figment error into one line naming the variable, e.g.
/// `LICENTIA_ACCESS_TOKEN_TTL_SECS: invalid type: found string "abc", expected u64`.
fn describe(err: &figment::Error) -> String {
    let key = err
        .path
        .last()
        .map(|k| format!("LICENTIA_{}", k.to_uppercase()));
    let kind = err.kind.to_string();
    match key {
        Some(key) => format!("{key}: {kind}"),
        None => kind,
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Serialized, Toml};

    use std::time::Duration;

    use super::Config;

    fn with(toml: &str) -> Result<Config, String> {
        let figment =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml));
        Config::from_figment(&figment).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_valid() {
        let config = with("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.bind.as_str(), "127.0.0.1:8080");
        assert_eq!(config.access_token_ttl_secs.get(), 900);
        assert_eq!(
            config.grace_days.duration(),
            Duration::from_secs(30 * 86_400)
        );
        assert!(config.rate_limit_enabled());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (toml, var) in [
            (
                "access_token_ttl_secs = \"abc\"",
                "LICENTIA_ACCESS_TOKEN_TTL_SECS",
            ),
            (
                "access_token_ttl_secs = -5",
                "LICENTIA_ACCESS_TOKEN_TTL_SECS",
            ),
            ("grace_days = 0", "LICENTIA_GRACE_DAYS"),
            ("usage_flush_secs = 0", "LICENTIA_USAGE_FLUSH_SECS"),
            ("db_max_connections = 0", "LICENTIA_DB_MAX_CONNECTIONS"),
            ("db_hot_connections = 0", "LICENTIA_DB_HOT_CONNECTIONS"),
            ("job_poll_ms = -1", "LICENTIA_JOB_POLL_MS"),
            ("bind = \"nowhere\"", "LICENTIA_BIND"),
            ("currency = \"usd\"", "LICENTIA_CURRENCY"),
            ("jwt_algorithm = \"none\"", "LICENTIA_JWT_ALGORITHM"),
            ("jwt_secret = \"short\"", "LICENTIA_JWT_SECRET"),
            (
                "encryption_key = \"bm90IDMyIGJ5dGVz\"",
                "LICENTIA_ENCRYPTION_KEY",
            ),
            ("rate_limit = \"maybe\"", "LICENTIA_RATE_LIMIT"),
            ("log_format = \"xml\"", "LICENTIA_LOG_FORMAT"),
            ("jwt_algorithm = \"HS257\"", "LICENTIA_JWT_ALGORITHM"),
            ("database_url = \"mysql://x\"", "LICENTIA_DATABASE_URL"),
        ] {
            let err = with(toml).err().unwrap_or_default();
            assert!(err.contains(var), "{toml}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn bind_accepts_a_host_name_and_port() {
        let config = with("bind = \"localhost:9091\"").unwrap_or_else(|e| panic!("{e}"));
        let addr = config.bind.addr();
        assert!(addr.ip().is_loopback(), "{addr}");
        assert_eq!(addr.port(), 9091);
        let err = with("bind = \"localhost\"").err().unwrap_or_default();
        assert!(err.contains("host:port"), "{err}");
    }

    #[test]
    fn lists_come_as_one_string_or_an_array() {
        let config = with("cors_origins = \" https://a.test, ,https://b.test \"")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.cors_origins.items(),
            ["https://a.test", "https://b.test"]
        );
        let config = with("webhook_allowed_hosts = [\"Hooks.Local\", \"::1\"]")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.webhook_allowed_hosts(), ["hooks.local", "::1"]);
        assert!(
            with("")
                .unwrap_or_else(|e| panic!("{e}"))
                .cors_origins
                .items()
                .is_empty()
        );
    }

    #[test]
    fn a_missing_default_file_is_fine_but_a_named_one_is_not() {
        let missing = std::path::Path::new("/nonexistent/licentia.toml");
        assert!(Config::load(Some(missing)).is_err());
    }

    #[test]
    fn secrets_are_redacted_and_numeric_ones_accepted() {
        let config = with("admin_password = 123456789012").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.admin_password.as_ref().map(|s| s.expose()),
            Some("123456789012")
        );
        assert!(!format!("{config:?}").contains("123456789012"));
        let short = with("admin_password = \"eleven-char\"")
            .err()
            .unwrap_or_default();
        assert!(short.contains("at least 12 characters"), "{short}");
    }
}
