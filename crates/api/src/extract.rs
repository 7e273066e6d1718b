//! Request-body, path and query extraction errors, mapped to problem responses, and the
//! validation bridge from `garde` reports to `errors:[{field, message}]`.
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, mime, web};
use serde_json::error::Category;

use crate::error::{ApiError, FieldError};

/// JSON bodies: 415 for another content type, 413 over the limit, 400 when not JSON,
/// 422 when JSON of the wrong shape (unknown fields included).
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(true)
        .content_type(|mime| mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
        .error_handler(move |err, _req| json_error(err, limit).into())
}

fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("the request body must be application/json".into())
        }
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge(limit)
        }
        JsonPayloadError::Deserialize(e) => match e.classify() {
            Category::Data => ApiError::validation(vec![serde_field_error(&e.to_string())]),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::MalformedJson(format!("the request body is not valid JSON: {e}"))
            }
        },
        JsonPayloadError::Serialize(e) => ApiError::Internal(e.to_string()),
        other => ApiError::BadRequest(format!("could not read the request body: {other}")),
    }
}

/// Names the field in a serde message (`unknown field `x``, `missing field `x``, …).
fn serde_field_error(message: &str) -> FieldError {
    let clean = message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_owned();
    let field = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|marker| {
            let start = clean.find(marker)? + marker.len();
            let len = clean[start..].find('`')?;
            Some(clean[start..start + len].to_owned())
        })
        .unwrap_or_else(|| "body".to_owned());
    FieldError::new(field, clean)
}

/// A path segment that does not parse (e.g. a malformed UUID) is a resource that does not
/// exist: 404, as for an unknown id.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|_err: PathError, _req: &HttpRequest| ApiError::NotFound.into())
}

/// Query strings: any unknown or malformed parameter is 422 naming it.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        let message = err.to_string();
        ApiError::validation(vec![serde_field_error(&message)]).into()
    })
}

/// Runs `garde` validation, reporting every failing field.
pub fn validate<T: garde::Validate<Context = ()>>(value: &T) -> Result<(), ApiError> {
    value.validate().map_err(|report| {
        ApiError::validation(
            report
                .iter()
                .map(|(path, error)| FieldError::new(path.to_string(), error.message().to_owned()))
                .collect(),
        )
    })
}
