//! The closed set of problem `code`s, for the OpenAPI document: one value of every failure,
//! each turned into its problem by the one table ([`ApiError::describe`]).
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use super::{ApiError, AppError, FieldError};

/// The schema of a problem's `code`: every code [`all_codes`] lists. Built here rather than
/// with the `openapi` module's closed sets, which sit above this module (their reusable
/// responses carry a [`super::Problem`]).
pub struct ProblemCode;

impl utoipa::PartialSchema for ProblemCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(all_codes()))
            .description(Some(
                "A stable, snake_case machine-readable error code: the kind of problem, \
                 whatever the wording of `detail`.",
            ))
            .into()
    }
}

impl ToSchema for ProblemCode {}

/// Every `code` a problem document carries, in the order of the tables (the use cases'
/// first): the OpenAPI enum of `Problem.code`. Every problem body is written by
/// [`ApiError::problem`], so this is the whole set.
pub fn all_codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = app_samples()
        .into_iter()
        .map(ApiError::from)
        .chain(request_samples())
        .map(|e| e.describe().1)
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    codes.retain(|c| seen.insert(*c));
    codes
}

/// One value of every use-case failure ([`sampled`] keeps the list whole).
fn app_samples() -> [AppError; 20] {
    let field = || vec![FieldError::new("f", "m")];
    [
        AppError::Forbidden(String::new()),
        AppError::NotFound,
        AppError::Validation {
            detail: String::new(),
            errors: field(),
        },
        AppError::AmountTooLarge {
            detail: String::new(),
            errors: field(),
        },
        AppError::Conflict(String::new()),
        AppError::AlreadyExists(String::new()),
        AppError::RegistrationKeyTaken,
        AppError::InvalidTransition(String::new()),
        AppError::TrialUsed,
        AppError::TrialLicense(String::new()),
        AppError::LicenseExpired,
        AppError::RegistrationLimit { max: 1 },
        AppError::LicenseNotValid { code: "" },
        AppError::FingerprintNotRegistered,
        AppError::InvalidSecret,
        AppError::InsufficientFunds {
            needed: 0,
            available: 0,
        },
        AppError::TooManyMatches { limit: 0 },
        AppError::PreconditionFailed,
        AppError::Unavailable,
        AppError::internal(""),
    ]
}

/// One value of every failure of the request itself ([`sampled`] keeps the list whole).
fn request_samples() -> [ApiError; 11] {
    [
        ApiError::BadRequest(String::new()),
        ApiError::MalformedJson(String::new()),
        ApiError::unauthorized(""),
        ApiError::MethodNotAllowed,
        ApiError::IdempotencyKeyReused,
        ApiError::RequestInProgress,
        ApiError::PayloadTooLarge(0),
        ApiError::RequestTimeout(String::new()),
        ApiError::InvalidWebhookUrl(String::new()),
        ApiError::UnsupportedMediaType(String::new()),
        ApiError::RateLimited { retry_after: 1 },
    ]
}

/// A new variant fails to compile here until it is added to [`app_samples`] or
/// [`request_samples`].
#[allow(dead_code)]
fn sampled(e: &ApiError) {
    match e {
        ApiError::App(
            AppError::Forbidden(_)
            | AppError::NotFound
            | AppError::Validation { .. }
            | AppError::AmountTooLarge { .. }
            | AppError::Conflict(_)
            | AppError::AlreadyExists(_)
            | AppError::RegistrationKeyTaken
            | AppError::InvalidTransition(_)
            | AppError::TrialUsed
            | AppError::TrialLicense(_)
            | AppError::LicenseExpired
            | AppError::RegistrationLimit { .. }
            | AppError::LicenseNotValid { .. }
            | AppError::FingerprintNotRegistered
            | AppError::InvalidSecret
            | AppError::InsufficientFunds { .. }
            | AppError::TooManyMatches { .. }
            | AppError::PreconditionFailed
            | AppError::Unavailable
            | AppError::Internal(_),
        )
        | ApiError::BadRequest(_)
        | ApiError::MalformedJson(_)
        | ApiError::Unauthorized { .. }
        | ApiError::MethodNotAllowed
        | ApiError::IdempotencyKeyReused
        | ApiError::RequestInProgress
        | ApiError::PayloadTooLarge(_)
        | ApiError::RequestTimeout(_)
        | ApiError::InvalidWebhookUrl(_)
        | ApiError::UnsupportedMediaType(_)
        | ApiError::RateLimited { .. } => {}
    }
}
