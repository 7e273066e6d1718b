//! What a use case can fail with, in the service's words and without HTTP: each failure has a
//! stable `code` and a title ([`AppError::code`], the table of the use cases' codes). The API
//! crate maps each to a status and an RFC 9457 problem.
use licentia_domain::money::MAX_AMOUNT;
use licentia_domain::pricing::PricingError;
use licentia_persistence::PersistenceError;
use serde::Serialize;

/// One invalid field of a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FieldError {
    /// The field (JSON path into the body, or the query parameter) that is invalid.
    pub field: String,
    /// Why it is invalid.
    pub message: String,
    /// The field holds (or makes the service compute) an amount beyond 10^15 minor units: a
    /// failure with such an error is `amount_too_large` rather than `validation_failed`.
    /// Never serialized.
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

    /// An amount (given, or computed from the command) beyond [`MAX_AMOUNT`]: with it among
    /// its errors, [`AppError::validation`] is `amount_too_large`.
    pub fn amount_too_large(field: impl Into<String>) -> Self {
        Self {
            amount_too_large: true,
            ..Self::new(
                field,
                format!("the amount exceeds {MAX_AMOUNT} minor units"),
            )
        }
    }
}

/// Every failure of a use case.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Forbidden(String),
    #[error("the resource does not exist")]
    NotFound,
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// A price the command names or makes the service compute is beyond 10^15 minor units;
    /// `errors` names the fields (as for `validation_failed`).
    #[error("{detail}")]
    AmountTooLarge {
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
    /// A bulk operation's filter matches more licenses than one operation may change.
    #[error("the filter matches more than {limit} licenses; narrow it down")]
    TooManyMatches { limit: u64 },
    /// The resource changed since the caller read it (its version is not the one named).
    #[error("the resource changed since it was read (If-Match does not match its ETag)")]
    PreconditionFailed,
    /// The database cannot be reached, or aborted the transaction (a lost deadlock or
    /// serialization race): a retry succeeds.
    #[error("the database is unavailable")]
    Unavailable,
    /// A fault of the service itself; the cause is for the log, never for the client.
    #[error("internal error")]
    Internal(#[source] InternalError),
}

pub type AppResult<T> = Result<T, AppError>;

/// What went wrong inside the service: what it was doing, and the error that stopped it when
/// there is one, kept as the [`std::error::Error::source`] so the log shows the whole chain
/// ([`InternalError::chain`]).
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct InternalError {
    context: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl InternalError {
    /// The error and each of its causes, outermost first, joined by ": ".
    pub fn chain(&self) -> String {
        let mut out = self.context.clone();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            next = cause.source();
        }
        out
    }
}

impl AppError {
    /// An internal error described by `context` alone.
    pub fn internal(context: impl Into<String>) -> Self {
        Self::Internal(InternalError {
            context: context.into(),
            source: None,
        })
    }

    /// An internal error: `context` says what the service was doing when `source` stopped it.
    pub fn internal_from(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Internal(InternalError {
            context: context.into(),
            source: Some(Box::new(source)),
        })
    }

    /// A failure on named fields: `validation_failed`, or `amount_too_large` when one of the
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

    /// A failure on one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// The table of codes: the stable `code` and the title of every failure.
    pub fn code(&self) -> (&'static str, &'static str) {
        match self {
            Self::Forbidden(_) => ("forbidden", "Forbidden"),
            Self::NotFound => ("not_found", "Not found"),
            Self::Validation { .. } => ("validation_failed", "Validation failed"),
            Self::AmountTooLarge { .. } => ("amount_too_large", "Amount too large"),
            Self::Conflict(_) => ("conflict", "Conflict"),
            Self::AlreadyExists(_) => ("already_exists", "Already exists"),
            Self::RegistrationKeyTaken => ("registration_key_taken", "Registration key taken"),
            Self::InvalidTransition(_) => ("invalid_transition", "Invalid transition"),
            Self::TrialUsed => ("trial_used", "Trial used"),
            Self::TrialLicense(_) => ("trial_license", "Trial license"),
            Self::LicenseExpired => ("license_expired", "License expired"),
            Self::RegistrationLimit { .. } => ("registration_limit", "Registration limit reached"),
            Self::LicenseNotValid { .. } => ("license_not_valid", "License not valid"),
            Self::FingerprintNotRegistered => {
                ("fingerprint_not_registered", "Fingerprint not registered")
            }
            Self::InvalidSecret => ("invalid_secret", "Invalid secret"),
            Self::InsufficientFunds { .. } => ("insufficient_funds", "Insufficient funds"),
            Self::TooManyMatches { .. } => ("too_many_matches", "Too many matches"),
            Self::PreconditionFailed => ("precondition_failed", "Precondition failed"),
            Self::Unavailable => ("service_unavailable", "Service unavailable"),
            Self::Internal(_) => ("internal_error", "Internal server error"),
        }
    }

    /// The invalid fields of a `validation_failed` or `amount_too_large` failure.
    pub fn field_errors(&self) -> Option<&[FieldError]> {
        match self {
            Self::Validation { errors, .. } | Self::AmountTooLarge { errors, .. } => Some(errors),
            _ => None,
        }
    }
}

/// The field a pricing failure names: `period_months`, `options.<code>`, or `options` for an
/// amount beyond the bound (`amount_too_large`).
pub fn pricing_error(err: PricingError) -> FieldError {
    match err {
        PricingError::PeriodNotOffered(p) => FieldError::new(
            "period_months",
            format!("the product does not offer {} months", p.months()),
        ),
        PricingError::UnknownOption(code) => {
            FieldError::new(format!("options.{code}"), "the product has no such option")
        }
        PricingError::OptionOutOfBounds { code, min, max, .. } => FieldError::new(
            format!("options.{code}"),
            format!("must be from {min} to {max}"),
        ),
        // Too large to compute, or beyond the bound: `amount_too_large`.
        PricingError::Overflow | PricingError::AmountTooLarge => {
            FieldError::amount_too_large("options")
        }
    }
}

impl From<PersistenceError> for AppError {
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
            other => Self::internal_from("the database failed", other),
        }
    }
}

impl From<licentia_domain::license::TransitionError> for AppError {
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

/// A refused transfer action. The caller persists the state the `Expired`/`InvalidSecret`
/// variants carry before answering.
impl From<licentia_domain::transfer::TransferError> for AppError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_causes_for_the_log_only() {
        let disk = std::io::Error::other("disk full");
        let err = AppError::internal_from("writing the ledger", disk);
        assert_eq!(
            err.to_string(),
            "internal error",
            "the client sees no cause"
        );
        let AppError::Internal(inner) = &err else {
            panic!("not internal: {err:?}");
        };
        assert_eq!(inner.chain(), "writing the ledger: disk full");
        let corrupt = AppError::from(PersistenceError::Corrupt("license.status: \"x\"".into()));
        let AppError::Internal(inner) = &corrupt else {
            panic!("not internal: {corrupt:?}");
        };
        assert_eq!(
            inner.chain(),
            "the database failed: stored data is invalid: license.status: \"x\""
        );
    }
}
