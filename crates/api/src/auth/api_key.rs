//! The API key format: `lic_` + 32 random alphanumerics + a 6-hex-digit checksum (GitHub
//! style), so a mistyped or made-up key is refused before any database look-up.
use rand::Rng;
use rand::distr::Alphanumeric;

use licentia_app::crypto::sha256_hex;

const PREFIX: &str = "lic_";
const BODY_LEN: usize = 32;
const CHECK_LEN: usize = 6;
/// How much of a key is shown in lists to recognise it.
const SHOWN_LEN: usize = PREFIX.len() + 8;

fn checksum(body: &str) -> String {
    sha256_hex(&format!("licentia-api-key:{body}"))[..CHECK_LEN].to_owned()
}

/// A fresh key and its displayable prefix.
pub fn generate() -> (String, String) {
    let body: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(BODY_LEN)
        .map(char::from)
        .collect();
    let key = format!("{PREFIX}{body}{}", checksum(&body));
    let shown = key[..SHOWN_LEN].to_owned();
    (key, shown)
}

/// Whether `key` has the right shape and checksum.
pub fn well_formed(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(PREFIX) else {
        return false;
    };
    if rest.len() != BODY_LEN + CHECK_LEN || !rest.is_ascii() {
        return false;
    }
    let (body, check) = rest.split_at(BODY_LEN);
    body.bytes().all(|b| b.is_ascii_alphanumeric()) && checksum(body) == check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_typos_are_not() {
        let (key, shown) = generate();
        assert!(well_formed(&key));
        assert!(key.starts_with(&shown));
        let mut typo = key.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        assert!(!well_formed(&String::from_utf8(typo).unwrap_or_default()));
        assert!(!well_formed("lic_short"));
        assert!(!well_formed("Bearer something"));
    }
}
