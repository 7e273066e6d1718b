//! `Idempotency-Key` (CONTRACT §5, THREATS #11) as one middleware, so that no handler can
//! forget it: the first response to a caller's key is stored and replayed to every retry
//! with the same request within 24 h.
//!
//! It covers every `POST` and `PUT` under `/v1/` except authentication and the endpoints of
//! licensed software ([`applies`]). Keys are scoped per caller (a user, or an API key), who is
//! authenticated in full before anything is stored or replayed: a request whose credentials
//! do not verify now (a revoked key, a deleted user, an expired token) passes through untouched
//! and gets the handler's 401, never a stored response, and writes nothing.
//!
//! Exactly once across crashes: a handler whose effect is a transaction ends it with
//! [`commit`], which stores the response in that same transaction, so a crash leaves either
//! the effect with its response (a retry replays it) or neither (a retry runs it once). Other
//! responses are stored after the handler returns. Only responses that finish a request are
//! kept: 2xx and 4xx, except those a retry may change (401, 408, 429). A 5xx, or a request
//! cut short, releases the key so that a retry runs again.
use actix_web::body::{self, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use licentia_persistence::repo::idempotency::{self, Begin, Claim, StoredResponse};
use licentia_persistence::{DatabaseTransaction, Db, PersistenceError};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::{Caller, Principal};
use crate::error::ApiError;
use crate::extract::BodyLimit;
use crate::state::AppState;

/// The request header carrying the key.
pub const HEADER: &str = "Idempotency-Key";
/// The response header marking a replayed response.
pub const REPLAYED: &str = "Idempotent-Replayed";
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// How long a key and its response are kept.
pub const KEY_TTL: time::Duration = time::Duration::hours(24);

/// First path segments after `/v1/` that the middleware leaves alone: logging in, and the
/// licensed software's endpoints (which authenticate with a registration key, not a caller).
const EXEMPT: [&str; 5] = [
    "auth",
    "validate",
    "registrations",
    "deregistrations",
    "license-files",
];

/// Response headers that describe one transfer, not the response: never stored.
const NOT_STORED: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "date",
    "x-request-id",
];

/// Whether a request with this method and path (a concrete path or an OpenAPI template) is
/// protected by an `Idempotency-Key`.
pub fn applies(method: &Method, path: &str) -> bool {
    if method != Method::POST && method != Method::PUT {
        return false;
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return false;
    };
    let first = rest.split('/').next().unwrap_or_default();
    // Previews (`…/preview`) change nothing: there is nothing a retry could do twice.
    !EXEMPT.contains(&first) && !rest.ends_with("/preview")
}

/// The middleware, for `App::wrap(actix_web::middleware::from_fn(idempotency::middleware))`.
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !applies(req.method(), req.path()) || !req.headers().contains_key(HEADER) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    // Authenticate now, in full; the handler reuses the principal (request extensions).
    let principal =
        match Principal::from_request(req.request(), &mut actix_web::dev::Payload::None).await {
            Ok(principal) => principal,
            Err(_) => {
                return next
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_boxed_body);
            }
        };
    let caller = caller_of(&principal);
    req.extensions_mut().insert(principal);
    let key = match key_of(req.request()) {
        Ok(key) => key,
        Err(e) => return Ok(req.error_response(e)),
    };
    let limit = req.app_data::<BodyLimit>().map_or(65_536, |l| l.0);
    let body = match read_body(&mut req, limit).await {
        Ok(body) => body,
        Err(e) => return Ok(req.error_response(e)),
    };
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let hash = request_hash(&method, &path, req.query_string(), &body);
    let expires_at = licentia_persistence::now() + KEY_TTL;
    let stale = time::Duration::seconds(
        i64::try_from(state.config.idempotency_stale_secs).unwrap_or(i64::MAX),
    );
    let begun = idempotency::begin(
        state.db.conn(),
        &caller,
        &key,
        &hash,
        &method,
        &path,
        expires_at,
        stale,
    )
    .await;
    let claim = match begun {
        Ok(Begin::Started(claim)) => claim,
        Ok(Begin::Replay(stored)) => {
            return Ok(req.into_response(replay(stored, &state.encryption_key)));
        }
        Ok(Begin::Mismatch) => return Ok(req.error_response(ApiError::IdempotencyKeyReused)),
        Ok(Begin::InProgress) => return Ok(req.error_response(ApiError::RequestInProgress)),
        Err(e) => return Ok(req.error_response(ApiError::from(e))),
    };
    run_claimed(req, next, &state, claim, body).await
}

/// Runs the request under its claim and stores its response: with the effect, in the
/// handler's transaction ([`commit`]), or here when the handler stored nothing (a failure, a
/// read).
async fn run_claimed(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    state: &AppState,
    claim: Claim,
    body: Bytes,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let in_txn = Arc::new(InTransaction {
        claim: claim.clone(),
        encryption_key: *state.encryption_key,
        stored: AtomicBool::new(false),
    });
    let claim = Held {
        db: state.db.clone(),
        claim,
        settled: false,
    };
    req.set_payload(Payload::from(body));
    let res = match CURRENT.scope(in_txn.clone(), next.call(req)).await {
        Ok(res) => res,
        Err(e) => {
            claim.settle(None).await;
            return Err(e);
        }
    };
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = match body::to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(e) => {
            claim.settle(None).await;
            let err = ApiError::internal(format!("reading the response body: {}", e.into()));
            return Ok(ServiceResponse::new(req, err.error_response()));
        }
    };
    if in_txn.stored.load(Ordering::SeqCst) {
        // Stored with the effect, in the handler's transaction.
        claim.stored();
        return Ok(ServiceResponse::new(
            req,
            head.set_body(BoxBody::new(bytes)),
        ));
    }
    let status = head.status();
    let keep = kept(status);
    // Bodies may hold secrets shown once (a new API key, a transfer secret): they are kept
    // encrypted, like every other secret at rest.
    let sealed = licentia_app::crypto::seal(&state.encryption_key, &bytes).ok();
    let stored = sealed.filter(|_| keep).map(|body| StoredResponse {
        status: status.as_u16(),
        headers: stored_headers(&head),
        body,
    });
    claim.settle(stored).await;
    Ok(ServiceResponse::new(
        req,
        head.set_body(BoxBody::new(bytes)),
    ))
}

/// Whom a key belongs to: the user (not the token: a refreshed token keeps the same keys), or
/// the API key.
fn caller_of(principal: &Principal) -> String {
    match &principal.caller {
        Caller::User { id, .. } => format!("user:{id}"),
        Caller::ApiKey { id, .. } => format!("api_key:{id}"),
    }
}

/// Whether a response with this status finishes the request (and is kept for replays).
fn kept(status: StatusCode) -> bool {
    status.is_success() || (status.is_client_error() && !matches!(status.as_u16(), 401 | 408 | 429))
}

tokio::task_local! {
    /// The key the running request holds, for [`commit`].
    static CURRENT: Arc<InTransaction>;
}

/// What [`commit`] needs to store the response with the effect.
struct InTransaction {
    claim: Claim,
    encryption_key: [u8; 32],
    stored: AtomicBool,
}

/// Commits the transaction of a request's effect together with its response: when the request
/// holds an `Idempotency-Key`, the response is stored in `txn` before it commits (CONTRACT §5:
/// exactly once across crashes). Handlers that write in a transaction end with this instead of
/// `txn.commit()`. 409 `request_in_progress` (and nothing commits) when the key was taken
/// over meanwhile by a retry that judged this request dead.
pub async fn commit(txn: DatabaseTransaction, res: HttpResponse) -> Result<HttpResponse, ApiError> {
    let current = CURRENT.try_with(Arc::clone).ok();
    let Some(current) = current.filter(|_| kept(res.status())) else {
        txn.commit().await.map_err(PersistenceError::from)?;
        return Ok(res);
    };
    let (head, body) = res.into_parts();
    let bytes = body::to_bytes(body)
        .await
        .map_err(|e| ApiError::internal(format!("reading the response body: {e}")))?;
    let sealed = licentia_app::crypto::seal(&current.encryption_key, &bytes)
        .map_err(|_| ApiError::internal("could not seal a response".into()))?;
    let headers = stored_headers(&head);
    let status = head.status().as_u16();
    if !idempotency::finish(&txn, &current.claim, status, &headers, &sealed).await? {
        return Err(ApiError::RequestInProgress);
    }
    txn.commit().await.map_err(PersistenceError::from)?;
    current.stored.store(true, Ordering::SeqCst);
    Ok(head.set_body(BoxBody::new(bytes)))
}

/// The key, validated: sent once, 1..=255 printable ASCII characters.
fn key_of(req: &HttpRequest) -> Result<String, ApiError> {
    let mut values = req.headers().get_all(HEADER);
    let invalid = |why: &str| ApiError::field(HEADER, why);
    let value = values.next().ok_or_else(|| invalid("missing"))?;
    if values.next().is_some() {
        return Err(invalid("send the header once"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_KEY_LEN
        || !bytes.iter().all(|b| (b' '..=b'~').contains(b))
    {
        return Err(invalid(&format!(
            "must be 1 to {MAX_KEY_LEN} printable ASCII characters"
        )));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Reads the whole body under the same limit as the JSON extractor (413 beyond it).
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        // A body that misses its deadline (see `text_guard`) is 408, not 400.
        let chunk = chunk.map_err(|e| crate::text_guard::payload_error(&e))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// What makes two requests "the same": method, path, query string and body bytes.
fn request_hash(method: &str, path: &str, query: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    // Method, path and query hold no newline, so the separators keep the parts apart.
    hasher.update(format!("{method}\n{path}\n{query}\n").as_bytes());
    hasher.update(body);
    hex::encode(hasher.finalize())
}

fn stored_headers(res: &HttpResponse<()>) -> Vec<(String, String)> {
    res.headers()
        .iter()
        .filter(|(name, _)| !NOT_STORED.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// The stored response again, marked as a replay.
fn replay(stored: StoredResponse, key: &[u8; 32]) -> HttpResponse {
    let Some(body) = licentia_app::crypto::open(key, &stored.body) else {
        return ApiError::internal("a stored response does not decrypt".into()).error_response();
    };
    let Ok(status) = StatusCode::from_u16(stored.status) else {
        return ApiError::internal(format!("stored status {} is invalid", stored.status))
            .error_response();
    };
    let mut res = HttpResponse::build(status);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            res.append_header((name, value));
        }
    }
    res.insert_header((
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    ));
    res.body(body)
}

/// A started key. It must be settled: with the response to keep, or without one to release
/// the key. Dropped unsettled (the request was cancelled, e.g. the client went away) it is
/// released in the background, so that the client's retry runs instead of answering 409.
struct Held {
    db: Db,
    claim: Claim,
    settled: bool,
}

impl Held {
    /// The response was stored with the effect ([`commit`]).
    fn stored(mut self) {
        self.settled = true;
    }

    async fn settle(mut self, response: Option<StoredResponse>) {
        self.settled = true;
        let conn = self.db.conn();
        let outcome = match response {
            Some(r) => idempotency::finish(conn, &self.claim, r.status, &r.headers, &r.body).await,
            None => idempotency::abandon(conn, &self.claim).await,
        };
        match outcome {
            Ok(true) => {}
            // Taken over as stale while this request ran (see `STALE_AFTER`).
            Ok(false) => tracing::warn!("idempotency key was no longer in progress"),
            // The key stays `in_progress` until it goes stale: retries answer 409 meanwhile,
            // which is safer than running the effect again.
            Err(e) => tracing::error!(error = %e, "could not settle an idempotency key"),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (db, claim) = (self.db.clone(), self.claim.clone());
        runtime.spawn(async move {
            if let Err(e) = idempotency::abandon(db.conn(), &claim).await {
                tracing::warn!(error = %e, "could not release a cancelled idempotency key");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_to_writes_under_v1_but_not_auth_or_licensed_software() {
        assert!(applies(&Method::POST, "/v1/licenses"));
        assert!(applies(&Method::POST, "/v1/licenses/{id}/renewals"));
        assert!(applies(&Method::PUT, "/v1/licenses/{id}/configuration"));
        assert!(applies(&Method::POST, "/v1/licenses/{id}/license-file"));
        assert!(!applies(&Method::PATCH, "/v1/licenses/{id}"));
        assert!(!applies(&Method::GET, "/v1/licenses"));
        assert!(!applies(&Method::POST, "/v1/auth/token"));
        assert!(!applies(&Method::POST, "/v1/validate"));
        assert!(!applies(&Method::POST, "/v1/registrations"));
        assert!(!applies(&Method::POST, "/v1/license-files"));
        assert!(!applies(&Method::POST, "/healthz"));
        assert!(!applies(&Method::POST, "/v1/licenses/preview"));
        assert!(!applies(
            &Method::POST,
            "/v1/licenses/{id}/renewals/preview"
        ));
    }

    #[test]
    fn hash_separates_parts() {
        assert_ne!(
            request_hash("POST", "/v1/a", "b=1", b""),
            request_hash("POST", "/v1/a", "", b"b=1")
        );
        assert_eq!(request_hash("POST", "/v1/a", "", b"{}").len(), 64);
    }
}
