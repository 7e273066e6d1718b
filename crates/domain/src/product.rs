//! A software product of the catalog.
use time::OffsetDateTime;

use crate::ids::ProductId;
use crate::pricing::ProductPricing;

/// A product partners can order licenses for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    /// Unique, stable, URL-safe (e.g. `ispmanager-business`).
    pub code: String,
    pub name: String,
    pub pricing: ProductPricing,
    /// Seats per license; `None` is unlimited.
    pub max_registrations: Option<u32>,
    pub transferable: bool,
    /// Days of a free trial license (`POST /v1/licenses` with `trial`); 0: no trials.
    pub trial_days: u32,
    /// Archived products cannot be ordered; existing licenses keep working.
    pub archived: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The longest trial a product may offer, in days.
pub const MAX_TRIAL_DAYS: u32 = 90;

/// Product codes: lower-case letters, digits, `-` and `_`, starting with a letter or digit.
pub fn valid_product_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}
