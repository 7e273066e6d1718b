//! Prometheus metrics: one process-wide recorder (the `metrics` facade with
//! `metrics-exporter-prometheus`, rendered by `GET /metrics`), the request-latency middleware,
//! and the gauges refreshed at each scrape.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `licentia_http_request_duration_seconds` | histogram | `method`, `route` (the matched route template, `unmatched` otherwise), `status` |
//! | `licentia_job_queue_depth` | gauge | — queued jobs, due or scheduled |
//! | `licentia_job_oldest_queued_age_seconds` | gauge | — how long the oldest due job has waited |
//! | `licentia_webhook_delivery_failures_total` | counter | — see [`webhook_failed`] |
//! | `licentia_db_pool_connections` | gauge | `state` = `open` / `idle` / `max` |
//! | `process_resident_memory_bytes` | gauge | — (Linux only) |
//!
//! The queue gauges describe the shared database, so every process of a service reports the
//! same values: aggregate them with `max`, not `sum`.
use std::sync::OnceLock;
use std::time::Instant;

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use licentia_persistence::repo::jobs;
use licentia_persistence::sea_orm::{DatabaseConnection, DbBackend};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_DURATION: &str = "licentia_http_request_duration_seconds";
pub const QUEUE_DEPTH: &str = "licentia_job_queue_depth";
pub const QUEUE_OLDEST_AGE: &str = "licentia_job_oldest_queued_age_seconds";
pub const WEBHOOK_FAILURES: &str = "licentia_webhook_delivery_failures_total";
pub const DB_POOL: &str = "licentia_db_pool_connections";
pub const RSS: &str = "process_resident_memory_bytes";

/// Latency buckets in seconds: from a cached validation to a slow bulk request.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use. `None` when another recorder was
/// installed first (then the metrics go there and `/metrics` answers an empty document).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), &BUCKETS)
                .map_err(|e| tracing::warn!(error = %e, "metrics buckets refused"))
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not install the metrics recorder");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    describe_histogram!(
        HTTP_DURATION,
        ::metrics::Unit::Seconds,
        "HTTP request latency by method, matched route template and status"
    );
    describe_gauge!(QUEUE_DEPTH, "Jobs waiting in the queue (due or scheduled)");
    describe_gauge!(
        QUEUE_OLDEST_AGE,
        ::metrics::Unit::Seconds,
        "How long the oldest due job has been waiting"
    );
    describe_counter!(
        WEBHOOK_FAILURES,
        "Webhook delivery attempts that failed (error, timeout or non-2xx answer)"
    );
    // Present from the start, so that rate() sees the first failure.
    counter!(WEBHOOK_FAILURES).increment(0);
    describe_counter!(
        "licentia_list_pages_total",
        "License list pages by outcome: hit (the kept answer, its rows checked unchanged), changed (kept but changed: read again), miss (read in full)"
    );
    describe_gauge!(
        DB_POOL,
        "Database pool connections: open, idle, and the configured maximum"
    );
    describe_gauge!(
        RSS,
        ::metrics::Unit::Bytes,
        "Resident set size of the process"
    );
}

/// Counts one failed webhook delivery attempt; call it wherever a delivery fails.
pub fn webhook_failed() {
    counter!(WEBHOOK_FAILURES).increment(1);
}

/// Times every request and records it under its route template, so that ids in paths do not
/// multiply the series. For `App::wrap(actix_web::middleware::from_fn(metrics::middleware))`.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let res = next.call(req).await;
    let seconds = started.elapsed().as_secs_f64();
    let (route, status) = match &res {
        Ok(res) => (
            res.request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned()),
            res.status().as_u16(),
        ),
        Err(e) => (
            "unmatched".to_owned(),
            e.as_response_error().status_code().as_u16(),
        ),
    };
    histogram!(HTTP_DURATION, "method" => method, "route" => route, "status" => status.to_string())
        .record(seconds);
    res
}

/// Brings the gauges up to date: the job queue (two indexed queries), the pool of `db` (of
/// `max_connections` at most; one on SQLite) and the RSS. A failing query leaves its gauge as
/// it was; the scrape still answers.
pub async fn refresh(db: &DatabaseConnection, max_connections: u32) {
    match jobs::queue_depth(db).await {
        Ok(depth) => gauge!(QUEUE_DEPTH).set(depth as f64),
        Err(e) => tracing::debug!(error = %e, "queue depth unavailable"),
    }
    match jobs::oldest_due(db).await {
        Ok(oldest) => {
            let age = oldest.map_or(0.0, |t| {
                (licentia_persistence::now() - t).as_seconds_f64().max(0.0)
            });
            gauge!(QUEUE_OLDEST_AGE).set(age);
        }
        Err(e) => tracing::debug!(error = %e, "oldest job unavailable"),
    }
    let (open, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    };
    let max = if db.get_database_backend() == DbBackend::Sqlite {
        1
    } else {
        max_connections
    };
    gauge!(DB_POOL, "state" => "open").set(f64::from(open));
    gauge!(DB_POOL, "state" => "idle").set(idle as f64);
    gauge!(DB_POOL, "state" => "max").set(f64::from(max));
    if let Some(rss) = resident_bytes() {
        gauge!(RSS).set(rss as f64);
    }
}

/// `VmRSS` of `/proc/self/status`; `None` where there is no procfs.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Drains the histograms' recorded samples into their buckets every five seconds. The
/// recorder keeps every sample until then; without this a process that nobody scrapes would
/// hold every request's duration.
pub fn spawn_upkeep() {
    if let Some(h) = handle() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                h.run_upkeep();
            }
        });
    }
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    handle().map_or_else(String::new, |h| {
        h.run_upkeep();
        h.render()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_resident_set_size() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(super::resident_bytes().is_some_and(|b| b > 0));
        }
    }
}
