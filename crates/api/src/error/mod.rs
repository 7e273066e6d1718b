//! The API's one error type and its RFC 9457 problem responses. Every status and `code` the
//! service answers with is declared in [`ApiError::describe`], the single table of codes.
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use licentia_persistence::PersistenceError;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

pub use codes::{ProblemCode, all_codes};
pub use licentia_app::error::{AppError, FieldError};

mod codes;

// The schema of [`FieldError`] in the OpenAPI document (the type itself is the use cases').
/// One invalid field of a request.
#[derive(ToSchema)]
#[schema(as = FieldError)]
#[allow(dead_code)]
pub struct FieldErrorSchema {
    /// The field (JSON path into the body, or the query parameter) that is invalid.
    field: String,
    /// Why it is invalid.
    message: String,
}

/// An RFC 9457 problem document.
#[derive(Clone, Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type: `/problems/<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// A stable, snake_case machine-readable error code.
    #[schema(value_type = ProblemCode)]
    pub code: String,
    /// The invalid fields, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldErrorSchema>>)]
    pub errors: Option<Vec<FieldError>>,
    /// The request id, for internal errors, to quote when reporting them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The invalid fields of a request, collected while its body is parsed into a command, so that
/// one answer names them all.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records `message` on `field`; `None`, for the value that could not be read.
    pub fn fail<T>(&mut self, field: &str, message: &str) -> Option<T> {
        self.push(field, message);
        None
    }

    /// The value, or `None` with its message recorded on `field`.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, &'static str>) -> Option<T> {
        parsed.map_err(|message| self.push(field, message)).ok()
    }

    /// The value, or `None` with each `(field, message)` recorded.
    pub fn check_all<T>(&mut self, parsed: Result<T, Vec<(String, &'static str)>>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(errors) => {
                for (field, message) in errors {
                    self.push(field, message);
                }
                None
            }
        }
    }

    /// Adds an error found elsewhere.
    pub fn add(&mut self, error: FieldError) {
        self.0.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// 422 naming every field.
    pub fn into_error(self) -> ApiError {
        ApiError::validation(self.0)
    }

    /// `Ok` when nothing was recorded, else 422 naming every field.
    pub fn finish(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }
}

/// Every failure a handler can answer with: a use case's [`AppError`], or a failure of the
/// request itself (its form, credentials, headers, size, pace).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A use case's failure (its code and title are the use cases' table).
    #[error(transparent)]
    App(#[from] AppError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MalformedJson(String),
    /// Missing or invalid credentials; `invalid_token` adds `error="invalid_token"`.
    #[error("{detail}")]
    Unauthorized { detail: String, invalid_token: bool },
    #[error("the method is not allowed on this resource")]
    MethodNotAllowed,
    #[error(
        "this Idempotency-Key was used for another request; send a new key for a different request"
    )]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry later")]
    RequestInProgress,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The request body did not arrive in time after the head (a slow or stalled client).
    #[error("{0}")]
    RequestTimeout(String),
    /// A webhook URL that is not http(s), or whose host is (or resolves to) an address the
    /// service must not call (loopback, private, link-local, metadata, …).
    #[error("url: {0}")]
    InvalidWebhookUrl(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
}

impl ApiError {
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            detail: detail.into(),
            invalid_token: false,
        }
    }
    pub fn invalid_token(detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            detail: detail.into(),
            invalid_token: true,
        }
    }
    /// 422 `validation_failed` naming each field; `amount_too_large` instead when one of the
    /// errors is [`FieldError::amount_too_large`].
    pub fn validation(errors: Vec<FieldError>) -> Self {
        AppError::validation(errors).into()
    }
    /// 422 `validation_failed` on one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::field(field, message).into()
    }
    /// 404 `not_found`.
    pub fn not_found() -> Self {
        AppError::NotFound.into()
    }
    /// 403 `forbidden`.
    pub fn forbidden(detail: String) -> Self {
        AppError::Forbidden(detail).into()
    }
    /// 409 `conflict`.
    pub fn conflict(detail: String) -> Self {
        AppError::Conflict(detail).into()
    }
    /// 409 `already_exists`.
    pub fn already_exists(detail: String) -> Self {
        AppError::AlreadyExists(detail).into()
    }
    /// 409 `invalid_transition`.
    pub fn invalid_transition(detail: String) -> Self {
        AppError::InvalidTransition(detail).into()
    }
    /// 409 `trial_license`.
    pub fn trial_license(detail: String) -> Self {
        AppError::TrialLicense(detail).into()
    }
    /// 503 `service_unavailable`.
    pub fn unavailable() -> Self {
        AppError::Unavailable.into()
    }
    /// 500 `internal_error`; `cause` goes to the log only.
    pub fn internal(cause: String) -> Self {
        AppError::internal(cause).into()
    }
    /// 500 `internal_error`: `context` and the chain of `source` go to the log only.
    pub fn internal_from(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        AppError::internal_from(context, source).into()
    }

    /// The table of statuses and codes: the status of every failure, with its `code` and
    /// title (a use case's from [`AppError::code`]).
    pub fn describe(&self) -> (StatusCode, &'static str, &'static str) {
        let (status, (code, title)) = match self {
            Self::App(e) => (app_status(e), e.code()),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, ("bad_request", "Bad request")),
            Self::MalformedJson(_) => (
                StatusCode::BAD_REQUEST,
                ("malformed_json", "Malformed JSON"),
            ),
            Self::Unauthorized { .. } => {
                (StatusCode::UNAUTHORIZED, ("unauthorized", "Unauthorized"))
            }
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ("method_not_allowed", "Method not allowed"),
            ),
            Self::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ("idempotency_key_reused", "Idempotency key reused"),
            ),
            Self::RequestInProgress => (
                StatusCode::CONFLICT,
                ("request_in_progress", "Request in progress"),
            ),
            Self::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ("payload_too_large", "Payload too large"),
            ),
            Self::RequestTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                ("request_timeout", "Request timeout"),
            ),
            Self::InvalidWebhookUrl(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ("invalid_webhook_url", "Invalid webhook URL"),
            ),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ("unsupported_media_type", "Unsupported media type"),
            ),
            Self::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                ("rate_limited", "Too many requests"),
            ),
        };
        (status, code, title)
    }

    pub fn problem(&self) -> Problem {
        let (status, code, title) = self.describe();
        // Internal causes go to the log, never to the client.
        let detail = match self {
            Self::App(AppError::Internal(_)) => {
                "an internal error occurred; quote the request id when reporting it".to_owned()
            }
            other => other.to_string(),
        };
        Problem {
            problem_type: format!("/problems/{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors: match self {
                Self::App(e) => e.field_errors().map(<[FieldError]>::to_vec),
                Self::InvalidWebhookUrl(why) => Some(vec![FieldError::new("url", why.clone())]),
                _ => None,
            },
            request_id: None,
        }
    }
}

/// The status of a use case's failure.
fn app_status(e: &AppError) -> StatusCode {
    match e {
        AppError::Forbidden(_) | AppError::InvalidSecret => StatusCode::FORBIDDEN,
        AppError::NotFound => StatusCode::NOT_FOUND,
        AppError::Validation { .. }
        | AppError::AmountTooLarge { .. }
        | AppError::TooManyMatches { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::Conflict(_)
        | AppError::AlreadyExists(_)
        | AppError::RegistrationKeyTaken
        | AppError::InvalidTransition(_)
        | AppError::TrialUsed
        | AppError::TrialLicense(_)
        | AppError::LicenseExpired
        | AppError::RegistrationLimit { .. }
        | AppError::LicenseNotValid { .. }
        | AppError::FingerprintNotRegistered => StatusCode::CONFLICT,
        AppError::InsufficientFunds { .. } => StatusCode::PAYMENT_REQUIRED,
        AppError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.describe().0
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::App(AppError::Internal(cause)) = self {
            tracing::error!(cause = %cause.chain(), "internal error");
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match self {
            Self::Unauthorized { invalid_token, .. } => {
                let challenge = if *invalid_token {
                    r#"Bearer realm="licentia", error="invalid_token""#
                } else {
                    r#"Bearer realm="licentia""#
                };
                res.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            Self::RateLimited { retry_after } => {
                res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
                res.insert_header(("RateLimit-Remaining", "0"));
                res.insert_header(("RateLimit-Reset", retry_after.to_string()));
            }
            // The rest of a late body may still be on its way: the connection cannot carry
            // another request.
            Self::RequestTimeout(_) => {
                res.force_close();
            }
            // The first request with the key is usually done within a second.
            Self::RequestInProgress => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        res.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<PersistenceError> for ApiError {
    fn from(err: PersistenceError) -> Self {
        AppError::from(err).into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<licentia_domain::license::TransitionError> for ApiError {
    fn from(err: licentia_domain::license::TransitionError) -> Self {
        AppError::from(err).into()
    }
}

impl From<licentia_domain::transfer::TransferError> for ApiError {
    fn from(err: licentia_domain::transfer::TransferError) -> Self {
        AppError::from(err).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once() {
        let codes = all_codes();
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
        assert_eq!(codes.len(), 31);
        assert!(
            codes
                .iter()
                .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }
}
