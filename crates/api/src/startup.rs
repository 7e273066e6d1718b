//! Building the state (database, secrets, bootstrap admin) and the HTTP server.
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{self, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpMessage, HttpServer, web};
use licentia_domain::account::Account;
use licentia_domain::auth::{AccountKind, Role};
use licentia_domain::ids::AccountId;
use licentia_domain::money::Currency;
use licentia_persistence::repo::{accounts, settings, users};
use licentia_persistence::{Db, PersistenceError, PoolConfig};
use tracing_actix_web::{RequestId, TracingLogger};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::error::{ApiError, PROBLEM_JSON};
use crate::fallback::{RouteTable, not_matched};
use crate::jwt::JwtKeys;
use crate::pagination::CursorCodec;
use crate::state::AppState;
use licentia_app::crypto;

/// A failure to start, phrased for the one line the binary prints.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Database(#[from] PersistenceError),
    #[error("{0}")]
    Other(String),
}

/// Connects, migrates (unless told not to), loads or creates the shared secrets and the
/// bootstrap admin, and returns the state every handler and worker uses.
pub async fn prepare(config: Config, migrate: bool) -> Result<AppState, StartError> {
    // Before any HTTP client is built: reqwest's rustls has no provider of its own.
    crate::service::webhooks::install_tls_provider();
    let db = connect(&config, migrate).await?;
    let currency = config.currency;
    let jwt_secret = match &config.jwt_secret {
        Some(secret) => secret.expose().to_owned(),
        // Generated once and kept in the database so that every process of the service agrees.
        None => settings::get_or_insert(db.conn(), "jwt_secret", crypto::random_token(48)).await?,
    };
    let jwt = JwtKeys::new(
        config.jwt_algorithm.algorithm(),
        std::slice::from_ref(&jwt_secret),
        &config.jwt_issuer,
        &config.jwt_audience,
        config.access_token_ttl_secs.get(),
        config.jwt_leeway_secs,
    )
    .map_err(StartError::Other)?;
    let encryption_key = encryption_key(&config)?;
    let cursor_key = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
        format!("licentia-cursor:{jwt_secret}"),
    ));
    bootstrap_admin(&db, &config, currency).await?;
    let limits = Arc::new(crate::limits::Limits::new(config.rate_limit_enabled()));
    let signing = crate::keyring::Keyring::load(db.clone(), Arc::new(encryption_key))
        .await
        .map_err(|e| StartError::Other(e.to_string()))?;
    let events = crate::event_stream::EventHub::new(db.clone());
    let ctx = licentia_app::Ctx {
        db,
        clock: Arc::new(licentia_app::clock::SystemClock),
        policy: Arc::new(config.policy()),
        currency,
        encryption_key: Arc::new(encryption_key),
        provisioner: Arc::new(licentia_app::provisioning::LocalProvisioner),
    };
    // Pages are checked by PostgreSQL's row versions: SQLite keeps none.
    let page_cache_mb = match ctx.db.backend() {
        licentia_persistence::sea_orm::DbBackend::Postgres => config.page_cache_mb,
        _ => 0,
    };
    let pages = Arc::new(crate::pages::Pages::new(page_cache_mb));
    Ok(AppState {
        ctx,
        config: Arc::new(config),
        jwt: Arc::new(jwt),
        cursors: CursorCodec::new(cursor_key.into()),
        limits,
        signing: Arc::new(signing),
        product_codes: Arc::default(),
        events,
        usage: Arc::default(),
        caches: Arc::default(),
        pages,
    })
}

/// The primary (migrated unless told not to) and, when configured, the read replica with
/// its lag probe.
async fn connect(config: &Config, migrate: bool) -> Result<Db, StartError> {
    let pool = PoolConfig {
        max_connections: config.db_max_connections.get(),
        acquire_timeout: config.db_acquire_timeout_ms.duration(),
        // The HTTP workers share the hot-path pools (0: one per core, as the server counts).
        hot_threads: config.workers,
        hot_per_thread: config.db_hot_connections.get() as usize,
    };
    let mut db = Db::connect(&config.database_url, &pool).await?;
    if migrate {
        db.migrate().await?;
    }
    if let Some(url) = config
        .read_database_url
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        if !url.starts_with("postgres") || config.is_sqlite() {
            return Err(StartError::Other(
                "LICENTIA_READ_DATABASE_URL names a PostgreSQL replica of a PostgreSQL primary"
                    .into(),
            ));
        }
        let max_lag = Duration::from_secs(config.read_max_lag_secs);
        db = db.with_replica(url, &pool, max_lag).await?;
        let probing = db.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                probing.probe_replica().await;
            }
        });
    }
    Ok(db)
}

/// The key for secrets at rest. From `LICENTIA_ENCRYPTION_KEY`; on SQLite, when unset, a
/// key file beside the database (created once, mode 0600). PostgreSQL deployments run several
/// processes on several hosts, so there the key must be configured.
fn encryption_key(config: &Config) -> Result<[u8; 32], StartError> {
    if let Some(key) = &config.encryption_key {
        return crypto::decode_key(key.expose()).ok_or_else(|| {
            StartError::Other("LICENTIA_ENCRYPTION_KEY must be 32 bytes, base64-encoded".into())
        });
    }
    let Some(path) = sqlite_path(&config.database_url) else {
        if config.is_sqlite() {
            tracing::warn!("in-memory database: using an ephemeral encryption key");
            return crypto::decode_key(&crypto::generate_key())
                .ok_or_else(|| StartError::Other("key generation".into()));
        }
        return Err(StartError::Other(
            "LICENTIA_ENCRYPTION_KEY must be set when the database is PostgreSQL".into(),
        ));
    };
    let key_path = std::path::PathBuf::from(format!("{path}.key"));
    if !key_path.exists() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path);
        match created {
            Ok(mut file) => {
                file.write_all(crypto::generate_key().as_bytes())
                    .map_err(|e| {
                        StartError::Other(format!("cannot write {}: {e}", key_path.display()))
                    })?;
                tracing::warn!(path = %key_path.display(), "LICENTIA_ENCRYPTION_KEY is not set: generated a key file; back it up with the database");
            }
            // Another process created it first: read theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(StartError::Other(format!(
                    "cannot create {}: {e}",
                    key_path.display()
                )));
            }
        }
    }
    let text = std::fs::read_to_string(&key_path)
        .map_err(|e| StartError::Other(format!("cannot read {}: {e}", key_path.display())))?;
    crypto::decode_key(&text).ok_or_else(|| {
        StartError::Other(format!(
            "{} does not hold a base64 32-byte key",
            key_path.display()
        ))
    })
}

/// The file of a `sqlite:` URL, or `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.to_owned())
}

/// On an empty database, creates the provider account and its first admin. Safe when several
/// processes start at once: the provider id is agreed through the settings table and
/// the e-mail address is unique.
async fn bootstrap_admin(db: &Db, config: &Config, currency: Currency) -> Result<(), StartError> {
    let conn = db.conn();
    let candidate = AccountId::new();
    let stored =
        settings::get_or_insert(conn, "provider_account_id", candidate.to_string()).await?;
    let provider_id: AccountId = stored
        .parse()
        .map_err(|_| StartError::Other("stored provider_account_id is not a UUID".into()))?;
    if accounts::find(conn, provider_id).await?.is_none() {
        let created = accounts::create(
            conn,
            accounts::NewAccount {
                id: provider_id,
                kind: AccountKind::Provider,
                name: "Provider".into(),
                currency,
                credit_limit: 0,
            },
        )
        .await;
        match created {
            Ok(_) | Err(PersistenceError::Unique(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if users::count_with_role(conn, provider_id, Role::Admin).await? > 0 {
        if config.admin_password.is_some() {
            tracing::warn!(
                "LICENTIA_ADMIN_PASSWORD is ignored: this database has an admin already; \
                 change a password with POST /v1/me/password"
            );
        }
        return Ok(());
    }
    let (password, generated) = match &config.admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (crypto::random_token(18), true),
    };
    let hash = tokio::task::spawn_blocking(move || {
        crypto::hash_password(&password).map(|h| (h, password))
    })
    .await
    .map_err(|e| StartError::Other(e.to_string()))?
    .map_err(StartError::Other)?;
    match users::create(conn, provider_id, &config.admin_email, hash.0, Role::Admin).await {
        Ok(user) => {
            if generated {
                // Printed once, on the start that created the admin; never stored in clear.
                tracing::warn!(email = %user.email, password = %hash.1, "bootstrap admin created with a generated password; change it");
            } else {
                tracing::info!(email = %user.email, "bootstrap admin created");
            }
            Ok(())
        }
        Err(PersistenceError::Unique(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The provider's account, for handlers that need it.
pub async fn provider_account(db: &Db) -> Result<Option<Account>, PersistenceError> {
    accounts::find_provider(db.conn()).await
}

/// Adds `X-Request-Id` to every error response, turns error responses that did not come
/// from a handler (actix's own 404/413/…) into problem documents, and puts the request id
/// into 5xx bodies so that clients can quote it.
fn finish_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let id = res
        .request()
        .extensions()
        .get::<RequestId>()
        .map(|id| id.to_string());
    let (req, mut res) = res.into_parts();
    if let Some(value) = id.as_deref().and_then(|id| HeaderValue::from_str(id).ok()) {
        res.headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if is_problem && !status.is_server_error() {
        return Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, res).map_into_left_body(),
        ));
    }
    let err = match status.as_u16() {
        404 => ApiError::not_found(),
        405 => ApiError::MethodNotAllowed,
        413 => ApiError::PayloadTooLarge(0),
        415 => ApiError::UnsupportedMediaType("unsupported content type".into()),
        503 => ApiError::unavailable(),
        s if s >= 500 => ApiError::internal(String::new()),
        _ => ApiError::BadRequest(
            status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_lowercase(),
        ),
    };
    let mut problem = err.problem();
    if status.as_u16() == 413 {
        problem.detail = "the request body is too large".into();
    }
    problem.status = status.as_u16();
    if status.is_server_error() {
        problem.request_id = id;
    }
    let body = serde_json::to_string(&problem).unwrap_or_default();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    let res = res.set_body(BoxBody::new(body));
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, res).map_into_right_body(),
    ))
}

/// CORS for the configured origins only: an unlisted `Origin` is never reflected. Without
/// configured origins no CORS headers are sent at all, so browsers keep cross-origin pages out.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::HeaderName::from_static("x-api-key"),
            header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            header::ETAG,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Builds the HTTP server on an already-bound listener (tests bind port 0). Its job worker
/// runs until the process ends; see [`serve_with_worker`] for a graceful stop.
pub fn serve(state: AppState, listener: TcpListener) -> std::io::Result<Server> {
    serve_with_worker(state, listener).map(|(server, _worker)| server)
}

/// [`serve`], also answering the job worker the server started, so that the caller can
/// [`shutdown`](crate::worker::Worker::shutdown) it once the server stopped
/// (releasing the jobs it leased).
pub fn serve_with_worker(
    state: AppState,
    listener: TcpListener,
) -> std::io::Result<(Server, crate::worker::Worker)> {
    let doc = crate::document::document();
    let routes = web::Data::new(RouteTable::from_document(&doc));
    let body_limit = usize::try_from(state.config.body_limit_bytes.get()).unwrap_or(usize::MAX);
    let request_timeout = state.config.request_timeout_secs.duration();
    let workers = state.config.workers;
    let cors_origins = state.config.cors_origins.items().to_vec();
    // Every serving process also works the job queue; jobs are leased, so several can.
    let worker = crate::worker::spawn_worker(state.clone());
    // Each serving process writes the usage its validations recorded.
    crate::usage::spawn_flusher(
        state.usage.clone(),
        state.db.clone(),
        state.config.usage_flush_secs.duration(),
    );
    // Caches serve only while this process hears the database's invalidation notices.
    if state.config.database_url.starts_with("postgres") {
        let caches = state.caches.clone();
        let db = state.db.clone();
        tokio::spawn(licentia_persistence::notices::listen(
            state.config.database_url.clone(),
            move |notice| {
                caches.apply(&notice);
                // Each time the feed is (again) live, the keys are read ahead.
                if notice == licentia_persistence::notices::Notice::Live {
                    let (caches, db) = (caches.clone(), db.clone());
                    tokio::spawn(async move { caches.load_keys(db.conn()).await });
                }
            },
        ));
    }
    crate::metrics::spawn_upkeep();
    // Product codes are immutable: read once, ahead of the first validations that need them.
    let (codes, db) = (state.product_codes.clone(), state.db.clone());
    tokio::spawn(async move { codes.load(db.conn()).await });
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        // Runs on each HTTP worker's thread, in its runtime: the worker's own hot-path
        // connections open now rather than during the first burst of requests.
        let db = data.db.clone();
        tokio::spawn(async move { db.warm().await });
        let (app, _) = App::new()
            .into_utoipa_app()
            .app_data(data.clone())
            .app_data(routes.clone())
            .app_data(crate::extract::BodyLimit(body_limit))
            .app_data(crate::extract::path_config())
            .app_data(crate::extract::query_config())
            .configure(crate::routes::configure)
            .split_for_parts();
        app.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", doc.clone()))
            .service(web::resource("/docs").route(web::get().to(|| async {
                actix_web::HttpResponse::PermanentRedirect()
                    .insert_header((header::LOCATION, "/docs/"))
                    .finish()
            })))
            .default_service(web::to(not_matched))
            // Innermost: replays still get this request's id and problem handling.
            .wrap(middleware::from_fn(crate::idempotency::middleware))
            // Before the idempotency store (and every handler): control characters in the
            // query or read headers → 422; the body's arrival deadline (408).
            .wrap(middleware::from_fn(crate::text_guard::middleware))
            .wrap(ErrorHandlers::new().default_handler(finish_error))
            .wrap(TracingLogger::default())
            .wrap(middleware::NormalizePath::new(
                middleware::TrailingSlash::MergeOnly,
            ))
            .wrap(middleware::Condition::new(
                !cors_origins.is_empty(),
                cors(&cors_origins),
            ))
            // Outermost: times everything, labelled with the route template matched inside.
            .wrap(middleware::from_fn(crate::metrics::middleware))
    })
    .client_request_timeout(request_timeout)
    .client_disconnect_timeout(Duration::from_secs(5))
    .shutdown_timeout(30);
    // One per core by default (actix's own default). Two per core was tried: list pages
    // about +10 % on two cores, within the run-to-run spread, for ~25 MiB more RSS.
    let workers = if workers > 0 {
        workers
    } else {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    };
    let server = server.workers(workers);
    let server = server.listen(listener)?.run();
    Ok((server, worker))
}
