//! Access tokens: JWTs with a pinned algorithm, required `exp`/`iat`/`iss`/`aud`/`sub`, a
//! deliberate leeway, and a `kid` that names the signing secret so secrets can rotate.
use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The claims Licentia puts in (and demands from) an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// Signs with the current secret; verifies with any secret of the ring, chosen by `kid`.
pub struct JwtKeys {
    algorithm: Algorithm,
    current_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.current_kid)
            .finish()
    }
}

/// The key id of a secret: a digest prefix, so the id reveals nothing about the secret.
pub fn kid_for(secret: &str) -> String {
    licentia_app::crypto::sha256_hex(&format!("licentia-jwt-kid:{secret}"))[..16].to_owned()
}

/// Why a presented token was refused (all answer 401 `invalid_token`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenRejected(pub String);

impl JwtKeys {
    /// `secrets[0]` signs; every secret verifies (older ones stay valid until removed).
    pub fn new(
        algorithm: Algorithm,
        secrets: &[String],
        issuer: &str,
        audience: &str,
        ttl_secs: u64,
        leeway_secs: u64,
    ) -> Result<Self, String> {
        let first = secrets.first().ok_or("no JWT secret")?;
        let encoding = EncodingKey::from_secret(first.as_bytes()).map_err(|e| e.to_string())?;
        let mut decoding = HashMap::new();
        for secret in secrets {
            decoding.insert(
                kid_for(secret),
                DecodingKey::from_secret(secret.as_bytes()).map_err(|e| e.to_string())?,
            );
        }
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
        Ok(Self {
            algorithm,
            current_kid: kid_for(first),
            encoding,
            decoding,
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
        })
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Issues an access token for the user.
    pub fn issue(&self, user_id: Uuid, now: OffsetDateTime) -> Result<String, String> {
        let iat = now.unix_timestamp();
        let claims = Claims {
            sub: user_id,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat,
            nbf: iat,
            exp: iat.saturating_add(self.ttl_secs),
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.current_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// Verifies signature, algorithm, `kid`, `exp`, `nbf`, `iss` and `aud`.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenRejected> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenRejected("malformed token".into()))?;
        if header.alg != self.algorithm {
            return Err(TokenRejected("unexpected token algorithm".into()));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenRejected("token has no key id".into()))?;
        let key = self
            .decoding
            .get(&kid)
            .ok_or_else(|| TokenRejected("unknown key id".into()))?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::ImmatureSignature => "token not yet valid",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                    ErrorKind::InvalidSignature => "bad signature",
                    _ => "invalid token",
                };
                TokenRejected(why.into())
            })
    }
}
