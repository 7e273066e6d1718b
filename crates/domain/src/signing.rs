//! Signed answers for licensed software: RFC 8785 (JCS) canonical JSON and Ed25519.
//!
//! The service signs the canonical form of a JSON object without its `signature` member; a
//! client re-creates that form from what it received and checks the signature with the public
//! key named by the object's `key_id`. Everything here is pure, so a client library can use
//! the same code to verify offline.
//!
//! Canonicalization covers the JSON the service emits: objects, arrays, strings, booleans,
//! null and integers of at most 2^53 − 1 in magnitude (which JCS prints as plain integers).
//! A fractional or larger number is refused rather than printed in a form another
//! implementation might not reproduce.
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The signature algorithm, as `GET /v1/signing-key` names it.
pub const ALGORITHM: &str = "Ed25519";

/// The member that carries the signature of the rest of an object.
pub const SIGNATURE_FIELD: &str = "signature";

/// The member that names the key that signed an object.
pub const KEY_ID_FIELD: &str = "key_id";

/// The largest integer magnitude JCS prints exactly (2^53 − 1).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a payload could not be signed or a signature did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("number {0} cannot be canonicalized (only integers up to 2^53 - 1 are)")]
    UnsupportedNumber(String),
    #[error("the payload is not a JSON object")]
    NotAnObject,
    #[error("the payload is not valid JSON")]
    MalformedJson,
    #[error("the public key is not 32 bytes of an Ed25519 key")]
    MalformedKey,
    #[error("the signature is not standard base64 of 64 bytes")]
    MalformedSignature,
    #[error("the object has no {0} member of type string")]
    MissingField(&'static str),
    #[error("no public key with id {0}")]
    UnknownKey(String),
    #[error("the signature does not match the payload")]
    Mismatch,
}

/// The RFC 8785 canonical form of `value`: no whitespace, object members sorted by the UTF-16
/// code units of their names, strings escaped as ECMAScript's `JSON.stringify` does (which is
/// what `serde_json` does), integers in plain decimal.
pub fn canonical_json(value: &Value) -> Result<String, SignatureError> {
    let mut out = String::with_capacity(256);
    write_canonical(value, &mut out)?;
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut String) -> Result<(), SignatureError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&canonical_number(n)?),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out)?;
            }
            out.push(']');
        }
        Value::Object(members) => write_members(members, None, out)?,
    }
    Ok(())
}

/// An object's members in canonical order, without the member named `skip`.
fn write_members(
    members: &serde_json::Map<String, Value>,
    skip: Option<&str>,
    out: &mut String,
) -> Result<(), SignatureError> {
    let mut sorted: Vec<(&String, &Value)> = members
        .iter()
        .filter(|(name, _)| Some(name.as_str()) != skip)
        .collect();
    sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push('{');
    for (i, (name, member)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(name, out);
        out.push(':');
        write_canonical(member, out)?;
    }
    out.push('}');
    Ok(())
}

fn canonical_number(n: &serde_json::Number) -> Result<String, SignatureError> {
    let unsupported = || SignatureError::UnsupportedNumber(n.to_string());
    if let Some(i) = n.as_i64() {
        return if i.unsigned_abs() <= MAX_SAFE_INTEGER {
            Ok(i.to_string())
        } else {
            Err(unsupported())
        };
    }
    if n.as_u64().is_some() {
        // Above i64::MAX, so above 2^53 as well.
        return Err(unsupported());
    }
    match n.as_f64() {
        // An integral float (e.g. `3.0`) prints as JCS prints the same IEEE value: `3`.
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64 => {
            // `-0.0` prints as `0`; the cast is exact below 2^53.
            Ok(format!("{}", f as i64))
        }
        _ => Err(unsupported()),
    }
}

/// JCS string escaping is ECMAScript's: `"` `\` and the C0 controls, with the short forms
/// `\b \t \n \f \r` and lower-case `\u00xx` otherwise; everything else verbatim. That is
/// exactly `serde_json`'s escaping, written out here so the rule is visible and tested.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

/// An Ed25519 signing key with its id. `Debug` never shows the secret.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// The key whose 32-byte secret (RFC 8032 seed) is `secret`.
    #[must_use]
    pub fn from_secret(secret: &[u8; 32]) -> KeyPair {
        let signing = SigningKey::from_bytes(secret);
        let key_id = key_id(&signing.verifying_key().to_bytes());
        KeyPair { signing, key_id }
    }

    /// The 32-byte secret, for storing it (encrypted).
    #[must_use]
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The raw 32-byte public key.
    #[must_use]
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// See [`key_id`].
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Standard base64 of the signature of `message`.
    #[must_use]
    pub fn sign_bytes(&self, message: &[u8]) -> String {
        STANDARD.encode(self.signing.sign(message).to_bytes())
    }

    /// The signature of the canonical form of `object` without its `signature` member.
    pub fn sign_object(&self, object: &Value) -> Result<String, SignatureError> {
        Ok(self.sign_bytes(unsigned_canonical(object)?.as_bytes()))
    }
}

/// The canonical form of an object without its `signature` member: what is signed.
pub fn unsigned_canonical(object: &Value) -> Result<String, SignatureError> {
    let Value::Object(members) = object else {
        return Err(SignatureError::NotAnObject);
    };
    let mut out = String::with_capacity(256);
    write_members(members, Some(SIGNATURE_FIELD), &mut out)?;
    Ok(out)
}

/// Decodes a public key given as standard base64 of its 32 raw bytes.
pub fn decode_public_key(base64: &str) -> Result<[u8; 32], SignatureError> {
    STANDARD
        .decode(base64.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or(SignatureError::MalformedKey)
}

/// Checks `signature_b64` against the canonical form of `payload_json` (a JSON object; a
/// `signature` member in it is left out, as when signing).
pub fn verify(
    public_key: &[u8; 32],
    payload_json: &str,
    signature_b64: &str,
) -> Result<(), SignatureError> {
    let payload: Value =
        serde_json::from_str(payload_json).map_err(|_| SignatureError::MalformedJson)?;
    verify_object(public_key, &payload, signature_b64)
}

/// [`verify`] for an already parsed object.
pub fn verify_object(
    public_key: &[u8; 32],
    object: &Value,
    signature_b64: &str,
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| SignatureError::MalformedKey)?;
    let signature: [u8; 64] = STANDARD
        .decode(signature_b64.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(SignatureError::MalformedSignature)?;
    let message = unsigned_canonical(object)?;
    key.verify_strict(message.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| SignatureError::Mismatch)
}

/// Verifies a signed object as the service sends it (`POST /v1/validate`'s answer): the key
/// named by its `key_id` member must be among `public_keys_by_id` and its `signature` member
/// must sign the rest.
pub fn verify_signed(
    object: &Value,
    public_keys_by_id: &BTreeMap<String, [u8; 32]>,
) -> Result<(), SignatureError> {
    let field = |name: &'static str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .ok_or(SignatureError::MissingField(name))
    };
    let key_id = field(KEY_ID_FIELD)?;
    let signature = field(SIGNATURE_FIELD)?;
    let key = public_keys_by_id
        .get(key_id)
        .ok_or_else(|| SignatureError::UnknownKey(key_id.to_owned()))?;
    verify_object(key, object, signature)
}

#[cfg(test)]
mod tests;
