//! Webhook delivery (CONTRACT §8). Every recorded event queues, in its own transaction, one
//! delivery per subscribed endpoint (`repo::webhooks::enqueue_deliveries`); the job worker
//! hands each `webhook_delivery` job to [`start`], which POSTs
//! `{id, type, created_at, data}` signed with the endpoint's secret:
//!
//! `Licentia-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//!
//! Delivery is at least once (receivers dedupe by `Licentia-Event-Id`): a failed attempt
//! (non-2xx, redirect, timeout, refused address) is retried after 1 s, 2 s, 4 s, … capped at
//! 1 h, [`MAX_ATTEMPTS`] times — a little over 24 h with the default base. Each attempt checks
//! the URL again and connects only to the addresses it checked.
pub mod guard;

use licentia_domain::event::EventType;
use std::time::Duration;

use licentia_persistence::repo::events::Event;
use licentia_persistence::repo::jobs::{self, Job};
use licentia_persistence::repo::webhooks::{self, Attempt, DeliveryStatus, Endpoint};
pub use licentia_persistence::repo::webhooks::{ALL_TYPES, JOB_KIND, MAX_ATTEMPTS};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use licentia_app::crypto;

/// The event `POST /v1/webhook-endpoints/{id}/ping` sends to that one endpoint.
pub const PING: EventType = EventType::WebhookPing;

/// The whole exchange with a receiver, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two attempts.
const RETRY_CAP: Duration = Duration::from_secs(3600);

/// Deliveries in flight per process: a slow receiver holds a slot for at most [`TIMEOUT`],
/// and the worker waits for a free slot before starting the next delivery.
static IN_FLIGHT: Semaphore = Semaphore::const_new(16);

/// Installs ring as the process's rustls provider (reqwest is built without a default one,
/// to reuse the ring that sqlx already builds). Idempotent; call it before building a client.
pub fn install_tls_provider() {
    // An error means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A new endpoint secret: `whsec_` and 256 random bits.
pub fn generate_secret() -> String {
    format!("whsec_{}", crypto::random_token(32))
}

/// `hex(HMAC-SHA256(key = the secret's UTF-8 bytes, message = "<timestamp>.<body>"))`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The wait after the `attempt`-th failed attempt: `base_ms` doubling, capped at an hour.
pub fn retry_delay(base_ms: u64, attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(40);
    let ms = base_ms.saturating_mul(1_u64 << exponent);
    Duration::from_millis(ms).min(RETRY_CAP)
}

/// The delivered body: `{id, type, created_at, data: {account_id, license_id, before, after}}`.
pub fn body_of(event: &Event) -> Vec<u8> {
    let created_at = event
        .created_at
        .to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let body = serde_json::json!({
        "id": event.id,
        "type": event.event_type,
        "created_at": created_at,
        "data": {
            "account_id": event.account_id,
            "license_id": event.license_id,
            "before": event.before,
            "after": event.after,
        },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Works one claimed `webhook_delivery` job: waits for a free slot, then sends in the
/// background, recording the outcome and finishing or rescheduling the job itself.
pub async fn start(state: &AppState, job: Job) {
    let Ok(permit) = IN_FLIGHT.acquire().await else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        let _permit = permit;
        if let Err(e) = run(&state, &job).await {
            // The outcome could not be recorded (database trouble): retry on the queue's
            // own schedule; the delivery row still says pending.
            tracing::warn!(job = %job.id, error = %e, "webhook delivery failed");
            let retry = job.retry_at(licentia_persistence::now());
            if let Err(e) = jobs::fail(state.db.conn(), job.id, &e.to_string(), retry).await {
                tracing::warn!(job = %job.id, error = %e, "could not reschedule the webhook delivery");
            }
        }
    });
}

/// One attempt of one delivery.
async fn run(state: &AppState, job: &Job) -> ApiResult<()> {
    let db = state.db.conn();
    let Some(id) = job
        .payload
        .get("delivery_id")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<Uuid>().ok())
    else {
        jobs::fail(db, job.id, "bad webhook delivery payload", None).await?;
        return Ok(());
    };
    let Some((delivery, endpoint, event)) = webhooks::delivery_context(db, id).await? else {
        // The endpoint was deleted, and its deliveries with it.
        jobs::complete(db, job.id).await?;
        return Ok(());
    };
    if delivery.status != DeliveryStatus::Pending {
        jobs::complete(db, job.id).await?;
        return Ok(());
    }
    let given_up = |error: &str| Attempt {
        attempts: job.attempts.min(job.max_attempts),
        status: DeliveryStatus::Failed,
        status_code: None,
        error: Some(error.to_owned()),
        next_attempt_at: None,
        delivered_at: None,
    };
    let attempt = if job.attempts > job.max_attempts {
        given_up("the last attempt was interrupted")
    } else if !endpoint.enabled {
        given_up("the endpoint is disabled")
    } else {
        let outcome = send(state, &endpoint, &event).await;
        let now = licentia_persistence::now();
        match outcome {
            Ok(code) => Attempt {
                attempts: job.attempts,
                status: DeliveryStatus::Delivered,
                status_code: Some(code),
                error: None,
                next_attempt_at: None,
                delivered_at: Some(now),
            },
            Err(failure) => {
                crate::metrics::webhook_failed();
                let last = job.attempts >= job.max_attempts;
                let wait = retry_delay(state.config.webhook_retry_base_ms.get(), job.attempts);
                Attempt {
                    attempts: job.attempts,
                    status: if last {
                        DeliveryStatus::Failed
                    } else {
                        DeliveryStatus::Pending
                    },
                    status_code: failure.status_code,
                    error: Some(failure.error),
                    next_attempt_at: (!last).then(|| now + wait),
                    delivered_at: None,
                }
            }
        }
    };
    let txn = licentia_persistence::begin(db).await?;
    webhooks::record_attempt(&txn, delivery.id, job.id, attempt).await?;
    txn.commit()
        .await
        .map_err(licentia_persistence::PersistenceError::from)?;
    Ok(())
}

/// Why an attempt did not deliver.
#[derive(Debug)]
struct Failure {
    status_code: Option<u16>,
    error: String,
}

impl Failure {
    fn new(error: impl Into<String>) -> Self {
        Self {
            status_code: None,
            error: error.into(),
        }
    }
}

/// Checks the URL again, then POSTs the signed event to the checked addresses only.
async fn send(state: &AppState, endpoint: &Endpoint, event: &Event) -> Result<u16, Failure> {
    let secret = crypto::open(&state.encryption_key, &endpoint.secret_enc)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| Failure::new("the endpoint's secret cannot be decrypted"))?;
    let url = guard::parse(&endpoint.url).map_err(|e| Failure::new(format!("refused: url {e}")))?;
    let allowed = state.config.webhook_allowed_hosts();
    let addrs = guard::resolve(&url, &allowed)
        .await
        .map_err(|e| Failure::new(format!("refused: url {e}")))?;
    let body = body_of(event);
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signed = format!("t={timestamp},v1={}", signature(&secret, timestamp, &body));

    install_tls_provider();
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("Licentia-Webhooks/", env!("CARGO_PKG_VERSION")));
    // Pinning: the connection goes to the addresses just checked, whatever DNS says next.
    if let Some(url::Host::Domain(name)) = url.host() {
        client = client.resolve_to_addrs(name, &addrs);
    }
    let client = client
        .build()
        .map_err(|e| Failure::new(format!("could not build the HTTP client: {e}")))?;
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Licentia-Event-Id", event.id.to_string())
        .header("Licentia-Signature", signed)
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::new(describe(e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    Err(Failure {
        status_code: Some(status.as_u16()),
        error: if status.is_redirection() {
            format!("the receiver answered {status}; redirects are not followed")
        } else {
            format!("the receiver answered {status}")
        },
    })
}

/// A transport error in a line for the delivery log.
fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if err.is_connect() {
        "could not connect to the receiver".to_owned()
    } else {
        format!("the request failed: {}", err.without_url())
    }
}

/// 422 `invalid_webhook_url` unless `raw` may receive webhooks; the normalized URL otherwise.
pub async fn check_url(state: &AppState, raw: &str) -> ApiResult<String> {
    let url = guard::parse(raw).map_err(ApiError::InvalidWebhookUrl)?;
    guard::resolve(&url, &state.config.webhook_allowed_hosts())
        .await
        .map_err(ApiError::InvalidWebhookUrl)?;
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_span_more_than_a_day_with_the_default_base() {
        let base = crate::config::Config::default().webhook_retry_base_ms.get();
        let waits: Vec<Duration> = (1..MAX_ATTEMPTS).map(|n| retry_delay(base, n)).collect();
        assert_eq!(waits[0], Duration::from_secs(1));
        assert_eq!(waits[1], Duration::from_secs(2));
        assert!(waits.iter().all(|w| *w <= RETRY_CAP));
        assert_eq!(waits.last().copied(), Some(RETRY_CAP));
        let span: Duration = waits.iter().sum();
        assert!(span >= Duration::from_secs(24 * 3600), "{span:?}");
        const { assert!(MAX_ATTEMPTS >= 15) };
        assert_eq!(retry_delay(base, i32::MAX), RETRY_CAP);
        assert_eq!(retry_delay(u64::MAX, 3), RETRY_CAP);
    }

    #[test]
    fn signature_is_hex_hmac_of_timestamp_dot_body() {
        // Computed independently: Python's hmac.new(b"whsec_test", b'1700000000.{"id":"x"}',
        // hashlib.sha256).hexdigest().
        let sig = signature("whsec_test", 1_700_000_000, br#"{"id":"x"}"#);
        assert_eq!(
            sig,
            "80e8d098018f757aa814ab1abb924f35d304affa1d93d29611a54696207eb7c3"
        );
        assert_ne!(
            sig,
            signature("whsec_test", 1_700_000_001, br#"{"id":"x"}"#)
        );
        assert_ne!(
            sig,
            signature("whsec_other", 1_700_000_000, br#"{"id":"x"}"#)
        );
    }

    #[test]
    fn the_documentation_names_every_event_type() {
        let doc = crate::document::document();
        let text = doc
            .tags
            .unwrap_or_default()
            .into_iter()
            .find(|t| t.name == "webhooks")
            .and_then(|t| t.description)
            .unwrap_or_default();
        for t in EventType::delivered() {
            assert!(text.contains(&format!("`{t}`")), "{t} is not documented");
        }
    }
}
