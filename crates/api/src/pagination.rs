//! Keyset pagination shared by every list: `limit` (1..200, default 50) and an opaque
//! `cursor` that is signed and bound to the caller and the list it came from, so it can be
//! neither forged nor replayed by someone else.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, FieldError};

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;

/// One page of a list.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// What a cursor remembers: the sort key of the last row returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorKey {
    /// The last row's id (the tie-breaker of every sort).
    pub id: Uuid,
    /// The last row's sort value when the list is not sorted by id alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Signs and checks cursors with a key derived from the service's secret.
#[derive(Clone)]
pub struct CursorCodec {
    key: [u8; 32],
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec")
    }
}

type HmacSha256 = hmac::Hmac<Sha256>;

impl CursorCodec {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, scope: &str, payload: &[u8]) -> Vec<u8> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("any key length works"));
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }

    /// `scope` names the caller and the list (and its sort), e.g. `acct:<id>|licenses|-name`.
    pub fn encode(&self, scope: &str, key: &CursorKey) -> String {
        let payload = serde_json::to_vec(key).unwrap_or_default();
        let mut out = payload.clone();
        out.extend_from_slice(&self.mac(scope, &payload)[..16]);
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn decode(&self, scope: &str, cursor: &str) -> Result<CursorKey, ApiError> {
        let bad = || ApiError::field("cursor", "is not a cursor issued for this list and caller");
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
        if raw.len() <= 16 || raw.len() > 1024 {
            return Err(bad());
        }
        let (payload, tag) = raw.split_at(raw.len() - 16);
        let expected = self.mac(scope, payload);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..16], tag)) {
            return Err(bad());
        }
        serde_json::from_slice(payload).map_err(|_| bad())
    }
}

/// Parses `limit`: an integer in 1..=200, default 50.
pub fn parse_limit(raw: Option<&str>) -> Result<u64, FieldError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(FieldError::new(
                "limit",
                format!("must be an integer from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// Builds the page from `limit + 1` fetched rows: the extra row only says another page exists.
pub fn page_of<R, T>(
    mut rows: Vec<R>,
    limit: u64,
    codec: &CursorCodec,
    scope: &str,
    key_of: impl Fn(&R) -> CursorKey,
    to_out: impl Fn(R) -> T,
) -> Page<T> {
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if more {
        rows.last().map(|r| codec.encode(scope, &key_of(r)))
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(to_out).collect(),
        next_cursor,
    }
}

/// A 200 JSON response written into one buffer of `capacity` bytes (a page of many items would
/// otherwise grow and copy its buffer a dozen times while it is written).
pub fn json_ok<T: Serialize>(value: &T, capacity: usize) -> actix_web::HttpResponse {
    let mut body = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => actix_web::HttpResponse::Ok()
            .content_type(actix_web::http::header::ContentType::json())
            .body(body),
        Err(e) => actix_web::ResponseError::error_response(&crate::error::ApiError::internal(
            format!("serializing a page: {e}"),
        )),
    }
}
