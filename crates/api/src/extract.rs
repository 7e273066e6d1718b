//! Request-body, path and query extraction errors, mapped to problem responses, and the
//! validation bridge from `garde` reports to `errors:[{field, message}]`.
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::{PathError, QueryPayloadError};
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, mime, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::{ApiError, FieldError};

/// Names the field in a serde message (`unknown field `x``, `missing field `x``, …).
mod messages;

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
    FieldError::new(field, messages::humanize(&clean))
}

/// A path segment that does not parse (e.g. a malformed UUID) is a resource that does not
/// exist: 404, as for an unknown id (or 405 for a literal route it stands for, see
/// [`crate::fallback::unparsable_path`]).
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, req: &HttpRequest| {
        actix_web::error::InternalError::from_response(err, crate::fallback::unparsable_path(req))
            .into()
    })
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
                .map(|(path, error)| {
                    FieldError::new(path.to_string(), messages::humanize(error.message()))
                })
                .collect(),
        )
    })
}

/// The body size limit, from `LICENTIA_BODY_LIMIT_BYTES`.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// A JSON request body. Unlike `web::Json`, a value of the wrong shape is reported with the
/// path of the offending field (`prices[1].amount`), which SDK users need, and body errors
/// (400/413/415/422) surface only when the handler asks for the body with
/// [`Json::into_inner`] — after its permission (403) and existence (404) checks, the order of
/// checks the contract fixes. Extraction itself never fails.
#[derive(Debug)]
pub struct Json<T>(Result<T, ApiError>);

impl<T> Json<T> {
    /// The parsed body, or the problem it had.
    pub fn into_inner(self) -> Result<T, ApiError> {
        self.0
    }
}

fn is_json(req: &HttpRequest) -> bool {
    matches!(req.mime_type(), Ok(Some(m)) if m.type_() == mime::APPLICATION && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON)))
}

async fn read_body<T: DeserializeOwned>(
    mut payload: Payload,
    json: bool,
    declared: Option<usize>,
    limit: usize,
) -> Result<T, ApiError> {
    if !json {
        return Err(ApiError::UnsupportedMediaType(
            "the request body must be application/json".into(),
        ));
    }
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        // A body that misses its deadline (see `text_guard`) is 408, not 400.
        let chunk = chunk.map_err(|e| crate::text_guard::payload_error(&e))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    parse_json(&body)
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map_or(65_536, |l| l.0);
        let json = is_json(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let payload = payload.take();
        Box::pin(async move { Ok(Json(read_body(payload, json, declared, limit).await)) })
    }
}

/// An optional JSON request body (e.g. the `{cause, note}` of a disable): no body, or an empty
/// one, is `None`; any other body is read like [`Json`] (JSON only, within the size limit).
/// Like [`Json`], its problems surface only in [`OptionalJson::into_inner`].
#[derive(Debug)]
pub struct OptionalJson<T>(Result<Option<T>, ApiError>);

impl<T> OptionalJson<T> {
    /// The parsed body (`None` when there was none), or the problem it had.
    pub fn into_inner(self) -> Result<Option<T>, ApiError> {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map_or(65_536, |l| l.0);
        let json = is_json(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            let read = async {
                if declared.is_some_and(|n| n > limit) {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                let mut body = web::BytesMut::new();
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk.map_err(|e| crate::text_guard::payload_error(&e))?;
                    if body.len() + chunk.len() > limit {
                        return Err(ApiError::PayloadTooLarge(limit));
                    }
                    body.extend_from_slice(&chunk);
                }
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                if !json {
                    return Err(ApiError::UnsupportedMediaType(
                        "the request body must be application/json".into(),
                    ));
                }
                parse_json(&body).map(Some)
            };
            Ok(OptionalJson(read.await))
        })
    }
}

/// Parses a query string into `T` (a `deny_unknown_fields` struct) for handlers that read it
/// after their existence check: an unknown or malformed parameter is 422 naming it.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    web::Query::<T>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::validation(vec![serde_field_error(&e.to_string())]))
}

/// Parses a JSON body: syntax errors are 400, shape errors 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if nesting_depth(body) > MAX_DEPTH {
        return Err(ApiError::MalformedJson(format!(
            "the request body nests deeper than {MAX_DEPTH} levels"
        )));
    }
    // Every request body of this API is an object. serde would also read a struct from an
    // array of its fields in order (`[null, null]`), which no client means to send.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::field("body", "must be a JSON object"));
    }
    // Text anywhere with a control character is refused before anything reads it (CONTRACT
    // §9): PostgreSQL cannot store U+0000, and no field of this API means any of them.
    let controls = control_characters(body);
    if !controls.is_empty() {
        return Err(ApiError::validation(controls));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            Category::Data => {
                let message = inner.to_string();
                let mut field = serde_field_error(&message);
                // The path ends at the offending field, except for a missing one (its parent).
                if path != "." && !path.is_empty() {
                    field.field = if message.starts_with("missing field") {
                        format!("{path}.{}", field.field)
                    } else {
                        path
                    };
                }
                ApiError::validation(vec![field])
            }
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::MalformedJson(format!("the request body is not valid JSON: {inner}"))
            }
        }
    })?;
    de.end()
        .map_err(|e| ApiError::MalformedJson(format!("the request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// The most control-character errors one answer lists.
const MAX_CONTROL_ERRORS: usize = 20;

/// Every key and string of a JSON body that holds a control character (Unicode Cc), named by
/// its JSON path (`name`, `metadata.k`, `prices[1].code`). Raw control characters inside a
/// JSON string are malformed JSON (400, reported by the parser); this finds the escaped
/// ones (`\u0000`, `\n`), DEL and the C1 controls, which JSON allows.
fn control_characters(body: &[u8]) -> Vec<FieldError> {
    // Most bodies cannot hold one: no escape sequence, no DEL, no UTF-8 C1 (C2 80..C2 9F).
    let maybe = body.iter().any(|b| matches!(b, b'\\' | 0x7f))
        || body
            .windows(2)
            .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]));
    if !maybe {
        return Vec::new();
    }
    // A body that does not parse is reported by the typed parse that follows.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk_controls(&value, &mut String::new(), &mut out);
    out
}

fn walk_controls(value: &serde_json::Value, path: &mut String, out: &mut Vec<FieldError>) {
    use crate::text_guard::{CONTROL_MESSAGE, escape_controls, has_control};
    if out.len() >= MAX_CONTROL_ERRORS {
        return;
    }
    match value {
        serde_json::Value::String(text) if has_control(text) => {
            let field = if path.is_empty() {
                "body"
            } else {
                path.as_str()
            };
            out.push(FieldError::new(field, CONTROL_MESSAGE));
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_controls(item, path, out);
                path.truncate(len);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&escape_controls(key));
                if has_control(key) && out.len() < MAX_CONTROL_ERRORS {
                    out.push(FieldError::new(
                        path.clone(),
                        format!("the key {CONTROL_MESSAGE}"),
                    ));
                }
                walk_controls(item, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// No request body of this API nests deeper than a few levels; deeper ones are refused before
/// any parsing.
const MAX_DEPTH: usize = 32;

/// The deepest nesting of arrays and objects in `body`, ignoring brackets inside strings.
fn nesting_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::{MAX_CONTROL_ERRORS, control_characters, nesting_depth};

    #[test]
    fn control_characters_are_named_by_their_json_path() {
        let fields = |body: &str| -> Vec<String> {
            control_characters(body.as_bytes())
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert!(fields(r#"{"name": "plain é \\u0000 text", "n": 1}"#).is_empty());
        assert_eq!(fields(r#"{"name": "a\u0000b"}"#), ["name"]);
        assert_eq!(fields(r#"{"metadata": {"k": "v\u001f"}}"#), ["metadata.k"]);
        assert_eq!(
            fields(r#"{"metadata": {"k\u0000": "v"}}"#),
            ["metadata.k\\u0000"]
        );
        assert_eq!(fields("{\"a\": [\"x\", \"\u{7f}\"]}"), ["a[1]"]);
        assert_eq!(fields("{\"a\": [{\"b\": \"\u{85}\"}]}"), ["a[0].b"]);
        assert_eq!(fields(r#""\u0000""#), ["body"]);
        assert_eq!(fields(r#"{"x": "\n", "y": "\t"}"#), ["x", "y"]);
        // Many offenders: the answer stays short.
        let many = (0..100)
            .map(|i| format!(r#""k{i}": "\u0000""#))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(fields(&format!("{{{many}}}")).len(), MAX_CONTROL_ERRORS);
    }

    #[test]
    fn depth_ignores_strings() {
        assert_eq!(nesting_depth(br#"{"a": [1, {"b": "[[[{{{"}]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a": "\"[["}"#), 1);
        assert_eq!(nesting_depth(b"[[[[]]]]"), 4);
    }
}
