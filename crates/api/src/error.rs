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

/// One invalid field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field (JSON path into the body, or the query parameter) that is invalid.
    pub field: String,
    /// Why it is invalid.
    pub message: String,
    /// The field holds (or makes the server compute) an amount beyond 10^15 minor units: a
    /// request with such an error answers 422 `amount_too_large` rather than
    /// `validation_failed`. Never serialized.
    #[serde(skip)]
    amount_too_large: bool,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            amount_too_large: false,
        }
    }

    /// An amount (given, or computed from the request) beyond
    /// [`MAX_AMOUNT`](licentia_domain::money::MAX_AMOUNT): with it among its errors,
    /// [`ApiError::validation`] answers 422 `amount_too_large`.
    pub fn amount_too_large(field: impl Into<String>) -> Self {
        Self {
            amount_too_large: true,
            ..Self::new(
                field,
                format!(
                    "the amount exceeds {} minor units",
                    licentia_domain::money::MAX_AMOUNT
                ),
            )
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Clone, Debug, Serialize, ToSchema)]
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
    pub code: String,
    /// The invalid fields, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// The request id, for internal errors, to quote when reporting them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Every failure a handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MalformedJson(String),
    /// Missing or invalid credentials; `invalid_token` adds `error="invalid_token"`.
    #[error("{detail}")]
    Unauthorized { detail: String, invalid_token: bool },
    #[error("{0}")]
    Forbidden(String),
    #[error("the resource does not exist")]
    NotFound,
    #[error("the method is not allowed on this resource")]
    MethodNotAllowed,
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// A registration key chosen for a license is in use by another license.
    #[error("this registration key is in use by another license")]
    RegistrationKeyTaken,
    #[error("{0}")]
    InvalidTransition(String),
    /// The account, or the address, already had a trial of the product (CONTRACT §12).
    #[error(
        "a trial of this product was already taken by this account or for this address; order the license instead"
    )]
    TrialUsed,
    /// The operation is not open to a trial license (transfer, product or configuration
    /// change); a paid renewal converts it first.
    #[error("{0}")]
    TrialLicense(String),
    #[error("the license is past its term; renew it instead")]
    LicenseExpired,
    /// Every seat of the license is taken (the product's `max_registrations`).
    #[error(
        "every seat of the license is taken ({max} of {max} machines registered); delete a registration to register another machine"
    )]
    RegistrationLimit { max: u32 },
    /// A license file was asked for a license that does not validate as `VALID`.
    #[error("the license does not validate (code {code}); no license file is issued")]
    LicenseNotValid { code: &'static str },
    /// A license file was asked for a machine that is not registered to the license.
    #[error("this fingerprint is not registered to the license; register it first")]
    FingerprintNotRegistered,
    /// A transfer accepted with a wrong secret (any wrong secret, whatever its origin).
    #[error("the secret does not match this transfer")]
    InvalidSecret,
    #[error("the balance and credit limit do not cover {needed} (available: {available})")]
    InsufficientFunds { needed: i64, available: i64 },
    #[error("the resource changed since it was read (If-Match does not match its ETag)")]
    PreconditionFailed,
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
    /// A price the request names or makes the server compute is beyond 10^15 minor units;
    /// `errors` names the fields (as for `validation_failed`).
    #[error("{detail}")]
    AmountTooLarge {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// A bulk operation's filter matches more licenses than one operation may change.
    #[error("the filter matches more than {limit} licenses; narrow it down")]
    TooManyMatches { limit: u64 },
    /// A webhook URL that is not http(s), or whose host is (or resolves to) an address the
    /// service must not call (loopback, private, link-local, metadata, …).
    #[error("url: {0}")]
    InvalidWebhookUrl(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the database is unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
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
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        if errors.iter().any(|e| e.amount_too_large) {
            return Self::AmountTooLarge { detail, errors };
        }
        Self::Validation { detail, errors }
    }
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// The table of codes: status, `code` and title of every variant.
    pub fn describe(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", "Bad request"),
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON"),
            Self::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            Self::Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
            ),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::AlreadyExists(_) => (StatusCode::CONFLICT, "already_exists", "Already exists"),
            Self::RegistrationKeyTaken => (
                StatusCode::CONFLICT,
                "registration_key_taken",
                "Registration key taken",
            ),
            Self::InvalidTransition(_) => (
                StatusCode::CONFLICT,
                "invalid_transition",
                "Invalid transition",
            ),
            Self::LicenseExpired => (StatusCode::CONFLICT, "license_expired", "License expired"),
            Self::TrialUsed => (StatusCode::CONFLICT, "trial_used", "Trial used"),
            Self::TrialLicense(_) => (StatusCode::CONFLICT, "trial_license", "Trial license"),
            Self::RegistrationLimit { .. } => (
                StatusCode::CONFLICT,
                "registration_limit",
                "Registration limit reached",
            ),
            Self::LicenseNotValid { .. } => (
                StatusCode::CONFLICT,
                "license_not_valid",
                "License not valid",
            ),
            Self::FingerprintNotRegistered => (
                StatusCode::CONFLICT,
                "fingerprint_not_registered",
                "Fingerprint not registered",
            ),
            Self::InvalidSecret => (StatusCode::FORBIDDEN, "invalid_secret", "Invalid secret"),
            Self::InsufficientFunds { .. } => (
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_funds",
                "Insufficient funds",
            ),
            Self::PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "Precondition failed",
            ),
            Self::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency key reused",
            ),
            Self::RequestInProgress => (
                StatusCode::CONFLICT,
                "request_in_progress",
                "Request in progress",
            ),
            Self::TooManyMatches { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many_matches",
                "Too many matches",
            ),
            Self::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            Self::RequestTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Request timeout",
            ),
            Self::AmountTooLarge { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "amount_too_large",
                "Amount too large",
            ),
            Self::InvalidWebhookUrl(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_webhook_url",
                "Invalid webhook URL",
            ),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            Self::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "Service unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal server error",
            ),
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, code, title) = self.describe();
        // Internal causes go to the log, never to the client.
        let detail = match self {
            Self::Internal(_) => {
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
                Self::Validation { errors, .. } | Self::AmountTooLarge { errors, .. } => {
                    Some(errors.clone())
                }
                Self::InvalidWebhookUrl(why) => Some(vec![FieldError::new("url", why.clone())]),
                _ => None,
            },
            request_id: None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.describe().0
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            tracing::error!(cause = %cause, "internal error");
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
        match err {
            PersistenceError::NotFound => Self::NotFound,
            PersistenceError::AmountTooLarge => Self::AmountTooLarge {
                detail: "the order's total would pass 10^15 minor units".into(),
                errors: vec![FieldError::new(
                    "payment",
                    "the order's total would be too large",
                )],
            },
            PersistenceError::Transient(cause) => {
                // A lost deadlock or serialization race: the client's retry will succeed.
                tracing::warn!(cause = %cause, "transaction aborted by the database; asking the client to retry");
                Self::Unavailable
            }
            PersistenceError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "database unavailable");
                Self::Unavailable
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<licentia_domain::license::TransitionError> for ApiError {
    fn from(err: licentia_domain::license::TransitionError) -> Self {
        use licentia_domain::license::{LicenseStatus, TransitionError};
        match err {
            TransitionError::InvalidTransition { from } => Self::InvalidTransition(format!(
                "not allowed while the license is {}",
                from.as_str()
            )),
            TransitionError::InProgress => Self::InvalidTransition(format!(
                "not allowed while the license is {}; retry when provisioning is done",
                LicenseStatus::InProgress.as_str()
            )),
            TransitionError::LicenseExpired => Self::LicenseExpired,
            TransitionError::Forbidden => Self::Forbidden(
                "only the provider's administrators can lift an administrative suspension".into(),
            ),
        }
    }
}

/// The answer to a refused transfer action. The caller persists the state the
/// `Expired`/`InvalidSecret` variants carry before answering.
impl From<licentia_domain::transfer::TransferError> for ApiError {
    fn from(err: licentia_domain::transfer::TransferError) -> Self {
        use licentia_domain::transfer::TransferError;
        match err {
            TransferError::InvalidTransition { from } => Self::InvalidTransition(format!(
                "not allowed while the transfer is {}",
                from.as_str()
            )),
            TransferError::Expired(_) => Self::InvalidTransition(
                "not allowed while the transfer is expired (the offer lapsed)".into(),
            ),
            TransferError::InvalidSecret(_) => Self::InvalidSecret,
        }
    }
}
