//! Bad input that must never reach a handler or the database (CONTRACT §9), checked once for
//! every request, before anything can write (the idempotency store included):
//!
//! - **Control characters.** A query parameter (name or value, percent-decoded) or a header
//!   the service reads holding a control character (Unicode category Cc: U+0000–U+001F,
//!   U+007F–U+009F) answers 422 `validation_failed` naming the parameter or header.
//!   PostgreSQL refuses U+0000 in text (a 500 otherwise) and SQLite stores it silently;
//!   neither is an answer. JSON bodies get the same check in `extract`, which names
//!   the offending field by its JSON path.
//! - **Slow bodies.** The request body must arrive within `LICENTIA_BODY_TIMEOUT_SECS`
//!   (10 s by default) of the head: the payload is wrapped in a deadline, and whoever reads
//!   it (`extract::Json`, the idempotency middleware) answers 408
//!   `request_timeout` when it passes (see [`payload_error`]). Heads have their own timeout
//!   (`LICENTIA_REQUEST_TIMEOUT_SECS`, actix's client request timeout).
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use futures_util::Stream;

use crate::error::{ApiError, FieldError};
use crate::state::AppState;

/// The boxed stream a [`Payload::Stream`] holds.
type BoxedPayloadStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// How long a request body may take to arrive after the head, unless configured.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The message of a field holding a control character.
pub const CONTROL_MESSAGE: &str =
    "must not contain control characters (U+0000-U+001F, U+007F-U+009F)";

/// The request headers the service reads, by the name errors report.
const READ_HEADERS: [&str; 4] = ["Authorization", "X-API-Key", "Idempotency-Key", "If-Match"];

/// Whether `text` holds a control character (Unicode Cc).
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// `text` with its control characters written as `\uXXXX`, to name a field or parameter
/// whose name holds them without echoing them back raw.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Every query parameter whose name or (percent-decoded) value holds a control character.
pub fn query_errors(query: &str) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if !has_control(&name) && !has_control(&value) {
            continue;
        }
        let field = escape_controls(&name);
        if !errors.iter().any(|e| e.field == field) {
            errors.push(FieldError::new(field, CONTROL_MESSAGE));
        }
    }
    errors
}

/// Every header the service reads whose value holds a control character. Header values
/// are bytes: the obs-text ones (0x80 and above) are read as UTF-8 where they are, so
/// that U+0080–U+009F count too.
fn header_errors(req: &ServiceRequest) -> Vec<FieldError> {
    READ_HEADERS
        .iter()
        .filter(|name| {
            req.headers().get_all(**name).any(|value| {
                let text = String::from_utf8_lossy(value.as_bytes());
                has_control(&text)
            })
        })
        .map(|name| FieldError::new(*name, CONTROL_MESSAGE))
        .collect()
}

/// The middleware, for `App::wrap(actix_web::middleware::from_fn(text_guard::middleware))`;
/// it must run before the idempotency middleware (be wrapped after it).
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut errors = query_errors(req.query_string());
    errors.extend(header_errors(&req));
    if !errors.is_empty() {
        return Ok(req.error_response(ApiError::validation(errors)));
    }
    let timeout = req
        .app_data::<web::Data<AppState>>()
        .map_or(DEFAULT_BODY_TIMEOUT, |s| {
            s.config.body_timeout_secs.duration()
        });
    let payload = req.take_payload();
    if !matches!(payload, Payload::None) {
        let limited: BoxedPayloadStream = Box::pin(Deadline::new(payload, timeout));
        req.set_payload(Payload::from(limited));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

/// A payload that fails with a [`io::ErrorKind::TimedOut`] error once its deadline passes.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    expired: bool,
}

impl Deadline {
    fn new(inner: Payload, timeout: Duration) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            expired: false,
        }
    }
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the request body did not arrive within {} s of the request head",
                    this.timeout.as_secs_f64()
                ),
            )))));
        }
        Poll::Pending
    }
}

/// The answer to a failed body read: 408 `request_timeout` when the deadline passed, else
/// 400.
pub fn payload_error(err: &PayloadError) -> ApiError {
    match err {
        PayloadError::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
            ApiError::RequestTimeout(e.to_string())
        }
        other => ApiError::BadRequest(format!("could not read the request body: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded_before_the_check() {
        assert!(query_errors("name=abc&limit=5").is_empty());
        assert!(query_errors("name=a+b%20c&x=%C3%A9").is_empty());
        let fields =
            |q: &str| -> Vec<String> { query_errors(q).into_iter().map(|e| e.field).collect() };
        assert_eq!(fields("name=%00"), ["name"]);
        assert_eq!(fields("limit=5&name=a%0Ab"), ["name"]);
        assert_eq!(fields("name=%7F"), ["name"]);
        // U+0085 (NEL) is a C1 control: UTF-8 C2 85.
        assert_eq!(fields("name=%C2%85"), ["name"]);
        assert_eq!(fields("na%00me=x"), ["na\\u0000me"]);
        assert_eq!(fields("name=%00&name=%01"), ["name"]);
        // Invalid UTF-8 decodes to U+FFFD, which is no control character.
        assert!(query_errors("name=%80%FF").is_empty());
    }

    #[test]
    fn escaping_names_controls() {
        assert_eq!(escape_controls("k\u{0}\u{9f}é"), "k\\u0000\\u009fé");
    }

    #[test]
    fn timeouts_are_408_and_other_read_errors_400() {
        let timed_out = PayloadError::Io(io::Error::new(io::ErrorKind::TimedOut, "late"));
        assert!(matches!(
            payload_error(&timed_out),
            ApiError::RequestTimeout(_)
        ));
        assert!(matches!(
            payload_error(&PayloadError::Incomplete(None)),
            ApiError::BadRequest(_)
        ));
    }

    #[tokio::test]
    async fn the_deadline_cuts_a_stalled_payload() {
        let stalled: BoxedPayloadStream = Box::pin(futures_util::stream::pending());
        let mut stream = Deadline::new(Payload::from(stalled), Duration::from_millis(50));
        let first = futures_util::StreamExt::next(&mut stream).await;
        assert!(
            matches!(first, Some(Err(PayloadError::Io(e))) if e.kind() == io::ErrorKind::TimedOut)
        );
        assert!(futures_util::StreamExt::next(&mut stream).await.is_none());
    }
}
