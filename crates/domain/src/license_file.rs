//! Offline license files (CONTRACT §7): a signed license payload, armored as text.
//!
//! ```text
//! -----BEGIN LICENSE FILE-----
//! <standard base64 of the canonical JSON of the payload and its signature, 64 per line>
//! -----END LICENSE FILE-----
//! ```
//!
//! The JSON is `{license, fingerprint, issued_at, expires_at, key_id, signature}`, where
//! `signature` signs the canonical form of the rest (see [`crate::signing`]). The file must
//! hold exactly that canonical form, so any changed byte makes it fail to verify.
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::signing::{self, KeyPair, SIGNATURE_FIELD, SignatureError};

/// The first line of a license file.
pub const BEGIN: &str = "-----BEGIN LICENSE FILE-----";
/// The last line of a license file.
pub const END: &str = "-----END LICENSE FILE-----";
/// Base64 characters per line of the body.
const LINE: usize = 64;

/// The license as signed answers describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseClaims {
    pub id: Uuid,
    pub product_code: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    /// Quantity per option code.
    pub options: BTreeMap<String, u32>,
}

/// What a license file grants, to the machine with `fingerprint`, until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseFilePayload {
    pub license: LicenseClaims,
    pub fingerprint: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The id of the key that signed the file.
    pub key_id: String,
}

/// Why a license file does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LicenseFileError {
    #[error("not a license file: the BEGIN/END lines are missing or malformed")]
    Armor,
    #[error("the body is not standard base64")]
    Encoding,
    #[error("the body is not a JSON object in canonical form")]
    NotCanonical,
    #[error("the payload does not have the license file's fields: {0}")]
    Payload(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("the file is not valid at this time (issued {issued_at}, expires {expires_at})")]
    OutOfTime {
        issued_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    },
}

/// Signs `payload` with `key` and armors it. The payload's `key_id` must be `key`'s.
pub fn issue(key: &KeyPair, payload: &LicenseFilePayload) -> Result<String, SignatureError> {
    let mut object = serde_json::to_value(payload).map_err(|_| SignatureError::NotAnObject)?;
    let signature = key.sign_object(&object)?;
    if let Value::Object(members) = &mut object {
        members.insert(SIGNATURE_FIELD.to_owned(), Value::String(signature));
    }
    let body = STANDARD.encode(signing::canonical_json(&object)?);
    let mut out = String::with_capacity(body.len() + body.len() / LINE + BEGIN.len() + 40);
    out.push_str(BEGIN);
    out.push('\n');
    for chunk in body.as_bytes().chunks(LINE) {
        // Base64 is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    Ok(out)
}

/// Checks a license file's armor, encoding and signature against the keys by id, and
/// returns what it grants. Whether it is still within `issued_at..expires_at` is
/// [`LicenseFilePayload::check_time`]'s question.
pub fn verify_license_file(
    armored: &str,
    public_keys_by_id: &BTreeMap<String, [u8; 32]>,
) -> Result<LicenseFilePayload, LicenseFileError> {
    let mut lines = armored.trim().lines().map(|l| l.trim_end_matches('\r'));
    if lines.next() != Some(BEGIN) {
        return Err(LicenseFileError::Armor);
    }
    let mut body = String::with_capacity(armored.len());
    let mut ended = false;
    for line in lines.by_ref() {
        if line == END {
            ended = true;
            break;
        }
        body.push_str(line);
    }
    if !ended || lines.next().is_some() {
        return Err(LicenseFileError::Armor);
    }
    let bytes = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| LicenseFileError::Encoding)?;
    let text = String::from_utf8(bytes).map_err(|_| LicenseFileError::NotCanonical)?;
    let object: Value = serde_json::from_str(&text).map_err(|_| LicenseFileError::NotCanonical)?;
    if !object.is_object() || signing::canonical_json(&object)? != text {
        return Err(LicenseFileError::NotCanonical);
    }
    signing::verify_signed(&object, public_keys_by_id)?;
    let Value::Object(mut members) = object else {
        return Err(LicenseFileError::NotCanonical);
    };
    members.remove(SIGNATURE_FIELD);
    serde_json::from_value(Value::Object(members))
        .map_err(|e| LicenseFileError::Payload(e.to_string()))
}

impl LicenseFilePayload {
    /// Whether `now` falls within `issued_at..expires_at`.
    pub fn check_time(&self, now: OffsetDateTime) -> Result<(), LicenseFileError> {
        if self.issued_at <= now && now < self.expires_at {
            Ok(())
        } else {
            Err(LicenseFileError::OutOfTime {
                issued_at: self.issued_at,
                expires_at: self.expires_at,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    fn payload(key: &KeyPair) -> LicenseFilePayload {
        LicenseFilePayload {
            license: LicenseClaims {
                id: Uuid::nil(),
                product_code: "ispmanager-business".into(),
                valid_until: Some(datetime!(2027-01-31 10:00:00.123456 UTC)),
                options: BTreeMap::from([("extra_domains".into(), 3)]),
            },
            fingerprint: "machine-1 \"quoted\" é".into(),
            issued_at: datetime!(2026-06-01 12:00 UTC),
            expires_at: datetime!(2026-07-01 12:00 UTC),
            key_id: key.key_id().to_owned(),
        }
    }

    fn keys(key: &KeyPair) -> BTreeMap<String, [u8; 32]> {
        BTreeMap::from([(key.key_id().to_owned(), key.public_key())])
    }

    #[test]
    fn issued_files_verify() {
        let key = KeyPair::from_secret(&[3; 32]);
        let file = issue(&key, &payload(&key)).unwrap();
        assert!(file.starts_with("-----BEGIN LICENSE FILE-----\n"));
        assert!(file.ends_with("\n-----END LICENSE FILE-----\n"));
        assert!(
            file.lines()
                .all(|l| l.len() <= 64 || l.starts_with("-----"))
        );
        let got = verify_license_file(&file, &keys(&key)).unwrap();
        assert_eq!(got, payload(&key));
        // CRLF line ends (a file edited on Windows) still verify.
        let crlf = file.replace('\n', "\r\n");
        assert_eq!(verify_license_file(&crlf, &keys(&key)).unwrap(), got);
        got.check_time(datetime!(2026-06-15 00:00 UTC)).unwrap();
        assert!(got.check_time(got.expires_at).is_err());
        assert!(got.check_time(got.issued_at - Duration::SECOND).is_err());
    }

    #[test]
    fn every_changed_body_byte_fails() {
        let key = KeyPair::from_secret(&[3; 32]);
        let file = issue(&key, &payload(&key)).unwrap();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let body_start = BEGIN.len() + 1;
        let body_end = file.len() - END.len() - 2;
        for i in body_start..body_end {
            let mut bytes = file.clone().into_bytes();
            if bytes[i] == b'\n' || bytes[i] == b'=' {
                continue;
            }
            let pos = alphabet.iter().position(|c| *c == bytes[i]).unwrap();
            bytes[i] = alphabet[(pos + 1) % alphabet.len()];
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(
                verify_license_file(&tampered, &keys(&key)).is_err(),
                "byte {i} changed and the file still verified"
            );
        }
    }

    #[test]
    fn wrong_keys_and_armor_fail() {
        let key = KeyPair::from_secret(&[3; 32]);
        let file = issue(&key, &payload(&key)).unwrap();
        let other = KeyPair::from_secret(&[4; 32]);
        assert_eq!(
            verify_license_file(&file, &keys(&other)),
            Err(LicenseFileError::Signature(SignatureError::UnknownKey(
                key.key_id().to_owned()
            )))
        );
        // Another key under the signer's id does not verify either.
        let forged = BTreeMap::from([(key.key_id().to_owned(), other.public_key())]);
        assert_eq!(
            verify_license_file(&file, &forged),
            Err(LicenseFileError::Signature(SignatureError::Mismatch))
        );
        let no_end = file.replace(END, "");
        assert_eq!(
            verify_license_file(&no_end, &keys(&key)),
            Err(LicenseFileError::Armor)
        );
        let trailing = format!("{file}extra\n");
        assert_eq!(
            verify_license_file(&trailing, &keys(&key)),
            Err(LicenseFileError::Armor)
        );
        // Valid JSON, correctly signed content, but not in canonical form: refused.
        let body: String = file.lines().filter(|l| !l.starts_with("-----")).collect();
        let json = String::from_utf8(STANDARD.decode(body).unwrap()).unwrap();
        let spaced = json.replacen(':', ": ", 1);
        let rearmored = format!("{BEGIN}\n{}\n{END}\n", STANDARD.encode(spaced));
        assert_eq!(
            verify_license_file(&rearmored, &keys(&key)),
            Err(LicenseFileError::NotCanonical)
        );
    }
}
